//! A batch of rows to append, as every source hands it over, and what became of it. A batch is
//! all or nothing: [`conform`] checks it against the dataset's columns before anything is
//! stored, and names the row and the column of the first problem.

use crate::data::{Dataset, excerpt};

/// Where appended rows came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Http,
    WebSocket,
    Mqtt,
    Kafka,
}

impl Source {
    pub const ALL: [Source; 4] = [Self::Http, Self::WebSocket, Self::Mqtt, Self::Kafka];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::WebSocket => "websocket",
            Self::Mqtt => "mqtt",
            Self::Kafka => "kafka",
        }
    }
}

/// Where a batch of Kafka records ends: the offset to read next on a partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaPosition {
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
}

/// Rows to append: the batch's own column names and one vector of values per column.
#[derive(Debug, Clone)]
pub struct Batch {
    pub columns: Vec<String>,
    pub values: Vec<Vec<f64>>,
    pub source: Source,
    /// An idempotency key: a batch retried under the same key is appended once.
    pub key: Option<String>,
    /// For Kafka: stored in the same write as the rows.
    pub position: Option<KafkaPosition>,
}

impl Batch {
    pub fn rows(&self) -> usize {
        self.values.first().map_or(0, Vec::len)
    }
}

/// A batch that is durable in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Appended {
    pub appended: usize,
    /// Rows in the dataset after it.
    pub rows: usize,
    /// The sequence number of its last row.
    pub seq: u64,
    /// Whether the batch's key had been appended already (and nothing was appended now); shown
    /// only when it had.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// Why a batch was not appended.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// The batch itself is wrong: retrying it cannot help.
    #[error("{0}")]
    Invalid(String),
    /// The batch holds more rows than one batch may.
    #[error("the batch has {rows} rows; at most {limit} are taken at once (--max-batch-rows)")]
    TooLarge { rows: usize, limit: usize },
    /// The store did not take the rows: retrying later may.
    #[error(transparent)]
    Store(#[from] crate::storage::StoreError),
    /// The server is stopping.
    #[error("the server is shutting down; the rows were not appended")]
    ShuttingDown,
    /// This node does not keep the dataset.
    #[error("this node does not keep the dataset; append rows on the trainer")]
    NotHere,
}

/// The batch's values in `schema`'s column order, or the first problem with it.
pub fn conform<'a>(batch: &'a Batch, schema: &Dataset) -> Result<Vec<&'a [f64]>, AppendError> {
    if let Some(text) = schema.columns().iter().find(|column| column.values().is_err()) {
        return Err(AppendError::Invalid(format!(
            "the dataset's column {:?} holds text; rows can be appended only to a dataset whose \
             columns are all numbers (upload one without it, or DELETE /v1/data to begin anew)",
            excerpt(text.name())
        )));
    }
    let names = schema.column_names();
    if let Some(extra) = batch.columns.iter().find(|name| !names.contains(&name.as_str())) {
        return Err(AppendError::Invalid(format!(
            "column {:?}: the dataset has no such column; its columns are {}",
            excerpt(extra),
            quoted(&names)
        )));
    }
    names
        .iter()
        .map(|name| match batch.columns.iter().position(|given| given == name) {
            Some(index) => Ok(batch.values[index].as_slice()),
            None => Err(AppendError::Invalid(format!(
                "row 1, column {:?}: missing; every row must give each of the dataset's columns ({})",
                excerpt(name),
                quoted(&names)
            ))),
        })
        .collect()
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|name| format!("{name:?}")).collect::<Vec<_>>().join(", ")
}

/// Checks the column names of a batch that defines a new dataset's columns.
pub fn check_new_columns(columns: &[String]) -> Result<(), AppendError> {
    if columns.len() < 2 {
        return Err(AppendError::Invalid(format!(
            "a new dataset needs at least two columns (features and a target); the batch names {}",
            columns.len()
        )));
    }
    if columns.len() > crate::data::MAX_COLUMNS {
        return Err(AppendError::Invalid(format!(
            "the batch has {} columns; at most {} are supported",
            columns.len(),
            crate::data::MAX_COLUMNS
        )));
    }
    match columns.iter().find(|name| name.is_empty() || name.len() > crate::data::MAX_NAME_BYTES) {
        Some(name) => Err(AppendError::Invalid(format!(
            "column {:?}: a column name must have 1 to {} bytes",
            excerpt(name),
            crate::data::MAX_NAME_BYTES
        ))),
        None => Ok(()),
    }
}
