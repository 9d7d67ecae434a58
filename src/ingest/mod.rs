//! The sources of appended rows, each a thin adapter over [`crate::datasets::Intake`]: it
//! decodes what arrives ([`decode`], shared by every source), hands the batch to the intake,
//! and acknowledges in its own protocol only once the intake answers that the rows are
//! durable. The HTTP and WebSocket doors are in [`crate::api`]; the broker subscribers are
//! here, each behind a cargo feature.

pub mod decode;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "mqtt")]
pub mod mqtt;
#[cfg(any(feature = "mqtt", feature = "kafka"))]
mod pace;
pub mod settings;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use self::settings::{KafkaSettings, MqttSettings, SourceSettings};
use crate::datasets::{Batch, Datasets, KafkaPosition, Source};

/// A subscriber to run as a background task, and its name.
pub type Subscriber = (&'static str, Pin<Box<dyn Future<Output = ()> + Send>>);

/// Checks the configured subscribers' settings, refusing a source this build does not have.
pub fn check(sources: &SourceSettings) -> Result<(), String> {
    sources.mqtt.as_ref().map_or(Ok(()), check_mqtt)?;
    sources.kafka.as_ref().map_or(Ok(()), check_kafka)
}

/// The configured subscribers, appending into `datasets` until `stop` is cancelled.
pub fn subscribers(
    sources: &SourceSettings,
    datasets: &Arc<Datasets>,
    stop: &CancellationToken,
) -> Vec<Subscriber> {
    let mqtt = sources.mqtt.clone().and_then(|mqtt| mqtt_subscriber(mqtt, datasets, stop));
    let kafka = sources.kafka.clone().and_then(|kafka| kafka_subscriber(kafka, datasets, stop));
    mqtt.into_iter().chain(kafka).collect()
}

#[cfg(feature = "mqtt")]
fn check_mqtt(settings: &MqttSettings) -> Result<(), String> {
    mqtt::check(settings)
}

#[cfg(not(feature = "mqtt"))]
fn check_mqtt(_: &MqttSettings) -> Result<(), String> {
    Err("this build has no MQTT support (it was built without the `mqtt` feature)".into())
}

#[cfg(feature = "mqtt")]
fn mqtt_subscriber(
    settings: MqttSettings,
    datasets: &Arc<Datasets>,
    stop: &CancellationToken,
) -> Option<Subscriber> {
    Some(("mqtt subscriber", Box::pin(mqtt::run(settings, datasets.clone(), stop.clone()))))
}

#[cfg(not(feature = "mqtt"))]
fn mqtt_subscriber(_: MqttSettings, _: &Arc<Datasets>, _: &CancellationToken) -> Option<Subscriber> {
    None
}

#[cfg(feature = "kafka")]
fn check_kafka(settings: &KafkaSettings) -> Result<(), String> {
    kafka::check(settings)
}

#[cfg(not(feature = "kafka"))]
fn check_kafka(_: &KafkaSettings) -> Result<(), String> {
    Err("this build has no Kafka support (it was built without the `kafka` feature)".into())
}

#[cfg(feature = "kafka")]
fn kafka_subscriber(
    settings: KafkaSettings,
    datasets: &Arc<Datasets>,
    stop: &CancellationToken,
) -> Option<Subscriber> {
    Some(("kafka subscriber", Box::pin(kafka::run(settings, datasets.clone(), stop.clone()))))
}

#[cfg(not(feature = "kafka"))]
fn kafka_subscriber(_: KafkaSettings, _: &Arc<Datasets>, _: &CancellationToken) -> Option<Subscriber> {
    None
}

/// The batch of `rows` from `source`, under an idempotency key if it has one.
pub fn batch(
    rows: decode::Rows,
    source: Source,
    key: Option<String>,
    position: Option<KafkaPosition>,
) -> Batch {
    Batch { columns: rows.columns, values: rows.values, source, key, position }
}
