//! The fitted model that regserve serves: weights plus everything needed to explain them.
//!
//! A [`Model`] is an immutable value. The server shares it as `Arc<Model>` and replaces the
//! whole `Arc` when a new training finishes, so a reader always sees one model's kernel, bias and
//! metadata together. The same JSON is the model file that `/v1/models/{version}` serves and
//! `regserve predict --model` reads.

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Selection};
use crate::train::{FitParams, Observer, TrainError, Weights, fit, least_squares};

/// A trained linear-regression model and how it was obtained.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model {
    /// Position in the model history, assigned when the model is stored (0 before).
    #[serde(default)]
    version: u64,
    features: Vec<String>,
    target: String,
    #[serde(flatten)]
    weights: Weights,
    params: FitParams,
    /// The version whose weights the fit started from, for `warm_start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    warm_start_from: Option<u64>,
    /// The weights the fit started from (absent for the exact solver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    initial: Option<Weights>,
    history: History,
    #[serde(flatten)]
    metrics: Metrics,
    /// Rows of the dataset the model was trained on.
    rows: usize,
    /// SHA-256 of the dataset file the model was trained on.
    dataset_sha256: String,
    started_at: String,
    trained_at: String,
    duration_ms: f64,
    /// The training job that produced the model.
    job: u64,
}

/// Loss per epoch, shaped like Keras's `History.history`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    pub loss: Vec<f64>,
}

/// How good the fit is, next to the best any line can do on the same data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Mean squared error on the training data.
    pub mse: f64,
    /// Coefficient of determination, `1 - mse / variance(target)` (null for a constant target).
    pub r2: Option<f64>,
    /// The exact least-squares MSE on the same data: the lowest any line can reach.
    pub optimum_mse: f64,
    /// `mse - optimum_mse` (never below 0): how much better the fit could be.
    pub gap: f64,
}

/// Why a prediction request cannot be answered by the current model.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error(
        "x_predict[{row}] has {found} values; the model expects {expected} ({features}), one per feature"
    )]
    WrongWidth { row: usize, found: usize, expected: usize, features: String },
    #[error("x_predict[{row}]: the prediction is not a finite number (the input is too large)")]
    NotFinite { row: usize },
}

/// What a training starts from besides the data: the solver's settings and, for a warm start,
/// the model whose weights it continues from.
pub struct TrainSpec<'a> {
    pub selection: Selection,
    pub params: FitParams,
    pub warm_start: Option<&'a Model>,
    pub job: u64,
}

impl Model {
    /// Trains a model on the selected columns of `dataset`; `observer` sees every epoch.
    pub fn train(
        dataset: &Dataset,
        spec: TrainSpec<'_>,
        observer: &mut impl Observer,
    ) -> Result<Self, TrainError> {
        let started_at = now_rfc3339();
        let clock = std::time::Instant::now();
        let TrainSpec { selection, params, warm_start, job } = spec;
        let start = warm_start.map(|model| model.warm_start_weights(&selection, &params)).transpose()?;
        let (x, y) = dataset.design(&selection);
        let outcome = fit(x.view(), y.view(), &params, start, observer)
            .map_err(|error| name_columns(error, &selection))?;
        let optimum = least_squares(x.view(), y.view());
        let mse = outcome.weights.mse(x.view(), y.view());
        let variance = y.var(0.0);
        Ok(Self {
            version: 0,
            metrics: Metrics {
                mse,
                r2: (variance > 0.0).then(|| 1.0 - mse / variance),
                optimum_mse: optimum.mse,
                // Rounding can put a converged fit a hair below the optimum; no fit beats it.
                gap: (mse - optimum.mse).max(0.0),
            },
            features: selection.features,
            target: selection.target,
            weights: outcome.weights,
            params,
            warm_start_from: warm_start.map(|model| model.version),
            initial: outcome.initial,
            history: History { loss: outcome.history },
            rows: dataset.rows(),
            dataset_sha256: dataset.sha256().to_owned(),
            started_at,
            trained_at: now_rfc3339(),
            duration_ms: clock.elapsed().as_secs_f64() * 1e3,
            job,
        })
    }

