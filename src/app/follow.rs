//! The follower of a predictor: a background task that looks at the active-model pointer every
//! `--follow-interval` (one conditional read), and at once when the trainer announces an
//! activation ([`super::announcements`]); it serves the version the trainer activates, keeps it
//! in the local cache, and records whether the store answers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::registry::{Followed, ModelCache, Registry};
use crate::storage::health::StoreHealth;

/// Longest wait for one look; a store that takes longer counts as not answering.
const LOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// What the follower works with.
pub struct Follower {
    pub registry: Arc<Registry>,
    pub health: Arc<StoreHealth>,
    pub cache: Option<ModelCache>,
    pub interval: Duration,
    /// Woken when the trainer announces an activation.
    pub announced: Arc<Notify>,
}

impl Follower {
    /// Looks until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.interval) => {}
                () = self.announced.notified() => {}
            }
            self.look().await;
        }
    }

    /// One look at the pointer.
    pub async fn look(&self) {
        match tokio::time::timeout(LOOK_TIMEOUT, self.registry.follow()).await {
            Ok(Ok(followed)) => {
                self.health.answered();
                if let (Followed::Serving(_), Some(cache), Some(model)) =
                    (&followed, &self.cache, self.registry.active())
                {
                    cache.save(&model).await;
                }
            }
            Ok(Err(error)) => self.health.failed(error.to_string()),
            Err(_) => self.health.failed(format!("no answer within {LOOK_TIMEOUT:?}")),
        }
    }
}
