//! The `regserve` binary itself: configured by environment, started from any directory, stopped
//! by SIGTERM, and keeping its uploaded dataset across restarts.

use std::time::Duration;

use serde_json::{Value, json};

use crate::served::Served;

#[tokio::test]
async fn binary_serves_from_its_environment_and_keeps_the_dataset_across_restarts() {
    let data_dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();

    let server = Served::start(data_dir.path(), &[]).await;
    let part = reqwest::multipart::Part::bytes(b"p,q,r\n1,2,3\n2,3,5\n4,1,6\n".to_vec()).file_name("d.csv");
    let response = client
        .post(format!("{}/upload", server.base))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "success");
    assert!(server.terminate().success(), "SIGTERM stops the server cleanly");

    let server = Served::start(data_dir.path(), &[]).await;
    let response =
        client.post(format!("{}/train?wait=true", server.base)).json(&json!({ "epochs": 2 })).send().await;
    let result: Value = response.unwrap().json().await.unwrap();
    assert_eq!(result["model"]["features"], json!(["p", "q"]), "the uploaded dataset survived the restart");
    assert!(server.terminate().success());
}

#[tokio::test]
async fn binary_without_a_stored_dataset_serves_the_built_in_one() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = Served::start(&data_dir.path().join("fresh"), &[]).await;
    let client = reqwest::Client::new();
    let response =
        client.post(format!("{}/train?wait=true", server.base)).json(&json!({ "epochs": 1 })).send().await;
    let result: Value = response.unwrap().json().await.unwrap();
    assert_eq!(result["model"]["features"], json!(["Education"]));
    assert_eq!(result["model"]["rows"], 30);
    assert!(server.terminate().success());
}

#[tokio::test]
async fn sigterm_cancels_a_waited_for_training_and_exits_cleanly() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = Served::start(data_dir.path(), &[]).await;
    let url = format!("{}/train?wait=true", server.base);
    let waiting = tokio::spawn(async move {
        let response = reqwest::Client::new()
            .post(url)
            .json(&json!({ "epochs": 1_000_000, "batch_size": 1 }))
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    assert!(server.terminate().success());
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cancelled"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown waited for the fit");
}

#[tokio::test]
async fn a_restart_serves_the_active_version_at_once_including_a_rollback() {
    let data_dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = Served::start(data_dir.path(), &[]).await;
    let train = |base: String, seed: u64| {
        let client = client.clone();
        async move {
            let response =
                client.post(format!("{base}/train?wait=true")).json(&json!({ "epochs": 3, "seed": seed }));
            response.send().await.unwrap().json::<Value>().await.unwrap()["model"].clone()
        }
    };
    let first = train(server.base.clone(), 1).await;
    let second = train(server.base.clone(), 2).await;
    assert!(server.terminate().success());

    let server = Served::start(data_dir.path(), &[]).await;
    let flag: Value =
        client.get(format!("{}/training_flag", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(flag["training_flag"], 1, "a restarted server has a model at once");
    let served: Value =
        client.get(format!("{}/v1/model", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(served, second);

    let response =
        client.post(format!("{}/v1/models/regserve/versions/1/activate", server.base)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(server.terminate().success());

    let server = Served::start(data_dir.path(), &[]).await;
    let served: Value =
        client.get(format!("{}/v1/model", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(served, first, "the rollback survived the restart");
    let versions: Value =
        client.get(format!("{}/v1/models", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert!(server.terminate().success());
}

#[tokio::test]
async fn job_ids_continue_after_a_restart() {
    let data_dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = Served::start(data_dir.path(), &[]).await;
    for _ in 0..2 {
        client
            .post(format!("{}/train?wait=true", server.base))
            .json(&json!({ "epochs": 1 }))
            .send()
            .await
            .unwrap();
    }
    assert!(server.terminate().success());
    let server = Served::start(data_dir.path(), &[]).await;
    let response =
        client.post(format!("{}/train?wait=true", server.base)).json(&json!({ "epochs": 1 })).send().await;
    let result: Value = response.unwrap().json().await.unwrap();
    assert_eq!(result["job"]["id"], 3, "a new job does not reuse the id a stored model names");
    assert_eq!(result["model"]["job"], 3);
    assert!(server.terminate().success());
}
