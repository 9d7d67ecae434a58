//! Streaming CSV parser: reads a header and numeric columns without loading the file whole.
//!
//! The first row names the columns. A column with an empty name is the row index that R and
//! pandas write and is ignored. The default feature and target columns (see
//! [`Selection::default_for`]) must hold finite numbers on every row. Another column is a text
//! column (never trained on) when its first value is not a number; once a column has started
//! with numbers, every later value must be one too. The first bad value stops the parse with its
//! line and column, so a typo never turns a numeric column into text.

use std::io::Read;

use sha2::{Digest, Sha256};

use super::DataError;
use super::dataset::{BadValue, Column, Dataset, Selection};

/// The most named columns a dataset may have.
pub const MAX_COLUMNS: usize = 1_000;

/// Parses and validates a whole CSV document, and fingerprints its bytes (SHA-256) on the way.
pub fn parse_csv(reader: impl Read) -> Result<Dataset, DataError> {
    let mut csv = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .buffer_capacity(1 << 16)
        // Only `\n` ends a record, so line numbers count CRLF lines right; the `\r` left at the
        // end of a line's last field is trimmed like other white space.
        .terminator(::csv::Terminator::Any(b'\n'))
        // Row widths are checked here, after blank lines are skipped.
        .flexible(true)
        .from_reader(HashingReader { inner: reader, hasher: Sha256::new() });
    let mut record = ::csv::StringRecord::new();
    if !read_record(&mut csv, &mut record)? {
        return Err(DataError::Empty);
    }
    let header = Header::parse(&record)?;
    let defaults = Selection::default_for(&header.names());
    let mut columns: Vec<ColumnBuilder> = header
        .named
        .iter()
        .map(|(position, name)| ColumnBuilder::new(name, *position, defaults.contains(name)))
        .collect();

    let mut rows = 0;
    while read_record(&mut csv, &mut record)? {
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != header.width {
            return Err(DataError::RaggedRow { line, expected: header.width, found: record.len() });
        }
        for column in &mut columns {
            column.push(&record[column.position - 1], line)?;
        }
        rows += 1;
    }
    if rows < 2 {
        return Err(DataError::TooFewRows { rows });
    }
    let mut source = csv.into_inner();
    // The csv reader stops at the end of the data; anything after it still belongs to the file.
    std::io::copy(&mut source, &mut std::io::sink()).map_err(DataError::storage("read the upload"))?;
    let columns = columns.into_iter().map(ColumnBuilder::finish).collect();
    Ok(Dataset::new(columns, rows, defaults, hex(&source.hasher.finalize())))
}

/// Passes bytes through while hashing them.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.hasher.update(&buf[..read]);
        Ok(read)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Reads the next record, turning the csv crate's errors into [`DataError`]s with a line.
/// Reads the next record that is not a blank line.
fn read_record(
    csv: &mut ::csv::Reader<impl Read>,
    record: &mut ::csv::StringRecord,
) -> Result<bool, DataError> {
    loop {
        let more = read_any_record(csv, record)?;
        // Records end at `\n` only, so a CRLF file's blank line arrives as one field holding `\r`.
        let blank = record.len() == 1 && record[0].trim().is_empty();
        if !more || !blank {
            return Ok(more);
        }
    }
}

fn read_any_record(
    csv: &mut ::csv::Reader<impl Read>,
    record: &mut ::csv::StringRecord,
) -> Result<bool, DataError> {
    // Reading into a `StringRecord` checks UTF-8 once per record rather than once per field.
    csv.read_record(record).map_err(|error| {
        let line = error.position().map_or(0, |p| p.line());
        match error.into_kind() {
            ::csv::ErrorKind::UnequalLengths { pos, expected_len, len } => DataError::RaggedRow {
                line: pos.map_or(line, |p| p.line()),
                expected: expected_len as usize,
                found: len as usize,
            },
            ::csv::ErrorKind::Utf8 { pos, .. } => DataError::NotUtf8 { line: pos.map_or(line, |p| p.line()) },
            ::csv::ErrorKind::Io(source) => DataError::Storage { action: "read the upload", source },
            other => DataError::Malformed { line, message: format!("{other:?}") },
        }
    })
}

