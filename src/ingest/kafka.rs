//! Kafka source: owns reading every partition of one topic with rskafka, without consumer
//! groups. Each fetch becomes one batch of its good records' rows, handed to the intake with the
//! fetch's position (partition, next offset), which the store keeps in the same atomic write as
//! the rows; a partition resumes from the stored offset, and its next fetch starts only once the
//! last one is durable. Bad records are counted and skipped.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rskafka::BackoffConfig;
use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::RecordAndOffset;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::decode::{self, Rows};
use super::pace::{Backoff, RateLimitedLog, Retry};
use super::settings::KafkaSettings;
use crate::datasets::{AppendError, Batch, Datasets, KafkaPosition, Source};

/// Upper bound of one fetch; the broker still returns a first batch that is larger.
const FETCH_MAX_BYTES: i32 = 1024 * 1024;
/// How long the broker may hold a fetch open waiting for new records.
const FETCH_MAX_WAIT_MS: i32 = 500;

/// Checks that brokers and a topic are named.
pub fn check(settings: &KafkaSettings) -> Result<(), String> {
    match (settings.brokers.is_empty(), settings.topic.is_empty()) {
        (true, _) => Err("the Kafka settings name no broker".into()),
        (_, true) => Err("--kafka-brokers needs a --kafka-topic to read".into()),
        _ => Ok(()),
    }
}

/// Reads every partition of the topic into `datasets` until `stop` is cancelled.
pub async fn run(settings: KafkaSettings, datasets: Arc<Datasets>, stop: CancellationToken) {
    let common = Arc::new(Common { topic: settings.topic, datasets, stop, log: RateLimitedLog::default() });
    let Some(client) = common.retry("connect", || connect(&settings.brokers)).await else { return };
    let Some(partitions) = common.retry("list partitions", || partitions(&client, &common.topic)).await
    else {
        return;
    };
    let stored = common.datasets.kafka_offsets(&common.topic).await;
    let client = Arc::new(client);
    let mut readers = JoinSet::new();
    for partition in partitions {
        let start = stored.get(&partition).copied();
        readers.spawn(read_partition(Arc::clone(&client), Arc::clone(&common), partition, start));
    }
    while readers.join_next().await.is_some() {}
}

/// rskafka retries broken connections forever by default; a deadline lets errors surface
/// here, where they are logged and retried with our own backoff.
async fn connect(brokers: &[String]) -> Result<Client, KafkaError> {
    let backoff = BackoffConfig {
        init_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        base: 2.0,
        deadline: Some(Duration::from_secs(3)),
    };
    ClientBuilder::new(brokers.to_vec()).backoff_config(backoff).build().await
}

/// The partitions of `topic`; an error while the topic does not exist (yet).
async fn partitions(client: &Client, topic: &str) -> Result<Vec<i32>, KafkaError> {
    let topics = client.list_topics().await?;
    match topics.into_iter().find(|t| t.name == topic) {
        Some(found) if !found.partitions.is_empty() => Ok(found.partitions.into_iter().collect()),
        _ => Err(KafkaError::InvalidResponse(format!("topic {topic:?} not found"))),
    }
}

async fn read_partition(client: Arc<Client>, common: Arc<Common>, partition: i32, start: Option<i64>) {
    let open = || client.partition_client(common.topic.clone(), partition, UnknownTopicHandling::Retry);
    let Some(client) = common.retry("open partition", open).await else { return };
    Reader { client, common }.read_from(start).await;
}

/// What all partition readers share.
struct Common {
    topic: String,
    datasets: Arc<Datasets>,
    stop: CancellationToken,
    log: RateLimitedLog,
}

impl Common {
    /// Runs `attempt` until it succeeds, backing off after each broker error. None once stopped.
    async fn retry<T, F: Future<Output = Result<T, KafkaError>>>(
        &self,
        what: &str,
        attempt: impl Fn() -> F,
    ) -> Option<T> {
        let mut backoff = Backoff::new();
        loop {
            let result = tokio::select! {
                () = self.stop.cancelled() => return None,
                result = attempt() => result,
            };
            match result {
                Ok(value) => return Some(value),
                Err(error) => {
                    self.log.warn("kafka", || format!("{what} on {} failed, retrying: {error}", self.topic));
                }
            }
            if !backoff.wait(&self.stop).await {
                return None;
            }
        }
    }
}

