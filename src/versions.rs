//! Model versions: every successful training is stored as an immutable, numbered model file,
//! one of them is active (served), and the active one survives restarts.
//!
//! Layout in the data directory: `models/v000001.json` ... and `models/active` holding the
//! active version number. Every file is replaced atomically (temporary file, fsync, rename),
//! and the in-memory active model changes only after its pointer is on disk, so what is served
//! is what a restart will serve.
//!
//! A stored file that cannot be read as a model (damaged on disk, edited by hand) never keeps
//! the server from starting: it is logged, listed as unreadable and reported as a problem, its
//! number is never reused, and it is neither served nor pruned. When the active version is the
//! unreadable one, nothing is served until another version is activated or trained: serving
//! some other model instead would be serving the wrong one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use serde::Serialize;

use crate::data::{DataDir, DataError};
use crate::model::file::{self, ModelFileError};
use crate::model::{Metrics, Model};
use crate::train::Solver;

const ACTIVE_FILE: &str = "active";

#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("model version {0} does not exist")]
    NotFound(u64),
    #[error("model file {path} is unreadable: {reason}")]
    Corrupt { path: String, reason: String },
    /// A version found unreadable when the store was opened.
    #[error("{0}")]
    Unreadable(String),
    #[error("the model cannot be stored: {0}")]
    Unstorable(ModelFileError),
    #[error(transparent)]
    Storage(#[from] DataError),
}

/// One line of the version list: a stored version, or one whose file cannot be read.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum VersionListing {
    Readable(VersionSummary),
    Unreadable(UnreadableVersion),
}

/// A stored version, as the version list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionSummary {
    pub version: u64,
    pub active: bool,
    pub trained_at: String,
    pub features: Vec<String>,
    pub target: String,
    pub solver: Solver,
    /// The training job that produced the version.
    pub job: u64,
    pub epochs_run: usize,
    #[serde(flatten)]
    pub metrics: Metrics,
    pub dataset_sha256: String,
}

/// A version whose file cannot be read, and why.
#[derive(Debug, Clone, Serialize)]
pub struct UnreadableVersion {
    pub version: u64,
    pub active: bool,
    pub error: String,
}

/// The stored versions and the active model.
pub struct ModelStore {
    dir: DataDir,
    keep: usize,
    active: RwLock<Option<Arc<Model>>>,
    /// The stored versions; the lock also serialises every change to the store.
    index: Mutex<Index>,
}

#[derive(Default)]
struct Index {
    versions: BTreeMap<u64, VersionListing>,
    /// Why nothing is served although a version is named active (its file or the pointer is
    /// unreadable), until another version is activated.
    active_unavailable: Option<String>,
}

impl ModelStore {
    /// Reads the stored versions and loads the active one, skipping (and reporting) those that
    /// cannot be read. Keeps at most `keep` versions. Fails only when the directory cannot be
    /// listed.
    pub fn open(dir: DataDir, keep: usize) -> Result<Self, VersionError> {
        let mut versions = BTreeMap::new();
        let entries =
            std::fs::read_dir(dir.models_dir()).map_err(DataError::storage("list stored models"))?;
        for entry in entries {
            let path = entry.map_err(DataError::storage("list stored models"))?.path();
            if let Some(version) = version_of(&path) {
                let listing = match read_model(&path) {
                    Ok(model) => VersionListing::Readable(summary(&model)),
                    Err(error) => {
                        tracing::error!(version, %error, "a stored model version is unreadable; skipping it");
                        VersionListing::Unreadable(UnreadableVersion {
                            version,
                            active: false,
                            error: error.to_string(),
                        })
                    }
                };
                versions.insert(version, listing);
            }
        }
        let store = Self {
            dir,
            keep: keep.max(1),
            active: RwLock::new(None),
            index: Mutex::new(Index { versions, active_unavailable: None }),
        };
        store.load_active();
        Ok(store)
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
        unreadable.chain(index.active_unavailable.clone()).collect()
    }

    /// Stores `model` as the next version and makes it active. Blocks on disk I/O.
    pub fn commit(&self, model: Model) -> Result<Arc<Model>, VersionError> {
        let mut index = self.index();
        // Unreadable versions keep their numbers: a new version never overwrites one.
        let version = index.versions.keys().next_back().map_or(1, |latest| latest + 1);
        let model = model.with_version(version);
        let json = file::to_json(&model, false).map_err(VersionError::Unstorable)?;
        // The pointer written next, in the same directory, flushes this file's entry too.
        self.dir.write_atomically_unflushed(&self.path_of(version), &json)?;
        index.versions.insert(version, VersionListing::Readable(summary(&model)));
        let model = Arc::new(model);
        self.point_to(&mut index, model.clone())?;
        self.prune(&mut index);
        Ok(model)
    }

