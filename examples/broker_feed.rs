//! Load for the broker sources, and the brokers' own rates to compare the intake with: publishes
//! MQTT messages or produces Kafka records of numbered rows as fast as the broker takes them,
//! and, as the reference, a plain subscriber or consumer that only counts what it receives.
//! Each prints one JSON line with the epoch seconds of its first and last message, and the
//! CPU time it used (user and system, in seconds).
//!
//! ```text
//! broker_feed mqtt-publish HOST:PORT TOPIC MESSAGES ROWS_PER_MESSAGE
//! broker_feed mqtt-subscribe HOST:PORT TOPIC MESSAGES
//! broker_feed kafka-produce HOST:PORT TOPIC RECORDS ROWS_PER_RECORD PARTITIONS
//! broker_feed kafka-consume HOST:PORT TOPIC RECORDS PARTITIONS
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rskafka::chrono::Utc;
use rskafka::client::ClientBuilder;
use rskafka::client::partition::{Compression, OffsetAt, UnknownTopicHandling};
use rskafka::record::Record;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// Records handed to the broker in one produce request.
const RECORDS_PER_PRODUCE: usize = 100;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |index: usize| -> usize { args[index].parse().expect("a number") };
    let (first, last) = match args.first().map(String::as_str) {
        Some("mqtt-publish") => mqtt_publish(&args[1], &args[2], number(3), number(4)).await,
        Some("mqtt-subscribe") => mqtt_subscribe(&args[1], &args[2], number(3)).await,
        Some("kafka-produce") => kafka_produce(&args[1], &args[2], number(3), number(4), number(5)).await,
        Some("kafka-consume") => kafka_consume(&args[1], &args[2], number(3), number(4)).await,
        _ => {
            eprintln!("usage: see the module documentation of examples/broker_feed.rs");
            std::process::exit(2);
        }
    };
    println!("{{\"first\": {first:.6}, \"last\": {last:.6}, \"cpu_seconds\": {:.3}}}", cpu_seconds());
}

/// User and system CPU time of this process so far, from `/proc/self/stat` (in ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: Vec<f64> =
        after_name.split_whitespace().skip(11).take(2).filter_map(|t| t.parse().ok()).collect();
    ticks.iter().sum::<f64>() / 100.0
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs_f64()
}

/// A JSON batch of `rows` rows near `Income = 3 Education + 2`.
fn payload(seed: usize, rows: usize) -> String {
    let row = |i: usize| {
        let x = ((seed * 31 + i) % 1000) as f64 / 50.0;
        format!("{{\"Education\":{x},\"Income\":{}}}", 3.0 * x + 2.0 + ((seed + i) % 13) as f64 / 10.0)
    };
    format!("{{\"rows\":[{}]}}", (0..rows).map(row).collect::<Vec<_>>().join(","))
}

fn mqtt_client(address: &str, id: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let (host, port) = address.rsplit_once(':').expect("HOST:PORT");
    let mut options = MqttOptions::new(id, host, port.parse().expect("a port"));
    options.set_max_packet_size(16 << 20, 16 << 20).set_inflight(100);
    AsyncClient::new(options, 1024)
}

/// Publishes QoS 1 and returns once the broker has acknowledged every message.
async fn mqtt_publish(address: &str, topic: &str, messages: usize, rows: usize) -> (f64, f64) {
    let (client, mut events) = mqtt_client(address, &format!("broker-feed-pub-{}", std::process::id()));
    let bodies: Vec<String> = (0..16).map(|seed| payload(seed, rows)).collect();
    let topic = topic.to_owned();
    let first = now();
    tokio::spawn(async move {
        for message in 0..messages {
            let body = bodies[message % bodies.len()].clone();
            client.publish(&topic, QoS::AtLeastOnce, false, body).await.expect("queued");
        }
    });
    let mut acknowledged = 0;
    while acknowledged < messages {
        if let Event::Incoming(Packet::PubAck(_)) = events.poll().await.expect("the broker answers") {
            acknowledged += 1;
        }
    }
    (first, now())
}

/// Subscribes QoS 1 and counts `messages`.
async fn mqtt_subscribe(address: &str, topic: &str, messages: usize) -> (f64, f64) {
    let (client, mut events) = mqtt_client(address, &format!("broker-feed-sub-{}", std::process::id()));
    client.subscribe(topic, QoS::AtLeastOnce).await.expect("queued");
    let (mut received, mut first) = (0, 0.0);
    while received < messages {
        if let Event::Incoming(Packet::Publish(_)) = events.poll().await.expect("the broker answers") {
            if received == 0 {
                first = now();
            }
            received += 1;
        }
    }
    (first, now())
}

/// Creates the topic and produces `records` round-robin over its partitions.
async fn kafka_produce(
    address: &str,
    topic: &str,
    records: usize,
    rows: usize,
    partitions: usize,
) -> (f64, f64) {
    let client = ClientBuilder::new(vec![address.to_owned()]).build().await.expect("a client");
    let controller = client.controller_client().expect("a controller");
    controller.create_topic(topic, partitions as i32, 1, 5_000).await.expect("the topic is created");
    let first = now();
    for partition in 0..partitions {
        let writer = client
            .partition_client(topic, partition as i32, UnknownTopicHandling::Retry)
            .await
            .expect("a partition");
        let mine: Vec<usize> = (partition..records).step_by(partitions).collect();
        for chunk in mine.chunks(RECORDS_PER_PRODUCE) {
            let batch = chunk
                .iter()
                .map(|&seed| Record {
                    key: None,
                    value: Some(payload(seed, rows).into_bytes()),
                    headers: BTreeMap::new(),
                    timestamp: Utc::now(),
                })
                .collect();
            writer.produce(batch, Compression::NoCompression).await.expect("produced");
        }
    }
    (first, now())
}

/// Reads every partition, all at once, from its start to the end it had when reading began;
/// timed from the first records fetched.
async fn kafka_consume(address: &str, topic: &str, records: usize, partitions: usize) -> (f64, f64) {
    let client = ClientBuilder::new(vec![address.to_owned()]).build().await.expect("a client");
    let first = std::sync::Mutex::new(f64::INFINITY);
    let reads = (0..partitions).map(|partition| read_partition(&client, topic, partition as i32, &first));
    let read: usize = futures_util::future::join_all(reads).await.into_iter().sum();
    assert!(read >= records, "read {read} of {records} records");
    let first = *first.lock().expect("not poisoned");
    (first, now())
}

/// The records of one partition, counted; `first` becomes the time of the earliest fetch.
async fn read_partition(
    client: &rskafka::client::Client,
    topic: &str,
    partition: i32,
    first: &std::sync::Mutex<f64>,
) -> usize {
    let reader =
        client.partition_client(topic, partition, UnknownTopicHandling::Retry).await.expect("a partition");
    let mut offset = reader.get_offset(OffsetAt::Earliest).await.expect("an offset");
    let end = reader.get_offset(OffsetAt::Latest).await.expect("an offset");
    let mut read = 0;
    while offset < end {
        let (batch, _) = reader.fetch_records(offset, 1..(8 << 20), 500).await.expect("fetched");
        {
            let mut earliest = first.lock().expect("not poisoned");
            *earliest = earliest.min(now());
        }
        match batch.last() {
            Some(last) => offset = last.offset + 1,
            None => tokio::time::sleep(Duration::from_millis(10)).await,
        }
        read += batch.len();
    }
    read
}
