//! Access control and limits: bearer tokens, the admin listener, CORS, request and body
//! timeouts, and the in-flight request limit.

use std::time::Duration;

use regserve::settings::Token;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{INCOME1, TestApp, error_of, spawn_app, spawn_app_with, spawn_app_with_admin_listener};

const ADMIN: &str = "admin-7f3c9b1e";
const READ: &str = "read-2d8a4c6f";

async fn spawn_with_tokens(admin: Option<&str>, read: Option<&str>) -> TestApp {
    spawn_app_with(|config| {
        config.access.admin_token = admin.map(|token| Token::parse(token).unwrap());
        config.access.read_token = read.map(|token| Token::parse(token).unwrap());
    })
    .await
}

fn with_token(request: RequestBuilder, token: Option<&str>) -> RequestBuilder {
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// A 401 that is a JSON error and asks for a bearer token.
async fn assert_unauthorized(response: Response, what: &str) {
    let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    assert!(challenge.as_deref().is_some_and(|c| c.starts_with("Bearer")), "{what}: {challenge:?}");
    error_of(response, StatusCode::UNAUTHORIZED).await;
}

fn upload_form() -> reqwest::multipart::Form {
    let part = reqwest::multipart::Part::bytes(INCOME1.as_bytes().to_vec()).file_name("data.csv");
    reqwest::multipart::Form::new().part("file", part)
}

/// The four state-changing requests, against `base`, with `token`.
struct Writes<'a> {
    app: &'a TestApp,
    base: String,
}

impl Writes<'_> {
    async fn upload(&self, token: Option<&str>) -> Response {
        let request = self.app.client.post(format!("{}/upload", self.base)).multipart(upload_form());
        with_token(request, token).send().await.unwrap()
    }

    async fn train(&self, token: Option<&str>, body: Value) -> Response {
        let request = self.app.client.post(format!("{}/train?wait=true", self.base)).json(&body);
        with_token(request, token).send().await.unwrap()
    }

    async fn start(&self, token: Option<&str>, body: Value) -> Response {
        let request = self.app.client.post(format!("{}/train", self.base)).json(&body);
        with_token(request, token).send().await.unwrap()
    }

    async fn cancel(&self, token: Option<&str>, job: u64) -> Response {
        let request = self.app.client.delete(format!("{}/v1/jobs/{job}", self.base));
        with_token(request, token).send().await.unwrap()
    }

    async fn activate(&self, token: Option<&str>, version: u64) -> Response {
        let request =
            self.app.client.post(format!("{}/v1/models/regserve/versions/{version}/activate", self.base));
        with_token(request, token).send().await.unwrap()
    }
}

fn writes(app: &TestApp) -> Writes<'_> {
    Writes { app, base: format!("http://{}", app.addr) }
}

/// Runs `request` and returns its status, with the body for messages.
async fn status_of(response: Response) -> (StatusCode, String) {
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn without_tokens_everything_is_open() {
    let app = spawn_app().await;
    let w = writes(&app);
    assert_eq!(status_of(w.upload(None).await).await.0, StatusCode::OK);
    assert_eq!(status_of(w.train(None, json!({"solver": "least-squares"})).await).await.0, StatusCode::OK);
    assert_eq!(status_of(w.activate(None, 1).await).await.0, StatusCode::OK);
    let (status, body) = status_of(w.cancel(None, 1).await).await;
    assert_eq!(status, StatusCode::CONFLICT, "a finished job, not a refusal: {body}");
    assert_eq!(app.predict(json!([10])).await.status(), StatusCode::OK);
    assert_eq!(app.get("/v1/model").await.status(), StatusCode::OK);
    let response = app.get("/v1/models").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("www-authenticate").is_none());
}

