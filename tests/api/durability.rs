//! The intake's promise: every acknowledged row (an HTTP 200, a WebSocket ack, a PUBACK to the
//! MQTT broker, a stored Kafka offset) survives a SIGKILL of the server at any moment and a
//! restart, exactly once. Feeders append numbered rows from every source while the server is
//! killed again and again at random moments: HTTP and WebSocket retry what was not acknowledged
//! under the same idempotency key; MQTT messages (QoS 1, with a batch id) wait in the broker's
//! session for the server's PUBACK; Kafka records wait in their partitions for the server's
//! stored offsets. At the end every row of the dataset is counted and summed, per source. The
//! brokers are those of the broker tests (skipped without them, except under CI).

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::RngExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::helpers::free_port;
use crate::process::Server;

/// Rows of one batch.
const BATCH_ROWS: u64 = 50;
/// A row's `Education` is `source tag x TAG_SCALE + row id`: which source sent it, and which row.
const TAG_SCALE: f64 = 1e12;
const HTTP_TAG: u64 = 1;
const WEBSOCKET_TAG: u64 = 2;
const MQTT_TAG: u64 = 3;
const KAFKA_TAG: u64 = 4;
/// Rows that only tell the server has subscribed; not counted.
const PROBE_TAG: u64 = 9;

/// The rows each source has had acknowledged.
#[derive(Default)]
struct Ledger {
    acknowledged: Mutex<BTreeMap<u64, Vec<u64>>>,
}

impl Ledger {
    fn record(&self, tag: u64, batch: u64) {
        let ids = (batch * BATCH_ROWS..(batch + 1) * BATCH_ROWS).collect::<Vec<_>>();
        self.acknowledged.lock().unwrap().entry(tag).or_default().extend(ids);
    }
}

fn rows(tag: u64, batch: u64) -> Value {
    let row = |id: u64| json!({"Education": (tag as f64) * TAG_SCALE + id as f64, "Income": id});
    (batch * BATCH_ROWS..(batch + 1) * BATCH_ROWS).map(row).collect()
}

