//! The state every request works on, behind a cheap `Clone` handle.
//!
//! Locks below it guard only pointer swaps and small bookkeeping: readers clone an `Arc` and
//! let go, so no lock is ever held across parsing, training, storage I/O or an `.await`.

use std::sync::Arc;

use crate::datasets::Datasets;
use crate::metrics::{Metrics, Snapshot};
use crate::model::Model;
use crate::registry::Registry;
use crate::retrain::Retrainer;
use crate::serving::Serving;
use crate::settings::{DEFAULT_MODEL_NAME, Limits, Role};
use crate::storage::Storage;
use crate::storage::health::StoreHealth;
use crate::training::{GateSettings, Job, JobError, TrainRequest, Trainer};

/// Shared handle on the service's state; clones share everything.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    limits: Limits,
    datasets: Arc<Datasets>,
    models: Arc<Registry>,
    trainer: Trainer,
    serving: Serving,
    metrics: Arc<Metrics>,
    role: Role,
    store_health: Arc<StoreHealth>,
    /// The retraining triggers, on a node that trains.
    retrainer: Option<Retrainer>,
}

impl AppState {
    /// Must be called within the runtime, whose handle the trainer keeps for storing models.
    pub fn new(limits: Limits, datasets: Datasets, models: Registry) -> Self {
        let health = Arc::new(StoreHealth::new());
        Self::for_node(limits, GateSettings::default(), datasets, Arc::new(models), Role::All, health)
    }

    /// The state of a node with `role`, whose background tasks report the store's health to
    /// `store_health`.
    pub fn for_node(
        limits: Limits,
        gate: GateSettings,
        datasets: Datasets,
        models: Arc<Registry>,
        role: Role,
        store_health: Arc<StoreHealth>,
    ) -> Self {
        let metrics = Arc::new(Metrics::new(datasets.activity().metrics(), models.events().metrics()));
        let trainer = Trainer::new(models.clone(), metrics.clone(), limits.training_priority, gate);
        let serving = Serving::new(DEFAULT_MODEL_NAME, models.clone(), metrics.predictions.clone());
        Self {
            inner: Arc::new(Inner {
                limits,
                datasets: Arc::new(datasets),
                models,
                trainer,
                serving,
                metrics,
                role,
                store_health,
                retrainer: None,
            }),
        }
    }

    /// The state with its retraining triggers; before it is shared.
    pub fn with_retrainer(mut self, retrainer: Retrainer) -> Self {
        Arc::get_mut(&mut self.inner).expect("the state is not shared yet").retrainer = Some(retrainer);
        self
    }

    /// The state with its model named `name`; before it is shared.
    pub fn with_model_name(mut self, name: &str) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("the state is not shared yet");
        inner.serving = Serving::new(name, inner.models.clone(), inner.metrics.predictions.clone());
        self
    }

    /// The prediction service.
    pub fn serving(&self) -> &Serving {
        &self.inner.serving
    }

    /// The retraining triggers, on a node that trains.
    pub fn retrainer(&self) -> Option<&Retrainer> {
        self.inner.retrainer.as_ref()
    }

    /// What this node does.
    pub fn role(&self) -> Role {
        self.inner.role
    }

    /// Whether the store answers, as this node last found it.
    pub fn store_health(&self) -> &StoreHealth {
        &self.inner.store_health
    }

    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// The store the dataset and the models are kept in.
    pub fn store(&self) -> &Arc<dyn Storage> {
        self.inner.models.store()
    }

    /// The dataset and the ways to change it.
    pub fn datasets(&self) -> &Arc<Datasets> {
        &self.inner.datasets
    }

    /// The stored model versions, the active one among them.
    pub fn models(&self) -> &Registry {
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

    /// Starts training `request` on the rows it names, from the served model for a warm start.
    pub fn start_training(&self, request: TrainRequest) -> Result<Arc<Job>, JobError> {
        self.inner.trainer.train(self.datasets(), request)
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
            dataset_rows: self.datasets().history().rows,
            store_up: self.inner.store_health.unreachable().is_none(),
            // A predictor activates nothing: the trainer's event log is the one to ask.
            since_activation: self.role().trains().then(|| self.models().events().since_latest()).flatten(),
        })
    }
}
