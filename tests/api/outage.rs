//! A store that stops answering, in process on the memory store: every route that needs it
//! answers a JSON 503 naming the store, never a 500; predictions go on from the model in
//! memory; and nothing stored changes.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use regserve::datasets::Datasets;
use regserve::registry::Registry;
use regserve::settings::Limits;
use regserve::state::AppState;
use regserve::storage::memory::MemoryStore;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(
    state: &AppState,
    method: &str,
    path: &str,
    content_type: &str,
    body: String,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let response = regserve::api::app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into())))
}

async fn post_json(state: &AppState, path: &str, body: Value) -> (StatusCode, Value) {
    call(state, "POST", path, "application/json", body.to_string()).await
}

fn multipart(csv: &str) -> String {
    format!(
        "--X\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\n{csv}\r\n--X--\r\n"
    )
}

/// The `error` of a 503 that names the store.
fn names_the_store((status, body): (StatusCode, Value)) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["error"].as_str().unwrap_or_else(|| panic!("no JSON error: {body}"));
    assert!(message.contains("the store memory://"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_is_a_503_naming_it_and_nothing_stored_changes() {
    let store = Arc::new(MemoryStore::new());
    let models = Registry::open(store.clone(), 5).await.unwrap();
    let state = AppState::new(
        Limits::default(),
        Datasets::open(store.clone(), Default::default()).await.unwrap(),
        models,
    );
    let (status, trained) = post_json(&state, "/train?wait=true", json!({ "solver": "least-squares" })).await;
    assert_eq!(status, StatusCode::OK, "{trained}");
    let predict = || post_json(&state, "/predict", json!({ "x_predict": [10, 15.5] }));
    let (_, predicted) = predict().await;

    store.set_unavailable(true);
    names_the_store(post_json(&state, "/train?wait=true", json!({ "solver": "least-squares" })).await);
    names_the_store(post_json(&state, "/v1/models/regserve/versions/1/activate", json!({})).await);
    names_the_store(
        call(&state, "GET", "/v1/models/regserve/versions/1", "application/json", String::new()).await,
    );
    let upload = multipart("x,y\n1,2\n3,5\n4,9\n");
    names_the_store(call(&state, "POST", "/upload", "multipart/form-data; boundary=X", upload.clone()).await);
    assert_eq!(predict().await, (StatusCode::OK, predicted.clone()), "predictions go on");
    assert_eq!(state.datasets().history().rows, 30, "the built-in dataset is still in service");

    store.set_unavailable(false);
    let (_, listed) = call(&state, "GET", "/v1/models", "application/json", String::new()).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "the failed training stored nothing: {listed}");
    let reopened = Registry::open(store.clone(), 5).await.unwrap();
    assert_eq!(reopened.active().unwrap().version(), 1);
    let (status, _) = call(&state, "POST", "/upload", "multipart/form-data; boundary=X", upload).await;
    assert_eq!(status, StatusCode::OK, "back to normal without a restart");
    assert_eq!(
        post_json(&state, "/train?wait=true", json!({ "solver": "least-squares" })).await.0,
        StatusCode::OK
    );
}
