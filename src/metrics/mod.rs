//! Prometheus metrics: requests by route and status with their latency, trainings by outcome
//! and their duration, rows appended and refused by source ([`intake`]), model activations by
//! reason ([`activations`]), and gauges of the served model and dataset, rendered in the Prometheus
//! text format (version 0.0.4) for `GET /metrics`.
//!
//! Recording a request touches no lock but the read side of one map per family (the label set
//! holds static strings and a shared route name, so nothing is allocated), and the latency
//! histogram is a set of atomic counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::Method;
use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::train::Solver;

mod activations;
mod intake;
mod predictions;
mod retrain;

pub use activations::ActivationMetrics;
pub use intake::IntakeMetrics;
pub use predictions::PredictionMetrics;
pub use retrain::RetrainMetrics;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the request latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// The same bounds in nanoseconds, for bucketing without floating point.
const LATENCY_BUCKETS_NANOS: [u64; 14] = {
    let mut nanos = [0; 14];
    let mut i = 0;
    while i < nanos.len() {
        nanos[i] = (LATENCY_BUCKETS[i] * 1e9) as u64;
        i += 1;
    }
    nanos
};

/// Upper bounds of the training duration buckets, in seconds (1 ms to about 17 minutes).
fn training_buckets() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.001, 4.0, 11))
}

/// Every metric the service exports, in one registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, LatencyHistogram>,
    trainings: Family<TrainingLabels, Counter>,
    training_duration: Family<TrainingLabels, Histogram, fn() -> Histogram>,
    model_version: Gauge,
    model_age: Gauge<f64, AtomicU64>,
    dataset_rows: Gauge,
    store_up: Gauge,
    in_flight: Gauge,
    activations: ActivationMetrics,
    /// Requests answered in all, for the heartbeat's rate.
    answered: std::sync::atomic::AtomicU64,
    /// The retraining triggers' recorders.
    pub retrain: RetrainMetrics,
    /// The prediction service's recorders.
    pub predictions: PredictionMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(&IntakeMetrics::default(), &ActivationMetrics::default())
    }
}

