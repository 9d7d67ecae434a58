//! The exact least-squares optimum of `y ≈ x · kernel + bias`.
//!
//! Every column is first divided by a power of two that bounds it (exact, see [`super::scaled`]),
//! so that no sum of squares can overflow or underflow whatever the data's magnitude: values of
//! `1e154` or `1e-200` are fitted as accurately as values near 1, and the weights are scaled back
//! at the end (coming out infinite only when the answer itself is beyond `f64`). The scaled
//! columns are centred (which removes the intercept and the worst of the conditioning), the small
//! normal-equation system of their correlations is factorised by Cholesky, and one step of
//! iterative refinement against the real residuals recovers the accuracy the normal equations
//! lose. Columns that are constant or a linear combination of earlier ones get a zero weight; the
//! MSE is still the optimum, and [`LeastSquares::rank`] tells the caller.
//!
//! The passes over the rows ask the [`Observer`] between blocks whether to go on, so a fit over
//! a wide dataset can be cancelled within a fraction of a second.

use std::ops::ControlFlow;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use super::moments::Moments as SummaryMoments;
use super::scaled::{column_max_abs, ldexp, log2_of, scale_for};
use super::{Observer, TrainError, Weights};

/// A column whose share of variance not explained by earlier columns is below this counts as
/// collinear (its squared Cholesky pivot on the correlation matrix).
const COLLINEAR_TOLERANCE: f64 = 1e-12;

/// The least-squares solution and its mean squared error on the data it was fitted to.
#[derive(Debug, Clone)]
pub struct LeastSquares {
    /// Infinite or NaN when the exact weights are beyond the range of `f64`.
    pub weights: Weights,
    /// Infinite when the optimum MSE is beyond the range of `f64`.
    pub mse: f64,
    /// Number of linearly independent feature columns; below the feature count the solution is
    /// one of many with the same (optimal) MSE.
    pub rank: usize,
}

/// Solves the ordinary least-squares problem for `x` (one row per sample) and `y`; fails only
/// when `observer` cancels it.
///
/// Three passes over the data: one for the scales, one for the centred cross products (taken
/// around the first row, so large offsets cancel exactly), one for the refinement, whose
/// residuals also give the MSE.
pub fn least_squares(
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
    observer: &impl Observer,
) -> Result<LeastSquares, TrainError> {
    let (rows, features) = x.dim();
    if rows == 0 {
        return Ok(LeastSquares { weights: Weights::new(Array1::zeros(features), 0.0), mse: 0.0, rank: 0 });
    }
    let x = x.as_standard_layout();
    let y = y.as_standard_layout();
    let (xs, ys) = (x.as_slice().expect("standard layout"), y.as_slice().expect("standard layout"));
    let scales = Scales::of(xs, ys, features);
    let cancelled = || TrainError::Cancelled { epoch: 0 };
    let ControlFlow::Continue(moments) = Moments::of(xs, ys, &scales, observer) else {
        return Err(cancelled());
    };
    let norms = moments.gram.diag().mapv(f64::sqrt);
    let factor = Cholesky::of_correlation(&moments.gram, &norms, observer).ok_or_else(cancelled)?;
    let mut kernel = factor.solve_scaled(&moments.cross, &norms);

    // One refinement step: solve again for the correction the residuals still ask for.
    let (residual_cross, residual_squares) =
        residuals(xs, ys, &scales, &moments, &kernel, observer).ok_or_else(cancelled)?;
    let correction = factor.solve_scaled(&residual_cross, &norms);
    // Squared residuals after the correction δ: Σr² - 2 δ·(Xᵀr) + δᵀ G δ.
    let squares = residual_squares - 2.0 * correction.dot(&residual_cross)
        + correction.dot(&moments.gram.dot(&correction));
    kernel += &correction;

    let bias = moments.y_mean - kernel.dot(&moments.x_mean);
    Ok(LeastSquares {
        weights: scales.to_original(&kernel, bias),
        mse: ldexp(squares.max(0.0) / rows as f64, 2 * scales.y_exponent),
        rank: factor.rank(),
    })
}