    /// This model's weights as the start of a new fit on `selection`, if they fit it.
    pub fn warm_start_weights(
        &self,
        selection: &Selection,
        params: &FitParams,
    ) -> Result<Weights, TrainError> {
        if matches!(params, FitParams::LeastSquares) {
            return Err(TrainError::WarmStart { reason: "the least-squares solver does not iterate".into() });
        }
        if params.initial().is_some() {
            return Err(TrainError::WarmStart {
                reason: "give either warm_start or initial, not both".into(),
            });
        }
        if self.features != selection.features {
            return Err(TrainError::WarmStart {
                reason: format!(
                    "the current model (version {}) uses features [{}], not [{}]",
                    self.version,
                    self.features.join(", "),
                    selection.features.join(", ")
                ),
            });
        }
        Ok(self.weights.clone())
    }

    /// The same model as stored under `version`.
    pub fn with_version(self, version: u64) -> Self {
        Self { version, ..self }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn job(&self) -> u64 {
        self.job
    }

    pub fn features(&self) -> &[String] {
        &self.features
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    pub fn params(&self) -> &FitParams {
        &self.params
    }

    pub fn history(&self) -> &[f64] {
        &self.history.loss
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn trained_at(&self) -> &str {
        &self.trained_at
    }

    /// Time since the model was trained (`None` if `trained_at` is not RFC 3339, as in a
    /// hand-edited model file); never negative.
    pub fn age(&self) -> Option<std::time::Duration> {
        let trained_at =
            time::OffsetDateTime::parse(&self.trained_at, &time::format_description::well_known::Rfc3339)
                .ok()?;
        let age = time::OffsetDateTime::now_utc() - trained_at;
        Some(age.try_into().unwrap_or(std::time::Duration::ZERO))
    }

    pub fn dataset_sha256(&self) -> &str {
        &self.dataset_sha256
    }

    /// Predicts one value per row; each row must hold one value per feature.
    pub fn predict<'a>(&self, rows: impl IntoIterator<Item = &'a [f64]>) -> Result<Vec<f64>, PredictError> {
        let expected = self.features.len();
        rows.into_iter()
            .enumerate()
            .map(|(row, values)| {
                if values.len() != expected {
                    return Err(PredictError::WrongWidth {
                        row,
                        found: values.len(),
                        expected,
                        features: self.features.join(", "),
                    });
                }
                let prediction = self.weights.predict_row(values);
                if prediction.is_finite() { Ok(prediction) } else { Err(PredictError::NotFinite { row }) }
            })
            .collect()
    }
}

/// Replaces the numeric core's "feature 2" with the column's name.
fn name_columns(error: TrainError, selection: &Selection) -> TrainError {
    match error {
        TrainError::ConstantColumn { column } => {
            let named = column
                .strip_prefix("feature ")
                .and_then(|number| number.parse::<usize>().ok())
                .and_then(|number| selection.features.get(number - 1))
                .map(|name| format!("feature {name:?}"))
                .unwrap_or_else(|| format!("target {:?}", selection.target));
            TrainError::ConstantColumn { column: named }
        }
        other => other,
    }
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("the current time formats as RFC 3339")
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use super::*;
    use crate::data::{default_dataset, parse_csv};
    use crate::train::{FitSettings, InitialWeights, Solver};

    fn keep_going(_: usize, _: f64) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }

    fn train(
        dataset: &Dataset,
        settings: FitSettings,
        warm_start: Option<&Model>,
    ) -> Result<Model, TrainError> {
        let selection = dataset.default_selection().clone();
        let params = settings.validate(selection.features.len())?;
        Model::train(dataset, TrainSpec { selection, params, warm_start, job: 1 }, &mut keep_going)
    }

    fn trained() -> Model {
        let settings = FitSettings {
            epochs: Some(3),
            seed: Some(1),
            initial: Some(InitialWeights { kernel: vec![2.0], bias: 0.0 }),
            ..Default::default()
        };
        train(&default_dataset(), settings, None).unwrap()
    }

    #[test]
    fn age_counts_from_trained_at() {
        let model = trained();
        assert!(model.age().unwrap() < std::time::Duration::from_secs(60));
        let old = Model { trained_at: "2020-01-01T00:00:00Z".into(), ..trained() };
        assert!(old.age().unwrap() > std::time::Duration::from_secs(86_400 * 365));
        let future = Model { trained_at: "2999-01-01T00:00:00Z".into(), ..trained() };
        assert_eq!(future.age(), Some(std::time::Duration::ZERO));
        assert_eq!(Model { trained_at: "yesterday".into(), ..trained() }.age(), None);
    }

    #[test]
    fn trained_model_reports_its_fit_and_the_optimum() {
        let model = trained();
        assert_eq!(model.features(), ["Education"]);
        assert_eq!(model.history().len(), 3);
        // Values from ../shared/NOTES.md: the exact least-squares MSE on Income1.
        let metrics = model.metrics();
        assert!((metrics.optimum_mse - 29.82881619900623).abs() < 1e-9, "{}", metrics.optimum_mse);
        assert!(metrics.mse > metrics.optimum_mse);
        assert!((metrics.gap - (metrics.mse - metrics.optimum_mse)).abs() < 1e-12);
        assert!(metrics.r2.unwrap() < 1.0);
        assert_eq!(model.dataset_sha256(), default_dataset().sha256());
    }

    #[test]
    fn predictions_check_the_row_width() {
        let model = trained();
        let w = model.weights();
        let got = model.predict([&[10.0][..], &[21.0][..]]).unwrap();
        assert_eq!(got, [w.kernel()[0] * 10.0 + w.bias(), w.kernel()[0] * 21.0 + w.bias()]);
        let error = model.predict([&[1.0][..], &[1.0, 2.0][..]]).unwrap_err();
        assert!(matches!(error, PredictError::WrongWidth { row: 1, found: 2, expected: 1, .. }));
        assert!(matches!(model.predict([&[f64::MAX][..]]), Err(PredictError::NotFinite { row: 0 })));
    }

    #[test]
    fn warm_start_continues_from_the_previous_weights() {
        let first = trained().with_version(4);
        let settings = FitSettings { epochs: Some(1), seed: Some(1), ..Default::default() };
        let next = train(&default_dataset(), settings.clone(), Some(&first)).unwrap();
        assert_eq!(next.initial.as_ref(), Some(first.weights()));
        assert_eq!(next.warm_start_from, Some(4));
        let exact = FitSettings { solver: Some(Solver::LeastSquares), ..Default::default() };
        assert!(matches!(train(&default_dataset(), exact, Some(&first)), Err(TrainError::WarmStart { .. })));
    }

    #[test]
    fn warm_start_needs_the_same_features() {
        let other = parse_csv(&b"a,b,c\n1,2,3\n2,3,5\n4,1,6\n"[..]).unwrap();
        let first = trained();
        let settings = FitSettings { epochs: Some(1), ..Default::default() };
        let error = train(&other, settings, Some(&first)).unwrap_err().to_string();
        assert!(error.starts_with("warm_start: the current model"), "{error}");
    }

    #[test]
    fn constant_columns_are_named() {
        let data = parse_csv(&b"a,b,c\n1,5,3\n2,5,5\n4,5,6\n"[..]).unwrap();
        let settings = FitSettings { solver: Some(Solver::AdamStandardized), ..Default::default() };
        let error = train(&data, settings, None).unwrap_err().to_string();
        assert!(error.starts_with("feature \"b\" has the same value"), "{error}");
    }

    #[test]
    fn model_files_round_trip() {
        let model = trained().with_version(3);
        let json = serde_json::to_string(&model).unwrap();
        let back: Model = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}
