//! The one prediction service. Every protocol (the original's `/predict`, KServe v2, TensorFlow
//! Serving, MLflow, the WebSocket and MQTT streams) only translates its requests into rows of
//! features and the answer back; the model's name, which model answers, the arithmetic and the
//! prediction metrics live here.
//!
//! Rows are handed over flat (row after row, `width` values each), as the tensors of the
//! standard protocols and binary frames already are, so nothing is copied on the way.

#[cfg(feature = "mqtt")]
pub mod mqtt;
pub mod stream;

use std::sync::Arc;

use crate::metrics::PredictionMetrics;
use crate::model::{Model, PredictError};
use crate::registry::{Registry, RegistryError};

/// The protocols predictions are asked for by, as the metrics label them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// The original's `POST /predict`.
    Flask,
    /// KServe's Open Inference Protocol v2.
    KServe,
    /// TensorFlow Serving's REST API.
    TfServing,
    /// MLflow's scoring protocol.
    Mlflow,
    /// The WebSocket stream.
    WebSocket,
    /// The MQTT stream.
    Mqtt,
}

impl Protocol {
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Flask => "flask",
            Protocol::KServe => "kserve_v2",
            Protocol::TfServing => "tf_serving",
            Protocol::Mlflow => "mlflow",
            Protocol::WebSocket => "websocket",
            Protocol::Mqtt => "mqtt",
        }
    }
}

/// Why a prediction was not made.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Nothing has been trained yet.
    #[error("no model has been trained yet: POST /train first")]
    NotTrained,
    /// A version is named active but cannot be served (why).
    #[error("{0}")]
    Unavailable(String),
    /// The request names another model than this service's.
    #[error("model {asked:?} is not served here; the model is {served:?}")]
    UnknownModel { asked: String, served: String },
    /// The named version cannot be had.
    #[error(transparent)]
    Version(#[from] RegistryError),
    /// The values do not divide into rows of the model's width.
    #[error("{values} values do not make rows of {width} features ({features})")]
    Shape { values: usize, width: usize, features: String },
    /// A row cannot be predicted.
    #[error(transparent)]
    Predict(#[from] PredictError),
}

/// Predictions and the version of the model that made them.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub version: u64,
    pub values: Vec<f64>,
}

/// The prediction service; clones share everything.
#[derive(Clone)]
pub struct Serving {
    name: Arc<str>,
    models: Arc<Registry>,
    metrics: PredictionMetrics,
}

impl Serving {
    pub fn new(name: &str, models: Arc<Registry>, metrics: PredictionMetrics) -> Self {
        Self { name: name.into(), models, metrics }
    }

    /// The model's name (`--model-name`), by which the standard protocols address it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `asked` is this service's model name.
    pub fn check_name(&self, asked: &str) -> Result<(), ServeError> {
        match asked == &*self.name {
            true => Ok(()),
            false => Err(ServeError::UnknownModel { asked: asked.to_owned(), served: self.name.to_string() }),
        }
    }

    /// The model served now.
    pub fn active(&self) -> Result<Arc<Model>, ServeError> {
        self.models.active().ok_or_else(|| self.no_model())
    }

    /// The model of `version`, or the served one for `None`; a stored version that is not
    /// active is read from the store.
    pub async fn model(&self, version: Option<u64>) -> Result<Arc<Model>, ServeError> {
        let active = self.models.active();
        match (version, active) {
            (None, active) => active.ok_or_else(|| self.no_model()),
            (Some(version), Some(active)) if active.version() == version => Ok(active),
            (Some(version), _) => Ok(Arc::new(self.models.get(version).await?)),
        }
    }

    /// Predicts the rows of `values` (row after row, one value per feature of `model`) and
    /// records the call as `protocol`'s.
    pub fn predict(
        &self,
        protocol: Protocol,
        model: &Model,
        values: &[f64],
    ) -> Result<Prediction, ServeError> {
        let predicted = predict_flat(model, values);
        self.record(protocol, predicted.as_ref().map(Vec::len).map_err(|_| ()));
        Ok(Prediction { version: model.version(), values: predicted? })
    }

    /// Records a call of `protocol` that predicted `rows` rows, or failed: for the adapter that
    /// predicts row by row as it parses (the original's `/predict`, with [`Model::predict_row`],
    /// the arithmetic [`Serving::predict`] uses).
    pub fn record(&self, protocol: Protocol, rows: Result<usize, ()>) {
        match rows {
            Ok(rows) => self.metrics.predicted(protocol, rows),
            Err(()) => self.metrics.failed(protocol),
        }
    }

