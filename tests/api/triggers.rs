//! Retraining that runs itself, driven through the binary with short thresholds and intervals:
//! a rows threshold, an interval, a cron schedule, the webhook, the set replaced and kept across
//! a restart, a schedule missed while down run once, firings merged behind a running training,
//! and the quality gate keeping a worse model out of service.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::{error_of, slow_dataset};
use crate::served::Served;

const EXACT: &str = r#"{"solver": "least-squares"}"#;

/// The binary on a fresh store with `flags`; the store goes when the test ends.
async fn start(flags: &[&str]) -> (Served, TempDir) {
    let data_dir = tempfile::tempdir().unwrap();
    (Served::start(data_dir.path(), flags).await, data_dir)
}

/// Polls `GET /v1/triggers` until `done` holds for the named trigger's state, for at most `limit`.
async fn until_trigger(server: &Served, name: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        let view = server.json("/v1/triggers").await;
        let trigger = view["triggers"].as_array().unwrap().iter().find(|t| t["name"] == name).cloned();
        if let Some(trigger) = trigger.filter(|t| done(&t["state"])) {
            return trigger;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("trigger {name} never reached the state waited for: {}", server.json("/v1/triggers").await);
}

const SOON: Duration = Duration::from_secs(30);

async fn append(server: &Served, rows: usize) {
    let rows: Vec<Value> = (0..rows).map(|i| json!({"Education": 10 + i, "Income": 30 + 3 * i})).collect();
    assert_eq!(server.post_json("/v1/data", &json!({ "rows": rows })).await.status(), StatusCode::OK);
}

fn activated(state: &Value) -> bool {
    state["outcome"].as_str().is_some_and(|outcome| outcome.ends_with(" activated"))
}

/// The activation events the server has sent so far (its retained history).
async fn activations(server: &Served) -> Vec<Value> {
    use futures_util::StreamExt;
    let response = server.client.get(server.url("/v1/models/events")).send().await.unwrap();
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_millis(500), body.next()).await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    text.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| serde_json::from_str(data.trim()).unwrap())
        .collect()
}

