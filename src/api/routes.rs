//! Every route, declared with the [`Class`] that says who may call it and what it may hold: the
//! one place where a route's access rule and limits are written. The front layer looks the class
//! up by the route template and method that matched.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::routing::{MethodRouter, delete, get, post, put};
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutLayer;

use super::access::Need;
use super::{
    ApiState, data, data_ws, dataset, health, jobs, kserve, mlflow, model_events, models, observe, openapi,
    page, predict, predict_ws, tf_serving, train, triggers, upload,
};

/// What a route is, for access and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The page and its assets: open to everyone.
    Page,
    /// Health probes and metrics: open, and outside every limit, so that they answer under load.
    Probe,
    /// Predictions and the reads: the read token.
    Read,
    /// Event streams, downloads and the prediction WebSocket: the read token; they hold a
    /// stream slot until they end.
    Stream,
    /// Quick state changes (activate, cancel): the admin token, from no other site's page.
    Change,
    /// `/train`, which may wait for the fit: as [`Class::Change`], without the request timeout.
    Train,
    /// `/upload`: as [`Class::Train`], under an upload slot, its body streamed by the handler.
    Upload,
    /// The WebSocket intake: the admin token, under a stream slot for as long as it is open.
    Feed,
}

/// The limit a request of a class counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A request slot, held until the answer is ready.
    Request,
    /// A stream slot, held until the answer has been sent.
    Stream,
    /// An upload slot, held until the upload has been stored or refused.
    Upload,
}

impl Class {
    pub fn need(self) -> Need {
        match self {
            Class::Page | Class::Probe => Need::Open,
            Class::Read | Class::Stream => Need::Read,
            Class::Change | Class::Train | Class::Upload | Class::Feed => Need::Admin,
        }
    }

    /// Whether the route changes the state: served only on the admin listener when there is
    /// one, and refused to pages of other origins.
    pub fn changes_state(self) -> bool {
        self.need() == Need::Admin
    }

    /// The limit it counts against, if any.
    pub fn slot(self) -> Option<Slot> {
        match self {
            Class::Probe => None,
            Class::Stream | Class::Feed => Some(Slot::Stream),
            Class::Upload => Some(Slot::Upload),
            Class::Page | Class::Read | Class::Change | Class::Train => Some(Slot::Request),
        }
    }

    /// Whether the body is received whole before the request takes its slot (so that a client
    /// sending slowly holds no slot); an upload streams its body to disk instead.
    pub fn receives_body_first(self) -> bool {
        self != Class::Upload
    }

    /// Whether `--request-timeout` bounds the time to answer.
    pub fn timed(self) -> bool {
        matches!(self, Class::Page | Class::Probe | Class::Read | Class::Change)
    }
}

/// The class of each route template and method.
#[derive(Debug, Default)]
pub struct Classes {
    by_route: HashMap<&'static str, Vec<(Method, Class)>>,
}

impl Classes {
    /// The template as this table holds it, for a route that matched.
    pub fn template(&self, route: &str) -> Option<&'static str> {
        self.by_route.get_key_value(route).map(|(template, _)| *template)
    }

    /// Every route as `METHOD /template`, sorted by template.
    pub fn listing(&self) -> Vec<String> {
        let mut routes: Vec<(&str, &Method)> = self
            .by_route
            .iter()
            .flat_map(|(route, methods)| methods.iter().map(|(method, _)| (*route, method)))
            .collect();
        routes.sort_by(|a, b| (a.0, a.1.as_str()).cmp(&(b.0, b.1.as_str())));
        routes.into_iter().map(|(route, method)| format!("{method} {route}")).collect()
    }

    /// The class of a matched route (`HEAD` is classed as `GET`); `None` for requests no route
    /// serves (404, 405), which need nothing.
    pub fn of(&self, method: &Method, route: Option<&str>) -> Option<Class> {
        let method = if method == Method::HEAD { &Method::GET } else { method };
        let methods = self.by_route.get(route?)?;
        methods.iter().find(|(each, _)| each == method).map(|(_, class)| *class)
    }

    /// Every route: its method, template and class.
    pub fn iter(&self) -> impl Iterator<Item = (&Method, &'static str, Class)> {
        self.by_route
            .iter()
            .flat_map(|(template, methods)| methods.iter().map(|(method, class)| (method, *template, *class)))
    }
}

