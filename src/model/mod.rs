//! The fitted model that regserve serves: weights plus everything needed to explain them.
//!
//! A [`Model`] is an immutable value. The server shares it as `Arc<Model>` and replaces the
//! whole `Arc` when a new training finishes, so a reader always sees one model's kernel, bias and
//! metadata together. Its JSON is the model file ([`file`] reads and writes it, checking it on
//! the way in and out); answers show it with its loss history shaped by a [`HistoryDetail`]
//! ([`history`]).

mod exact;
pub mod file;
mod history;

pub use history::{HISTORY_POINTS, History, HistoryDetail, HistoryView};

use ndarray::{ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Selection};
use crate::train::{FitParams, Observer, TrainError, Weights, fit, least_squares, scaled};

/// A trained linear-regression model and how it was obtained.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model {
    #[serde(flatten)]
    fit: Fit,
    history: History,
}

/// Everything about a model but its loss history, which can be long and is shown in part.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
struct Fit {
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
    #[serde(flatten)]
    metrics: Metrics,
    /// Rows of the dataset the model was trained on.
    rows: usize,
    /// SHA-256 of the dataset file the model was trained on (of a description of the rows, when
    /// they were more or fewer than one file's).
    dataset_sha256: String,
    /// Which of the dataset's rows the model was trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trained_rows: Option<TrainedRows>,
    started_at: String,
    trained_at: String,
    duration_ms: f64,
    /// The training job that produced the model.
    job: u64,
}

/// Which rows of the dataset a model was trained on: their generation (an upload starts a new
/// one) and the sequence numbers of the first and the last, and how they were chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrainedRows {
    pub generation: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// `all`, `last N`, `since TIME` or `new`.
    pub choice: String,
}

/// A model as an answer shows it: its loss history whole, sampled down, or left out.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelView<'a> {
    #[serde(flatten)]
    fit: &'a Fit,
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<HistoryView<'a>>,
}