#[tokio::test]
async fn a_rows_threshold_trains_once_enough_rows_have_arrived() {
    let (server, _dir) =
        start(&["--retrain-after-rows", "5", "--retrain-spec", EXACT, "--holdout", "0.2"]).await;
    append(&server, 3).await;
    let waiting = until_trigger(&server, "rows", SOON, |state| state["rows_to_go"] == 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(waiting["state"]["fired"], 0, "3 of 5 rows: nothing fired");
    append(&server, 3).await;
    let fired = until_trigger(&server, "rows", SOON, activated).await;
    assert_eq!(fired["state"]["fired"], 1);
    let job = server.json(&format!("/v1/jobs/{}", fired["state"]["job"])).await;
    assert_eq!(job["origin"], json!({"kind": "trigger", "name": "rows"}));
    assert_eq!(job["params"]["solver"], "least-squares");
    let after = until_trigger(&server, "rows", SOON, |state| state["rows_to_go"] == 5).await;
    assert_eq!(after["state"]["fired"], 1, "the count starts again after the training");
    let events = activations(&server).await;
    let last = events.last().expect("an activation event");
    assert_eq!(last["reason"], json!({"kind": "trigger", "name": "rows"}));
    assert_eq!(last["version"], job["model_version"]);
    assert_eq!(last["gate"]["holdout_rows"], 8, "20% of 36 rows, rounded up: {last}");
    let metrics = server.client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"regserve_trigger_trainings_total{trigger="rows"} 1"#), "{metrics}");
}

#[tokio::test]
async fn an_interval_trains_on_schedule_and_records_the_time_each_run_was_due() {
    let (server, _dir) = start(&["--retrain-every", "1s", "--retrain-spec", EXACT]).await;
    let twice =
        until_trigger(&server, "every", SOON, |state| state["fired"].as_u64() >= Some(2) && activated(state))
            .await;
    let job = server.json(&format!("/v1/jobs/{}", twice["state"]["job"])).await;
    assert_eq!(job["origin"]["name"], "every");
    assert_eq!(job["origin"]["scheduled_for"], twice["state"]["last_scheduled_for"]);
    assert!(twice["state"]["next_fire"].is_string());
}

#[tokio::test]
async fn a_cron_schedule_fires_on_the_minute() {
    let (server, _dir) = start(&["--retrain-cron", "* * * * *", "--retrain-spec", EXACT]).await;
    let pending = until_trigger(&server, "cron", SOON, |state| state["next_fire"].is_string()).await;
    assert!(pending["state"]["next_fire"].as_str().unwrap().ends_with(":00Z"), "{pending}");
    let fired = until_trigger(&server, "cron", Duration::from_secs(75), activated).await;
    let due = fired["state"]["last_scheduled_for"].as_str().unwrap().to_owned();
    assert_eq!(due, pending["state"]["next_fire"].as_str().unwrap(), "it ran for the time it showed");
    let job = server.json(&format!("/v1/jobs/{}", fired["state"]["job"])).await;
    assert_eq!(job["origin"]["scheduled_for"], due.as_str());
}

#[tokio::test]
async fn the_webhook_trains_with_the_spec_it_carries() {
    let (server, _dir) = start(&[]).await;
    let response = server.post_json("/v1/triggers/webhook", &json!({"solver": "least-squares"})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let fired: Value = response.json().await.unwrap();
    assert_eq!((fired["trigger"].as_str(), fired["admitted"].as_str()), (Some("webhook"), Some("started")));
    until_trigger(&server, "webhook", SOON, activated).await;
    let job = server.json(&format!("/v1/jobs/{}", fired["job"])).await;
    assert_eq!(
        (job["params"]["solver"].as_str(), job["state"].as_str()),
        (Some("least-squares"), Some("succeeded"))
    );
    let bad = server.post_json("/v1/triggers/webhook", &json!({"epochs": "many"})).await;
    assert!(error_of(bad, StatusCode::UNPROCESSABLE_ENTITY).await.contains("epochs"));
    let missing = server.post_json("/v1/triggers/nightly/fire", &json!({})).await;
    assert!(error_of(missing, StatusCode::NOT_FOUND).await.contains("nightly"));
}

#[tokio::test]
async fn a_training_that_cannot_start_is_recorded_and_the_trigger_goes_on() {
    let (server, _dir) = start(&[]).await;
    let set = json!({"triggers": [{"name": "often", "every": "1s", "train": {"features": ["Nope"]}}]});
    assert_eq!(server.put_json("/v1/triggers", &set).await.status(), StatusCode::OK);
    let failed = until_trigger(&server, "often", SOON, |state| state["fired"].as_u64() >= Some(2)).await;
    assert!(failed["state"]["outcome"].as_str().unwrap().starts_with("not started:"), "{failed}");
    let set = json!({"triggers": [{"name": "often", "every": "1s", "train": {"solver": "least-squares"}}]});
    assert_eq!(server.put_json("/v1/triggers", &set).await.status(), StatusCode::OK);
    until_trigger(&server, "often", SOON, activated).await;
}

#[tokio::test]
async fn a_bad_set_is_refused_whole_and_a_good_one_survives_a_restart() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = Served::start(data_dir.path(), &[]).await;
    let good = json!({"triggers": [
        {"name": "nightly", "cron": "0 3 * * *", "train": {"solver": "least-squares"}},
        {"name": "etl", "webhook": true},
    ]});
    assert_eq!(server.put_json("/v1/triggers", &good).await.status(), StatusCode::OK);
    let bad = json!({"triggers": [{"name": "hourly", "every": "1h"}, {"name": "x", "cron": "0 25 * * *"}]});
    let refused =
        error_of(server.put_json("/v1/triggers", &bad).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(refused.starts_with("triggers[1].cron:"), "{refused}");
    let zero = json!({"triggers": [{"name": "enough", "rows": 0}]});
    let refused =
        error_of(server.put_json("/v1/triggers", &zero).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(refused.starts_with("triggers[0].rows:"), "{refused}");
    let names = |view: Value| -> Vec<String> {
        view["triggers"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(server.json("/v1/triggers").await), ["nightly", "etl"], "the old set stays");
    let nightly = until_trigger(&server, "nightly", SOON, |state| state["next_fire"].is_string()).await;
    assert!(nightly["state"]["next_fire"].as_str().unwrap().ends_with("T03:00:00Z"));
    assert!(server.terminate().success());
    let restarted = Served::start(data_dir.path(), &[]).await;
    assert_eq!(names(restarted.json("/v1/triggers").await), ["nightly", "etl"], "the set is stored");
}

/// Runs an interval of 2 s until it has fired once, stops the server for 7 s (three scheduled
/// times pass) and starts it again with `flags` (and `set` put at the first start, if any).
async fn missed_while_down(flags: &[&str], set: Option<Value>) -> (Value, Value) {
    let data_dir = tempfile::tempdir().unwrap();
    let server = Served::start(data_dir.path(), flags).await;
    if let Some(set) = set {
        assert_eq!(server.put_json("/v1/triggers", &set).await.status(), StatusCode::OK);
    }
    let before = until_trigger(&server, "every", SOON, |state| state["fired"] == 1 && activated(state)).await;
    assert!(server.terminate().success());
    tokio::time::sleep(Duration::from_secs(7)).await;
    let server = Served::start(data_dir.path(), flags).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = server.json("/v1/triggers").await["triggers"][0].clone();
    (before["state"].clone(), after["state"].clone())
}

fn ran_once_for_the_missed_times(before: &Value, after: &Value) {
    assert_eq!(after["fired"], 2, "the missed times run once at start-up: {after}");
    let merged = after["merged"].as_u64().unwrap();
    assert!((2..=3).contains(&merged), "and the others are counted as merged: {after}");
    assert_ne!(after["last_scheduled_for"], before["last_scheduled_for"]);
}

#[tokio::test]
async fn a_schedule_missed_while_down_runs_once_at_start_up() {
    let set = json!({"triggers": [{"name": "every", "every": "2s", "train": {"solver": "least-squares"}}]});
    let (before, after) = missed_while_down(&[], Some(set)).await;
    ran_once_for_the_missed_times(&before, &after);
}

#[tokio::test]
async fn a_schedule_set_by_flags_keeps_its_state_across_a_restart_with_the_same_flags() {
    let (before, after) = missed_while_down(&["--retrain-every", "2s", "--retrain-spec", EXACT], None).await;
    ran_once_for_the_missed_times(&before, &after);
}

#[tokio::test]
async fn a_training_cut_off_by_a_crash_is_shown_as_interrupted_after_the_restart() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = Served::start(data_dir.path(), &[]).await;
    upload_slow(&server).await;
    let fired: Value = fire_webhook(&server, json!({"epochs": 100000, "batch_size": 1})).await;
    assert_eq!(fired["admitted"], "started");
    until_trigger(&server, "webhook", SOON, |state| state["outcome"] == "running").await;
    server.kill();
    let server = Served::start(data_dir.path(), &[]).await;
    let after = until_trigger(&server, "webhook", SOON, |state| state["fired"] == 1).await;
    assert!(after["state"]["outcome"].as_str().unwrap().starts_with("interrupted"), "{after}");
    let fired: Value = fire_webhook(&server, json!({"solver": "least-squares"})).await;
    assert_eq!(fired["admitted"], "started", "the trigger goes on after the crash");
    until_trigger(&server, "webhook", SOON, activated).await;
}

/// Fires the webhook with `spec`; what became of the firing.
async fn fire_webhook(server: &Served, spec: Value) -> Value {
    let response = server.post_json("/v1/triggers/webhook", &spec).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    response.json().await.unwrap()
}

async fn upload_slow(server: &Served) {
    let part = reqwest::multipart::Part::bytes(slow_dataset().into_bytes()).file_name("slow.csv");
    let form = reqwest::multipart::Form::new().part("file", part);
    let uploaded = server.client.post(server.url("/upload")).multipart(form).send().await.unwrap();
    assert_eq!(uploaded.status(), StatusCode::OK);
}

#[tokio::test]
async fn firings_during_a_training_queue_one_and_merge_the_rest() {
    let (server, _dir) = start(&[]).await;
    upload_slow(&server).await;
    let started: Value =
        server.post_json("/train", &json!({"epochs": 100000, "batch_size": 1})).await.json().await.unwrap();
    let running = started["id"].as_u64().unwrap();
    let spec = json!({"solver": "least-squares"});
    let mut admitted = Vec::new();
    for _ in 0..3 {
        let fired: Value = server.post_json("/v1/triggers/webhook", &spec).await.json().await.unwrap();
        admitted.push(fired["admitted"].as_str().unwrap().to_owned());
    }
    assert_eq!(admitted, ["queued", "merged", "merged"]);
    let view = server.json("/v1/triggers").await;
    assert_eq!(view["waiting"], json!({"trigger": "webhook", "merged": 2}));
    assert_eq!(view["running_job"], running);
    let cancelled = server.client.delete(server.url(&format!("/v1/jobs/{running}"))).send().await.unwrap();
    assert!(cancelled.status().is_success());
    let ran = until_trigger(&server, "webhook", SOON, |state| {
        state["job"].as_u64() > Some(running) && activated(state)
    })
    .await;
    assert_eq!(ran["state"]["merged"], 2);
    let metrics = server.client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"regserve_trigger_merged_firings_total{trigger="webhook"} 2"#), "{metrics}");
}

#[tokio::test]
async fn the_gate_keeps_a_worse_model_out_of_service_and_says_why() {
    let (server, _dir) = start(&["--holdout", "0.2"]).await;
    let exact: Value =
        server.post_json("/train?wait=true", &json!({"solver": "least-squares"})).await.json().await.unwrap();
    let served = exact["model"]["version"].clone();
    let fired: Value = fire_webhook(&server, json!({"epochs": 1, "learning_rate": 0.0001})).await;
    let outcome = until_trigger(&server, "webhook", SOON, |state| {
        state["outcome"].as_str().is_some_and(|o| o.contains("not activated"))
    })
    .await;
    assert!(outcome["state"]["outcome"].as_str().unwrap().contains("holdout MSE"), "{outcome}");
    let job = server.json(&format!("/v1/jobs/{}", fired["job"])).await;
    assert_eq!(job["activated"], false, "{job}");
    let gate = &job["gate"];
    assert!(gate["candidate_mse"].as_f64().unwrap() > gate["active_mse"].as_f64().unwrap(), "{gate}");
    assert_eq!(gate["holdout_rows"], 6, "20% of the 30 sample rows");
    assert_eq!(server.json("/v1/model").await["version"], served, "the exact model stays in service");
    let versions = server.json("/v1/models").await;
    assert_eq!(versions.as_array().unwrap().len(), 2, "the rejected version is stored: {versions}");
    let metrics = server.client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("regserve_gate_rejections_total 1"), "{metrics}");
    let manual: Value = server
        .post_json("/train?wait=true", &json!({"epochs": 1, "learning_rate": 0.0001}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(manual["job"]["activated"], true, "a manual /train activates as the original did");
    assert!(manual["job"]["gate"]["candidate_mse"].is_number(), "and is scored on the holdout too");
    let gated: Value = server
        .post_json(
            "/train?wait=true",
            &json!({"epochs": 1, "learning_rate": 0.0001, "gate": true, "seed": 3}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(gated["job"]["origin"], json!({"kind": "manual"}));
    assert!(
        gated["job"]["activated"].is_boolean(),
        "a manual training that asks for the gate gets a verdict"
    );
}