/// The header row: how many fields each row has and which of them are named.
struct Header {
    width: usize,
    /// (1-based position in the row, name) of every named column.
    named: Vec<(usize, String)>,
}

impl Header {
    fn parse(record: &::csv::StringRecord) -> Result<Self, DataError> {
        // Counted before anything else, so a hostile header of a million names costs one pass.
        let count =
            record.iter().filter(|field| !field.trim_start_matches('\u{feff}').trim().is_empty()).count();
        if count > MAX_COLUMNS {
            return Err(DataError::TooManyColumns { count, max: MAX_COLUMNS });
        }
        let mut named: Vec<(usize, String)> = Vec::new();
        for (index, field) in record.iter().enumerate() {
            let position = index + 1;
            let name = field.trim_start_matches('\u{feff}').trim();
            if name.is_empty() {
                continue;
            }
            if name.parse::<f64>().is_ok() {
                return Err(DataError::HeaderLooksLikeData { column: position, value: name.into() });
            }
            if let Some((first, _)) = named.iter().find(|(_, existing)| existing == name) {
                return Err(DataError::DuplicateColumn {
                    name: name.into(),
                    first: *first,
                    second: position,
                });
            }
            named.push((position, name.to_owned()));
        }
        if named.len() < 2 {
            return Err(DataError::TooFewColumns { named: named.len() });
        }
        Ok(Self { width: record.len(), named })
    }

    fn names(&self) -> Vec<String> {
        self.named.iter().map(|(_, name)| name.clone()).collect()
    }
}

/// Collects one column's values while rows stream past.
struct ColumnBuilder {
    name: String,
    position: usize,
    /// A bad value in a required column fails the whole parse; elsewhere it marks the column as
    /// text if it is the first value, and fails the parse otherwise.
    required: bool,
    values: Result<Vec<f64>, BadValue>,
}

impl ColumnBuilder {
    fn new(name: &str, position: usize, required: bool) -> Self {
        Self { name: name.to_owned(), position, required, values: Ok(Vec::new()) }
    }

    fn push(&mut self, field: &str, line: u64) -> Result<(), DataError> {
        let Ok(values) = &mut self.values else {
            return Ok(());
        };
        match parse_number(field) {
            Ok(value) => values.push(value),
            Err(reason) => {
                let bad = BadValue::new(line, self.position, &self.name, field, reason);
                if self.required || !values.is_empty() {
                    return Err(DataError::BadValue(bad));
                }
                self.values = Err(bad);
            }
        }
        Ok(())
    }

    fn finish(self) -> Column {
        Column::new(self.name, self.position, self.values.map(Into::into))
    }
}

