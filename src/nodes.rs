//! Node status, watchable live. Every node writes a small heartbeat to the store,
//! `nodes/<id>.json`, every `--heartbeat-interval`: its role, address, served version, uptime,
//! requests per second and last error ([`Beater`]), and a last one marked stopped when it shuts
//! down. [`Directory`] reads them all back for `GET /v1/nodes`, with the age of each: a node
//! whose heartbeat is older than three of its intervals shows as lost.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;
use crate::storage::{Fetched, Key, PutMode, Storage, StoreError};

/// The key prefix of the heartbeats.
const NODES: &str = "nodes";
/// Heartbeats missed before a node shows as lost.
const MISSED_FOR_LOST: u32 = 3;
/// How long a listing of the nodes is reused: the page of every operator polls it.
const LISTING_REUSED_FOR: Duration = Duration::from_secs(1);
/// Longest wait for the last heartbeat at shutdown.
const LAST_BEAT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a node says of itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Heartbeat {
    pub id: String,
    pub role: String,
    /// Where the node answers, as it was told to advertise itself.
    pub address: String,
    pub model_version: Option<u64>,
    pub started_at: String,
    pub uptime_seconds: f64,
    pub requests_per_second: f64,
    /// The store's last error while it does not answer, or the first problem `/healthz` names.
    pub last_error: Option<String>,
    pub written_at: String,
    pub interval_seconds: f64,
    #[serde(default)]
    pub stopped: bool,
}

/// A heartbeat as `GET /v1/nodes` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeStatus {
    #[serde(flatten)]
    pub heartbeat: Heartbeat,
    pub age_seconds: f64,
    /// `up`, `lost` (no heartbeat for three intervals) or `stopped` (shut down cleanly).
    pub state: &'static str,
}

impl NodeStatus {
    fn of(heartbeat: Heartbeat, now: OffsetDateTime) -> Self {
        let written =
            crate::units::parse_rfc3339(&heartbeat.written_at).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let age_seconds = ((now - written).as_seconds_f64().max(0.0) * 10.0).round() / 10.0;
        let state = match (
            heartbeat.stopped,
            age_seconds > heartbeat.interval_seconds * f64::from(MISSED_FOR_LOST),
        ) {
            (true, _) => "stopped",
            (false, true) => "lost",
            (false, false) => "up",
        };
        Self { heartbeat, age_seconds, state }
    }
}

/// Who this node is.
#[derive(Debug, Clone)]
pub struct Identity {
    pub id: String,
    pub address: String,
    pub interval: Duration,
}

/// Writes this node's heartbeat.
pub struct Beater {
    pub state: AppState,
    pub identity: Identity,
}

impl Beater {
    /// Beats until `stop` is cancelled, then writes a last heartbeat marked stopped.
    pub async fn run(self, stop: CancellationToken) {
        let (started, started_at) = (Instant::now(), crate::units::now_rfc3339());
        let mut answered = (Instant::now(), self.state.metrics().requests_answered());
        loop {
            let now = (Instant::now(), self.state.metrics().requests_answered());
            let elapsed = now.0.duration_since(answered.0).as_secs_f64().max(1e-3);
            let rate = (now.1 - answered.1) as f64 / elapsed;
            answered = now;
            let beat = self.heartbeat(started, &started_at, rate, stop.is_cancelled());
            if let Err(error) = self.write(&beat).await {
                tracing::debug!(%error, "could not write the heartbeat");
            }
            if beat.stopped {
                return;
            }
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(self.identity.interval) => {}
            }
        }
    }

    fn heartbeat(&self, started: Instant, started_at: &str, rate: f64, stopped: bool) -> Heartbeat {
        let state = &self.state;
        let last_error = match state.store_health().unreachable() {
            Some(outage) => Some(outage.error),
            None => state.models().problems().into_iter().next(),
        };
        Heartbeat {
            id: self.identity.id.clone(),
            role: state.role().as_str().to_owned(),
            address: self.identity.address.clone(),
            model_version: state.model().map(|model| model.version()),
            started_at: started_at.to_owned(),
            uptime_seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            requests_per_second: (rate * 10.0).round() / 10.0,
            last_error,
            written_at: crate::units::now_rfc3339(),
            interval_seconds: self.identity.interval.as_secs_f64(),
            stopped,
        }
    }

    async fn write(&self, beat: &Heartbeat) -> Result<(), StoreError> {
        let key = key_of(&self.identity.id);
        let json = serde_json::to_vec(beat).expect("a heartbeat serialises");
        let put = self.state.store().put(&key, json.into(), PutMode::Overwrite);
        match tokio::time::timeout(LAST_BEAT_TIMEOUT.max(self.identity.interval), put).await {
            Ok(result) => result.map(drop),
            Err(_) => {
                tracing::debug!("the heartbeat was not written in time");
                Ok(())
            }
        }
    }
}

