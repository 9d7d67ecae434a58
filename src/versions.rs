//! Model versions: every successful training is stored as an immutable, numbered model file,
//! one of them is active (served), and the active one survives restarts.
//!
//! Layout in the data directory: `models/v000001.json` ... and `models/active` holding the
//! active version number. Every file is replaced atomically (temporary file, fsync, rename),
//! and the in-memory active model changes only after its pointer is on disk, so what is served
//! is what a restart will serve.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use serde::Serialize;

use crate::data::{DataDir, DataError};
use crate::model::{Metrics, Model};
use crate::train::Solver;

const ACTIVE_FILE: &str = "active";

#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("model version {0} does not exist")]
    NotFound(u64),
    #[error("model file {path} is unreadable: {reason}")]
    Corrupt { path: String, reason: String },
    #[error(transparent)]
    Storage(#[from] DataError),
}

/// One line of the version list.
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

/// The stored versions and the active model.
pub struct ModelStore {
    dir: DataDir,
    keep: usize,
    active: RwLock<Option<Arc<Model>>>,
    /// Summaries of the stored versions; the lock also serialises every change to the store.
    index: Mutex<BTreeMap<u64, VersionSummary>>,
}

impl ModelStore {
    /// Reads the stored versions and loads the active one. Keeps at most `keep` versions.
    pub fn open(dir: DataDir, keep: usize) -> Result<Self, VersionError> {
        let mut index = BTreeMap::new();
        let entries =
            std::fs::read_dir(dir.models_dir()).map_err(DataError::storage("list stored models"))?;
        for entry in entries {
            let path = entry.map_err(DataError::storage("list stored models"))?.path();
            if let Some(version) = version_of(&path) {
                index.insert(version, summary(&read_model(&path)?));
            }
        }
        let store = Self { dir, keep: keep.max(1), active: RwLock::new(None), index: Mutex::new(index) };
        if let Some(version) = store.read_active_pointer()? {
            let model = Arc::new(read_model(&store.path_of(version))?);
            store.set_active(&mut store.index(), model);
        }
        Ok(store)
    }

    /// The model being served.
    pub fn active(&self) -> Option<Arc<Model>> {
        self.active.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Stores `model` as the next version and makes it active. Blocks on disk I/O.
    pub fn commit(&self, model: Model) -> Result<Arc<Model>, VersionError> {
        let mut index = self.index();
        let version = index.keys().next_back().map_or(1, |latest| latest + 1);
        let model = model.with_version(version);
        let json = serde_json::to_vec(&model).expect("a model serialises");
        // The pointer written next, in the same directory, flushes this file's entry too.
        self.dir.write_atomically_unflushed(&self.path_of(version), &json)?;
        index.insert(version, summary(&model));
        let model = Arc::new(model);
        self.point_to(&mut index, model.clone())?;
        self.prune(&mut index);
        Ok(model)
    }

    /// Makes a stored version the active one (a rollback or roll-forward). Blocks on disk I/O.
    pub fn activate(&self, version: u64) -> Result<Arc<Model>, VersionError> {
        let mut index = self.index();
        if !index.contains_key(&version) {
            return Err(VersionError::NotFound(version));
        }
        let model = Arc::new(read_model(&self.path_of(version))?);
        self.point_to(&mut index, model.clone())?;
        Ok(model)
    }

    /// One stored version. Blocks on disk I/O.
    pub fn get(&self, version: u64) -> Result<Model, VersionError> {
        if !self.index().contains_key(&version) {
            return Err(VersionError::NotFound(version));
        }
        read_model(&self.path_of(version))
    }

    /// The highest job number among the stored versions, so new job ids never repeat one.
    pub fn last_job(&self) -> u64 {
        self.index().values().map(|summary| summary.job).max().unwrap_or(0)
    }

    /// Summaries of the stored versions, newest first.
    pub fn list(&self) -> Vec<VersionSummary> {
        self.index().values().rev().cloned().collect()
    }

    fn point_to(
        &self,
        index: &mut BTreeMap<u64, VersionSummary>,
        model: Arc<Model>,
    ) -> Result<(), VersionError> {
        let pointer = format!("{}\n", model.version());
        self.dir.write_atomically(&self.dir.models_dir().join(ACTIVE_FILE), pointer.as_bytes())?;
        self.set_active(index, model);
        Ok(())
    }

    fn set_active(&self, index: &mut BTreeMap<u64, VersionSummary>, model: Arc<Model>) {
        for (version, summary) in index.iter_mut() {
            summary.active = *version == model.version();
        }
        *self.active.write().unwrap_or_else(PoisonError::into_inner) = Some(model);
    }

    /// Deletes the oldest versions beyond `keep`, never the active one.
    fn prune(&self, index: &mut BTreeMap<u64, VersionSummary>) {
        let surplus = index.len().saturating_sub(self.keep);
        let doomed: Vec<u64> =
            index.values().filter(|summary| !summary.active).map(|s| s.version).take(surplus).collect();
        for version in doomed {
            match std::fs::remove_file(self.path_of(version)) {
                Ok(()) => {
                    index.remove(&version);
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
                reason: format!("expected a version number, found {:?}", text.trim()),
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(DataError::Storage { action: "read the active model pointer", source }.into()),
        }
    }

    fn path_of(&self, version: u64) -> PathBuf {
        self.dir.models_dir().join(format!("v{version:06}.json"))
    }

    fn index(&self) -> MutexGuard<'_, BTreeMap<u64, VersionSummary>> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn version_of(path: &std::path::Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix('v')?.strip_suffix(".json")?.parse().ok()
}

fn read_model(path: &std::path::Path) -> Result<Model, VersionError> {
    let corrupt = |reason: String| VersionError::Corrupt { path: path.display().to_string(), reason };
    let bytes = std::fs::read(path).map_err(|error| corrupt(error.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|error| corrupt(error.to_string()))
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