/// Parses one finite number, or says why the field is not one.
fn parse_number(field: &str) -> Result<f64, &'static str> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Dataset, DataError> {
        parse_csv(text.as_bytes())
    }

    #[test]
    fn reads_the_r_style_income_file_and_ignores_the_index_column() {
        let data = parse("\"\",\"Education\",\"Income\"\n\"1\",10,26.5\n\"2\",12,30\n").unwrap();
        assert_eq!(data.column_names(), ["Education", "Income"]);
        assert_eq!(data.rows(), 2);
        assert_eq!(data.default_selection().features, ["Education"]);
        assert_eq!(data.default_selection().target, "Income");
    }

    #[test]
    fn the_fingerprint_is_the_sha256_of_the_bytes() {
        let data = parse("a,b\n1,2\n3,4\n").unwrap();
        // sha256sum of the same 12 bytes.
        assert_eq!(data.sha256(), "b9485148546419a0f6a85e8d708c923557c15d7f3c7d078ef1fa7f7c0f57d5a5");
    }

    #[test]
    fn byte_order_mark_crlf_and_padding_are_accepted() {
        let data = parse("\u{feff}a, b\r\n1, 2\r\n 3 ,4\r\n").unwrap();
        assert_eq!(data.column_names(), ["a", "b"]);
        let (x, y) = data.design(data.default_selection());
        assert_eq!(x.column(0).to_vec(), [1.0, 3.0]);
        assert_eq!(y.to_vec(), [2.0, 4.0]);
    }

    #[test]
    fn crlf_files_count_lines_right_and_skip_blank_lines() {
        let error = parse("a,b\r\n1,2\r\n3,4,5\r\n").unwrap_err().to_string();
        assert_eq!(error, "line 3: expected 2 values like the header, found 3");
        let error = parse("a,b\r\n\r\n1,2\r\n3,x\r\n").unwrap_err().to_string();
        assert!(error.starts_with("line 4, column 2"), "{error}");
        let data = parse("\"a\",\"b\"\r\n\"1\",\"2\"\r\n3,4\r\n\r\n").unwrap();
        assert_eq!((data.rows(), data.column_names()), (2, vec!["a", "b"]));
    }

    #[test]
    fn first_bad_value_is_named_by_line_and_column() {
        let error = parse("a,b\n1,2\n3,x\n5,6\n").unwrap_err().to_string();
        assert_eq!(error, "line 3, column 2 (\"b\"): \"x\" is not a number");
        let error = parse("a,b\n1,2\n1e400,4\n").unwrap_err().to_string();
        assert_eq!(error, "line 3, column 1 (\"a\"): \"1e400\" is not a finite number");
        let error = parse("a,b\n1,2\nNaN,4\n").unwrap_err().to_string();
        assert!(error.starts_with("line 3, column 1"), "{error}");
        let error = parse("a,b\n1,2\n,4\n").unwrap_err().to_string();
        assert!(error.ends_with("is empty"), "{error}");
    }

    #[test]
    fn text_outside_the_default_columns_is_kept_as_a_text_column() {
        let data = parse("Name,Education,Income\nann,10,20\nbob,12,30\n").unwrap();
        assert_eq!(data.default_selection().features, ["Education"]);
        assert!(data.column("Name").unwrap().values().is_err());
    }

    #[test]
    fn a_typo_in_a_numeric_column_outside_the_defaults_is_still_an_error() {
        let error = parse("Education,Seniority,Income\n12,50,30\n14,x,40\n").unwrap_err().to_string();
        assert_eq!(error, "line 3, column 2 (\"Seniority\"): \"x\" is not a number");
    }

    #[test]
    fn structural_problems_are_rejected() {
        assert!(matches!(parse(""), Err(DataError::Empty)));
        assert!(matches!(parse("a,b\n1,2\n"), Err(DataError::TooFewRows { rows: 1 })));
        assert!(matches!(
            parse("a,b\n1,2\n3\n"),
            Err(DataError::RaggedRow { line: 3, expected: 2, found: 1 })
        ));
        assert!(matches!(parse("a,a\n1,2\n3,4\n"), Err(DataError::DuplicateColumn { .. })));
        assert!(matches!(parse("1,2\n1,2\n3,4\n"), Err(DataError::HeaderLooksLikeData { column: 1, .. })));
        assert!(matches!(parse("a,\n1,2\n3,4\n"), Err(DataError::TooFewColumns { named: 1 })));
        assert!(matches!(parse_csv(&b"a,b\n1,2\n\xff,4\n"[..]), Err(DataError::NotUtf8 { line: 3 })));
        let wide = (0..=MAX_COLUMNS).map(|i| format!("c{i}")).collect::<Vec<_>>().join(",");
        assert!(matches!(parse(&wide), Err(DataError::TooManyColumns { .. })));
    }
}
