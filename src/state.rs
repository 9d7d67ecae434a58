//! The state every request works on, behind a cheap `Clone` handle.
//!
//! Locks here guard only pointer swaps and small bookkeeping: readers clone an `Arc` and let
//! go, so no lock is ever held across parsing, training, disk I/O or an `.await`.

use std::sync::{Arc, PoisonError, RwLock};

use tempfile::NamedTempFile;

use crate::data::{DataDir, DataError, Dataset};
use crate::metrics::{Metrics, Snapshot};
use crate::model::Model;
use crate::settings::Limits;
use crate::training::{Job, JobError, TrainRequest, Trainer};
use crate::versions::ModelStore;

/// Shared handle on the service's state; clones share everything.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    limits: Limits,
    store: DataDir,
    dataset: RwLock<Arc<Dataset>>,
    models: Arc<ModelStore>,
    trainer: Trainer,
    metrics: Arc<Metrics>,
    /// One upload is parsed at a time.
    parsing: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    pub fn new(limits: Limits, store: DataDir, dataset: Dataset, models: ModelStore) -> Self {
        let (models, metrics) = (Arc::new(models), Arc::new(Metrics::new()));
        let trainer = Trainer::new(models.clone(), metrics.clone(), limits.training_priority);
        Self {
            inner: Arc::new(Inner {
                limits,
                store,
                dataset: RwLock::new(Arc::new(dataset)),
                models,
                trainer,
                metrics,
                parsing: Arc::new(tokio::sync::Semaphore::new(1)),
            }),
        }
    }

    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    pub fn store(&self) -> &DataDir {
        &self.inner.store
    }

    /// The active dataset.
    pub fn dataset(&self) -> Arc<Dataset> {
        self.inner.dataset.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Makes a validated upload the active dataset: on disk first, then in memory, under one
    /// lock so concurrent uploads end with the same dataset in both places. Blocks on disk I/O.
    pub fn install_dataset(&self, file: NamedTempFile, dataset: Dataset) -> Result<(), DataError> {
        let mut active = self.inner.dataset.write().unwrap_or_else(PoisonError::into_inner);
        self.inner.store.install_dataset(file)?;
        *active = Arc::new(dataset);
        Ok(())
    }

    /// Waits for the turn to parse an upload: one is parsed at a time, so that concurrent
    /// uploads never hold more than one file's numbers in memory besides the active dataset.
    pub async fn parse_turn(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.inner.parsing.clone().acquire_owned().await.expect("the parsing semaphore is never closed")
    }

    /// The stored model versions, the active one among them.
    pub fn models(&self) -> &ModelStore {
        &self.inner.models
    }

    /// The model currently served, if any.
    pub fn model(&self) -> Option<Arc<Model>> {
        self.inner.models.active()
    }

    /// The original's flag: 1 once a model exists and no training is running, else 0.
    pub fn training_flag(&self) -> u8 {
        u8::from(self.model().is_some() && !self.inner.trainer.is_running())
    }

    /// Starts training `request` on the active dataset, from the served model for a warm start.
    pub fn start_training(&self, request: TrainRequest) -> Result<Arc<Job>, JobError> {
        self.inner.trainer.start(self.dataset(), request, self.model())
    }

    /// The training jobs.
    pub fn trainer(&self) -> &Trainer {
        &self.inner.trainer
    }

    /// The Prometheus metrics of this server.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The metrics in the Prometheus text format, with the served model and the dataset as
    /// they are now.
    pub fn render_metrics(&self) -> String {
        let model = self.model();
        self.inner.metrics.render(Snapshot {
            model_version: model.as_ref().map(|model| model.version()),
            model_age: model.as_ref().and_then(|model| model.age()),
            dataset_rows: self.dataset().rows(),
        })
    }
}
