//! Starting the real server on 127.0.0.1:0 and talking HTTP to it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use regserve::app::Application;
use regserve::settings::{Location, Settings, TrainingPriority};
use regserve::state::AppState;
use regserve::storage::Storage;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub data_dir: TempDir,
    /// The server's state, for the few tests that steer it directly.
    pub state: AppState,
}

/// Starts a server with default settings in a fresh data directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server after letting the test adjust its configuration.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(configure).await.0
}

/// Starts a server with an admin listener on 127.0.0.1:0 as well; returns the admin
/// listener's address with the app (whose `addr` is the main listener).
pub async fn spawn_app_with_admin_listener(configure: impl FnOnce(&mut Settings)) -> (TestApp, SocketAddr) {
    let (app, admin_addr) = spawn(|config| {
        config.admin_addr = Some("127.0.0.1:0".parse().unwrap());
        configure(config);
    })
    .await;
    (app, admin_addr.expect("the admin listener is bound"))
}

/// Starts a second server on the store of `other`, as a second process on one store would be.
pub async fn spawn_app_sharing_store(other: &TestApp) -> TestApp {
    let location = crate::stores::location(other.data_dir.path());
    spawn_on(tempfile::tempdir().unwrap(), location, None, |_| {}).await.0
}

/// Starts a server on `store`, shared with the other servers of the test.
pub async fn spawn_node(store: Arc<dyn Storage>, configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_on(tempfile::tempdir().unwrap(), Location::Memory, Some(store), configure).await.0
}

async fn spawn(configure: impl FnOnce(&mut Settings)) -> (TestApp, Option<SocketAddr>) {
    let data_dir = tempfile::tempdir().unwrap();
    let location = crate::stores::location(data_dir.path());
    spawn_on(data_dir, location, None, configure).await
}

/// Starts a server on `location`, or on `opened` when the test opened the store itself.
async fn spawn_on(
    data_dir: TempDir,
    location: Location,
    opened: Option<Arc<dyn Storage>>,
    configure: impl FnOnce(&mut Settings),
) -> (TestApp, Option<SocketAddr>) {
    let mut config = Settings::new("127.0.0.1:0".parse().unwrap(), location);
    // Test clients run at full priority on a two-core machine; a deferring fit would starve.
    config.limits.training_priority = TrainingPriority::Nice(0);
    configure(&mut config);
    let app = match opened {
        Some(store) => Application::build_on(config, store).await,
        None => Application::build(config).await,
    };
    let app = app.expect("server starts");
    let (addr, admin_addr, state) = (app.local_addr(), app.admin_addr(), app.state());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    (TestApp { addr, client: reqwest::Client::new(), data_dir, state }, admin_addr)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).json(body).send().await.unwrap()
    }

    /// Uploads `contents` as the multipart field `file`, like `curl -F file=@data.csv`.
    pub async fn upload(&self, contents: impl Into<Vec<u8>>) -> Response {
        let part = reqwest::multipart::Part::bytes(contents.into()).file_name("data.csv");
        let form = reqwest::multipart::Form::new().part("file", part);
        self.client.post(self.url("/upload")).multipart(form).send().await.unwrap()
    }

    pub async fn upload_ok(&self, contents: impl Into<Vec<u8>>) {
        let response = self.upload(contents).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), "success");
    }

    /// `POST /train?wait=true` that must succeed; returns the trained model.
    pub async fn train(&self, body: Value) -> Value {
        let response = self.post_json("/train?wait=true", &body).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
        let mut result: Value = response.json().await.unwrap();
        result["model"].take()
    }

    pub async fn predict(&self, x: Value) -> Response {
        self.post_json("/predict", &json!({ "x_predict": x })).await
    }

    /// Predictions that must succeed, flattened from `[[y1], [y2]]`.
    pub async fn predict_ok(&self, x: Value) -> Vec<f64> {
        let response = self.predict(x).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["y_predict"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                let row = row.as_array().unwrap();
                assert_eq!(row.len(), 1, "each prediction is a one-element list");
                row[0].as_f64().unwrap()
            })
            .collect()
    }

    pub async fn flag(&self) -> u64 {
        let body: Value = self.get("/training_flag").await.json().await.unwrap();
        body["training_flag"].as_u64().unwrap()
    }

    /// The uploaded dataset as stored.
    pub async fn stored_dataset(&self) -> Option<bytes::Bytes> {
        crate::stores::stored_dataset(self.data_dir.path()).await
    }

    /// Waits until no training runs (the flag is 1), for at most three minutes.
    pub async fn wait_for_training(&self) {
        for _ in 0..18000 {
            if self.flag().await == 1 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("training did not finish within three minutes");
    }
}

