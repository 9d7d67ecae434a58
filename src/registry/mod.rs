//! Model versions on the store: every successful training is stored as an immutable, numbered
//! model object, one of them is active (served), and the active one survives restarts.
//!
//! Keys: `models/v000001.json` ... (created once, never replaced: a number another process took
//! first is skipped) and `models/active`, the [`Pointer`] naming the active version and the
//! SHA-256 of its file. The pointer is only ever replaced by a compare-and-swap on the version
//! this process last saw, so two processes can never silently overwrite each other's
//! activation: the one that loses gets [`RegistryError::Conflict`] and serves the winner.
//! `models/events/00000000000000000001.json` ... (the id in 20 digits; created once, the newest
//! [`events::KEEP_EVENTS`] kept) each hold one [`ModelEvent`]: a version that became active, and
//! why ([`events`]).
//!
//! A version is checked before it is served: the hash the pointer names matches its file, the
//! file is a consistent, finite model, and a smoke prediction gives a finite number. One that
//! fails (damaged, edited by hand, half-written) never keeps the server from starting: it is
//! logged, listed as unreadable and reported as a problem, and never served. When the active
//! version is such a one, nothing is served until another version is activated or trained:
//! serving some other model instead would be serving the wrong one.

mod cache;
pub mod events;
mod follow;
mod listing;
mod pointer;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

pub use cache::ModelCache;
pub use events::{Activation, EventLog, GateScores, ModelEvent, Reason};
pub use follow::Followed;
pub use listing::{UnreadableVersion, VersionListing, VersionSummary};
pub use pointer::Pointer;

use self::listing::{mark_active, surplus};
use crate::model::Model;
use crate::model::file::{self, ModelFileError};
use crate::storage::{Fetched, Key, PutMode, Storage, StoreError, Tag};

