//! The metrics of model activations: how many versions were made active, by reason, and how long
//! ago the last activation was. The registry records into them; the registry of
//! [`super::Metrics`] exports them and sets the time since the last one at each scrape.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// The activation recorders; clones share them.
#[derive(Debug, Clone, Default)]
pub struct ActivationMetrics {
    activations: Family<ReasonLabels, Counter>,
    since_last: OptionalGauge,
}

impl ActivationMetrics {
    /// Counts one activation for `reason` (`manual`, `trigger`, `rollback`).
    pub fn activated(&self, reason: &'static str) {
        self.activations.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Sets the time since the last activation; `None` leaves the gauge's sample out.
    pub(super) fn set_since_last(&self, since: Option<Duration>) {
        *self.since_last.0.lock().unwrap_or_else(PoisonError::into_inner) = since.map(|s| s.as_secs_f64());
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "model_activations",
            "Model versions made active by this process, by reason (manual, trigger, rollback)",
            self.activations.clone(),
        );
        registry.register(
            "model_seconds_since_activation",
            "Seconds since the last activation of a model version (no sample while there was none, and on predictors)",
            self.since_last.clone(),
        );
    }
}

/// A gauge whose sample is left out (only its HELP and TYPE lines are written) while it has no
/// value, so that "never" is not shown as a number.
#[derive(Debug, Clone, Default)]
struct OptionalGauge(Arc<Mutex<Option<f64>>>);

impl TypedMetric for OptionalGauge {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for OptionalGauge {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        match *self.0.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(value) => encoder.encode_gauge(&value),
            None => Ok(()),
        }
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
