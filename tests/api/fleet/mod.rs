//! A real cluster in processes: SeaweedFS as the store, one trainer and three predictors (the
//! binary) on it, and nginx in front, as the README's "Running a cluster" sets it up. The tests
//! need `weed` (`REGSERVE_TEST_WEED`, which the test script sets) and nginx (`REGSERVE_TEST_NGINX`
//! or `/usr/sbin/nginx`); without them they are skipped, except under CI, where that fails.

mod balancer;
mod tests;
mod weed;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use self::balancer::Balancer;
use self::weed::{BUCKET, Weed};
use crate::helpers::{free_port, linear_csv};
use crate::process::Server;

/// The predictors' heartbeat interval here.
const HEARTBEAT: &str = "500ms";

/// The programs a fleet needs, if they are installed.
fn programs() -> Option<(PathBuf, PathBuf)> {
    let weed = std::env::var_os("REGSERVE_TEST_WEED").map(PathBuf::from).filter(|path| path.exists());
    let nginx = std::env::var_os("REGSERVE_TEST_NGINX")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")))
        .filter(|path| path.exists());
    match (weed, nginx) {
        (Some(weed), Some(nginx)) => Some((weed, nginx)),
        missing => {
            let why = format!("a fleet needs weed (REGSERVE_TEST_WEED) and nginx; found {missing:?}");
            assert!(std::env::var_os("CI").is_none(), "{why}, and under CI these tests must run");
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// One node of the fleet: its settings, so that it can be started again the same.
pub struct Node {
    pub server: Option<Server>,
    role: &'static str,
    port: u16,
    scratch: tempfile::TempDir,
}

impl Node {
    /// A trainer on `port`, not started yet.
    pub fn trainer_on(port: u16) -> Self {
        Self { server: None, role: "trainer", port, scratch: tempfile::tempdir().unwrap() }
    }
}

pub struct Fleet {
    pub store: Weed,
    pub prefix: String,
    pub trainer: Node,
    pub predictors: Vec<Node>,
    /// Started once every node answers, so that its first health checks find them up.
    balancer: Option<Balancer>,
    trainer_port: u16,
}

impl Fleet {
    /// A store, a trainer with a dataset and version 1, `predictors` predictors serving it, and
    /// nginx in front. `None` when weed or nginx is missing (outside CI).
    pub async fn start(predictors: usize) -> Option<Self> {
        let (weed, nginx) = programs()?;
        let store = Weed::start(weed).await;
        let prefix = format!("fleet{}", free_port());
        let trainer_port = free_port();
        let mut predictor_ports = Vec::new();
        for _ in 0..predictors {
            predictor_ports.push(free_port());
        }
        let mut fleet = Self {
            store,
            prefix,
            trainer: Node::trainer_on(trainer_port),
            predictors: Vec::new(),
            balancer: None,
            trainer_port,
        };
        fleet.trainer.server = Some(fleet.start_node("trainer", trainer_port, &fleet.trainer.scratch).await);
        let trainer = fleet.trainer();
        trainer.upload_ok(linear_csv(200)).await;
        trainer.train(json!({ "solver": "least-squares" })).await;
        for &port in &predictor_ports {
            let scratch = tempfile::tempdir().unwrap();
            let server = fleet.start_node("predictor", port, &scratch).await;
            fleet.predictors.push(Node { server: Some(server), role: "predictor", port, scratch });
        }
        fleet.all_serve(1, Duration::from_secs(5)).await;
        fleet.balancer = Some(Balancer::start(&nginx, trainer_port, &predictor_ports).await);
        Some(fleet)
    }

    /// The store's URL of this fleet.
    pub fn store_url(&self) -> String {
        format!("s3://{BUCKET}/{}", self.prefix)
    }

    /// Starts a node of `role` on `port`, its cache in `scratch`.
    pub async fn start_node(&self, role: &str, port: u16, scratch: &tempfile::TempDir) -> Server {
        let (store, trainer) = (self.store_url(), format!("http://127.0.0.1:{}", self.trainer_port));
        let cache = scratch.path().join("cache");
        let env = self.store.env();
        Server::start_with(scratch.path(), move |command| {
            command.envs(env);
            command
                .env("REGSERVE_STORE", store)
                .env("REGSERVE_ROLE", role)
                .env("REGSERVE_ADDR", format!("127.0.0.1:{port}"))
                .env("REGSERVE_TRAINER_URL", trainer)
                .env("REGSERVE_CACHE_DIR", cache)
                .env("REGSERVE_HEARTBEAT_INTERVAL", HEARTBEAT)
                // Every version a test saw served stays stored, to be compared.
                .env("REGSERVE_KEEP_MODELS", "1000");
        })
        .await
    }

    /// Starts a stopped node again, the same as before (or a new one for the first time).
    pub async fn restart(&self, node: &mut Node) {
        node.server = Some(self.start_node(node.role, node.port, &node.scratch).await);
    }

    /// Starts the trainer again after it was stopped.
    pub async fn restart_trainer(&mut self) {
        let server = self.start_node(self.trainer.role, self.trainer.port, &self.trainer.scratch).await;
        self.trainer.server = Some(server);
    }

    pub fn balancer(&self) -> &Balancer {
        self.balancer.as_ref().expect("the balancer runs")
    }

    pub fn trainer(&self) -> &Server {
        self.trainer.server.as_ref().expect("the trainer runs")
    }

    pub fn predictor(&self, index: usize) -> &Server {
        self.predictors[index].server.as_ref().expect("the predictor runs")
    }

    /// Waits until every running predictor serves `version`, for at most `limit` each from now;
    /// returns the longest wait.
    pub async fn all_serve(&self, version: u64, limit: Duration) -> Duration {
        let started = Instant::now();
        for node in &self.predictors {
            let Some(server) = &node.server else { continue };
            while served(server).await != Some(version) {
                let now = served(server).await;
                assert!(
                    started.elapsed() < limit,
                    "predictor :{} serves {now:?}, not v{version}, after {limit:?}",
                    node.port
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        started.elapsed()
    }

    /// A prediction through the load balancer.
    pub async fn predict(&self, client: &reqwest::Client, x: f64) -> Result<Value, String> {
        let response = client
            .post(self.balancer().url("/predict"))
            .json(&json!({ "x_predict": [x] }))
            .send()
            .await
            .map_err(|error| error.to_string())?;
        let status = response.status();
        let body = response.text().await.map_err(|error| error.to_string())?;
        match status {
            StatusCode::OK => Ok(serde_json::from_str(&body).unwrap()),
            _ => Err(format!("{status}: {body}")),
        }
    }
}

/// The version `server` serves, if any.
pub async fn served(server: &Server) -> Option<u64> {
    let response = server.client.get(server.url("/v1/model")).send().await.ok()?;
    if response.status() != StatusCode::OK {
        return None;
    }
    response.json::<Value>().await.ok()?["version"].as_u64()
}
