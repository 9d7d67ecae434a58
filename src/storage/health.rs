//! Whether the store answers, as this node last found it: kept by the tasks that talk to the
//! store in the background, read by `/healthz` and `/metrics`.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The store's health as last seen.
#[derive(Debug)]
pub struct StoreHealth {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// When the store last answered (or when this node started).
    last_answer: Instant,
    outage: Option<Outage>,
}

#[derive(Debug, Clone)]
struct Outage {
    /// The last answer before the outage: an outage is found only when a request fails, which
    /// may take a timeout, so it is counted from there.
    since: Instant,
    error: String,
}

/// An outage as reported: how long the store has not answered, and the last error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    pub for_: Duration,
    pub error: String,
}

impl Default for StoreHealth {
    fn default() -> Self {
        Self { state: Mutex::new(State { last_answer: Instant::now(), outage: None }) }
    }
}

impl StoreHealth {
    pub fn new() -> Self {
        Self::default()
    }

    /// The store answered: an outage, if there was one, is over.
    pub fn answered(&self) {
        let mut state = self.state();
        state.last_answer = Instant::now();
        if let Some(outage) = state.outage.take() {
            tracing::info!(after = ?outage.since.elapsed(), "the store answers again");
        }
    }

    /// The store did not answer (or refused): an outage starts, or goes on with this error.
    pub fn failed(&self, error: String) {
        let mut state = self.state();
        let since = state.last_answer;
        match state.outage.as_mut() {
            Some(outage) => outage.error = error,
            None => {
                tracing::warn!(%error, "the store does not answer; serving the last good model");
                state.outage = Some(Outage { since, error });
            }
        }
    }

    /// The outage going on, if any.
    pub fn unreachable(&self) -> Option<Unreachable> {
        let state = self.state();
        let outage = state.outage.as_ref()?;
        Some(Unreachable { for_: outage.since.elapsed(), error: outage.error.clone() })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_lasts_from_the_last_answer_to_the_next() {
        let health = StoreHealth::new();
        assert_eq!(health.unreachable(), None);
        health.answered();
        std::thread::sleep(Duration::from_millis(20));
        health.failed("refused".into());
        std::thread::sleep(Duration::from_millis(20));
        health.failed("timed out".into());
        let outage = health.unreachable().unwrap();
        assert!(outage.for_ >= Duration::from_millis(40), "counted from the last answer: {outage:?}");
        assert_eq!(outage.error, "timed out");
        health.answered();
        assert_eq!(health.unreachable(), None);
    }
}
