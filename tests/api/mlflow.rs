//! MLflow's scoring protocol: `/invocations` in every JSON shape and as CSV, columns matched by
//! name, MLflow's error shape and statuses, and `/ping`, `/health`, `/version`.

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};
use crate::tf_serving::two_feature_app;

async fn invoke(app: &TestApp, content_type: &str, body: impl Into<String>) -> reqwest::Response {
    let request = app.client.post(app.url("/invocations")).header(CONTENT_TYPE, content_type);
    request.body(body.into()).send().await.unwrap()
}

async fn predictions(app: &TestApp, content_type: &str, body: impl Into<String>) -> Value {
    let response = invoke(app, content_type, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    answer["predictions"].clone()
}

/// MLflow's error answer: its status, its code and its message.
async fn mlflow_error(response: reqwest::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    (status, body["error_code"].as_str().unwrap().to_owned(), body["message"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn every_json_shape_and_csv_predict_as_predict_does() {
    let app = two_feature_app().await;
    let expected = json!(app.predict_ok(json!([[1, 2], [3, 4]])).await);
    let bodies = [
        json!({ "dataframe_split": { "columns": ["a", "b"], "data": [[1, 2], [3, 4]] } }),
        json!({ "dataframe_split": { "columns": ["b", "a"], "data": [[2, 1], [4, 3]] } }),
        json!({ "dataframe_split": { "index": [0, 1], "columns": ["y", "b", "a"], "data": [[0, 2, 1], [0, 4, 3]] } }),
        json!({ "dataframe_records": [{ "a": 1, "b": 2 }, { "b": 4, "a": 3 }] }),
        json!({ "instances": [[1, 2], [3, 4]] }),
        json!({ "inputs": [[1, 2], [3, 4]], "params": {} }),
    ];
    for body in bodies {
        assert_eq!(predictions(&app, "application/json", body.to_string()).await, expected, "{body}");
    }
    let csv = ",b,a\n0,2,1\n1,4,3\n";
    assert_eq!(predictions(&app, "text/csv", csv).await, expected, "pandas's index column is ignored");
    assert_eq!(predictions(&app, "text/csv; charset=utf-8", "a,b\n1,2\n3,4\n").await, expected);
}

#[tokio::test]
async fn missing_columns_and_bad_bodies_are_mlflows_bad_requests() {
    let app = two_feature_app().await;
    let bad = |message: &str| (StatusCode::BAD_REQUEST, "BAD_REQUEST".to_owned(), message.to_owned());
    let missing = "Failed to enforce schema of data: Model is missing inputs ['b'].";
    let fields = "Invalid input. The input must be a JSON dictionary with exactly one of the input fields {'dataframe_split', 'dataframe_records', 'instances', 'inputs'}. Received dictionary with input fields:";
    let cases = [
        (json!({ "dataframe_split": { "columns": ["a", "c"], "data": [[1, 2]] } }).to_string(), bad(missing)),
        (json!({ "dataframe_records": [{ "a": 1 }] }).to_string(), bad(missing)),
        (
            json!({ "instances": [[1, 2, 3]] }).to_string(),
            bad("row 0 has 3 values; the model takes 2 (a, b)"),
        ),
        (
            json!({ "dataframe_split": { "columns": ["a", "b"], "data": [[1, "x"]] } }).to_string(),
            bad("row 0, column \"b\": \"x\" is not a number"),
        ),
        (json!({ "rows": [[1, 2]] }).to_string(), bad(&format!("{fields} [\"rows\"]."))),
        (
            json!({ "instances": [[1, 2]], "inputs": [[1, 2]] }).to_string(),
            bad(&format!("{fields} [\"inputs\", \"instances\"].")),
        ),
        ("[[1, 2]]".to_owned(), bad("Invalid input. Ensure that input is a valid JSON formatted string.")),
        (
            "{\"instances\": [".to_owned(),
            bad("Invalid input. Ensure that input is a valid JSON formatted string."),
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(
            mlflow_error(invoke(&app, "application/json", body.clone()).await).await,
            expected,
            "{body}"
        );
    }
    let csv = mlflow_error(invoke(&app, "text/csv", "a\n1\n").await).await;
    assert_eq!(csv, bad(missing));
    let csv = mlflow_error(invoke(&app, "text/csv", "a,b\n1,x\n").await).await;
    assert_eq!(csv, bad("row 0, column \"b\": \"x\" is not a number"));
}

#[tokio::test]
async fn other_content_types_are_refused_as_mlflow_refuses_them() {
    let app = two_feature_app().await;
    let response = invoke(&app, "text/plain", "1,2").await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(response.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
    assert_eq!(
        response.text().await.unwrap(),
        "This predictor only supports the following content types: Types: ['text/csv', 'application/json']. Got 'text/plain'."
    );
}

#[tokio::test]
async fn ping_health_and_version_answer_as_mlflows_server() {
    let app = spawn_app().await;
    for probe in ["/ping", "/health"] {
        assert_eq!(app.get(probe).await.status(), StatusCode::NOT_FOUND, "{probe} before a model");
    }
    let (status, code, message) =
        mlflow_error(invoke(&app, "application/json", "{\"instances\": [1]}").await).await;
    assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "RESOURCE_CONFLICT"), "{message}");
    app.train(json!({ "epochs": 2 })).await;
    for probe in ["/ping", "/health"] {
        let response = app.get(probe).await;
        assert_eq!(response.status(), StatusCode::OK, "{probe}");
        assert_eq!(response.text().await.unwrap(), "\n");
    }
    let version = app.get("/version").await;
    assert_eq!(version.status(), StatusCode::OK);
    assert_eq!(version.text().await.unwrap(), env!("CARGO_PKG_VERSION"));
    let one = json!(app.predict_ok(json!([10, 15.5])).await);
    assert_eq!(predictions(&app, "application/json", "{\"instances\": [10, 15.5]}").await, one);
    assert_eq!(predictions(&app, "text/csv", "Education\n10\n15.5\n").await, one);
}

#[tokio::test]
async fn predictions_and_refusals_are_counted_under_each_protocols_label() {
    let app = spawn_app().await;
    app.train(json!({ "epochs": 2 })).await;
    predictions(&app, "application/json", "{\"instances\": [1, 2, 3]}").await;
    let tf = app.post_json("/v1/models/regserve:predict", &json!({ "instances": [1, 2] })).await;
    assert_eq!(tf.status(), StatusCode::OK);
    // Calls refused before they reach the model count as failed calls of their protocol.
    let refused = [
        app.post_json("/invocations", &json!({ "nope": 1 })).await,
        app.post_json("/v1/models/regserve:predict", &json!({ "instances": "x" })).await,
        app.post_json("/v1/models/regserve:classify", &json!({ "instances": [1] })).await,
        app.post_json("/v2/models/other/infer", &json!({ "inputs": [] })).await,
        app.post_json("/v2/models/regserve/infer", &json!({ "inputs": [] })).await,
    ];
    let statuses: Vec<u16> = refused.iter().map(|response| response.status().as_u16()).collect();
    assert_eq!(statuses, [400, 400, 400, 404, 400]);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        r#"predicted_rows_total{protocol="mlflow"} 3"#,
        r#"predicted_rows_total{protocol="tf_serving"} 2"#,
        r#"predictions_total{protocol="mlflow",outcome="ok"} 1"#,
        r#"predictions_total{protocol="tf_serving",outcome="ok"} 1"#,
        r#"predictions_total{protocol="mlflow",outcome="error"} 1"#,
        r#"predictions_total{protocol="tf_serving",outcome="error"} 2"#,
        r#"predictions_total{protocol="kserve_v2",outcome="error"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}
