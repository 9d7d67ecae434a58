//! The MQTT and Kafka subscribers against real brokers on loopback: mosquitto at
//! `REGSERVE_TEST_MQTT` and Tansu at `REGSERVE_TEST_KAFKA` (HOST:PORT, which scripts/test.sh
//! sets through scripts/brokers.sh). Without them the tests are skipped, except under CI, where
//! that fails. Each test uses topics and client ids of its own, so they share the brokers.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regserve::app::Application;
use regserve::settings::{KafkaSettings, Location, MqttSettings, Settings, TrainingPriority};
use reqwest::StatusCode;
use rskafka::chrono::Utc;
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);
/// The rows of the dataset uploaded first.
const UPLOADED: u64 = 2;
/// With the probe row that tells the MQTT subscription is in place.
const PROBED: u64 = UPLOADED + 1;

/// The broker at `variable` (HOST:PORT), or None (and a note) when it is unset outside CI.
pub(crate) fn broker(variable: &str) -> Option<(String, u16)> {
    let Some(address) = std::env::var(variable).ok().filter(|value| !value.is_empty()) else {
        let why = format!("the broker tests need {variable} (HOST:PORT; scripts/test.sh sets it)");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}, and under CI they must run");
        eprintln!("skipped: {why}");
        return None;
    };
    let (host, port) = address.rsplit_once(':').expect("HOST:PORT");
    Some((host.to_owned(), port.parse().expect("a port")))
}

/// A name no other test (or earlier run against the same brokers) uses.
pub(crate) fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A server on a store in `dir`, which can be stopped and started again on the same store.
struct Server {
    addr: std::net::SocketAddr,
    client: reqwest::Client,
    stop: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(dir: &Path, configure: impl FnOnce(&mut Settings)) -> Self {
        let mut config = Settings::new("127.0.0.1:0".parse().unwrap(), Location::Local(dir.to_path_buf()));
        config.limits.training_priority = TrainingPriority::Nice(0);
        configure(&mut config);
        let app = Application::build(config).await.expect("server starts");
        let (addr, stop) = (app.local_addr(), CancellationToken::new());
        let stopped = stop.clone();
        let task = tokio::spawn(app.run_until_stopped(async move { stopped.cancelled().await }));
        Server { addr, client: reqwest::Client::new(), stop, task }
    }

