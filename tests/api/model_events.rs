//! The model event stream: activations as Server-Sent Events, live and replayed after a
//! reconnection with `Last-Event-ID`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use regserve::settings::Role;
use regserve::storage::memory::MemoryStore;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_of, spawn_app, spawn_node};

/// How long a test waits for an event that must come.
const PATIENCE: Duration = Duration::from_secs(20);

/// One event of the stream: its id (if any), name and data.
type Received = (Option<String>, String, Value);

/// An open `/v1/models/events` stream, read one event at a time.
struct EventStream {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl EventStream {
    async fn open(app: &TestApp, last_event_id: Option<&str>) -> Self {
        let mut request = app.client.get(app.url("/v1/models/events"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        Self { body: Box::pin(response.bytes_stream()), buffer: String::new() }
    }

    /// The next event (keep-alive comments skipped), or `None` if none comes within `wait`.
    async fn next_within(&mut self, wait: Duration) -> Option<Received> {
        tokio::time::timeout(wait, self.next()).await.ok()
    }

    async fn next(&mut self) -> Received {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field =
                    |name: &str| block.lines().find_map(|line| line.strip_prefix(name)).map(str::trim);
                if let (Some(event), Some(data)) = (field("event:"), field("data:")) {
                    return (
                        field("id:").map(str::to_owned),
                        event.to_owned(),
                        serde_json::from_str(data).unwrap(),
                    );
                }
                continue;
            }
            let chunk = self.body.next().await.expect("the stream stays open").unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next `count` events, which must be activations; returns their data.
    async fn activations(&mut self, count: usize) -> Vec<Value> {
        let mut found = Vec::new();
        for _ in 0..count {
            let (id, name, data) = self.next_within(PATIENCE).await.expect("an activation event comes");
            assert_eq!(name, "activation");
            assert_eq!(id, Some(data["id"].to_string()), "the SSE id is the event's id");
            found.push(data);
        }
        found
    }
}

/// `(id, version, previous, reason kind)` of activation events.
fn summary(events: &[Value]) -> Vec<(u64, u64, Value, String)> {
    let of = |event: &Value| {
        let reason = event["reason"]["kind"].as_str().unwrap().to_owned();
        (event["id"].as_u64().unwrap(), event["version"].as_u64().unwrap(), event["previous"].clone(), reason)
    };
    events.iter().map(of).collect()
}

/// Whether the metrics hold a sample of the time since the last activation.
async fn shows_time_since_activation(app: &TestApp) -> bool {
    let metrics = app.get("/metrics").await.text().await.unwrap();
    metrics.lines().any(|line| line.starts_with("regserve_model_seconds_since_activation"))
}

async fn rollback(app: &TestApp, version: u64) {
    let response = app
        .client
        .post(app.url(&format!("/v1/models/regserve/versions/{version}/activate")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_training_is_announced_live_and_a_reconnection_gets_exactly_the_missed_events() {
    let app = spawn_app().await;
    let mut stream = EventStream::open(&app, None).await;
    assert_eq!(stream.next_within(Duration::from_millis(300)).await, None, "no history yet");
    app.train(json!({ "solver": "least-squares" })).await;
    let first = stream.activations(1).await;
    assert_eq!(summary(&first), [(1, 1, Value::Null, "manual".to_owned())]);
    assert_eq!(first[0]["gate"], Value::Null);
    assert!(first[0]["at"].as_str().unwrap().ends_with('Z'), "{}", first[0]["at"]);
    app.train(json!({ "epochs": 3, "seed": 1 })).await;
    assert_eq!(summary(&stream.activations(1).await), [(2, 2, json!(1), "manual".to_owned())]);
    drop(stream);

    // Missed while disconnected: a training and a rollback.
    app.train(json!({ "epochs": 3, "seed": 2 })).await;
    rollback(&app, 1).await;
    let mut resumed = EventStream::open(&app, Some("2")).await;
    let missed = resumed.activations(2).await;
    assert_eq!(
        summary(&missed),
        [(3, 3, json!(2), "manual".to_owned()), (4, 1, json!(3), "rollback".to_owned())]
    );
    assert_eq!(resumed.next_within(Duration::from_millis(300)).await, None, "nothing but the missed ones");
    rollback(&app, 2).await;
    assert_eq!(summary(&resumed.activations(1).await), [(5, 2, json!(1), "rollback".to_owned())]);

    // A new client, and one whose id this server never reached, get the history.
    for last_event_id in [None, Some("99")] {
        let history = EventStream::open(&app, last_event_id).await.activations(5).await;
        assert_eq!(
            history.iter().map(|event| event["id"].as_u64().unwrap()).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
    }
    // Making the served version active again is no event.
    rollback(&app, 2).await;
    assert_eq!(EventStream::open(&app, Some("5")).await.next_within(Duration::from_millis(300)).await, None);
}

#[tokio::test]
async fn activations_are_counted_by_reason_and_a_bad_last_event_id_is_refused() {
    let app = spawn_app().await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        !metrics.lines().any(|line| line.starts_with("regserve_model_seconds_since_activation")),
        "{metrics}"
    );
    app.train(json!({ "solver": "least-squares" })).await;
    app.train(json!({ "epochs": 3, "seed": 1 })).await;
    rollback(&app, 1).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("regserve_model_activations_total{reason=\"manual\"} 2\n"), "{metrics}");
    assert!(metrics.contains("regserve_model_activations_total{reason=\"rollback\"} 1\n"), "{metrics}");
    let since =
        metrics.lines().find_map(|line| line.strip_prefix("regserve_model_seconds_since_activation "));
    let since: f64 = since.expect("a sample once there was an activation").parse().unwrap();
    assert!((0.0..60.0).contains(&since), "{since}");

    let response =
        app.client.get(app.url("/v1/models/events")).header("last-event-id", "x").send().await.unwrap();
    let message = error_of(response, StatusCode::BAD_REQUEST).await;
    assert!(message.contains("Last-Event-ID"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_predictor_passes_the_stream_on_to_the_trainer() {
    let store = Arc::new(MemoryStore::new());
    let trainer = spawn_node(store.clone(), |config| config.cluster.role = Role::Trainer).await;
    trainer.train(json!({ "solver": "least-squares" })).await;
    trainer.train(json!({ "epochs": 3, "seed": 1 })).await;
    let trainer_url = trainer.url("");
    let predictor = spawn_node(store, move |config| {
        config.cluster.role = Role::Predictor;
        config.cluster.trainer_url = Some(trainer_url);
    })
    .await;
    let mut stream = EventStream::open(&predictor, Some("1")).await;
    assert_eq!(summary(&stream.activations(1).await), [(2, 2, json!(1), "manual".to_owned())]);
    rollback(&trainer, 1).await;
    assert_eq!(summary(&stream.activations(1).await), [(3, 1, json!(2), "rollback".to_owned())]);
    assert!(shows_time_since_activation(&trainer).await);
    assert!(!shows_time_since_activation(&predictor).await, "a predictor activates nothing");
}