/// Checks that `response` is a JSON error with `status` and returns its message.
pub async fn error_of(response: Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status, "unexpected status");
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/json"), "error is {content_type}, not JSON");
    let body: Value = response.json().await.unwrap();
    let message = body["error"].as_str().expect("body has an `error` string").to_owned();
    assert!(!message.is_empty());
    message
}

/// A CSV of `rows` points near `y = 3x + 2`, with a header `x,y`.
pub fn linear_csv(rows: usize) -> String {
    let mut csv = String::from("x,y\n");
    for i in 0..rows {
        let x = (i % 1000) as f64 / 100.0;
        let noise = ((i * 7919) % 13) as f64 / 10.0 - 0.6;
        csv.push_str(&format!("{x},{}\n", 3.0 * x + 2.0 + noise));
    }
    csv
}

pub const INCOME1: &str = include_str!("../../dataset/Income1.csv");
pub const INCOME2: &str = include_str!("../../dataset/Income2.csv");

impl TestApp {
    /// Reads a job's whole event stream: `(event name, data)` pairs until the stream ends.
    pub async fn job_events(&self, id: u64) -> Vec<(String, Value)> {
        use futures_util::StreamExt;
        let response = self.get(&format!("/v1/jobs/{id}/events")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let mut body = response.bytes_stream();
        let (mut buffer, mut events) = (String::new(), Vec::new());
        while let Some(chunk) = body.next().await {
            buffer.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block.lines().find_map(|line| line.strip_prefix(name)).map(|v| v.trim().to_owned())
                };
                if let (Some(event), Some(data)) = (field("event:"), field("data:")) {
                    events.push((event, serde_json::from_str(&data).unwrap()));
                }
            }
        }
        events
    }

    /// Starts a training without waiting; returns the job id.
    pub async fn start_training(&self, body: Value) -> u64 {
        let response = self.post_json("/train", &body).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{}", response.text().await.unwrap());
        response.json::<Value>().await.unwrap()["id"].as_u64().unwrap()
    }

    pub async fn json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }
}

/// A dataset big enough that training on it takes a while (about a second in a debug build).
pub fn slow_dataset() -> String {
    linear_csv(50_000)
}

/// The `regserve` binary on the store of the scratch directory `data_dir`, configured only by what the test adds: no `REGSERVE_*`
/// variable of the test's own environment leaks in. It is the release binary named by
/// `REGSERVE_BIN` when that is set (the test script builds it once for all the suites), else the
/// test build's own. Its fits run at full priority: other tests keep the cores busy, and a fit
/// that yields to the rest of the process would wait for them.
pub fn binary_command(data_dir: &Path) -> std::process::Command {
    let binary = std::env::var_os("REGSERVE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_regserve").into());
    let mut command = std::process::Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("REGSERVE_") {
            command.env_remove(name);
        }
    }
    let store = crate::stores::location(data_dir).to_string();
    command.env("REGSERVE_STORE", store).env("REGSERVE_TRAINING_PRIORITY", "0");
    command
}

/// A port nothing listens on right now, for a binary that must be told its address.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until a server started at `base` answers.
pub async fn wait_until_answering(base: &str) {
    for _ in 0..500 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the binary did not start listening");
}

/// A stored version's answer (`GET /v1/models/{name}/versions/{v}`) less the TF Serving
/// `model_version_status` it carries, which must name the version: the model file.
pub fn model_file(mut stored: Value) -> Value {
    let status = stored.as_object_mut().and_then(|fields| fields.remove("model_version_status"));
    let version = stored["version"].as_u64().map(|version| version.to_string());
    assert_eq!(
        status.as_ref().map(|status| &status[0]["version"]),
        version.map(Value::from).as_ref(),
        "{stored}"
    );
    stored
}
