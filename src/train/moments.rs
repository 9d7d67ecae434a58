//! Sufficient statistics of a block of rows: the count, each column's mean, and the co-moments
//! (sums of products of the centred columns). They are all the exact least-squares solution and
//! its MSE need, and two blocks' statistics merge into those of their union exactly as if the
//! rows had been summed together, so a history kept as many segments is solved in
//! O(segments x columns²) instead of O(rows).
//!
//! Both the per-block computation and the merge are the numerically stable forms: a block is
//! centred on its own mean before any product is summed (two passes), and blocks merge by the
//! pairwise update of Chan, Golub and LeVeque, `M = Ma + Mb + δ δᵀ na nb / n` with `δ` the
//! difference of the means, merged as a balanced tree so that rounding grows with
//! log(segments), not with their number.

use serde::{Deserialize, Serialize};

/// Count, means and co-moments of `d` columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    pub count: u64,
    pub mean: Vec<f64>,
    /// `Σ (a_i - mean_a)(b_i - mean_b)` for every pair of columns, `d x d` row after row.
    pub comoment: Vec<f64>,
}

impl Moments {
    /// The statistics of no rows of `columns` columns.
    pub fn empty(columns: usize) -> Self {
        Self { count: 0, mean: vec![0.0; columns], comoment: vec![0.0; columns * columns] }
    }

    /// The statistics of `columns` (each the same length), in two passes.
    pub fn of_columns(columns: &[&[f64]]) -> Self {
        let d = columns.len();
        let rows = columns.first().map_or(0, |column| column.len());
        if rows == 0 {
            return Self::empty(d);
        }
        let mean: Vec<f64> = columns.iter().map(|column| column.iter().sum::<f64>() / rows as f64).collect();
        // Centred on the fly, pair by pair: no copy of the columns (a base may be gigabytes).
        let mut comoment = vec![0.0; d * d];
        for j in 0..d {
            for k in 0..=j {
                let (mj, mk) = (mean[j], mean[k]);
                let sum = columns[j].iter().zip(columns[k]).map(|(a, b)| (a - mj) * (b - mk)).sum::<f64>();
                comoment[j * d + k] = sum;
                comoment[k * d + j] = sum;
            }
        }
        Self { count: rows as u64, mean, comoment }
    }

    /// The number of columns.
    pub fn columns(&self) -> usize {
        self.mean.len()
    }

    /// The co-moment of columns `j` and `k`.
    pub fn at(&self, j: usize, k: usize) -> f64 {
        self.comoment[j * self.columns() + k]
    }

    /// The statistics of both blocks' rows together.
    pub fn merge(&self, other: &Self) -> Self {
        if other.count == 0 {
            return self.clone();
        }
        if self.count == 0 {
            return other.clone();
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let n = na + nb;
        let delta: Vec<f64> = other.mean.iter().zip(&self.mean).map(|(b, a)| b - a).collect();
        let mean = self.mean.iter().zip(&delta).map(|(a, d)| a + d * nb / n).collect();
        let d = self.columns();
        let weight = na * nb / n;
        let comoment = (0..d * d)
            .map(|i| self.comoment[i] + other.comoment[i] + delta[i / d] * delta[i % d] * weight)
            .collect();
        Self { count: self.count + other.count, mean, comoment }
    }

    /// The statistics of all of `parts` together, merged pairwise as a balanced tree.
    pub fn merge_all(parts: &[&Self], columns: usize) -> Self {
        match parts {
            [] => Self::empty(columns),
            [one] => (*one).clone(),
            _ => {
                let (left, right) = parts.split_at(parts.len() / 2);
                Self::merge_all(left, columns).merge(&Self::merge_all(right, columns))
            }
        }
    }

    /// Whether every statistic is a finite number (values near the limits of `f64` can make
    /// the products overflow; the rows themselves must then be used).
    pub fn is_finite(&self) -> bool {
        self.mean.iter().chain(&self.comoment).all(|value| value.is_finite())
    }

    /// Only the columns `keep`, in that order.
    pub fn select(&self, keep: &[usize]) -> Self {
        let comoment =
            keep.iter().flat_map(|&j| keep.iter().map(move |&k| (j, k))).map(|(j, k)| self.at(j, k));
        Self {
            count: self.count,
            mean: keep.iter().map(|&j| self.mean[j]).collect(),
            comoment: comoment.collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_blocks_gives_the_statistics_of_their_union() {
        // Far from zero, so that a naive sum of squares would lose every digit.
        let a: Vec<f64> = (0..101).map(|i| 1e6 + (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..101).map(|i| (i as f64 * 0.11).cos() * 3.0 - 2.0).collect();
        let whole = Moments::of_columns(&[&a, &b]);
        let parts: Vec<Moments> =
            [0..7, 7..50, 50..51, 51..101].map(|r| Moments::of_columns(&[&a[r.clone()], &b[r]])).to_vec();
        let merged = Moments::merge_all(&parts.iter().collect::<Vec<_>>(), 2);
        assert_eq!(merged.count, 101);
        for j in 0..2 {
            assert!((merged.mean[j] - whole.mean[j]).abs() <= 1e-15 * whole.mean[j].abs().max(1.0));
            for k in 0..2 {
                // The means' own rounding (1e6 x 2^-52) bounds how well any merge can agree.
                let scale = (whole.at(j, j) * whole.at(k, k)).sqrt();
                assert!((merged.at(j, k) - whole.at(j, k)).abs() <= 1e-9 * scale, "{merged:?} vs {whole:?}");
            }
        }
        assert!(whole.at(0, 1) != 0.0 && whole.at(0, 1) == whole.at(1, 0));
    }

    #[test]
    fn empty_blocks_change_nothing_and_selection_keeps_the_named_columns() {
        let block = Moments::of_columns(&[&[1.0, 2.0, 4.0], &[3.0, 5.0, 6.0], &[0.0, 0.0, 1.0]]);
        assert_eq!(block.merge(&Moments::empty(3)), block);
        assert_eq!(Moments::empty(3).merge(&block), block);
        let picked = block.select(&[2, 0]);
        assert_eq!(picked.mean, [block.mean[2], block.mean[0]]);
        assert_eq!(picked.comoment, [block.at(2, 2), block.at(2, 0), block.at(0, 2), block.at(0, 0)]);
        assert!(!Moments::of_columns(&[&[1e300, -1e300]]).is_finite());
    }
}