    /// Counts a call of `protocol` refused before it reached [`Serving::predict`] (a malformed
    /// request, another model's name, no model yet) as a failed call, and passes its error on.
    pub fn refused<E>(&self, protocol: Protocol, error: E) -> E {
        self.metrics.failed(protocol);
        error
    }

    /// Why no model is served: a version is named active but cannot be read, or none is yet.
    fn no_model(&self) -> ServeError {
        self.models.active_unavailable().map_or(ServeError::NotTrained, ServeError::Unavailable)
    }
}

/// One prediction per row of `values`, `model.features().len()` values each.
fn predict_flat(model: &Model, values: &[f64]) -> Result<Vec<f64>, ServeError> {
    let width = model.features().len();
    if width == 0 || !values.len().is_multiple_of(width) {
        let features = model.features().join(", ");
        return Err(ServeError::Shape { values: values.len(), width, features });
    }
    values.chunks_exact(width).enumerate().map(|(row, values)| Ok(model.predict_row(row, values)?)).collect()
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use super::*;
    use crate::data::default_dataset;
    use crate::model::TrainSpec;
    use crate::registry::Reason;
    use crate::storage::memory::MemoryStore;
    use crate::train::FitSettings;

    fn trained(seed: u64) -> Model {
        let dataset = default_dataset();
        let settings = FitSettings { epochs: Some(2), seed: Some(seed), ..Default::default() };
        let params = settings.validate(1).unwrap();
        let spec =
            TrainSpec { selection: dataset.default_selection().clone(), params, warm_start: None, job: seed };
        Model::train(&dataset, spec, &mut |_, _| ControlFlow::Continue(())).unwrap()
    }

    async fn serving() -> (Serving, PredictionMetrics) {
        let registry = Registry::open(Arc::new(MemoryStore::new()), 5).await.unwrap();
        let metrics = PredictionMetrics::default();
        (Serving::new("income", Arc::new(registry), metrics.clone()), metrics)
    }

    #[tokio::test]
    async fn predicts_flat_rows_with_the_active_model_or_a_named_version() {
        let (serving, _) = serving().await;
        assert!(matches!(serving.active(), Err(ServeError::NotTrained)));
        let first = serving.models.commit(trained(1), Some(Reason::Manual.into())).await.unwrap();
        let second = serving.models.commit(trained(2), Some(Reason::Manual.into())).await.unwrap();
        let active = serving.model(None).await.unwrap();
        assert_eq!(active.version(), second.version());
        let answer = serving.predict(Protocol::KServe, &active, &[10.0, 15.5]).unwrap();
        assert_eq!(answer.version, 2);
        assert_eq!(answer.values, active.predict([&[10.0][..], &[15.5][..]]).unwrap());
        let older = serving.model(Some(1)).await.unwrap();
        assert_eq!(older.weights(), first.weights());
        assert!(matches!(serving.model(Some(9)).await, Err(ServeError::Version(RegistryError::NotFound(9)))));
    }

    #[tokio::test]
    async fn refuses_other_names_and_values_that_are_not_whole_rows() {
        let (serving, _) = serving().await;
        assert!(serving.check_name("income").is_ok());
        let error = serving.check_name("other").unwrap_err().to_string();
        assert!(error.contains("\"other\"") && error.contains("\"income\""), "{error}");
        let model = trained(1);
        let wide = Model::predict_row(&model, 0, &[1.0, 2.0]).unwrap_err();
        assert!(matches!(wide, PredictError::WrongWidth { .. }));
        assert!(
            matches!(serving.predict(Protocol::Mqtt, &model, &[]), Ok(Prediction { values, .. }) if values.is_empty())
        );
        assert!(matches!(
            serving.predict(Protocol::Mqtt, &model, &[f64::INFINITY]),
            Err(ServeError::Predict(_))
        ));
    }

    #[tokio::test]
    async fn counts_calls_and_rows_by_protocol_and_outcome() {
        let (serving, metrics) = serving().await;
        let model = trained(1);
        serving.predict(Protocol::WebSocket, &model, &[1.0, 2.0, 3.0]).unwrap();
        serving.predict(Protocol::WebSocket, &model, &[f64::INFINITY]).unwrap_err();
        assert_eq!(serving.refused(Protocol::WebSocket, "malformed"), "malformed");
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains(r#"predictions_total{protocol="websocket",outcome="ok"} 1"#), "{text}");
        assert!(text.contains(r#"predictions_total{protocol="websocket",outcome="error"} 2"#), "{text}");
        assert!(text.contains(r#"predicted_rows_total{protocol="websocket"} 3"#), "{text}");
    }
}
