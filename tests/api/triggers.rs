//! Retraining that runs itself, driven through the server with short thresholds and intervals:
//! a rows threshold, an interval, the webhook, the set replaced and kept across a restart, a
//! schedule missed while down run once, firings merged behind a running training, and the
//! quality gate keeping a worse model out of service.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, binary_command, error_of, free_port, spawn_app_sharing_store, spawn_app_with,
    wait_until_answering,
};

/// Polls `GET /v1/triggers` until `done` holds for the named trigger's state, for at most 30 s.
async fn until_trigger(app: &TestApp, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..600 {
        let view = app.json("/v1/triggers").await;
        let trigger = view["triggers"].as_array().unwrap().iter().find(|t| t["name"] == name).cloned();
        if let Some(trigger) = trigger.filter(|t| done(&t["state"])) {
            return trigger;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("trigger {name} never reached the state waited for: {}", app.json("/v1/triggers").await);
}

async fn append(app: &TestApp, rows: usize) {
    let rows: Vec<Value> = (0..rows).map(|i| json!({"Education": 10 + i, "Income": 30 + 3 * i})).collect();
    let response = app.post_json("/v1/data", &json!({ "rows": rows })).await;
    assert_eq!(response.status(), StatusCode::OK);
}

fn activated(state: &Value) -> bool {
    state["outcome"]
        .as_str()
        .is_some_and(|outcome| outcome.ends_with("activated") && !outcome.contains("not"))
}

#[tokio::test]
async fn a_rows_threshold_trains_once_enough_rows_have_arrived() {
    let app = spawn_app_with(|config| {
        config.retrain.after_rows = Some(5);
        config.retrain.spec = Some(r#"{"solver": "least-squares"}"#.into());
    })
    .await;
    append(&app, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = until_trigger(&app, "rows", |state| state["rows_to_go"] == 2).await;
    assert_eq!(waiting["state"]["fired"], 0, "3 of 5 rows: nothing fired");
    append(&app, 3).await;
    let fired = until_trigger(&app, "rows", activated).await;
    assert_eq!(fired["state"]["fired"], 1);
    let job = app.json(&format!("/v1/jobs/{}", fired["state"]["job"])).await;
    assert_eq!(job["origin"], json!({"kind": "trigger", "name": "rows"}));
    assert_eq!(job["params"]["solver"], "least-squares");
    let after = until_trigger(&app, "rows", |state| state["rows_to_go"] == 5).await;
    assert_eq!(after["state"]["fired"], 1, "the count starts again after the training");
}

#[tokio::test]
async fn an_interval_trains_on_schedule_and_records_the_time_each_run_was_due() {
    let app = spawn_app_with(|config| {
        config.retrain.every = Some(Duration::from_secs(1));
        config.retrain.spec = Some(r#"{"solver": "least-squares"}"#.into());
    })
    .await;
    let twice =
        until_trigger(&app, "every", |state| state["fired"].as_u64() >= Some(2) && activated(state)).await;
    let job = app.json(&format!("/v1/jobs/{}", twice["state"]["job"])).await;
    assert_eq!(job["origin"]["name"], "every");
    assert_eq!(job["origin"]["scheduled_for"], twice["state"]["last_scheduled_for"]);
    assert!(twice["state"]["next_fire"].is_string());
}

#[tokio::test]
async fn the_webhook_trains_with_the_spec_it_carries() {
    let app = spawn_app_with(|_| {}).await;
    let response = app.post_json("/v1/triggers/webhook", &json!({"solver": "least-squares"})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let fired: Value = response.json().await.unwrap();
    assert_eq!((fired["trigger"].as_str(), fired["admitted"].as_str()), (Some("webhook"), Some("started")));
    app.wait_for_training().await;
    let job = app.json(&format!("/v1/jobs/{}", fired["job"])).await;
    assert_eq!(
        (job["params"]["solver"].as_str(), job["state"].as_str()),
        (Some("least-squares"), Some("succeeded"))
    );
    let bad = app.post_json("/v1/triggers/webhook", &json!({"epochs": "many"})).await;
    assert!(error_of(bad, StatusCode::UNPROCESSABLE_ENTITY).await.contains("epochs"));
    let missing = app.post_json("/v1/triggers/nightly/fire", &json!({})).await;
    assert!(error_of(missing, StatusCode::NOT_FOUND).await.contains("nightly"));
}

async fn put_triggers(app: &TestApp, set: &Value) -> reqwest::Response {
    app.client.put(app.url("/v1/triggers")).json(set).send().await.unwrap()
}

#[tokio::test]
async fn a_bad_set_is_refused_whole_and_a_good_one_survives_a_restart() {
    let app = spawn_app_with(|_| {}).await;
    let good = json!({"triggers": [
        {"name": "nightly", "cron": "0 3 * * *", "train": {"solver": "least-squares"}},
        {"name": "etl", "webhook": true},
    ]});
    assert_eq!(put_triggers(&app, &good).await.status(), StatusCode::OK);
    let bad = json!({"triggers": [{"name": "hourly", "every": "1h"}, {"name": "x", "cron": "0 25 * * *"}]});
    let refused = error_of(put_triggers(&app, &bad).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(refused.starts_with("triggers[1].cron:"), "{refused}");
    let zero = json!({"triggers": [{"name": "enough", "rows": 0}]});
    let refused = error_of(put_triggers(&app, &zero).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(refused.starts_with("triggers[0].rows:"), "{refused}");
    let names = |view: Value| -> Vec<String> {
        view["triggers"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(app.json("/v1/triggers").await), ["nightly", "etl"], "the old set stays");
    let nightly = until_trigger(&app, "nightly", |state| state["next_fire"].is_string()).await;
    assert!(nightly["state"]["next_fire"].as_str().unwrap().ends_with("T03:00:00Z"));
    let restarted = spawn_app_sharing_store(&app).await;
    assert_eq!(names(restarted.json("/v1/triggers").await), ["nightly", "etl"], "the set is stored");
}

/// The binary on `data_dir`, answering on `port`.
async fn start_binary(data_dir: &std::path::Path, port: u16) -> std::process::Child {
    let child = binary_command(data_dir)
        .env("REGSERVE_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    wait_until_answering(&format!("http://127.0.0.1:{port}")).await;
    child
}

#[tokio::test]
async fn a_schedule_missed_while_down_runs_once_at_start_up() {
    let data_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let triggers = || async {
        client.get(format!("{base}/v1/triggers")).send().await.unwrap().json::<Value>().await.unwrap()
    };
    let mut server = start_binary(data_dir.path(), port).await;
    let set = json!({"triggers": [{"name": "often", "every": "2s", "train": {"solver": "least-squares"}}]});
    let put = client.put(format!("{base}/v1/triggers")).json(&set).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let mut before = json!(null);
    for _ in 0..100 {
        before = triggers().await["triggers"][0]["state"].clone();
        if before["fired"] == 1 && activated(&before) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(before["fired"], 1, "{before}");
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &server.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(server.wait().unwrap().success());
    // Down for 7 s: three scheduled times pass.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mut server = start_binary(data_dir.path(), port).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = triggers().await["triggers"][0]["state"].clone();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(after["fired"], 2, "the missed times run once at start-up: {after}");
    let merged = after["merged"].as_u64().unwrap();
    assert!((2..=3).contains(&merged), "and the others are counted as merged: {after}");
    assert_ne!(after["last_scheduled_for"], before["last_scheduled_for"]);
}

#[tokio::test]
async fn firings_during_a_training_queue_one_and_merge_the_rest() {
    let app = spawn_app_with(|_| {}).await;
    app.upload_ok(crate::helpers::slow_dataset()).await;
    let running = app.start_training(json!({"epochs": 100000, "batch_size": 1})).await;
    let spec = json!({"solver": "least-squares"});
    let fire = || app.post_json("/v1/triggers/webhook", &spec);
    let admitted = |response: reqwest::Response| async move {
        let fired: Value = response.json().await.unwrap();
        fired["admitted"].as_str().unwrap().to_owned()
    };
    assert_eq!(admitted(fire().await).await, "queued");
    assert_eq!(admitted(fire().await).await, "merged");
    assert_eq!(admitted(fire().await).await, "merged");
    let view = app.json("/v1/triggers").await;
    assert_eq!(view["waiting"], json!({"trigger": "webhook", "merged": 2}));
    assert_eq!(view["running_job"], running);
    let cancelled = app.client.delete(app.url(&format!("/v1/jobs/{running}"))).send().await.unwrap();
    assert!(cancelled.status().is_success());
    let ran =
        until_trigger(&app, "webhook", |state| state["job"].as_u64() > Some(running) && activated(state))
            .await;
    assert_eq!(ran["state"]["merged"], 2);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"regserve_trigger_merged_firings_total{trigger="webhook"} 2"#), "{metrics}");
}

#[tokio::test]
async fn the_gate_keeps_a_worse_model_out_of_service_and_says_why() {
    let app = spawn_app_with(|config| config.retrain.holdout = 0.2).await;
    let exact = app.train(json!({"solver": "least-squares"})).await;
    let served = exact["version"].clone();
    let fired = app.post_json("/v1/triggers/webhook", &json!({"epochs": 1, "learning_rate": 0.0001})).await;
    let fired: Value = fired.json().await.unwrap();
    app.wait_for_training().await;
    let job = app.json(&format!("/v1/jobs/{}", fired["job"])).await;
    assert_eq!(job["activated"], false, "{job}");
    let gate = &job["gate"];
    assert!(gate["candidate_mse"].as_f64().unwrap() > gate["active_mse"].as_f64().unwrap(), "{gate}");
    assert_eq!(gate["holdout_rows"], 6, "20% of the 30 sample rows");
    assert_eq!(app.json("/v1/model").await["version"], served, "the exact model stays in service");
    let outcome = until_trigger(&app, "webhook", |state| {
        state["outcome"].as_str().is_some_and(|o| o.contains("not activated"))
    })
    .await;
    assert!(outcome["state"]["outcome"].as_str().unwrap().contains("holdout MSE"));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("regserve_gate_rejections_total 1"), "{metrics}");
    let manual = app.post_json("/train?wait=true", &json!({"epochs": 1, "learning_rate": 0.0001})).await;
    let manual: Value = manual.json().await.unwrap();
    assert_eq!(manual["job"]["activated"], true, "a manual /train activates as the original did");
    assert!(manual["job"]["gate"]["candidate_mse"].is_number(), "and is scored on the holdout too");
}
