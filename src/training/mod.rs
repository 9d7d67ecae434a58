//! Training jobs: the [`Trainer`] runs at most one at a time, on a thread of its own so that the
//! async workers keep answering requests. A job publishes its progress (epoch, loss history,
//! ETA) for its watchers ([`job`]), can be cancelled until its model is being stored, shares the
//! processor as its priority says ([`pace`]), and on success stores its model as the next version,
//! which goes into service in the same step. The trainer owns the job's thread and waits for it
//! when it stops, so no fit outlives the server.

mod gate;
pub mod job;
pub mod pace;
mod request;

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use gate::GateSettings;
pub use job::{CancelOutcome, CancelReason, Job, JobSpec, JobState, JobView, Progress, Verdict};
pub use pace::TrainingPriority;
pub use request::{Origin, TrainRequest};

use self::pace::Pacer;
use crate::data::{DataError, Selection};
use crate::datasets::{Datasets, TrainingData};
use crate::metrics::{Metrics, TrainingOutcome};
use crate::model::{Model, TrainSpec};
use crate::registry::{Activation, Reason, Registry, RegistryError};
use crate::train::{FitParams, Observer, TrainError};
use crate::units::now_rfc3339;

/// Finished jobs kept for `GET /v1/jobs`.
const RECENT_JOBS: usize = 50;
/// How often a running fit publishes its progress at most.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(25);

/// Why a job could not start, or how it ended without a model.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(
        "training job {running} is still running; wait for it to finish or cancel it (DELETE /v1/jobs/{running})"
    )]
    Busy { running: u64 },
    #[error("warm_start: there is no current model to start from")]
    NoModelToWarmStart,
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error("training job {job} was cancelled {by}")]
    Cancelled { job: u64, by: CancelReason },
    #[error("the trained model could not be stored: {0}")]
    Store(#[from] RegistryError),
    #[error("training job {job} failed unexpectedly: {message}")]
    Crashed { job: u64, message: String },
}

/// Runs training jobs, one at a time; clones share everything.
#[derive(Clone)]
pub struct Trainer {
    inner: Arc<Inner>,
}

struct Inner {
    models: Arc<Registry>,
    /// The runtime the store's operations run on, entered by the job's thread to store a model.
    runtime: tokio::runtime::Handle,
    metrics: Arc<Metrics>,
    priority: TrainingPriority,
    gate: GateSettings,
    jobs: Mutex<JobRegistry>,
    /// The thread of the running job (or of the last one), joined when the trainer stops.
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Counts the jobs that have ended, for those who wait for the trainer to be free.
    ended: watch::Sender<u64>,
}

/// The running job and the recent ones.
#[derive(Default)]
struct JobRegistry {
    last_id: u64,
    running: Option<Arc<Job>>,
    recent: VecDeque<Arc<Job>>,
}

/// Everything a job's thread needs.
struct Work {
    trainer: Trainer,
    job: Arc<Job>,
    data: TrainingData,
    /// The rows held back for the quality gate, if any.
    holdout: Option<TrainingData>,
    selection: Selection,
    warm_start: Option<Arc<Model>>,
}

impl Trainer {
    /// A trainer that stores its models in `models`; job ids continue after the highest one a
    /// stored model names. Must be called within the tokio runtime.
    pub fn new(
        models: Arc<Registry>,
        metrics: Arc<Metrics>,
        priority: TrainingPriority,
        gate: GateSettings,
    ) -> Self {
        let jobs = JobRegistry { last_id: models.last_job(), ..JobRegistry::default() };
        Self {
            inner: Arc::new(Inner {
                models,
                runtime: tokio::runtime::Handle::current(),
                metrics,
                priority,
                gate,
                jobs: Mutex::new(jobs),
                thread: Mutex::new(None),
                ended: watch::Sender::new(0),
            }),
        }
    }

    /// Starts training `request` on the rows of `datasets` it names, from the served model for a
    /// warm start.
    pub fn train(&self, datasets: &Datasets, request: TrainRequest) -> Result<Arc<Job>, JobError> {
        let served = self.inner.models.active();
        let data = datasets.training(request.rows, served.as_deref().and_then(Model::trained_rows))?;
        self.start(data, request, served)
    }