/// The least-squares solution from the sufficient statistics of the rows ([`SummaryMoments`]
/// of the feature columns followed by the target), without the rows: what a history kept as
/// segments is solved from. There is no refinement step (it needs the residuals of the rows),
/// so the solution is as accurate as the normal equations of the centred columns, which for
/// well-conditioned data is far below any tolerance that matters. `None` when the statistics
/// overflowed: the rows must then be solved directly.
pub fn least_squares_from_moments(moments: &SummaryMoments) -> Option<LeastSquares> {
    let features = moments.columns().checked_sub(1)?;
    if !moments.is_finite() {
        return None;
    }
    if moments.count == 0 {
        return Some(LeastSquares { weights: Weights::new(Array1::zeros(features), 0.0), mse: 0.0, rank: 0 });
    }
    let gram = Array2::from_shape_fn((features, features), |(j, k)| moments.at(j, k));
    let cross = Array1::from_shape_fn(features, |j| moments.at(j, features));
    let norms = gram.diag().mapv(f64::sqrt);
    let never_cancel = |_: usize, _: f64| ControlFlow::Continue(());
    let factor = Cholesky::of_correlation(&gram, &norms, &never_cancel)?;
    let kernel = factor.solve_scaled(&cross, &norms);
    let squares = moments.at(features, features) - 2.0 * kernel.dot(&cross) + kernel.dot(&gram.dot(&kernel));
    let x_mean = Array1::from(moments.mean[..features].to_vec());
    let bias = moments.mean[features] - kernel.dot(&x_mean);
    let mse = squares.max(0.0) / moments.count as f64;
    let fit = LeastSquares { weights: Weights::new(kernel, bias), mse, rank: factor.rank() };
    (fit.weights.is_finite() && mse.is_finite()).then_some(fit)
}

/// The power of two each column is divided by, and its reciprocal.
struct Scales {
    x_inverse: Vec<f64>,
    x_exponents: Vec<i32>,
    y_inverse: f64,
    y_exponent: i32,
}

impl Scales {
    fn of(xs: &[f64], ys: &[f64], features: usize) -> Self {
        let x_max = column_max_abs(xs, features);
        let y_scale = scale_for(column_max_abs(ys, 1)[0]);
        let x_scales: Vec<f64> = x_max.into_iter().map(scale_for).collect();
        Self {
            x_inverse: x_scales.iter().map(|scale| 1.0 / scale).collect(),
            x_exponents: x_scales.iter().map(|&scale| log2_of(scale)).collect(),
            y_inverse: 1.0 / y_scale,
            y_exponent: log2_of(y_scale),
        }
    }

    /// The weights on the original columns, from those on the scaled ones:
    /// `y / sy = Σ z_j x_j / s_j + b'` gives `kernel_j = z_j sy / s_j` and `bias = b' sy`.
    fn to_original(&self, kernel: &Array1<f64>, bias: f64) -> Weights {
        let kernel =
            kernel.iter().zip(&self.x_exponents).map(|(z, &e)| ldexp(*z, self.y_exponent - e)).collect();
        Weights::new(kernel, ldexp(bias, self.y_exponent))
    }
}

/// Means, and the Gram matrix and cross products of the centred columns, all of the scaled
/// columns.
struct Moments {
    x_mean: Array1<f64>,
    y_mean: f64,
    gram: Array2<f64>,
    cross: Array1<f64>,
}

impl Moments {
    /// Accumulates around the first row and centres afterwards: one pass, and no cancellation
    /// from columns whose values sit far from zero.
    fn of(xs: &[f64], ys: &[f64], scales: &Scales, observer: &impl Observer) -> ControlFlow<(), Self> {
        let features = scales.x_inverse.len();
        let x_shift: Vec<f64> = xs[..features].iter().zip(&scales.x_inverse).map(|(x, s)| x * s).collect();
        let y_shift = ys[0] * scales.y_inverse;
        let (mut sum, mut y_sum) = (vec![0.0; features], 0.0);
        let mut products = Array2::<f64>::zeros((features, features));
        let mut cross = Array1::<f64>::zeros(features);
        let shifts = Shifts { x: &x_shift, y: y_shift };
        for_each_block(xs, ys, scales, &shifts, observer, |columns, y| {
            y_sum += dot(y, &ONES[..y.len()]);
            for (j, column) in columns.iter().enumerate() {
                // A wide block is long work: check in between its columns too.
                if j % 32 == 31 {
                    observer.checkpoint()?;
                }
                sum[j] += dot(column, &ONES[..y.len()]);
                cross[j] += dot(column, y);
                for k in 0..=j {
                    products[[j, k]] += dot(column, columns[k]);
                }
            }
            ControlFlow::Continue(())
        })?;
        let n = ys.len() as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let y_mean_shifted = y_sum / n;
        let mut gram = Array2::<f64>::zeros((features, features));
        for j in 0..features {
            cross[j] -= n * mean[j] * y_mean_shifted;
            for k in 0..=j {
                let centred = products[[j, k]] - n * mean[j] * mean[k];
                gram[[j, k]] = centred;
                gram[[k, j]] = centred;
            }
        }
        let x_mean = mean.iter().zip(&x_shift).map(|(m, s)| m + s).collect();
        ControlFlow::Continue(Self { x_mean, y_mean: y_mean_shifted + y_shift, gram, cross })
    }
}

