//! The retraining triggers' metrics: trainings each trigger started, firings merged into a
//! waiting one, and models the quality gate kept out of service. The retrainer and the trainer
//! record into them; the registry of [`super::Metrics`] exports them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    trigger: String,
}

/// The retraining recorders; clones share the counters.
#[derive(Debug, Clone, Default)]
pub struct RetrainMetrics {
    started: Family<TriggerLabels, Counter>,
    merged: Family<TriggerLabels, Counter>,
    gate_rejections: Counter,
}

impl RetrainMetrics {
    pub fn started(&self, trigger: &str) {
        self.started.get_or_create(&TriggerLabels { trigger: trigger.to_owned() }).inc();
    }

    pub fn merged(&self, trigger: &str) {
        self.merged.get_or_create(&TriggerLabels { trigger: trigger.to_owned() }).inc();
    }

    pub fn gate_rejected(&self) {
        self.gate_rejections.inc();
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "trigger_trainings",
            "Trainings started by each retraining trigger",
            self.started.clone(),
        );
        registry.register(
            "trigger_merged_firings",
            "Firings of each trigger merged into a training already waiting (no pile-up)",
            self.merged.clone(),
        );
        registry.register(
            "gate_rejections",
            "Trained models the quality gate stored but did not activate",
            self.gate_rejections.clone(),
        );
    }
}
