//! The fitted model that regserve serves: weights plus everything needed to explain them.
//!
//! A [`Model`] is an immutable value. The server shares it as `Arc<Model>` and replaces the
//! whole `Arc` when a new training finishes, so a reader always sees one model's kernel, bias and
//! metadata together.

use std::ops::ControlFlow;

use serde::Serialize;

use crate::data::{Dataset, Selection};
use crate::train::{AdamParams, TrainError, Weights, fit_adam, least_squares};

/// A trained linear-regression model and how it was obtained.
#[derive(Debug, Clone, Serialize)]
pub struct Model {
    features: Vec<String>,
    target: String,
    #[serde(flatten)]
    weights: Weights,
    params: AdamParams,
    history: History,
    trained_at: String,
    /// Rows of the dataset the model was trained on.
    rows: usize,
    /// Mean squared error of this model on its training data.
    mse: f64,
    /// The lowest MSE any line can reach on the same data (exact least squares).
    optimum_mse: f64,
    /// The training job that produced the model.
    job: u64,
}

/// Loss per epoch, shaped like Keras's `History.history`.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    pub loss: Vec<f64>,
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

impl Model {
    /// Trains a model with Adam on the selected columns of `dataset`, exactly as Keras would.
    ///
    /// `on_epoch(epoch, loss)` sees every epoch and may stop the fit.
    pub fn train(
        dataset: &Dataset,
        selection: Selection,
        params: AdamParams,
        job: u64,
        on_epoch: impl FnMut(usize, f64) -> ControlFlow<()>,
    ) -> Result<Self, TrainError> {
        let (x, y) = dataset.design(&selection);
        let outcome = fit_adam(x.view(), y.view(), &params, on_epoch)?;
        let optimum = least_squares(x.view(), y.view());
        Ok(Self {
            mse: outcome.weights.mse(x.view(), y.view()),
            optimum_mse: optimum.mse,
            features: selection.features,
            target: selection.target,
            weights: outcome.weights,
            params,
            history: History { loss: outcome.history },
            trained_at: now_rfc3339(),
            rows: dataset.rows(),
            job,
        })
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

    pub fn params(&self) -> &AdamParams {
        &self.params
    }

    pub fn history(&self) -> &[f64] {
        &self.history.loss
    }

    pub fn mse(&self) -> f64 {
        self.mse
    }

    pub fn optimum_mse(&self) -> f64 {
        self.optimum_mse
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

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("the current time formats as RFC 3339")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::default_dataset;
    use crate::train::{AdamSettings, InitialWeights};

    fn trained() -> Model {
        let dataset = default_dataset();
        let selection = dataset.default_selection().clone();
        let params = AdamSettings {
            epochs: Some(3),
            seed: Some(1),
            initial: Some(InitialWeights { kernel: vec![2.0], bias: 0.0 }),
            ..Default::default()
        }
        .validate(1)
        .unwrap();
        Model::train(&dataset, selection, params, 1, |_, _| ControlFlow::Continue(())).unwrap()
    }

    #[test]
    fn trained_model_reports_its_fit_and_the_optimum() {
        let model = trained();
        assert_eq!(model.features(), ["Education"]);
        assert_eq!(model.history().len(), 3);
        // Values from ../shared/NOTES.md: the exact least-squares MSE on Income1.
        assert!((model.optimum_mse() - 29.82881619900623).abs() < 1e-9, "{}", model.optimum_mse());
        assert!(model.mse() > model.optimum_mse());
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
}
