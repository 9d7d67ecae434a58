//! The version list as `GET /v1/models` shows it: a summary of each stored version, or why its
//! file cannot be read; and which versions pruning removes.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{Metrics, Model};
use crate::train::Solver;

/// One line of the version list: a stored version, or one whose file cannot be read.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum VersionListing {
    Readable(VersionSummary),
    Unreadable(UnreadableVersion),
}

/// A stored version, as the version list shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UnreadableVersion {
    pub version: u64,
    pub active: bool,
    pub error: String,
}

impl VersionListing {
    pub fn of(model: &Model) -> Self {
        Self::Readable(VersionSummary {
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
        })
    }

    pub fn unreadable(version: u64, error: String) -> Self {
        Self::Unreadable(UnreadableVersion { version, active: false, error })
    }

    pub fn version(&self) -> u64 {
        match self {
            Self::Readable(summary) => summary.version,
            Self::Unreadable(unreadable) => unreadable.version,
        }
    }

    fn active_mut(&mut self) -> &mut bool {
        match self {
            Self::Readable(summary) => &mut summary.active,
            Self::Unreadable(unreadable) => &mut unreadable.active,
        }
    }

    pub fn is_active(&self) -> bool {
        match self {
            Self::Readable(summary) => summary.active,
            Self::Unreadable(unreadable) => unreadable.active,
        }
    }
}

/// Marks `version` (and only it) active in the listing; `None` marks none.
pub fn mark_active(versions: &mut BTreeMap<u64, VersionListing>, version: Option<u64>) {
    for (number, listing) in versions.iter_mut() {
        *listing.active_mut() = Some(*number) == version;
    }
}

/// The oldest readable versions beyond `keep`, never the active one: those to prune.
pub fn surplus(versions: &BTreeMap<u64, VersionListing>, keep: usize) -> Vec<u64> {
    let readable: Vec<&VersionSummary> = versions
        .values()
        .filter_map(|listing| match listing {
            VersionListing::Readable(summary) => Some(summary),
            VersionListing::Unreadable(_) => None,
        })
        .collect();
    let surplus = readable.len().saturating_sub(keep);
    readable.iter().filter(|summary| !summary.active).map(|summary| summary.version).take(surplus).collect()
}
