//! Group commit: every source hands its batches to one bounded queue ([`Intake`]); one task
//! ([`Committer`]) takes the batches that arrive within `--commit-interval` (and up to
//! `--commit-rows`), checks each against the dataset's columns, writes the good ones as one
//! segment with one create-only put, and only then answers each. A full queue makes the
//! sources wait: back-pressure, not an unbounded buffer. On shutdown the committer writes what
//! was queued before it stops.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::batch::{AppendError, Appended, Batch, check_new_columns, conform};
use super::head::{BaseKind, Head, now_ms};
use super::history::{Base, Chunk, History, schema_of};
use super::segment::{KafkaOffsets, KeyedBatch, Segment, SegmentHeader, moments_of, stats_of};
use super::{Datasets, retention};
use crate::data::Dataset;
use crate::storage::{Key, PutMode, Storage, StoreError};

/// Batches the queue holds before sources wait.
const QUEUE_BATCHES: usize = 256;
/// Idempotency keys remembered (the oldest are forgotten first).
const REMEMBERED_KEYS: usize = 100_000;

/// A batch waiting to be committed, and where its answer goes.
pub(super) struct Pending {
    batch: Arc<Batch>,
    reply: oneshot::Sender<Result<Appended, AppendError>>,
    queued: Instant,
}

/// Where every source hands in its batches; clones share the queue.
#[derive(Clone)]
pub struct Intake {
    queue: mpsc::Sender<Pending>,
    max_batch_rows: usize,
}

impl Intake {
    pub(super) fn new(max_batch_rows: usize) -> (Self, mpsc::Receiver<Pending>) {
        let (queue, receiver) = mpsc::channel(QUEUE_BATCHES);
        (Self { queue, max_batch_rows }, receiver)
    }

    /// Appends `batch`, answering once it is durable (or why it was not appended). A source
    /// that retries hands in an `Arc` it keeps, so that a retry copies no rows.
    pub async fn append(&self, batch: impl Into<Arc<Batch>>) -> Result<Appended, AppendError> {
        let batch = batch.into();
        if batch.rows() > self.max_batch_rows {
            return Err(AppendError::TooLarge { rows: batch.rows(), limit: self.max_batch_rows });
        }
        let (reply, answer) = oneshot::channel();
        let pending = Pending { batch, reply, queued: Instant::now() };
        self.queue.send(pending).await.map_err(|_| AppendError::ShuttingDown)?;
        answer.await.unwrap_or(Err(AppendError::ShuttingDown))
    }

    /// The most rows one batch may hold.
    pub fn max_batch_rows(&self) -> usize {
        self.max_batch_rows
    }
}

/// The task that writes the queued batches.
pub struct Committer {
    datasets: Arc<Datasets>,
    queue: mpsc::Receiver<Pending>,
}

impl Committer {
    pub(super) fn new(datasets: Arc<Datasets>, queue: mpsc::Receiver<Pending>) -> Self {
        Self { datasets, queue }
    }

    /// Commits until `stop`, then commits what is still queued.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            let first = tokio::select! {
                first = self.queue.recv() => first,
                () = stop.cancelled() => None,
            };
            let Some(first) = first else { break };
            let group = self.gather(first).await;
            self.datasets.commit(group).await;
        }
        self.queue.close();
        while let Some(first) = self.queue.recv().await {
            let group = self.gather(first).await;
            self.datasets.commit(group).await;
        }
    }

    /// `first` and what else arrives within the commit interval, up to the commit's row bound.
    async fn gather(&mut self, first: Pending) -> Vec<Pending> {
        let settings = &self.datasets.settings;
        let deadline = tokio::time::Instant::now() + settings.commit_interval;
        let mut rows = first.batch.rows();
        let mut group = vec![first];
        while rows < settings.commit_rows {
            match tokio::time::timeout_at(deadline, self.queue.recv()).await {
                Ok(Some(pending)) => {
                    rows += pending.batch.rows();
                    group.push(pending);
                }
                Ok(None) | Err(_) => break,
            }
        }
        group
    }
}

/// What only the writers use: the head, the remembered idempotency keys, the Kafka positions.
pub(super) struct Writer {
    pub head: Head,
    pub keys: Keys,
    pub kafka: KafkaOffsets,
}

/// Idempotency keys of appended batches: the sequence number of each one's last row and its rows.
#[derive(Default)]
pub(super) struct Keys {
    appended: HashMap<String, (u64, usize)>,
    order: VecDeque<String>,
}

