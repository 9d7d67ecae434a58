//! The OpenAPI 3.1 document of every route, generated from the handlers' `#[utoipa::path]`
//! annotations (`paths(...)` below is the one list of them), and `GET /openapi.json` serving it.
//! The answers every route can get from the layers in front of its handler (the gate's 401,
//! 403, 421 and 503, the body's 408 and 413) and each route's security are added from the route
//! table, by the route's [`Class`], rather than written on each path.

use std::sync::LazyLock;
use std::time::Duration;

use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, ResponseBuilder};

use super::access::Need;
use super::error::ErrorBody;
use super::routes::{Class, Slot};
use super::{
    data, dataset, health, jobs, model_events, models, nodes, observe, page, predict, train, triggers,
};
use super::{data_ws, kserve, mlflow, predict_ws, tf_serving, upload};

/// The document. Handlers of new routes are added to `paths(...)`, and the unit test below fails
/// until every route of the table is in it.
#[derive(OpenApi)]
#[openapi(
    info(title = "regserve", description = "Trains and serves a linear-regression model over HTTP."),
    paths(
        page::index, page::asset,
        health::healthz, health::readyz, observe::metrics,
        super::service_routes, document,
        models::training_flag, predict::predict, models::current_model, models::list, models::get,
        models::activate, model_events::events, nodes::list,
        jobs::list, jobs::get, jobs::cancel, jobs::events,
        dataset::summary, dataset::download, dataset::rows,
        data::append, data::clear, data_ws::feed, upload::upload, train::train,
        triggers::list, triggers::replace, triggers::webhook, triggers::fire_one,
        models::versions, predict_ws::predict,
        kserve::server_metadata, kserve::live, kserve::server_ready, kserve::model_metadata,
        kserve::version_metadata, kserve::model_ready, kserve::version_ready, kserve::model_infer,
        kserve::version_infer,
        tf_serving::status, tf_serving::metadata, tf_serving::version_metadata, tf_serving::predict,
        tf_serving::predict_version,
        mlflow::invocations, mlflow::ping, mlflow::health, mlflow::version,
    ),
    components(schemas(ErrorBody)),
    modifiers(&FrontAnswers),
)]
struct ApiDoc;

/// `GET /openapi.json`: this document. Classed as a read ([`Class::Read`]), as `GET /v1` is:
/// a client discovers the API with the credentials it will call it with, the document names
/// every route as `/v1` does, and it is no probe (orchestrators never ask for it, so it need not
/// answer outside the limits).
#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
pub async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_str()).into_response()
}

/// The document as JSON, built once.
static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serialises"));

/// Adds to each operation what the front layers answer for its class, and its security.
struct FrontAnswers;

impl utoipa::Modify for FrontAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, description) in TOKENS {
            let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(description));
            components.add_security_scheme(name, SecurityScheme::Http(scheme.build()));
        }
        let (_, classes) = super::routes::routes(Duration::from_secs(1), false);
        for (method, template, class) in classes.iter() {
            let operation = openapi.paths.paths.get_mut(template).and_then(|item| operation(item, method));
            if let Some(operation) = operation {
                add_front_answers(operation, method, class);
            }
        }
    }
}

/// The security schemes: the names the operations' requirements use, and what they are.
const TOKENS: [(&str, &str); 2] = [
    ("read_token", "`--read-token`: predictions and the reads need it (or the admin token) when it is set"),
    (
        "admin_token",
        "`--admin-token`: the routes that change the state need it when it is set (the read token when only that one is set)",
    ),
];

fn operation<'a>(item: &'a mut PathItem, method: &Method) -> Option<&'a mut Operation> {
    match *method {
        Method::GET => item.get.as_mut(),
        Method::POST => item.post.as_mut(),
        Method::PUT => item.put.as_mut(),
        Method::DELETE => item.delete.as_mut(),
        _ => None,
    }
}

