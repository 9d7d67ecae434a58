//! Following the active model that another process (the trainer) chooses: each look is one
//! conditional read of the pointer, never a listing; only when the pointer moved is the version
//! it names read, checked and served. A version that fails the checks is reported and never
//! served: the last good model stays in service meanwhile.

use std::sync::Arc;

use super::{POINTER, Pointer, Registry, RegistryError};
use crate::model::Model;
use crate::storage::{Fetched, Key, StoreError};

/// What one look at the pointer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// The pointer is as last seen (or there is none yet).
    Unchanged,
    /// The pointer moved, and this version is now served.
    Serving(u64),
    /// The pointer names a version that cannot be served; the reason is among the problems.
    Refused(String),
}

impl Registry {
    /// Looks at the pointer once and serves what it names if it moved. An error means the
    /// store did not answer; nothing changed then.
    pub async fn follow(&self) -> Result<Followed, StoreError> {
        let seen = self.index().pointer.clone();
        let object = match self.store.get(&Key::fixed(POINTER), seen.as_ref()).await? {
            Fetched::NotModified | Fetched::Missing => return Ok(Followed::Unchanged),
            Fetched::Found(object) => object,
        };
        let pointer = match Pointer::parse(&object.bytes) {
            Ok(pointer) => pointer,
            Err(reason) => {
                return Ok(self.refuse(format!("the active-model pointer {POINTER} is unreadable: {reason}")));
            }
        };
        let version = pointer.version;
        match self.read_checked(version, pointer.sha256.as_deref()).await {
            Ok((model, _)) => {
                self.index().pointer = Some(object.tag);
                self.serve_followed(Arc::new(model));
                Ok(Followed::Serving(version))
            }
            Err(RegistryError::Store(error)) => Err(error),
            // The pointer is left as unseen, so the next look tries again: a version that
            // another store replica has not caught up with yet is served once it has.
            Err(error) => {
                Ok(self.refuse(format!("the active model version {version} cannot be served: {error}")))
            }
        }
    }

    /// Serves a model that another process activated, and lists it.
    fn serve_followed(&self, model: Arc<Model>) {
        tracing::info!(version = model.version(), "now serving the model the trainer activated");
        self.set_active(model);
    }

    /// Records why the pointer's version is not served (logged once per reason).
    fn refuse(&self, problem: String) -> Followed {
        let serving = self.active().map(|model| model.version());
        let problem = match serving {
            Some(version) => format!("{problem}; still serving version {version}"),
            None => problem,
        };
        let mut index = self.index();
        if index.refused.as_ref() != Some(&problem) {
            tracing::error!(%problem, "a model the trainer activated is not served");
            index.refused = Some(problem.clone());
        }
        Followed::Refused(problem)
    }
}
