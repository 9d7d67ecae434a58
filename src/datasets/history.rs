//! The dataset as it stands: an immutable snapshot of its rows, shared by every reader until the
//! next commit replaces it. The rows are the base (an uploaded file or the built-in sample),
//! then the appended segments, oldest first; every row has a sequence number, never reused, and
//! an arrival time. [`History::select`] picks the rows a training uses.

use std::sync::Arc;

use crate::data::{Column, ColumnStats, Dataset, Selection};
use crate::train::Moments;

use super::segment::Segment;

/// The rows at the start of a generation: an uploaded file or the built-in sample.
#[derive(Debug)]
pub struct Base {
    pub dataset: Arc<Dataset>,
    pub first_seq: u64,
    /// When it was stored, in milliseconds since 1970.
    pub arrived: i64,
    /// The statistics of all its columns, when every column is numeric and few enough.
    pub moments: Option<Moments>,
}

impl Base {
    pub fn new(dataset: Arc<Dataset>, first_seq: u64, arrived: i64) -> Self {
        let numeric: Option<Vec<&[f64]>> = dataset
            .columns()
            .iter()
            .map(|column| column.values().ok().and_then(|values| values.as_slice()))
            .collect();
        let moments = numeric
            .filter(|columns| columns.len() <= super::segment::MAX_MOMENT_COLUMNS)
            .map(|columns| Moments::of_columns(&columns))
            .filter(Moments::is_finite);
        Self { dataset, first_seq, arrived, moments }
    }
}

/// A run of rows: the base or one segment.
#[derive(Debug, Clone)]
pub enum Chunk {
    Base(Arc<Base>),
    Segment(Arc<Segment>),
}

impl Chunk {
    pub fn rows(&self) -> usize {
        match self {
            Self::Base(base) => base.dataset.rows(),
            Self::Segment(segment) => segment.header.rows,
        }
    }

    pub fn first_seq(&self) -> u64 {
        match self {
            Self::Base(base) => base.first_seq,
            Self::Segment(segment) => segment.header.first_seq,
        }
    }

    /// The values of column `j`, `None` for a text column.
    pub fn column(&self, j: usize) -> Option<&[f64]> {
        match self {
            Self::Base(base) => base.dataset.columns()[j].values().ok().and_then(|values| values.as_slice()),
            Self::Segment(segment) => Some(&segment.columns[j]),
        }
    }

    fn moments(&self) -> Option<&Moments> {
        match self {
            Self::Base(base) => base.moments.as_ref(),
            Self::Segment(segment) => segment.header.moments.as_ref(),
        }
    }

    fn first_arrived_since(&self, time: i64) -> usize {
        match self {
            Self::Base(base) if base.arrived >= time => 0,
            Self::Base(base) => base.dataset.rows(),
            Self::Segment(segment) => segment.first_arrived_since(time),
        }
    }

    /// The first and last arrival times.
    pub fn arrivals(&self) -> (i64, i64) {
        match self {
            Self::Base(base) => (base.arrived, base.arrived),
            Self::Segment(segment) => {
                (segment.arrival(0), segment.arrival(segment.header.rows.saturating_sub(1)))
            }
        }
    }

    fn stats(&self, j: usize) -> Option<ColumnStats> {
        match self {
            Self::Base(base) => base.dataset.columns()[j].stats(),
            Self::Segment(segment) => segment.header.stats.get(j).copied(),
        }
    }
}

/// Which rows a training uses (`"rows"` of `/train`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum RowChoice {
    /// Every retained row.
    #[default]
    All,
    /// The most recent `n` rows.
    Last(u64),
    /// The rows that arrived at or after this time (milliseconds since 1970).
    Since(i64),
    /// The rows the served model was not trained on (all of them without one).
    New,
    /// The rows after this sequence number.
    After(u64),
    /// The rows whose value in column `column` (their time, in seconds since 1970) is at or
    /// after `at`, for `Since` on a dataset with a time column.
    SinceValue { column: usize, at: f64 },
}

/// The dataset's rows at one moment.
#[derive(Debug, Clone)]
pub struct History {
    pub generation: u64,
    /// Whether the base is an uploaded file (rather than the built-in sample or nothing).
    pub uploaded: bool,
    /// The columns (a dataset of no rows), `None` while no dataset exists.
    pub schema: Option<Arc<Dataset>>,
    pub chunks: Vec<Chunk>,
    /// The sequence number the next appended row gets.
    pub next_seq: u64,
    pub rows: usize,
}

/// Some rows of the history: whole chunks or parts of them.
#[derive(Debug, Clone)]
pub struct Rows {
    pub parts: Vec<(Chunk, std::ops::Range<usize>)>,
    pub count: usize,
}

impl History {
    /// The rows `choice` names.
    pub fn select(&self, choice: RowChoice) -> Rows {
        if let RowChoice::SinceValue { column, at } = choice {
            return self.select_by_value(column, at);
        }
        let start = |chunk: &Chunk, skipped: &mut usize| -> usize {
            match choice {
                RowChoice::All | RowChoice::New | RowChoice::SinceValue { .. } => 0,
                RowChoice::Last(n) => {
                    let skip = (self.rows as u64).saturating_sub(n) as usize;
                    let here = skip.saturating_sub(*skipped).min(chunk.rows());
                    *skipped += chunk.rows();
                    here
                }
                RowChoice::Since(time) => chunk.first_arrived_since(time),
                RowChoice::After(seq) => {
                    (seq + 1).saturating_sub(chunk.first_seq()).min(chunk.rows() as u64) as usize
                }
            }
        };
        let mut skipped = 0;
        let parts: Vec<_> = self
            .chunks
            .iter()
            .filter_map(|chunk| {
                let first = start(chunk, &mut skipped);
                (first < chunk.rows()).then(|| (chunk.clone(), first..chunk.rows()))
            })
            .collect();
        let count = parts.iter().map(|(_, range)| range.len()).sum();
        Rows { parts, count }
    }

