//! The head of the dataset, the object `dataset.json`: which generation is current, what its
//! base rows are (an uploaded file, the built-in sample, or none), the sequence number of its
//! first row, and the Kafka positions consumed before it began. An upload or a reset starts a
//! new generation by replacing the head; segments of other generations are then stale.
//!
//! A store written before heads existed has none: its `dataset.csv`, or the built-in sample,
//! is generation 0.

use serde::{Deserialize, Serialize};

use super::segment::KafkaOffsets;
use crate::storage::{Fetched, Key, PutMode, Storage, StoreError};

/// The key of the head.
const HEAD: &str = "dataset.json";

/// What a generation starts with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BaseKind {
    /// The built-in sample.
    Builtin,
    /// The uploaded file `dataset.csv`, whose SHA-256 this is.
    File { sha256: String },
    /// No rows: the first appended batch defines the columns.
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub generation: u64,
    pub base: BaseKind,
    /// The sequence number of the base's first row (the next one after the last generation's).
    pub first_seq: u64,
    /// When the generation began, in milliseconds since 1970.
    pub created_ms: i64,
    #[serde(default, skip_serializing_if = "KafkaOffsets::is_empty")]
    pub kafka: KafkaOffsets,
}

impl Head {
    /// The stored head, if any.
    pub async fn read(store: &dyn Storage) -> Result<Option<Self>, StoreError> {
        let key = Key::fixed(HEAD);
        match store.get(&key, None).await? {
            Fetched::Found(object) => {
                serde_json::from_slice(&object.bytes).map(Some).map_err(|error| StoreError::Unavailable {
                    store: store.name().to_owned(),
                    action: "read",
                    key: HEAD.to_owned(),
                    reason: format!("it is not a dataset head: {error}"),
                })
            }
            Fetched::NotModified | Fetched::Missing => Ok(None),
        }
    }

    /// Stores this head, replacing the one before.
    pub async fn write(&self, store: &dyn Storage) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(self).expect("a head serialises");
        store.put(&Key::fixed(HEAD), bytes.into(), PutMode::Overwrite).await.map(drop)
    }
}

/// Milliseconds since 1970, now.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}
