//! Activation events: every time a version becomes the active one, the registry records why (a
//! [`Reason`], and the quality gate's [`GateScores`] when a gate decided) as a numbered
//! [`ModelEvent`], which readers follow ([`EventLog::replay`], [`EventLog::subscribe`]).
//!
//! Each event is stored create-only as its own object once the pointer swap has succeeded; an id
//! another process took first is skipped. The newest [`KEEP_EVENTS`] are kept, in memory and on
//! the store, and older ones deleted. Ids continue after a restart: [`EventLog::load`] reads the
//! retained events from the registry's listing of the store. An event that cannot be stored is
//! logged and still announced: the activation it tells of has happened.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::ActivationMetrics;
use crate::storage::{Fetched, Key, Listed, PutMode, Storage, StoreError};
use crate::units::{now_rfc3339, since_rfc3339};

/// The key prefix of the events.
const EVENTS: &str = "models/events";
/// How many events are kept, in memory and on the store.
pub const KEEP_EVENTS: usize = 1000;
/// How many ids taken by other processes one recording skips before it gives up storing.
const ID_ATTEMPTS: u64 = 100;
/// How many events are read at once when the store is opened.
const PARALLEL_READS: usize = 16;

/// Why a version became the active one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// A training asked for by a client.
    Manual,
    /// A retraining trigger, by name.
    Trigger { name: String },
    /// A stored version activated again on request.
    Rollback,
}

impl Reason {
    /// The `kind` of the reason, as its JSON and the metrics' `reason` label name it.
    pub fn label(&self) -> &'static str {
        match self {
            Reason::Manual => "manual",
            Reason::Trigger { .. } => "trigger",
            Reason::Rollback => "rollback",
        }
    }
}

/// The quality gate's scores, when a gate decided: the holdout MSE of the candidate and of the
/// model it would replace (none when nothing was served).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GateScores {
    pub candidate_mse: f64,
    pub active_mse: Option<f64>,
    pub margin: f64,
    pub holdout_rows: usize,
}

/// Why an activation happens: what the callers of [`super::Registry::commit`] and
/// [`super::Registry::activate`] pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Activation {
    pub reason: Reason,
    pub gate: Option<GateScores>,
}

impl From<Reason> for Activation {
    /// An activation that no gate decided.
    fn from(reason: Reason) -> Self {
        Self { reason, gate: None }
    }
}

/// One activation, as clients see it and as it is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEvent {
    pub id: u64,
    /// The version made active.
    pub version: u64,
    /// The version served before, if one was.
    pub previous: Option<u64>,
    pub reason: Reason,
    pub gate: Option<GateScores>,
    /// When, in RFC 3339.
    pub at: String,
}

/// What a reader is sent next.
#[derive(Debug, Clone, PartialEq)]
pub struct Backlog {
    /// Set when events after the reader's last one were already dropped.
    pub gap: Option<Gap>,
    /// The retained events it has not seen, oldest first.
    pub events: Vec<ModelEvent>,
    /// The id up to which the reader has seen everything once it has these.
    pub through: u64,
}

/// Events a reader missed: those after `after` and before `oldest`, the oldest retained (or the
/// next id, when none is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub after: u64,
    pub oldest: u64,
}

/// The retained events, and the readers' wake-ups.
#[derive(Debug)]
pub struct EventLog {
    retained: Mutex<Retained>,
    /// The id of the last event recorded, for waking the readers.
    latest: watch::Sender<u64>,
    /// Cancelled when the server stops, which ends every reader's wait.
    closed: CancellationToken,
    metrics: ActivationMetrics,
}

#[derive(Debug)]
struct Retained {
    events: VecDeque<ModelEvent>,
    /// The id the next event takes, unless another process took it.
    next_id: u64,
    /// Stored events older than the retained ones (found at start, or whose deletion failed),
    /// deleted at the next recording.
    stale: Vec<u64>,
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new(Retained { events: VecDeque::new(), next_id: 1, stale: Vec::new() })
    }
}

impl EventLog {
    fn new(retained: Retained) -> Self {
        Self {
            latest: watch::Sender::new(retained.next_id - 1),
            retained: Mutex::new(retained),
            closed: CancellationToken::new(),
            metrics: ActivationMetrics::default(),
        }
    }

    /// The events among `listed` (a listing of the models' prefix): the newest [`KEEP_EVENTS`]
    /// are read, and unreadable ones logged and skipped. Fails only when the store does not
    /// answer.
    pub(super) async fn load(store: &dyn Storage, listed: &[Listed]) -> Result<Self, StoreError> {
        let mut ids: Vec<u64> = listed.iter().filter_map(|listed| id_of(&listed.key)).collect();
        ids.sort_unstable();
        let next_id = ids.last().map_or(1, |last| last + 1);
        let stale = ids.drain(..ids.len().saturating_sub(KEEP_EVENTS)).collect();
        let reads = futures_util::stream::iter(ids).map(|id| read_event(store, id));
        let events: Vec<Option<ModelEvent>> = reads.buffered(PARALLEL_READS).try_collect().await?;
        Ok(Self::new(Retained { events: events.into_iter().flatten().collect(), next_id, stale }))
    }

