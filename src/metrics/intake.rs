//! The intake's metrics: rows appended and batches refused, by source, and how long a batch
//! waits for its commit. The dataset service records into them; the registry of
//! [`super::Metrics`] exports them.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the commit-latency buckets, in seconds.
const COMMIT_BUCKETS: [f64; 12] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

/// The intake's recorders; clones share the counters.
#[derive(Debug, Clone)]
pub struct IntakeMetrics {
    appended: Family<SourceLabels, Counter>,
    rejected: Family<SourceLabels, Counter>,
    commit_latency: Histogram,
}

impl Default for IntakeMetrics {
    fn default() -> Self {
        Self {
            appended: Family::default(),
            rejected: Family::default(),
            commit_latency: Histogram::new(COMMIT_BUCKETS),
        }
    }
}

impl IntakeMetrics {
    pub fn appended(&self, source: &'static str, rows: usize) {
        self.appended.get_or_create(&SourceLabels { source }).inc_by(rows as u64);
    }

    pub fn rejected(&self, source: &'static str, batches: usize) {
        self.rejected.get_or_create(&SourceLabels { source }).inc_by(batches as u64);
    }

    /// How long a batch waited, from its arrival at the intake to its answer.
    pub fn committed(&self, latency: Duration) {
        self.commit_latency.observe(latency.as_secs_f64());
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register("ingested_rows", "Rows appended to the dataset, by source", self.appended.clone());
        registry.register(
            "rejected_batches",
            "Batches (requests, frames, messages, records) refused as bad input, by source",
            self.rejected.clone(),
        );
        registry.register(
            "commit_latency_seconds",
            "Time from a batch's arrival at the intake to its answer (durable or refused by the store)",
            self.commit_latency.clone(),
        );
    }
}
