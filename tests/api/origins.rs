//! Requests from web pages: a page of another origin cannot change the state through a
//! visitor's browser, a DNS-rebinding page (another host name for this address) gets nothing,
//! and clients that are not browsers (curl, scripts) work exactly as before.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{INCOME2, error_of, spawn_app, spawn_app_with};

#[tokio::test]
async fn pages_of_other_origins_cannot_train_upload_activate_or_cancel() {
    let app = spawn_app().await;
    let served = app.train(json!({ "epochs": 2, "seed": 1 })).await;
    let dataset = app.json("/v1/dataset").await;
    let evil = |request: reqwest::RequestBuilder| request.header("origin", "http://evil.example");

    // A "simple" cross-site request that a page can send without a preflight.
    let train = evil(app.client.post(app.url("/train")))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    let message = error_of(train, StatusCode::FORBIDDEN).await;
    assert!(message.contains("evil.example") && message.contains("--cors-origin"), "{message}");

    let part = reqwest::multipart::Part::bytes(INCOME2.as_bytes().to_vec()).file_name("d.csv");
    let upload = evil(app.client.post(app.url("/upload")))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    error_of(upload, StatusCode::FORBIDDEN).await;

    let activate = evil(app.client.post(app.url("/v1/models/regserve/versions/1/activate")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("version=1")
        .send()
        .await
        .unwrap();
    error_of(activate, StatusCode::FORBIDDEN).await;
    let without_origin =
        app.client.post(app.url("/train")).header("sec-fetch-site", "cross-site").send().await.unwrap();
    error_of(without_origin, StatusCode::FORBIDDEN).await;
    let sandboxed = app.client.post(app.url("/train")).header("origin", "null").send().await.unwrap();
    error_of(sandboxed, StatusCode::FORBIDDEN).await;

    assert_eq!(app.json("/v1/dataset").await, dataset, "the dataset was not replaced");
    assert_eq!(app.json("/v1/model").await, served, "no model was trained or activated");
    assert_eq!(app.json("/v1/jobs").await.as_array().unwrap().len(), 1, "no job started");
    // Reads are not state changes: a prediction from another page is answered (CORS keeps the
    // page from reading the answer unless its origin is allowed).
    let predict = evil(app.client.post(app.url("/predict"))).json(&json!({ "x_predict": [10] })).send().await;
    assert_eq!(predict.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn the_page_itself_scripts_and_allowed_origins_still_change_the_state() {
    let app = spawn_app_with(|config| config.cors_origins = vec!["https://app.example".into()]).await;
    let own = format!("http://{}", app.addr);
    let same_origin =
        app.client.post(app.url("/train?wait=true")).header("origin", &own).json(&json!({ "epochs": 1 }));
    assert_eq!(same_origin.send().await.unwrap().status(), StatusCode::OK);
    let fetch_metadata = app
        .client
        .post(app.url("/train?wait=true"))
        .header("sec-fetch-site", "same-origin")
        .json(&json!({ "epochs": 1 }));
    assert_eq!(fetch_metadata.send().await.unwrap().status(), StatusCode::OK);
    let allowed = app
        .client
        .post(app.url("/train?wait=true"))
        .header("origin", "https://app.example")
        .json(&json!({ "epochs": 1 }));
    assert_eq!(allowed.send().await.unwrap().status(), StatusCode::OK);
    // The original's scripts send no Origin at all.
    assert_eq!(app.client.post(app.url("/train")).send().await.unwrap().status(), StatusCode::ACCEPTED);
    app.wait_for_training().await;
    assert_eq!(app.predict_ok(json!([10])).await.len(), 1);
    app.upload_ok(INCOME2).await;
}

#[tokio::test]
async fn requests_for_another_host_name_are_refused_and_the_servers_own_names_work() {
    let app = spawn_app_with(|config| config.allowed_hosts = vec!["regserve.internal".into()]).await;
    app.train(json!({ "epochs": 1 })).await;
    let with_host = |host: String| app.client.get(app.url("/v1/dataset")).header("host", host).send();
    for refused in ["evil.example".to_owned(), format!("rebound.example:{}", app.addr.port())] {
        let response = with_host(refused.clone()).await.unwrap();
        let message = error_of(response, StatusCode::MISDIRECTED_REQUEST).await;
        assert!(message.contains("--allowed-host"), "{refused}: {message}");
    }
    for allowed in [
        app.addr.to_string(),
        format!("localhost:{}", app.addr.port()),
        "regserve.internal".to_owned(),
        "REGSERVE.internal.".to_owned(),
    ] {
        let response = with_host(allowed.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{allowed}");
    }
    // A rebinding page cannot use the probes or the page either.
    let page = app.client.get(app.url("/")).header("host", "evil.example").send().await.unwrap();
    assert_eq!(page.status(), StatusCode::MISDIRECTED_REQUEST);
    let _: Value = app.json("/healthz").await;
}
