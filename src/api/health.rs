//! Liveness and readiness for orchestrators and load balancers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppError;
use crate::state::AppState;

/// `GET /healthz`: the process is up and answering. Also the cheapest route there is.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 once a model is loaded and predictions can be answered, 503 with the
/// reason before.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    match state.model() {
        Some(model) => Ok(Json(json!({ "status": "ready", "model_version": model.version() }))),
        None => Err(AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no model is loaded yet (train one with POST /train)",
        )),
    }
}
