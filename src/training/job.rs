//! One training job as everyone sees it: its settings, its published progress (epoch, loss
//! history, ETA), how it ended, and the one atomic that decides whether a cancellation or the
//! storing of its model wins.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use super::{JobError, Origin};
use crate::model::{HistoryDetail, HistoryView, Metrics, Model};
use crate::registry::GateScores;
use crate::train::FitParams;

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

/// What a request to cancel a job achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The fit will stop at its next checkpoint, and its model will not be stored.
    Requested,
    /// The job had been cancelled already.
    AlreadyCancelled,
    /// The fit had ended and its model was being stored: too late to cancel.
    TooLate,
}

/// The job's end game, one atomic: still fitting, cancelled (by whom), or storing its model.
const FITTING: u8 = 0;
const STORING: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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

/// What a job trains, fixed when it starts.
pub struct JobSpec {
    pub features: Vec<String>,
    pub target: String,
    pub rows: usize,
    pub params: FitParams,
    pub warm_start_from: Option<u64>,
    /// Who asked for it.
    pub origin: Origin,
    /// Whether the quality gate decides if its model is activated.
    pub gate: bool,
}

/// Whether a job's model went into service, and the gate's scores when there was a holdout.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub activated: bool,
    pub gate: Option<GateScores>,
}

/// One training job, shared between its thread, the trainer and its watchers.
pub struct Job {
    id: u64,
    spec: JobSpec,
    started_at: String,
    clock: Instant,
    /// [`FITTING`], a [`CancelReason`] as a number, or [`STORING`].
    end: AtomicU8,
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
    verdict: Option<Verdict>,
}

/// A job as clients see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: u64,
    pub state: JobState,
    pub epoch: usize,
    pub epochs: usize,
    pub loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryView<'static>>,
    pub started_at: String,
    pub elapsed_ms: f64,
    /// Estimated time to the end of the whole run (an upper bound when the fit may stop early).
    pub eta_ms: Option<f64>,
    pub features: Vec<String>,
    pub target: String,
    pub rows: usize,
    #[schema(value_type = Object)]
    pub params: FitParams,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_start_from: Option<u64>,
    pub error: Option<String>,
    pub model_version: Option<u64>,
    /// The model's metrics (`mse`, `r2`, `optimum_mse`, `gap`), once the job has one.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub metrics: Option<Metrics>,
    pub origin: Origin,
    /// Whether the model went into service (once it is stored).
    pub activated: Option<bool>,
    /// The quality gate's scores on the rows held back (`--holdout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateScores>,
}

impl JobView {
    /// Why the gate kept the model out of service.
    pub fn gate_reason(&self) -> String {
        self.gate.as_ref().map_or_else(|| "no holdout scores".to_owned(), super::gate::rejection)
    }
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
    pub(super) fn new(id: u64, spec: JobSpec, started_at: String) -> Self {
        Self {
            id,
            spec,
            started_at,
            clock: Instant::now(),
            end: AtomicU8::new(FITTING),
            status: Mutex::new(JobStatus {
                state: JobState::Queued,
                history: Vec::new(),
                finished_after: None,
                outcome: None,
                verdict: None,
            }),
            changes: watch::Sender::new(0),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn spec(&self) -> &JobSpec {
        &self.spec
    }

    pub fn state(&self) -> JobState {
        self.status().state
    }

    /// The job, with its loss history shaped by `history`.
    pub fn view(&self, history: HistoryDetail) -> JobView {
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
            epochs: self.spec.params.epochs(),
            loss: status.history.last().copied(),
            history: HistoryView::of(&status.history, history).map(HistoryView::into_owned),
            started_at: self.started_at.clone(),
            elapsed_ms: self.elapsed(&status).as_secs_f64() * 1e3,
            eta_ms: self.eta_ms(&status),
            features: self.spec.features.clone(),
            target: self.spec.target.clone(),
            rows: self.spec.rows,
            params: self.spec.params.clone(),
            warm_start_from: self.spec.warm_start_from,
            error,
            model_version: model.map(|model| model.version()),
            metrics: model.map(|model| *model.metrics()),
            origin: self.spec.origin.clone(),
            activated: status.verdict.as_ref().map(|verdict| verdict.activated),
            gate: status.verdict.as_ref().and_then(|verdict| verdict.gate.clone()),
        }
    }

    /// Progress from epoch `after + 1` on, at most `limit` epochs of it.
    pub fn progress_since(&self, after: usize, limit: usize) -> Progress {
        let status = self.status();
        let after = after.min(status.history.len());
        let until = after.saturating_add(limit).min(status.history.len());
        Progress {
            id: self.id,
            state: status.state,
            epoch: until,
            epochs: self.spec.params.epochs(),
            loss: status.history[..until].last().copied(),
            first_epoch: after + 1,
            losses: status.history[after..until].to_vec(),
            elapsed_ms: self.elapsed(&status).as_secs_f64() * 1e3,
            eta_ms: self.eta_ms(&status),
        }
    }

    /// Epochs published so far.
    pub fn epochs_done(&self) -> usize {
        self.status().history.len()
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

    /// Asks the fit to stop; it notices at its next checkpoint. Refused once the model is being
    /// stored, so a cancellation that was accepted never lets a model into service.
    pub fn cancel(&self, reason: CancelReason) -> CancelOutcome {
        match self.end.compare_exchange(FITTING, reason as u8, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => CancelOutcome::Requested,
            Err(STORING) => CancelOutcome::TooLate,
            Err(_) => CancelOutcome::AlreadyCancelled,
        }
    }

    /// Why the job was cancelled, if it was.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        match self.end.load(Ordering::Acquire) {
            1 => Some(CancelReason::Request),
            2 => Some(CancelReason::Shutdown),
            _ => None,
        }
    }

