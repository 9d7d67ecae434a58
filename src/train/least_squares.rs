//! The exact least-squares optimum of `y ≈ x · kernel + bias`.
//!
//! Columns are centred (which removes the intercept and the worst of the conditioning) and
//! scaled to unit length, the small normal-equation system is factorised by Cholesky, and one
//! step of iterative refinement against the real residuals recovers the accuracy the normal
//! equations lose. Columns that are constant or a linear combination of earlier ones get a zero
//! weight; the MSE is still the optimum, and [`LeastSquares::rank`] tells the caller.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

use super::Weights;

/// A column whose share of variance not explained by earlier columns is below this counts as
/// collinear (its squared Cholesky pivot on the correlation matrix).
const COLLINEAR_TOLERANCE: f64 = 1e-12;

/// The least-squares solution and its mean squared error on the data it was fitted to.
#[derive(Debug, Clone)]
pub struct LeastSquares {
    pub weights: Weights,
    pub mse: f64,
    /// Number of linearly independent feature columns; below the feature count the solution is
    /// one of many with the same (optimal) MSE.
    pub rank: usize,
}

/// Solves the ordinary least-squares problem for `x` (one row per sample) and `y`.
pub fn least_squares(x: ArrayView2<f64>, y: ArrayView1<f64>) -> LeastSquares {
    let features = x.ncols();
    let (Some(x_mean), Some(y_mean)) = (x.mean_axis(Axis(0)), y.mean()) else {
        return LeastSquares { weights: Weights::new(Array1::zeros(features), 0.0), mse: 0.0, rank: 0 };
    };
    let (gram, cross) = centred_cross_products(x, y, &x_mean, y_mean, &Array1::zeros(features));
    let norms = gram.diag().mapv(f64::sqrt);
    let factor = Cholesky::of_correlation(&gram, &norms);

    let mut kernel = factor.solve_scaled(&cross, &norms);
    // One refinement step: solve again for the correction the residuals still ask for.
    let (_, residual_cross) = centred_cross_products(x, y, &x_mean, y_mean, &kernel);
    kernel += &factor.solve_scaled(&residual_cross, &norms);

    let bias = y_mean - kernel.dot(&x_mean);
    let weights = Weights::new(kernel, bias);
    let mse = weights.mse(x, y);
    LeastSquares { weights, mse, rank: factor.rank() }
}

/// One pass over the data: the Gram matrix of the centred columns and their products with the
/// centred residual `y - x · kernel` (with `kernel` zero this is the centred target).
fn centred_cross_products(
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
    x_mean: &Array1<f64>,
    y_mean: f64,
    kernel: &Array1<f64>,
) -> (Array2<f64>, Array1<f64>) {
    let features = x.ncols();
    let mut gram = Array2::<f64>::zeros((features, features));
    let mut cross = Array1::<f64>::zeros(features);
    let mut centred = Array1::<f64>::zeros(features);
    let offset = y_mean - kernel.dot(x_mean);
    for (row, &target) in x.rows().into_iter().zip(y) {
        centred.assign(&row);
        centred -= x_mean;
        let residual = target - row.dot(kernel) - offset;
        for j in 0..features {
            for k in 0..=j {
                gram[[j, k]] += centred[j] * centred[k];
            }
            cross[j] += centred[j] * residual;
        }
    }
    for j in 0..features {
        for k in 0..j {
            gram[[k, j]] = gram[[j, k]];
        }
    }
    (gram, cross)
}

/// Lower-triangular Cholesky factor of the correlation matrix, with collinear columns dropped.
struct Cholesky {
    lower: Array2<f64>,
    kept: Vec<bool>,
}

impl Cholesky {
    fn of_correlation(gram: &Array2<f64>, norms: &Array1<f64>) -> Self {
        let n = gram.nrows();
        let mut lower = Array2::<f64>::zeros((n, n));
        let mut kept = vec![false; n];
        for j in 0..n {
            if norms[j] == 0.0 || !norms[j].is_finite() {
                continue;
            }
            let correlation = |a: usize, b: usize| gram[[a, b]] / (norms[a] * norms[b]);
            let pivot = correlation(j, j) - (0..j).map(|k| lower[[j, k]].powi(2)).sum::<f64>();
            if pivot <= COLLINEAR_TOLERANCE {
                continue;
            }
            kept[j] = true;
            let diagonal = pivot.sqrt();
            lower[[j, j]] = diagonal;
            for i in j + 1..n {
                if norms[i] == 0.0 {
                    continue;
                }
                let dot: f64 = (0..j).map(|k| lower[[i, k]] * lower[[j, k]]).sum();
                lower[[i, j]] = (correlation(i, j) - dot) / diagonal;
            }
        }
        Self { lower, kept }
    }