/// The routes of the service and their classes. On a predictor (`predicts_only`) the reads only
/// the trainer answers are passed on to it.
pub fn routes(request_timeout: Duration, predicts_only: bool) -> (Router<ApiState>, Arc<Classes>) {
    let mut table =
        Table { router: Router::new(), classes: Classes::default(), request_timeout, predicts_only };
    table.add(Class::Page, Method::GET, "/", get(page::index));
    table.add(Class::Page, Method::GET, "/static/{file}", get(page::asset));
    table.add(Class::Probe, Method::GET, "/healthz", get(health::healthz));
    table.add(Class::Probe, Method::GET, "/readyz", get(health::readyz));
    table.add(Class::Probe, Method::GET, "/metrics", get(observe::metrics));
    table.add(Class::Read, Method::GET, "/v1", get(super::service_routes));
    table.add(Class::Read, Method::GET, "/openapi.json", get(openapi::document));
    table.add(Class::Read, Method::GET, "/training_flag", get(models::training_flag));
    table.add(Class::Read, Method::POST, "/predict", post(predict::predict));
    table.add(Class::Stream, Method::GET, "/v1/predict/ws", get(predict_ws::predict));
    table.add(Class::Read, Method::GET, "/v1/model", get(models::current_model));
    table.add(Class::Read, Method::GET, "/v1/models", get(models::list));
    table.add_trainers(Class::Stream, "/v1/models/events", get(model_events::events));
    table.add(Class::Read, Method::GET, "/v1/nodes", get(super::nodes::list));
    table.add(Class::Read, Method::GET, "/v1/models/{name}", get(tf_serving::status));
    table.add(Class::Read, Method::POST, "/v1/models/{name}", post(tf_serving::predict));
    table.add(Class::Read, Method::GET, "/v1/models/{name}/metadata", get(tf_serving::metadata));
    table.add(Class::Read, Method::GET, "/v1/models/{name}/versions", get(models::versions));
    table.add(Class::Read, Method::GET, "/v1/models/{name}/versions/{version}", get(models::get));
    table.add(
        Class::Read,
        Method::POST,
        "/v1/models/{name}/versions/{version}",
        post(tf_serving::predict_version),
    );
    let version_metadata = get(tf_serving::version_metadata);
    table.add(Class::Read, Method::GET, "/v1/models/{name}/versions/{version}/metadata", version_metadata);
    let activate = post(models::activate);
    table.add(Class::Change, Method::POST, "/v1/models/{name}/versions/{version}/activate", activate);
    table.add(Class::Read, Method::POST, "/invocations", post(mlflow::invocations));
    table.add(Class::Probe, Method::GET, "/ping", get(mlflow::ping));
    table.add(Class::Probe, Method::GET, "/health", get(mlflow::health));
    table.add(Class::Read, Method::GET, "/version", get(mlflow::version));
    table.add_trainers(Class::Read, "/v1/jobs", get(jobs::list));
    table.add_trainers(Class::Read, "/v1/jobs/{id}", get(jobs::get));
    table.add(Class::Change, Method::DELETE, "/v1/jobs/{id}", delete(jobs::cancel));
    table.add_trainers(Class::Stream, "/v1/jobs/{id}/events", get(jobs::events));
    table.add_trainers(Class::Read, "/v1/dataset", get(dataset::summary));
    table.add_trainers(Class::Stream, "/v1/dataset.csv", get(dataset::download));
    table.add_trainers(Class::Read, "/v1/dataset/rows", get(dataset::rows));
    table.add(Class::Change, Method::POST, "/v1/data", post(data::append));
    table.add(Class::Change, Method::DELETE, "/v1/data", delete(data::clear));
    table.add(Class::Feed, Method::GET, "/v1/data/ws", get(data_ws::feed));
    table.add(Class::Train, Method::POST, "/train", post(train::train));
    table.add_trainers(Class::Read, "/v1/triggers", get(triggers::list));
    table.add(Class::Change, Method::PUT, "/v1/triggers", put(triggers::replace));
    table.add(Class::Change, Method::POST, "/v1/triggers/webhook", post(triggers::webhook));
    table.add(Class::Change, Method::POST, "/v1/triggers/{name}/fire", post(triggers::fire_one));
    table.add(Class::Probe, Method::GET, "/v2/health/live", get(kserve::live));
    table.add(Class::Probe, Method::GET, "/v2/health/ready", get(kserve::server_ready));
    table.add(Class::Read, Method::GET, "/v2", get(kserve::server_metadata));
    table.add(Class::Read, Method::GET, "/v2/models/{name}", get(kserve::model_metadata));
    table.add(Class::Read, Method::GET, "/v2/models/{name}/ready", get(kserve::model_ready));
    table.add(Class::Read, Method::POST, "/v2/models/{name}/infer", post(kserve::model_infer));
    table.add(
        Class::Read,
        Method::GET,
        "/v2/models/{name}/versions/{version}",
        get(kserve::version_metadata),
    );
    table.add(
        Class::Read,
        Method::GET,
        "/v2/models/{name}/versions/{version}/ready",
        get(kserve::version_ready),
    );
    table.add(
        Class::Read,
        Method::POST,
        "/v2/models/{name}/versions/{version}/infer",
        post(kserve::version_infer),
    );
    let upload = post(upload::upload.layer(DefaultBodyLimit::disable()));
    table.add(Class::Upload, Method::POST, "/upload", upload);
    (table.router, Arc::new(table.classes))
}

