//! `POST /train`: the job it answers with, waiting for the result, validation, and one job at a time.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{error_of, linear_csv, spawn_app};

#[tokio::test]
async fn train_answers_at_once_with_the_job_and_its_parameters() {
    let app = spawn_app().await;
    let response = app.client.post(app.url("/train")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let response_location = response.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["id"], 1);
    assert!(job["state"] == "queued" || job["state"] == "running", "{}", job["state"]);
    assert_eq!(response_location, "/v1/jobs/1");
    assert_eq!(job["features"], json!(["Education"]));
    assert_eq!(job["target"], "Income");
    let params = &job["params"];
    assert_eq!(
        (params["epochs"].clone(), params["batch_size"].clone(), params["learning_rate"].clone()),
        (json!(500), json!(32), json!(0.001))
    );
    assert_eq!((params["beta_1"].clone(), params["beta_2"].clone()), (json!(0.9), json!(0.999)));
    assert_eq!((params["epsilon"].clone(), params["shuffle"].clone()), (json!(1e-7), json!(true)));
    assert!(params["seed"].is_u64(), "the seed used is recorded");
    app.wait_for_training().await;
    let model: Value = app.get("/v1/model").await.json().await.unwrap();
    assert_eq!(model["params"]["seed"], params["seed"]);
}

#[tokio::test]
async fn a_recorded_seed_reproduces_the_fit() {
    let app = spawn_app().await;
    let first = app.train(json!({ "seed": 42, "epochs": 50 })).await;
    let second = app.train(json!({ "seed": 42, "epochs": 50 })).await;
    let third = app.train(json!({ "seed": 43, "epochs": 50 })).await;
    assert_eq!(first["kernel"], second["kernel"]);
    assert_eq!(first["history"], second["history"]);
    assert_ne!(first["kernel"], third["kernel"]);
}

#[tokio::test]
async fn training_over_http_reproduces_the_recorded_keras_run() {
    let fixture: Value =
        serde_json::from_str(include_str!("../fixtures/keras/income1_keras_defaults.json")).unwrap();
    let app = spawn_app().await;
    let model = app.train(json!({ "shuffle": false, "initial": fixture["initial"] })).await;
    let close = |got: &Value, want: &Value| {
        let (got, want) = (got.as_f64().unwrap(), want.as_f64().unwrap());
        assert!((got - want).abs() <= 1e-4 * want.abs(), "got {got}, Keras recorded {want}");
    };
    close(&model["kernel"][0], &fixture["final"]["kernel"][0]);
    close(&model["bias"], &fixture["final"]["bias"]);
    let predictions = app.predict_ok(json!([10.0, 15.5, 21.0])).await;
    for (got, want) in predictions.iter().zip(fixture["probe_y"].as_array().unwrap()) {
        close(&json!(got), want);
    }
}

#[tokio::test]
async fn invalid_parameters_are_rejected_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        (json!({ "epochs": 0 }), "epochs"),
        (json!({ "epochs": "many" }), "epochs"),
        (json!({ "batch_size": 0 }), "batch_size"),
        (json!({ "learning_rate": -0.1 }), "learning_rate"),
        (json!({ "beta_1": 1.5 }), "beta_1"),
        (json!({ "beta_2": 1 }), "beta_2"),
        (json!({ "epsilon": 0 }), "epsilon"),
        (json!({ "shuffle": "yes" }), "shuffle"),
        (json!({ "seed": -1 }), "seed"),
        (json!({ "initial": { "kernel": [1, 2], "bias": 0 } }), "initial.kernel"),
        (json!({ "initial": { "kernel": [1] } }), "initial"),
        (json!({ "features": ["Age"] }), "features"),
        (json!({ "features": "Education" }), "features"),
        (json!({ "features": ["Income"] }), "features"),
        (json!({ "target": "Age" }), "target"),
        (json!({ "epochz": 5 }), "epochz"),
        (json!([1, 2]), "JSON object"),
    ];
    for (body, field) in cases {
        let message = error_of(app.post_json("/train", &body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(message.contains(field), "{body}: {message:?} does not name {field}");
    }
    assert_eq!(app.flag().await, 0, "no rejected request started a training");
}

#[tokio::test]
async fn malformed_bodies_and_queries_are_client_errors() {
    let app = spawn_app().await;
    let bad_json =
        app.client.post(app.url("/train")).header("content-type", "application/json").body("{\"epochs\":");
    error_of(bad_json.send().await.unwrap(), StatusCode::BAD_REQUEST).await;
    let form = app.client.post(app.url("/train")).header("content-type", "text/plain").body("epochs=5");
    error_of(form.send().await.unwrap(), StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let query = app.client.post(app.url("/train?wait=perhaps"));
    error_of(query.send().await.unwrap(), StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn a_second_training_while_one_runs_is_a_conflict() {
    let app = spawn_app().await;
    app.upload_ok(linear_csv(50_000)).await;
    let first = app.post_json("/train", &json!({ "epochs": 200 })).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let message = error_of(app.post_json("/train", &json!({})).await, StatusCode::CONFLICT).await;
    assert!(message.contains("still running"), "{message}");
    assert_eq!(app.flag().await, 0, "the flag is 0 while a training runs");
    app.wait_for_training().await;
    assert_eq!(app.post_json("/train", &json!({ "epochs": 1 })).await.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_diverging_fit_fails_and_keeps_the_previous_model() {
    let app = spawn_app().await;
    let good = app.train(json!({ "epochs": 5 })).await;
    let response = app.post_json("/train?wait=true", &json!({ "epochs": 5, "learning_rate": 1e305 })).await;
    let message = error_of(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(message.contains("diverged") && message.contains("learning_rate"), "{message}");
    let current: Value = app.get("/v1/model").await.json().await.unwrap();
    assert_eq!(current["kernel"], good["kernel"]);
    assert_eq!(app.flag().await, 1, "a failed training does not leave the flag at 0");
}