impl Keys {
    pub fn remember(&mut self, key: String, last_seq: u64, rows: usize) {
        if self.appended.insert(key.clone(), (last_seq, rows)).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > REMEMBERED_KEYS {
            let oldest = self.order.pop_front().expect("more keys than the bound");
            self.appended.remove(&oldest);
        }
    }

    fn get(&self, key: &str) -> Option<(u64, usize)> {
        self.appended.get(key).copied()
    }
}

/// The key a segment is stored under.
pub(super) fn segment_key(generation: u64, first_seq: u64) -> Key {
    Key::new(format!("segments/{generation:08}/{first_seq:020}.seg")).expect("a segment key is valid")
}

/// The batches of one commit that were accepted, laid out as the segment to write.
struct Plan {
    schema: Option<Arc<Dataset>>,
    columns: Vec<Vec<f64>>,
    accepted: Vec<(Pending, usize)>,
    keyed: Vec<KeyedBatch>,
    kafka: KafkaOffsets,
    /// Rows of the whole group, to size the columns once.
    capacity: usize,
}

impl Plan {
    fn rows(&self) -> usize {
        self.columns.first().map_or(0, Vec::len)
    }

    /// Takes `batch` into the segment, or says why not.
    fn admit(&mut self, batch: &Batch) -> Result<usize, AppendError> {
        let schema = match &self.schema {
            Some(schema) => schema.clone(),
            None => {
                check_new_columns(&batch.columns)?;
                let schema = Arc::new(schema_of(&batch.columns));
                self.columns = vec![Vec::with_capacity(self.capacity); batch.columns.len()];
                self.schema = Some(schema.clone());
                schema
            }
        };
        let values = conform(batch, &schema)?;
        let first = self.rows();
        self.columns.resize(values.len(), Vec::new());
        for (column, values) in self.columns.iter_mut().zip(values) {
            column.extend_from_slice(values);
        }
        if let Some(key) = &batch.key {
            self.keyed.push(KeyedBatch { key: key.clone(), first, rows: batch.rows() });
        }
        if let Some(position) = &batch.position {
            self.kafka
                .entry(position.topic.clone())
                .or_default()
                .insert(position.partition, position.next_offset);
        }
        Ok(first)
    }
}

impl Datasets {
    /// Writes the acceptable batches of `group` as one segment and answers every batch.
    pub(super) async fn commit(&self, group: Vec<Pending>) {
        let mut writer = self.writer.lock().await;
        let history = self.history();
        let capacity = group.iter().map(|pending| pending.batch.rows()).sum();
        let mut plan = Plan {
            schema: history.schema.clone(),
            columns: vec![
                Vec::with_capacity(capacity);
                history.schema.as_ref().map_or(0, |schema| schema.columns().len())
            ],
            accepted: Vec::new(),
            keyed: Vec::new(),
            kafka: writer.kafka.clone(),
            capacity,
        };
        for pending in group {
            let known = pending
                .batch
                .key
                .as_deref()
                .and_then(|key| writer.keys.get(key).or_else(|| plan_key(&plan, key, history.next_seq)));
            if let Some((seq, rows)) = known {
                let appended =
                    Appended { appended: rows, rows: history.rows + plan.rows(), seq, duplicate: true };
                let _ = pending.reply.send(Ok(appended));
                continue;
            }
            match plan.admit(&pending.batch) {
                Ok(first) => plan.accepted.push((pending, first)),
                Err(error) => {
                    let _ = pending.reply.send(Err(error));
                }
            }
        }
        let outcome = self.write(&mut writer, &history, &mut plan).await;
        drop(writer);
        self.answer(plan, &history, outcome);
    }

