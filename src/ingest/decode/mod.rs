//! Rows from the wire: JSON (`{"rows": [{"x": 1, "y": 2}, ...]}`, an array of rows, or one
//! row), NDJSON (one row object per line) and CSV (a header line, then rows), decoded straight
//! into columns, in one pass, without a map per row. Every source uses these. A problem is
//! named by its row (1-based, within the batch) and column, and the whole batch is refused.

mod flat;
mod general;
mod number;

use crate::data::{MAX_NAME_BYTES, excerpt};

/// Decoded rows: the column names in the order the first row gave them, one vector per column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub values: Vec<Vec<f64>>,
}

/// A JSON batch: its rows, and what else the envelope carried.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Envelope {
    pub rows: Rows,
    pub batch_id: Option<String>,
    /// The WebSocket frame's sequence number.
    pub seq: Option<u64>,
}

impl Rows {
    pub fn count(&self) -> usize {
        self.values.first().map_or(0, Vec::len)
    }

    /// Adds one value of the current row, checking the column.
    fn push(&mut self, row: usize, name: &str, value: f64, seen: &mut Vec<bool>) -> Result<(), String> {
        let index = match self.columns.iter().position(|column| column == name) {
            Some(index) => index,
            None if row == 1 => {
                if name.is_empty() || name.len() > MAX_NAME_BYTES {
                    return Err(format!(
                        "row 1, column {:?}: a column name must have 1 to {MAX_NAME_BYTES} bytes",
                        excerpt(name)
                    ));
                }
                self.columns.push(name.to_owned());
                self.values.push(Vec::new());
                seen.push(false);
                self.columns.len() - 1
            }
            None => {
                return Err(format!(
                    "row {row}, column {:?}: not a column of the batch's first row ({})",
                    excerpt(name),
                    self.columns.join(", ")
                ));
            }
        };
        if std::mem::replace(&mut seen[index], true) {
            return Err(format!("row {row}, column {:?}: given twice", excerpt(name)));
        }
        self.values[index].push(value);
        Ok(())
    }

    /// Checks that the row just read gave every column.
    fn end_row(&self, row: usize, seen: &mut [bool]) -> Result<(), String> {
        if let Some(missing) = seen.iter().position(|seen| !seen) {
            return Err(format!("row {row}, column {:?}: missing", excerpt(&self.columns[missing])));
        }
        seen.iter_mut().for_each(|seen| *seen = false);
        Ok(())
    }
}

/// Decodes a JSON batch `{"rows": [...], "batch_id": "...", "seq": n}`, an array of rows, or
/// one row object.
pub fn json(bytes: &[u8]) -> Result<Envelope, String> {
    if let Some(envelope) = flat::envelope(bytes) {
        return Ok(envelope);
    }
    // Checked whole at once (fast), so that the parser need not check every string it reads.
    let text = std::str::from_utf8(bytes).map_err(|error| format!("not valid JSON: not UTF-8: {error}"))?;
    general::envelope(text)
}

/// Decodes NDJSON: one row object per line (blank lines skipped).
pub fn ndjson(bytes: &[u8]) -> Result<Rows, String> {
    if let Some(rows) = flat::ndjson(bytes) {
        return Ok(rows);
    }
    let mut rows = Rows::default();
    let mut seen = Vec::new();
    let lines = bytes.split(|&b| b == b'\n').filter(|line| !line.iter().all(u8::is_ascii_whitespace));
    for (index, line) in lines.enumerate() {
        let line = std::str::from_utf8(line)
            .map_err(|error| format!("line {}: not valid JSON: not UTF-8: {error}", index + 1))?;
        general::row(line, &mut rows, index + 1, &mut seen)
            .map_err(|why| format!("line {}: {why}", index + 1))?;
    }
    Ok(rows)
}

/// Decodes CSV with a header line.
pub fn csv(bytes: &[u8]) -> Result<Rows, String> {
    let mut reader = ::csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes);
    let header = reader.headers().map_err(|error| format!("the header line: {error}"))?.clone();
    let columns: Vec<String> = header.iter().map(|name| name.trim().to_owned()).collect();
    let mut rows = Rows { values: vec![Vec::new(); columns.len()], columns: Vec::new() };
    let mut record = ::csv::StringRecord::new();
    let mut row = 0;
    while reader.read_record(&mut record).map_err(|error| format!("row {}: {error}", row + 1))? {
        row += 1;
        if record.len() != columns.len() {
            return Err(format!(
                "row {row}: {} values where the header names {}",
                record.len(),
                columns.len()
            ));
        }
        for (j, field) in record.iter().enumerate() {
            let value = crate::data::parse_number(field).map_err(|why| {
                format!("row {row}, column {:?}: {:?} {why}", excerpt(&columns[j]), excerpt(field))
            })?;
            rows.values[j].push(value);
        }
    }
    rows.columns = columns;
    check_unique(&rows.columns)?;
    Ok(rows)
}

