//! The numeric core: linear-regression weights, the Keras-faithful Adam fit and the exact
//! least-squares optimum. Nothing here knows about HTTP, files or column names; callers hand
//! in a row-major feature matrix and a target vector.

mod adam;
mod fit;
mod least_squares;
mod params;

pub use adam::Adam;
pub use fit::{FitOutcome, fit_adam};
pub use least_squares::{LeastSquares, least_squares};
pub use params::{AdamParams, AdamSettings, DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, InitialWeights, MAX_EPOCHS};

use ndarray::{Array1, ArrayView1, ArrayView2};
use serde::{Serialize, Serializer};

/// Why a fit could not produce a model.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{field}: {reason}")]
    InvalidParameter { field: &'static str, reason: String },
    #[error("training diverged: the loss became non-finite at epoch {epoch}; try a smaller learning_rate")]
    Diverged { epoch: usize },
    #[error("training was cancelled at epoch {epoch}")]
    Cancelled { epoch: usize },
}

/// The parameters of `y = x · kernel + bias`, Keras's `Dense(1)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Weights {
    #[serde(serialize_with = "serialize_array")]
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

    /// Mean squared error of these weights over the rows of `x` against `y`.
    pub fn mse(&self, x: ArrayView2<f64>, y: ArrayView1<f64>) -> f64 {
        let sum: f64 = x
            .rows()
            .into_iter()
            .zip(y)
            .map(|(row, &target)| {
                let error = row.dot(&self.kernel) + self.bias - target;
                error * error
            })
            .sum();
        sum / y.len().max(1) as f64
    }
}

fn serialize_array<S: Serializer>(array: &Array1<f64>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(array.iter())
}
