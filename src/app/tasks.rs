//! The background tasks of a running server, owned in one place: each is spawned with a name,
//! sees the same stop signal, and is waited for when the server stops, for at most a deadline
//! (after which the ones still running are named in the log and left to the runtime's end).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The server's tasks and their stop signal.
#[derive(Clone, Default)]
pub struct Tasks {
    stop: CancellationToken,
    tracker: TaskTracker,
    next_id: Arc<AtomicU64>,
    /// The names of the tasks still running, by id.
    running: Arc<Mutex<BTreeMap<u64, &'static str>>>,
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// The signal every task watches: cancelled when the server stops.
    pub fn stop_signal(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs `task` until it ends; it should end soon after [`Tasks::stop_signal`] is cancelled.
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.names().insert(id, name);
        let (running, stop) = (self.running.clone(), self.stop.clone());
        self.tracker.spawn(async move {
            task.await;
            running.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
            if !stop.is_cancelled() {
                tracing::warn!(task = name, "a background task ended before the server stopped");
            }
        });
    }

    /// Signals every task to stop and waits for them, for at most `deadline`; `false` if some
    /// were still running then (they are named in the log).
    pub async fn stop(&self, deadline: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(deadline, self.tracker.wait()).await.is_ok() {
            return true;
        }
        let still: Vec<&str> = self.names().values().copied().collect();
        tracing::warn!(tasks = ?still, ?deadline, "background tasks still running at the shutdown deadline");
        false
    }

    fn names(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, &'static str>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_stop_on_the_signal_and_stragglers_are_named() {
        let tasks = Tasks::new();
        let signal = tasks.stop_signal();
        tasks.spawn("polite", async move { signal.cancelled().await });
        tasks.spawn("stubborn", std::future::pending());
        assert!(!tasks.stop(Duration::from_millis(50)).await, "the stubborn task is still running");
        assert_eq!(tasks.names().values().copied().collect::<Vec<_>>(), ["stubborn"]);

        let tasks = Tasks::new();
        let signal = tasks.stop_signal();
        tasks.spawn("polite", async move { signal.cancelled().await });
        assert!(tasks.stop(Duration::from_secs(5)).await);
    }
}
