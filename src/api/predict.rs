//! `POST /predict`: `{"x_predict": [10, 15.5]}` -> `{"y_predict": [[y1], [y2]]}`, the original's
//! shape. Each element is a number (one-feature models) or a list with one number per feature.

use std::fmt;

use axum::Json;
use axum::extract::State;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::models::no_model;
use super::{AppError, AppJson};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct PredictRequest {
    x_predict: Vec<Row>,
}

#[derive(Debug, Serialize)]
pub struct PredictResponse {
    /// One single-element list per row, as Keras's `model.predict` returns.
    y_predict: Vec<[f64; 1]>,
}

/// One input row: a bare number or a list of numbers.
#[derive(Debug)]
enum Row {
    Scalar(f64),
    Values(Vec<f64>),
}

impl Row {
    fn as_slice(&self) -> &[f64] {
        match self {
            Row::Scalar(value) => std::slice::from_ref(value),
            Row::Values(values) => values,
        }
    }
}

impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = Row;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a list of numbers")
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Row, E> {
                Ok(Row::Scalar(value))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Row, E> {
                Ok(Row::Scalar(value as f64))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Row, E> {
                Ok(Row::Scalar(value as f64))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Row, A::Error> {
                let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(2));
                while let Some(value) = seq.next_element::<f64>()? {
                    values.push(value);
                }
                Ok(Row::Values(values))
            }
        }
        deserializer.deserialize_any(RowVisitor)
    }
}

#[tracing::instrument(skip_all, fields(rows = request.x_predict.len()))]
pub async fn predict(
    State(state): State<AppState>,
    AppJson(request): AppJson<PredictRequest>,
) -> Result<Json<PredictResponse>, AppError> {
    let model = state.model().ok_or_else(no_model)?;
    let predictions = model.predict(request.x_predict.iter().map(Row::as_slice))?;
    Ok(Json(PredictResponse { y_predict: predictions.into_iter().map(|y| [y]).collect() }))
}
