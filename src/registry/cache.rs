//! The last good model on local disk (`--cache-dir`), for a node that follows a store: written
//! each time it serves a new version, read at startup when the store cannot be reached, so that a
//! restart during an outage still serves.

use std::path::PathBuf;

use crate::model::Model;
use crate::model::file;
use crate::storage::local::LocalStore;
use crate::storage::{Fetched, Key, PutMode, Storage, StoreError};

/// The key of the cached model in the cache directory.
const CACHED: &str = "model.json";

pub struct ModelCache {
    dir: LocalStore,
}

impl ModelCache {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Ok(Self { dir: LocalStore::open(dir)? })
    }

    /// Keeps `model` as the last good one (durably: a crash leaves the old one or this one).
    pub async fn save(&self, model: &Model) {
        let json = match file::to_json(model, false) {
            Ok(json) => json,
            Err(error) => return tracing::warn!(%error, "the served model cannot be cached"),
        };
        if let Err(error) = self.dir.put(&Key::fixed(CACHED), json.into(), PutMode::Overwrite).await {
            tracing::warn!(%error, "could not cache the served model on local disk");
        }
    }

    /// The last good model, if one was cached and is still readable.
    pub async fn load(&self) -> Option<Model> {
        let bytes = match self.dir.get(&Key::fixed(CACHED), None).await {
            Ok(Fetched::Found(object)) => object.bytes,
            Ok(_) => return None,
            Err(error) => {
                tracing::warn!(%error, "could not read the cached model");
                return None;
            }
        };
        match file::from_json(&bytes) {
            Ok(model) => Some(model),
            Err(error) => {
                tracing::warn!(%error, "the cached model is unreadable; ignoring it");
                None
            }
        }
    }
}
