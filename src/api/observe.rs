//! `GET /metrics`: the Prometheus metrics in the text format. Requests are counted by
//! [`super::front`].

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::metrics::CONTENT_TYPE;
use crate::state::AppState;

/// `GET /metrics`: every metric, with the served model's version and age and the dataset's
/// rows as they are now.
#[utoipa::path(get, path = "/metrics", tag = "probes",
    responses((status = 200, description = "The metrics in Prometheus' text format",
        content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE), (header::CACHE_CONTROL, "no-store")], state.render_metrics())
        .into_response()
}
