//! One trainer and predictors on one store, in process (the store in memory, so that a test can
//! take it away): predictors follow the trainer's activations, refuse state changes, pass the
//! trainer's reads on, ride out a store outage on the model they have, and never serve a version
//! that fails its checks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use regserve::settings::Role;
use regserve::storage::memory::MemoryStore;
use regserve::storage::{Key, PutMode, Storage};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_of, linear_csv, spawn_node};

/// The nodes' heartbeat interval in these tests.
const HEARTBEAT: Duration = Duration::from_millis(100);

/// A trainer with a dataset and version 1, and `count` predictors following it.
async fn cluster(store: &Arc<MemoryStore>, count: usize) -> (TestApp, Vec<TestApp>) {
    let trainer = spawn_node(store.clone(), |config| {
        config.cluster.role = Role::Trainer;
        config.cluster.heartbeat_interval = HEARTBEAT;
    })
    .await;
    trainer.upload_ok(linear_csv(200)).await;
    trainer.train(json!({ "solver": "least-squares" })).await;
    let mut predictors = Vec::new();
    for _ in 0..count {
        predictors.push(predictor(store, Some(&trainer), None).await);
    }
    (trainer, predictors)
}

async fn predictor(
    store: &Arc<MemoryStore>,
    trainer: Option<&TestApp>,
    cache: Option<&std::path::Path>,
) -> TestApp {
    let trainer_url = trainer.map(|trainer| trainer.url(""));
    let cache = cache.map(|dir| dir.to_path_buf());
    spawn_node(store.clone(), move |config| {
        config.cluster.role = Role::Predictor;
        config.cluster.trainer_url = trainer_url;
        config.cluster.cache_dir = cache;
        config.cluster.heartbeat_interval = HEARTBEAT;
    })
    .await
}

/// The version `app` serves, if any.
async fn served_version(app: &TestApp) -> Option<u64> {
    let response = app.get("/v1/model").await;
    match response.status() {
        StatusCode::OK => response.json::<Value>().await.unwrap()["version"].as_u64(),
        _ => None,
    }
}

