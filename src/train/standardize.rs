//! The `adam-standardized` solver: Adam on columns scaled to zero mean and unit variance.
//!
//! On raw columns Adam's per-parameter step of about `learning_rate` is far too small for a bias
//! of -40 and ill-matched between features of different scales, which is why the original never
//! converges. Standardizing makes every parameter of order one; the weights are mapped back to
//! the original units afterwards and the losses are reported in the target's original units.

use std::ops::ControlFlow;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use super::fit::{FitOutcome, Observer, fit_adam};
use super::scaled::mean_and_std;
use super::{AdamParams, TrainError, Weights};

/// Per-column means and standard deviations of the features and the target.
#[derive(Debug, Clone)]
pub struct Scaling {
    x_mean: Array1<f64>,
    x_std: Array1<f64>,
    y_mean: f64,
    y_std: f64,
}

impl Scaling {
    /// Measures `x` and `y` without overflow (see [`super::scaled`]); a constant column cannot
    /// be standardized, and a target whose variance (the unit of the losses) exceeds the range of
    /// `f64` cannot be fitted.
    pub fn of(x: ArrayView2<f64>, y: ArrayView1<f64>) -> Result<Self, TrainError> {
        let mut x_mean = Array1::zeros(x.ncols());
        let mut x_std = Array1::zeros(x.ncols());
        for (j, column) in x.columns().into_iter().enumerate() {
            (x_mean[j], x_std[j]) = spread(column, || format!("feature {}", j + 1))?;
        }
        let (y_mean, y_std) = spread(y, || "the target".to_owned())?;
        if !(y_std * y_std).is_finite() {
            return Err(TrainError::NotRepresentable {
                quantity: "the variance of the target (the unit this solver's losses are in)".into(),
            });
        }
        Ok(Self { x_mean, x_std, y_mean, y_std })
    }

    fn standardize(&self, x: ArrayView2<f64>, y: ArrayView1<f64>) -> (Array2<f64>, Array1<f64>) {
        let xs = (&x - &self.x_mean) / &self.x_std;
        let ys = y.mapv(|v| (v - self.y_mean) / self.y_std);
        (xs, ys)
    }

    /// Weights in original units -> the equivalent weights on standardized columns.
    fn to_standard(&self, weights: &Weights) -> Weights {
        let kernel = &weights.kernel() * &self.x_std / self.y_std;
        let bias = (weights.bias() + weights.kernel().dot(&self.x_mean) - self.y_mean) / self.y_std;
        Weights::new(kernel, bias)
    }

    /// Weights on standardized columns -> the same predictions in original units.
    fn to_original(&self, weights: &Weights) -> Weights {
        let kernel = &weights.kernel() * self.y_std / &self.x_std;
        let bias = self.y_mean + self.y_std * weights.bias() - kernel.dot(&self.x_mean);
        Weights::new(kernel, bias)
    }
}

/// The mean and standard deviation of a column that varies, or why it cannot be standardized.
/// (The deviation of finite values is at most their largest magnitude, so it is finite.)
fn spread(values: ArrayView1<f64>, name: impl Fn() -> String) -> Result<(f64, f64), TrainError> {
    let (mean, std) = mean_and_std(values).expect("a dataset has rows");
    if std == 0.0 {
        return Err(TrainError::ConstantColumn { column: name() });
    }
    Ok((mean, std))
}

/// Fits with Adam on standardized columns, starting from `start` (in original units) if given.
pub fn fit_standardized(
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
    params: &AdamParams,
    start: Option<Weights>,
    observer: &mut impl Observer,
) -> Result<FitOutcome, TrainError> {
    let scaling = Scaling::of(x, y)?;
    let (xs, ys) = scaling.standardize(x, y);
    let start = start.map(|weights| scaling.to_standard(&weights));
    let loss_scale = scaling.y_std * scaling.y_std;
    let mut in_original_units = LossInOriginalUnits { inner: observer, loss_scale };
    let outcome = fit_adam(xs.view(), ys.view(), params, start, &mut in_original_units)?;
    Ok(FitOutcome {
        initial: outcome.initial.map(|weights| scaling.to_original(&weights)),
        weights: scaling.to_original(&outcome.weights),
        history: outcome.history.into_iter().map(|loss| loss * loss_scale).collect(),
        optimum_mse: None,
    })
}

/// Passes losses on in the target's original units (MSE scales with the target's variance).
struct LossInOriginalUnits<'a, O> {
    inner: &'a mut O,
    loss_scale: f64,
}

impl<O: Observer> Observer for LossInOriginalUnits<'_, O> {
    fn epoch_end(&mut self, epoch: usize, loss: f64) -> ControlFlow<()> {
        self.inner.epoch_end(epoch, loss * self.loss_scale)
    }

    fn checkpoint(&self) -> ControlFlow<()> {
        self.inner.checkpoint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn weights_map_back_to_the_same_predictions() {
        let x = array![[1.0, 100.0], [2.0, 300.0], [4.0, 200.0]];
        let y = array![10.0, 20.0, 25.0];
        let scaling = Scaling::of(x.view(), y.view()).unwrap();
        let original = Weights::new(array![1.5, -0.02], 3.0);
        let standard = scaling.to_standard(&original);
        let (xs, _) = scaling.standardize(x.view(), y.view());
        for (row, standard_row) in x.rows().into_iter().zip(xs.rows()) {
            let want = original.predict_row(row.as_slice().unwrap());
            let got = scaling.y_mean + scaling.y_std * standard.predict_row(standard_row.as_slice().unwrap());
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        let back = scaling.to_original(&standard);
        assert!((back.bias() - 3.0).abs() < 1e-12 && (back.kernel()[1] + 0.02).abs() < 1e-15);
    }

    #[test]
    fn constant_columns_are_refused() {
        let y = array![1.0, 2.0];
        let error = Scaling::of(array![[1.0, 5.0], [2.0, 5.0]].view(), y.view()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "feature 2 has the same value on every row; this solver needs it to vary"
        );
        let error = Scaling::of(array![[1.0], [2.0]].view(), array![3.0, 3.0].view()).unwrap_err();
        assert!(error.to_string().starts_with("the target has the same value"));
    }

    #[test]
    fn huge_columns_are_measured_or_said_to_be_too_large() {
        let x = array![[1e299], [2e299], [3e299]];
        let scaling = Scaling::of(x.view(), array![1.0, 2.0, 4.0].view()).unwrap();
        assert_eq!(scaling.x_mean[0], 2e299);
        assert!((scaling.x_std[0] / 8.16496580927726e298 - 1.0).abs() < 1e-12);
        let spread = Scaling::of(array![[-1.7e308], [1.7e308]].view(), array![1.0, 2.0].view()).unwrap();
        assert_eq!(spread.x_std[0], 1.7e308, "the deviation of finite values is finite");
        let error = Scaling::of(array![[1.0], [2.0]].view(), array![-1e200, 1e200].view()).unwrap_err();
        assert!(error.to_string().starts_with("the variance of the target"), "{error}");
    }
}
