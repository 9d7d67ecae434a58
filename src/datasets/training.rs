//! The rows one training uses ([`TrainingData`]): chosen from a history snapshot, read either
//! as one dataset (for the iterative solvers) or as their merged sufficient statistics (for the
//! exact solver, without touching the rows of whole segments).

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::history::{Chunk, History, RowChoice, Rows};
use crate::data::{DataError, Dataset, Selection};
use crate::model::TrainedRows;
use crate::train::Moments;

/// The rows of one training.
#[derive(Debug, Clone)]
pub struct TrainingData {
    schema: Arc<Dataset>,
    rows: Rows,
    generation: u64,
    choice: RowChoice,
}

impl History {
    /// The rows `choice` names, to train on (`served`: the rows the served model was trained
    /// on, which [`RowChoice::New`] leaves out); an error when there are too few to train on.
    pub fn training(
        &self,
        choice: RowChoice,
        served: Option<&TrainedRows>,
    ) -> Result<TrainingData, DataError> {
        self.training_timed(choice, served, None)
    }

    /// As [`History::training`], `Since` going by the values of `time_column` (seconds since
    /// 1970) rather than by arrival, when there is one.
    pub fn training_timed(
        &self,
        choice: RowChoice,
        served: Option<&TrainedRows>,
        time_column: Option<&str>,
    ) -> Result<TrainingData, DataError> {
        let choice = match (choice, served) {
            (RowChoice::New, Some(rows)) if rows.generation == self.generation => {
                RowChoice::After(rows.last_seq)
            }
            (RowChoice::Since(ms), _) if time_column.is_some() => self.since_value(ms, time_column)?,
            (choice, _) => choice,
        };
        let schema = self.schema.clone().ok_or_else(|| DataError::InvalidSelection {
            field: "rows",
            reason: "the dataset is empty: append rows (POST /v1/data) or upload a file first".into(),
        })?;
        let rows = self.select(choice);
        if rows.count < 2 {
            let reason = match choice {
                RowChoice::After(seq) => format!(
                    "only {} rows arrived after those the served model was trained on (up to seq {seq}); at least 2 are needed",
                    rows.count
                ),
                _ => format!("the rows chosen are {}; at least 2 are needed", rows.count),
            };
            return Err(DataError::InvalidSelection { field: "rows", reason });
        }
        Ok(TrainingData { schema, rows, generation: self.generation, choice })
    }
}

impl History {
    /// `Since` on the time column's values.
    fn since_value(&self, ms: i64, time_column: Option<&str>) -> Result<RowChoice, DataError> {
        let name = time_column.expect("called with a time column");
        let schema = self.schema.as_deref();
        let column =
            schema.and_then(|schema| schema.columns().iter().position(|column| column.name() == name));
        let column = column.ok_or_else(|| DataError::InvalidSelection {
            field: "rows.since",
            reason: format!("the time column {name:?} (--time-column) is not a column of the dataset"),
        })?;
        Ok(RowChoice::SinceValue { column, at: ms as f64 / 1e3 })
    }
}

impl TrainingData {
    /// The columns, to check a selection against.
    pub fn schema(&self) -> &Dataset {
        &self.schema
    }

    pub fn rows(&self) -> usize {
        self.rows.count
    }

    /// These rows without their newest `held` ones, and those held back.
    pub fn hold_out(&self, held: usize) -> (TrainingData, TrainingData) {
        let (fit, holdout) = self.rows.split_at(self.rows.count.saturating_sub(held));
        let part = |rows| TrainingData { rows, ..self.clone() };
        (part(fit), part(holdout))
    }

    /// Which rows these are, for the model to record.
    pub fn record(&self) -> TrainedRows {
        let (first_seq, last_seq) = self.rows.seq_range().expect("training data has rows");
        let choice = match self.choice {
            RowChoice::All | RowChoice::New => "all".to_owned(),
            RowChoice::Last(n) => format!("last {n}"),
            RowChoice::Since(ms) => format!("since {ms} ms"),
            RowChoice::SinceValue { at, .. } => format!("since {at} s by the time column"),
            RowChoice::After(_) => "new".to_owned(),
        };
        TrainedRows { generation: self.generation, first_seq, last_seq, choice }
    }

    /// The rows as one dataset: the base itself when the rows are exactly it.
    pub fn dataset(&self) -> Arc<Dataset> {
        if let [(Chunk::Base(base), range)] = self.rows.parts.as_slice()
            && range.len() == base.dataset.rows()
        {
            return base.dataset.clone();
        }
        Arc::new(self.rows.dataset(&self.schema, self.sha256()))
    }

    /// SHA-256 that tells these rows from others: the base's file and the rows' sequence numbers.
    pub fn sha256(&self) -> String {
        if let [(Chunk::Base(base), range)] = self.rows.parts.as_slice()
            && range.len() == base.dataset.rows()
        {
            return base.dataset.sha256().to_owned();
        }
        let mut hasher = Sha256::new();
        hasher.update(format!("generation {} of {}\n", self.generation, self.schema.sha256()));
        for (chunk, range) in &self.rows.parts {
            let first = chunk.first_seq() + range.start as u64;
            hasher.update(format!("{first}..{}\n", first + range.len() as u64));
        }
        crate::digest::hex(&hasher.finalize())
    }

    /// The statistics of the selected columns (the features, then the target) over these rows,
    /// when the chunks keep them.
    pub fn moments(&self, selection: &Selection) -> Option<Moments> {
        let index = |name: &str| self.schema.columns().iter().position(|column| column.name() == name);
        let keep: Option<Vec<usize>> =
            selection.features.iter().map(|name| index(name)).chain([index(&selection.target)]).collect();
        Some(self.rows.moments(self.schema.columns().len())?.select(&keep?))
    }
}
