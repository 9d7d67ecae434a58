//! A model's or a job's loss history, and how much of it an answer carries: a history of a
//! million epochs is 18 MB of JSON, so answers sample long histories down unless asked for all.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Loss per epoch, shaped like Keras's `History.history`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    pub loss: Vec<f64>,
}

/// The most epochs an answer lists unless it asks for the whole history: longer histories are
/// sampled down to this many evenly spread epochs (the first and the last among them).
pub const HISTORY_POINTS: usize = 10_000;

/// How much of a loss history an answer carries (`?history=` on the routes that show one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HistoryDetail {
    /// Every epoch up to [`HISTORY_POINTS`]; beyond, that many evenly spread epochs.
    #[default]
    Sampled,
    /// Every epoch, however many.
    Full,
    /// No history at all.
    None,
}

/// A loss history as an answer shows it. Whole, it is `{"loss": [...]}` with one loss per epoch,
/// as in a model file; sampled, `loss` holds the losses of the epochs listed in `epochs` (1-based),
/// and `length` says how many epochs there are in all.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HistoryView<'a> {
    #[schema(value_type = Vec<f64>)]
    pub loss: Cow<'a, [f64]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<Vec<usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
}

impl<'a> HistoryView<'a> {
    /// The view of `losses` that `detail` asks for (`None` for no history).
    pub fn of(losses: &'a [f64], detail: HistoryDetail) -> Option<Self> {
        match detail {
            HistoryDetail::None => None,
            HistoryDetail::Sampled if losses.len() > HISTORY_POINTS => {
                Some(Self::sampled(losses, HISTORY_POINTS))
            }
            HistoryDetail::Sampled | HistoryDetail::Full => {
                Some(Self { loss: Cow::Borrowed(losses), epochs: None, length: None })
            }
        }
    }

    /// The same view, owning its losses.
    pub fn into_owned(self) -> HistoryView<'static> {
        HistoryView { loss: Cow::Owned(self.loss.into_owned()), epochs: self.epochs, length: self.length }
    }

    /// `points` (at least 2) evenly spread epochs of a history longer than that.
    fn sampled(losses: &[f64], points: usize) -> Self {
        let last = losses.len() - 1;
        let indices: Vec<usize> = (0..points).map(|k| k * last / (points - 1)).collect();
        Self {
            loss: indices.iter().map(|&index| losses[index]).collect(),
            epochs: Some(indices.iter().map(|index| index + 1).collect()),
            length: Some(losses.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_histories_are_shown_whole_and_long_ones_sampled() {
        let short: Vec<f64> = (0..HISTORY_POINTS).map(|i| i as f64).collect();
        let view = HistoryView::of(&short, HistoryDetail::Sampled).unwrap();
        assert_eq!((view.loss.len(), view.epochs, view.length), (HISTORY_POINTS, None, None));

        let long: Vec<f64> = (0..1_000_000).map(|i| i as f64).collect();
        let view = HistoryView::of(&long, HistoryDetail::Sampled).unwrap();
        let epochs = view.epochs.unwrap();
        assert_eq!(
            (view.loss.len(), epochs.len(), view.length),
            (HISTORY_POINTS, HISTORY_POINTS, Some(1_000_000))
        );
        assert_eq!((epochs[0], epochs[HISTORY_POINTS - 1]), (1, 1_000_000));
        assert_eq!(view.loss[1], (epochs[1] - 1) as f64, "each loss is the one of its epoch");
        assert!(epochs.windows(2).all(|pair| pair[0] < pair[1]));

        assert_eq!(HistoryView::of(&long, HistoryDetail::Full).unwrap().loss.len(), 1_000_000);
        assert_eq!(HistoryView::of(&long, HistoryDetail::None), None);
        let json = serde_json::to_string(&HistoryView::of(&[1.5, 2.0], HistoryDetail::Sampled)).unwrap();
        assert_eq!(json, r#"{"loss":[1.5,2.0]}"#);
    }
}
