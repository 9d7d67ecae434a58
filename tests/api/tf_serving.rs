//! TensorFlow Serving's REST API: version status, metadata, `:predict` in the row and columnar
//! formats (served and stored versions), and its refusals, compared with `/predict`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_of, spawn_app};

/// A two-feature dataset: `y = a + 2b`.
pub const TWO_FEATURES: &str = "a,b,y\n1,1,3\n2,1,4\n1,3,7\n4,2,8\n0,5,10\n";

/// A server with a model of `a` and `b`.
pub async fn two_feature_app() -> TestApp {
    let app = spawn_app().await;
    app.upload_ok(TWO_FEATURES).await;
    app.train(json!({ "features": ["a", "b"], "target": "y", "solver": "least-squares" })).await;
    app
}

async fn tf_predict(app: &TestApp, path: &str, body: Value) -> Value {
    let response = app.post_json(path, &body).await;
    assert_eq!(response.status(), StatusCode::OK, "{path} {body}");
    response.json().await.unwrap()
}

/// `[[y1], [y2]]` as `/predict` answers it for the same rows.
fn nested(values: &[f64]) -> Value {
    json!(values.iter().map(|value| [value]).collect::<Vec<_>>())
}

#[tokio::test]
async fn predict_answers_in_rows_and_columns_as_predict_does() {
    let app = spawn_app().await;
    app.train(json!({ "epochs": 5, "seed": 1 })).await;
    let expected = nested(&app.predict_ok(json!([10, 15.5])).await);
    let path = "/v1/models/regserve:predict";
    for instances in [json!([10, 15.5]), json!([[10], [15.5]]), json!([{ "x": 10 }, { "x": [15.5] }])] {
        let answer = tf_predict(&app, path, json!({ "instances": instances })).await;
        assert_eq!(answer, json!({ "predictions": expected }), "{instances}");
    }
    for inputs in [json!([10, 15.5]), json!({ "x": [[10], [15.5]] })] {
        let answer = tf_predict(&app, path, json!({ "inputs": inputs })).await;
        assert_eq!(answer, json!({ "outputs": expected }), "{inputs}");
    }
    let signed = json!({ "signature_name": "serving_default", "instances": [10, 15.5] });
    assert_eq!(tf_predict(&app, path, signed).await["predictions"], expected);
}