/// Products of the centred columns with the residuals of `kernel`, and the squared residuals,
/// all in scaled units; `None` if the observer cancels.
fn residuals(
    xs: &[f64],
    ys: &[f64],
    scales: &Scales,
    moments: &Moments,
    kernel: &Array1<f64>,
    observer: &impl Observer,
) -> Option<(Array1<f64>, f64)> {
    let x_mean = moments.x_mean.as_slice().expect("contiguous");
    let mut cross = Array1::<f64>::zeros(kernel.len());
    let mut squares = 0.0;
    let mut residual = Vec::with_capacity(BLOCK_ROWS);
    let shifts = Shifts { x: x_mean, y: moments.y_mean };
    let flow = for_each_block(xs, ys, scales, &shifts, observer, |columns, y| {
        residual.clear();
        residual.extend_from_slice(y);
        for (column, weight) in columns.iter().zip(kernel) {
            residual.iter_mut().zip(*column).for_each(|(r, x)| *r -= weight * x);
        }
        squares += dot(&residual, &residual);
        for (c, column) in cross.iter_mut().zip(columns) {
            *c += dot(column, &residual);
        }
        ControlFlow::Continue(())
    });
    flow.is_continue().then_some((cross, squares))
}

/// What [`for_each_block`] subtracts from the scaled columns and the scaled target.
struct Shifts<'a> {
    x: &'a [f64],
    y: f64,
}

/// Rows per block handed to [`for_each_block`]: a block's columns stay in the core's caches.
const BLOCK_ROWS: usize = 1024;
const ONES: [f64; BLOCK_ROWS] = [1.0; BLOCK_ROWS];

/// Calls `visit` on the rows a block at a time, scaled, transposed into feature columns and the
/// target, minus `shifts`: every sum over the block is then a dot product of contiguous columns,
/// which vectorises, where a loop over rows carries each sum from one row to the next. Asks the
/// observer before each block whether to go on; `visit` may stop the pass too.
fn for_each_block(
    xs: &[f64],
    ys: &[f64],
    scales: &Scales,
    shifts: &Shifts,
    observer: &impl Observer,
    mut visit: impl FnMut(&[&[f64]], &[f64]) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let features = shifts.x.len();
    let mut buffer = vec![0.0; BLOCK_ROWS * (features + 1)];
    for (x_block, y_block) in xs.chunks(BLOCK_ROWS * features).zip(ys.chunks(BLOCK_ROWS)) {
        observer.checkpoint()?;
        let rows = y_block.len();
        let (x_columns, y_column) = buffer.split_at_mut(BLOCK_ROWS * features);
        for (j, column) in x_columns.chunks_exact_mut(BLOCK_ROWS).enumerate() {
            let (inverse, shift) = (scales.x_inverse[j], shifts.x[j]);
            column
                .iter_mut()
                .zip(x_block.chunks_exact(features))
                .for_each(|(out, row)| *out = row[j] * inverse - shift);
        }
        let (inverse, shift) = (scales.y_inverse, shifts.y);
        y_column.iter_mut().zip(y_block).for_each(|(out, y)| *out = y * inverse - shift);
        let columns: Vec<&[f64]> = x_columns.chunks_exact(BLOCK_ROWS).map(|column| &column[..rows]).collect();
        visit(&columns, &y_column[..rows])?;
    }
    ControlFlow::Continue(())
}

/// `Σ a·b` in four interleaved partial sums, so that the additions pipeline and vectorise.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    const LANES: usize = 4;
    let (a_lanes, b_lanes) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = a_lanes.remainder().iter().zip(b_lanes.remainder()).map(|(x, y)| x * y).sum();
    let mut sums = [0.0; LANES];
    for (x, y) in a_lanes.zip(b_lanes) {
        for lane in 0..LANES {
            sums[lane] += x[lane] * y[lane];
        }
    }
    sums.iter().sum::<f64>() + tail
}

/// Lower-triangular Cholesky factor of the correlation matrix, with collinear columns dropped.
struct Cholesky {
    lower: Array2<f64>,
    kept: Vec<bool>,
}

impl Cholesky {
    /// The factor, or `None` if the observer cancels (it is asked once per column).
    fn of_correlation(gram: &Array2<f64>, norms: &Array1<f64>, observer: &impl Observer) -> Option<Self> {
        let n = gram.nrows();
        let mut lower = Array2::<f64>::zeros((n, n));
        let mut kept = vec![false; n];
        for j in 0..n {
            if observer.checkpoint().is_break() {
                return None;
            }
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
        Some(Self { lower, kept })
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
mod tests;
