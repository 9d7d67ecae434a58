//! The `regserve` binary as a test runs it: started on a free loopback port with its settings in
//! `REGSERVE_*` variables (and any flags), from an unrelated directory, stopped by SIGTERM, and
//! killed if a test ends without stopping it.

use std::path::Path;
use std::process::{Child, Command, ExitStatus};

use reqwest::{Response, StatusCode};
use serde_json::Value;

use crate::helpers::{binary_command, free_port, wait_until_answering};

pub struct Served {
    child: Child,
    pub base: String,
    pub client: reqwest::Client,
}

impl Served {
    /// Starts the binary on the store of `data_dir` with `flags`, and waits until it answers.
    pub async fn start(data_dir: &Path, flags: &[&str]) -> Self {
        let port = free_port();
        let elsewhere = tempfile::tempdir().unwrap();
        let child = binary_command(data_dir)
            .current_dir(elsewhere.path())
            .args(flags)
            .env("REGSERVE_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        let served = Self { child, base: format!("http://127.0.0.1:{port}"), client: reqwest::Client::new() };
        wait_until_answering(&served.base).await;
        served
    }

    /// Stops it with SIGTERM and waits for it.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        self.child.wait().unwrap()
    }

    /// Kills it with SIGKILL, as a crash would.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn json(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).json(body).send().await.unwrap()
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.client.put(self.url(path)).json(body).send().await.unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
