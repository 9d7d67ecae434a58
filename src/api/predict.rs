//! `POST /predict`: `{"x_predict": [10, 15.5]}` -> `{"y_predict": [[y1], [y2]]}`, the original's
//! shape. Each element is a number (one-feature models) or a list with one number per feature.
//!
//! The body is read straight into predictions: each row is predicted as it is parsed and its
//! inputs are not kept, large bodies are parsed on a blocking thread, and the predictions count
//! against the memory budget as they grow. A large answer is written out as the client reads it,
//! so it never exists whole in memory. The model and the metrics are the prediction service's;
//! rows are predicted with the model's own row arithmetic as they are parsed.

use std::cell::RefCell;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::AppError;
use super::budget::{Budget, Reservation, SMALL};
use super::error::ErrorBody;
use crate::model::{Model, PredictError};
use crate::serving::stream::Row;
use crate::serving::{Protocol, Serving};
use crate::state::AppState;

/// Bodies larger than this are parsed on a blocking thread.
pub(super) const PARSE_INLINE_BYTES: usize = 256 * 1024;
/// Predictions written per chunk of a streamed answer (about 200 KB).
const ROWS_PER_CHUNK: usize = 8192;
/// How many more predictions are covered in the budget at a time as they grow: answers up to
/// this many (64 KiB of them) are small and never counted.
const BUDGET_STEP_ROWS: usize = SMALL / size_of::<f64>();

#[utoipa::path(post, path = "/predict", tag = "predictions",
    request_body(content = PredictRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One prediction per row", body = PredictAnswer),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "No model is trained yet", body = ErrorBody),
        (status = 415, description = "A body that is not declared JSON", body = ErrorBody),
        (status = 422, description = "No `x_predict`, or rows of the wrong width", body = ErrorBody),
        (status = 503, description = "The active version cannot be served, or the server is at a limit", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(bytes = body.len()))]
pub async fn predict(
    State(state): State<AppState>,
    State(budget): State<Budget>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let serving = state.serving();
    require_json(&headers).map_err(|error| serving.refused(Protocol::Flask, error))?;
    let predicted = predict_request(serving, &budget, body).await;
    serving.record(Protocol::Flask, predicted.as_ref().map(|answer| answer.values.len()).map_err(|_| ()));
    Ok(predicted?.into_response())
}

/// The predictions of a `/predict` body by the served model.
async fn predict_request(serving: &Serving, budget: &Budget, body: Bytes) -> Result<Predictions, AppError> {
    let model = serving.active()?;
    match body.len() <= PARSE_INLINE_BYTES {
        true => predict_body(&body, &model, budget),
        false => {
            let budget = budget.clone();
            budget.clone().offload(move || predict_body(&body, &model, &budget)).await?
        }
    }
}

/// 415 unless the body is declared JSON, as the original's `request.json` requires.
fn require_json(headers: &HeaderMap) -> Result<(), AppError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        return Ok(());
    }
    Err(AppError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Expected request with `Content-Type: application/json`",
    ))
}

/// The body of `POST /predict`, for the OpenAPI document: the handler reads it row by row
/// rather than into this type.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct PredictRequest {
    /// The rows: a number each for a one-feature model, else a list with one number per feature.
    x_predict: Vec<PredictRow>,
}

/// One row of `x_predict`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
enum PredictRow {
    Number(f64),
    Numbers(Vec<f64>),
}

/// The answer of `POST /predict`, for the OpenAPI document: the handler writes it out as the
/// client reads it rather than from this type.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct PredictAnswer {
    /// One `[y]` per row, in order.
    #[schema(value_type = Vec<Vec<f64>>)]
    y_predict: Vec<[f64; 1]>,
}

/// The predictions of a request, with the memory they hold reserved.
struct Predictions {
    values: Vec<f64>,
    reservation: Reservation,
}

/// Parses `body` and predicts every row of its `x_predict` with `model`.
fn predict_body(body: &[u8], model: &Model, budget: &Budget) -> Result<Predictions, AppError> {
    let failure = RefCell::new(None);
    let mut out = Predictions { values: Vec::new(), reservation: Reservation::none() };
    let seed = PredictBody { model, budget, out: &mut out, failure: &failure };
    let mut track = serde_path_to_error::Track::new();
    let mut json = serde_json::Deserializer::from_slice(body);
    let parsed = seed.deserialize(serde_path_to_error::Deserializer::new(&mut json, &mut track));
    if let Some(failure) = failure.into_inner() {
        return Err(failure);
    }
    parsed
        .and_then(|()| json.end())
        .map_err(|error| json_error(serde_path_to_error::Error::new(track.path(), error)))?;
    Ok(out)
}

/// A JSON error as axum's `Json` extractor words it: 400 for malformed JSON, 422 for the wrong shape.
fn json_error(error: serde_path_to_error::Error<serde_json::Error>) -> AppError {
    match error.inner().classify() {
        serde_json::error::Category::Data => AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Failed to deserialize the JSON body into the target type: {error}"),
        ),
        _ => AppError::new(
            StatusCode::BAD_REQUEST,
            format!("Failed to parse the request body as JSON: {error}"),
        ),
    }
}