/// A payload of unknown shape (MQTT, Kafka): JSON when it starts like JSON, CSV otherwise.
pub fn payload(bytes: &[u8]) -> Result<Envelope, String> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{' | b'[') => json(bytes),
        Some(_) => csv(bytes).map(|rows| Envelope { rows, ..Envelope::default() }),
        None => Err("the payload is empty".into()),
    }
}

fn check_unique(columns: &[String]) -> Result<(), String> {
    for (j, name) in columns.iter().enumerate() {
        if columns[..j].contains(name) {
            return Err(format!("column {:?} is named twice", excerpt(name)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_batches_arrays_and_single_rows_decode_into_columns_in_order() {
        let batch =
            json(br#"{"rows": [{"Temp": 1, "Load": 2.5}, {"Load": 4, "Temp": -1e3}], "batch_id": "b7"}"#)
                .unwrap();
        assert_eq!(batch.rows.columns, ["Temp", "Load"]);
        assert_eq!(batch.rows.values, [vec![1.0, -1000.0], vec![2.5, 4.0]]);
        assert_eq!(batch.batch_id.as_deref(), Some("b7"));
        let array = json(br#"[{"x": 1, "y": 2}]"#).unwrap();
        assert_eq!(array.rows.count(), 1);
        let one = payload(br#" {"x": 3, "y": 4}"#).unwrap();
        assert_eq!(
            (one.rows.columns.clone(), one.rows.values.clone()),
            (vec!["x".into(), "y".into()], vec![vec![3.0], vec![4.0]])
        );
        let frame = json(br#"{"seq": 9, "rows": []}"#).unwrap();
        assert_eq!((frame.seq, frame.rows.count()), (Some(9), 0));
    }

    #[test]
    fn bad_rows_are_named_by_row_and_column() {
        let error = |bytes: &[u8]| json(bytes).unwrap_err();
        assert!(
            error(br#"{"rows": [{"x": 1, "y": 2}, {"x": "abc", "y": 2}]}"#)
                .starts_with(r#"row 2, column "x": "abc" is not a number"#)
        );
        assert!(
            error(br#"{"rows": [{"x": 1, "y": 2}, {"x": 1}]}"#).starts_with(r#"row 2, column "y": missing"#)
        );
        assert!(
            error(br#"{"rows": [{"x": 1, "y": 2}, {"x": 1, "y": 2, "z": 3}]}"#)
                .starts_with(r#"row 2, column "z""#)
        );
        assert!(error(br#"{"rows": [{"x": 1, "x": 2}]}"#).contains("given twice"));
        assert!(error(br#"{"rows": [{"x": null}]}"#).contains("null is not a number"));
        assert!(error(br#"{"rows": [{"x": 1e999}]}"#).contains("number out of range at line 1 column 21"));
        assert!(error(br#"{"rows": [{"x": 1}"#).starts_with("not valid JSON"));
    }

    #[test]
    fn ndjson_and_csv_decode_and_name_their_problems() {
        let rows = ndjson(b"{\"x\": 1, \"y\": 2}\n\n{\"y\": 4, \"x\": 3}\n").unwrap();
        assert_eq!(rows.values, [vec![1.0, 3.0], vec![2.0, 4.0]]);
        assert!(
            ndjson(b"{\"x\": 1}\n{\"x\": true}\n").unwrap_err().starts_with("line 2: row 2, column \"x\"")
        );
        let rows = csv(b"x,y\n1,2\n3,4.5\n").unwrap();
        assert_eq!(
            (rows.columns.clone(), rows.values.clone()),
            (vec!["x".into(), "y".into()], vec![vec![1.0, 3.0], vec![2.0, 4.5]])
        );
        assert!(
            csv(b"x,y\n1,2\n3,inf\n")
                .unwrap_err()
                .starts_with("row 2, column \"y\": \"inf\" is not a finite number")
        );
        assert!(csv(b"x,y\n1\n").unwrap_err().starts_with("row 1: 1 values"));
        assert!(csv(b"x,x\n1,2\n").unwrap_err().contains("named twice"));
        assert!(payload(b"  ").is_err());
    }
}
