//! The state every request works on, behind a cheap `Clone` handle.
//!
//! Locks here guard only pointer swaps and small bookkeeping: readers clone an `Arc` and let
//! go, so no lock is ever held across parsing, training, disk I/O or an `.await`.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use tempfile::NamedTempFile;

use crate::config::Limits;
use crate::data::{DataDir, DataError, Dataset};
use crate::jobs::{Job, JobRegistry};
use crate::metrics::{Metrics, Snapshot};
use crate::model::Model;
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
    models: ModelStore,
    jobs: Mutex<JobRegistry>,
    metrics: Metrics,
}

impl AppState {
    pub fn new(limits: Limits, store: DataDir, dataset: Dataset, models: ModelStore) -> Self {
        Self {
            inner: Arc::new(Inner {
                limits,
                store,
                dataset: RwLock::new(Arc::new(dataset)),
                jobs: Mutex::new(JobRegistry::continuing_after(models.last_job())),
                models,
                metrics: Metrics::new(),
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
        u8::from(self.model().is_some() && self.jobs().running().is_none())
    }

    /// A job, running or recent.
    pub fn job(&self, id: u64) -> Option<Arc<Job>> {
        self.jobs().get(id)
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

    pub(crate) fn jobs(&self) -> MutexGuard<'_, JobRegistry> {
        self.inner.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