    /// Records that `version` became active in place of `previous`: stores the event, retains
    /// it, counts it and wakes the readers. Making the served version active again changes
    /// nothing and is no event. Called under the registry's change lock, so that events are
    /// numbered in the order of the activations.
    pub(super) async fn record(
        &self,
        store: &dyn Storage,
        version: u64,
        previous: Option<u64>,
        activation: Activation,
    ) {
        if previous == Some(version) {
            return;
        }
        let Activation { reason, gate } = activation;
        let id = self.retained().next_id;
        let event = ModelEvent { id, version, previous, reason, gate, at: now_rfc3339() };
        let event = store_event(store, event).await;
        self.metrics.activated(event.reason.label());
        for id in self.retain(event) {
            if let Err(error) = store.delete(&key_of(id)).await {
                tracing::warn!(id, %error, "could not delete an old activation event; retrying at the next one");
                self.retained().stale.push(id);
            }
        }
    }

    /// Keeps `event` as the newest and wakes the readers; returns the ids to delete from the store.
    fn retain(&self, event: ModelEvent) -> Vec<u64> {
        let id = event.id;
        let doomed = {
            let mut retained = self.retained();
            retained.next_id = id + 1;
            retained.events.push_back(event);
            let surplus = retained.events.len().saturating_sub(KEEP_EVENTS);
            let dropped: Vec<u64> = retained.events.drain(..surplus).map(|event| event.id).collect();
            let mut doomed = std::mem::take(&mut retained.stale);
            doomed.extend(dropped);
            doomed
        };
        self.latest.send_replace(id);
        doomed
    }

    /// What a reader that has seen every event up to `after` gets next: the retained events
    /// after it, with a [`Gap`] if some of those were dropped. A new reader (`None`, or an id
    /// this log never reached, which is another log's) gets the newest `fresh` events.
    pub fn replay(&self, after: Option<u64>, fresh: usize) -> Backlog {
        let retained = self.retained();
        let (events, through) = (&retained.events, retained.next_id - 1);
        let (gap, skip) = match after.filter(|after| *after <= through) {
            Some(after) => {
                let oldest = events.front().map_or(through + 1, |event| event.id);
                let gap = (oldest > after + 1).then_some(Gap { after, oldest });
                (gap, events.partition_point(|event| event.id <= after))
            }
            None => (None, events.len().saturating_sub(fresh)),
        };
        Backlog { gap, events: events.range(skip..).cloned().collect(), through }
    }

    /// A reader's wake-up for the events recorded from now on.
    pub fn subscribe(&self) -> Wakeup {
        Wakeup { changes: self.latest.subscribe(), closed: self.closed.clone() }
    }

    /// Ends every reader's wait: the server is stopping.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// The time since the newest retained event, if there is one.
    pub fn since_latest(&self) -> Option<Duration> {
        let at = self.retained().events.back()?.at.clone();
        since_rfc3339(&at)
    }

    /// The activation counters this log records into.
    pub fn metrics(&self) -> &ActivationMetrics {
        &self.metrics
    }

    fn retained(&self) -> MutexGuard<'_, Retained> {
        self.retained.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wakes one reader when an event is recorded.
pub struct Wakeup {
    changes: watch::Receiver<u64>,
    closed: CancellationToken,
}

impl Wakeup {
    /// Waits until an event is recorded after the last wake-up; `false` once the log is closed.
    pub async fn recorded(&mut self) -> bool {
        tokio::select! {
            changed = self.changes.changed() => changed.is_ok(),
            () = self.closed.cancelled() => false,
        }
    }
}

/// Stores `event` create-only, under the next free id when another process took its own. A
/// failure is logged, and the event keeps the id it was to have.
async fn store_event(store: &dyn Storage, mut event: ModelEvent) -> ModelEvent {
    for _ in 0..ID_ATTEMPTS {
        let json = serde_json::to_vec(&event).expect("an event serialises");
        match store.put(&key_of(event.id), json.into(), PutMode::Create).await {
            Ok(_) => return event,
            Err(StoreError::AlreadyExists { .. }) => event.id += 1,
            Err(error) => {
                tracing::error!(id = event.id, version = event.version, %error, "the activation event could not be stored; it is announced, but will not outlive this process");
                return event;
            }
        }
    }
    tracing::error!(id = event.id, "the activation event could not be stored: every id tried was taken");
    event
}

/// A stored event, or `None` (logged) when it is gone or unreadable.
async fn read_event(store: &dyn Storage, id: u64) -> Result<Option<ModelEvent>, StoreError> {
    let Fetched::Found(object) = store.get(&key_of(id), None).await? else { return Ok(None) };
    match serde_json::from_slice::<ModelEvent>(&object.bytes) {
        Ok(event) if event.id == id => Ok(Some(event)),
        Ok(event) => {
            tracing::warn!(id, says = event.id, "a stored activation event names another id; skipping it");
            Ok(None)
        }
        Err(error) => {
            tracing::warn!(id, %error, "a stored activation event is unreadable; skipping it");
            Ok(None)
        }
    }
}

/// The key of an event: its id in 20 digits, so that keys order as ids.
fn key_of(id: u64) -> Key {
    Key::new(format!("{EVENTS}/{id:020}.json")).expect("an event key is valid")
}

/// The id of an event's key, if `key` is one.
fn id_of(key: &Key) -> Option<u64> {
    key.as_str().strip_prefix(EVENTS)?.strip_prefix('/')?.strip_suffix(".json")?.parse().ok()
}