/// The key prefix of the model versions.
const MODELS: &str = "models";
/// The key of the active-model pointer.
const POINTER: &str = "models/active";
/// How many taken version numbers a commit skips before it gives up.
const NUMBER_ATTEMPTS: u64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("model version {0} does not exist")]
    NotFound(u64),
    #[error("model version {version} is unreadable: {reason}")]
    Corrupt { version: u64, reason: String },
    /// A version found unreadable when the store was opened.
    #[error("{0}")]
    Unreadable(String),
    #[error("the model cannot be stored: {0}")]
    Unstorable(ModelFileError),
    #[error(
        "another process changed the active model first: it is now version {}; version {wanted} was not activated",
        now.map_or_else(|| "none".to_owned(), |now| now.to_string())
    )]
    Conflict { now: Option<u64>, wanted: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The stored versions and the active model.
pub struct Registry {
    store: Arc<dyn Storage>,
    keep: usize,
    active: RwLock<Option<Arc<Model>>>,
    index: Mutex<Index>,
    /// Serialises this process's changes, each a few store operations long.
    changes: tokio::sync::Mutex<()>,
    events: EventLog,
}

#[derive(Default)]
struct Index {
    versions: BTreeMap<u64, VersionListing>,
    /// The pointer's version as this process last read or wrote it: what a change swaps.
    pointer: Option<Tag>,
    /// Why nothing is served although a version is named active, until another is activated.
    active_unavailable: Option<String>,
    /// Why the version the pointer names now is not served (by a follower, which serves the
    /// last good one meanwhile), until a version is served again.
    refused: Option<String>,
}

impl Registry {
    /// Reads the stored versions and loads the active one, skipping (and reporting) those that
    /// cannot be read. Keeps at most `keep` versions. Fails only when the store does not answer.
    pub async fn open(store: Arc<dyn Storage>, keep: usize) -> Result<Self, RegistryError> {
        let mut registry = Self::unread(store, keep, None);
        let listing = registry.store.list(&Key::fixed(MODELS)).await?;
        registry.events = EventLog::load(registry.store.as_ref(), &listing).await?;
        for listed in listing {
            let Some(version) = version_of(&listed.key) else { continue };
            let listing = match registry.read(version).await {
                Ok(model) => VersionListing::of(&model),
                Err(RegistryError::Store(error)) => return Err(error.into()),
                Err(error) => {
                    tracing::error!(version, %error, "a stored model version is unreadable; skipping it");
                    VersionListing::unreadable(version, error.to_string())
                }
            };
            registry.index().versions.insert(version, listing);
        }
        registry.load_active().await?;
        Ok(registry)
    }

    /// The registry of a node that could not read the store at startup: it serves `cached`
    /// (the last good model this node served, if it kept one) until the store answers and
    /// [`Registry::follow`] catches up. Its version list holds only what it has served.
    pub fn unread(store: Arc<dyn Storage>, keep: usize, cached: Option<Model>) -> Self {
        let registry = Self {
            store,
            keep: keep.max(1),
            active: RwLock::new(None),
            index: Mutex::new(Index::default()),
            changes: tokio::sync::Mutex::new(()),
            events: EventLog::default(),
        };
        if let Some(model) = cached {
            registry.set_active(Arc::new(model));
        }
        registry
    }

    /// The store the versions are kept in.
    pub fn store(&self) -> &Arc<dyn Storage> {
        &self.store
    }

    /// The activations, as events.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// The model being served.
    pub fn active(&self) -> Option<Arc<Model>> {
        self.active.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Why no model is served although one is named active, if that is the case.
    pub fn active_unavailable(&self) -> Option<String> {
        self.index().active_unavailable.clone()
    }

    /// What is wrong with the stored versions: each unreadable one, and an active version that
    /// cannot be served.
    pub fn problems(&self) -> Vec<String> {
        let index = self.index();
        let unreadable = index.versions.values().filter_map(|listing| match listing {
            VersionListing::Unreadable(version) => Some(format!(
                "model version {} is unreadable and skipped: {}",
                version.version, version.error
            )),
            VersionListing::Readable(_) => None,
        });
        unreadable.chain(index.active_unavailable.clone()).chain(index.refused.clone()).collect()
    }

    /// Stores `model` as the next version. With an `activation`, also makes it active and
    /// records why; without, it is only stored (a candidate that was not let into service).
    pub async fn commit(
        &self,
        model: Model,
        activation: Option<Activation>,
    ) -> Result<Arc<Model>, RegistryError> {
        let _change = self.changes.lock().await;
        // Unreadable versions keep their numbers: a new version never overwrites one.
        let first = self.index().versions.keys().next_back().map_or(1, |latest| latest + 1);
        let mut model = model;
        for version in first..first + NUMBER_ATTEMPTS {
            model = model.with_version(version);
            let json = file::to_json(&model, false).map_err(RegistryError::Unstorable)?;
            let sha256 = crate::digest::sha256_hex(&json);
            match self.store.put(&key_of(version), json.into(), PutMode::Create).await {
                Ok(_) => {
                    self.index().versions.insert(version, VersionListing::of(&model));
                    let model = Arc::new(model);
                    if let Some(activation) = activation {
                        self.point_to(model.clone(), sha256, activation).await?;
                    }
                    self.prune().await;
                    return Ok(model);
                }
                // Another process stored this number first: take the next one.
                Err(StoreError::AlreadyExists { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(RegistryError::Unstorable(ModelFileError::Inconsistent(format!(
            "model versions {first} to {} are all taken",
            first + NUMBER_ATTEMPTS - 1
        ))))
    }

    /// Makes a stored version the active one (a rollback or roll-forward) and records why.
    pub async fn activate(&self, version: u64, activation: Activation) -> Result<Arc<Model>, RegistryError> {
        let _change = self.changes.lock().await;
        if let Some(VersionListing::Unreadable(unreadable)) = self.index().versions.get(&version) {
            return Err(RegistryError::Unreadable(unreadable.error.clone()));
        }
        let (model, sha256) = self.read_checked(version, None).await?;
        self.point_to(Arc::new(model), sha256, activation).await?;
        Ok(self.active().expect("just activated"))
    }

    /// One stored version.
    pub async fn get(&self, version: u64) -> Result<Model, RegistryError> {
        if let Some(VersionListing::Unreadable(unreadable)) = self.index().versions.get(&version) {
            return Err(RegistryError::Unreadable(unreadable.error.clone()));
        }
        self.read(version).await
    }

    /// The highest job number among the stored versions, so new job ids never repeat one. An
    /// unreadable version hides its job's number, but each version comes from a later job than
    /// the one before, so its own number bounds that job's from below.
    pub fn last_job(&self) -> u64 {
        let index = self.index();
        let jobs = index.versions.iter().map(|(version, listing)| match listing {
            VersionListing::Readable(summary) => summary.job,
            VersionListing::Unreadable(_) => *version,
        });
        jobs.max().unwrap_or(0)
    }

    /// The stored versions, newest first.
    pub fn list(&self) -> Vec<VersionListing> {
        self.index().versions.values().rev().cloned().collect()
    }

    /// Reads the pointer and serves what it names, or records why that cannot be served.
    async fn load_active(&self) -> Result<(), StoreError> {
        let problem = match self.store.get(&Key::fixed(POINTER), None).await? {
            Fetched::Missing | Fetched::NotModified => return Ok(()),
            Fetched::Found(object) => {
                self.index().pointer = Some(object.tag);
                match Pointer::parse(&object.bytes) {
                    Ok(pointer) => {
                        match self.read_checked(pointer.version, pointer.sha256.as_deref()).await {
                            Ok((model, _)) => {
                                self.set_active(Arc::new(model));
                                return Ok(());
                            }
                            Err(RegistryError::Store(error)) => return Err(error),
                            Err(error) => {
                                mark_active(&mut self.index().versions, Some(pointer.version));
                                format!(
                                    "the active model version {} cannot be served: {error}; activate another version",
                                    pointer.version
                                )
                            }
                        }
                    }
                    Err(reason) => {
                        format!(
                            "the active-model pointer {POINTER} is unreadable: {reason}; activate a version to serve one"
                        )
                    }
                }
            }
        };
        tracing::error!(%problem, "no model is served");
        self.index().active_unavailable = Some(problem);
        Ok(())
    }

    /// Swaps the pointer to `model` if nobody else moved it since this process last saw it, and
    /// records the activation; otherwise serves whatever the pointer names now and reports the
    /// conflict.
    async fn point_to(
        &self,
        model: Arc<Model>,
        sha256: String,
        activation: Activation,
    ) -> Result<(), RegistryError> {
        let pointer = Pointer { version: model.version(), sha256: Some(sha256) };
        let previous = self.active().map(|served| served.version());
        let mode = match self.index().pointer.clone() {
            Some(tag) => PutMode::Update(tag),
            None => PutMode::Create,
        };
        match self.store.put(&Key::fixed(POINTER), pointer.to_bytes(), mode).await {
            Ok(tag) => {
                self.index().pointer = Some(tag);
                self.set_active(model);
                self.events.record(self.store.as_ref(), pointer.version, previous, activation).await;
                Ok(())
            }
            Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => {
                self.index().active_unavailable = None;
                self.load_active().await?;
                let now = self.active().map(|model| model.version());
                tracing::warn!(wanted = pointer.version, ?now, "another process activated a model first");
                Err(RegistryError::Conflict { now, wanted: pointer.version })
            }
            Err(error) => Err(error.into()),
        }
    }

    fn set_active(&self, model: Arc<Model>) {
        let mut index = self.index();
        index.versions.entry(model.version()).or_insert_with(|| VersionListing::of(&model));
        mark_active(&mut index.versions, Some(model.version()));
        index.active_unavailable = None;
        index.refused = None;
        *self.active.write().unwrap_or_else(PoisonError::into_inner) = Some(model);
    }

    /// Deletes the oldest readable versions beyond `keep`, never the active one.
    async fn prune(&self) {
        let doomed = surplus(&self.index().versions, self.keep);
        for version in doomed {
            match self.store.delete(&key_of(version)).await {
                Ok(()) => {
                    self.index().versions.remove(&version);
                }
                Err(error) => tracing::warn!(version, %error, "could not prune an old model version"),
            }
        }
    }

    /// Reads a version and checks it for serving: the hash the pointer names (if any) and a
    /// smoke prediction. Returns it with the hash of its file.
    async fn read_checked(
        &self,
        version: u64,
        expected_sha256: Option<&str>,
    ) -> Result<(Model, String), RegistryError> {
        let bytes = self.read_bytes(version).await?;
        let sha256 = crate::digest::sha256_hex(&bytes);
        let corrupt = |reason: String| RegistryError::Corrupt { version, reason };
        if let Some(expected) = expected_sha256.filter(|expected| *expected != sha256) {
            return Err(corrupt(format!(
                "its SHA-256 is {sha256}, not the {expected} the active-model pointer names (damaged or half-written)"
            )));
        }
        let model = parse_version(version, &bytes)?;
        let ones = vec![1.0; model.features().len()];
        match model.predict([ones.as_slice()]) {
            Ok(values) if values.iter().all(|value| value.is_finite()) => Ok((model, sha256)),
            _ => Err(corrupt("a prediction on a row of ones is not a finite number".into())),
        }
    }

    async fn read(&self, version: u64) -> Result<Model, RegistryError> {
        parse_version(version, &self.read_bytes(version).await?)
    }

    async fn read_bytes(&self, version: u64) -> Result<bytes::Bytes, RegistryError> {
        match self.store.get(&key_of(version), None).await? {
            Fetched::Found(object) => Ok(object.bytes),
            // Listed, so it was stored: its file went missing behind this server's back.
            Fetched::Missing | Fetched::NotModified if self.index().versions.contains_key(&version) => {
                Err(RegistryError::Corrupt { version, reason: "its file is missing from the store".into() })
            }
            Fetched::Missing | Fetched::NotModified => Err(RegistryError::NotFound(version)),
        }
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The key of a version's model file.
fn key_of(version: u64) -> Key {
    Key::new(format!("{MODELS}/v{version:06}.json")).expect("a version key is valid")
}

/// The version a key under `models/` holds, if it is a model file's.
fn version_of(key: &Key) -> Option<u64> {
    key.name().strip_prefix('v')?.strip_suffix(".json")?.parse().ok()
}

fn parse_version(version: u64, bytes: &[u8]) -> Result<Model, RegistryError> {
    let model = file::from_json(bytes)
        .map_err(|error| RegistryError::Corrupt { version, reason: error.to_string() })?;
    match model.version() == version {
        true => Ok(model),
        false => Err(RegistryError::Corrupt {
            version,
            reason: format!("the file says it is version {}", model.version()),
        }),
    }
}

#[cfg(test)]
mod tests;
