//! Training jobs: at most one runs at a time, on a blocking thread so the async workers keep
//! answering requests. Each job publishes its progress (epoch, loss history, ETA) for
//! `GET /v1/jobs/{id}` and its event stream, can be cancelled, and on success stores its model
//! as a new version and swaps it into service in one step.

use std::collections::VecDeque;
use std::fmt;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::config::TrainingPriority;
use crate::data::DataError;
use crate::metrics::TrainingOutcome;
use crate::model::{History, Metrics, Model, TrainSpec, now_rfc3339};
use crate::state::AppState;
use crate::train::{FitParams, FitSettings, Observer, TrainError};
use crate::versions::VersionError;

/// Finished jobs kept for `GET /v1/jobs`.
const RECENT_JOBS: usize = 50;
/// How often a running fit publishes its progress at most.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(25);

/// What a caller asks to train: columns (defaults from the dataset), solver settings, and
/// whether to start from the current model's weights.
#[derive(Debug, Clone, Default)]
pub struct TrainRequest {
    pub features: Option<Vec<String>>,
    pub target: Option<String>,
    pub settings: FitSettings,
    pub warm_start: bool,
}

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
    Store(#[from] VersionError),
    #[error("training job {job} failed unexpectedly: {message}")]
    Crashed { job: u64, message: String },
}

/// Who stopped a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    Request = 1,
    Shutdown = 2,
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CancelReason::Request => "on request",
            CancelReason::Shutdown => "because the server is shutting down",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }
}

/// One training job, shared between its thread, the registry and its watchers.
pub struct Job {
    id: u64,
    features: Vec<String>,
    target: String,
    rows: usize,
    params: FitParams,
    warm_start_from: Option<u64>,
    started_at: String,
    clock: Instant,
    /// 0 while running, else the [`CancelReason`] as a number.
    cancel: AtomicU8,
    status: Mutex<JobStatus>,
    /// Bumped on every published change; watchers wait on it.
    changes: watch::Sender<u64>,
}

#[derive(Debug)]
struct JobStatus {
    state: JobState,
    history: Vec<f64>,
    finished_after: Option<Duration>,
    outcome: Option<Result<Arc<Model>, Arc<JobError>>>,
}

/// A job as clients see it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: u64,
    pub state: JobState,
    pub epoch: usize,
    pub epochs: usize,
    pub loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<History>,
    pub started_at: String,
    pub elapsed_ms: f64,
    /// Estimated time to the end of the whole run (an upper bound when the fit may stop early).
    pub eta_ms: Option<f64>,
    pub features: Vec<String>,
    pub target: String,
    pub rows: usize,
    pub params: FitParams,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_start_from: Option<u64>,
    pub error: Option<String>,
    pub model_version: Option<u64>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
}

/// Progress since a watcher's last look: the new losses and where they start.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub id: u64,
    pub state: JobState,
    pub epoch: usize,
    pub epochs: usize,
    pub loss: Option<f64>,
    /// Epoch number of `losses[0]`.
    pub first_epoch: usize,
    pub losses: Vec<f64>,
    pub elapsed_ms: f64,
    pub eta_ms: Option<f64>,
}

impl Job {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn state(&self) -> JobState {
        self.status().state
    }

    /// The job with (`with_history`) or without its loss history.
    pub fn view(&self, with_history: bool) -> JobView {
        let status = self.status();
        let (model, error) = match &status.outcome {
            Some(Ok(model)) => (Some(model), None),
            Some(Err(error)) => (None, Some(error.to_string())),
            None => (None, None),
        };
        JobView {
            id: self.id,
            state: status.state,
            epoch: status.history.len(),
            epochs: self.params.epochs(),
            loss: status.history.last().copied(),
            history: with_history.then(|| History { loss: status.history.clone() }),
            started_at: self.started_at.clone(),
            elapsed_ms: self.elapsed(&status).as_secs_f64() * 1e3,
            eta_ms: self.eta_ms(&status),
            features: self.features.clone(),
            target: self.target.clone(),
            rows: self.rows,
            params: self.params.clone(),
            warm_start_from: self.warm_start_from,
            error,
            model_version: model.map(|model| model.version()),
            metrics: model.map(|model| *model.metrics()),
        }
    }

    /// Progress from epoch `after + 1` on.
    pub fn progress_since(&self, after: usize) -> Progress {
        let status = self.status();
        let after = after.min(status.history.len());
        Progress {
            id: self.id,
            state: status.state,
            epoch: status.history.len(),
            epochs: self.params.epochs(),
            loss: status.history.last().copied(),
            first_epoch: after + 1,
            losses: status.history[after..].to_vec(),
            elapsed_ms: self.elapsed(&status).as_secs_f64() * 1e3,
            eta_ms: self.eta_ms(&status),
        }
    }

