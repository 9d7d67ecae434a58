//! The active dataset: kept on the store as the object `dataset.csv`, held in memory parsed, and
//! replaced only by an upload that was received and validated whole.
//!
//! An upload is written to a staging file of the store (on the local store, in its own
//! directory, so that storing it is a rename), parsed and checked there, and only then stored
//! and swapped in: a bad or interrupted upload never touches the dataset in service, and the
//! store and memory always end with the same one.

use std::sync::{Arc, PoisonError, RwLock};

use tempfile::NamedTempFile;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::data::{DataError, Dataset, default_dataset, parse_csv};
use crate::storage::{Key, Storage, StoreError};

/// The key of the stored dataset.
const DATASET: &str = "dataset.csv";

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored dataset {key} in {store} cannot be loaded: {source}")]
    Unloadable { store: String, key: &'static str, source: DataError },
}

/// The dataset in service and the way to replace it.
pub struct Datasets {
    store: Arc<dyn Storage>,
    current: RwLock<Arc<Dataset>>,
    /// One upload is parsed at a time.
    parsing: Arc<Semaphore>,
    /// Serialises replacements, so that the store and memory end with the same dataset.
    installing: tokio::sync::Mutex<()>,
}

impl Datasets {
    /// Loads the stored dataset, or the built-in one when none was ever uploaded.
    pub async fn open(store: Arc<dyn Storage>) -> Result<Self, DatasetError> {
        let dataset = match store.get_file(&Key::fixed(DATASET)).await? {
            None => default_dataset(),
            Some(file) => tokio::task::spawn_blocking(move || parse_csv(file))
                .await
                .expect("parsing the stored dataset does not panic")
                .map_err(|source| DatasetError::Unloadable {
                    store: store.name().to_owned(),
                    key: DATASET,
                    source,
                })?,
        };
        Ok(Self::serving(store, dataset))
    }

    /// For a node that does not train: the built-in dataset, without reading the store.
    pub fn builtin(store: Arc<dyn Storage>) -> Self {
        Self::serving(store, default_dataset())
    }

    fn serving(store: Arc<dyn Storage>, dataset: Dataset) -> Self {
        Self {
            store,
            current: RwLock::new(Arc::new(dataset)),
            parsing: Arc::new(Semaphore::new(1)),
            installing: tokio::sync::Mutex::new(()),
        }
    }

    /// The dataset in service.
    pub fn current(&self) -> Arc<Dataset> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
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

    /// Makes a validated upload the active dataset: stored first, then in service.
    pub async fn install(&self, file: NamedTempFile, dataset: Dataset) -> Result<(), StoreError> {
        let _installing = self.installing.lock().await;
        self.store.put_file(&Key::fixed(DATASET), file).await?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(dataset);
        Ok(())
    }

    /// The uploaded file as stored, or `None` while the built-in dataset is in service.
    pub async fn stored_file(&self) -> Result<Option<std::fs::File>, StoreError> {
        self.store.get_file(&Key::fixed(DATASET)).await
    }
}
