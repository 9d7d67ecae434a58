//! `GET /v1/model` and `GET /training_flag`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{error_of, spawn_app};

#[tokio::test]
async fn model_is_a_conflict_before_training() {
    let app = spawn_app().await;
    let message = error_of(app.get("/v1/model").await, StatusCode::CONFLICT).await;
    assert!(message.contains("train"), "{message}");
}

#[tokio::test]
async fn model_describes_weights_parameters_history_and_metrics() {
    let app = spawn_app().await;
    app.train(json!({ "epochs": 30, "seed": 9 })).await;
    let model: Value = app.get("/v1/model").await.json().await.unwrap();
    assert_eq!(model["features"], json!(["Education"]));
    assert_eq!(model["target"], "Income");
    assert_eq!(model["kernel"].as_array().unwrap().len(), 1);
    assert!(model["bias"].is_f64());
    assert_eq!(model["params"]["seed"], 9);
    assert_eq!(model["params"]["epochs"], 30);
    let losses = model["history"]["loss"].as_array().unwrap();
    assert_eq!(losses.len(), 30, "one loss per epoch");
    assert!(model["trained_at"].as_str().unwrap().contains('T'));
    // The exact least-squares MSE on Income1, from the reference notes.
    let optimum = model["optimum_mse"].as_f64().unwrap();
    assert!((optimum - 29.82881619900623).abs() < 1e-9, "{optimum}");
    let mse = model["mse"].as_f64().unwrap();
    assert!(mse >= optimum, "no line beats least squares: {mse} < {optimum}");
}

#[tokio::test]
async fn flag_reads_exactly_as_the_original() {
    let app = spawn_app().await;
    let body = app.get("/training_flag").await.text().await.unwrap();
    assert_eq!(body, r#"{"training_flag":0}"#);
    app.train(json!({ "epochs": 1 })).await;
    let body = app.get("/training_flag").await.text().await.unwrap();
    assert_eq!(body, r#"{"training_flag":1}"#);
}

#[tokio::test]
async fn health_is_always_ok_and_readiness_waits_for_a_model() {
    let app = spawn_app().await;
    let store = crate::stores::location(app.data_dir.path()).to_string();
    let expected = json!({ "status": "ok", "role": "all", "store": { "name": store, "reachable": true } });
    assert_eq!(app.json("/healthz").await, expected);
    let message = error_of(app.get("/readyz").await, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(message.contains("no model"), "{message}");
    app.train(json!({ "epochs": 1 })).await;
    assert_eq!(app.json("/readyz").await, json!({ "status": "ready", "model_version": 1 }));
}
