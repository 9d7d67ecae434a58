//! The HTTP interface: the original Flask routes, regserve's `/v1` routes, and the layers
//! (request ids, tracing, metrics, access control, limits, timeouts, panic recovery, CORS)
//! composed in one place.

mod access;
mod body;
mod budget;
mod data;
mod data_ws;
mod dataset;
mod error;
mod forward;
mod front;
mod gate;
mod health;
mod jobs;
mod kserve;
mod mlflow;
mod model_events;
mod models;
mod nodes;
mod observe;
mod openapi;
mod page;
mod predict;
mod predict_ws;
mod routes;
mod rows;
pub mod server;
mod tf_serving;
mod train;
mod triggers;
mod upload;
mod ws;

pub use access::Hosts;
pub use budget::Budget;
pub use error::AppError;
pub use forward::TrainerLink;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRef, FromRequest, FromRequestParts, MatchedPath, State};
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::ServiceBuilderExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use self::routes::Classes;
use crate::nodes::Directory;
use crate::settings::{Access, Role};
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
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub access: Access,
    /// Origins allowed to make cross-origin requests (and state changes); none turns CORS off.
    pub cors_origins: Vec<String>,
    /// The host names the listeners answer to.
    pub hosts: Hosts,
    /// On a predictor, the trainer to pass its reads to.
    pub trainer: Option<TrainerLink>,
    /// This node's id among the nodes.
    pub node_id: String,
    /// Cancelled when the server stops: the WebSockets end then.
    pub stop: CancellationToken,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            access: Access::default(),
            cors_origins: Vec::new(),
            hosts: Hosts::any(),
            trainer: None,
            node_id: String::new(),
            stop: CancellationToken::new(),
        }
    }
}

/// What the handlers work on: the service's state, and the memory budget of the HTTP layer.
#[derive(Clone)]
pub struct ApiState {
    pub app: AppState,
    pub budget: Budget,
    pub trainer: Option<TrainerLink>,
    /// The other nodes, as their heartbeats say, and this node's id among them.
    pub nodes: Arc<Directory>,
    pub node_id: String,
    /// The route table, for listing the routes.
    pub routes: Arc<Classes>,
    /// The server's stop signal, which the WebSocket sessions end on.
    pub stop: Stopping,
}

/// The server's stop signal, for the streams that end with it.
#[derive(Clone)]
pub struct Stopping(pub CancellationToken);

impl FromRef<ApiState> for Stopping {
    fn from_ref(state: &ApiState) -> Self {
        state.stop.clone()
    }
}

impl FromRef<ApiState> for AppState {
    fn from_ref(state: &ApiState) -> Self {
        state.app.clone()
    }
}

impl FromRef<ApiState> for Arc<Classes> {
    fn from_ref(state: &ApiState) -> Self {
        state.routes.clone()
    }
}

impl FromRef<ApiState> for Budget {
    fn from_ref(state: &ApiState) -> Self {
        state.budget.clone()
    }
}

/// The whole service as a router, open to everyone, ready to serve or to call in tests.
pub fn app(state: AppState) -> Router {
    let budget = Budget::new(state.limits().max_buffered_bytes);
    router(state, &HttpOptions::default(), Listener::Full, budget)
}

/// The service as one listener serves it, with the limits of `state`, the access rules of
/// `options`, and `budget` (shared by the listeners) for the memory of requests in flight.
pub fn router(state: AppState, options: &HttpOptions, listener: Listener, budget: Budget) -> Router {
    let limits = state.limits();
    let predicts_only = state.role() == Role::Predictor;
    let (routes, classes) = routes::routes(limits.request_timeout, predicts_only);
    let changes = match (predicts_only, listener) {
        (true, _) => gate::Changes::RefusedByPredictor {
            trainer_url: options.trainer.as_ref().map(|trainer| trainer.url().to_owned()),
        },
        (false, Listener::Full) => gate::Changes::Served,
        (false, Listener::Public) => gate::Changes::OnlyOnAdminListener,
    };
    let gate = gate::Gate::new(
        classes.clone(),
        access::Tokens::new(&options.access),
        options.hosts.clone(),
        options.cors_origins.clone(),
        changes,
        &limits,
        budget.clone(),
        state.metrics().in_flight().clone(),
    );
    // One layer call, so that the stack is boxed once per request rather than once per layer.
    // From the outside in: request id and tracing, panic recovery, the front layer (gate, body,
    // slots, metrics), the body size limit of the extractors.
    let router = routes.fallback(not_found).method_not_allowed_fallback(method_not_allowed).layer(
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
            .layer(DefaultBodyLimit::max(limits.max_body_bytes)),
    );
    match cors(&options.cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    }
    .with_state(ApiState {
        app: state,
        budget,
        trainer: options.trainer.clone(),
        nodes: Arc::new(Directory::default()),
        node_id: options.node_id.clone(),
        routes: classes,
        stop: Stopping(options.stop.clone()),
    })
}

/// JSON body extractor whose rejections use the service's error shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct AppJson<T>(pub T);

/// Path parameter extractor whose rejections use the service's error shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct AppPath<T>(pub T);

/// What `GET /v1` answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ServiceRoutes {
    #[schema(value_type = String)]
    service: &'static str,
    #[schema(value_type = String)]
    version: &'static str,
    /// The model's name (`--model-name`), by which the standard protocols address it.
    model: String,
    /// `METHOD /template` of each route, as the route table declares them, for people.
    routes: Vec<String>,
}

/// `GET /v1`: what this service is, its model's name, and the routes it answers.
#[utoipa::path(get, path = "/v1", tag = "service",
    responses((status = 200, description = "The service and its routes", body = ServiceRoutes)))]
async fn service_routes(
    State(state): State<AppState>,
    State(routes): State<Arc<Classes>>,
) -> Json<ServiceRoutes> {
    Json(ServiceRoutes {
        service: "regserve",
        version: env!("CARGO_PKG_VERSION"),
        model: state.serving().name().to_owned(),
        routes: routes.listing(),
    })
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

/// The answer when a blocking task could not finish.
pub fn join_error(error: tokio::task::JoinError) -> AppError {
    AppError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("background task failed: {error}"))
}

/// Turns the empty 408 of the request timeout into the service's JSON error.
fn timeout_as_json(timeout: Duration) -> impl Fn(Response) -> Response + Clone {
    move |response: Response| {
        if response.status() != StatusCode::REQUEST_TIMEOUT
            || response.headers().contains_key(header::CONTENT_TYPE)
        {
            return response;
        }
        let message = format!(
            "the request took longer than {} to answer (--request-timeout)",
            crate::units::short_duration(timeout)
        );
        AppError::new(StatusCode::REQUEST_TIMEOUT, message).into_response()
    }
}

/// CORS for the listed origins, or `None` (no CORS headers at all) when there are none.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> =
        origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_NONE_MATCH,
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([
                header::LOCATION,
                header::ETAG,
                header::RETRY_AFTER,
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}