    /// Validates `request` against the rows of `data` and the `current` model, and starts
    /// training it.
    pub fn start(
        &self,
        data: TrainingData,
        request: TrainRequest,
        current: Option<Arc<Model>>,
    ) -> Result<Arc<Job>, JobError> {
        let selection = data.schema().select(request.features, request.target)?;
        let params = request.settings.validate(selection.features.len())?;
        let warm_start = match request.warm_start {
            true => Some(current.ok_or(JobError::NoModelToWarmStart)?),
            false => None,
        };
        if let Some(model) = &warm_start {
            // Checked here too, so a mismatch is a 422 now rather than a failed job later.
            model.warm_start_weights(&selection, &params)?;
        }
        let held = self.inner.gate.holdout_rows(data.rows());
        let (data, holdout) = match held {
            0 => (data, None),
            _ => {
                let (fit, holdout) = data.hold_out(held);
                (fit, Some(holdout))
            }
        };
        let spec = JobSpec {
            features: selection.features.clone(),
            target: selection.target.clone(),
            rows: data.rows(),
            params,
            warm_start_from: warm_start.as_ref().map(|model| model.version()),
            origin: request.origin,
            gate: request.gate,
        };
        let job = self.register(spec)?;
        tracing::info!(job = job.id(), features = ?job.spec().features, target = %job.spec().target,
            rows = job.spec().rows, solver = ?job.spec().params.solver(), "training started");
        let work = Work { trainer: self.clone(), job: job.clone(), data, holdout, selection, warm_start };
        let spawned =
            std::thread::Builder::new().name(format!("train-job-{}", job.id())).spawn(move || work.run());
        match spawned {
            Ok(thread) => *self.thread() = Some(thread),
            Err(error) => {
                let message = format!("no thread to train on: {error}");
                self.finish(&job, Err(JobError::Crashed { job: job.id(), message }));
            }
        }
        Ok(job)
    }

    /// A job, running or recent.
    pub fn job(&self, id: u64) -> Option<Arc<Job>> {
        self.jobs().recent.iter().find(|job| job.id() == id).cloned()
    }

    /// Recent jobs, newest first.
    pub fn recent(&self) -> Vec<Arc<Job>> {
        self.jobs().recent.iter().rev().cloned().collect()
    }

    /// Whether a job is running.
    pub fn is_running(&self) -> bool {
        self.jobs().running.is_some()
    }

    /// The model versions it stores into.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.models
    }

    /// The running job.
    pub fn running(&self) -> Option<Arc<Job>> {
        self.jobs().running.clone()
    }

    /// Asks the running job, if any, to stop.
    pub fn cancel_running(&self, reason: CancelReason) {
        if let Some(job) = self.jobs().running.clone() {
            job.cancel(reason);
        }
    }

    /// Cancels the running job and waits for its thread to end. Blocks: the fit notices at its
    /// next checkpoint, but a model already being stored is stored first.
    pub fn stop(&self) {
        self.cancel_running(CancelReason::Shutdown);
        let thread = self.thread().take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// Adds a job to the registry as the running one, unless one runs already.
    fn register(&self, spec: JobSpec) -> Result<Arc<Job>, JobError> {
        let mut jobs = self.jobs();
        if let Some(running) = &jobs.running {
            return Err(JobError::Busy { running: running.id() });
        }
        jobs.last_id += 1;
        let job = Arc::new(Job::new(jobs.last_id, spec, now_rfc3339()));
        jobs.running = Some(job.clone());
        jobs.recent.push_back(job.clone());
        if jobs.recent.len() > RECENT_JOBS {
            jobs.recent.pop_front();
        }
        Ok(job)
    }

    /// Ends `job`: counted in the metrics, then out of the running slot (so a watcher that sees
    /// the end can start the next job), then announced to its watchers and to [`Self::watch_ended`].
    fn finish(&self, job: &Job, outcome: Result<Arc<Model>, JobError>) {
        match &outcome {
            Ok(model) => tracing::info!(
                job = job.id(),
                version = model.version(),
                mse = model.metrics().mse,
                optimum_mse = model.metrics().optimum_mse,
                "training succeeded"
            ),
            Err(error) => tracing::warn!(job = job.id(), %error, "training did not produce a model"),
        }
        let counted = match &outcome {
            Ok(_) => TrainingOutcome::Succeeded,
            Err(JobError::Cancelled { .. }) => TrainingOutcome::Cancelled,
            Err(_) => TrainingOutcome::Failed,
        };
        self.inner.metrics.record_training(counted, job.spec().params.solver(), job.age());
        self.jobs().running = None;
        job.finish(outcome);
        self.inner.ended.send_modify(|ended| *ended += 1);
    }

    /// Changes whenever a job has ended (the trainer is free then, until the next starts).
    pub fn watch_ended(&self) -> watch::Receiver<u64> {
        self.inner.ended.subscribe()
    }

    fn jobs(&self) -> MutexGuard<'_, JobRegistry> {
        self.inner.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn thread(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        self.inner.thread.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Work {
    /// The body of a job's thread: fit, store, announce; a panic ends the job as crashed.
    fn run(self) {
        self.trainer.inner.priority.apply_to_this_thread();
        self.job.set_running();
        let id = self.job.id();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.fit_and_store()))
            .unwrap_or_else(|panic| Err(JobError::Crashed { job: id, message: panic_message(panic) }));
        self.trainer.finish(&self.job, outcome);
    }

    fn fit_and_store(&self) -> Result<Arc<Model>, JobError> {
        let spec = TrainSpec {
            selection: self.selection.clone(),
            params: self.job.spec().params.clone(),
            warm_start: self.warm_start.as_deref(),
            job: self.job.id(),
        };
        let mut publisher = Publisher::new(&self.job, Pacer::new(self.trainer.inner.priority));
        let trained =
            self.train(spec, &mut publisher).map(|model| model.with_trained_rows(self.data.record()));
        publisher.flush();
        tracing::debug!(job = self.job.id(), paused = ?publisher.pacer.paused(), "the fit paused for the server's requests");
        let cancelled = |by| JobError::Cancelled { job: self.job.id(), by };
        let model = match trained {
            Ok(model) => model,
            Err(TrainError::Cancelled { .. }) => {
                return Err(cancelled(self.job.cancel_reason().unwrap_or(CancelReason::Request)));
            }
            Err(error) => return Err(error.into()),
        };
        self.job.begin_storing().map_err(cancelled)?;
        let inner = &self.trainer.inner;
        let verdict = self.verdict(&model);
        let activation =
            verdict.activated.then(|| Activation { reason: self.reason(), gate: verdict.gate.clone() });
        let stored = inner.runtime.block_on(inner.models.commit(model, activation))?;
        if !verdict.activated {
            inner.metrics.retrain.gate_rejected();
            tracing::info!(
                job = self.job.id(),
                version = stored.version(),
                "the quality gate kept the model out of service"
            );
        }
        self.job.set_verdict(verdict);
        Ok(stored)
    }

    /// The gate's scores on the rows held back, and whether the model goes into service: always,
    /// unless the job is gated and the model does not pass.
    fn verdict(&self, model: &Model) -> Verdict {
        let served = self.trainer.inner.models.active();
        let gate = self
            .holdout
            .as_ref()
            .and_then(|holdout| self.trainer.inner.gate.scores(model, served.as_deref(), &holdout.dataset()));
        let passes = gate.as_ref().is_none_or(gate::passes);
        Verdict { activated: !self.job.spec().gate || passes, gate }
    }

    fn reason(&self) -> Reason {
        match &self.job.spec().origin {
            Origin::Manual => Reason::Manual,
            Origin::Trigger { name, .. } => Reason::Trigger { name: name.clone() },
        }
    }
}

