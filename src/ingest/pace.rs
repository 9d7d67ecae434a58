//! Pacing shared by the adapters: exponential backoff between retries, handing rows to the
//! intake until it takes or refuses them, and a warning log limited to one line per second.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::datasets::{AppendError, Batch, Intake};

/// Exponential backoff: 100 ms, doubling up to 5 s; reset after a success.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    pub(crate) fn new() -> Self {
        Self { next: Self::FIRST }
    }

    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// Sleeps for the current delay, then doubles it. False when `stop` fired meanwhile.
    pub(crate) async fn wait(&mut self, stop: &CancellationToken) -> bool {
        let delay = self.next;
        self.next = (delay * 2).min(Self::MAX);
        tokio::select! {
            biased;
            () = stop.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }
}

/// How a subscriber hands rows to the intake: retrying while the intake cannot take them now
/// (the store is down), until `stop`.
pub(crate) struct Retry<'a> {
    pub source: &'static str,
    pub stop: &'a CancellationToken,
    pub log: &'a RateLimitedLog,
}

impl Retry<'_> {
    /// Appends `batch` (`what` names it in the log); `Some(Err)` when the intake refuses it,
    /// `None` when stopped or when `abandon` says, after a wait, that retrying is not due.
    pub(crate) async fn append(
        &self,
        intake: &Intake,
        batch: Batch,
        what: impl Fn() -> String,
        abandon: impl Fn() -> bool,
    ) -> Option<Result<(), AppendError>> {
        let batch = Arc::new(batch);
        let mut backoff = Backoff::new();
        loop {
            match intake.append(Arc::clone(&batch)).await {
                Ok(_) => return Some(Ok(())),
                Err(refused @ (AppendError::Invalid(_) | AppendError::TooLarge { .. })) => {
                    return Some(Err(refused));
                }
                Err(why) => self.log.warn(self.source, || format!("{} waits: {why}", what())),
            }
            if !backoff.wait(self.stop).await || abandon() {
                return None;
            }
        }
    }
}

/// A warning log that lets through one line per second and counts the lines it held back.
#[derive(Debug, Default)]
pub(crate) struct RateLimitedLog {
    state: Mutex<LogState>,
}

#[derive(Debug, Default)]
struct LogState {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    /// Logs `message` at warn level unless a line went out less than a second ago.
    pub(crate) fn warn(&self, source: &'static str, message: impl FnOnce() -> String) {
        if let Some(suppressed) = self.admit(Instant::now()) {
            tracing::warn!(target: "regserve::ingest", source, suppressed, "{}", message());
        }
    }

    /// The number of lines suppressed since the last one, if a line may go out at `now`.
    fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let recent = state.last.is_some_and(|last| now.duration_since(last) < Duration::from_secs(1));
        if recent {
            state.suppressed += 1;
            return None;
        }
        state.last = Some(now);
        Some(std::mem::take(&mut state.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_second_with_suppressed_count() {
        let log = RateLimitedLog::default();
        let start = Instant::now();
        assert_eq!(log.admit(start), Some(0));
        assert_eq!(log.admit(start + Duration::from_millis(10)), None);
        assert_eq!(log.admit(start + Duration::from_millis(900)), None);
        assert_eq!(log.admit(start + Duration::from_millis(1000)), Some(2));
        assert_eq!(log.admit(start + Duration::from_millis(1100)), None);
    }

    #[tokio::test]
    async fn backoff_doubles_to_five_seconds_and_stops_early() {
        let mut backoff = Backoff::new();
        let stop = CancellationToken::new();
        stop.cancel();
        for _ in 0..10 {
            assert!(!backoff.wait(&stop).await);
        }
        assert_eq!(backoff.next, Backoff::MAX);
        backoff.reset();
        assert_eq!(backoff.next, Backoff::FIRST);
    }
}
