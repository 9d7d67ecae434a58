//! Observability: Prometheus metrics at /metrics, and request logs with request ids (text or
//! JSON lines) from the binary.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, binary_command, free_port, linear_csv, spawn_app, wait_until_answering};

/// One sample of the text format: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Scrapes /metrics, checking the content type, and parses every sample line.
async fn scrape(app: &TestApp) -> (String, Vec<Sample>) {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await.unwrap();
    let samples =
        text.lines().filter(|line| !line.starts_with('#') && !line.is_empty()).map(parse_sample).collect();
    (text, samples)
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        value => value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    let (name, labels) = match series.split_once('{') {
        Some((name, labels)) => (name, labels.strip_suffix('}').unwrap()),
        None => (series, ""),
    };
    let labels = labels
        .split("\",")
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once("=\"").unwrap_or_else(|| panic!("bad label in {line:?}"));
            (key.to_owned(), value.trim_end_matches('"').to_owned())
        })
        .collect();
    Sample { name: name.to_owned(), labels, value }
}

/// The value of the sample `name` whose labels include all of `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|sample| {
            sample.name == name
                && labels.iter().all(|(k, v)| sample.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|sample| sample.value)
}

#[tokio::test]
async fn requests_are_counted_by_route_template_and_status_with_latency() {
    let app = spawn_app().await;
    for id in [5, 6] {
        assert_eq!(app.get(&format!("/v1/jobs/{id}")).await.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(app.get("/no/such/path/42").await.status(), StatusCode::NOT_FOUND);
    for _ in 0..3 {
        assert_eq!(app.flag().await, 0);
    }
    assert_eq!(app.predict(json!([1])).await.status(), StatusCode::CONFLICT);

    let (text, samples) = scrape(&app).await;
    let requests = "regserve_http_requests_total";
    assert!(text.contains("# TYPE regserve_http_requests_total counter"), "{text}");
    let jobs = [("method", "GET"), ("route", "/v1/jobs/{id}"), ("status", "404")];
    assert_eq!(value(&samples, requests, &jobs), Some(2.0), "the template, not the raw paths: {text}");
    let unknown = [("method", "GET"), ("route", "unmatched"), ("status", "404")];
    assert_eq!(value(&samples, requests, &unknown), Some(1.0), "{text}");
    let flag = [("method", "GET"), ("route", "/training_flag"), ("status", "200")];
    assert_eq!(value(&samples, requests, &flag), Some(3.0), "{text}");
    let predict = [("method", "POST"), ("route", "/predict"), ("status", "409")];
    assert_eq!(value(&samples, requests, &predict), Some(1.0), "{text}");
    assert!(!text.contains("/v1/jobs/5") && !text.contains("/no/such"), "raw paths never become labels");

    let latency = "regserve_http_request_duration_seconds";
    assert!(text.contains("# TYPE regserve_http_request_duration_seconds histogram"), "{text}");
    let route = [("method", "GET"), ("route", "/training_flag")];
    assert_eq!(value(&samples, &format!("{latency}_count"), &route), Some(3.0));
    let sum = value(&samples, &format!("{latency}_sum"), &route).unwrap();
    assert!(sum > 0.0 && sum < 30.0, "{sum}");
    let all = value(&samples, &format!("{latency}_bucket"), &[route[0], route[1], ("le", "+Inf")]);
    assert_eq!(all, Some(3.0));
    let buckets: Vec<f64> = samples
        .iter()
        .filter(|s| {
            s.name == format!("{latency}_bucket") && s.labels.get("route").unwrap() == "/training_flag"
        })
        .map(|s| s.value)
        .collect();
    assert!(buckets.len() > 5, "{buckets:?}");
    assert!(buckets.windows(2).all(|pair| pair[0] <= pair[1]), "cumulative buckets: {buckets:?}");
}

#[tokio::test]
async fn trainings_are_counted_by_outcome_and_solver_with_their_duration() {
    let app = spawn_app().await;
    app.train(json!({"solver": "least-squares"})).await;
    let diverged = app.post_json("/train?wait=true", &json!({"learning_rate": 1e300, "epochs": 5})).await;
    assert_eq!(diverged.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let job = app.start_training(json!({"epochs": 1_000_000})).await;
    let cancelled = app.client.delete(app.url(&format!("/v1/jobs/{job}"))).send().await.unwrap();
    assert_eq!(cancelled.status(), StatusCode::OK);

    let (text, samples) = scrape(&app).await;
    let trainings = "regserve_trainings_total";
    let succeeded = [("outcome", "succeeded"), ("solver", "least-squares")];
    assert_eq!(value(&samples, trainings, &succeeded), Some(1.0), "{text}");
    assert_eq!(value(&samples, trainings, &[("outcome", "failed"), ("solver", "adam")]), Some(1.0), "{text}");
    assert_eq!(
        value(&samples, trainings, &[("outcome", "cancelled"), ("solver", "adam")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&samples, trainings, &[("outcome", "succeeded"), ("solver", "adam")]), None);

    let duration = "regserve_training_duration_seconds";
    assert!(text.contains("# TYPE regserve_training_duration_seconds histogram"), "{text}");
    assert_eq!(value(&samples, &format!("{duration}_count"), &succeeded), Some(1.0), "{text}");
    let seconds = value(&samples, &format!("{duration}_sum"), &succeeded).unwrap();
    assert!(seconds > 0.0 && seconds < 30.0, "{seconds}");
    let inf = value(&samples, &format!("{duration}_bucket"), &[succeeded[0], succeeded[1], ("le", "+Inf")]);
    assert_eq!(inf, Some(1.0));
}

#[tokio::test]
async fn gauges_show_the_served_model_its_age_and_the_dataset() {
    let app = spawn_app().await;
    let (text, samples) = scrape(&app).await;
    assert_eq!(value(&samples, "regserve_model_version", &[]), Some(0.0), "no model yet: {text}");
    assert_eq!(value(&samples, "regserve_model_age_seconds", &[]), Some(0.0));
    assert_eq!(value(&samples, "regserve_dataset_rows", &[]), Some(30.0), "the built-in dataset: {text}");
    assert!(text.contains("# TYPE regserve_model_age_seconds gauge"), "{text}");

    app.train(json!({"solver": "least-squares"})).await;
    app.train(json!({"solver": "least-squares"})).await;
    let (_, samples) = scrape(&app).await;
    assert_eq!(value(&samples, "regserve_model_version", &[]), Some(2.0));
    let age = value(&samples, "regserve_model_age_seconds", &[]).unwrap();
    assert!((0.0..60.0).contains(&age), "{age}");

    // The age is computed when scraped, and follows a rollback.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, samples) = scrape(&app).await;
    let older = value(&samples, "regserve_model_age_seconds", &[]).unwrap();
    assert!(older >= age + 1.0, "{age} then {older}");
    let activated = app.client.post(app.url("/v1/models/regserve/versions/1/activate")).send().await.unwrap();
    assert_eq!(activated.status(), StatusCode::OK);
    let (_, samples) = scrape(&app).await;
    assert_eq!(value(&samples, "regserve_model_version", &[]), Some(1.0));

    app.upload_ok(linear_csv(100)).await;
    let (_, samples) = scrape(&app).await;
    assert_eq!(value(&samples, "regserve_dataset_rows", &[]), Some(100.0));
}

/// Runs the binary with `args`, makes `requests` against it (each with `x-request-id` set to
/// its id, and the admin token), stops it, and returns its standard output.
async fn logs_of_binary(args: &[&str], requests: &[(&str, &str, &str)]) -> String {
    let port = free_port();
    let data_dir = tempfile::tempdir().unwrap();
    let child = binary_command(data_dir.path())
        .args(args)
        .env("REGSERVE_ADDR", format!("127.0.0.1:{port}"))
        .env("REGSERVE_ADMIN_TOKEN", "tok-9f8e7d6c5b4a")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_answering(&base).await;
    let client = reqwest::Client::new();
    for (method, path, id) in requests {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let request = client.request(method, format!("{base}{path}")).header("x-request-id", *id);
        let response = request.bearer_auth("tok-9f8e7d6c5b4a").send().await.unwrap();
        assert_eq!(response.headers()["x-request-id"], *id);
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the binary exited with {:?} after SIGTERM", output.status);
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn json_logs_have_one_object_per_line_with_the_request_id_route_status_and_latency() {
    let stdout = logs_of_binary(
        &["--log-format", "json"],
        &[("GET", "/v1/jobs/77", "test-123"), ("POST", "/train?wait=true", "test-456")],
    )
    .await;
    let lines: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let finished = |id: &str| {
        lines
            .iter()
            .find(|line| line["span"]["id"] == id && line["fields"]["message"] == "request finished")
            .unwrap_or_else(|| panic!("no request line for {id} in:\n{stdout}"))
    };
    let line = finished("test-123");
    assert_eq!(line["fields"]["status"], 404, "{line}");
    assert!(line["fields"]["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{line}");
    assert_eq!(line["span"]["method"], "GET", "{line}");
    assert_eq!(line["span"]["path"], "/v1/jobs/77", "{line}");
    assert_eq!(line["span"]["route"], "/v1/jobs/{id}", "{line}");
    assert_eq!(line["level"], "INFO");
    assert!(line["timestamp"].is_string());
    let line = finished("test-456");
    assert_eq!(line["fields"]["status"], 200, "{line}");
    assert_eq!(line["span"]["route"], "/train", "{line}");
    // Events inside a request carry its id too, through the list of spans.
    let training = lines.iter().find(|line| line["fields"]["message"] == "training started").unwrap();
    assert_eq!(training["spans"][0]["id"], "test-456", "{training}");
    assert!(!stdout.contains("tok-9f8e7d6c5b4a"), "the token never reaches the logs");
}

#[tokio::test]
async fn text_logs_name_the_request_id_and_status() {
    let stdout = logs_of_binary(&[], &[("GET", "/training_flag", "test-789")]).await;
    let line = stdout
        .lines()
        .find(|line| line.contains("test-789") && line.contains("request finished"))
        .unwrap_or_else(|| panic!("no request line in:\n{stdout}"));
    assert!(line.contains("status=200") && line.contains("route=/training_flag"), "{line}");
    assert!(serde_json::from_str::<Value>(line).is_err(), "text, not JSON");
    assert!(!stdout.contains("tok-9f8e7d6c5b4a"));
}

#[tokio::test]
async fn the_service_lists_every_route_it_answers() {
    let app = spawn_app().await;
    let listed = app.json("/v1").await;
    let routes: Vec<&str> =
        listed["routes"].as_array().unwrap().iter().map(|route| route.as_str().unwrap()).collect();
    for route in ["POST /predict", "PUT /v1/triggers", "GET /v1/data/ws", "DELETE /v1/jobs/{id}", "GET /v1"] {
        assert!(routes.contains(&route), "{route} missing from {routes:?}");
    }
    for (method, path) in routes.iter().filter_map(|route| route.split_once(' ')) {
        let path = path.replace("{file}", "app.js").replace("{id}", "1").replace("{name}", "x");
        let response = app.client.request(method.parse().unwrap(), app.url(&path)).send().await.unwrap();
        assert_ne!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is listed but not routed"
        );
    }
}
