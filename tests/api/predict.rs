//! `POST /predict`: the original's shapes, several features, and every malformed request.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{INCOME2, error_of, spawn_app};

#[tokio::test]
async fn before_any_training_predict_says_to_train_first() {
    let app = spawn_app().await;
    let message = error_of(app.predict(json!([10])).await, StatusCode::CONFLICT).await;
    assert!(message.contains("POST /train"), "{message}");
}

#[tokio::test]
async fn predictions_come_back_as_one_element_lists_computed_from_the_model() {
    let app = spawn_app().await;
    let model = app.train(json!({ "epochs": 10 })).await;
    let (w, b) = (model["kernel"][0].as_f64().unwrap(), model["bias"].as_f64().unwrap());

    let response = app.predict(json!([10, 15.5, 21])).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let rows = body["y_predict"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for (row, x) in rows.iter().zip([10.0, 15.5, 21.0]) {
        let y = row.as_array().unwrap()[0].as_f64().unwrap();
        assert!((y - (w * x + b)).abs() < 1e-9 * y.abs().max(1.0), "{y} vs {}", w * x + b);
    }
    // Integers, floats and one-element rows are the same input.
    assert_eq!(app.predict_ok(json!([[10], [15.5]])).await, app.predict_ok(json!([10.0, 15.5])).await);
    assert!(app.predict_ok(json!([])).await.is_empty());
}

#[tokio::test]
async fn a_model_with_two_features_takes_rows() {
    let app = spawn_app().await;
    app.upload_ok(INCOME2).await;
    let model = app.train(json!({ "epochs": 10, "features": ["Education", "Seniority"] })).await;
    let kernel: Vec<f64> = model["kernel"].as_array().unwrap().iter().map(|w| w.as_f64().unwrap()).collect();
    let bias = model["bias"].as_f64().unwrap();
    let got = app.predict_ok(json!([[12, 50], [20, 150]])).await;
    let want = [12.0 * kernel[0] + 50.0 * kernel[1] + bias, 20.0 * kernel[0] + 150.0 * kernel[1] + bias];
    for (got, want) in got.iter().zip(want) {
        assert!((got - want).abs() < 1e-9 * want.abs().max(1.0));
    }
    let message = error_of(app.predict(json!([12, 50])).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(message.contains("expects 2 (Education, Seniority)"), "{message}");
    let message =
        error_of(app.predict(json!([[12, 50], [1, 2, 3]])).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(message.contains("x_predict[1] has 3 values"), "{message}");
}

#[tokio::test]
async fn malformed_requests_are_json_errors_that_say_what_is_wrong() {
    let app = spawn_app().await;
    // A kernel well above 1, so that 1e308 overflows the prediction.
    app.train(json!({ "epochs": 1, "initial": { "kernel": [5], "bias": 0 } })).await;
    let post = |body: &'static str, content_type: &'static str| {
        app.client.post(app.url("/predict")).header("content-type", content_type).body(body).send()
    };
    let cases: [(&str, &str, StatusCode, &str); 9] = [
        ("{}", "application/json", StatusCode::UNPROCESSABLE_ENTITY, "missing field `x_predict`"),
        (
            "{\"x_predict\": [\"10\"]}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "x_predict[0]: invalid type: string",
        ),
        ("{\"x_predict\": 10}", "application/json", StatusCode::UNPROCESSABLE_ENTITY, "x_predict"),
        (
            "{\"x_predict\": [[1, \"a\"]]}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "x_predict[0]",
        ),
        ("{\"x_predict\": [NaN]}", "application/json", StatusCode::BAD_REQUEST, "x_predict[0]"),
        ("{\"x_predict\": [1e400]}", "application/json", StatusCode::BAD_REQUEST, "number out of range"),
        (
            "{\"x_predict\": [1e308]}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "not a finite number",
        ),
        ("{\"x_predict\": [1,", "application/json", StatusCode::BAD_REQUEST, "EOF"),
        ("{\"x_predict\": [1]}", "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/json"),
    ];
    for (body, content_type, status, expected) in cases {
        let message = error_of(post(body, content_type).await.unwrap(), status).await;
        assert!(message.contains(expected), "{body}: {message:?} does not contain {expected:?}");
    }
}
