//! What `GET /v1/dataset` and `GET /v1/dataset/rows` show of a history: its columns with their
//! ranges, its rows, segments and arrival times, and samples of its rows for previews and plots.

use crate::units::{from_millis, rfc3339};
use serde::Serialize;

use super::activity::SourceView;
use super::history::{Chunk, History, RowChoice};
use crate::data::{ColumnSummary, RowSample};

/// The summary of the dataset.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Summary<'a> {
    pub rows: usize,
    /// Identifies these rows: the uploaded file's SHA-256 while nothing was appended to it.
    pub sha256: String,
    pub default_features: Vec<&'a str>,
    pub default_target: Option<&'a str>,
    pub columns: Vec<ColumnSummary<'a>>,
    /// An upload or a reset starts a new generation.
    pub generation: u64,
    /// Appended segments kept (the base not counted).
    pub segments: usize,
    /// The sequence number the next appended row gets.
    pub next_seq: u64,
    /// When the oldest and the newest kept rows arrived (RFC 3339), when there are rows.
    pub oldest_arrival: Option<String>,
    pub newest_arrival: Option<String>,
    /// What each source appended since the server started.
    pub sources: std::collections::BTreeMap<&'static str, SourceView>,
}

impl History {
    pub fn summary(&self, sources: Vec<(super::Source, SourceView)>) -> Summary<'_> {
        let schema = self.schema.as_deref();
        let columns = schema.map(|schema| schema.columns()).unwrap_or_default();
        let selection = schema.map(|schema| schema.default_selection());
        let arrivals: Vec<(i64, i64)> =
            self.chunks.iter().filter(|chunk| chunk.rows() > 0).map(Chunk::arrivals).collect();
        Summary {
            rows: self.rows,
            sha256: self.training(RowChoice::All, None).map(|data| data.sha256()).unwrap_or_default(),
            default_features: selection
                .map(|s| s.features.iter().map(String::as_str).collect())
                .unwrap_or_default(),
            default_target: selection.map(|s| s.target.as_str()),
            columns: columns
                .iter()
                .enumerate()
                .map(|(j, column)| ColumnSummary {
                    name: column.name(),
                    position: column.position(),
                    kind: if column.values().is_ok() { "number" } else { "text" },
                    stats: self.column_stats(j),
                })
                .collect(),
            generation: self.generation,
            segments: self.chunks.iter().filter(|chunk| matches!(chunk, Chunk::Segment(_))).count(),
            next_seq: self.next_seq,
            oldest_arrival: arrivals.iter().map(|a| a.0).min().map(|ms| rfc3339(from_millis(ms))),
            newest_arrival: arrivals.iter().map(|a| a.1).max().map(|ms| rfc3339(from_millis(ms))),
            sources: sources.into_iter().map(|(source, view)| (source.as_str(), view)).collect(),
        }
    }

    /// Up to `limit` rows, the first ones or (`spread`) evenly spaced over all of them; text
    /// columns read `None`.
    pub fn sample_rows(&self, limit: usize, spread: bool) -> RowSample<'_> {
        let count = limit.min(self.rows);
        let step = if spread && count > 0 { self.rows as f64 / count as f64 } else { 1.0 };
        let row_numbers: Vec<usize> = (0..count).map(|i| (i as f64 * step) as usize).collect();
        let width = self.schema.as_ref().map_or(0, |schema| schema.columns().len());
        let mut rows = Vec::with_capacity(count);
        let (mut chunk_index, mut chunk_start) = (0, 0);
        for &row in &row_numbers {
            while row >= chunk_start + self.chunks[chunk_index].rows() {
                chunk_start += self.chunks[chunk_index].rows();
                chunk_index += 1;
            }
            let chunk = &self.chunks[chunk_index];
            rows.push((0..width).map(|j| chunk.column(j).map(|values| values[row - chunk_start])).collect());
        }
        let columns = self.schema.as_ref().map(|schema| schema.column_names()).unwrap_or_default();
        RowSample { columns, row_numbers, rows }
    }
}

/// Rows per block of [`History::csv_blocks`].
const CSV_BLOCK_ROWS: usize = 16_384;

impl History {
    /// The rows as CSV, a header line and then blocks of rows, for a download of a dataset that
    /// has appended rows (or no file). Text columns, which only an uploaded file has, are empty.
    pub fn csv_blocks(self: std::sync::Arc<Self>) -> impl Iterator<Item = bytes::Bytes> + Send {
        let names = self.schema.as_ref().map(|schema| schema.column_names().join(",")).unwrap_or_default();
        let header = bytes::Bytes::from(format!("{names}\n"));
        let blocks: Vec<(usize, std::ops::Range<usize>)> = self
            .chunks
            .iter()
            .enumerate()
            .flat_map(|(index, chunk)| {
                (0..chunk.rows())
                    .step_by(CSV_BLOCK_ROWS)
                    .map(move |start| (index, start..(start + CSV_BLOCK_ROWS).min(chunk.rows())))
            })
            .collect();
        let width = self.schema.as_ref().map_or(0, |schema| schema.columns().len());
        std::iter::once(header).chain(blocks.into_iter().map(move |(index, rows)| {
            let chunk = &self.chunks[index];
            let columns: Vec<Option<&[f64]>> = (0..width).map(|j| chunk.column(j)).collect();
            let mut text = String::with_capacity(rows.len() * width * 12);
            for row in rows {
                for (j, column) in columns.iter().enumerate() {
                    if j > 0 {
                        text.push(',');
                    }
                    if let Some(values) = column {
                        text.push_str(&values[row].to_string());
                    }
                }
                text.push('\n');
            }
            bytes::Bytes::from(text)
        }))
    }
}
