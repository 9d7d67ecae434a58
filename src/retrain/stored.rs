//! What the retrainer keeps on the store, so that a restart neither forgets the triggers set at
//! run time nor replays or skips a schedule: the set as written, each trigger's status (when it
//! was set, the time it last ran for, its last job and outcome, its counts), and the dataset
//! position of the last training, from which a rows condition counts. One object, `triggers.json`,
//! replaced whole.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::storage::{Fetched, Key, PutMode, Storage, StoreError};
use crate::units::{from_millis, millis};

/// The key of the object.
const KEY: &str = "triggers.json";

/// The whole object.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stored {
    /// The set as written, `{"triggers": [...]}`.
    pub set: Value,
    pub status: BTreeMap<String, Status>,
    pub mark: Mark,
}

/// One trigger's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// When the trigger was set, or the time its schedule last ran for (milliseconds since 1970).
    pub anchor_ms: i64,
    pub last_fired_ms: Option<i64>,
    pub last_scheduled_for_ms: Option<i64>,
    pub job: Option<u64>,
    pub outcome: Option<String>,
    pub fired: u64,
    pub merged: u64,
}

impl Status {
    pub fn new(now: OffsetDateTime) -> Self {
        Self {
            anchor_ms: millis(now),
            last_fired_ms: None,
            last_scheduled_for_ms: None,
            job: None,
            outcome: None,
            fired: 0,
            merged: 0,
        }
    }

    pub fn anchor(&self) -> OffsetDateTime {
        from_millis(self.anchor_ms)
    }
}

/// Where the dataset stood when the last training started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub generation: u64,
    pub next_seq: u64,
}

/// The stored object, if there is one; an unreadable one is reported, not used.
pub async fn load(store: &dyn Storage) -> Result<Option<Stored>, String> {
    let key = key();
    match store.get(&key, None).await.map_err(|error| error.to_string())? {
        Fetched::Found(object) => serde_json::from_slice(&object.bytes)
            .map(Some)
            .map_err(|error| format!("{KEY} on the store is not a trigger set: {error}")),
        Fetched::Missing | Fetched::NotModified => Ok(None),
    }
}

pub async fn save(store: &dyn Storage, stored: &Stored) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec_pretty(stored).expect("the trigger state serialises");
    store.put(&key(), bytes.into(), PutMode::Overwrite).await.map(|_| ())
}

fn key() -> Key {
    Key::new(KEY).expect("a valid key")
}
