//! The prediction service's metrics: requests (or messages, or frames) answered and rows
//! predicted, by protocol and outcome. [`crate::serving::Serving`] records into them for every
//! protocol alike; the registry of [`super::Metrics`] exports them.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::serving::Protocol;

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum Outcome {
    ok,
    error,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PredictionLabels {
    protocol: &'static str,
    outcome: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: &'static str,
}

/// The prediction recorders; clones share the counters.
#[derive(Debug, Clone, Default)]
pub struct PredictionMetrics {
    calls: Family<PredictionLabels, Counter>,
    rows: Family<ProtocolLabels, Counter>,
}

impl PredictionMetrics {
    /// One call of `protocol` answered with `rows` predictions.
    pub fn predicted(&self, protocol: Protocol, rows: usize) {
        let protocol = protocol.label();
        self.calls.get_or_create(&PredictionLabels { protocol, outcome: Outcome::ok }).inc();
        self.rows.get_or_create(&ProtocolLabels { protocol }).inc_by(rows as u64);
    }

    /// One call of `protocol` answered with an error.
    pub fn failed(&self, protocol: Protocol) {
        let labels = PredictionLabels { protocol: protocol.label(), outcome: Outcome::error };
        self.calls.get_or_create(&labels).inc();
    }

    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "predictions",
            "Prediction calls answered (requests, messages or frames), by protocol and outcome",
            self.calls.clone(),
        );
        registry.register("predicted_rows", "Rows predicted, by protocol", self.rows.clone());
    }
}
