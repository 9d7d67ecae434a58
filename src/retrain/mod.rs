//! Retraining that runs itself. The [`Retrainer`] task holds the trigger set ([`triggers`]) and
//! each trigger's status, wakes when rows arrive, when a schedule comes due, when a trigger is
//! fired by hand or by the webhook, and when any training ends, and then does what [`decide`]
//! says: start a training, queue one behind the running one, or merge the firing into the one
//! queued. A training that fails or is cancelled is only recorded: the triggers go on. The set
//! and the statuses are kept on the store ([`stored`]).

pub mod cron;
mod decide;
mod state;
mod stored;
mod triggers;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use triggers::{Trigger, TriggerSet, When, training_spec};

use self::decide::{Admitted, Firing, Queue};
use self::stored::{Mark, Status, Stored};
use crate::datasets::Datasets;
use crate::metrics::RetrainMetrics;
use crate::storage::Storage;
use crate::training::{Job, JobError, Origin, TrainRequest, Trainer};
use crate::units::rfc3339;

/// The longest the task sleeps without looking (a schedule far ahead is looked at again).
const LONGEST_SLEEP: Duration = Duration::from_secs(60);

/// Why a firing or a new set was refused.
#[derive(Debug, thiserror::Error)]
pub enum RetrainError {
    #[error("no trigger is named {0:?}; GET /v1/triggers lists them")]
    NoSuchTrigger(String),
    #[error("no trigger has \"webhook\": true; add one with PUT /v1/triggers")]
    NoWebhook,
    #[error("the triggers could not be stored: {0}")]
    Store(#[from] crate::storage::StoreError),
}

/// What became of a firing, for the caller that fired.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Fired {
    pub trigger: String,
    pub admitted: Admission,
    /// The job started now, if one was.
    pub job: Option<u64>,
    /// Why no job started, if it could not.
    pub error: Option<String>,
}

/// How a firing was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Admission {
    /// Its training started now.
    Started,
    /// Its training could not start (the firing's `error` says why).
    NotStarted,
    /// It waits behind the running training.
    Queued,
    /// It was merged into the firing already waiting.
    Merged,
}

/// The retraining triggers; clones share everything.
#[derive(Clone)]
pub struct Retrainer {
    inner: Arc<Inner>,
}

struct Inner {
    trainer: Trainer,
    datasets: Arc<Datasets>,
    store: Arc<dyn Storage>,
    metrics: RetrainMetrics,
    state: Mutex<State>,
    wake: Notify,
}

/// Everything that changes, behind one short-held lock.
struct State {
    set: TriggerSet,
    status: BTreeMap<String, Status>,
    mark: Mark,
    queue: Queue,
    /// Jobs the triggers started whose outcome is not recorded yet.
    started: Vec<(String, Arc<Job>)>,
    /// Whether the stored object is behind.
    dirty: bool,
}