/// The routes being declared, and their classes.
struct Table {
    router: Router<ApiState>,
    classes: Classes,
    request_timeout: Duration,
    predicts_only: bool,
}

impl Table {
    /// A `GET` route of the trainer's: served here, or passed on to the trainer by a predictor.
    fn add_trainers(&mut self, class: Class, path: &'static str, route: MethodRouter<ApiState>) {
        let route = match self.predicts_only {
            true => get(super::forward::to_trainer),
            false => route,
        };
        self.add(class, Method::GET, path, route);
    }

    fn add(&mut self, class: Class, method: Method, path: &'static str, route: MethodRouter<ApiState>) {
        self.classes.by_route.entry(path).or_default().push((method, class));
        let route = match class.timed() {
            true => route.layer(
                ServiceBuilder::new()
                    .map_response(super::timeout_as_json(self.request_timeout))
                    .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, self.request_timeout)),
            ),
            false => route,
        };
        self.router = std::mem::take(&mut self.router).route(path, route);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classed_by_method_and_template() {
        let (_, classes) = routes(Duration::from_secs(1), false);
        let class = |method: Method, route: &str| classes.of(&method, Some(route));
        assert_eq!(class(Method::POST, "/upload"), Some(Class::Upload));
        assert_eq!(class(Method::POST, "/train"), Some(Class::Train));
        assert_eq!(class(Method::DELETE, "/v1/jobs/{id}"), Some(Class::Change));
        assert_eq!(class(Method::POST, "/v1/models/{name}/versions/{version}/activate"), Some(Class::Change));
        assert_eq!(class(Method::POST, "/v1/models/{name}/versions/{version}"), Some(Class::Read));
        assert_eq!(class(Method::POST, "/invocations"), Some(Class::Read));
        assert_eq!(class(Method::GET, "/v1/jobs/{id}"), Some(Class::Read));
        assert_eq!(class(Method::HEAD, "/v1/jobs/{id}"), Some(Class::Read));
        assert_eq!(class(Method::POST, "/predict"), Some(Class::Read));
        assert_eq!(class(Method::GET, "/upload"), None, "405, not 401");
        assert_eq!(class(Method::GET, "/healthz"), Some(Class::Probe));
        assert_eq!(class(Method::GET, "/v2/health/ready"), Some(Class::Probe));
        assert_eq!(class(Method::POST, "/v2/models/{name}/versions/{version}/infer"), Some(Class::Read));
        assert_eq!(classes.of(&Method::GET, None), None);
        let listing = classes.listing();
        assert!(listing.contains(&"POST /v1/triggers/{name}/fire".to_owned()), "{listing:?}");
        assert_eq!(listing.len(), classes.by_route.values().map(Vec::len).sum::<usize>());
        let changes: Vec<_> = classes
            .iter()
            .filter(|(_, _, class)| class.changes_state())
            .map(|(method, route, _)| format!("{method} {route}"))
            .collect();
        assert_eq!(
            changes.len(),
            10,
            "exactly upload, train, cancel, activate, append (HTTP and WebSocket), reset, and setting and firing triggers change the state: {changes:?}"
        );
    }
}