/// Every node's heartbeat, read back from the store.
pub struct Directory {
    last: Mutex<Option<(Instant, Vec<Heartbeat>)>>,
}

impl Default for Directory {
    fn default() -> Self {
        Self { last: Mutex::new(None) }
    }
}

impl Directory {
    /// The nodes of `store`, by id: one listing and one read per node, reused for a second.
    pub async fn nodes(&self, store: &dyn Storage) -> Result<Vec<NodeStatus>, StoreError> {
        let reused = self.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let heartbeats = match reused {
            Some((read, heartbeats)) if read.elapsed() < LISTING_REUSED_FOR => heartbeats,
            _ => {
                let heartbeats = read_all(store).await?;
                *self.last.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now(), heartbeats.clone()));
                heartbeats
            }
        };
        let now = OffsetDateTime::now_utc();
        Ok(heartbeats.into_iter().map(|heartbeat| NodeStatus::of(heartbeat, now)).collect())
    }
}

async fn read_all(store: &dyn Storage) -> Result<Vec<Heartbeat>, StoreError> {
    let mut heartbeats = Vec::new();
    for listed in store.list(&Key::fixed(NODES)).await? {
        if let Fetched::Found(object) = store.get(&listed.key, None).await? {
            match serde_json::from_slice::<Heartbeat>(&object.bytes) {
                Ok(heartbeat) => heartbeats.push(heartbeat),
                Err(error) => tracing::debug!(key = %listed.key, %error, "skipping an unreadable heartbeat"),
            }
        }
    }
    heartbeats.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(heartbeats)
}

/// The key of a node's heartbeat; an id that is not a key component is reduced to one.
fn key_of(id: &str) -> Key {
    let safe: String = id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .collect();
    Key::new(format!("{NODES}/{safe}.json")).unwrap_or_else(|_| Key::fixed("nodes/node.json"))
}

/// The default id of a node: its host name and port.
pub fn default_id(port: u16) -> String {
    format!("{}-{port}", host_name())
}

/// This machine's host name (`node` when it has none).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "node".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat(written_at: OffsetDateTime, stopped: bool) -> Heartbeat {
        Heartbeat {
            id: "a".into(),
            role: "predictor".into(),
            address: "http://127.0.0.1:1".into(),
            model_version: Some(3),
            started_at: crate::units::now_rfc3339(),
            uptime_seconds: 1.0,
            requests_per_second: 0.0,
            last_error: None,
            written_at: crate::units::rfc3339(written_at),
            interval_seconds: 5.0,
            stopped,
        }
    }

    #[test]
    fn a_node_is_lost_after_three_missed_heartbeats() {
        let now = OffsetDateTime::now_utc();
        let seconds = time::Duration::seconds;
        assert_eq!(NodeStatus::of(heartbeat(now - seconds(14), false), now).state, "up");
        assert_eq!(NodeStatus::of(heartbeat(now - seconds(16), false), now).state, "lost");
        assert_eq!(NodeStatus::of(heartbeat(now - seconds(60), true), now).state, "stopped");
        assert_eq!(NodeStatus::of(heartbeat(now - seconds(16), false), now).age_seconds, 16.0);
    }

    #[test]
    fn ids_become_keys() {
        assert_eq!(key_of("host-5000").as_str(), "nodes/host-5000.json");
        assert_eq!(key_of("a b/c").as_str(), "nodes/a-b-c.json");
    }
}