/// Reads one partition.
struct Reader {
    client: PartitionClient,
    common: Arc<Common>,
}

impl Reader {
    /// Fetches from `start` (the earliest offset when None), appending each fetch before the next.
    async fn read_from(&self, start: Option<i64>) {
        let mut next = start;
        loop {
            let offset = match next {
                Some(offset) => offset,
                None => {
                    let earliest = || self.client.get_offset(OffsetAt::Earliest);
                    let Some(offset) = self.common.retry("find earliest offset", earliest).await else {
                        return;
                    };
                    offset
                }
            };
            let Some(fetched) = self.common.retry("fetch", || self.fetch(offset)).await else { return };
            next = match fetched {
                Some(records) if records.is_empty() => Some(offset),
                Some(records) => match self.hand_over(records).await {
                    Some(after) => Some(after),
                    None => return,
                },
                None => None,
            };
        }
    }

    /// The records from `offset` on; None when `offset` is outside what the broker holds
    /// (pruned, or the broker lost its log), so reading restarts at the earliest offset.
    async fn fetch(&self, offset: i64) -> Result<Option<Vec<RecordAndOffset>>, KafkaError> {
        match self.client.fetch_records(offset, 1..FETCH_MAX_BYTES, FETCH_MAX_WAIT_MS).await {
            Ok((records, high_watermark)) => {
                if records.is_empty() && offset > high_watermark {
                    self.beyond_the_log(offset, high_watermark);
                }
                Ok(Some(records))
            }
            Err(KafkaError::ServerError { protocol_error: ProtocolError::OffsetOutOfRange, .. }) => {
                tracing::warn!(source = "kafka", topic = %self.common.topic, partition = self.client.partition(), offset, "offset out of range, restarting at the earliest");
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Kafka answers OffsetOutOfRange past the log end, Tansu an empty fetch: keep waiting
    /// (a new leader may briefly report a lower high watermark), but say so.
    fn beyond_the_log(&self, offset: i64, high_watermark: i64) {
        let (topic, partition) = (&self.common.topic, self.client.partition());
        self.common.log.warn("kafka", || {
            format!("{topic}/{partition}: stored offset {offset} is past the high watermark {high_watermark}; did the broker lose records?")
        });
    }

    /// Appends one fetch's good records with its position; if the intake refuses them (a record
    /// that does not fit the dataset), the records go one at a time, so that only those that do
    /// not fit are skipped. The offset after the last record once durable, None once stopped.
    async fn hand_over(&self, records: Vec<RecordAndOffset>) -> Option<i64> {
        let next_offset = records.last()?.offset + 1;
        let (rows, rejects) = merge(&records);
        let batch = super::batch(rows, Source::Kafka, None, Some(self.position(next_offset)));
        match self.append(batch).await? {
            Ok(()) => self.reject(rejects),
            Err(_) => self.one_by_one(&records).await?,
        }
        Some(next_offset)
    }

    /// Appends each decodable record with the position after it; a refused one is counted and
    /// skipped. Then the position after the fetch is stored (alone, if its last record was
    /// skipped).
    async fn one_by_one(&self, records: &[RecordAndOffset]) -> Option<()> {
        for record in records {
            let value = record.record.value.as_deref().unwrap_or_default();
            let envelope = match decode::payload(value) {
                Ok(envelope) => envelope,
                Err(why) => {
                    self.reject(vec![(record.offset, why)]);
                    continue;
                }
            };
            let batch =
                super::batch(envelope.rows, Source::Kafka, None, Some(self.position(record.offset + 1)));
            if let Err(why) = self.append(batch).await? {
                self.reject(vec![(record.offset, why.to_string())]);
            }
        }
        let after = records.last().map_or(0, |record| record.offset + 1);
        let position = super::batch(Rows::default(), Source::Kafka, None, Some(self.position(after)));
        if let Err(why) = self.append(position).await? {
            tracing::error!(source = "kafka", topic = %self.common.topic, next_offset = after, %why, "the offset alone was refused");
        }
        Some(())
    }

    /// The position of this partition before `next_offset`.
    fn position(&self, next_offset: i64) -> KafkaPosition {
        KafkaPosition { topic: self.common.topic.clone(), partition: self.client.partition(), next_offset }
    }

    /// Retries while the intake cannot take the batch now; `Some(Err)` when it refuses it.
    async fn append(&self, batch: Batch) -> Option<Result<(), AppendError>> {
        let retry = Retry { source: "kafka", stop: &self.common.stop, log: &self.common.log };
        let what = || format!("a fetch of {}", self.common.topic);
        retry.append(self.common.datasets.intake(), batch, what, || false).await
    }

    /// Counts skipped records (offset, why) and logs the first.
    fn reject(&self, rejects: Vec<(i64, String)>) {
        let Some((offset, why)) = rejects.first() else { return };
        self.common.datasets.activity().rejected(Source::Kafka, rejects.len());
        let (topic, partition, more) = (&self.common.topic, self.client.partition(), rejects.len() - 1);
        self.common.log.warn("kafka", || {
            format!("skipped record {topic}/{partition}@{offset} (and {more} more of this fetch): {why}")
        });
    }
}

/// The rows of every good record of a fetch in one set of columns, the first good record's
/// order, and the records skipped (offset, why).
fn merge(records: &[RecordAndOffset]) -> (Rows, Vec<(i64, String)>) {
    let mut merged: Option<Rows> = None;
    let mut rejects = Vec::new();
    for record in records {
        let value = record.record.value.as_deref().unwrap_or_default();
        let added = decode::payload(value).and_then(|envelope| match &mut merged {
            _ if envelope.rows.count() == 0 => Ok(()),
            Some(merged) => extend(merged, envelope.rows),
            None => {
                merged = Some(envelope.rows);
                Ok(())
            }
        });
        if let Err(why) = added {
            rejects.push((record.offset, why));
        }
    }
    (merged.unwrap_or_default(), rejects)
}

/// Appends `rows` to `merged`, reordered to its columns; refused when the column sets differ.
fn extend(merged: &mut Rows, mut rows: Rows) -> Result<(), String> {
    let order: Option<Vec<usize>> =
        merged.columns.iter().map(|name| rows.columns.iter().position(|column| column == name)).collect();
    match order {
        Some(order) if rows.columns.len() == merged.columns.len() => {
            for (target, source) in merged.values.iter_mut().zip(order) {
                target.append(&mut rows.values[source]);
            }
            Ok(())
        }
        _ => Err(format!(
            "its columns ({}) are not those of the fetch's first good record ({})",
            rows.columns.join(", "),
            merged.columns.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rskafka::chrono::Utc;
    use rskafka::record::Record;

    use super::*;

    fn records(values: &[&str]) -> Vec<RecordAndOffset> {
        let record = |value: &str| Record {
            key: None,
            value: Some(value.as_bytes().to_vec()),
            headers: BTreeMap::new(),
            timestamp: Utc::now(),
        };
        values
            .iter()
            .zip(10..)
            .map(|(value, offset)| RecordAndOffset { record: record(value), offset })
            .collect()
    }

    #[test]
    fn merges_good_records_in_the_first_ones_column_order() {
        let fetch = records(&[r#"{"x":1,"y":2}"#, r#"{"x":"#, "y,x\n4,3\n6,5", r#"{"x":7,"z":8}"#]);
        let (rows, rejects) = merge(&fetch);
        assert_eq!(rows.columns, ["x", "y"]);
        assert_eq!(rows.values, [vec![1.0, 3.0, 5.0], vec![2.0, 4.0, 6.0]]);
        let offsets: Vec<i64> = rejects.iter().map(|(offset, _)| *offset).collect();
        assert_eq!(offsets, [11, 13]);
        assert!(rejects[1].1.contains("not those of the fetch's first good record"), "{rejects:?}");
    }

    #[test]
    fn a_fetch_of_bad_records_merges_to_no_rows() {
        let (rows, rejects) = merge(&records(&["", "{"]));
        assert_eq!((rows, rejects.len()), (Rows::default(), 2));
    }

    #[test]
    fn needs_brokers_and_a_topic() {
        let settings = KafkaSettings { brokers: vec!["h:9092".into()], topic: "t".into() };
        assert_eq!(check(&settings), Ok(()));
        assert!(check(&KafkaSettings { topic: String::new(), ..settings.clone() }).is_err());
        assert!(check(&KafkaSettings { brokers: Vec::new(), ..settings }).is_err());
    }
}
