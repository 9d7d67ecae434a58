//! The HTTP interface: the original Flask routes, regserve's `/v1` routes, and the layers
//! (request ids, tracing, body limits, panic recovery) composed in one place.

mod dataset;
mod error;
mod health;
mod jobs;
mod models;
mod page;
mod predict;
mod train;
mod upload;

pub use error::AppError;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts};
use axum::http::{Method, Request, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::ServiceBuilderExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::state::AppState;

/// The whole service as a router, ready to serve or to call in tests.
pub fn app(state: AppState) -> Router {
    let max_body = state.limits().max_body_bytes;
    Router::new()
        .route("/", get(page::index))
        .route("/v1", get(routes))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/upload", post(upload::upload).layer(DefaultBodyLimit::disable()))
        .route("/train", post(train::train))
        .route("/training_flag", get(models::training_flag))
        .route("/predict", post(predict::predict))
        .route("/v1/model", get(models::current_model))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{version}", get(models::get))
        .route("/v1/models/{version}/activate", post(models::activate))
        .route("/v1/jobs", get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route("/v1/jobs/{id}/events", get(jobs::events))
        .route("/v1/dataset", get(dataset::summary))
        .route("/v1/dataset.csv", get(dataset::download))
        .route("/v1/dataset/rows", get(dataset::rows))
        .route("/static/{file}", get(page::asset))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(
            ServiceBuilder::new()
                .set_x_request_id(tower_http::request_id::MakeRequestUuid)
                .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                    let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), id)
                }))
                .propagate_x_request_id()
                .layer(CatchPanicLayer::custom(|_| {
                    AppError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
                })),
        )
        .with_state(state)
}

/// JSON body extractor whose rejections use the service's error shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct AppJson<T>(pub T);

/// Path parameter extractor whose rejections use the service's error shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct AppPath<T>(pub T);

/// `GET /v1`: what this service is and the routes it answers.
async fn routes() -> Json<serde_json::Value> {
    Json(json!({
        "service": "regserve",
        "version": env!("CARGO_PKG_VERSION"),
        "routes": [
            "POST /upload", "POST /train", "GET /training_flag", "POST /predict", "GET /healthz", "GET /readyz",
            "GET /v1/model", "GET /v1/models", "GET /v1/models/{version}", "POST /v1/models/{version}/activate",
            "GET /v1/jobs", "GET /v1/jobs/{id}", "DELETE /v1/jobs/{id}", "GET /v1/jobs/{id}/events",
            "GET /v1/dataset", "GET /v1/dataset.csv", "GET /v1/dataset/rows",
        ],
    }))
}

async fn not_found(uri: Uri) -> AppError {
    AppError::new(axum::http::StatusCode::NOT_FOUND, format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    AppError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
    .into_response()
}
