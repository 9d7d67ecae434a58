//! Errors the framework itself produces still use the JSON shape.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{error_of, spawn_app, spawn_app_with};

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_json() {
    let app = spawn_app().await;
    let message = error_of(app.get("/does/not/exist").await, StatusCode::NOT_FOUND).await;
    assert!(message.contains("/does/not/exist"));
    let message = error_of(app.get("/predict").await, StatusCode::METHOD_NOT_ALLOWED).await;
    assert!(message.contains("GET"));
    let response = app.client.delete(app.url("/training_flag")).send().await.unwrap();
    error_of(response, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_as_json() {
    let app = spawn_app_with(|config| config.limits.max_body_bytes = 1024).await;
    app.train(json!({ "epochs": 1 })).await;
    let big = json!({ "x_predict": vec![1.5; 1000] });
    error_of(app.post_json("/predict", &big).await, StatusCode::PAYLOAD_TOO_LARGE).await;
    let big_train = json!({ "features": vec!["Education"; 200] });
    error_of(app.post_json("/train", &big_train).await, StatusCode::PAYLOAD_TOO_LARGE).await;
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let response = app.get("/training_flag").await;
    assert!(!response.headers()["x-request-id"].is_empty());
    let response =
        app.client.get(app.url("/training_flag")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
}
