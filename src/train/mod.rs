//! The numeric core: linear-regression weights, the Keras-faithful Adam fit, the standardized
//! solver that converges, and the exact least-squares optimum. Nothing here knows about HTTP,
//! files or column names; callers hand in a row-major feature matrix and a target vector.

mod adam;
mod fit;
mod least_squares;
pub mod moments;
mod params;
pub mod scaled;
mod standardize;

pub use adam::Adam;
pub use fit::{AdamRun, FitOutcome, MAX_HALVINGS, Observer, fit_adam};
pub use least_squares::{LeastSquares, least_squares, least_squares_from_moments};
pub use moments::Moments;
pub use params::{
    AdamParams, DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, FitParams, FitSettings, InitialWeights, MAX_EPOCHS,
    Solver,
};
pub use standardize::fit_standardized;

use ndarray::{Array1, ArrayView1, ArrayView2};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a fit could not produce a model.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{field}: {reason}")]
    InvalidParameter { field: &'static str, reason: String },
    #[error("training diverged: the loss became non-finite at epoch {epoch}; try a smaller learning_rate")]
    Diverged { epoch: usize },
    #[error("training was cancelled{}", match epoch { 0 => String::new(), n => format!(" at epoch {n}") })]
    Cancelled { epoch: usize },
    #[error("{column} has the same value on every row; this solver needs it to vary")]
    ConstantColumn { column: String },
    #[error(
        "the features are linearly dependent (rank {rank} of {features}): no unique least-squares \
         solution; drop a redundant feature"
    )]
    Singular { rank: usize, features: usize },
    #[error("warm_start: {reason}")]
    WarmStart { reason: String },
    #[error(
        "{quantity} is beyond the range of 64-bit floating-point numbers (about ±1.8e308): the \
         values are too large or too far apart for this fit; divide the column by a power of ten"
    )]
    NotRepresentable { quantity: String },
}

/// Runs the solver `params` names, starting from `warm_start` (or the requested initial weights).
pub fn fit(
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
    params: &FitParams,
    warm_start: Option<Weights>,
    observer: &mut impl Observer,
) -> Result<FitOutcome, TrainError> {
    let start = warm_start.or_else(|| params.initial().map(Weights::from));
    match params {
        FitParams::Adam(adam) => fit_adam(x, y, adam, start, observer),
        FitParams::AdamStandardized(adam) => fit_standardized(x, y, adam, start, observer),
        FitParams::LeastSquares => {
            let solution = least_squares(x, y, observer)?;
            if solution.rank < x.ncols() {
                return Err(TrainError::Singular { rank: solution.rank, features: x.ncols() });
            }
            Ok(FitOutcome {
                initial: None,
                weights: solution.weights,
                history: Vec::new(),
                optimum_mse: Some(solution.mse),
            })
        }
    }
}

/// The parameters of `y = x · kernel + bias`, Keras's `Dense(1)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Weights {
    #[serde(serialize_with = "serialize_array", deserialize_with = "deserialize_array")]
    #[schema(value_type = Vec<f64>)]
    kernel: Array1<f64>,
    bias: f64,
}

impl Weights {
    pub fn new(kernel: Array1<f64>, bias: f64) -> Self {
        Self { kernel, bias }
    }

    /// Keras's default initialisation: kernel ~ U(-limit, limit) with
    /// `limit = sqrt(6 / (fan_in + fan_out))`, bias 0.
    pub fn glorot_uniform(features: usize, rng: &mut impl rand::Rng) -> Self {
        use rand::RngExt;
        let limit = (6.0 / (features as f64 + 1.0)).sqrt();
        let kernel = (0..features).map(|_| rng.random_range(-limit..limit)).collect();
        Self { kernel, bias: 0.0 }
    }

    pub fn kernel(&self) -> ArrayView1<'_, f64> {
        self.kernel.view()
    }

    pub fn bias(&self) -> f64 {
        self.bias
    }

    pub fn is_finite(&self) -> bool {
        self.bias.is_finite() && self.kernel.iter().all(|w| w.is_finite())
    }

    /// The prediction for one row of features (`row.len()` must equal the kernel's length).
    pub fn predict_row(&self, row: &[f64]) -> f64 {
        debug_assert_eq!(row.len(), self.kernel.len());
        row.iter().zip(&self.kernel).map(|(x, w)| x * w).sum::<f64>() + self.bias
    }

    /// Mean squared error of these weights over the rows of `x` against `y`, scaled before
    /// squaring: infinite only when the MSE itself, or a prediction, is beyond `f64`.
    /// Two passes over the rows (the largest residual, then the scaled squares), so that no
    /// copy of the residuals is kept; a non-finite residual makes it non-finite.
    pub fn mse(&self, x: ArrayView2<f64>, y: ArrayView1<f64>) -> f64 {
        let residuals =
            || x.rows().into_iter().zip(y).map(|(row, &target)| row.dot(&self.kernel) + self.bias - target);
        let scale = scaled::scale_for(scaled::max_abs(residuals()));
        let sum: f64 = residuals().map(|r| (r / scale) * (r / scale)).sum();
        scaled::ldexp(sum / y.len().max(1) as f64, 2 * scaled::log2_of(scale))
    }
}

fn serialize_array<S: Serializer>(array: &Array1<f64>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(array.iter())
}

fn deserialize_array<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Array1<f64>, D::Error> {
    Vec::<f64>::deserialize(deserializer).map(Array1::from)
}
