//! Whether the store answers, as this node last found it: kept by the tasks that talk to the
//! store in the background, read by `/healthz` and `/metrics`.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The store's health as last seen.
#[derive(Debug, Default)]
pub struct StoreHealth {
    outage: Mutex<Option<Outage>>,
}

#[derive(Debug, Clone)]
struct Outage {
    since: Instant,
    error: String,
}

/// An outage as reported: how long the store has not answered, and the last error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    pub for_: Duration,
    pub error: String,
}

impl StoreHealth {
    pub fn new() -> Self {
        Self::default()
    }

    /// The store answered: an outage, if there was one, is over.
    pub fn answered(&self) {
        if let Some(outage) = self.outage().take() {
            tracing::info!(after = ?outage.since.elapsed(), "the store answers again");
        }
    }

    /// The store did not answer (or refused): an outage starts, or goes on with this error.
    pub fn failed(&self, error: String) {
        let mut outage = self.outage();
        match outage.as_mut() {
            Some(outage) => outage.error = error,
            None => {
                tracing::warn!(%error, "the store does not answer; serving the last good model");
                *outage = Some(Outage { since: Instant::now(), error });
            }
        }
    }

    /// The outage going on, if any.
    pub fn unreachable(&self) -> Option<Unreachable> {
        self.outage()
            .as_ref()
            .map(|outage| Unreachable { for_: outage.since.elapsed(), error: outage.error.clone() })
    }

    fn outage(&self) -> std::sync::MutexGuard<'_, Option<Outage>> {
        self.outage.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_lasts_from_the_first_failure_to_the_next_answer() {
        let health = StoreHealth::new();
        assert_eq!(health.unreachable(), None);
        health.failed("refused".into());
        std::thread::sleep(Duration::from_millis(20));
        health.failed("timed out".into());
        let outage = health.unreachable().unwrap();
        assert!(outage.for_ >= Duration::from_millis(20), "{outage:?}");
        assert_eq!(outage.error, "timed out");
        health.answered();
        assert_eq!(health.unreachable(), None);
    }
}