    /// Stores the plan's segment and puts it in service; the chunks retention dropped are
    /// returned for deletion.
    async fn write(&self, writer: &mut Writer, history: &History, plan: &mut Plan) -> Result<(), StoreError> {
        if plan.rows() == 0 {
            writer.kafka = plan.kafka.clone();
            return Ok(());
        }
        let segment = Segment {
            header: SegmentHeader {
                generation: history.generation,
                first_seq: history.next_seq,
                rows: plan.rows(),
                columns: plan
                    .schema
                    .as_ref()
                    .map(|s| s.column_names().iter().map(|n| n.to_string()).collect())
                    .unwrap_or_default(),
                arrivals: vec![(0, now_ms())],
                sources: sources_of(&plan.accepted),
                keyed: plan.keyed.clone(),
                kafka: plan.kafka.clone(),
                stats: stats_of(&plan.columns),
                moments: moments_of(&plan.columns),
            },
            columns: std::mem::take(&mut plan.columns),
        };
        let key = segment_key(history.generation, history.next_seq);
        self.store.put(&key, segment.encode(), PutMode::Create).await?;
        for keyed in &plan.keyed {
            writer.keys.remember(
                keyed.key.clone(),
                history.next_seq + (keyed.first + keyed.rows) as u64 - 1,
                keyed.rows,
            );
        }
        writer.kafka = plan.kafka.clone();
        let mut next = history.clone();
        next.schema = plan.schema.clone();
        next.rows += segment.header.rows;
        next.next_seq = segment.end_seq();
        next.chunks.push(Chunk::Segment(Arc::new(segment)));
        let dropped = retention::apply(&mut next, &self.settings, now_ms());
        self.replace(next);
        self.delete_dropped(dropped);
        Ok(())
    }

    /// Answers every accepted batch of the plan.
    fn answer(&self, plan: Plan, history: &History, outcome: Result<(), StoreError>) {
        let total = self.history().rows;
        for (pending, first) in plan.accepted {
            let rows = pending.batch.rows();
            let answer = match &outcome {
                Ok(()) => Ok(Appended {
                    appended: rows,
                    rows: total,
                    seq: (history.next_seq + (first + rows) as u64).saturating_sub(1),
                    duplicate: false,
                }),
                Err(error) => Err(AppendError::Store(error.clone())),
            };
            if outcome.is_ok() {
                self.activity.appended(pending.batch.source, rows);
                self.activity.committed(pending.queued.elapsed());
            }
            let _ = pending.reply.send(answer);
        }
    }

    /// Removes dropped segments from the store, in the background; one that stays is dropped
    /// again when the dataset is next opened.
    fn delete_dropped(&self, dropped: Vec<Key>) {
        if dropped.is_empty() {
            return;
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            for key in dropped {
                if let Err(error) = store.delete(&key).await {
                    tracing::warn!(%key, %error, "a segment past retention could not be deleted");
                }
            }
        });
    }
}

/// The answer for `key` if an earlier batch of the same plan carried it.
fn plan_key(plan: &Plan, key: &str, first_seq: u64) -> Option<(u64, usize)> {
    let keyed = plan.keyed.iter().find(|keyed| keyed.key == key)?;
    Some((first_seq + (keyed.first + keyed.rows) as u64 - 1, keyed.rows))
}

fn sources_of(accepted: &[(Pending, usize)]) -> std::collections::BTreeMap<String, usize> {
    let mut sources = std::collections::BTreeMap::new();
    for (pending, _) in accepted {
        *sources.entry(pending.batch.source.as_str().to_owned()).or_default() += pending.batch.rows();
    }
    sources
}

impl Writer {
    /// Starts a new generation with `base`: writes its head, and returns its history.
    pub async fn begin_generation(
        &mut self,
        store: &dyn Storage,
        history: &History,
        base: BaseKind,
        dataset: Option<Arc<Dataset>>,
    ) -> Result<History, StoreError> {
        let head = Head {
            generation: history.generation + 1,
            base,
            first_seq: history.next_seq,
            created_ms: now_ms(),
            kafka: self.kafka.clone(),
        };
        head.write(store).await?;
        let stale: Vec<Key> = history
            .chunks
            .iter()
            .filter_map(|chunk| match chunk {
                Chunk::Segment(segment) => Some(segment_key(history.generation, segment.header.first_seq)),
                Chunk::Base(_) => None,
            })
            .collect();
        for key in stale {
            let _ = store.delete(&key).await;
        }
        self.keys = Keys::default();
        let history = History::starting(&head, dataset);
        self.head = head;
        Ok(history)
    }
}

impl History {
    /// The history of a generation that has only its base (or nothing).
    pub fn starting(head: &Head, dataset: Option<Arc<Dataset>>) -> Self {
        let rows = dataset.as_ref().map_or(0, |dataset| dataset.rows());
        let chunks = match &dataset {
            Some(dataset) => {
                vec![Chunk::Base(Arc::new(Base::new(dataset.clone(), head.first_seq, head.created_ms)))]
            }
            None => Vec::new(),
        };
        Self {
            generation: head.generation,
            uploaded: matches!(head.base, BaseKind::File { .. }),
            schema: dataset,
            chunks,
            next_seq: head.first_seq + rows as u64,
            rows,
        }
    }
}
