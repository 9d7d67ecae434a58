//! Datasets: parsing and validating CSV files, and choosing the feature and target columns.
//! Where the active one is kept is [`crate::datasets`].

mod csv;
mod dataset;

pub use self::csv::{MAX_COLUMNS, MAX_NAME_BYTES, MAX_ROW_BYTES, MAX_VALUE_BYTES, parse_csv, parse_number};
pub use dataset::{
    BadValue, Column, ColumnStats, ColumnSummary, Dataset, DatasetSummary, RowSample, Selection,
};

/// The dataset served before anything is uploaded: ISLR's Income1, as the original used.
pub const DEFAULT_DATASET_CSV: &[u8] = include_bytes!("../../dataset/Income1.csv");

/// The built-in default dataset, parsed.
pub fn default_dataset() -> Dataset {
    parse_csv(DEFAULT_DATASET_CSV).expect("the embedded default dataset is valid")
}

/// The most characters of a value that an error message quotes.
pub const EXCERPT_CHARS: usize = 40;

/// `text`, or its first [`EXCERPT_CHARS`] characters and `...` when it is longer: what an error
/// message quotes of a value, so that a bad 100 MB field does not come back as a 100 MB message.
pub fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// Why a dataset or a column selection was rejected, or could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("the file is empty: expected a header row and at least 2 data rows")]
    Empty,
    #[error("line {line} is not valid UTF-8")]
    NotUtf8 { line: u64 },
    #[error(
        "line 1, column {column}: the header looks like data ({value:?}); the first row must name the columns"
    )]
    HeaderLooksLikeData { column: usize, value: String },
    #[error("line 1: column name {name:?} appears twice (columns {first} and {second})")]
    DuplicateColumn { name: String, first: usize, second: usize },
    #[error("the header must name at least two columns (features and a target); it names {named}")]
    TooFewColumns { named: usize },
    #[error("the file has {count} columns; at most {max} are supported")]
    TooManyColumns { count: usize, max: usize },
    #[error("line {line}: expected {expected} values like the header, found {found}")]
    RaggedRow { line: u64, expected: usize, found: usize },
    #[error("the file has {rows} data rows; at least 2 are needed")]
    TooFewRows { rows: usize },
    #[error("{0}")]
    BadValue(BadValue),
    #[error("line {line}: malformed CSV: {message}")]
    Malformed { line: u64, message: String },
    #[error(
        "line {line}{}: a value longer than {limit} bytes; no number is that long (values are limited to {} KiB)",
        column.map(|column| format!(", column {column}")).unwrap_or_default(), limit / 1024
    )]
    ValueTooLong { line: u64, column: Option<usize>, limit: usize },
    #[error("line {line}: a row longer than {} MiB", limit >> 20)]
    RowTooLong { line: u64, limit: usize },
    #[error("line 1, column {column}: a column name of {bytes} bytes; names are limited to {limit} bytes")]
    NameTooLong { column: usize, bytes: usize, limit: usize },
    #[error("{field}: no column named {name:?}; the columns are {available}")]
    UnknownColumn { field: &'static str, name: String, available: String },
    #[error("{field}: column {name:?} is not numeric: {bad}")]
    NotNumeric { field: &'static str, name: String, bad: Box<BadValue> },
    #[error("{field}: {reason}")]
    InvalidSelection { field: &'static str, reason: String },
    #[error("could not {action}: {source}")]
    Storage { action: &'static str, source: std::io::Error },
}

impl DataError {
    /// Wraps an I/O error with what was being done when it happened.
    pub fn storage(action: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| DataError::Storage { action, source }
    }

    /// The line of the file the problem is on, for problems found on a line.
    pub fn line(&self) -> Option<u64> {
        match self {
            DataError::NotUtf8 { line }
            | DataError::RaggedRow { line, .. }
            | DataError::Malformed { line, .. }
            | DataError::ValueTooLong { line, .. }
            | DataError::RowTooLong { line, .. } => Some(*line),
            DataError::BadValue(bad) => Some(bad.line),
            _ => None,
        }
    }
}
