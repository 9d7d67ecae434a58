//! Faults, with the real binary: SIGKILL in the middle of an upload, a training and an
//! activation leaves the previous dataset and model whole and served after a restart, with no
//! stray temporary files; a full disk, a read-only or a vanished data directory give clear JSON
//! errors while the current model keeps being served; SIGTERM lets in-flight requests finish,
//! cancels a running training and exits 0.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::{binary_command, linear_csv};

/// The `regserve` binary, started on 127.0.0.1 with a port of its own choosing, its logs kept in
/// a file. Dropping it kills the process and waits for it to be gone.
pub(crate) struct Server {
    child: tokio::process::Child,
    pid: u32,
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    log: PathBuf,
    _cwd: TempDir,
}

impl Server {
    /// Starts the binary on `data_dir` (configured by `REGSERVE_*` variables, from an unrelated
    /// directory) and waits until it answers.
    pub(crate) async fn start(data_dir: &Path) -> Self {
        let cwd = tempfile::tempdir().unwrap();
        let log = cwd.path().join("server.log");
        let output = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::from(binary_command(data_dir))
            .current_dir(cwd.path())
            .env("REGSERVE_ADDR", "127.0.0.1:0")
            .env("REGSERVE_LOG_FORMAT", "text")
            .env("RUST_LOG", "warn,regserve::startup=info")
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().expect("a just-started child has a pid");
        let mut server =
            Self { child, pid, base: String::new(), client: reqwest::Client::new(), log, _cwd: cwd };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.base.is_empty() {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("the server exited at start with {status}:\n{}", server.log());
            }
            assert!(Instant::now() < deadline, "the server did not start listening:\n{}", server.log());
            // `listening addr=127.0.0.1:PORT` names the port the system picked.
            if let Some(line) = server.log().lines().find(|line| line.contains("listening")) {
                let addr = line.split_whitespace().find_map(|word| word.strip_prefix("addr="));
                server.base = format!("http://{}", addr.expect("the listening line names its address"));
            } else {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        for _ in 0..500 {
            if server.client.get(server.url("/healthz")).send().await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the server does not answer:\n{}", server.log());
    }

    /// What the server logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process with SIGKILL, without any chance to clean up, and waits for its end.
    pub(crate) async fn kill(mut self) {
        self.child.start_kill().unwrap();
        let status = self.child.wait().await.unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
    }

    /// Sends SIGTERM without waiting.
    pub(crate) fn send_sigterm(&self) {
        // SAFETY: kill only reads its integer arguments; the pid is our unreaped child's.
        assert_eq!(unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) }, 0);
    }