    /// Stops the server, its subscribers with it.
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.task).await.expect("stopped in time").unwrap().unwrap();
    }

    async fn dataset(&self) -> Value {
        let response = self.client.get(format!("http://{}/v1/dataset", self.addr)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    async fn rows(&self) -> u64 {
        self.dataset().await["rows"].as_u64().unwrap()
    }

    /// Replaces the dataset by [`UPLOADED`] rows (0, 0) of columns x and y, which appended rows must have.
    async fn upload_xy(&self) {
        let part = reqwest::multipart::Part::bytes(b"x,y\n0,0\n0,0\n".to_vec()).file_name("data.csv");
        let form = reqwest::multipart::Form::new().part("file", part);
        let url = format!("http://{}/upload", self.addr);
        let response = self.client.post(url).multipart(form).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// Waits until the dataset has `rows` rows; fails with the summary when it does not.
    async fn until_rows(&self, rows: u64) {
        let deadline = Instant::now() + WAIT;
        while self.rows().await != rows {
            assert!(Instant::now() < deadline, "expected {rows} rows: {}", self.dataset().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits a moment and checks that the dataset still has `rows` rows (nothing came twice).
    async fn stays_at(&self, rows: u64) {
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(self.rows().await, rows, "{}", self.dataset().await);
    }

    async fn source(&self, name: &str, what: &str) -> u64 {
        self.dataset().await["sources"][name][what].as_u64().unwrap_or(0)
    }
}

/// A plain MQTT client; collects what it receives.
struct Publisher {
    client: AsyncClient,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Publisher {
    fn connect((host, port): &(String, u16), id: &str) -> Self {
        let (client, mut events) = AsyncClient::new(MqttOptions::new(id, host, *port), 64);
        let received = Arc::new(Mutex::new(Vec::new()));
        let collected = received.clone();
        tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        collected.lock().unwrap().push(p.payload.to_vec())
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Publisher { client, received }
    }

    async fn publish(&self, topic: &str, payload: &str) {
        self.client.publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec()).await.unwrap();
    }

    /// Publishes one probe row under a fixed batch id until it is appended: the server's
    /// subscription is then in place, and the dataset has `rows` + 1 rows.
    async fn until_subscribed(&self, server: &Server, topic: &str, rows: u64) {
        let deadline = Instant::now() + WAIT;
        let probe = r#"{"rows": [{"x": -1, "y": -1}], "batch_id": "probe"}"#;
        while server.rows().await == rows {
            assert!(Instant::now() < deadline, "the server never subscribed");
            self.publish(topic, probe).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        server.until_rows(rows + 1).await;
    }
}

/// Subscribing to `filter` (dead letters to `dead_letter`), as a client id of its own.
fn mqtt_settings(broker: &(String, u16), filter: &str, dead_letter: Option<String>) -> MqttSettings {
    MqttSettings {
        host: broker.0.clone(),
        port: broker.1,
        topics: vec![filter.to_owned()],
        dead_letter,
        client_id: unique("regserve"),
    }
}

/// A server subscribed to `filter` (dead letters to `dead_letter`), with the x,y dataset and a
/// probe row appended through `probe_topic`: the dataset then has [`PROBED`] rows.
async fn mqtt_server(
    broker: &(String, u16),
    dir: &Path,
    filter: &str,
    dead_letter: Option<String>,
    probe_topic: &str,
) -> (Server, Publisher) {
    let settings = mqtt_settings(broker, filter, dead_letter);
    let server = Server::start(dir, |config| config.sources.mqtt = Some(settings)).await;
    server.upload_xy().await;
    let publisher = Publisher::connect(broker, &unique("publisher"));
    publisher.until_subscribed(&server, probe_topic, UPLOADED).await;
    (server, publisher)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_rows_on_a_wildcard_filter_are_appended() {
    let Some(broker) = broker("REGSERVE_TEST_MQTT") else { return };
    let (dir, base) = (tempfile::tempdir().unwrap(), unique("plant"));
    let filter = format!("{base}/+/rows");
    let (server, publisher) =
        mqtt_server(&broker, dir.path(), &filter, None, &format!("{base}/probe/rows")).await;

    publisher.publish(&format!("{base}/a/rows"), r#"{"x": 1, "y": 2}"#).await;
    publisher.publish(&format!("{base}/b/rows"), r#"[{"x": 2, "y": 4}, {"y": 6, "x": 3}]"#).await;
    publisher.publish(&format!("{base}/c/rows"), "y,x\n8,4\n10,5\n").await;
    publisher.publish(&format!("{base}/d/other"), r#"{"x": 100, "y": 100}"#).await;
    server.until_rows(PROBED + 5).await;

    let summary = server.dataset().await;
    assert_eq!(summary["sources"]["mqtt"]["rows"], 1 + 5, "{summary}");
    let x = &summary["columns"][0];
    assert_eq!((x["name"].as_str(), x["max"].as_f64()), (Some("x"), Some(5.0)), "not the unsubscribed topic");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_mqtt_payload_is_counted_dead_lettered_and_later_ones_arrive() {
    let Some(broker) = broker("REGSERVE_TEST_MQTT") else { return };
    let (dir, base) = (tempfile::tempdir().unwrap(), unique("plant"));
    let dead_letter = format!("{base}-dead");
    let (server, publisher) = mqtt_server(
        &broker,
        dir.path(),
        &format!("{base}/#"),
        Some(dead_letter.clone()),
        &format!("{base}/p"),
    )
    .await;
    let watcher = Publisher::connect(&broker, &unique("watcher"));
    watcher.client.subscribe(&dead_letter, QoS::AtLeastOnce).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (broken, foreign) = (r#"{"x": 1, "y":"#, r#"{"x": 1, "z": 2}"#);
    publisher.publish(&format!("{base}/s"), broken).await;
    publisher.publish(&format!("{base}/s"), foreign).await;
    publisher.publish(&format!("{base}/s"), r#"{"x": 7, "y": 14}"#).await;
    server.until_rows(PROBED + 1).await;

    let deadline = Instant::now() + WAIT;
    while server.source("mqtt", "rejected").await != 2 || watcher.received.lock().unwrap().len() != 2 {
        assert!(
            Instant::now() < deadline,
            "{} {:?}",
            server.dataset().await,
            watcher.received.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut dead: Vec<Vec<u8>> = watcher.received.lock().unwrap().clone();
    dead.sort();
    let mut sent = vec![broken.as_bytes().to_vec(), foreign.as_bytes().to_vec()];
    sent.sort();
    assert_eq!(dead, sent, "the original payloads on the dead-letter topic");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_batch_id_published_twice_is_appended_once() {
    let Some(broker) = broker("REGSERVE_TEST_MQTT") else { return };
    let (dir, base) = (tempfile::tempdir().unwrap(), unique("plant"));
    let topic = format!("{base}/batches");
    let (server, publisher) = mqtt_server(&broker, dir.path(), &topic, None, &topic).await;

    let batch = r#"{"rows": [{"x": 1, "y": 1}, {"x": 2, "y": 2}], "batch_id": "b-1"}"#;
    publisher.publish(&topic, batch).await;
    publisher.publish(&topic, batch).await;
    publisher.publish(&topic, r#"{"rows": [{"x": 3, "y": 3}], "batch_id": "b-2"}"#).await;
    server.until_rows(PROBED + 3).await;
    server.stays_at(PROBED + 3).await;
    server.stop().await;
}

/// Messages without a batch id would be appended again if the broker delivered them again: after
/// a restart on the same persistent session, none comes back, so each one was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mqtt_message_is_acknowledged_so_a_restart_receives_none_again() {
    let Some(broker) = broker("REGSERVE_TEST_MQTT") else { return };
    let (dir, topic) = (tempfile::tempdir().unwrap(), unique("plant"));
    let settings = mqtt_settings(&broker, &topic, None);
    let server = Server::start(dir.path(), |config| config.sources.mqtt = Some(settings.clone())).await;
    server.upload_xy().await;
    let publisher = Publisher::connect(&broker, &unique("publisher"));
    publisher.until_subscribed(&server, &topic, UPLOADED).await;
    const MESSAGES: u64 = 300;
    for i in 0..MESSAGES {
        publisher.publish(&topic, &format!(r#"{{"x": {i}, "y": {i}}}"#)).await;
    }
    server.until_rows(PROBED + MESSAGES).await;
    server.stop().await;

    let server = Server::start(dir.path(), |config| config.sources.mqtt = Some(settings)).await;
    publisher.publish(&topic, r#"{"x": -2, "y": -2}"#).await;
    server.until_rows(PROBED + MESSAGES + 1).await;
    server.stays_at(PROBED + MESSAGES + 1).await;
    server.stop().await;
}

/// A Kafka client, and a topic of `partitions` partitions made for the test.
pub(crate) async fn kafka_topic(broker: &(String, u16), partitions: i32) -> (Client, String) {
    let client =
        ClientBuilder::new(vec![format!("{}:{}", broker.0, broker.1)]).build().await.expect("client");
    let topic = unique("rows");
    let controller = client.controller_client().expect("controller");
    controller.create_topic(&topic, partitions, 1, 5_000).await.expect("topic created");
    (client, topic)
}

/// Produces `values` to one partition of `topic`.
pub(crate) async fn produce(client: &Client, topic: &str, partition: i32, values: Vec<String>) {
    let record = |value: String| Record {
        key: None,
        value: Some(value.into_bytes()),
        headers: BTreeMap::new(),
        timestamp: Utc::now(),
    };
    let partition = client.partition_client(topic, partition, UnknownTopicHandling::Retry).await.unwrap();
    partition.produce(values.into_iter().map(record).collect(), Compression::NoCompression).await.unwrap();
}

/// Rows whose x are `range` on every partition, x unique across partitions.
async fn produce_rows(client: &Client, topic: &str, range: std::ops::Range<u64>) {
    for partition in 0..3 {
        let rows =
            range.clone().map(|i| format!(r#"{{"x": {}, "y": {partition}}}"#, i * 3 + partition as u64));
        produce(client, topic, partition, rows.collect()).await;
    }
}

fn kafka_settings(broker: &(String, u16), topic: &str) -> KafkaSettings {
    KafkaSettings { brokers: vec![format!("{}:{}", broker.0, broker.1)], topic: topic.to_owned() }
}

/// The mean of column x, which tells whether every x arrived once.
async fn mean_x(server: &Server) -> f64 {
    server.dataset().await["columns"][0]["mean"].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_records_are_appended_exactly_once_across_a_restart() {
    let Some(broker) = broker("REGSERVE_TEST_KAFKA") else { return };
    let (client, topic) = kafka_topic(&broker, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = kafka_settings(&broker, &topic);
    let server = Server::start(dir.path(), |config| config.sources.kafka = Some(settings.clone())).await;
    server.upload_xy().await;

    produce_rows(&client, &topic, 0..10).await;
    server.until_rows(UPLOADED + 30).await;
    server.stays_at(UPLOADED + 30).await;
    // x = 0..30 once each, and the uploaded zeros.
    assert!((mean_x(&server).await - 435.0 / 32.0).abs() < 1e-9, "{}", server.dataset().await);
    server.stop().await;

    produce_rows(&client, &topic, 10..20).await;
    let server = Server::start(dir.path(), |config| config.sources.kafka = Some(settings)).await;
    server.until_rows(UPLOADED + 60).await;
    server.stays_at(UPLOADED + 60).await;
    assert!((mean_x(&server).await - 1770.0 / 62.0).abs() < 1e-9, "{}", server.dataset().await);
    assert_eq!(server.source("kafka", "rows").await, 30, "only the new records after the restart");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_kafka_record_is_skipped_and_counted() {
    let Some(broker) = broker("REGSERVE_TEST_KAFKA") else { return };
    let (client, topic) = kafka_topic(&broker, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = kafka_settings(&broker, &topic);
    let server = Server::start(dir.path(), |config| config.sources.kafka = Some(settings)).await;
    server.upload_xy().await;

    let records = [r#"{"x": 1, "y": 1}"#, r#"{"x": 2, "y":"#, r#"{"y": 3, "z": 3}"#, "y,x\n4,4\n5,5\n"];
    produce(&client, &topic, 0, records.map(String::from).to_vec()).await;
    server.until_rows(UPLOADED + 3).await;
    until_rejected(&server, 2).await;
    produce(&client, &topic, 0, vec![r#"{"x": 6, "y": 6}"#.to_owned()]).await;
    server.until_rows(UPLOADED + 4).await;

    // A fetch whose first good record does not fit the dataset: its records are then appended
    // one at a time, and only the one that does not fit is skipped.
    produce(&client, &topic, 0, vec![r#"{"x": 7, "z": 7}"#.to_owned(), r#"{"x": 8, "y": 8}"#.to_owned()])
        .await;
    server.until_rows(UPLOADED + 5).await;
    until_rejected(&server, 2 + 1).await;
    // A fetch that ends with a record that does not fit: its position is stored all the same.
    produce(&client, &topic, 0, vec![r#"{"x": 9, "y": 9}"#.to_owned(), r#"{"w": 10, "y": 10}"#.to_owned()])
        .await;
    server.until_rows(UPLOADED + 6).await;
    until_rejected(&server, 2 + 2).await;
    server.stop().await;

    let settings = kafka_settings(&broker, &topic);
    let server = Server::start(dir.path(), |config| config.sources.kafka = Some(settings)).await;
    server.stays_at(UPLOADED + 6).await;
    assert_eq!(server.source("kafka", "rejected").await, 0, "nothing was read again after the restart");
    server.stop().await;
}

async fn until_rejected(server: &Server, rejected: u64) {
    let deadline = Instant::now() + WAIT;
    while server.source("kafka", "rejected").await != rejected {
        assert!(Instant::now() < deadline, "{}", server.dataset().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
