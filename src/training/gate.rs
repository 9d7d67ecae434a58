//! The quality gate. With `--holdout FRACTION` every training holds back the newest share of the
//! rows it was given (never fewer than one row, never so many that fewer than two are left to
//! fit), and both the new model and the one in service are scored on them. A gated training
//! activates its model only if the new model's holdout MSE is at most the served one's times
//! `1 + --gate-margin`; otherwise the version is stored and the served one stays.

use crate::data::Dataset;
use crate::model::Model;
use crate::registry::GateScores;

/// How trainings hold rows back and how the gate decides.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GateSettings {
    /// The share of rows held back, in [0, 1); 0 holds back none and turns the gate off.
    pub holdout: f64,
    /// How much worse than the served model a new one may score and still be activated.
    pub margin: f64,
}

impl GateSettings {
    /// How many of `rows` rows are held back.
    pub fn holdout_rows(&self, rows: usize) -> usize {
        if self.holdout <= 0.0 || rows < 3 {
            return 0;
        }
        ((rows as f64 * self.holdout).ceil() as usize).clamp(1, rows - 2)
    }

    /// The scores of a candidate and of the served model on the held-back rows.
    pub fn scores(&self, candidate: &Model, served: Option<&Model>, holdout: &Dataset) -> Option<GateScores> {
        let candidate_mse = mse(candidate, holdout)?;
        let active_mse = served.and_then(|served| mse(served, holdout));
        Some(GateScores { candidate_mse, active_mse, margin: self.margin, holdout_rows: holdout.rows() })
    }
}

/// Whether a candidate with `scores` may replace the served model.
pub fn passes(scores: &GateScores) -> bool {
    scores.active_mse.is_none_or(|active| scores.candidate_mse <= active * (1.0 + scores.margin))
}

/// Why a candidate was kept out of service, in words.
pub fn rejection(scores: &GateScores) -> String {
    format!(
        "holdout MSE {} is above the served model's {} x (1 + {}) on {} rows",
        scores.candidate_mse,
        scores.active_mse.unwrap_or(f64::NAN),
        scores.margin,
        scores.holdout_rows
    )
}

/// The mean squared error of `model` on `rows`; `None` when they lack its columns.
fn mse(model: &Model, rows: &Dataset) -> Option<f64> {
    let selection = rows.select(Some(model.features().to_vec()), Some(model.target().to_owned())).ok()?;
    let (design, target) = rows.design(&selection);
    let squared: f64 = design
        .rows()
        .into_iter()
        .zip(&target)
        .map(|(row, y)| {
            let error = model.weights().predict_row(row.as_slice().expect("a row-major matrix")) - y;
            error * error
        })
        .sum();
    Some(squared / rows.rows() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(candidate: f64, active: Option<f64>, margin: f64) -> GateScores {
        GateScores { candidate_mse: candidate, active_mse: active, margin, holdout_rows: 10 }
    }

    #[test]
    fn the_gate_passes_a_candidate_no_worse_than_the_margin_allows() {
        assert!(passes(&scores(1.0, Some(1.0), 0.0)));
        assert!(!passes(&scores(1.01, Some(1.0), 0.0)));
        assert!(passes(&scores(1.04, Some(1.0), 0.05)));
        assert!(!passes(&scores(1.06, Some(1.0), 0.05)));
        assert!(passes(&scores(5.0, None, 0.0)), "nothing served: the candidate goes in");
    }

    #[test]
    fn the_holdout_keeps_two_rows_to_fit_and_holds_back_at_least_one() {
        let gate = |holdout| GateSettings { holdout, margin: 0.0 };
        assert_eq!(gate(0.0).holdout_rows(100), 0);
        assert_eq!(gate(0.2).holdout_rows(100), 20);
        assert_eq!(gate(0.2).holdout_rows(30), 6);
        assert_eq!(gate(0.01).holdout_rows(10), 1);
        assert_eq!(gate(0.9).holdout_rows(10), 8);
        assert_eq!(gate(0.5).holdout_rows(2), 0);
    }
}