impl Retrainer {
    /// The triggers `flags` names if any (they replace a stored set, but a trigger they name
    /// again with the same condition keeps its stored state), else the stored set, else the
    /// webhook alone.
    pub async fn open(
        trainer: Trainer,
        datasets: Arc<Datasets>,
        metrics: RetrainMetrics,
        flags: Option<TriggerSet>,
    ) -> Result<Self, String> {
        let store = trainer.registry().store().clone();
        let stored = stored::load(store.as_ref()).await?;
        let history = datasets.history();
        let mark = Mark { generation: history.generation, next_seq: history.next_seq };
        let (stored_set, stored) = match stored {
            Some(stored) => (Some(TriggerSet::from_json(stored.set.clone())?), stored),
            None => (None, Stored { mark, ..Stored::default() }),
        };
        let set = flags.or_else(|| stored_set.clone()).unwrap_or_else(TriggerSet::webhook_only);
        // The stored set first, so that a trigger the flags name again with the same condition
        // keeps its state (a schedule missed while down is still run once).
        let mut state =
            State::new(stored_set.unwrap_or_default(), stored.status, stored.mark, OffsetDateTime::now_utc());
        state.replace(set, OffsetDateTime::now_utc());
        let inner =
            Inner { trainer, datasets, store, metrics, state: Mutex::new(state), wake: Notify::new() };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Fires and records until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut rows = self.inner.datasets.watch();
        let mut ended = self.inner.trainer.watch_ended();
        loop {
            // Marked seen before looking, so that a job ending meanwhile wakes the next round.
            ended.borrow_and_update();
            let wake = self.tick(OffsetDateTime::now_utc());
            self.save().await;
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(wake) => {}
                // Every commit changes the rows: only a rows condition needs to hear of it.
                _ = rows.changed(), if self.counts_rows() => {}
                () = self.inner.wake.notified() => {}
                _ = ended.changed() => {}
            }
        }
        self.save().await;
    }

    /// Each trigger with its state now, and the firing waiting behind the running training.
    pub fn view(&self) -> Value {
        let now = OffsetDateTime::now_utc();
        let arrived = self.rows_arrived();
        let state = self.state();
        let triggers: Vec<Value> =
            state.set.triggers.iter().map(|t| state.view_of(t, now, arrived)).collect();
        let waiting = state.queue.waiting().map(|f| json!({"trigger": f.trigger, "merged": f.merged}));
        json!({ "triggers": triggers, "waiting": waiting, "running_job": self.inner.trainer.running().map(|j| j.id()) })
    }

    /// Replaces the set (already checked); the status of a trigger that keeps its name and
    /// condition is kept.
    pub async fn replace(&self, set: TriggerSet) -> Result<(), RetrainError> {
        self.state().replace(set, OffsetDateTime::now_utc());
        self.save_now().await?;
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Fires trigger `name`, or with `None` the webhook trigger; `spec` replaces its training
    /// spec for this firing. Answers once the trigger's new state is stored (or could not be).
    pub async fn fire(&self, name: Option<&str>, spec: Option<TrainRequest>) -> Result<Fired, RetrainError> {
        let fired = self.fire_now(name, spec)?;
        self.save().await;
        self.inner.wake.notify_one();
        Ok(fired)
    }

    fn fire_now(&self, name: Option<&str>, spec: Option<TrainRequest>) -> Result<Fired, RetrainError> {
        let mut state = self.state();
        let trigger = match name {
            Some(name) => state.set.get(name).ok_or_else(|| RetrainError::NoSuchTrigger(name.to_owned()))?,
            None => {
                state.set.triggers.iter().find(|t| t.when == When::Webhook).ok_or(RetrainError::NoWebhook)?
            }
        };
        let mut firing = firing_of(trigger, None);
        if let Some(spec) = spec {
            firing.request = TrainRequest { origin: firing.request.origin.clone(), ..spec };
        }
        Ok(self.offer(&mut state, firing, OffsetDateTime::now_utc()))
    }

    /// Looks at every trigger at `now`: records finished jobs, fires what is due, starts what
    /// waits; returns how long to sleep before the next scheduled time.
    fn tick(&self, now: OffsetDateTime) -> Duration {
        let arrived = self.rows_arrived();
        let mut state = self.state();
        state.record_outcomes();
        if !self.inner.trainer.is_running()
            && let Some(firing) = state.queue.take()
        {
            // A training that cannot start is recorded as the trigger's outcome.
            let _ = self.start(&mut state, firing);
        }
        for firing in state.due(now, arrived) {
            self.offer(&mut state, firing, now);
        }
        let next =
            state.set.triggers.iter().filter_map(|t| decide::next_time(&t.when, state.anchor(t))).min();
        let wait = next.map_or(LONGEST_SLEEP, |next| (next - now).try_into().unwrap_or(Duration::ZERO));
        wait.min(LONGEST_SLEEP)
    }

    fn offer(&self, state: &mut State, firing: Firing, now: OffsetDateTime) -> Fired {
        let trigger = firing.trigger.clone();
        let history = self.inner.datasets.history();
        state.mark = Mark { generation: history.generation, next_seq: history.next_seq };
        state.fired(&firing, now);
        let (admitted, start) = state.queue.offer(firing, self.inner.trainer.is_running());
        let mut fired =
            Fired { trigger: trigger.clone(), admitted: Admission::Started, job: None, error: None };
        match admitted {
            Admitted::Start => match self.start(state, start.expect("a firing to start")) {
                Ok(job) => fired.job = Some(job),
                Err(error) => (fired.admitted, fired.error) = (Admission::NotStarted, Some(error)),
            },
            Admitted::Queued => fired.admitted = Admission::Queued,
            Admitted::Merged { into } => {
                fired.admitted = Admission::Merged;
                self.inner.metrics.merged(&trigger);
                state.status_mut(&trigger).merged += 1;
                tracing::info!(trigger, into, "a firing was merged into the training waiting");
            }
        }
        fired
    }

    /// Starts `firing`'s training; an error is recorded as the trigger's outcome.
    fn start(&self, state: &mut State, firing: Firing) -> Result<u64, String> {
        let trigger = firing.trigger.clone();
        let started = self.inner.trainer.train(&self.inner.datasets, firing.request);
        let status = state.status_mut(&trigger);
        match started {
            Ok(job) => {
                self.inner.metrics.started(&trigger);
                status.job = Some(job.id());
                status.outcome = Some(state::RUNNING.into());
                tracing::info!(
                    trigger,
                    job = job.id(),
                    merged = firing.merged,
                    "a trigger started a training"
                );
                let id = job.id();
                state.started.push((trigger, job));
                Ok(id)
            }
            Err(error) => {
                let error = not_started(&error);
                tracing::warn!(trigger, %error, "a trigger could not start a training");
                status.outcome = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Rows that arrived since the last training: since the position marked when a trigger last
    /// started one, or since the rows the served model was trained on, whichever is later.
    fn rows_arrived(&self) -> u64 {
        let history = self.inner.datasets.history();
        let mark = self.state().mark;
        let mut since = match mark.generation == history.generation {
            true => mark.next_seq,
            false => history.next_seq.saturating_sub(history.rows as u64),
        };
        let served = self.inner.trainer.registry().active();
        if let Some(rows) = served.as_deref().and_then(crate::model::Model::trained_rows)
            && rows.generation == history.generation
        {
            since = since.max(rows.last_seq + 1);
        }
        history.next_seq.saturating_sub(since)
    }

    /// Whether a trigger of the set fires on a number of rows.
    fn counts_rows(&self) -> bool {
        self.state().set.triggers.iter().any(|trigger| matches!(trigger.when, When::Rows(_)))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores the state if it changed; a failure is logged and tried again later.
    async fn save(&self) {
        if let Err(error) = self.save_now().await {
            tracing::warn!(%error, "the triggers' state could not be stored; it is tried again");
        }
    }

    async fn save_now(&self) -> Result<(), RetrainError> {
        let stored = {
            let mut state = self.state();
            if !std::mem::take(&mut state.dirty) {
                return Ok(());
            }
            Stored { set: state.set.to_json(), status: state.status.clone(), mark: state.mark }
        };
        if let Err(error) = stored::save(self.inner.store.as_ref(), &stored).await {
            self.state().dirty = true;
            return Err(error.into());
        }
        Ok(())
    }
}

/// The firing of `trigger`, for a scheduled run the time it was due.
fn firing_of(trigger: &Trigger, scheduled_for: Option<OffsetDateTime>) -> Firing {
    let origin = Origin::Trigger { name: trigger.name.clone(), scheduled_for: scheduled_for.map(rfc3339) };
    Firing {
        trigger: trigger.name.clone(),
        request: TrainRequest { origin, ..trigger.request.clone() },
        scheduled_for,
        merged: 0,
    }
}

fn not_started(error: &JobError) -> String {
    format!("not started: {error}")
}
