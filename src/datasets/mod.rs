//! The dataset: a base (an uploaded file, the built-in sample, or nothing) and the rows
//! appended since, kept on the store as immutable segments and held in memory as one
//! [`History`] snapshot that every reader shares.
//!
//! Appends from every source go through one queue to one committer ([`commit`]), which writes
//! the batches that arrived within `--commit-interval` as one segment (group commit) and answers
//! each batch only once its segment is stored. An upload replaces everything: it is written to
//! a staging file of the store, parsed and checked there, and only then stored and swapped in
//! as a new generation ([`head`]); a bad or interrupted upload never touches the dataset in
//! service. One writer lock orders commits, uploads and resets; readers never take it.

mod activity;
mod batch;
mod commit;
mod head;
mod history;
mod open;
mod retention;
mod segment;
mod training;
mod view;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tempfile::NamedTempFile;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

pub use activity::{Activity, SourceView};
pub use batch::{AppendError, Appended, Batch, KafkaPosition, Source};
pub use commit::{Committer, Intake};
pub use history::{Chunk, History, RowChoice, Rows};
pub use segment::KafkaOffsets;
pub use training::TrainingData;
pub use view::Summary;

use crate::data::{DataError, Dataset};
use crate::settings::IntakeSettings;
use crate::storage::{Key, Storage, StoreError};

use self::head::BaseKind;

/// The key of the uploaded file.
const DATASET: &str = "dataset.csv";

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored dataset {key} in {store} cannot be loaded: {source}")]
    Unloadable { store: String, key: String, source: DataError },
}

/// The dataset in service, and the ways to change it.
pub struct Datasets {
    store: Arc<dyn Storage>,
    settings: IntakeSettings,
    current: RwLock<Arc<History>>,
    /// Orders the writers (commits, uploads, resets), and holds what only they use.
    writer: tokio::sync::Mutex<commit::Writer>,
    /// One upload is parsed at a time.
    parsing: Arc<Semaphore>,
    intake: Intake,
    activity: Arc<Activity>,
    /// The queue's other end, until the committer takes it.
    queue: Mutex<Option<mpsc::Receiver<commit::Pending>>>,
    /// Bumped whenever the rows change, for those who wait for rows to arrive.
    changes: watch::Sender<u64>,
}

impl Datasets {
    /// Loads the stored dataset: its head, base and segments (or the built-in sample on a store
    /// that has none).
    pub async fn open(store: Arc<dyn Storage>, settings: IntakeSettings) -> Result<Self, DatasetError> {
        let (history, writer) = open::load(store.as_ref(), &settings).await?;
        Ok(Self::serving(store, settings, history, writer))
    }

    /// For a node that does not keep the dataset: the built-in sample, without reading the store.
    pub fn builtin(store: Arc<dyn Storage>) -> Self {
        let (history, writer) = open::builtin();
        Self::serving(store, IntakeSettings::default(), history, writer)
    }

    fn serving(
        store: Arc<dyn Storage>,
        settings: IntakeSettings,
        history: History,
        writer: commit::Writer,
    ) -> Self {
        let (intake, queue) = Intake::new(settings.max_batch_rows);
        Self {
            store,
            settings,
            current: RwLock::new(Arc::new(history)),
            writer: tokio::sync::Mutex::new(writer),
            parsing: Arc::new(Semaphore::new(1)),
            intake,
            activity: Arc::new(Activity::default()),
            queue: Mutex::new(Some(queue)),
            changes: watch::Sender::new(0),
        }
    }

    /// The rows `choice` names to train on (see [`History::training`]), by the time column when
    /// `--time-column` names one.
    pub fn training(
        &self,
        choice: RowChoice,
        served: Option<&crate::model::TrainedRows>,
    ) -> Result<TrainingData, DataError> {
        self.history().training_timed(choice, served, self.settings.time_column.as_deref())
    }

    /// The dataset's rows as they stand.
    pub fn history(&self) -> Arc<History> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn replace(&self, history: History) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(history);
        self.changes.send_modify(|changes| *changes += 1);
    }

    /// Changes whenever the rows change (an append, an upload, a reset).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Where batches are handed in; clones share the queue.
    pub fn intake(&self) -> &Intake {
        &self.intake
    }

    /// What the intake has done, by source.
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    /// The committer, to run as a background task; `None` once taken.
    pub fn committer(self: &Arc<Self>) -> Option<Committer> {
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner).take()?;
        Some(Committer::new(self.clone(), queue))
    }

    /// The next offset to read per partition of `topic`, as stored with the last durable rows
    /// (what a Kafka reader resumes from).
    pub async fn kafka_offsets(&self, topic: &str) -> BTreeMap<i32, i64> {
        self.writer.lock().await.kafka.get(topic).cloned().unwrap_or_default()
    }

    /// A file to receive an upload in, removed on drop unless installed.
    pub fn staging_file(&self) -> Result<NamedTempFile, StoreError> {
        self.store.staging_file()
    }

    /// Waits for the turn to parse an upload: one is parsed at a time, so that concurrent
    /// uploads never hold more than one file's numbers in memory besides the active dataset.
    pub async fn parse_turn(&self) -> OwnedSemaphorePermit {
        self.parsing.clone().acquire_owned().await.expect("the parsing semaphore is never closed")
    }

    /// Makes a validated upload the whole dataset, as a new generation: the file is stored
    /// first, then the head that names it, then it is in service.
    pub async fn install(&self, file: NamedTempFile, dataset: Dataset) -> Result<(), StoreError> {
        let mut writer = self.writer.lock().await;
        self.store.put_file(&Key::fixed(DATASET), file).await?;
        let base = BaseKind::File { sha256: dataset.sha256().to_owned() };
        let history = writer
            .begin_generation(self.store.as_ref(), &self.history(), base, Some(Arc::new(dataset)))
            .await?;
        self.replace(history);
        Ok(())
    }

    /// Empties the dataset, as a new generation: the next appended batch defines its columns.
    pub async fn clear(&self) -> Result<(), StoreError> {
        let mut writer = self.writer.lock().await;
        let history =
            writer.begin_generation(self.store.as_ref(), &self.history(), BaseKind::Empty, None).await?;
        self.replace(history);
        Ok(())
    }

    /// The uploaded file as stored, or `None` while the built-in sample (or no file) is the base.
    pub async fn stored_file(&self) -> Result<Option<std::fs::File>, StoreError> {
        match self.history().uploaded {
            true => self.store.get_file(&Key::fixed(DATASET)).await,
            false => Ok(None),
        }
    }
}
