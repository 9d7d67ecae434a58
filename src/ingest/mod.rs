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
pub(crate) mod pace;
pub mod settings;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use self::settings::SourceSettings;
use crate::datasets::{Batch, Datasets, KafkaPosition, Source};

/// A subscriber to run as a background task, and its name.
pub type Subscriber = (&'static str, Pin<Box<dyn Future<Output = ()> + Send>>);

/// Checks the configured subscribers' settings. (A source this build has no support for is
/// refused already where its settings are read.)
#[cfg_attr(not(all(feature = "mqtt", feature = "kafka")), allow(unused_variables))]
pub fn check(sources: &SourceSettings) -> Result<(), String> {
    #[cfg(feature = "mqtt")]
    sources.mqtt.as_ref().map_or(Ok(()), mqtt::check)?;
    #[cfg(feature = "kafka")]
    sources.kafka.as_ref().map_or(Ok(()), kafka::check)?;
    Ok(())
}

/// The configured subscribers, appending into `datasets` until `stop` is cancelled.
#[cfg_attr(not(all(feature = "mqtt", feature = "kafka")), allow(unused_variables, unused_mut))]
pub fn subscribers(
    sources: &SourceSettings,
    datasets: &Arc<Datasets>,
    stop: &CancellationToken,
) -> Vec<Subscriber> {
    let mut subscribers: Vec<Subscriber> = Vec::new();
    #[cfg(feature = "mqtt")]
    if let Some(settings) = sources.mqtt.clone() {
        subscribers.push(("mqtt subscriber", Box::pin(mqtt::run(settings, datasets.clone(), stop.clone()))));
    }
    #[cfg(feature = "kafka")]
    if let Some(settings) = sources.kafka.clone() {
        subscribers
            .push(("kafka subscriber", Box::pin(kafka::run(settings, datasets.clone(), stop.clone()))));
    }
    subscribers
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