    /// The model, or the error, once the job has finished.
    pub fn outcome(&self) -> Option<Result<Arc<Model>, Arc<JobError>>> {
        self.status().outcome.clone()
    }

    /// A receiver that sees every published change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Waits until the job has finished and returns its outcome.
    pub async fn finished(&self) -> Result<Arc<Model>, Arc<JobError>> {
        let mut changes = self.subscribe();
        loop {
            if let Some(outcome) = self.outcome() {
                return outcome;
            }
            // The sender lives as long as the job, so this only waits.
            let _ = changes.changed().await;
        }
    }

    /// Asks the fit to stop; it notices within one poll of its batches.
    pub fn cancel(&self, reason: CancelReason) {
        let _ = self.cancel.compare_exchange(0, reason as u8, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn cancel_reason(&self) -> Option<CancelReason> {
        match self.cancel.load(Ordering::Relaxed) {
            0 => None,
            1 => Some(CancelReason::Request),
            _ => Some(CancelReason::Shutdown),
        }
    }

    fn elapsed(&self, status: &JobStatus) -> Duration {
        status.finished_after.unwrap_or_else(|| self.clock.elapsed())
    }

    fn eta_ms(&self, status: &JobStatus) -> Option<f64> {
        if status.state.is_finished() {
            return Some(0.0);
        }
        let done = status.history.len();
        (done > 0).then(|| {
            let per_epoch = self.clock.elapsed().as_secs_f64() * 1e3 / done as f64;
            per_epoch * self.params.epochs().saturating_sub(done) as f64
        })
    }

    fn status(&self) -> MutexGuard<'_, JobStatus> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, change: impl FnOnce(&mut JobStatus)) {
        change(&mut self.status());
        self.changes.send_modify(|generation| *generation += 1);
    }

    /// Publishes how the job ended and counts it in `state`'s metrics.
    fn finish(&self, state: &AppState, outcome: Result<Arc<Model>, JobError>) {
        let (job_state, counted) = match &outcome {
            Ok(_) => (JobState::Succeeded, TrainingOutcome::Succeeded),
            Err(JobError::Cancelled { .. }) => (JobState::Cancelled, TrainingOutcome::Cancelled),
            Err(_) => (JobState::Failed, TrainingOutcome::Failed),
        };
        let elapsed = self.clock.elapsed();
        // Counted before it is announced, so whoever sees the end also sees it in the metrics.
        state.metrics().record_training(counted, self.params.solver(), elapsed);
        self.update(|status| {
            status.state = job_state;
            status.finished_after = Some(elapsed);
            status.outcome = Some(outcome.map_err(Arc::new));
        });
    }
}

/// Publishes a running fit's losses to its job, at most every [`PUBLISH_INTERVAL`].
struct Publisher<'a> {
    job: &'a Job,
    pending: Vec<f64>,
    last_publish: Instant,
}

impl Publisher<'_> {
    fn flush(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.job.update(|status| status.history.extend(pending));
        self.last_publish = Instant::now();
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

    fn cancelled(&self) -> bool {
        self.job.cancel_reason().is_some()
    }
}

/// The running job and the recent ones.
#[derive(Default)]
pub struct JobRegistry {
    last_id: u64,
    running: Option<Arc<Job>>,
    recent: VecDeque<Arc<Job>>,
}

impl JobRegistry {
    /// A registry whose job ids continue after `last_id` (the highest a stored model names).
    pub fn continuing_after(last_id: u64) -> Self {
        Self { last_id, ..Self::default() }
    }

    pub fn running(&self) -> Option<&Arc<Job>> {
        self.running.as_ref()
    }

    pub fn get(&self, id: u64) -> Option<Arc<Job>> {
        self.recent.iter().find(|job| job.id == id).cloned()
    }

    /// Recent jobs, newest first.
    pub fn list(&self) -> Vec<Arc<Job>> {
        self.recent.iter().rev().cloned().collect()
    }
}

