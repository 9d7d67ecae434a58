//! What the intake has done, by source: rows appended and rejected since start, and the rows of
//! each of the last sixty seconds (for a rate over the last minute), plus how long commits take.
//! Plain counters behind one small lock, read by `GET /v1/dataset` and the page, and the same
//! counts in the Prometheus recorders of `/metrics`.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::batch::Source;
use crate::metrics::IntakeMetrics;

/// The window a rate is taken over.
const WINDOW_SECONDS: u64 = 60;

/// The intake's counters.
pub struct Activity {
    started: Instant,
    sources: Mutex<[SourceActivity; 4]>,
    metrics: IntakeMetrics,
}

#[derive(Default, Clone)]
struct SourceActivity {
    appended: u64,
    rejected: u64,
    /// `(second since start, rows)`, the newest last.
    recent: VecDeque<(u64, u64)>,
}

/// One source's counters, as shown.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct SourceView {
    pub rows: u64,
    /// Batches refused as bad input.
    pub rejected: u64,
    /// Rows appended per second over the last minute (or since start, when that is shorter).
    pub rows_per_second: f64,
}

impl Default for Activity {
    fn default() -> Self {
        Self { started: Instant::now(), sources: Mutex::default(), metrics: IntakeMetrics::default() }
    }
}

impl Activity {
    /// Counts `rows` appended from `source`.
    pub fn appended(&self, source: Source, rows: usize) {
        let second = self.started.elapsed().as_secs();
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        self.metrics.appended(source.as_str(), rows);
        let counters = &mut sources[source as usize];
        counters.appended += rows as u64;
        match counters.recent.back_mut() {
            Some((at, count)) if *at == second => *count += rows as u64,
            _ => counters.recent.push_back((second, rows as u64)),
        }
        while counters.recent.front().is_some_and(|(at, _)| at + WINDOW_SECONDS <= second) {
            counters.recent.pop_front();
        }
    }

    /// Counts batches (requests, frames, messages, records) from `source` refused as bad input.
    pub fn rejected(&self, source: Source, batches: usize) {
        self.metrics.rejected(source.as_str(), batches);
        self.sources.lock().unwrap_or_else(PoisonError::into_inner)[source as usize].rejected +=
            batches as u64;
    }

    /// Records how long a batch waited for its commit, from its arrival to its answer.
    pub fn committed(&self, latency: Duration) {
        self.metrics.committed(latency);
    }

    /// The Prometheus recorders these counts are also kept in.
    pub fn metrics(&self) -> &IntakeMetrics {
        &self.metrics
    }

    /// Each source's counters.
    pub fn view(&self) -> Vec<(Source, SourceView)> {
        let elapsed = self.started.elapsed();
        let second = elapsed.as_secs();
        let window = elapsed.as_secs_f64().clamp(1.0, WINDOW_SECONDS as f64);
        let sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner).clone();
        Source::ALL
            .into_iter()
            .map(|source| {
                let counters = &sources[source as usize];
                let recent: u64 = counters
                    .recent
                    .iter()
                    .filter(|(at, _)| at + WINDOW_SECONDS > second)
                    .map(|(_, rows)| rows)
                    .sum();
                let view = SourceView {
                    rows: counters.appended,
                    rejected: counters.rejected,
                    rows_per_second: recent as f64 / window,
                };
                (source, view)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_source_and_rates_over_the_window() {
        let activity = Activity::default();
        activity.appended(Source::Mqtt, 30);
        activity.appended(Source::Mqtt, 12);
        activity.rejected(Source::Http, 2);
        let view = activity.view();
        let mqtt = view.iter().find(|(source, _)| *source == Source::Mqtt).unwrap().1;
        assert_eq!((mqtt.rows, mqtt.rejected), (42, 0));
        assert!(mqtt.rows_per_second > 0.0 && mqtt.rows_per_second <= 42.0);
        assert_eq!(view[Source::Http as usize].1.rejected, 2);
    }
}