    fn rank(&self) -> usize {
        self.kept.iter().filter(|&&k| k).count()
    }

    /// Solves `gram · w = rhs` through the scaled system (`w = z / norms`), zero for dropped columns.
    fn solve_scaled(&self, rhs: &Array1<f64>, norms: &Array1<f64>) -> Array1<f64> {
        let n = rhs.len();
        let mut z = Array1::<f64>::zeros(n);
        for i in (0..n).filter(|&i| self.kept[i]) {
            let dot: f64 = (0..i).map(|k| self.lower[[i, k]] * z[k]).sum();
            z[i] = (rhs[i] / norms[i] - dot) / self.lower[[i, i]];
        }
        for i in (0..n).rev().filter(|&i| self.kept[i]) {
            let dot: f64 = (i + 1..n).map(|k| self.lower[[k, i]] * z[k]).sum();
            z[i] = (z[i] - dot) / self.lower[[i, i]];
        }
        for i in 0..n {
            z[i] = if self.kept[i] { z[i] / norms[i] } else { 0.0 };
        }
        z
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn recovers_an_exact_line() {
        let x = array![[1.0], [2.0], [3.0], [4.0]];
        let y = array![5.0, 7.0, 9.0, 11.0];
        let fit = least_squares(x.view(), y.view());
        assert!((fit.weights.kernel()[0] - 2.0).abs() < 1e-12);
        assert!((fit.weights.bias() - 3.0).abs() < 1e-12);
        assert!(fit.mse < 1e-20);
        assert_eq!(fit.rank, 1);
    }

    #[test]
    fn matches_the_closed_form_for_two_features() {
        // y = 1 + 2 a - 3 b + noise, solved independently: noise is orthogonal to [1, a, b].
        let x = array![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]];
        let noise = array![0.5, -0.5, -0.5, 0.5];
        let y = x.column(0).mapv(|a| 1.0 + 2.0 * a) - x.column(1).mapv(|b| 3.0 * b) + &noise;
        let fit = least_squares(x.view(), y.view());
        assert!((fit.weights.kernel()[0] - 2.0).abs() < 1e-12);
        assert!((fit.weights.kernel()[1] + 3.0).abs() < 1e-12);
        assert!((fit.weights.bias() - 1.0).abs() < 1e-12);
        assert!((fit.mse - 0.25).abs() < 1e-12);
    }

    #[test]
    fn badly_scaled_columns_keep_full_accuracy() {
        // Column b is a billion times larger than a and offset far from zero.
        let a: Vec<f64> = (0..50).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..50).map(|i| 1e12 + 1e9 * (i as f64 * 0.11).cos()).collect();
        let x = Array2::from_shape_fn((50, 2), |(i, j)| if j == 0 { a[i] } else { b[i] });
        let y = Array1::from_shape_fn(50, |i| 4.0 * a[i] + 2e-9 * b[i] - 7.0);
        let fit = least_squares(x.view(), y.view());
        assert!((fit.weights.kernel()[0] - 4.0).abs() < 1e-6, "{:?}", fit.weights);
        assert!((fit.weights.kernel()[1] - 2e-9).abs() < 1e-15, "{:?}", fit.weights);
        assert!(fit.mse < 1e-12, "{}", fit.mse);
    }

    #[test]
    fn collinear_and_constant_columns_are_dropped_but_the_mse_is_optimal() {
        let x = array![[1.0, 2.0, 5.0], [2.0, 4.0, 5.0], [3.0, 6.0, 5.0], [4.0, 8.0, 5.0]];
        let y = array![1.0, 3.0, 2.0, 5.0];
        let fit = least_squares(x.view(), y.view());
        assert_eq!(fit.rank, 1);
        let single = least_squares(x.slice(ndarray::s![.., 0..1]), y.view());
        assert!((fit.mse - single.mse).abs() < 1e-12);
    }
}