/// Appends batch after batch over HTTP, each retried under its key until acknowledged.
async fn feed_http(base: String, ledger: Arc<Ledger>, stop: CancellationToken) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    for batch in 0.. {
        if stop.is_cancelled() {
            return;
        }
        let body = json!({"rows": rows(HTTP_TAG, batch), "batch_id": format!("http-{batch}")});
        loop {
            let sent = client.post(format!("{base}/v1/data")).json(&body).send().await;
            if sent.is_ok_and(|response| response.status().is_success()) {
                ledger.record(HTTP_TAG, batch);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Appends over a WebSocket with several batches in flight; after a lost connection, sends the
/// unacknowledged ones again on a new one.
async fn feed_websocket(base: String, ledger: Arc<Ledger>, stop: CancellationToken) {
    let url = format!("{}/v1/data/ws", base.replace("http://", "ws://"));
    let mut unacknowledged: VecDeque<(u64, String)> = VecDeque::new();
    let mut next = 0;
    while !stop.is_cancelled() || !unacknowledged.is_empty() {
        let Ok((mut socket, _)) = tokio_tungstenite::connect_async(&url).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let mut resent = true;
        for (_, frame) in &unacknowledged {
            resent &= socket.send(Message::text(frame.clone())).await.is_ok();
        }
        while resent && (!stop.is_cancelled() || !unacknowledged.is_empty()) {
            if unacknowledged.len() < 8 && !stop.is_cancelled() {
                let frame =
                    json!({"seq": next, "rows": rows(WEBSOCKET_TAG, next), "batch_id": format!("ws-{next}")});
                unacknowledged.push_back((next, frame.to_string()));
                next += 1;
                if socket.send(Message::text(unacknowledged.back().unwrap().1.clone())).await.is_err() {
                    break;
                }
                continue;
            }
            let answer = tokio::time::timeout(Duration::from_secs(2), socket.next()).await;
            let Ok(Some(Ok(Message::Text(text)))) = answer else { break };
            let answer: Value = serde_json::from_str(&text).unwrap();
            let Some(acked) = answer["ack"].as_u64() else { break };
            let (expected, _) = unacknowledged.pop_front().expect("an ack answers a sent batch");
            assert_eq!(acked, expected, "acks come in order");
            ledger.record(WEBSOCKET_TAG, acked);
        }
    }
}

/// Publishes batches (QoS 1, each with its batch id) until stopped; every one counts as sent:
/// the broker holds it in the server's session until the server acknowledges it.
async fn feed_mqtt(broker: (String, u16), topic: String, ledger: Arc<Ledger>, stop: CancellationToken) {
    let options = rumqttc::MqttOptions::new(crate::brokers::unique("feeder"), broker.0, broker.1);
    let (client, mut events) = rumqttc::AsyncClient::new(options, 256);
    let polling = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    for batch in 0.. {
        if stop.is_cancelled() {
            break;
        }
        let body = json!({"rows": rows(MQTT_TAG, batch), "batch_id": format!("mqtt-{batch}")}).to_string();
        client.publish(&topic, rumqttc::QoS::AtLeastOnce, false, body).await.unwrap();
        ledger.record(MQTT_TAG, batch);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The last publications reach the broker before the connection goes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    polling.abort();
}

/// Produces records (one batch each) round-robin to the partitions until stopped; a record the
/// broker acknowledged counts as sent.
async fn feed_kafka(
    client: Arc<rskafka::client::Client>,
    topic: String,
    ledger: Arc<Ledger>,
    stop: CancellationToken,
) {
    for batch in 0.. {
        if stop.is_cancelled() {
            return;
        }
        let body = json!({ "rows": rows(KAFKA_TAG, batch) }).to_string();
        crate::brokers::produce(&client, &topic, (batch % 3) as i32, vec![body]).await;
        ledger.record(KAFKA_TAG, batch);
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

/// The brokers and the server's settings for them, when the brokers are there.
struct Brokers {
    mqtt: (String, u16),
    mqtt_topic: String,
    client_id: String,
    kafka: Arc<rskafka::client::Client>,
    kafka_address: String,
    kafka_topic: String,
}

async fn brokers() -> Option<Brokers> {
    let mqtt = crate::brokers::broker("REGSERVE_TEST_MQTT")?;
    let kafka = crate::brokers::broker("REGSERVE_TEST_KAFKA")?;
    let (client, kafka_topic) = crate::brokers::kafka_topic(&kafka, 3).await;
    Some(Brokers {
        mqtt,
        mqtt_topic: crate::brokers::unique("durable"),
        client_id: crate::brokers::unique("regserve"),
        kafka: Arc::new(client),
        kafka_address: format!("{}:{}", kafka.0, kafka.1),
        kafka_topic,
    })
}

async fn start(data: &Path, port: u16, brokers: Option<&Brokers>) -> Server {
    Server::start_with(data, |command| {
        command.env("REGSERVE_ADDR", format!("127.0.0.1:{port}"));
        if let Some(brokers) = brokers {
            command
                .env("REGSERVE_MQTT_URL", format!("mqtt://{}:{}", brokers.mqtt.0, brokers.mqtt.1))
                .env("REGSERVE_MQTT_TOPIC", &brokers.mqtt_topic)
                .env("REGSERVE_MQTT_CLIENT_ID", &brokers.client_id)
                .env("REGSERVE_KAFKA_BROKERS", &brokers.kafka_address)
                .env("REGSERVE_KAFKA_TOPIC", &brokers.kafka_topic);
        }
    })
    .await
}

/// Publishes a probe row until it is appended: the server's MQTT session then exists, and the
/// broker keeps what is published for it while it is down.
async fn until_subscribed(server: &Server, brokers: &Brokers) {
    let options =
        rumqttc::MqttOptions::new(crate::brokers::unique("probe"), brokers.mqtt.0.clone(), brokers.mqtt.1);
    let (client, mut events) = rumqttc::AsyncClient::new(options, 16);
    let polling = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let probe =
        json!({"rows": [{"Education": PROBE_TAG as f64 * TAG_SCALE, "Income": 0}], "batch_id": "probe"});
    for _ in 0..100 {
        if server.json("/v1/dataset").await["sources"]["mqtt"]["rows"].as_u64() > Some(0) {
            polling.abort();
            return;
        }
        client
            .publish(&brokers.mqtt_topic, rumqttc::QoS::AtLeastOnce, false, probe.to_string())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the server never subscribed:\n{}", server.log());
}

/// The rows of the dataset by source tag: each row's id.
async fn stored_rows(server: &Server) -> BTreeMap<u64, Vec<u64>> {
    let csv = server.get("/v1/dataset.csv").await.text().await.unwrap();
    let mut stored: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let education: f64 = line.split(',').next().unwrap().parse().unwrap();
        let tag = (education / TAG_SCALE).floor() as u64;
        if tag > 0 && tag != PROBE_TAG {
            stored.entry(tag).or_default().push((education - tag as f64 * TAG_SCALE) as u64);
        }
    }
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_row_survives_sigkill_at_any_moment_exactly_once() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let brokers = brokers().await;
    let mut server = start(data.path(), port, brokers.as_ref()).await;
    let base = server.base.clone();
    let (ledger, stop) = (Arc::new(Ledger::default()), CancellationToken::new());
    let mut feeders = vec![
        tokio::spawn(feed_http(base.clone(), ledger.clone(), stop.clone())),
        tokio::spawn(feed_websocket(base.clone(), ledger.clone(), stop.clone())),
    ];
    let mut tags = vec![HTTP_TAG, WEBSOCKET_TAG];
    if let Some(brokers) = &brokers {
        until_subscribed(&server, brokers).await;
        let (broker, topic) = (brokers.mqtt.clone(), brokers.mqtt_topic.clone());
        feeders.push(tokio::spawn(feed_mqtt(broker, topic, ledger.clone(), stop.clone())));
        let (client, topic) = (brokers.kafka.clone(), brokers.kafka_topic.clone());
        feeders.push(tokio::spawn(feed_kafka(client, topic, ledger.clone(), stop.clone())));
        tags.extend([MQTT_TAG, KAFKA_TAG]);
    }
    for _ in 0..8 {
        let pause = rand::rng().random_range(50..600);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        server.kill().await;
        server = start(data.path(), port, brokers.as_ref()).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    for feeder in feeders {
        tokio::time::timeout(Duration::from_secs(60), feeder).await.expect("the feeders finish").unwrap();
    }

    let acknowledged = ledger.acknowledged.lock().unwrap().clone();
    let expected = |tag: u64| acknowledged.get(&tag).map_or(0, Vec::len);
    // What the brokers still hold for the server arrives after the feeders have stopped.
    let mut stored = stored_rows(&server).await;
    for _ in 0..300 {
        if tags.iter().all(|tag| stored.get(tag).map_or(0, Vec::len) >= expected(*tag)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        stored = stored_rows(&server).await;
    }
    for tag in tags {
        let (mut acked, mut there) =
            (acknowledged[&tag].clone(), stored.get(&tag).cloned().unwrap_or_default());
        acked.sort_unstable();
        there.sort_unstable();
        assert!(acked.len() as u64 > 10 * BATCH_ROWS, "source {tag}: too few rows were sent to tell");
        assert_eq!(
            (there.len(), there.iter().sum::<u64>()),
            (acked.len(), acked.iter().sum::<u64>()),
            "source {tag}: every acknowledged row once, and nothing else (count and checksum)"
        );
        assert_eq!(there, acked);
    }
}