impl Work {
    /// The exact solver from the rows' statistics when the dataset keeps them; otherwise a fit
    /// over the rows themselves.
    fn train(&self, spec: TrainSpec<'_>, publisher: &mut Publisher<'_>) -> Result<Model, TrainError> {
        if matches!(spec.params, FitParams::LeastSquares)
            && let Some(moments) = self.data.moments(&self.selection)
        {
            let (rows, sha256) = (self.data.rows(), self.data.sha256());
            let spec = TrainSpec { selection: spec.selection.clone(), params: spec.params.clone(), ..spec };
            if let Some(trained) = Model::solve_from_moments(&moments, spec, rows, sha256) {
                return trained;
            }
        }
        Model::train(&self.data.dataset(), spec, publisher)
    }
}

/// Publishes a running fit's losses to its job, at most every [`PUBLISH_INTERVAL`], and answers
/// the fit's checkpoints: stop when the job is cancelled, pause as the [`Pacer`] says.
struct Publisher<'a> {
    job: &'a Job,
    pacer: Pacer,
    pending: Vec<f64>,
    last_publish: Instant,
}

impl<'a> Publisher<'a> {
    fn new(job: &'a Job, pacer: Pacer) -> Self {
        Self { job, pacer, pending: Vec::new(), last_publish: Instant::now() }
    }

    fn flush(&mut self) {
        self.job.publish(std::mem::take(&mut self.pending));
        self.last_publish = Instant::now();
    }

    fn cancelled(&self) -> bool {
        self.job.cancel_reason().is_some()
    }
}

impl Observer for Publisher<'_> {
    fn epoch_end(&mut self, _epoch: usize, loss: f64) -> ControlFlow<()> {
        self.pending.push(loss);
        if self.last_publish.elapsed() >= PUBLISH_INTERVAL {
            self.flush();
        }
        ControlFlow::Continue(())
    }

    fn checkpoint(&self) -> ControlFlow<()> {
        if self.cancelled() {
            return ControlFlow::Break(());
        }
        self.pacer.pace(|| self.cancelled())
    }
}

/// The message of a caught panic.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}