    /// The runs of rows whose value in `column` is at least `at`, in order.
    fn select_by_value(&self, column: usize, at: f64) -> Rows {
        let mut parts = Vec::new();
        for chunk in &self.chunks {
            let Some(values) = chunk.column(column) else { continue };
            let mut start = None;
            for (row, value) in values.iter().enumerate() {
                match (*value >= at, start) {
                    (true, None) => start = Some(row),
                    (false, Some(first)) => {
                        parts.push((chunk.clone(), first..row));
                        start = None;
                    }
                    _ => {}
                }
            }
            if let Some(first) = start {
                parts.push((chunk.clone(), first..values.len()));
            }
        }
        let count = parts.iter().map(|(_, range)| range.len()).sum();
        Rows { parts, count }
    }

    /// Each column's range and mean over every row (`None` for text columns).
    pub fn column_stats(&self, j: usize) -> Option<ColumnStats> {
        let parts: Vec<(ColumnStats, usize)> =
            self.chunks.iter().map(|chunk| Some((chunk.stats(j)?, chunk.rows()))).collect::<Option<_>>()?;
        let rows: usize = parts.iter().map(|(_, rows)| rows).sum();
        let fold = |pick: fn(&ColumnStats) -> f64, keep: fn(f64, f64) -> f64| {
            parts.iter().map(|(stats, _)| pick(stats)).reduce(keep)
        };
        Some(ColumnStats {
            min: fold(|s| s.min, f64::min)?,
            mean: parts.iter().map(|(stats, n)| stats.mean * (*n as f64 / rows as f64)).sum(),
            max: fold(|s| s.max, f64::max)?,
        })
    }
}

impl Rows {
    /// The first `count` rows, and the rest.
    pub fn split_at(&self, count: usize) -> (Rows, Rows) {
        let (mut head, mut tail, mut seen) = (Vec::new(), Vec::new(), 0);
        for (chunk, range) in &self.parts {
            let cut = (range.start + count.saturating_sub(seen)).min(range.end);
            if cut > range.start {
                head.push((chunk.clone(), range.start..cut));
            }
            if cut < range.end {
                tail.push((chunk.clone(), cut..range.end));
            }
            seen += range.len();
        }
        let rows = |parts: Vec<(Chunk, std::ops::Range<usize>)>| {
            let count = parts.iter().map(|(_, range)| range.len()).sum();
            Rows { parts, count }
        };
        (rows(head), rows(tail))
    }

    /// The sequence numbers of the first and the last row.
    pub fn seq_range(&self) -> Option<(u64, u64)> {
        let (first_chunk, first_range) = self.parts.first()?;
        let (last_chunk, last_range) = self.parts.last()?;
        let first = first_chunk.first_seq() + first_range.start as u64;
        Some((first, last_chunk.first_seq() + last_range.end as u64 - 1))
    }

    /// The statistics of these rows over all columns, without reading whole chunks' rows; `None`
    /// when a chunk has none (text columns, too many columns, values near `f64`'s limits).
    pub fn moments(&self, columns: usize) -> Option<Moments> {
        let mut partial = Vec::new();
        let mut whole = Vec::new();
        for (chunk, range) in &self.parts {
            match range.len() == chunk.rows() {
                true => whole.push(chunk.moments()?),
                false => {
                    let values: Option<Vec<&[f64]>> =
                        (0..columns).map(|j| chunk.column(j).map(|c| &c[range.clone()])).collect();
                    partial.push(Some(Moments::of_columns(&values?)).filter(Moments::is_finite)?);
                }
            }
        }
        whole.extend(partial.iter());
        Some(Moments::merge_all(&whole, columns))
    }

    /// These rows as one dataset of `schema`'s columns, to train on.
    pub fn dataset(&self, schema: &Dataset, sha256: String) -> Dataset {
        let columns = schema
            .columns()
            .iter()
            .enumerate()
            .map(|(j, column)| {
                let values = column.values().map(|_| {
                    let mut values = Vec::with_capacity(self.count);
                    for (chunk, range) in &self.parts {
                        values.extend_from_slice(&chunk.column(j).expect("a numeric column")[range.clone()]);
                    }
                    ndarray::Array1::from(values)
                });
                Column::new(column.name().to_owned(), column.position(), values.map_err(Clone::clone))
            })
            .collect();
        Dataset::new(columns, self.count, schema.default_selection().clone(), sha256)
    }
}

/// A dataset of `names`, all numeric, with no rows: the columns a first batch defines.
pub fn schema_of(names: &[String]) -> Dataset {
    let columns = names
        .iter()
        .enumerate()
        .map(|(j, name)| Column::new(name.clone(), j + 1, Ok(ndarray::Array1::zeros(0))))
        .collect();
    Dataset::new(columns, 0, Selection::default_for(names), String::new())
}