impl AppState {
    /// Validates `request` against the active dataset and model, and starts training it.
    pub fn start_training(&self, request: TrainRequest) -> Result<Arc<Job>, JobError> {
        let dataset = self.dataset();
        let selection = dataset.select(request.features, request.target)?;
        let params = request.settings.validate(selection.features.len())?;
        let warm_start = match request.warm_start {
            true => Some(self.model().ok_or(JobError::NoModelToWarmStart)?),
            false => None,
        };
        if let Some(model) = &warm_start {
            // Checked here too, so a mismatch is a 422 now rather than a failed job later.
            model.warm_start_weights(&selection, &params)?;
        }
        let job = {
            let mut jobs = self.jobs();
            if let Some(running) = &jobs.running {
                return Err(JobError::Busy { running: running.id });
            }
            jobs.last_id += 1;
            let job = Arc::new(Job {
                id: jobs.last_id,
                features: selection.features.clone(),
                target: selection.target.clone(),
                rows: dataset.rows(),
                params: params.clone(),
                warm_start_from: warm_start.as_ref().map(|model| model.version()),
                started_at: now_rfc3339(),
                clock: Instant::now(),
                cancel: AtomicU8::new(0),
                status: Mutex::new(JobStatus {
                    state: JobState::Queued,
                    history: Vec::new(),
                    finished_after: None,
                    outcome: None,
                }),
                changes: watch::Sender::new(0),
            });
            jobs.running = Some(job.clone());
            jobs.recent.push_back(job.clone());
            if jobs.recent.len() > RECENT_JOBS {
                jobs.recent.pop_front();
            }
            job
        };
        tracing::info!(job = job.id, features = ?job.features, target = %job.target, rows = job.rows,
            solver = ?params.solver(), "training started");

        let (state, running) = (self.clone(), job.clone());
        let work = move || {
            running.update(|status| status.state = JobState::Running);
            let spec = TrainSpec { selection, params, warm_start: warm_start.as_deref(), job: running.id };
            let mut publisher =
                Publisher { job: &running, pending: Vec::new(), last_publish: Instant::now() };
            let result = Model::train(&dataset, spec, &mut publisher);
            publisher.flush();
            match result {
                Ok(model) => Ok(state.models().commit(model)?),
                Err(TrainError::Cancelled { .. }) => Err(JobError::Cancelled {
                    job: running.id,
                    by: running.cancel_reason().unwrap_or(CancelReason::Request),
                }),
                Err(error) => Err(error.into()),
            }
        };
        let (state, running) = (self.clone(), job.clone());
        let (report, outcome) = tokio::sync::oneshot::channel();
        let id = job.id;
        let priority = self.limits().training_priority;
        let thread = std::thread::Builder::new().name(format!("train-job-{id}")).spawn(move || {
            lower_thread_priority(priority);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .unwrap_or_else(|panic| Err(JobError::Crashed { job: id, message: panic_message(panic) }));
            let _ = report.send(result);
        });
        if let Err(error) = thread {
            self.jobs().running = None;
            job.finish(
                self,
                Err(JobError::Crashed { job: id, message: format!("no thread to train on: {error}") }),
            );
            return Ok(job);
        }
        tokio::spawn(async move {
            let outcome = outcome.await.unwrap_or_else(|_| {
                Err(JobError::Crashed { job: running.id, message: "the training thread vanished".into() })
            });
            match &outcome {
                Ok(model) => tracing::info!(
                    job = running.id,
                    version = model.version(),
                    mse = model.metrics().mse,
                    optimum_mse = model.metrics().optimum_mse,
                    "training succeeded"
                ),
                Err(error) => tracing::warn!(job = running.id, %error, "training did not produce a model"),
            }
            // Leave the slot before announcing the end, so a watcher that sees it can start the next job.
            state.jobs().running = None;
            running.finish(&state, outcome);
        });
        Ok(job)
    }

    /// Asks the running job, if any, to stop.
    pub fn cancel_training(&self, reason: CancelReason) {
        if let Some(job) = self.jobs().running() {
            job.cancel(reason);
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Lets the request handlers preempt training: on a two-core machine a fit at equal priority
/// would add its time slices to the latency of every request that lands while it runs.
fn lower_thread_priority(priority: TrainingPriority) {
    // SAFETY: both calls only read their arguments; on Linux `0` names the calling thread.
    #[cfg(target_os = "linux")]
    let changed = match priority {
        TrainingPriority::Idle => unsafe {
            libc::sched_setscheduler(0, libc::SCHED_IDLE, &libc::sched_param { sched_priority: 0 }) == 0
        },
        TrainingPriority::Nice(niceness) => unsafe {
            libc::setpriority(libc::PRIO_PROCESS, 0, niceness) == 0
        },
    };
    #[cfg(not(target_os = "linux"))]
    let changed = false;
    if !changed {
        tracing::debug!(?priority, "training runs at normal priority");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn on_a_new_thread<T: Send + 'static>(priority: TrainingPriority, read: fn() -> T) -> T {
        std::thread::spawn(move || {
            lower_thread_priority(priority);
            read()
        })
        .join()
        .unwrap()
    }

    #[test]
    fn training_threads_run_at_the_configured_priority() {
        // SAFETY: both calls only read their integer arguments.
        let policy = on_a_new_thread(TrainingPriority::Idle, || unsafe { libc::sched_getscheduler(0) });
        assert_eq!(policy, libc::SCHED_IDLE);
        let niceness = on_a_new_thread(TrainingPriority::Nice(10), || unsafe {
            libc::getpriority(libc::PRIO_PROCESS, 0)
        });
        assert_eq!(niceness, 10);
    }
}