#[tokio::test]
async fn status_and_metadata_describe_the_served_version() {
    let app = two_feature_app().await;
    let status = app.json("/v1/models/regserve").await;
    assert_eq!(
        status,
        json!({ "model_version_status": [{ "version": "1", "state": "AVAILABLE", "status": { "error_code": "OK", "error_message": "" } }] })
    );
    let metadata = app.json("/v1/models/regserve/metadata").await;
    assert_eq!(metadata["model_spec"], json!({ "name": "regserve", "signature_name": "", "version": "1" }));
    let signature = &metadata["metadata"]["signature_def"]["signature_def"]["serving_default"];
    assert_eq!(signature["inputs"]["x"]["dtype"], "DT_DOUBLE");
    let dims = |tensor: &Value| {
        tensor["tensor_shape"]["dim"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["size"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(dims(&signature["inputs"]["x"]), [json!("-1"), json!("2")]);
    assert_eq!(dims(&signature["outputs"]["y"]), [json!("-1"), json!("1")]);
    assert_eq!(signature["method_name"], "tensorflow/serving/predict");
    assert_eq!(app.json("/v1/models/regserve/versions/1/metadata").await, metadata);
}

#[tokio::test]
async fn a_multi_feature_model_takes_rows_of_its_width() {
    let app = two_feature_app().await;
    let expected = nested(&app.predict_ok(json!([[1, 2], [3, 4]])).await);
    let path = "/v1/models/regserve:predict";
    let rows = tf_predict(&app, path, json!({ "instances": [[1, 2], { "x": [3, 4] }] })).await;
    assert_eq!(rows, json!({ "predictions": expected }));
    let columns = tf_predict(&app, path, json!({ "inputs": { "x": [[1, 2], [3, 4]] } })).await;
    assert_eq!(columns, json!({ "outputs": expected }));
    let message = error_of(
        app.post_json(path, &json!({ "instances": [[1, 2, 3], [4]] })).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(message, "row 0 has 3 values; the model takes 2 (a, b)");
    let message =
        error_of(app.post_json(path, &json!({ "instances": [1, 2] })).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(message, "row 0 is 1, not a list of 2 numbers (a, b)");
}

#[tokio::test]
async fn a_stored_version_predicts_without_being_activated() {
    let app = spawn_app().await;
    app.train(json!({ "epochs": 5, "seed": 1 })).await;
    let first = nested(&app.predict_ok(json!([12])).await);
    app.train(json!({ "solver": "least-squares" })).await;
    let second = nested(&app.predict_ok(json!([12])).await);
    assert_ne!(first, second);
    let older =
        tf_predict(&app, "/v1/models/regserve/versions/1:predict", json!({ "instances": [12] })).await;
    assert_eq!(older["predictions"], first);
    let served = tf_predict(&app, "/v1/models/regserve:predict", json!({ "instances": [12] })).await;
    assert_eq!(served["predictions"], second, "predicting with v1 did not activate it");
    let stored = app.json("/v1/models/regserve/versions/1").await;
    assert_eq!(stored["model_version_status"][0]["version"], "1");
    assert_eq!(stored["version"], 1, "the model file and TF's status in one object");
    let missing = app.post_json("/v1/models/regserve/versions/9:predict", &json!({ "instances": [1] })).await;
    error_of(missing, StatusCode::NOT_FOUND).await;
    let word = app.post_json("/v1/models/regserve/versions/one:predict", &json!({ "instances": [1] })).await;
    assert_eq!(error_of(word, StatusCode::BAD_REQUEST).await, "version \"one\" is not a number");
}

#[tokio::test]
async fn wrong_names_verbs_and_bodies_are_refused_with_tf_servings_error_shape() {
    let app = spawn_app().await;
    app.train(json!({ "epochs": 2 })).await;
    let body = json!({ "instances": [1] });
    let other = error_of(app.post_json("/v1/models/other:predict", &body).await, StatusCode::NOT_FOUND).await;
    assert!(other.contains("\"other\"") && other.contains("\"regserve\""), "{other}");
    error_of(app.get("/v1/models/other").await, StatusCode::NOT_FOUND).await;
    error_of(app.get("/v1/models/other/metadata").await, StatusCode::NOT_FOUND).await;
    let classify =
        error_of(app.post_json("/v1/models/regserve:classify", &body).await, StatusCode::BAD_REQUEST).await;
    assert!(classify.contains("no classify signature"), "{classify}");
    let regress =
        error_of(app.post_json("/v1/models/regserve:regress", &body).await, StatusCode::BAD_REQUEST).await;
    assert!(regress.contains("no regress signature"), "{regress}");
    let verb =
        error_of(app.post_json("/v1/models/regserve:explain", &body).await, StatusCode::NOT_FOUND).await;
    assert_eq!(verb, "unknown verb :explain; the model answers :predict");
    let refusals = [
        (
            json!({ "signature_name": "other", "instances": [1] }),
            "Serving signature name: \"other\" not found in signature def",
        ),
        (
            json!({ "instances": [1], "inputs": [1] }),
            "the body needs exactly one of \"instances\" and \"inputs\"",
        ),
        (json!({}), "the body needs exactly one of \"instances\" and \"inputs\""),
        (json!({ "instances": 1 }), "\"instances\" must be a list, not 1"),
        (json!({ "instances": [{ "y": 1 }] }), "the model's one input is \"x\"; got [\"y\"]"),
        (json!({ "inputs": { "x": 1 } }), "expected a list of rows, got 1"),
        (json!({ "instances": ["1"] }), "row 0: \"1\" is not a number"),
    ];
    for (body, expected) in refusals {
        let response = app.post_json("/v1/models/regserve:predict", &body).await;
        assert_eq!(error_of(response, StatusCode::BAD_REQUEST).await, expected, "{body}");
    }
    let malformed = app
        .client
        .post(app.url("/v1/models/regserve:predict"))
        .body("{\"instances\": [")
        .send()
        .await
        .unwrap();
    let message = error_of(malformed, StatusCode::BAD_REQUEST).await;
    assert!(message.starts_with("the body is not a predict request: "), "{message}");
}

#[tokio::test]
async fn a_version_number_on_the_old_path_says_where_versions_are_now() {
    let app = spawn_app().await;
    app.train(json!({ "epochs": 2 })).await;
    let message = error_of(app.get("/v1/models/1").await, StatusCode::NOT_FOUND).await;
    assert_eq!(message, "no model is named \"1\"; stored versions are at /v1/models/regserve/versions/1");
    let listed = app.json("/v1/models/regserve/versions").await;
    assert_eq!(listed, app.json("/v1/models").await);
    error_of(app.get("/v1/models/other/versions").await, StatusCode::NOT_FOUND).await;
    let activate = app.client.post(app.url("/v1/models/other/versions/1/activate")).send().await.unwrap();
    error_of(activate, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn nothing_trained_is_a_conflict() {
    let app = spawn_app().await;
    error_of(app.get("/v1/models/regserve").await, StatusCode::CONFLICT).await;
    let response = app.post_json("/v1/models/regserve:predict", &json!({ "instances": [1] })).await;
    error_of(response, StatusCode::CONFLICT).await;
}
