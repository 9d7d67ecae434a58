//! Training jobs: at most one at a time, run on a blocking thread so the async workers keep
//! answering requests, with the finished model swapped into the served slot in one step.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use tokio::sync::oneshot;

use crate::data::DataError;
use crate::model::Model;
use crate::state::AppState;
use crate::train::{AdamParams, AdamSettings, TrainError};

/// What a caller asks to train: columns (defaults from the dataset) and Adam settings.
#[derive(Debug, Clone, Default)]
pub struct TrainRequest {
    pub features: Option<Vec<String>>,
    pub target: Option<String>,
    pub settings: AdamSettings,
}

/// Why a job could not start or did not produce a model.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("training job {running} is still running; wait for it to finish (GET /training_flag)")]
    Busy { running: u64 },
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error("training job {job} failed unexpectedly: {message}")]
    Crashed { job: u64, message: String },
}

/// A job as reported to clients.
#[derive(Debug, Clone, Serialize)]
pub struct JobInfo {
    pub id: u64,
    pub state: JobState,
    pub features: Vec<String>,
    pub target: String,
    pub rows: usize,
    pub params: AdamParams,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Succeeded,
}

/// A started job: its description now, and its outcome when it ends.
pub struct StartedJob {
    pub info: JobInfo,
    pub outcome: oneshot::Receiver<Result<Arc<Model>, JobError>>,
}

/// Bookkeeping of the one training slot.
#[derive(Debug, Default)]
pub struct JobSlot {
    last_id: u64,
    running: Option<RunningJob>,
}

#[derive(Debug)]
struct RunningJob {
    id: u64,
    cancel: Arc<AtomicBool>,
}

impl JobSlot {
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }
}

impl AppState {
    /// Validates `request` against the active dataset and starts training in the background.
    pub fn start_training(&self, request: TrainRequest) -> Result<StartedJob, JobError> {
        let dataset = self.dataset();
        let selection = dataset.select(request.features, request.target)?;
        let params = request.settings.validate(selection.features.len())?;
        let (id, cancel) = self.claim_slot()?;
        let info = JobInfo {
            id,
            state: JobState::Running,
            features: selection.features.clone(),
            target: selection.target.clone(),
            rows: dataset.rows(),
            params: params.clone(),
        };
        tracing::info!(job = id, features = ?info.features, target = %info.target, rows = info.rows, "training started");

        let (report, outcome) = oneshot::channel();
        let state = self.clone();
        let fit = move || {
            Model::train(&dataset, selection, params, id, |_, _| {
                if cancel.load(Ordering::Relaxed) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
        };
        tokio::spawn(async move {
            let result = match tokio::task::spawn_blocking(fit).await {
                Ok(Ok(model)) => {
                    let model = Arc::new(model);
                    state.install_model(model.clone());
                    tracing::info!(
                        job = id,
                        mse = model.mse(),
                        optimum_mse = model.optimum_mse(),
                        "training succeeded"
                    );
                    Ok(model)
                }
                Ok(Err(error)) => Err(JobError::Train(error)),
                Err(join) => Err(JobError::Crashed { job: id, message: panic_message(join) }),
            };
            if let Err(error) = &result {
                tracing::warn!(job = id, %error, "training did not produce a model");
            }
            state.jobs().running = None;
            // The caller may have stopped waiting; the model is installed either way.
            let _ = report.send(result);
        });
        Ok(StartedJob { info, outcome })
    }

    /// Asks the running job, if any, to stop after its current epoch.
    pub fn cancel_training(&self) {
        if let Some(job) = &self.jobs().running {
            job.cancel.store(true, Ordering::Relaxed);
        }
    }

    fn claim_slot(&self) -> Result<(u64, Arc<AtomicBool>), JobError> {
        let mut slot = self.jobs();
        if let Some(job) = &slot.running {
            return Err(JobError::Busy { running: job.id });
        }
        slot.last_id += 1;
        let cancel = Arc::new(AtomicBool::new(false));
        slot.running = Some(RunningJob { id: slot.last_id, cancel: cancel.clone() });
        Ok((slot.last_id, cancel))
    }
}

impl JobInfo {
    /// The description of this job once it has produced its model.
    pub fn succeeded(self) -> Self {
        Self { state: JobState::Succeeded, ..self }
    }
}

fn panic_message(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into()),
        Err(error) => error.to_string(),
    }
}
