//! A battery of hostile or broken requests: each gets a specific 4xx JSON answer, and the
//! stored dataset and the served model are exactly as before.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{INCOME1, TestApp, error_of, spawn_app};

/// What must not change: the dataset on disk and in memory, and the served model.
#[derive(Debug, PartialEq)]
struct Snapshot {
    dataset_file: bytes::Bytes,
    dataset: Value,
    model: Value,
}

async fn snapshot(app: &TestApp) -> Snapshot {
    Snapshot {
        dataset_file: app.stored_dataset().await.unwrap(),
        dataset: app.json("/v1/dataset").await,
        model: app.json("/v1/model").await,
    }
}

/// A server with an uploaded dataset and a trained model.
async fn prepared() -> (TestApp, Snapshot) {
    let app = spawn_app().await;
    app.upload_ok(INCOME1).await;
    app.train(json!({ "epochs": 3, "seed": 1 })).await;
    let before = snapshot(&app).await;
    (app, before)
}

fn deep_json(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn hostile_csv_uploads_are_rejected_and_change_nothing() {
    let (app, before) = prepared().await;
    let million_columns = (0..1_000_000).map(|i| format!("c{i}")).collect::<Vec<_>>().join(",") + "\n";
    let cases: Vec<(Vec<u8>, StatusCode, &str)> = vec![
        (b"".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "empty"),
        (b"\n\n\n".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "empty"),
        (b"a,b\n1,2\n\xc3\x28,4\n".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "line 3 is not valid UTF-8"),
        (b"\xff\xfea\x00,\x00b\x00\n".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "UTF-8"),
        ("\u{feff}a,b\n1,2\n3,x\n".into(), StatusCode::UNPROCESSABLE_ENTITY, "line 3, column 2"),
        (b"a,b\r\n1,2\r\n3,4,5\r\n".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "line 3: expected 2 values"),
        (
            b"\"a\",\"b\"\n\"1\",\"2\"\n\"3\",\"four\"\n".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "\"four\" is not a number",
        ),
        (b"a,b\n\"1\n2\",3\n4,5\n".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "line 2, column 1"),
        (b"a,b\n1,2\n3\n".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "found 1"),
        (b"a,a\n1,2\n3,4\n".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "appears twice"),
        (b",\n1,2\n3,4\n".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "at least two columns"),
        (b"1,2\n3,4\n5,6\n".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "looks like data"),
        (b"x,Name\n1,ann\n2,bob\n".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "\"ann\" is not a number"),
        (b"x,y\n1,2\n1e400,4\n".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "not a finite number"),
        (b"x,y\n1,2\nNaN,4\n".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "not a finite number"),
        (b"x,y\n1,2\n3,inf\n".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "not a finite number"),
        (b"x,y\n1,2\n3,-inf\n".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "not a finite number"),
        (b"x,y\n1,2\n".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "at least 2 are needed"),
        (b"x,y\n".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "at least 2 are needed"),
        (million_columns.into_bytes(), StatusCode::UNPROCESSABLE_ENTITY, "at most 1000"),
    ];
    for (contents, status, expected) in cases {
        let message = error_of(app.upload(contents.clone()).await, status).await;
        let shown = String::from_utf8_lossy(&contents[..contents.len().min(40)]).into_owned();
        assert!(message.contains(expected), "{shown:?}: {message:?} does not contain {expected:?}");
        assert!(snapshot(&app).await == before, "{shown:?} changed the stored state");
    }
}

#[tokio::test]
async fn malformed_uploads_are_rejected_and_change_nothing() {
    let (app, before) = prepared().await;
    let post = || app.client.post(app.url("/upload"));
    let cases = [
        (post().header("content-type", "multipart/form-data").body("--x\r\n"), StatusCode::BAD_REQUEST),
        (
            post().header("content-type", "multipart/form-data; boundary=x").body("garbage"),
            StatusCode::BAD_REQUEST,
        ),
        (post().header("content-type", "text/csv").body(INCOME1), StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (post().header("content-type", "application/json").body("{}"), StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (post().multipart(reqwest::multipart::Form::new().text("data", INCOME1)), StatusCode::BAD_REQUEST),
    ];
    for (request, status) in cases {
        error_of(request.send().await.unwrap(), status).await;
        assert!(snapshot(&app).await == before);
    }
}

/// Sends raw bytes and returns the status line and body of the answer.
fn raw_request(app: &TestApp, request: &[u8]) -> (String, String) {
    let mut stream = TcpStream::connect(app.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") || !answer.ends_with(b"}") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[tokio::test]
async fn a_declared_2_gib_upload_is_refused_before_its_body_arrives() {
    let (app, before) = prepared().await;
    let head = format!(
        "POST /upload HTTP/1.1\r\nhost: {}\r\ncontent-type: multipart/form-data; boundary=x\r\ncontent-length: {}\r\n\r\n",
        app.addr,
        2u64 << 30
    );
    let app_for_thread = TestApp {
        addr: app.addr,
        client: app.client.clone(),
        data_dir: tempfile::tempdir().unwrap(),
        state: app.state.clone(),
    };
    let (status, body) =
        tokio::task::spawn_blocking(move || raw_request(&app_for_thread, head.as_bytes())).await.unwrap();
    assert!(status.contains("413"), "{status}");
    assert!(body.contains("\"error\""), "{body}");
    assert!(snapshot(&app).await == before);
}

#[tokio::test]
async fn a_stalled_upload_is_timed_out() {
    let (app, before) = prepared().await;
    let head = format!(
        "POST /upload HTTP/1.1\r\nhost: {}\r\ncontent-type: multipart/form-data; boundary=x\r\ncontent-length: 100000\r\n\r\n--x\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\nx,y\n1,",
        app.addr
    );
    let app_for_thread = TestApp {
        addr: app.addr,
        client: app.client.clone(),
        data_dir: tempfile::tempdir().unwrap(),
        state: app.state.clone(),
    };
    let started = std::time::Instant::now();
    let (status, body) =
        tokio::task::spawn_blocking(move || raw_request(&app_for_thread, head.as_bytes())).await.unwrap();
    assert!(status.contains("408"), "{status} {body}");
    assert!(body.contains("\"error\""), "{body}");
    assert!(started.elapsed() < Duration::from_secs(25));
    assert!(snapshot(&app).await == before);
}

#[tokio::test]
async fn hostile_train_requests_are_rejected_and_start_nothing() {
    let (app, before) = prepared().await;
    let post = |body: String, content_type: &'static str| {
        app.client.post(app.url("/train")).header("content-type", content_type).body(body).send()
    };
    let huge_features = json!({ "features": vec!["Education"; 2_000_000] }).to_string();
    let cases: Vec<(String, &str, StatusCode, &str)> = vec![
        (deep_json(10_000), "application/json", StatusCode::BAD_REQUEST, "recursion limit"),
        (huge_features, "application/json", StatusCode::PAYLOAD_TOO_LARGE, "larger than the limit"),
        (
            r#"{"epochs": 10, "evil": true}"#.into(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field `evil`",
        ),
        (r#"{"epochs": -5}"#.into(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "epochs"),
        (r#"{"epochs": 1e9}"#.into(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "epochs"),
        (
            r#"{"epochs": 100000000}"#.into(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "epochs: must be between",
        ),
        (
            r#"{"learning_rate": "fast"}"#.into(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "learning_rate",
        ),
        (r#"{"features": [1, 2]}"#.into(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "features"),
        (r#"{"target": ["Income"]}"#.into(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "target"),
        (r#"{"seed": 1.5}"#.into(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "seed"),
        (r#""epochs""#.into(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "JSON object"),
        (r#"{"epochs":"#.into(), "application/json", StatusCode::BAD_REQUEST, "not valid JSON"),
        ("epochs=5".into(), "application/x-www-form-urlencoded", StatusCode::UNSUPPORTED_MEDIA_TYPE, "JSON"),
        (r#"{"solver": "magic"}"#.into(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "solver"),
    ];
    for (body, content_type, status, expected) in cases {
        let shown: String = body.chars().take(40).collect();
        let message = error_of(post(body, content_type).await.unwrap(), status).await;
        assert!(message.contains(expected), "{shown}: {message:?} does not contain {expected:?}");
    }
    let query = app.client.post(app.url("/train?wait=maybe")).send().await.unwrap();
    error_of(query, StatusCode::BAD_REQUEST).await;
    assert_eq!(app.json("/v1/jobs").await.as_array().unwrap().len(), 1, "only the preparing job ran");
    assert!(snapshot(&app).await == before);
}

#[tokio::test]
async fn hostile_predict_requests_are_rejected() {
    let (app, before) = prepared().await;
    let post = |body: String, content_type: &'static str| {
        app.client.post(app.url("/predict")).header("content-type", content_type).body(body).send()
    };
    let huge = json!({ "x_predict": vec![1.25; 5_000_000] }).to_string();
    let cases: Vec<(String, &str, StatusCode, &str)> = vec![
        (deep_json(10_000), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid type: sequence"),
        (
            format!("{{\"x_predict\": {}}}", deep_json(10_000)),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "x_predict[0][0]: invalid type",
        ),
        (huge, "application/json", StatusCode::PAYLOAD_TOO_LARGE, "larger than the limit"),
        (
            r#"{"x_predict": [[[1]]]}"#.into(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "x_predict[0]",
        ),
        (
            r#"{"x_predict": {"a": 1}}"#.into(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "x_predict",
        ),
        (
            r#"{"x_predict": [null]}"#.into(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "x_predict[0]",
        ),
        (
            r#"{"x_predict": [true]}"#.into(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "x_predict[0]",
        ),
        (r#"{"x_predict": [Infinity]}"#.into(), "application/json", StatusCode::BAD_REQUEST, "x_predict[0]"),
        (r#"{"x_predict": [-1e999]}"#.into(), "application/json", StatusCode::BAD_REQUEST, "out of range"),
        ("".into(), "application/json", StatusCode::BAD_REQUEST, "EOF"),
        (
            r#"{"x_predict": [1]}"#.into(),
            "application/x-www-form-urlencoded",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/json",
        ),
    ];
    for (body, content_type, status, expected) in cases {
        let shown: String = body.chars().take(40).collect();
        let message = error_of(post(body, content_type).await.unwrap(), status).await;
        assert!(message.contains(expected), "{shown}: {message:?} does not contain {expected:?}");
    }
    assert!(snapshot(&app).await == before);
}

#[tokio::test]
async fn hostile_paths_and_queries_are_rejected() {
    let (app, before) = prepared().await;
    let cases = [
        (app.get("/v1/jobs/abc").await, StatusCode::BAD_REQUEST),
        (app.get("/v1/jobs/99999999999999999999999").await, StatusCode::BAD_REQUEST),
        (app.get("/v1/jobs/-1").await, StatusCode::BAD_REQUEST),
        (app.get("/v1/models/regserve/versions/0").await, StatusCode::NOT_FOUND),
        (
            app.client.post(app.url("/v1/models/regserve/versions/0/activate")).send().await.unwrap(),
            StatusCode::NOT_FOUND,
        ),
        (
            app.client.post(app.url("/v1/models/regserve/versions/x/activate")).send().await.unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        (app.get("/v1/dataset/rows?limit=100000").await, StatusCode::UNPROCESSABLE_ENTITY),
        (app.get("/v1/dataset/rows?limit=-1").await, StatusCode::BAD_REQUEST),
        (app.get("/v1/dataset/rows?evil=1").await, StatusCode::BAD_REQUEST),
        (app.get("/static/../Cargo.toml").await, StatusCode::NOT_FOUND),
        (app.get("/static/%2e%2e%2fCargo.toml").await, StatusCode::NOT_FOUND),
        (app.client.delete(app.url("/v1/jobs/1")).send().await.unwrap(), StatusCode::CONFLICT),
        (app.client.put(app.url("/v1/model")).send().await.unwrap(), StatusCode::METHOD_NOT_ALLOWED),
        (app.get(&format!("/{}", "a".repeat(5000))).await, StatusCode::NOT_FOUND),
    ];
    for (response, status) in cases {
        error_of(response, status).await;
    }
    assert!(snapshot(&app).await == before);
}