/// The refusals of the gate (src/api/gate.rs), the body (src/api/front.rs) and the budget
/// (src/api/budget.rs) that can reach a route of `class`, and the tokens it takes.
fn add_front_answers(operation: &mut Operation, method: &Method, class: Class) {
    let mut answers: Vec<(&str, &str)> =
        vec![("421", "The `Host` header names a host this server does not answer to")];
    match class.need() {
        Need::Open => {}
        Need::Read => {
            operation.security = Some(vec![
                SecurityRequirement::new("read_token", Vec::<String>::new()),
                SecurityRequirement::new("admin_token", Vec::<String>::new()),
            ]);
            answers.push(("401", "The route needs a token the request does not carry"));
        }
        Need::Admin => {
            operation.security = Some(vec![SecurityRequirement::new("admin_token", Vec::<String>::new())]);
            answers.push(("401", "The route needs the admin token"));
            answers.push((
                "403",
                "A state change on the public listener of a server with `--admin-addr`, on a predictor, or from a page of another origin",
            ));
        }
    }
    let has_body = [Method::POST, Method::PUT].contains(method);
    if has_body && class.receives_body_first() {
        answers.push(("413", "The body is larger than `--max-body`"));
        answers.push(("408", "The body arrived too slowly"));
    }
    if class.timed() {
        answers.push(("408", "The answer took longer than `--request-timeout`"));
    }
    match class.slot() {
        Some(Slot::Request | Slot::Stream | Slot::Upload) => {
            answers.push(("503", "The server is at a limit (requests, streams, uploads or memory); `Retry-After` says when to try again"));
        }
        None => {}
    }
    for (status, description) in answers {
        if !operation.responses.responses.contains_key(status) {
            operation.responses.responses.insert(status.to_owned(), error_answer(status, description).into());
        }
    }
}

/// An answer with the service's error body (`Retry-After` on a 503).
fn error_answer(status: &str, description: &str) -> utoipa::openapi::Response {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    let answer = ResponseBuilder::new().description(description).content("application/json", content);
    match status {
        "503" => answer.header("Retry-After", HeaderBuilder::new().description(Some("seconds")).build()),
        _ => answer,
    }
    .build()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn documented() -> BTreeSet<(String, String)> {
        let document: serde_json::Value = serde_json::from_str(&DOCUMENT).unwrap();
        let paths = document["paths"].as_object().unwrap();
        paths
            .iter()
            .flat_map(|(path, item)| {
                // TF Serving's `{name}:predict` is routed as `{name}`, its verb split off by the handler.
                let template = path.strip_suffix(":predict").unwrap_or(path).to_owned();
                item.as_object().unwrap().keys().map(move |method| (method.to_uppercase(), template.clone()))
            })
            .collect()
    }

    #[test]
    fn every_route_is_documented_and_every_operation_is_a_route() {
        let (_, classes) = super::super::routes::routes(Duration::from_secs(1), false);
        let routes: BTreeSet<(String, String)> =
            classes.iter().map(|(method, template, _)| (method.to_string(), template.to_owned())).collect();
        let documented = documented();
        let undocumented: Vec<_> = routes.difference(&documented).collect();
        let not_routes: Vec<_> = documented.difference(&routes).collect();
        assert!(undocumented.is_empty(), "routes missing from the OpenAPI document: {undocumented:?}");
        assert!(not_routes.is_empty(), "documented operations no route serves: {not_routes:?}");
        assert!(routes.len() >= 31, "the table has every route: {routes:?}");
    }

    #[test]
    fn the_document_names_the_service_its_tokens_and_the_front_answers() {
        let document: serde_json::Value = serde_json::from_str(&DOCUMENT).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(document["info"]["title"], "regserve");
        assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
        let schemes = &document["components"]["securitySchemes"];
        assert_eq!(schemes["admin_token"]["scheme"], "bearer");
        assert_eq!(schemes["read_token"]["scheme"], "bearer");
        let train = &document["paths"]["/train"]["post"];
        assert_eq!(train["security"], serde_json::json!([{"admin_token": []}]));
        for status in ["401", "403", "413", "415", "503"] {
            assert!(train["responses"][status].is_object(), "POST /train documents {status}");
        }
        let healthz = &document["paths"]["/healthz"]["get"];
        assert!(healthz["security"].is_null() && healthz["responses"]["503"].is_null(), "{healthz}");
        let error = &document["paths"]["/v1/jobs/{id}"]["get"]["responses"]["404"]["content"];
        assert_eq!(error["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody");
    }
}
