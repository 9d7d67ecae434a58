//! Liveness and readiness for orchestrators and load balancers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::AppError;
use super::error::ErrorBody;
use crate::state::AppState;

/// What `GET /healthz` answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when there are `problems`.
    #[schema(value_type = String, pattern = "^(ok|degraded)$")]
    status: &'static str,
    /// `trainer` or `predictor`.
    #[schema(value_type = String)]
    role: &'static str,
    store: StoreHealth,
    /// What is wrong, when the status is `degraded`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<String>,
}

/// The store, as the node last found it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StoreHealth {
    name: String,
    reachable: bool,
    /// How long it has not answered, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    unreachable_for_seconds: Option<f64>,
}

/// What `GET /readyz` answers once a model is loaded.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Ready {
    #[schema(value_type = String, pattern = "^ready$")]
    status: &'static str,
    model_version: u64,
}

/// `GET /healthz`: the process is up and answering (always 200): its `role`, its `store` and
/// whether that answers (as the node last found it). `status` is `ok`, or `degraded` with the
/// `problems` found (the store not answering, a stored model version that cannot be read, an
/// active version that cannot be served).
#[utoipa::path(get, path = "/healthz", tag = "probes",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> Json<Health> {
    let unreachable = state.store_health().unreachable();
    let mut problems = state.models().problems();
    let mut store = StoreHealth {
        name: state.store().name().to_owned(),
        reachable: unreachable.is_none(),
        unreachable_for_seconds: None,
    };
    if let Some(outage) = &unreachable {
        let seconds = (outage.for_.as_secs_f64() * 10.0).round() / 10.0;
        store.unreachable_for_seconds = Some(seconds);
        problems.insert(
            0,
            format!(
                "the store has not answered for {seconds} s (serving the last good model): {}",
                outage.error
            ),
        );
    }
    let status = if problems.is_empty() { "ok" } else { "degraded" };
    Json(Health { status, role: state.role().as_str(), store, problems })
}

/// `GET /readyz`: 200 once a model is loaded and predictions can be answered, 503 with the
/// reason before.
#[utoipa::path(get, path = "/readyz", tag = "probes",
    responses(
        (status = 200, description = "Predictions can be answered", body = Ready),
        (status = 503, description = "No model is loaded yet, or the active one cannot be served", body = ErrorBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>, AppError> {
    match state.model() {
        Some(model) => Ok(Json(Ready { status: "ready", model_version: model.version() })),
        None => {
            let reason = (state.models().active_unavailable())
                .unwrap_or_else(|| "no model is loaded yet (train one with POST /train)".to_owned());
            Err(AppError::new(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}")))
        }
    }
}
