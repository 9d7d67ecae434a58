//! Stored model versions: listing, fetching, rollback, ETag polling, pruning.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, error_of, model_file, spawn_app, spawn_app_sharing_store, spawn_app_with};
use crate::stores::{active_pointer, model_objects, object};

#[tokio::test]
async fn every_training_stores_a_version_and_the_newest_is_active() {
    let app = spawn_app().await;
    let first = app.train(json!({ "epochs": 5, "seed": 1 })).await;
    let second = app.train(json!({ "epochs": 5, "seed": 2 })).await;
    assert_eq!((first["version"].clone(), second["version"].clone()), (json!(1), json!(2)));

    let versions = app.json("/v1/models").await;
    let listed: Vec<_> =
        versions.as_array().unwrap().iter().map(|v| (v["version"].clone(), v["active"].clone())).collect();
    assert_eq!(listed, [(json!(2), json!(true)), (json!(1), json!(false))]);
    assert_eq!(versions[1]["mse"], first["mse"]);
    assert_eq!(versions[1]["solver"], "adam");

    let stored = model_file(app.json("/v1/models/regserve/versions/1").await);
    assert_eq!(stored, first, "a stored version is exactly the model that was trained");
    assert!(object(app.data_dir.path(), "models/v000002.json").await.is_some());
    error_of(app.get("/v1/models/regserve/versions/9").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn activating_an_older_version_rolls_back_predictions() {
    let app = spawn_app().await;
    app.train(json!({ "epochs": 5, "seed": 1 })).await;
    let v1 = app.predict_ok(json!([12])).await;
    app.train(json!({ "solver": "least-squares" })).await;
    assert_ne!(app.predict_ok(json!([12])).await, v1);

    let response = app.client.post(app.url("/v1/models/regserve/versions/1/activate")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.predict_ok(json!([12])).await, v1);
    assert_eq!(app.json("/v1/model").await["version"], 1);
    assert_eq!(active_pointer(app.data_dir.path()).await, 1);

    let response = app.client.post(app.url("/v1/models/regserve/versions/5/activate")).send().await.unwrap();
    error_of(response, StatusCode::NOT_FOUND).await;
    assert_eq!(app.json("/v1/model").await["version"], 1, "a failed activation changes nothing");
}

#[tokio::test]
async fn edge_devices_poll_the_model_with_an_etag() {
    let app = spawn_app().await;
    app.train(json!({ "epochs": 2 })).await;
    let response = app.get("/v1/model").await;
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, "\"v1\"");

    let unchanged = app.client.get(app.url("/v1/model")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(unchanged.headers()["etag"], etag.as_str());
    assert!(unchanged.bytes().await.unwrap().is_empty());
    let weak = app.client.get(app.url("/v1/model")).header("if-none-match", "W/\"v1\"").send().await.unwrap();
    assert_eq!(weak.status(), StatusCode::NOT_MODIFIED, "If-None-Match compares weakly");

    app.train(json!({ "epochs": 2 })).await;
    let changed = app.client.get(app.url("/v1/model")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert_eq!(changed.headers()["etag"], "\"v2\"");
}

#[tokio::test]
async fn old_versions_are_pruned_beyond_the_configured_count() {
    let app = spawn_app_with(|config| config.keep_models = 2).await;
    for seed in 0..4 {
        app.train(json!({ "epochs": 1, "seed": seed })).await;
    }
    let versions: Vec<u64> = app
        .json("/v1/models")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [4, 3]);
    let objects = model_objects(app.data_dir.path()).await;
    assert_eq!(objects, ["active", "v000003.json", "v000004.json"], "two model files and the active pointer");
    error_of(app.get("/v1/models/regserve/versions/1").await, StatusCode::NOT_FOUND).await;
}

async fn activate(app: &TestApp, version: u64) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/models/regserve/versions/{version}/activate")))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn two_servers_on_one_store_never_overwrite_each_others_activation() {
    let first = spawn_app().await;
    first.train(json!({ "epochs": 2, "seed": 1 })).await;
    first.train(json!({ "epochs": 2, "seed": 2 })).await;
    let second = spawn_app_sharing_store(&first).await;
    assert_eq!(second.json("/v1/model").await["version"], 2);

    assert_eq!(activate(&first, 1).await.status(), StatusCode::OK);
    // The second server still believes version 2 is active: its swap of the pointer loses.
    let message = error_of(activate(&second, 2).await, StatusCode::CONFLICT).await;
    assert!(message.contains("it is now version 1"), "{message}");
    assert_eq!(second.json("/v1/model").await["version"], 1, "the loser serves the winner");
    assert_eq!(active_pointer(first.data_dir.path()).await, 1, "the pointer stays whole");

    // Trainings take fresh numbers and activate through the same swap.
    let third = second.train(json!({ "epochs": 2, "seed": 3 })).await;
    assert_eq!(third["version"], 3);
    let message = error_of(activate(&first, 2).await, StatusCode::CONFLICT).await;
    assert!(message.contains("it is now version 3"), "{message}");
    assert_eq!(first.json("/v1/model").await, third);
    let racing = first.post_json("/train?wait=true", &json!({ "epochs": 2, "seed": 4 })).await;
    assert_eq!(racing.status(), StatusCode::OK, "after catching up, the first server activates again");
    assert_eq!(active_pointer(first.data_dir.path()).await, 4);
}