/// The request body, `{"x_predict": [...]}` (other fields are ignored), read into `out`.
struct PredictBody<'a> {
    model: &'a Model,
    budget: &'a Budget,
    out: &'a mut Predictions,
    /// A failure that is not about the JSON (a row of the wrong width, the budget), which ends
    /// the parse and is answered as it is.
    failure: &'a RefCell<Option<AppError>>,
}

impl<'de> DeserializeSeed<'de> for PredictBody<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PredictBody<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with the field `x_predict`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut rows =
            Some(Rows { model: self.model, budget: self.budget, out: self.out, failure: self.failure });
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key != "x_predict" {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let Some(seed) = rows.take() else { return Err(de::Error::duplicate_field("x_predict")) };
            map.next_value_seed(seed)?;
        }
        match rows {
            Some(_) => Err(de::Error::missing_field("x_predict")),
            None => Ok(()),
        }
    }
}

/// The `x_predict` list, each row predicted as it is read.
struct Rows<'a> {
    model: &'a Model,
    budget: &'a Budget,
    out: &'a mut Predictions,
    failure: &'a RefCell<Option<AppError>>,
}

impl<'de> DeserializeSeed<'de> for Rows<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut row = Vec::with_capacity(self.model.features().len());
        while seq.next_element_seed(Row { values: row_cleared(&mut row), lists_only: false })?.is_some() {
            let index = self.out.values.len();
            let fail = |error: AppError| {
                *self.failure.borrow_mut() = Some(error);
                de::Error::custom("stopped")
            };
            let prediction = self.model.predict_row(index, &row).map_err(|error| fail(error.into()))?;
            if index > 0 && index.is_multiple_of(BUDGET_STEP_ROWS) {
                let covered = (index + BUDGET_STEP_ROWS) * size_of::<f64>();
                self.budget.cover(&mut self.out.reservation, covered).map_err(fail)?;
            }
            self.out.values.push(prediction);
        }
        Ok(())
    }
}

/// The reused row buffer, emptied for the next row.
fn row_cleared(row: &mut Vec<f64>) -> &mut Vec<f64> {
    row.clear();
    row
}

impl From<PredictError> for AppError {
    fn from(error: PredictError) -> Self {
        AppError::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string())
    }
}

impl IntoResponse for Predictions {
    /// One single-element list per row, as Keras's `model.predict` returns: whole when small,
    /// streamed a chunk at a time when large.
    fn into_response(self) -> Response {
        let json = [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        if self.values.len() * 24 <= SMALL {
            let mut answer = Answer { values: self.values, next: 0 };
            return (json, answer.chunk(usize::MAX)).into_response();
        }
        let body = Body::new(Answer { values: self.values, next: 0 });
        self.reservation.hold_until_sent((json, body).into_response())
    }
}

/// The answer's JSON, written a chunk at a time as it is sent.
struct Answer {
    values: Vec<f64>,
    /// The next prediction to write; past the end once the closing `]}` is out.
    next: usize,
}

impl Answer {
    /// The JSON of the next `rows` predictions (with the opening and closing brackets where due).
    fn chunk(&mut self, rows: usize) -> Bytes {
        let end = self.next.saturating_add(rows).min(self.values.len());
        let mut text = Vec::with_capacity((end - self.next) * 24 + 16);
        if self.next == 0 {
            text.extend_from_slice(b"{\"y_predict\":[");
        }
        for (offset, value) in self.values[self.next..end].iter().enumerate() {
            if self.next + offset > 0 {
                text.push(b',');
            }
            text.push(b'[');
            serde_json::to_writer(&mut text, value).expect("writing to a Vec succeeds");
            text.push(b']');
        }
        if end == self.values.len() {
            text.extend_from_slice(b"]}");
            self.next = usize::MAX;
        } else {
            self.next = end;
        }
        Bytes::from(text)
    }
}

impl HttpBody for Answer {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.next == usize::MAX {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(Frame::data(this.chunk(ROWS_PER_CHUNK)))))
    }

    fn is_end_stream(&self) -> bool {
        self.next == usize::MAX
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_the_same_json_whole_or_in_chunks() {
        let values = vec![1.0, -2.5, 3e-8, 12345.678];
        let whole = Answer { values: values.clone(), next: 0 }.chunk(usize::MAX);
        assert_eq!(
            whole,
            serde_json::to_string(&serde_json::json!({ "y_predict": [[1.0], [-2.5], [3e-8], [12345.678]] }))
                .unwrap()
        );
        let mut chunked = Answer { values, next: 0 };
        let parts: Vec<Bytes> =
            std::iter::from_fn(|| (chunked.next != usize::MAX).then(|| chunked.chunk(3))).collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts.concat(), whole.to_vec());
        let empty = Answer { values: Vec::new(), next: 0 }.chunk(10);
        assert_eq!(empty, "{\"y_predict\":[]}");
    }
}