/// Waits until `app` serves `version`, for at most `limit`; returns how long it took.
async fn serves(app: &TestApp, version: u64, limit: Duration) -> Duration {
    let started = Instant::now();
    while served_version(app).await != Some(version) {
        assert!(
            started.elapsed() < limit,
            "v{version} not served within {limit:?}: {:?}",
            served_version(app).await
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

async fn activate(app: &TestApp, version: u64) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/models/regserve/versions/{version}/activate")))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictors_serve_every_activation_within_a_second() {
    let store = Arc::new(MemoryStore::new());
    let (trainer, predictors) = cluster(&store, 2).await;
    let mut slowest = Duration::ZERO;
    for round in 0..20u64 {
        let version = match round % 2 {
            0 => trainer.train(json!({ "epochs": 2, "seed": round })).await["version"].as_u64().unwrap(),
            _ => {
                let older = 1 + round / 2;
                assert_eq!(activate(&trainer, older).await.status(), StatusCode::OK);
                older
            }
        };
        let expected = trainer.predict_ok(json!([3.0])).await;
        for predictor in &predictors {
            slowest = slowest.max(serves(predictor, version, Duration::from_secs(1)).await);
            assert_eq!(predictor.predict_ok(json!([3.0])).await, expected, "round {round}");
        }
    }
    println!("slowest activation to served: {slowest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_predictor_with_a_trainer_url_serves_an_announced_activation_before_its_next_look() {
    let store = Arc::new(MemoryStore::new());
    let (trainer, _) = cluster(&store, 0).await;
    let trainer_url = trainer.url("");
    let predictor = spawn_node(store.clone(), move |config| {
        config.cluster.role = Role::Predictor;
        config.cluster.trainer_url = Some(trainer_url);
        config.cluster.follow_interval = Duration::from_secs(600);
    })
    .await;
    serves(&predictor, 1, Duration::from_secs(5)).await;
    // Its stream to the trainer is open once the trainer counts it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for version in 2..=4 {
        assert_eq!(trainer.train(json!({ "epochs": 2, "seed": version })).await["version"], version);
        let took = serves(&predictor, version, Duration::from_secs(5)).await;
        println!("v{version} served {took:?} after its activation");
    }
    assert_eq!(activate(&trainer, 2).await.status(), StatusCode::OK);
    serves(&predictor, 2, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_predictor_refuses_state_changes_and_passes_the_trainers_reads_on() {
    let store = Arc::new(MemoryStore::new());
    let (trainer, predictors) = cluster(&store, 1).await;
    let predictor = &predictors[0];
    let refusals = [
        predictor.upload(linear_csv(10)).await,
        predictor.post_json("/train", &json!({})).await,
        activate(predictor, 1).await,
        predictor.client.delete(predictor.url("/v1/jobs/1")).send().await.unwrap(),
    ];
    for response in refusals {
        let message = error_of(response, StatusCode::FORBIDDEN).await;
        assert!(message.contains("only predicts"), "{message}");
        assert!(message.contains(&format!("the trainer at {}", trainer.url(""))), "{message}");
    }
    for path in ["/v1/jobs", "/v1/jobs/1", "/v1/dataset", "/v1/dataset/rows?limit=5"] {
        assert_eq!(predictor.json(path).await, trainer.json(path).await, "{path}");
    }
    let csv = predictor.get("/v1/dataset.csv").await.bytes().await.unwrap();
    assert_eq!(csv, linear_csv(200));
    let health = predictor.json("/healthz").await;
    assert_eq!((health["status"].clone(), health["role"].clone()), (json!("ok"), json!("predictor")));
    assert_eq!(predictor.flag().await, 1, "a predictor serving a model says it has one");

    let alone = self::predictor(&store, None, None).await;
    let message = error_of(alone.get("/v1/jobs").await, StatusCode::FORBIDDEN).await;
    assert!(message.contains("--trainer-url"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_fails_no_prediction_and_the_predictor_catches_up() {
    let store = Arc::new(MemoryStore::new());
    let (trainer, predictors) = cluster(&store, 1).await;
    let predictor = &predictors[0];
    serves(predictor, 1, Duration::from_secs(1)).await;

    store.set_unavailable(true);
    let started = Instant::now();
    let mut answered = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        predictor.predict_ok(json!([1.0, 2.0])).await;
        answered += 1;
    }
    let health = predictor.json("/healthz").await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["store"]["reachable"], false, "{health}");
    assert!(health["problems"][0].as_str().unwrap().contains("the store has not answered for"), "{health}");
    let metrics = predictor.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("regserve_store_up 0\n"), "{metrics}");
    assert!(answered > 10, "{answered} predictions in 1.5 s");

    store.set_unavailable(false);
    let version = trainer.train(json!({ "epochs": 2, "seed": 9 })).await["version"].as_u64().unwrap();
    serves(predictor, version, Duration::from_secs(2)).await;
    assert_eq!(predictor.json("/healthz").await["status"], "ok");
    assert!(predictor.get("/metrics").await.text().await.unwrap().contains("regserve_store_up 1\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_predictor_started_without_the_store_serves_its_cached_model_or_is_not_ready() {
    let store = Arc::new(MemoryStore::new());
    let (trainer, _) = cluster(&store, 0).await;
    let cache = tempfile::tempdir().unwrap();
    let first = predictor(&store, Some(&trainer), Some(cache.path())).await;
    serves(&first, 1, Duration::from_secs(1)).await;

    store.set_unavailable(true);
    let cached = predictor(&store, Some(&trainer), Some(cache.path())).await;
    assert_eq!(cached.json("/readyz").await["model_version"], 1, "the cached model is served");
    cached.predict_ok(json!([2.0])).await;
    assert_eq!(cached.json("/healthz").await["store"]["reachable"], false);
    let fresh = predictor(&store, Some(&trainer), None).await;
    error_of(fresh.get("/readyz").await, StatusCode::SERVICE_UNAVAILABLE).await;

    store.set_unavailable(false);
    let version = trainer.train(json!({ "epochs": 2, "seed": 5 })).await["version"].as_u64().unwrap();
    serves(&cached, version, Duration::from_secs(2)).await;
    serves(&fresh, version, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_fails_its_checks_is_reported_and_never_served() {
    let store = Arc::new(MemoryStore::new());
    let (_trainer, predictors) = cluster(&store, 1).await;
    let predictor = &predictors[0];
    serves(predictor, 1, Duration::from_secs(1)).await;
    let put = |key: &'static str, bytes: &'static str| {
        let store = store.clone();
        async move { store.put(&Key::new(key).unwrap(), bytes.into(), PutMode::Overwrite).await.unwrap() }
    };
    put("models/v000002.json", "{\"half\": \"a file").await;
    put("models/active", "{\"version\":2,\"sha256\":\"00\"}").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(served_version(predictor).await, Some(1), "the last good model stays in service");
    let health = predictor.json("/healthz").await;
    assert!(health.to_string().contains("the active model version 2 cannot be served"), "{health}");
    put("models/active", "{\"version\":7}").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(served_version(predictor).await, Some(1));
    assert!(predictor.json("/healthz").await.to_string().contains("model version 7 does not exist"));
    predictor.predict_ok(json!([1.0])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_is_listed_live_with_its_role_and_served_version() {
    let store = Arc::new(MemoryStore::new());
    let (trainer, predictors) = cluster(&store, 2).await;
    let version = trainer.train(json!({ "epochs": 2, "seed": 3 })).await["version"].as_u64().unwrap();
    serves(&predictors[1], version, Duration::from_secs(1)).await;
    tokio::time::sleep(HEARTBEAT * 3).await;
    let listed = predictors[0].json("/v1/nodes").await;
    let nodes = listed["nodes"].as_array().unwrap();
    let mut seen: Vec<(String, String, u64, String)> = nodes
        .iter()
        .map(|node| {
            let text = |field: &str| node[field].as_str().unwrap().to_owned();
            (text("role"), text("address"), node["model_version"].as_u64().unwrap(), text("state"))
        })
        .collect();
    seen.sort();
    let mut expected: Vec<(String, String, u64, String)> =
        [("trainer", &trainer), ("predictor", &predictors[0]), ("predictor", &predictors[1])]
            .iter()
            .map(|(role, app)| (role.to_string(), app.url(""), version, "up".to_string()))
            .collect();
    expected.sort();
    assert_eq!(seen, expected, "{listed}");
    let port = predictors[0].addr.port().to_string();
    assert!(listed["answered_by"].as_str().unwrap().ends_with(&port), "{listed}");
    assert!(nodes.iter().all(|node| node["age_seconds"].as_f64().unwrap() < 1.0), "{listed}");
}
