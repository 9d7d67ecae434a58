//! The HTTP interface: the original Flask routes, regserve's `/v1` routes, and the layers
//! (request ids, tracing, metrics, access control, limits, timeouts, panic recovery, CORS)
//! composed in one place.

mod dataset;
mod error;
mod front;
mod health;
mod jobs;
mod models;
mod observe;
mod page;
mod predict;
pub mod security;
mod train;
mod upload;

pub use error::AppError;

use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath};
use axum::http::{Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::ServiceBuilderExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutBody, TimeoutLayer};
use tower_http::trace::TraceLayer;

use crate::config::Access;
use crate::state::AppState;

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Every route: the only listener, or the admin listener.
    Full,
    /// Every route but the state-changing ones, which answer 403: the main listener when an
    /// admin listener exists.
    Public,
}

/// Settings of the HTTP layer that come from the configuration rather than the state.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    pub access: Access,
    /// Origins allowed to make cross-origin requests; none turns CORS off.
    pub cors_origins: Vec<String>,
}

/// The whole service as a router, open to everyone, ready to serve or to call in tests.
pub fn app(state: AppState) -> Router {
    router(state, &HttpOptions::default(), Listener::Full)
}

/// The service as one listener serves it, with the limits of `state` and the access rules of
/// `options`.
pub fn router(state: AppState, options: &HttpOptions, listener: Listener) -> Router {
    let limits = state.limits();
    let max_body = limits.max_body_bytes;
    // Routes that answer quickly, so a request that takes too long is cut off (408).
    let quick = Router::new()
        .route("/", get(page::index))
        .route("/v1", get(routes))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(observe::metrics))
        .route("/training_flag", get(models::training_flag))
        .route("/predict", post(predict::predict))
        .route("/v1/model", get(models::current_model))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{version}", get(models::get))
        .route("/v1/models/{version}/activate", post(models::activate))
        .route("/v1/jobs", get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route("/v1/dataset", get(dataset::summary))
        .route("/v1/dataset.csv", get(dataset::download))
        .route("/v1/dataset/rows", get(dataset::rows))
        .route("/static/{file}", get(page::asset))
        .layer(
            ServiceBuilder::new()
                .map_response(security::timeout_as_json(limits.request_timeout))
                .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout)),
        );
    // Routes that legitimately run long: uploads, `/train?wait=true` and event streams.
    let long = Router::new()
        .route("/upload", post(upload::upload).layer(DefaultBodyLimit::disable()))
        .route("/train", post(train::train))
        .route("/v1/jobs/{id}/events", get(jobs::events));
    let gate = security::Gate::new(
        security::Tokens::new(&options.access),
        listener == Listener::Full,
        limits.max_concurrent,
        state.metrics().in_flight().clone(),
    );
    // One layer call, so that the stack is boxed once per request rather than once per layer.
    // From the outside in: request id and tracing, panic recovery, the gate (listener, token,
    // in-flight limit) with the metrics, the body idle timeout, the body size limit.
    let router = quick.merge(long).fallback(not_found).method_not_allowed_fallback(method_not_allowed).layer(
        ServiceBuilder::new()
            .set_x_request_id(tower_http::request_id::MakeRequestUuid)
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|request: &Request<_>| {
                        let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                        let route = request.extensions().get::<MatchedPath>().map_or("", MatchedPath::as_str);
                        tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), route = %route, id)
                    })
                    .on_response(|response: &Response<_>, latency: Duration, _: &tracing::Span| {
                        tracing::info!(
                            status = response.status().as_u16(),
                            latency_ms = latency.as_secs_f64() * 1e3,
                            "request finished"
                        );
                    })
                    // The line above has the status, and errors log their own message.
                    .on_failure(()),
            )
            .propagate_x_request_id()
            .layer(CatchPanicLayer::custom(|_| {
                AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }))
            .layer(front::FrontLayer::new(gate, state.clone()))
            .layer(RequestBodyTimeoutLayer::new(limits.body_idle_timeout))
            .map_request(|request: Request<TimeoutBody<Body>>| request.map(Body::new))
            .layer(DefaultBodyLimit::max(max_body)),
    );
    match security::cors(&options.cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    }
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
            "GET /metrics",
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
