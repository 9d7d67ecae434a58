//! Parses one chunk of records into column values, and joins the chunks' values in file order
//! into the dataset's columns, reporting the first problem in the file as a sequential reader
//! would.

use std::io::{Chain, Read};

use crate::data::DataError;
use crate::data::dataset::{BadValue, Column};

/// What the header says every row holds.
pub struct Layout {
    /// Fields per row, named or not.
    pub width: usize,
    pub columns: Vec<ColumnSpec>,
}

/// A named column; `required` columns (the default selection) must be numeric throughout.
pub struct ColumnSpec {
    pub name: String,
    /// 1-based position in the row.
    pub position: usize,
    pub required: bool,
}

/// One chunk's rows: each column's values up to its first bad value.
pub struct ChunkValues {
    rows: usize,
    columns: Vec<Vec<f64>>,
    /// Per column, its first bad value in the chunk and the chunk row it is on.
    first_bad: Vec<Option<(usize, BadValue)>>,
    /// The problem that stopped the chunk (a ragged row, bad UTF-8).
    stopped: Option<DataError>,
}

/// Reads the records of one chunk, knowing the line of the file each starts on.
pub struct ChunkReader<'a> {
    bytes: &'a [u8],
    csv: ::csv::Reader<Chain<&'a [u8], &'a [u8]>>,
    /// Bytes of the blank line put before a chunk that does not start the file (0 or 1).
    lead: usize,
    lines_before: u64,
}

impl<'a> ChunkReader<'a> {
    /// Reads `bytes`, which start on line `first_line` of the file. Records end at `\n` only, so
    /// line numbers count CRLF lines right (the `\r` left at the end of a line's last field is
    /// trimmed like other white space); row widths are checked here, after blank lines are
    /// skipped.
    pub fn new(bytes: &'a [u8], first_line: u64) -> Self {
        // The csv reader drops a byte-order mark at the start of its input, as at the start of a
        // file. Further on, a mark belongs to the value, so such a chunk is read after a blank
        // line, which the reader skips.
        let lead: &[u8] = if first_line == 1 { b"" } else { b"\n" };
        let csv = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .buffer_capacity(1 << 16)
            .terminator(::csv::Terminator::Any(b'\n'))
            .flexible(true)
            .from_reader(lead.chain(bytes));
        Self { bytes, csv, lead: lead.len(), lines_before: first_line - 1 - lead.len() as u64 }
    }

    /// Reads the next record that is not a blank line and returns its line.
    pub fn next_record(&mut self, record: &mut ::csv::StringRecord) -> Result<Option<u64>, DataError> {
        loop {
            // Reading into a `StringRecord` checks UTF-8 once per record rather than once per field.
            let more = self.csv.read_record(record).map_err(|error| self.located(error))?;
            // Records end at `\n` only, so a CRLF file's blank line arrives as one field holding `\r`.
            let blank = record.len() == 1 && record[0].trim().is_empty();
            if !more || !blank {
                return Ok(more.then(|| self.line(record.position())));
            }
        }
    }

    /// The line a record starts on. The csv reader gives the position before the empty lines it
    /// skips, so those are counted here.
    fn line(&self, position: Option<&::csv::Position>) -> u64 {
        let Some(position) = position else { return self.lines_before };
        let offset = position.byte() as usize;
        let rest = &self.bytes[offset.saturating_sub(self.lead)..];
        let skipped =
            self.lead.saturating_sub(offset) + rest.iter().take_while(|&&byte| byte == b'\n').count();
        self.lines_before + position.line() + skipped as u64
    }

    fn located(&self, error: ::csv::Error) -> DataError {
        let line = self.line(error.position());
        match error.into_kind() {
            ::csv::ErrorKind::Utf8 { .. } => DataError::NotUtf8 { line },
            ::csv::ErrorKind::Io(source) => DataError::Storage { action: "read the upload", source },
            other => DataError::Malformed { line, message: format!("{other:?}") },
        }
    }
}

/// Parses the rest of a chunk's records.
pub fn parse_records(reader: &mut ChunkReader, layout: &Layout) -> ChunkValues {
    let mut chunk = ChunkValues {
        rows: 0,
        columns: vec![Vec::new(); layout.columns.len()],
        first_bad: vec![None; layout.columns.len()],
        stopped: None,
    };
    let mut record = ::csv::StringRecord::new();
    loop {
        let line = match reader.next_record(&mut record) {
            Ok(Some(line)) => line,
            Ok(None) => return chunk,
            Err(stopped) => {
                chunk.stopped = Some(stopped);
                return chunk;
            }
        };
        if record.len() != layout.width {
            let error = DataError::RaggedRow { line, expected: layout.width, found: record.len() };
            chunk.stopped = Some(error);
            return chunk;
        }
        if let Some(error) = too_long_value(&record, line) {
            chunk.stopped = Some(error);
            return chunk;
        }
        chunk.push(&record, layout, line);
    }
}