    /// Waits for the process to exit by itself, for at most `limit`.
    pub(crate) async fn exit_status(&mut self, limit: Duration) -> ExitStatus {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!("the server did not exit within {limit:?}:\n{}", self.log()),
        }
    }

    /// The resident memory of the process, in KiB (`VmRSS` of /proc/PID/status).
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        vm_rss_kib(&status)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub(crate) async fn get(&self, path: &str) -> Response {
        let response = self.client.get(self.url(path)).send().await;
        response.unwrap_or_else(|error| panic!("GET {path}: {error:?}\nserver log:\n{}", self.log()))
    }

    /// `GET path`, which must answer 200 with JSON.
    pub(crate) async fn json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> Response {
        let response = self.client.post(self.url(path)).json(body).send().await;
        response.unwrap_or_else(|error| panic!("POST {path}: {error:?}\nserver log:\n{}", self.log()))
    }

    pub(crate) async fn upload(&self, contents: impl Into<Vec<u8>>) -> Response {
        let part = reqwest::multipart::Part::bytes(contents.into()).file_name("data.csv");
        let form = reqwest::multipart::Form::new().part("file", part);
        let response = self.client.post(self.url("/upload")).multipart(form).send().await;
        response.unwrap_or_else(|error| panic!("POST /upload: {error:?}\nserver log:\n{}", self.log()))
    }

    /// An upload on a connection of its own: the server closes a connection after refusing an
    /// upload it has not read to the end, without saying so, and a pooled connection would take
    /// the next request down with it.
    pub(crate) async fn upload_alone(&self, contents: impl Into<Vec<u8>>) -> Response {
        let part = reqwest::multipart::Part::bytes(contents.into()).file_name("data.csv");
        let form = reqwest::multipart::Form::new().part("file", part);
        let response = reqwest::Client::new().post(self.url("/upload")).multipart(form).send().await;
        response.unwrap_or_else(|error| panic!("POST /upload: {error:?}\nserver log:\n{}", self.log()))
    }

    pub(crate) async fn upload_ok(&self, contents: impl Into<Vec<u8>>) {
        let response = self.upload(contents).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!((status, text.as_str()), (StatusCode::OK, "success"));
    }

    /// `POST /train?wait=true` that must succeed; returns the model.
    pub(crate) async fn train(&self, body: Value) -> Value {
        let response = self.post("/train?wait=true", &body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{text}");
        serde_json::from_str::<Value>(&text).unwrap()["model"].clone()
    }

    /// Starts a training without waiting; returns the job id.
    pub(crate) async fn start_training(&self, body: Value) -> u64 {
        let response = self.post("/train", &body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{text}");
        serde_json::from_str::<Value>(&text).unwrap()["id"].as_u64().unwrap()
    }

    /// Waits until job `id` has finished (at most a minute) and returns it.
    pub(crate) async fn finished_job(&self, id: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job = self.json(&format!("/v1/jobs/{id}")).await;
            if ["succeeded", "failed", "cancelled"].contains(&job["state"].as_str().unwrap()) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} did not finish: {job}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Predictions that must succeed, flattened from `[[y1], [y2]]`.
    pub(crate) async fn predict_ok(&self, x: Value) -> Vec<f64> {
        let response = self.post("/predict", &json!({ "x_predict": x })).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        body["y_predict"].as_array().unwrap().iter().map(|row| row[0].as_f64().unwrap()).collect()
    }

    pub(crate) async fn flag(&self) -> u64 {
        self.json("/training_flag").await["training_flag"].as_u64().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Killed and reaped here rather than in the background, so that a file system the data
        // directory lives on can be unmounted right after.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.start_kill();
            for _ in 0..1000 {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// `VmRSS` in KiB from the text of a /proc/PID/status file.
pub(crate) fn vm_rss_kib(status: &str) -> u64 {
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("VmRSS is reported");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Temporary files (`.tmp-*`) in the data directory or its `models` directory.
pub(crate) fn temp_files(data_dir: &Path) -> Vec<PathBuf> {
    [data_dir.to_path_buf(), data_dir.join("models")]
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().unwrap().to_string_lossy().starts_with(".tmp-"))
        .collect()
}

fn assert_no_temp_files(data_dir: &Path) {
    let stray = temp_files(data_dir);
    assert!(stray.is_empty(), "temporary files were left behind: {stray:?}");
}

/// Names in `models/`, sorted.
fn model_files(data_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir.join("models"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The version `models/active` names.
fn active_pointer(data_dir: &Path) -> u64 {
    let text = std::fs::read_to_string(data_dir.join("models/active")).unwrap();
    text.trim().parse().unwrap_or_else(|_| panic!("models/active holds {text:?}"))
}

/// Checks that `response` is a JSON error with a server-error status and returns the status
/// and the message.
async fn server_error(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let text = response.text().await.unwrap();
    assert!(status.is_server_error(), "expected a 5xx, got {status}: {text}");
    assert!(content_type.starts_with("application/json"), "the error is {content_type:?}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let message = body["error"].as_str().unwrap_or_else(|| panic!("no `error` string in {text}"));
    (status, message.to_owned())
}

/// A CSV (header `x,y`) sent in `chunks` chunks of 800 rows (about 10 KiB), `pause` apart.
fn slow_csv_body(chunks: usize, pause: Duration) -> reqwest::Body {
    let rows: String = linear_csv(800).lines().skip(1).map(|line| format!("{line}\n")).collect();
    let stream = futures_util::stream::unfold(0, move |sent| {
        let rows = rows.clone();
        async move {
            if sent == chunks {
                return None;
            }
            let chunk = if sent == 0 {
                format!("x,y\n{rows}")
            } else {
                tokio::time::sleep(pause).await;
                rows
            };
            Some((Ok::<_, std::io::Error>(chunk), sent + 1))
        }
    });
    reqwest::Body::wrap_stream(stream)
}

/// What [`slow_csv_body`] sends in all.
fn slow_csv_contents(chunks: usize) -> String {
    let rows: String = linear_csv(800).lines().skip(1).map(|line| format!("{line}\n")).collect();
    format!("x,y\n{}", rows.repeat(chunks))
}

/// Starts a multipart upload of [`slow_csv_body`] in the background.
fn start_slow_upload(
    server: &Server,
    chunks: usize,
    pause: Duration,
) -> tokio::task::JoinHandle<reqwest::Result<(StatusCode, String)>> {
    let part = reqwest::multipart::Part::stream(slow_csv_body(chunks, pause)).file_name("big.csv");
    let request = server
        .client
        .post(server.url("/upload"))
        .multipart(reqwest::multipart::Form::new().part("file", part));
    tokio::spawn(async move {
        let response = request.send().await?;
        let status = response.status();
        Ok((status, response.text().await?))
    })
}

/// Waits (at most 10 s) until a temporary file in the data directory holds at least `bytes`.
async fn wait_for_temp_file(data_dir: &Path, bytes: u64) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let grown = temp_files(data_dir)
            .into_iter()
            .find(|path| std::fs::metadata(path).is_ok_and(|meta| meta.len() >= bytes));
        if let Some(path) = grown {
            return path;
        }
        assert!(Instant::now() < deadline, "the upload never reached the data directory");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A small pseudo-random generator (xorshift) for the kill delays, which vary from run to run;
/// the seed is printed with the test's output.
struct Jitter(u64);

impl Jitter {
    fn from_clock() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let seed = (nanos as u64) | 1;
        println!("jitter seed {seed}");
        Self(seed)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_an_upload_leaves_the_previous_dataset_and_model_served() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let server = Server::start(dir).await;
    server.upload_ok(linear_csv(300)).await;
    let model = server.train(json!({ "epochs": 3, "seed": 1 })).await;
    let dataset = server.json("/v1/dataset").await;
    let bytes = std::fs::read(dir.join("dataset.csv")).unwrap();

    // An upload that keeps sending for minutes: the kill surely lands while it streams to disk.
    let upload = start_slow_upload(&server, 10_000, Duration::from_millis(20));
    let temp = wait_for_temp_file(dir, 64 * 1024).await;
    server.kill().await;
    assert!(upload.await.unwrap().is_err(), "the killed server answered the upload");
    assert!(temp.exists(), "SIGKILL leaves the half-written upload behind: {temp:?}");
    assert_eq!(std::fs::read(dir.join("dataset.csv")).unwrap(), bytes);

    let server = Server::start(dir).await;
    assert_no_temp_files(dir);
    assert_eq!(std::fs::read(dir.join("dataset.csv")).unwrap(), bytes, "dataset.csv changed");
    assert_eq!(server.json("/v1/dataset").await, dataset);
    let served = server.get("/v1/dataset.csv").await.bytes().await.unwrap();
    assert_eq!(served.as_ref(), bytes.as_slice());
    assert_eq!(server.json("/v1/model").await, model);
    assert_eq!(server.flag().await, 1);
    server.predict_ok(json!([1.0, 2.0])).await;
    // Nothing is wedged: the next upload goes through.
    server.upload_ok(linear_csv(400)).await;
    assert_eq!(server.json("/v1/dataset").await["rows"], 400);
    assert_no_temp_files(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_training_leaves_the_active_model_served() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let server = Server::start(dir).await;
    server.upload_ok(linear_csv(2_000)).await;
    let first = server.train(json!({ "epochs": 2, "seed": 1 })).await;
    server.train(json!({ "epochs": 2, "seed": 2 })).await;
    // The active version is not the newest, so a restart that served the newest would show.
    let response = server.client.post(server.url("/v1/models/1/activate")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let versions = server.json("/v1/models").await;
    let files = model_files(dir);
    assert_eq!(files, ["active", "v000001.json", "v000002.json"]);

    let id = server.start_training(json!({ "epochs": 1_000_000, "batch_size": 1, "seed": 3 })).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = server.json(&format!("/v1/jobs/{id}")).await;
        if job["state"] == "running" && job["epoch"].as_u64().unwrap() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the training did not get going: {job}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.flag().await, 0, "the training is still running");
    server.kill().await;

    let server = Server::start(dir).await;
    assert_no_temp_files(dir);
    let served = server.json("/v1/model").await;
    assert_eq!(served["version"], 1);
    assert_eq!(served["kernel"], first["kernel"]);
    assert_eq!(served, first);
    assert_eq!(server.flag().await, 1, "a model is served and no training runs");
    assert_eq!(server.json("/v1/models").await, versions);
    assert_eq!(model_files(dir), files);
    assert_eq!(active_pointer(dir), 1);
    let x = first["kernel"][0].as_f64().unwrap() * 5.0 + first["bias"].as_f64().unwrap();
    assert_eq!(server.predict_ok(json!([5.0])).await, [x]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_activations_serves_the_last_acknowledged_or_the_interrupted_version() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let server = Server::start(dir).await;
    server.upload_ok(linear_csv(200)).await;
    let mut models = Vec::new();
    for seed in 1..=3 {
        models.push(server.train(json!({ "epochs": 2, "seed": seed })).await);
    }
    server.kill().await;

    let mut jitter = Jitter::from_clock();
    let mut active = 3;
    let acknowledged_in_all = Arc::new(AtomicU64::new(0));
    // Activations rotate 1 -> 2 -> 3 -> 1, so after a kill the served version must be the last
    // one acknowledged or the one that was being activated, never the third.
    let next = |v: u64| v % 3 + 1;
    for round in 0..8 {
        let server = Server::start(dir).await;
        assert_no_temp_files(dir);
        let served = server.json("/v1/model").await;
        let version = served["version"].as_u64().unwrap();
        assert_eq!(served, models[version as usize - 1], "round {round}: the served model is a stored one");
        assert_eq!(active_pointer(dir), version, "round {round}: models/active names the served version");
        assert_eq!(model_files(dir), ["active", "v000001.json", "v000002.json", "v000003.json"]);
        assert!(
            version == active || version == next(active),
            "round {round}: serving v{version}, but the last acknowledged activation was v{active}"
        );

        let acknowledged = Arc::new(AtomicU64::new(version));
        let (client, base) = (server.client.clone(), server.base.clone());
        let (last, count) = (acknowledged.clone(), acknowledged_in_all.clone());
        let firing = tokio::spawn(async move {
            let mut version = version;
            loop {
                version = next(version);
                match client.post(format!("{base}/v1/models/{version}/activate")).send().await {
                    Ok(response) if response.status() == StatusCode::OK => {
                        last.store(version, Ordering::SeqCst);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(response) => panic!("activation answered {}", response.status()),
                    Err(_) => return,
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(5 + jitter.below(60))).await;
        server.kill().await;
        firing.await.unwrap();
        active = acknowledged.load(Ordering::SeqCst);
    }
    let acknowledged_in_all = acknowledged_in_all.load(Ordering::SeqCst);
    println!("{acknowledged_in_all} activations acknowledged over 8 kills");
    assert!(acknowledged_in_all > 0, "no activation was ever acknowledged before a kill");

    let server = Server::start(dir).await;
    assert_no_temp_files(dir);
    let version = server.json("/v1/model").await["version"].as_u64().unwrap();
    assert!(version == active || version == next(active), "serving v{version} after v{active}");
    assert_eq!(active_pointer(dir), version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_trainings_store_their_models_keeps_every_acknowledged_version() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let server = Server::start(dir).await;
    server.upload_ok(linear_csv(100)).await;
    server.train(json!({ "solver": "least-squares" })).await;
    server.kill().await;

    let mut jitter = Jitter::from_clock();
    let mut acknowledged = 1;
    let mut stored_in_all = 0;
    for round in 0..6 {
        let server = Server::start(dir).await;
        assert_no_temp_files(dir);
        let served = server.json("/v1/model").await;
        let version = served["version"].as_u64().unwrap();
        // The newest acknowledged version, or a newer one stored just before the kill.
        assert!(version >= acknowledged, "round {round}: serving v{version}, but v{acknowledged} was stored");
        assert_eq!(active_pointer(dir), version, "round {round}");
        assert_eq!(server.json(&format!("/v1/models/{version}")).await, served);
        let listed = server.json("/v1/models").await;
        let listed = listed.as_array().unwrap();
        assert!(
            listed.iter().any(|v| v["version"] == acknowledged),
            "round {round}: v{acknowledged} is kept"
        );
        let actives: Vec<&Value> = listed.iter().filter(|v| v["active"] == true).collect();
        assert_eq!(actives.len(), 1, "round {round}: one active version in {listed:?}");
        assert_eq!(actives[0]["version"], version);

        let (client, base) = (server.client.clone(), server.base.clone());
        let latest = Arc::new(AtomicU64::new(version));
        let seen = latest.clone();
        let firing = tokio::spawn(async move {
            loop {
                let request = client
                    .post(format!("{base}/train?wait=true"))
                    .json(&json!({ "solver": "least-squares" }));
                let Ok(response) = request.send().await else { return };
                assert_eq!(response.status(), StatusCode::OK);
                let Ok(body) = response.json::<Value>().await else { return };
                seen.store(body["model"]["version"].as_u64().unwrap(), Ordering::SeqCst);
            }
        });
        tokio::time::sleep(Duration::from_millis(10 + jitter.below(80))).await;
        server.kill().await;
        firing.await.unwrap();
        acknowledged = latest.load(Ordering::SeqCst);
        stored_in_all += acknowledged - version;
    }
    println!("{stored_in_all} trainings acknowledged over 6 kills");
    let server = Server::start(dir).await;
    assert_no_temp_files(dir);
    let version = server.json("/v1/model").await["version"].as_u64().unwrap();
    assert!(version >= acknowledged);
    assert!(stored_in_all > 0, "no training was acknowledged between the kills");
    // A kill between storing a version and pruning may leave one too many; the next training
    // prunes down to the 20 kept.
    // Versions stored but never activated (a kill between the two) count too.
    let stored = server.json("/v1/models").await[0]["version"].as_u64().unwrap();
    assert!(stored >= version);
    let newest = server.train(json!({ "solver": "least-squares" })).await;
    assert_eq!(newest["version"], stored + 1);
    let listed = server.json("/v1/models").await;
    assert_eq!(listed.as_array().unwrap().len(), (newest["version"].as_u64().unwrap() as usize).min(20));
    assert_eq!(model_files(dir).len(), listed.as_array().unwrap().len() + 1, "the files match the list");
}

/// A tmpfs mounted on a fresh directory for the length of a test, unmounted on drop (also when
/// the test fails).
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `1m`), or says why it cannot and returns `None`; under CI
    /// (the `CI` variable set) not being able to is a failure.
    fn mount(size: &str) -> Option<Self> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return unavailable("mounting a small file system needs root");
        }
        let dir = tempfile::tempdir().unwrap();
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir.path())
            .output();
        match output {
            Ok(output) if output.status.success() => Some(Self { dir }),
            Ok(output) => unavailable(&format!("mount failed: {}", String::from_utf8_lossy(&output.stderr))),
            Err(error) => unavailable(&format!("cannot run mount: {error}")),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Changes the mount's options, e.g. `ro` or `rw`.
    fn remount(&self, options: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success(), "remount,{options} failed");
    }

    /// Fills the file system with a file `name` until it has no room left.
    fn fill(&self, name: &str) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.path().join(name)).unwrap();
        let block = vec![0u8; 4096];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) if error.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(error) => panic!("filling the disk: {error}"),
            }
        }
        // A last byte-sized write, so no partial page is left free either.
        while file.write(&[0]).is_ok_and(|written| written == 1) {}
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = std::process::Command::new("umount").arg(self.path()).status();
        if !unmounted.is_ok_and(|status| status.success()) {
            let _ = std::process::Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

fn unavailable(why: &str) -> Option<Tmpfs> {
    if std::env::var_os("CI").is_some() {
        panic!("this test needs a small tmpfs, and under CI it must run: {why}");
    }
    eprintln!("skipped: {why} (set CI to make this a failure)");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_clear_error_and_the_current_model_keeps_being_served() {
    let Some(disk) = Tmpfs::mount("1m") else { return };
    let dir = disk.path().join("data");
    let server = Server::start(&dir).await;
    let small = linear_csv(100);
    server.upload_ok(small.clone()).await;
    let model = server.train(json!({ "epochs": 3, "seed": 1 })).await;
    let dataset = server.json("/v1/dataset").await;
    let probe = server.predict_ok(json!([1.0, 2.0])).await;

    // Twice the size of the whole file system.
    let big = linear_csv(150_000);
    assert!(big.len() > 2 << 20);
    let response = server.upload_alone(big).await;
    let (status, message) = server_error(response).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{message}");
    assert!(message.contains("No space left on device"), "{message}");
    assert_eq!(server.json("/v1/dataset").await, dataset, "the old dataset is still served");
    assert_eq!(std::fs::read_to_string(dir.join("dataset.csv")).unwrap(), small);
    assert_eq!(server.predict_ok(json!([1.0, 2.0])).await, probe);
    assert_no_temp_files(&dir);

    disk.fill("filler");
    let id = server.start_training(json!({ "epochs": 3, "seed": 2 })).await;
    let job = server.finished_job(id).await;
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("could not be stored") && error.contains("No space left on device"), "{error}");
    let response = server.post("/train?wait=true", &json!({ "solver": "least-squares" })).await;
    let (status, message) = server_error(response).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{message}");
    // Even re-activating the active version needs room for the pointer file.
    let response = server.client.post(server.url("/v1/models/1/activate")).send().await.unwrap();
    let (status, message) = server_error(response).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{message}");
    let response = server.upload_alone(small.clone()).await;
    assert_eq!(server_error(response).await.0, StatusCode::INSUFFICIENT_STORAGE);

    assert_eq!(server.json("/v1/model").await, model, "the previous model stays active");
    assert_eq!(server.json("/v1/models").await.as_array().unwrap().len(), 1);
    assert_eq!(server.predict_ok(json!([1.0, 2.0])).await, probe);
    assert_eq!(server.flag().await, 1);
    assert_eq!(server.json("/readyz").await["model_version"], 1, "still ready: it serves predictions");
    assert_no_temp_files(&dir);
    assert_eq!(model_files(&dir), ["active", "v000001.json"]);

    // Room again: the server carries on without a restart.
    std::fs::remove_file(disk.path().join("filler")).unwrap();
    let second = server.train(json!({ "epochs": 3, "seed": 2 })).await;
    assert_eq!(second["version"], 2);
    assert_eq!(server.json("/v1/model").await, second);
    server.upload_ok(linear_csv(120)).await;
    assert_no_temp_files(&dir);

    // A restart on the full disk serves what is stored.
    disk.fill("filler");
    server.kill().await;
    let server = Server::start(&dir).await;
    assert_eq!(server.json("/v1/model").await, second);
    assert_eq!(server.json("/v1/dataset").await["rows"], 120);
    server.predict_ok(json!([1.0, 2.0])).await;
    let response = server.post("/train?wait=true", &json!({ "solver": "least-squares" })).await;
    assert_eq!(server_error(response).await.0, StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(server.json("/v1/model").await, second);
    assert_no_temp_files(&dir);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_data_directory_is_a_clear_error_and_the_current_model_keeps_being_served() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let server = Server::start(&dir).await;
    server.upload_ok(linear_csv(100)).await;
    let model = server.train(json!({ "epochs": 3, "seed": 1 })).await;
    let dataset = server.json("/v1/dataset").await;
    let probe = server.predict_ok(json!([3.0])).await;

    // Root ignores permission bits, so the models directory becomes a regular file instead.
    std::fs::rename(dir.join("models"), data.path().join("models-moved")).unwrap();
    std::fs::write(dir.join("models"), "not a directory").unwrap();
    let id = server.start_training(json!({ "epochs": 3, "seed": 2 })).await;
    let job = server.finished_job(id).await;
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("could not be stored") && error.contains("Not a directory"), "{error}");
    let response = server.client.post(server.url("/v1/models/1/activate")).send().await.unwrap();
    let (_, message) = server_error(response).await;
    assert!(message.contains("Not a directory"), "{message}");
    assert_eq!(server.json("/v1/model").await, model);
    assert_eq!(server.predict_ok(json!([3.0])).await, probe);
    assert_eq!(server.flag().await, 1);
    assert_no_temp_files(&dir);
    std::fs::remove_file(dir.join("models")).unwrap();
    std::fs::rename(data.path().join("models-moved"), dir.join("models")).unwrap();

    // The whole data directory replaced by a file.
    std::fs::rename(&dir, data.path().join("data-moved")).unwrap();
    std::fs::write(&dir, "not a directory").unwrap();
    let (_, message) = server_error(server.upload_alone(linear_csv(50)).await).await;
    assert!(message.contains("data directory") && message.contains("Not a directory"), "{message}");
    assert_eq!(server.json("/v1/dataset").await, dataset);
    assert_eq!(server.predict_ok(json!([3.0])).await, probe);
    let id = server.start_training(json!({ "epochs": 3, "seed": 2 })).await;
    assert_eq!(server.finished_job(id).await["state"], "failed");
    assert_eq!(server.json("/v1/model").await, model);
    std::fs::remove_file(&dir).unwrap();
    std::fs::rename(data.path().join("data-moved"), &dir).unwrap();

    // Put back, everything works again without a restart.
    server.upload_ok(linear_csv(50)).await;
    assert_eq!(server.train(json!({ "epochs": 3, "seed": 3 })).await["version"], 2);
    assert_no_temp_files(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_data_directory_is_a_clear_error_and_the_current_model_keeps_being_served() {
    let Some(disk) = Tmpfs::mount("4m") else { return };
    let dir = disk.path().join("data");
    let server = Server::start(&dir).await;
    server.upload_ok(linear_csv(100)).await;
    let model = server.train(json!({ "epochs": 3, "seed": 1 })).await;
    let dataset = server.json("/v1/dataset").await;
    let probe = server.predict_ok(json!([3.0])).await;

    disk.remount("ro");
    let (_, message) = server_error(server.upload_alone(linear_csv(50)).await).await;
    assert!(message.contains("Read-only file system"), "{message}");
    let id = server.start_training(json!({ "epochs": 3, "seed": 2 })).await;
    let job = server.finished_job(id).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(job["error"].as_str().unwrap().contains("Read-only file system"), "{job}");
    let response = server.client.post(server.url("/v1/models/1/activate")).send().await.unwrap();
    let (_, message) = server_error(response).await;
    assert!(message.contains("Read-only file system"), "{message}");
    assert_eq!(server.json("/v1/model").await, model);
    assert_eq!(server.json("/v1/dataset").await, dataset);
    assert_eq!(server.predict_ok(json!([3.0])).await, probe);
    assert_eq!(server.flag().await, 1);

    // A restart on the read-only directory serves what is stored.
    server.kill().await;
    let server = Server::start(&dir).await;
    assert_eq!(server.json("/v1/model").await, model);
    assert_eq!(server.json("/v1/dataset").await, dataset);
    assert_eq!(server.predict_ok(json!([3.0])).await, probe);
    let (_, message) = server_error(server.upload_alone(linear_csv(50)).await).await;
    assert!(message.contains("Read-only file system"), "{message}");

    disk.remount("rw");
    assert_eq!(server.train(json!({ "epochs": 3, "seed": 3 })).await["version"], 2);
    server.upload_ok(linear_csv(50)).await;
    assert_no_temp_files(&dir);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_leftover_on_a_read_only_data_directory_does_not_stop_a_restart() {
    let Some(disk) = Tmpfs::mount("4m") else { return };
    let dir = disk.path().join("data");
    let server = Server::start(&dir).await;
    server.upload_ok(linear_csv(100)).await;
    let model = server.train(json!({ "epochs": 3, "seed": 1 })).await;
    // Killed in the middle of an upload, and the disk then remounted read-only (as ext4 does
    // after an I/O error with errors=remount-ro).
    let _upload = start_slow_upload(&server, 10_000, Duration::from_millis(20));
    wait_for_temp_file(&dir, 16 * 1024).await;
    server.kill().await;
    disk.remount("ro");

    let server = Server::start(&dir).await;
    assert_eq!(server.json("/v1/model").await, model);
    server.predict_ok(json!([3.0])).await;
    drop(server);
}

/// A `/predict` body sent in pieces over about `pieces * pause`.
fn slow_predict_body(pieces: usize, pause: Duration) -> reqwest::Body {
    let stream = futures_util::stream::unfold(0, move |sent| async move {
        let piece = match sent {
            0 => "{\"x_predict\": [1.5".to_owned(),
            n if n < pieces => {
                tokio::time::sleep(pause).await;
                ", 2.5".to_owned()
            }
            n if n == pieces => {
                tokio::time::sleep(pause).await;
                "]}".to_owned()
            }
            _ => return None,
        };
        Some((Ok::<_, std::io::Error>(piece), sent + 1))
    });
    reqwest::Body::wrap_stream(stream)
}

/// Reads a job's event stream to its end; returns the last event's name and data.
async fn last_event(response: Response) -> (String, Value) {
    let text = response.text().await.unwrap();
    let block = text.trim_end().rsplit("\n\n").next().unwrap().to_owned();
    let field = |name: &str| block.lines().find_map(|line| line.strip_prefix(name)).map(str::trim);
    let data = field("data:").unwrap_or_else(|| panic!("no data in the last event: {text}"));
    (field("event:").unwrap_or("").to_owned(), serde_json::from_str(data).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_uploads_and_predictions_cancels_training_and_exits_0() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let mut server = Server::start(dir).await;
    server.upload_ok(linear_csv(200)).await;
    let model = server.train(json!({ "epochs": 3, "seed": 1 })).await;
    let expected = server.predict_ok(json!([1.5, 2.5])).await;

    // A long training somebody waits for, an upload and a prediction still sending their bodies.
    let training = {
        let request =
            server.client.post(server.url("/train?wait=true")).json(&json!({ "epochs": 1_000_000 }));
        tokio::spawn(async move {
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        })
    };
    let chunks = 60;
    let upload = start_slow_upload(&server, chunks, Duration::from_millis(40));
    let prediction = {
        let request = server
            .client
            .post(server.url("/predict"))
            .header("content-type", "application/json")
            .body(slow_predict_body(40, Duration::from_millis(50)));
        tokio::spawn(async move {
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        })
    };
    wait_for_temp_file(dir, 16 * 1024).await;
    while server.flag().await != 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let job = server.json("/v1/jobs").await[0]["id"].as_u64().unwrap();
    let events = {
        let response = server.get(&format!("/v1/jobs/{job}/events")).await;
        assert_eq!(response.status(), StatusCode::OK);
        tokio::spawn(last_event(response))
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!upload.is_finished() && !prediction.is_finished(), "the requests are still in flight");

    let signalled = Instant::now();
    server.send_sigterm();
    let (status, body) = training.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("cancelled because the server is shutting down"), "{body}");
    let (name, data) = events.await.unwrap();
    assert_eq!((name.as_str(), &data["state"]), ("done", &json!("cancelled")), "{data}");
    let (status, body) = upload.await.unwrap().expect("the upload is answered, not cut off");
    assert_eq!((status, body.as_str()), (StatusCode::OK, "success"));
    let (status, body) = prediction.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let y: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(y["y_predict"].as_array().unwrap().len(), 40);
    assert_eq!(y["y_predict"][0][0].as_f64().unwrap(), expected[0]);
    assert_eq!(y["y_predict"][39][0].as_f64().unwrap(), expected[1]);
    let status = server.exit_status(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status}:\n{}", server.log());
    assert!(signalled.elapsed() < Duration::from_secs(10), "shutdown took {:?}", signalled.elapsed());
    assert_no_temp_files(dir);

    let server = Server::start(dir).await;
    let uploaded = slow_csv_contents(chunks);
    assert_eq!(
        std::fs::read_to_string(dir.join("dataset.csv")).unwrap(),
        uploaded,
        "the upload was installed"
    );
    assert_eq!(server.json("/v1/dataset").await["rows"], 800 * chunks);
    assert_eq!(server.json("/v1/model").await, model, "the cancelled training stored nothing");
    assert_eq!(server.json("/v1/models").await.as_array().unwrap().len(), 1);
    assert_eq!(model_files(dir), ["active", "v000001.json"]);
}

#[tokio::test]
async fn an_upload_refused_before_its_end_says_the_connection_closes_or_keeps_it_usable() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = crate::helpers::spawn_app_with(|config| config.limits.max_upload_bytes = 64 * 1024).await;
    let stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // Chunked: with no Content-Length the server finds the file too large only while reading it.
    let boundary = "XBOUNDARY";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.csv\"\r\n\r\n{}\r\n--{boundary}--\r\n",
        linear_csv(10_000)
    );
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    let sending = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        for chunk in body.as_bytes().chunks(16 * 1024) {
            writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
            writer.write_all(chunk).await?;
            writer.write_all(b"\r\n").await?;
        }
        writer.write_all(b"0\r\n\r\n").await?;
        Ok::<_, std::io::Error>(writer)
    });
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&response).contains("}") {
        let read = reader.read(&mut buffer).await.unwrap();
        assert!(read > 0, "the connection closed before the answer: {}", String::from_utf8_lossy(&response));
        response.extend_from_slice(&buffer[..read]);
    }
    let response = String::from_utf8_lossy(&response).to_ascii_lowercase();
    assert!(response.starts_with("http/1.1 413"), "{response}");
    if response.contains("\r\nconnection: close\r\n") {
        return;
    }
    // Not announced as closing, so the connection must take another request.
    let Ok(Ok(mut writer)) = sending.await else {
        panic!("the connection was cut while the upload was sent")
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = writer.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    let read = reader.read(&mut buffer).await;
    assert!(
        sent.is_ok() && read.as_ref().is_ok_and(|read| *read > 0),
        "after a 413 without `Connection: close` the server closed the connection: {sent:?} {read:?}"
    );
    assert!(String::from_utf8_lossy(&buffer).starts_with("HTTP/1.1 200"));
}