    /// Makes a stored version the active one (a rollback or roll-forward). Blocks on disk I/O.
    pub fn activate(&self, version: u64) -> Result<Arc<Model>, VersionError> {
        let mut index = self.index();
        let model = Arc::new(self.read_listed(&index, version)?);
        self.point_to(&mut index, model.clone())?;
        Ok(model)
    }

    /// One stored version. Blocks on disk I/O.
    pub fn get(&self, version: u64) -> Result<Model, VersionError> {
        self.read_listed(&self.index(), version)
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

    /// Reads a version the index lists as readable.
    fn read_listed(&self, index: &Index, version: u64) -> Result<Model, VersionError> {
        match index.versions.get(&version) {
            None => Err(VersionError::NotFound(version)),
            Some(VersionListing::Unreadable(unreadable)) => {
                Err(VersionError::Unreadable(unreadable.error.clone()))
            }
            Some(VersionListing::Readable(_)) => read_model(&self.path_of(version)),
        }
    }

    /// Loads the version the pointer names, or records why it cannot be served.
    fn load_active(&self) {
        let mut index = self.index();
        let problem = match self.read_active_pointer() {
            Ok(None) => return,
            Ok(Some(version)) => match self.read_listed(&index, version) {
                Ok(model) => return self.set_active(&mut index, Arc::new(model)),
                Err(error) => {
                    mark_active(&mut index.versions, version);
                    format!(
                        "the active model version {version} cannot be served: {error}; activate another version"
                    )
                }
            },
            Err(error) => format!("{error}; activate a version to serve one"),
        };
        tracing::error!(%problem, "no model is served");
        index.active_unavailable = Some(problem);
    }

    fn point_to(&self, index: &mut Index, model: Arc<Model>) -> Result<(), VersionError> {
        let pointer = format!("{}\n", model.version());
        self.dir.write_atomically(&self.dir.models_dir().join(ACTIVE_FILE), pointer.as_bytes())?;
        self.set_active(index, model);
        Ok(())
    }

    fn set_active(&self, index: &mut Index, model: Arc<Model>) {
        mark_active(&mut index.versions, model.version());
        index.active_unavailable = None;
        *self.active.write().unwrap_or_else(PoisonError::into_inner) = Some(model);
    }

    /// Deletes the oldest readable versions beyond `keep`, never the active one.
    fn prune(&self, index: &mut Index) {
        let readable: Vec<&VersionSummary> = index
            .versions
            .values()
            .filter_map(|listing| match listing {
                VersionListing::Readable(summary) => Some(summary),
                VersionListing::Unreadable(_) => None,
            })
            .collect();
        let surplus = readable.len().saturating_sub(self.keep);
        let doomed: Vec<u64> =
            readable.iter().filter(|summary| !summary.active).map(|s| s.version).take(surplus).collect();
        for version in doomed {
            match std::fs::remove_file(self.path_of(version)) {
                Ok(()) => {
                    index.versions.remove(&version);
                }
                Err(error) => tracing::warn!(version, %error, "could not prune an old model version"),
            }
        }
    }

    fn read_active_pointer(&self) -> Result<Option<u64>, VersionError> {
        let path = self.dir.models_dir().join(ACTIVE_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map(Some).map_err(|_| VersionError::Corrupt {
                path: path.display().to_string(),
                reason: format!("expected a version number, found {:?}", crate::data::excerpt(text.trim())),
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(DataError::Storage { action: "read the active model pointer", source }.into()),
        }
    }

    fn path_of(&self, version: u64) -> PathBuf {
        self.dir.models_dir().join(format!("v{version:06}.json"))
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Marks `version` (and only it) active in the listing.
fn mark_active(versions: &mut BTreeMap<u64, VersionListing>, version: u64) {
    for (number, listing) in versions.iter_mut() {
        let active = match listing {
            VersionListing::Readable(summary) => &mut summary.active,
            VersionListing::Unreadable(unreadable) => &mut unreadable.active,
        };
        *active = *number == version;
    }
}

fn version_of(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix('v')?.strip_suffix(".json")?.parse().ok()
}

fn read_model(path: &Path) -> Result<Model, VersionError> {
    let corrupt = |reason: String| VersionError::Corrupt { path: path.display().to_string(), reason };
    let bytes = std::fs::read(path).map_err(|error| corrupt(error.to_string()))?;
    file::from_json(&bytes).map_err(|error| corrupt(error.to_string()))
}

fn summary(model: &Model) -> VersionSummary {
    VersionSummary {
        version: model.version(),
        active: false,
        trained_at: model.trained_at().to_owned(),
        features: model.features().to_vec(),
        target: model.target().to_owned(),
        solver: model.params().solver(),
        job: model.job(),
        epochs_run: model.history().len(),
        metrics: *model.metrics(),
        dataset_sha256: model.dataset_sha256().to_owned(),
    }
}