impl ChunkValues {
    fn push(&mut self, record: &::csv::StringRecord, layout: &Layout, line: u64) {
        let columns = self.columns.iter_mut().zip(&mut self.first_bad).zip(&layout.columns);
        for ((values, first_bad), spec) in columns {
            if first_bad.is_some() {
                continue;
            }
            let field = &record[spec.position - 1];
            match parse_number(field) {
                Ok(value) => values.push(value),
                Err(reason) => {
                    *first_bad =
                        Some((self.rows, BadValue::new(line, spec.position, &spec.name, field, reason)))
                }
            }
        }
        self.rows += 1;
    }
}

/// The dataset's columns, filled chunk by chunk in file order. A column that is not required and
/// whose very first value is not a number is a text column (`Err` with that value); once a column
/// has started with numbers, a bad value anywhere fails the parse.
pub struct Columns<'a> {
    layout: &'a Layout,
    values: Vec<Result<Vec<f64>, BadValue>>,
    rows: usize,
}

impl<'a> Columns<'a> {
    pub fn new(layout: &'a Layout) -> Self {
        Self { layout, values: layout.columns.iter().map(|_| Ok(Vec::new())).collect(), rows: 0 }
    }

    /// Appends the next chunk's values, or returns the first problem in them.
    pub fn append(&mut self, chunk: ChunkValues) -> Result<(), DataError> {
        let mut first_bad: Option<BadValue> = None;
        for ((values, spec), bad) in self.values.iter_mut().zip(&self.layout.columns).zip(chunk.first_bad) {
            match (values.is_ok(), bad) {
                (true, Some((0, bad))) if self.rows == 0 && !spec.required => *values = Err(bad),
                (true, Some((_, bad))) if first_bad.as_ref().is_none_or(|first| bad.line < first.line) => {
                    first_bad = Some(bad)
                }
                _ => {}
            }
        }
        match (first_bad, chunk.stopped) {
            (Some(bad), Some(stopped)) if stopped.line().is_none_or(|line| bad.line < line) => {
                return Err(DataError::BadValue(bad));
            }
            (_, Some(stopped)) => return Err(stopped),
            (Some(bad), None) => return Err(DataError::BadValue(bad)),
            (None, None) => {}
        }
        for (values, chunk_values) in self.values.iter_mut().zip(chunk.columns) {
            if let Ok(values) = values {
                values.extend_from_slice(&chunk_values);
            }
        }
        self.rows += chunk.rows;
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn finish(self) -> Vec<Column> {
        let specs = &self.layout.columns;
        let columns = specs.iter().zip(self.values);
        columns
            .map(|(spec, values)| Column::new(spec.name.clone(), spec.position, values.map(Into::into)))
            .collect()
    }
}

/// A value of the record longer than [`MAX_VALUE_BYTES`](crate::data::MAX_VALUE_BYTES), if any.
fn too_long_value(record: &::csv::StringRecord, line: u64) -> Option<DataError> {
    use crate::data::MAX_VALUE_BYTES;
    // Most records are far shorter than one value may be: one comparison for them.
    if record.as_slice().len() <= MAX_VALUE_BYTES {
        return None;
    }
    let index = record.iter().position(|field| field.len() > MAX_VALUE_BYTES)?;
    Some(DataError::ValueTooLong { line, column: Some(index + 1), limit: MAX_VALUE_BYTES })
}

/// Parses one finite number, or says why the field is not one.
pub fn parse_number(field: &str) -> Result<f64, &'static str> {
    // Most fields have no padding; `trim` only when an end byte could be white space.
    let padded = |byte: Option<&u8>| byte.is_some_and(|b| b.is_ascii_whitespace() || !b.is_ascii());
    let bytes = field.as_bytes();
    let text = if padded(bytes.first()) || padded(bytes.last()) { field.trim() } else { field };
    if text.is_empty() {
        return Err("is empty");
    }
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        Ok(_) => Err("is not a finite number"),
        Err(_) => Err("is not a number"),
    }
}