#[tokio::test]
async fn the_admin_token_guards_each_state_changing_route_and_reads_stay_open() {
    let app = spawn_with_tokens(Some(ADMIN), None).await;
    let w = writes(&app);
    for token in [None, Some("wrong-token"), Some(READ)] {
        assert_unauthorized(w.upload(token).await, "upload").await;
        assert_unauthorized(w.train(token, json!({})).await, "train").await;
        assert_unauthorized(w.start(token, json!({})).await, "train without waiting").await;
        assert_unauthorized(w.cancel(token, 1).await, "cancel").await;
        assert_unauthorized(w.activate(token, 1).await, "activate").await;
    }
    assert_eq!(app.get("/v1/jobs").await.json::<Value>().await.unwrap(), json!([]), "no job was started");

    let (status, body) = status_of(w.upload(Some(ADMIN)).await).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "success"));
    let (status, body) = status_of(w.train(Some(ADMIN), json!({"solver": "least-squares"})).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = status_of(w.activate(Some(ADMIN), 1).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let response = w.start(Some(ADMIN), json!({"epochs": 1_000_000})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job = response.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    assert_unauthorized(w.cancel(None, job).await, "cancel a running job").await;
    let (status, body) = status_of(w.cancel(Some(ADMIN), job).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["state"], "cancelled");

    // Reads and predictions need no token when only the admin token is set.
    assert_eq!(app.predict_ok(json!([10])).await.len(), 1);
    for path in [
        "/v1/model",
        "/v1/models",
        "/v1/models/regserve/versions/1",
        "/v1/jobs",
        "/v1/dataset",
        "/training_flag",
        "/v1",
    ] {
        assert_eq!(app.get(path).await.status(), StatusCode::OK, "GET {path}");
    }
    assert_eq!(app.get(&format!("/v1/jobs/{job}")).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_read_token_guards_predictions_and_reads_but_not_probes_or_the_page() {
    let app = spawn_with_tokens(Some(ADMIN), Some(READ)).await;
    let w = writes(&app);
    assert_eq!(
        status_of(w.train(Some(ADMIN), json!({"solver": "least-squares"})).await).await.0,
        StatusCode::OK
    );
    assert_unauthorized(w.train(Some(READ), json!({})).await, "the read token cannot train").await;

    let predict = |token: Option<&'static str>| {
        let request = app.client.post(app.url("/predict")).json(&json!({"x_predict": [10]}));
        with_token(request, token).send()
    };
    assert_unauthorized(predict(None).await.unwrap(), "predict without a token").await;
    assert_unauthorized(predict(Some("wrong-token")).await.unwrap(), "predict with a wrong token").await;
    assert_eq!(predict(Some(READ)).await.unwrap().status(), StatusCode::OK);
    assert_eq!(predict(Some(ADMIN)).await.unwrap().status(), StatusCode::OK, "the admin token grants reads");

    let model = |token: Option<&'static str>| with_token(app.client.get(app.url("/v1/model")), token).send();
    assert_unauthorized(model(None).await.unwrap(), "model without a token").await;
    assert_eq!(model(Some(READ)).await.unwrap().status(), StatusCode::OK);
    assert_eq!(model(Some(ADMIN)).await.unwrap().status(), StatusCode::OK);
    for path in ["/v1/models", "/v1/jobs", "/v1/jobs/1", "/v1/dataset", "/training_flag"] {
        assert_unauthorized(app.get(path).await, path).await;
    }

    for path in ["/healthz", "/readyz", "/metrics", "/", "/static/app.js"] {
        assert_eq!(app.get(path).await.status(), StatusCode::OK, "GET {path} stays open");
    }
    assert_eq!(app.get("/no-such-route").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn with_an_admin_listener_the_state_changing_routes_are_served_only_there() {
    let (app, admin_addr) = spawn_app_with_admin_listener(|_| {}).await;
    assert_ne!(admin_addr.port(), app.addr.port());
    assert_ne!(admin_addr.port(), 0);

    let main = writes(&app);
    let admin = Writes { app: &app, base: format!("http://{admin_addr}") };
    for (response, what) in [
        (main.upload(None).await, "upload"),
        (main.train(None, json!({})).await, "train"),
        (main.cancel(None, 1).await, "cancel"),
        (main.activate(None, 1).await, "activate"),
    ] {
        let message = error_of(response, StatusCode::FORBIDDEN).await;
        assert!(message.contains("admin listener"), "{what}: {message}");
    }
    assert_eq!(app.get("/v1/jobs").await.json::<Value>().await.unwrap(), json!([]), "nothing ran");

    assert_eq!(status_of(admin.upload(None).await).await.0, StatusCode::OK);
    assert_eq!(
        status_of(admin.train(None, json!({"solver": "least-squares"})).await).await.0,
        StatusCode::OK
    );
    assert_eq!(status_of(admin.activate(None, 1).await).await.0, StatusCode::OK);
    assert_eq!(status_of(admin.cancel(None, 1).await).await.0, StatusCode::CONFLICT, "finished already");

    // The main listener serves everything else, from the same state.
    assert_eq!(app.predict_ok(json!([10])).await.len(), 1);
    assert_eq!(app.json("/v1/model").await["version"], 1);
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    let on_admin = app.client.get(format!("http://{admin_addr}/v1/model")).send().await.unwrap();
    assert_eq!(on_admin.status(), StatusCode::OK, "the admin listener serves reads too");
}

#[tokio::test]
async fn the_admin_listener_still_takes_the_admin_token() {
    let (app, admin_addr) = spawn_app_with_admin_listener(|config| {
        config.access.admin_token = Some(Token::parse(ADMIN).unwrap());
    })
    .await;
    let admin = Writes { app: &app, base: format!("http://{admin_addr}") };
    assert_unauthorized(admin.train(None, json!({"solver": "least-squares"})).await, "no token").await;
    assert_eq!(admin.train(Some(ADMIN), json!({"solver": "least-squares"})).await.status(), StatusCode::OK);
    let refused = writes(&app).train(Some(ADMIN), json!({})).await;
    error_of(refused, StatusCode::FORBIDDEN).await;
}

async fn preflight(app: &TestApp, path: &str, origin: &str) -> Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let app = spawn_app().await;
    let response = preflight(&app, "/predict", "https://app.example").await;
    assert!(response.headers().get("access-control-allow-origin").is_none(), "{:?}", response.headers());
    let response =
        app.client.get(app.url("/v1")).header("origin", "https://app.example").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn cors_allows_the_listed_origins_only() {
    let app = spawn_app_with(|config| {
        config.cors_origins = vec!["https://app.example".into(), "http://localhost:3000".into()];
        config.access.admin_token = Some(Token::parse(ADMIN).unwrap());
    })
    .await;
    // A preflight carries no credentials, and is answered even on a guarded route.
    let response = preflight(&app, "/train", "https://app.example").await;
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], "https://app.example");
    let methods = headers["access-control-allow-methods"].to_str().unwrap().to_ascii_uppercase();
    for method in ["GET", "POST", "DELETE"] {
        assert!(methods.contains(method), "{methods}");
    }
    let allowed = headers["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"), "{allowed}");

    let response = preflight(&app, "/predict", "https://evil.example").await;
    assert!(response.headers().get("access-control-allow-origin").is_none());

    let response =
        app.client.get(app.url("/v1/model")).header("origin", "http://localhost:3000").send().await.unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "http://localhost:3000");
    assert!(response.headers()["access-control-expose-headers"].to_str().unwrap().contains("x-request-id"));
    // Errors carry the CORS headers too, so a page can read them.
    let response = app
        .client
        .post(app.url("/train"))
        .header("origin", "https://app.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "https://app.example");
    assert_unauthorized(response, "train from the page without a token").await;
}

/// A JSON body that sends its first bytes and then nothing more.
/// Posts to `path` a JSON body that starts and then never goes on; checks that the answer is a
/// JSON 408 that came promptly, and returns its message.
async fn post_stalled_body(app: &TestApp, path: &str) -> String {
    let first = futures_util::stream::iter([Ok::<_, std::io::Error>(&b"{\"x_predict\": ["[..])]);
    let body =
        reqwest::Body::wrap_stream(futures_util::StreamExt::chain(first, futures_util::stream::pending()));
    let started = std::time::Instant::now();
    let request = app.client.post(app.url(path)).header("content-type", "application/json").body(body);
    let message = error_of(request.send().await.unwrap(), StatusCode::REQUEST_TIMEOUT).await;
    assert!(started.elapsed() < Duration::from_secs(10), "{path}");
    message
}

#[tokio::test]
async fn a_request_over_the_request_timeout_is_a_json_408() {
    let app = spawn_app_with(|config| config.limits.request_timeout = Duration::from_millis(100)).await;
    app.train(json!({"solver": "least-squares"})).await;
    // A large prediction is parsed off the async workers, for longer than 100 ms in a test build.
    let huge = json!({ "x_predict": vec![1.25; 1_500_000] });
    let message = error_of(app.post_json("/predict", &huge).await, StatusCode::REQUEST_TIMEOUT).await;
    assert!(message.contains("--request-timeout"), "{message}");

    // Long-running routes are not cut off: a training that takes longer than the timeout.
    let response = app.post_json("/train?wait=true", &json!({"epochs": 200_000, "seed": 1})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let elapsed_ms = response.json::<Value>().await.unwrap()["job"]["elapsed_ms"].as_f64().unwrap();
    assert!(elapsed_ms > 100.0, "the fit took {elapsed_ms} ms, no longer than the timeout");
    assert_eq!(app.predict_ok(json!([10])).await.len(), 1, "ordinary requests still work");
}

#[tokio::test]
async fn a_stalled_body_is_cut_off_with_a_json_408() {
    let app = spawn_app_with(|config| config.limits.body_idle_timeout = Duration::from_millis(300)).await;
    for path in ["/predict", "/train"] {
        let message = post_stalled_body(&app, path).await;
        assert!(message.contains("--body-idle-timeout"), "{path}: {message}");
    }
    assert_eq!(app.flag().await, 0, "no training started");
}

#[tokio::test]
async fn over_the_concurrency_limit_requests_are_refused_at_once_with_json() {
    let app = spawn_app_with(|config| config.limits.max_concurrent = 1).await;
    // A training waited for holds the only request slot while it runs.
    let (client, url) = (app.client.clone(), app.url("/train?wait=true"));
    let waiting = tokio::spawn(async move {
        client.post(url).json(&json!({"epochs": 1_000_000, "seed": 1})).send().await.unwrap().status()
    });
    let mut metrics = String::new();
    for _ in 0..500 {
        metrics = app.get("/metrics").await.text().await.unwrap();
        if metrics.contains("regserve_http_requests_in_flight 1\n") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(metrics.contains("regserve_http_requests_in_flight 1\n"), "{metrics}");
    let started = std::time::Instant::now();
    let response = app.get("/v1/model").await;
    assert_eq!(response.headers().get("retry-after").map(|v| v.to_str().unwrap()), Some("1"));
    let message = error_of(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(message.contains("--max-concurrent"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(2), "refused at once, not queued");
    error_of(app.predict(json!([10])).await, StatusCode::SERVICE_UNAVAILABLE).await;
    // Probes and scrapes still answer.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);

    // The training ends (cancelled here), and with it the wait: its slot is free again.
    app.state.trainer().cancel_running(regserve::training::CancelReason::Request);
    assert_eq!(waiting.await.unwrap(), StatusCode::CONFLICT);
    assert_eq!(app.get("/training_flag").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn event_streams_have_their_own_limit_and_leave_the_request_slots_alone() {
    let app = spawn_app_with(|config| {
        config.limits.max_streams = 2;
        config.limits.max_concurrent = 2;
    })
    .await;
    let job = app.start_training(json!({"epochs": 1_000_000, "seed": 1})).await;
    // Two event streams of a running job hold both stream slots for as long as they are open.
    let mut streams = Vec::new();
    for _ in 0..2 {
        let response = app.get(&format!("/v1/jobs/{job}/events")).await;
        assert_eq!(response.status(), StatusCode::OK);
        streams.push(response);
    }
    let response = app.get(&format!("/v1/jobs/{job}/events")).await;
    let message = error_of(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(message.contains("--max-streams"), "{message}");
    let response = app.get("/v1/dataset.csv").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "downloads count as streams");
    // Requests still get their slots.
    for _ in 0..5 {
        assert_eq!(app.get(&format!("/v1/jobs/{job}")).await.status(), StatusCode::OK);
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("regserve_http_requests_in_flight 0\n"),
        "streams are not requests in flight: {metrics}"
    );

    // Closing a stream frees its slot.
    drop(streams.pop());
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..500 {
        status = app.get("/v1/dataset.csv").await.status();
        if status != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, StatusCode::OK);
    let response = app.client.delete(app.url(&format!("/v1/jobs/{job}"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
