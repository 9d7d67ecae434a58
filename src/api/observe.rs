//! Observability over HTTP: every request counted by route and status with its latency, and
//! `GET /metrics` in the Prometheus text format.

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::metrics::CONTENT_TYPE;
use crate::state::AppState;

/// Middleware: records the request in the metrics once its response head is ready.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    state.metrics().record_request(&method, route, response.status().as_u16(), started.elapsed());
    response
}

/// `GET /metrics`: every metric, with the served model's version and age and the dataset's
/// rows as they are now.
pub async fn metrics(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE), (header::CACHE_CONTROL, "no-store")], state.render_metrics())
        .into_response()
}