    /// Claims the right to store the fitted model; fails with the reason if a cancellation came
    /// first.
    pub(super) fn begin_storing(&self) -> Result<(), CancelReason> {
        match self.end.compare_exchange(FITTING, STORING, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Ok(()),
            Err(_) => Err(self.cancel_reason().unwrap_or(CancelReason::Request)),
        }
    }

    /// Records whether the model went into service, before the job finishes.
    pub(super) fn set_verdict(&self, verdict: Verdict) {
        self.update(|status| status.verdict = Some(verdict));
    }

    pub(super) fn set_running(&self) {
        self.update(|status| status.state = JobState::Running);
    }

    /// Adds losses of the epochs that ended since the last call.
    pub(super) fn publish(&self, losses: Vec<f64>) {
        self.update(|status| status.history.extend(losses));
    }

    /// Time since the job started.
    pub(super) fn age(&self) -> Duration {
        self.clock.elapsed()
    }

    /// Publishes how the job ended.
    pub(super) fn finish(&self, outcome: Result<Arc<Model>, JobError>) {
        let job_state = match &outcome {
            Ok(_) => JobState::Succeeded,
            Err(JobError::Cancelled { .. }) => JobState::Cancelled,
            Err(_) => JobState::Failed,
        };
        let elapsed = self.clock.elapsed();
        self.update(|status| {
            status.state = job_state;
            status.finished_after = Some(elapsed);
            status.outcome = Some(outcome.map_err(Arc::new));
        });
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
            per_epoch * self.spec.params.epochs().saturating_sub(done) as f64
        })
    }

    fn status(&self) -> MutexGuard<'_, JobStatus> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, change: impl FnOnce(&mut JobStatus)) {
        change(&mut self.status());
        self.changes.send_modify(|generation| *generation += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        let spec = JobSpec {
            features: vec!["x".into()],
            target: "y".into(),
            rows: 2,
            params: FitParams::LeastSquares,
            warm_start_from: None,
            origin: Origin::Manual,
            gate: false,
        };
        Job::new(1, spec, "2026-01-01T00:00:00Z".into())
    }

    #[test]
    fn a_cancellation_and_the_storing_of_the_model_cannot_both_win() {
        let cancelled_first = job();
        assert_eq!(cancelled_first.cancel(CancelReason::Request), CancelOutcome::Requested);
        assert_eq!(cancelled_first.cancel(CancelReason::Shutdown), CancelOutcome::AlreadyCancelled);
        assert_eq!(cancelled_first.begin_storing(), Err(CancelReason::Request));

        let storing_first = job();
        assert_eq!(storing_first.begin_storing(), Ok(()));
        assert_eq!(storing_first.cancel(CancelReason::Request), CancelOutcome::TooLate);
        assert_eq!(storing_first.cancel_reason(), None);
    }

    #[test]
    fn progress_comes_in_bounded_pieces() {
        let job = job();
        job.publish((1..=10).map(f64::from).collect());
        let first = job.progress_since(0, 4);
        assert_eq!((first.first_epoch, first.epoch, first.losses), (1, 4, vec![1.0, 2.0, 3.0, 4.0]));
        let rest = job.progress_since(8, 4);
        assert_eq!((rest.first_epoch, rest.epoch, rest.loss), (9, 10, Some(10.0)));
    }
}
