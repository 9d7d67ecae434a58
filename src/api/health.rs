//! Liveness and readiness for orchestrators and load balancers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppError;
use crate::state::AppState;

/// `GET /healthz`: the process is up and answering (always 200): its `role`, its `store` and
/// whether that answers (as the node last found it). `status` is `ok`, or `degraded` with the
/// `problems` found (the store not answering, a stored model version that cannot be read, an
/// active version that cannot be served).
pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let unreachable = state.store_health().unreachable();
    let mut problems = state.models().problems();
    let mut store = json!({ "name": state.store().name(), "reachable": unreachable.is_none() });
    if let Some(outage) = &unreachable {
        let seconds = (outage.for_.as_secs_f64() * 10.0).round() / 10.0;
        store["unreachable_for_seconds"] = json!(seconds);
        problems.insert(
            0,
            format!(
                "the store has not answered for {seconds} s (serving the last good model): {}",
                outage.error
            ),
        );
    }
    let status = if problems.is_empty() { "ok" } else { "degraded" };
    let mut answer = json!({ "status": status, "role": state.role().as_str(), "store": store });
    if !problems.is_empty() {
        answer["problems"] = json!(problems);
    }
    Json(answer)
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