impl Metrics {
    /// The service's metrics, the intake's and the activations' recorders among them.
    pub fn new(intake: &IntakeMetrics, activations: &ActivationMetrics) -> Self {
        let mut registry = Registry::with_prefix("regserve");
        intake.register(&mut registry);
        activations.register(&mut registry);
        let retrain = RetrainMetrics::default();
        retrain.register(&mut registry);
        let predictions = PredictionMetrics::default();
        predictions.register(&mut registry);
        let requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status code",
            requests.clone(),
        );
        let latency = Family::default();
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response head, by method and route template",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "Requests being handled now: each holds one of the --max-concurrent slots until its answer is ready",
            in_flight.clone(),
        );
        let trainings = Family::default();
        registry.register(
            "trainings",
            "Training jobs finished, by outcome (succeeded, failed, cancelled) and solver",
            trainings.clone(),
        );
        let training_duration = Family::new_with_constructor(training_buckets as fn() -> Histogram);
        registry.register(
            "training_duration_seconds",
            "Time from a training job's start to its end, by outcome and solver",
            training_duration.clone(),
        );
        let model_version = Gauge::default();
        registry.register(
            "model_version",
            "Version of the model being served (0 while there is none)",
            model_version.clone(),
        );
        let model_age = Gauge::default();
        registry.register(
            "model_age_seconds",
            "Seconds since the served model was trained (0 while there is none)",
            model_age.clone(),
        );
        let dataset_rows = Gauge::default();
        registry.register("dataset_rows", "Rows of the active dataset", dataset_rows.clone());
        let store_up = Gauge::default();
        registry.register(
            "store_up",
            "1 while the store answers, 0 while this node serves without it (as last found)",
            store_up.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            trainings,
            training_duration,
            model_version,
            model_age,
            dataset_rows,
            store_up,
            in_flight,
            activations: activations.clone(),
            answered: std::sync::atomic::AtomicU64::new(0),
            retrain,
            predictions,
        }
    }

    /// Counts one answered request and its latency.
    pub fn record_request(
        &self,
        method: &Method,
        route: Option<&'static str>,
        status: u16,
        latency: Duration,
    ) {
        let labels = RouteLabels { method: method_label(method), route: Route(route) };
        self.latency.get_or_create(&labels).observe(latency);
        let RouteLabels { method, route } = labels;
        self.requests.get_or_create(&RequestLabels { method, route, status }).inc();
        self.answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Requests answered since the start.
    pub fn requests_answered(&self) -> u64 {
        self.answered.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts one finished training job and its duration.
    pub fn record_training(&self, outcome: TrainingOutcome, solver: Solver, duration: Duration) {
        let labels = TrainingLabels { outcome: outcome.label(), solver: solver_label(solver) };
        self.trainings.get_or_create(&labels).inc();
        self.training_duration.get_or_create(&labels).observe(duration.as_secs_f64());
    }

    /// Tracks how many requests are being answered.
    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    /// The registry in the Prometheus text format, after setting the gauges that describe the
    /// current state.
    pub fn render(&self, current: Snapshot) -> String {
        self.model_version.set(i64::try_from(current.model_version.unwrap_or(0)).unwrap_or(i64::MAX));
        self.model_age.set(current.model_age.map_or(0.0, |age| age.as_secs_f64()));
        self.dataset_rows.set(i64::try_from(current.dataset_rows).unwrap_or(i64::MAX));
        self.store_up.set(i64::from(current.store_up));
        self.activations.set_since_last(current.since_activation);
        let mut text = String::with_capacity(8 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// The state the gauges show, taken at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    pub model_version: Option<u64>,
    pub model_age: Option<Duration>,
    pub dataset_rows: usize,
    pub store_up: bool,
    /// Since the last activation this node knows of; `None` leaves the gauge's sample out.
    pub since_activation: Option<Duration>,
}

/// How a training job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainingOutcome {
    Succeeded,
    Failed,
    Cancelled,
}

impl TrainingOutcome {
    fn label(self) -> &'static str {
        match self {
            TrainingOutcome::Succeeded => "succeeded",
            TrainingOutcome::Failed => "failed",
            TrainingOutcome::Cancelled => "cancelled",
        }
    }
}

fn solver_label(solver: Solver) -> &'static str {
    match solver {
        Solver::Adam => "adam",
        Solver::AdamStandardized => "adam-standardized",
        Solver::LeastSquares => "least-squares",
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: Route,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: Route,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrainingLabels {
    outcome: &'static str,
    solver: &'static str,
}

/// The route template a request matched (`/v1/jobs/{id}`), or `unmatched` for unknown paths,
/// so that the number of series stays bounded whatever paths clients send.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Route(Option<&'static str>);

impl Route {
    fn as_str(&self) -> &str {
        self.0.unwrap_or("unmatched")
    }
}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// A latency histogram made of atomic counters: observing is a few relaxed atomic adds.
#[derive(Debug, Default)]
struct LatencyHistogram {
    /// Observations per bucket (not cumulative); the last one is above every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl LatencyHistogram {
    fn observe(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let bucket =
            LATENCY_BUCKETS_NANOS.iter().position(|&bound| nanos <= bound).unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let bounds = LATENCY_BUCKETS.iter().copied().chain(std::iter::once(f64::INFINITY));
        let buckets: Vec<(f64, u64)> =
            bounds.zip(&self.buckets).map(|(bound, count)| (bound, count.load(Ordering::Relaxed))).collect();
        let count = buckets.iter().map(|(_, count)| count).sum();
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_inclusive_upper_bounds() {
        let histogram = LatencyHistogram::default();
        histogram.observe(Duration::from_micros(500));
        histogram.observe(Duration::from_micros(501));
        histogram.observe(Duration::from_secs(60));
        let counts: Vec<u64> = histogram.buckets.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(counts[0], 1);
        assert_eq!(counts[1], 1);
        assert_eq!(counts[LATENCY_BUCKETS.len()], 1);
        assert_eq!(LATENCY_BUCKETS_NANOS[0], 500_000);
        assert_eq!(LATENCY_BUCKETS_NANOS[13], 10_000_000_000);
    }

    #[test]
    fn renders_the_text_format_with_labels() {
        let metrics = Metrics::default();
        metrics.record_request(&Method::GET, None, 404, Duration::from_millis(3));
        metrics.record_training(TrainingOutcome::Failed, Solver::LeastSquares, Duration::from_millis(2));
        let snapshot = Snapshot { model_version: Some(3), dataset_rows: 30, ..Snapshot::default() };
        let text = metrics.render(snapshot);
        assert!(
            text.contains(r#"regserve_http_requests_total{method="GET",route="unmatched",status="404"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"regserve_http_request_duration_seconds_bucket{method="GET",route="unmatched",le="0.005"} 1"#), "{text}");
        assert!(
            text.contains(
                r#"regserve_http_request_duration_seconds_count{method="GET",route="unmatched"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"regserve_trainings_total{outcome="failed",solver="least-squares"} 1"#),
            "{text}"
        );
        assert!(text.contains("regserve_model_version 3\n"), "{text}");
        assert!(text.contains("regserve_dataset_rows 30\n"), "{text}");
        assert!(text.contains("regserve_store_up 0\n"), "{text}");
        assert!(text.contains("# TYPE regserve_training_duration_seconds histogram"), "{text}");
    }

    #[test]
    fn activations_are_counted_by_reason_and_their_age_shown_once_there_is_one() {
        let activations = ActivationMetrics::default();
        let metrics = Metrics::new(&IntakeMetrics::default(), &activations);
        let text = metrics.render(Snapshot::default());
        assert!(text.contains("# TYPE regserve_model_seconds_since_activation gauge"), "{text}");
        let sample =
            |text: &str| text.lines().any(|line| line.starts_with("regserve_model_seconds_since_activation"));
        assert!(!sample(&text), "no sample without an activation: {text}");
        activations.activated("rollback");
        activations.activated("rollback");
        let since = Some(Duration::from_millis(2500));
        let text = metrics.render(Snapshot { since_activation: since, ..Snapshot::default() });
        assert!(text.contains(r#"regserve_model_activations_total{reason="rollback"} 2"#), "{text}");
        assert!(text.contains("regserve_model_seconds_since_activation 2.5\n"), "{text}");
    }
}
