//! Reading the served model: the original's training flag and `/v1/model`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppError;
use crate::model::Model;
use crate::state::AppState;

/// `GET /training_flag`: `{"training_flag": 1}` once a model exists and no training runs.
pub async fn training_flag(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "training_flag": state.training_flag() }))
}

/// `GET /v1/model`: the served model with its parameters, loss history and metrics.
#[tracing::instrument(skip_all)]
pub async fn current_model(State(state): State<AppState>) -> Result<Json<Arc<Model>>, AppError> {
    state.model().map(Json).ok_or_else(no_model)
}

/// The answer to any request that needs a model before one was trained.
pub fn no_model() -> AppError {
    AppError::new(StatusCode::CONFLICT, "no model has been trained yet: POST /train first")
}
