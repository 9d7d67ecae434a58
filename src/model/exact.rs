//! The exact least-squares model from the sufficient statistics of the rows alone: what a
//! training on a long appended history costs O(segments) rather than O(rows) with.

use super::{Fit, History, Metrics, Model, TrainSpec};
use crate::train::{FitParams, Moments, TrainError, least_squares_from_moments};
use crate::units::now_rfc3339;

impl Model {
    /// The least-squares model of `spec`'s selection from `moments` (of the features, then the
    /// target) over `rows` rows identified by `sha256`; `None` when the statistics are not
    /// enough (they overflowed) and the rows must be used.
    pub fn solve_from_moments(
        moments: &Moments,
        spec: TrainSpec<'_>,
        rows: usize,
        sha256: String,
    ) -> Option<Result<Self, TrainError>> {
        let started_at = now_rfc3339();
        let clock = std::time::Instant::now();
        let TrainSpec { selection, params, job, .. } = spec;
        debug_assert!(matches!(params, FitParams::LeastSquares));
        let solution = least_squares_from_moments(moments)?;
        let features = selection.features.len();
        if solution.rank < features {
            return Some(Err(TrainError::Singular { rank: solution.rank, features }));
        }
        let variance = moments.at(features, features) / moments.count as f64;
        let fit = Fit {
            version: 0,
            features: selection.features,
            target: selection.target,
            weights: solution.weights,
            params,
            warm_start_from: None,
            initial: None,
            metrics: Metrics {
                mse: solution.mse,
                r2: (variance > 0.0).then(|| 1.0 - solution.mse / variance),
                optimum_mse: solution.mse,
                gap: 0.0,
            },
            rows,
            dataset_sha256: sha256,
            trained_rows: None,
            started_at,
            trained_at: now_rfc3339(),
            duration_ms: clock.elapsed().as_secs_f64() * 1e3,
            job,
        };
        Some(Ok(Self { fit, history: History { loss: Vec::new() } }))
    }
}
