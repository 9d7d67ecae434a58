//! The `regserve` binary as a test starts it: on 127.0.0.1 with a port of its own choosing,
//! configured by `REGSERVE_*` variables, its logs kept in a file, killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::binary_command;

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
        Self::start_with(data_dir, |_| {}).await
    }

    /// Starts the binary like [`Server::start`], after letting the test add to its command
    /// (settings as `REGSERVE_*` variables, limits).
    pub(crate) async fn start_with(
        data_dir: &Path,
        configure: impl FnOnce(&mut std::process::Command),
    ) -> Self {
        let cwd = tempfile::tempdir().unwrap();
        let log = cwd.path().join("server.log");
        let output = std::fs::File::create(&log).unwrap();
        let mut command = binary_command(data_dir);
        command.env("REGSERVE_ADDR", "127.0.0.1:0");
        configure(&mut command);
        let child = tokio::process::Command::from(command)
            .current_dir(cwd.path())
            .env("REGSERVE_LOG_FORMAT", "text")
            .env("RUST_LOG", "warn,regserve::app=info")
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

    /// The peak resident memory of the process so far, in KiB (`VmHWM`).
    pub(crate) fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        let line = status.lines().find(|line| line.starts_with("VmHWM:")).expect("VmHWM is reported");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
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
