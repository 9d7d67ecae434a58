//! Stored model versions damaged in the store, with the real binary: the server still starts, says
//! which versions it skipped, and serves nothing rather than a wrong model when the active one is
//! among them.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::process::Server;

/// A store with versions 1 to 3 stored and version 2 active.
async fn three_versions(dir: &std::path::Path) {
    let server = Server::start(dir).await;
    for seed in 1..=3 {
        server.train(json!({ "epochs": 2, "seed": seed })).await;
    }
    let response =
        server.client.post(server.url("/v1/models/regserve/versions/2/activate")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    server.kill().await;
}

async fn damage(dir: &std::path::Path, version: u64, contents: &'static str) {
    crate::stores::put(dir, &format!("models/v{version:06}.json"), contents).await;
}

/// The JSON error of `response`, which must have `status`.
async fn error(response: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    response.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_version_is_skipped_and_reported_and_its_number_never_reused() {
    let data = tempfile::tempdir().unwrap();
    three_versions(data.path()).await;
    damage(data.path(), 1, "not json at all").await;
    damage(data.path(), 3, r#"{"version": 3, "kernel": [null]}"#).await;

    let server = Server::start(data.path()).await;
    let health = server.json("/healthz").await;
    assert_eq!(health["status"], "degraded", "{health}");
    let problems = health["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{health}");
    assert!(problems[0].as_str().unwrap().contains("model version 1 is unreadable"), "{health}");
    assert!(server.log().contains("a stored model version is unreadable"), "logged:\n{}", server.log());

    let versions = server.json("/v1/models").await;
    let listed: Vec<(u64, bool, bool)> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_u64().unwrap(), v["active"] == true, v["error"].is_string()))
        .collect();
    assert_eq!(listed, [(3, false, true), (2, true, false), (1, false, true)]);
    assert_eq!(server.json("/v1/model").await["version"], 2, "the active version is served");
    assert_eq!(server.json("/readyz").await["model_version"], 2);
    let message =
        error(server.get("/v1/models/regserve/versions/1").await, StatusCode::INTERNAL_SERVER_ERROR).await;
    assert!(message.contains("unreadable"), "{message}");
    let activate =
        server.client.post(server.url("/v1/models/regserve/versions/3/activate")).send().await.unwrap();
    assert_eq!(activate.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(server.json("/v1/model").await["version"], 2, "a failed activation changes nothing");

    let newest = server.train(json!({ "solver": "least-squares" })).await;
    assert_eq!(newest["version"], 4, "the unreadable v3 keeps its number");
    let kept = crate::stores::object(data.path(), "models/v000003.json").await.unwrap();
    assert_eq!(kept, r#"{"version": 3, "kernel": [null]}"#, "the unreadable file is left as it is");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_active_version_serves_nothing_until_another_is_activated() {
    let data = tempfile::tempdir().unwrap();
    three_versions(data.path()).await;
    damage(data.path(), 2, "{").await;

    let server = Server::start(data.path()).await;
    let message = error(server.get("/readyz").await, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(message.contains("the active model version 2 cannot be served"), "{message}");
    let predict = server.post("/predict", &json!({ "x_predict": [10] })).await;
    let message = error(predict, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(message.contains("activate another version"), "{message}");
    assert_eq!(server.flag().await, 0, "no model is served");
    let health = server.json("/healthz").await;
    assert_eq!(health["status"], "degraded");
    assert!(health.to_string().contains("the active model version 2 cannot be served"), "{health}");
    let versions = server.json("/v1/models").await;
    assert_eq!(versions[1]["version"], 2);
    assert_eq!((versions[1]["active"].clone(), versions[1]["error"].is_string()), (json!(true), true));

    let response =
        server.client.post(server.url("/v1/models/regserve/versions/3/activate")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.json("/readyz").await["model_version"], 3);
    assert_eq!(server.predict_ok(json!([10])).await.len(), 1);
    assert_eq!(server.flag().await, 1);
    server.kill().await;

    // The new pointer survives a restart; the damaged file is still reported, not served.
    let server = Server::start(data.path()).await;
    assert_eq!(server.json("/v1/model").await["version"], 3);
    assert_eq!(server.json("/healthz").await["status"], "degraded");
}