/// How good the fit is, next to the best any line can do on the same data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
        let started_at = crate::units::now_rfc3339();
        let clock = std::time::Instant::now();
        let TrainSpec { selection, params, warm_start, job } = spec;
        let start = warm_start.map(|model| model.warm_start_weights(&selection, &params)).transpose()?;
        let (x, y) = dataset.design(&selection);
        let outcome = fit(x.view(), y.view(), &params, start, observer)
            .map_err(|error| explain(error, &selection, x.view(), y.view()))?;
        let optimum_mse = match outcome.optimum_mse {
            Some(mse) => mse,
            None => least_squares(x.view(), y.view(), observer)?.mse,
        };
        let mse = outcome.weights.mse(x.view(), y.view());
        let fit = Fit {
            version: 0,
            metrics: Metrics {
                mse,
                r2: scaled::explained_share(mse, y.view()),
                optimum_mse,
                // Rounding can put a converged fit a hair below the optimum; no fit beats it.
                gap: (mse - optimum_mse).max(0.0),
            },
            features: selection.features,
            target: selection.target,
            weights: outcome.weights,
            params,
            warm_start_from: warm_start.map(|model| model.version()),
            initial: outcome.initial,
            rows: dataset.rows(),
            dataset_sha256: dataset.sha256().to_owned(),
            trained_rows: None,
            started_at,
            trained_at: crate::units::now_rfc3339(),
            duration_ms: clock.elapsed().as_secs_f64() * 1e3,
            job,
        };
        let model = Self { fit, history: History { loss: outcome.history } };
        match model.non_finite() {
            None => Ok(model),
            Some(quantity) => Err(TrainError::NotRepresentable { quantity: quantity.to_owned() }),
        }
    }

    /// The first number of the model that is not finite, named, if any: such a model can be
    /// neither served nor written to a model file (JSON has no infinities).
    pub fn non_finite(&self) -> Option<&'static str> {
        let finite = |values: &[f64]| values.iter().all(|value| value.is_finite());
        let weights_finite = |weights: &Weights| weights.is_finite();
        let metrics = &self.fit.metrics;
        [
            (weights_finite(&self.fit.weights), "the fitted weights (kernel and bias)"),
            (metrics.mse.is_finite(), "the mean squared error of the fit (mse)"),
            (metrics.optimum_mse.is_finite(), "the least-squares optimum's mean squared error (optimum_mse)"),
            (metrics.gap.is_finite(), "the gap to the optimum (gap)"),
            (metrics.r2.is_none_or(f64::is_finite), "r2"),
            (finite(&self.history.loss), "the loss history"),
            (self.fit.initial.as_ref().is_none_or(weights_finite), "the initial weights"),
        ]
        .into_iter()
        .find_map(|(finite, quantity)| (!finite).then_some(quantity))
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
        if self.fit.features != selection.features {
            return Err(TrainError::WarmStart {
                reason: format!(
                    "the current model (version {}) uses features [{}], not [{}]",
                    self.fit.version,
                    self.fit.features.join(", "),
                    selection.features.join(", ")
                ),
            });
        }
        Ok(self.fit.weights.clone())
    }

    /// The same model, recorded as trained on `rows`.
    pub fn with_trained_rows(mut self, rows: TrainedRows) -> Self {
        self.fit.trained_rows = Some(rows);
        self
    }

    /// Which rows of the dataset the model was trained on, when that was recorded.
    pub fn trained_rows(&self) -> Option<&TrainedRows> {
        self.fit.trained_rows.as_ref()
    }

    /// The same model as stored under `version`.
    pub fn with_version(mut self, version: u64) -> Self {
        self.fit.version = version;
        self
    }

    /// The model with its loss history shaped by `detail`, for an answer.
    pub fn view(&self, detail: HistoryDetail) -> ModelView<'_> {
        ModelView { fit: &self.fit, history: HistoryView::of(&self.history.loss, detail) }
    }

    pub fn version(&self) -> u64 {
        self.fit.version
    }

    pub fn job(&self) -> u64 {
        self.fit.job
    }

    pub fn features(&self) -> &[String] {
        &self.fit.features
    }

    pub fn target(&self) -> &str {
        &self.fit.target
    }

    pub fn weights(&self) -> &Weights {
        &self.fit.weights
    }

    pub fn params(&self) -> &FitParams {
        &self.fit.params
    }

    pub fn history(&self) -> &[f64] {
        &self.history.loss
    }

    pub fn metrics(&self) -> &Metrics {
        &self.fit.metrics
    }

    pub fn trained_at(&self) -> &str {
        &self.fit.trained_at
    }

    /// Time since the model was trained (`None` if `trained_at` is not RFC 3339, as in a
    /// hand-edited model file); never negative.
    pub fn age(&self) -> Option<std::time::Duration> {
        crate::units::since_rfc3339(&self.fit.trained_at)
    }

    pub fn dataset_sha256(&self) -> &str {
        &self.fit.dataset_sha256
    }

    /// Predicts one value per row; each row must hold one value per feature.
    pub fn predict<'a>(&self, rows: impl IntoIterator<Item = &'a [f64]>) -> Result<Vec<f64>, PredictError> {
        rows.into_iter().enumerate().map(|(row, values)| self.predict_row(row, values)).collect()
    }

    /// Predicts row number `row` (for the error message) from its `values`, one per feature.
    pub fn predict_row(&self, row: usize, values: &[f64]) -> Result<f64, PredictError> {
        let expected = self.fit.features.len();
        if values.len() != expected {
            let features = self.fit.features.join(", ");
            return Err(PredictError::WrongWidth { row, found: values.len(), expected, features });
        }
        let prediction = self.fit.weights.predict_row(values);
        if prediction.is_finite() { Ok(prediction) } else { Err(PredictError::NotFinite { row }) }
    }
}

/// Says what a failed fit means in the dataset's terms: the numeric core's "feature 2" becomes
/// the column's name, and a loss that overflowed on huge values says so rather than blaming the
/// learning rate.
fn explain(error: TrainError, selection: &Selection, x: ArrayView2<f64>, y: ArrayView1<f64>) -> TrainError {
    let name = |column: String| name_column(column, selection);
    match error {
        TrainError::ConstantColumn { column } => TrainError::ConstantColumn { column: name(column) },
        TrainError::NotRepresentable { quantity } => {
            let quantity = match quantity.split_once(" of feature ") {
                Some((what, feature)) => format!("{what} of {}", name(format!("feature {feature}"))),
                None => quantity.replace("of the target", &format!("of the {}", name("the target".into()))),
            };
            TrainError::NotRepresentable { quantity }
        }
        TrainError::Diverged { epoch: 1 } if too_large_to_square(x, y) => TrainError::NotRepresentable {
            quantity: "the first epoch's loss (the squared errors of values this large)".into(),
        },
        other => other,
    }
}

/// "feature 2" -> `feature "Seniority"`, "the target" -> `the target "Income"`.
fn name_column(column: String, selection: &Selection) -> String {
    let feature = column
        .strip_prefix("feature ")
        .and_then(|number| number.parse::<usize>().ok())
        .and_then(|number| selection.features.get(number.checked_sub(1)?));
    match feature {
        Some(name) => format!("feature {name:?}"),
        None => format!("target {:?}", selection.target),
    }
}

/// Whether some value is so large that its square (and so a squared error) overflows.
fn too_large_to_square(x: ArrayView2<f64>, y: ArrayView1<f64>) -> bool {
    scaled::max_abs(x.iter().chain(y.iter()).copied()) > f64::MAX.sqrt()
}

#[cfg(test)]
mod tests;
