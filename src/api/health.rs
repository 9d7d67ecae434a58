//! Liveness and readiness for orchestrators and load balancers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppError;
use crate::state::AppState;

/// `GET /healthz`: the process is up and answering (always 200). `status` is `ok`, or
/// `degraded` with the `problems` found (a stored model version that cannot be read, an active
/// version that cannot be served).
pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let problems = state.models().problems();
    if problems.is_empty() {
        return Json(json!({ "status": "ok" }));
    }
    Json(json!({ "status": "degraded", "problems": problems }))
}

/// `GET /readyz`: 200 once a model is loaded and predictions can be answered, 503 with the
/// reason before.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    match state.model() {
        Some(model) => Ok(Json(json!({ "status": "ready", "model_version": model.version() }))),
        None => {
            let reason = (state.models().active_unavailable())
                .unwrap_or_else(|| "no model is loaded yet (train one with POST /train)".to_owned());
            Err(AppError::new(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}")))
        }
    }
}
