//! The fast path for the JSON that devices send: flat row objects of plain column names and
//! numbers, in a batch envelope, an array, or alone, one byte scan each. It decides only
//! what it fully understands: anything else (an escape in a name, a value that is not a
//! finite number, a missing or repeated column, more than [`MAX_TRACKED_COLUMNS`] columns,
//! malformed JSON) makes it answer `None`, and the [`super::general`] decoder reads the
//! input again and names the problem. What it decodes is exactly what that decoder would.

use super::{Envelope, Rows};
use crate::data::MAX_NAME_BYTES;

/// Columns a row may have on this path: which ones a row gave is kept in one `u64`.
const MAX_TRACKED_COLUMNS: usize = 64;
/// The envelope's own keys; any other key makes the top-level object one row.
const ENVELOPE_KEYS: [&str; 3] = ["rows", "batch_id", "seq"];

/// A batch envelope, an array of rows, or one row; `None` when not this simple shape. The
/// bytes need not have been checked as UTF-8: every name this takes is checked, and a byte
/// that is not ASCII anywhere else ends this path.
pub(super) fn envelope(bytes: &[u8]) -> Option<Envelope> {
    let mut scan = Scanner { bytes, at: 0 };
    let mut envelope = Envelope::default();
    match scan.peek()? {
        b'[' => scan.rows(&mut envelope.rows)?,
        b'{' if scan.first_key_is_envelope()? => scan.envelope_fields(&mut envelope)?,
        b'{' => scan.row(&mut envelope.rows)?,
        _ => return None,
    }
    scan.at_end().then_some(envelope)
}

/// NDJSON: one row object per line, blank lines skipped; `None` when any line is not simple.
pub(super) fn ndjson(bytes: &[u8]) -> Option<Rows> {
    let mut rows = Rows::default();
    for line in bytes.split(|&b| b == b'\n').filter(|line| !line.iter().all(u8::is_ascii_whitespace)) {
        let mut scan = Scanner { bytes: line, at: 0 };
        scan.row(&mut rows)?;
        if !scan.at_end() {
            return None;
        }
    }
    Some(rows)
}

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    /// The next byte that is not JSON whitespace, left unread.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes.get(self.at) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, expected: u8) -> Option<()> {
        (self.next()? == expected).then_some(())
    }

    fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// A string without escapes or control characters, as its bytes (not yet checked as UTF-8).
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.at;
        let length = self.bytes[start..].iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if self.bytes[start + length] != b'"' {
            return None;
        }
        self.at = start + length + 1;
        Some(&self.bytes[start..start + length])
    }

    /// Moves past the string `"name"` if it is next.
    fn skip_string(&mut self, name: &str) -> bool {
        self.peek();
        let quoted = self.bytes.get(self.at..self.at + name.len() + 2);
        let found = quoted.is_some_and(|quoted| {
            quoted[0] == b'"' && &quoted[1..=name.len()] == name.as_bytes() && quoted[name.len() + 1] == b'"'
        });
        if found {
            self.at += name.len() + 2;
        }
        found
    }

    /// True when the object about to be read begins with one of the envelope's keys.
    fn first_key_is_envelope(&mut self) -> Option<bool> {
        let mut ahead = Scanner { bytes: self.bytes, at: self.at + 1 };
        let key = ahead.string()?;
        Some(ENVELOPE_KEYS.iter().any(|envelope| envelope.as_bytes() == key))
    }

    /// The fields of `{"rows": [...], "batch_id": "...", "seq": n}`, each at most once.
    fn envelope_fields(&mut self, envelope: &mut Envelope) -> Option<()> {
        self.eat(b'{')?;
        let mut given = [false; ENVELOPE_KEYS.len()];
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            let index = ENVELOPE_KEYS.iter().position(|envelope| envelope.as_bytes() == key)?;
            if std::mem::replace(&mut given[index], true) {
                return None;
            }
            match index {
                0 => self.rows(&mut envelope.rows)?,
                1 => envelope.batch_id = Some(std::str::from_utf8(self.string()?).ok()?.to_owned()),
                _ => envelope.seq = Some(self.unsigned()?),
            }
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// An array of row objects, its columns' vectors sized from the first row's length.
    fn rows(&mut self, rows: &mut Rows) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        let start = self.at;
        loop {
            self.row(rows)?;
            if rows.count() == 1 {
                let rest = (self.bytes.len() - self.at) / (self.at - start).max(1);
                rows.values.iter_mut().for_each(|column| column.reserve(rest + 1));
            }
            match self.next()? {
                b',' => {}
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// One row object; its first row names the columns.
    fn row(&mut self, rows: &mut Rows) -> Option<()> {
        self.eat(b'{')?;
        let first = rows.count() == 0;
        let mut given = 0_u64;
        loop {
            let index = match first {
                true => new_column(rows, self.string()?)?,
                false => self.column(rows, given.count_ones() as usize)?,
            };
            self.eat(b':')?;
            let value = self.number()?;
            let bit = 1 << index;
            if given & bit != 0 {
                return None;
            }
            given |= bit;
            rows.values[index].push(value);
            match self.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
        (given.count_ones() as usize == rows.columns.len()).then_some(())
    }

    /// A JSON number, decoded as serde_json decodes it; `None` unless finite.
    fn number(&mut self) -> Option<f64> {
        self.peek()?;
        let (value, length) = super::number::parse(&self.bytes[self.at..])?;
        self.at += length;
        value.is_finite().then_some(value)
    }

    fn unsigned(&mut self) -> Option<u64> {
        self.peek()?;
        let start = self.at;
        let length = self.bytes[start..].iter().take_while(|b| b.is_ascii_digit()).count();
        if length > 1 && self.bytes[start] == b'0' {
            return None;
        }
        self.at = start + length;
        std::str::from_utf8(&self.bytes[start..start + length]).ok()?.parse().ok()
    }

    /// The known column named next, looked for first where the first row had it (rows
    /// usually repeat that order).
    fn column(&mut self, rows: &Rows, expected: usize) -> Option<usize> {
        if rows.columns.get(expected).is_some_and(|name| self.skip_string(name)) {
            return Some(expected);
        }
        let name = self.string()?;
        rows.columns.iter().position(|column| column.as_bytes() == name)
    }
}

/// Adds a column named in the first row; `None` for a name the general decoder must judge.
fn new_column(rows: &mut Rows, name: &[u8]) -> Option<usize> {
    let name = std::str::from_utf8(name).ok()?;
    let fits = !name.is_empty() && name.len() <= MAX_NAME_BYTES && rows.columns.len() < MAX_TRACKED_COLUMNS;
    if !fits || rows.columns.iter().any(|column| column == name) {
        return None;
    }
    rows.columns.push(name.to_owned());
    rows.values.push(Vec::new());
    Some(rows.columns.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes with both decoders and checks they agree wherever this one answers.
    fn agree(text: &str) -> Option<Envelope> {
        let fast = envelope(text.as_bytes());
        if let Some(fast) = &fast {
            let general = super::super::general::envelope(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(fast.rows.columns, general.rows.columns, "{text}");
            let bits = |rows: &Rows| -> Vec<Vec<u64>> {
                rows.values.iter().map(|c| c.iter().map(|v| v.to_bits()).collect()).collect()
            };
            assert_eq!(bits(&fast.rows), bits(&general.rows), "{text}");
            assert_eq!((&fast.batch_id, fast.seq), (&general.batch_id, general.seq), "{text}");
        }
        fast
    }

    #[test]
    fn simple_shapes_decode_exactly_as_the_general_decoder_does() {
        let texts = [
            r#"{"rows":[{"x":1,"y":2.5},{"y":-0.0,"x":-0}],"batch_id":"b-1","seq":7}"#,
            r#" [ {"x" : 1e3 , "y":2E-2} , {"x":12345678901234567890,"y":0.1} ] "#,
            r#"{"x":9007199254740993,"y":-9223372036854775808}"#,
            r#"{"seq":3,"rows":[]}"#,
            "{\"rows\":[{\"Temp\":0.30000000000000004,\"Load\":2.2250738585072014e-308}]}",
            r#"{"x":1.7976931348623157e308,"y":4.9e-324}"#,
            r#"{"x":1,"seq":2}"#,
        ];
        for text in texts {
            assert!(agree(text).is_some(), "{text}");
        }
        let batch = agree(r#"{"rows":[{"a":1,"b":2},{"b":4,"a":3}]}"#).unwrap();
        assert_eq!(batch.rows.values, [vec![1.0, 3.0], vec![2.0, 4.0]]);
    }

    #[test]
    fn anything_else_is_left_to_the_general_decoder() {
        let texts = [
            r#"{"rows":[{"x":1,"y":2},{"x":1}]}"#,
            r#"{"rows":[{"x":1,"y":2},{"x":1,"y":2,"z":3}]}"#,
            r#"{"rows":[{"x":1,"x":2}]}"#,
            r#"{"rows":[{"x":null}]}"#,
            r#"{"rows":[{"x":1e999}]}"#,
            r#"{"rows":[{"x":01}]}"#,
            r#"{"rows":[{"x":1.}]}"#,
            r#"{"rows":[{"x":.5}]}"#,
            r#"{"rows":[{"x":+1}]}"#,
            r#"{"rows":[{"x":1e}]}"#,
            r#"{"rows":[{"x\u0041":1}]}"#,
            r#"{"rows":[{"":1}]}"#,
            r#"{"rows":[{"x":1}]"#,
            r#"{"rows":[{"x":1}]} x"#,
            r#"{"rows":[],"rows":[]}"#,
            r#"{"seq":-1,"rows":[]}"#,
            r#"{"batch_id":"a\"b","rows":[]}"#,
            r#"{"rows":[{}]}"#,
            "{\"rows\":[{\"x\n\":1}]}",
        ];
        for text in texts {
            assert!(agree(text).is_none(), "{text}");
        }
        for bytes in
            [&b"{\"x\xff\":1,\"y\":2}"[..], b"{\"rows\":[],\"batch_id\":\"\xc3\"}", b"[{\"x\":1}]\xa0"]
        {
            assert!(envelope(bytes).is_none(), "{bytes:?}");
        }
    }

    /// Every one-byte change of simple batches: wherever this decoder still answers, it agrees.
    #[test]
    fn mutated_batches_are_decoded_as_the_general_decoder_does_or_left_to_it() {
        let base = r#"{"rows":[{"x":-1.5e3,"y":20},{"x":0.25,"y":3E+2}],"batch_id":"k","seq":12}"#;
        let mut decoded = 0;
        for at in 0..base.len() {
            for b in *b" \"\\,:[]{}-+.eE019xyn" {
                let mut bytes = base.as_bytes().to_vec();
                bytes[at] = b;
                decoded += usize::from(agree(std::str::from_utf8(&bytes).unwrap()).is_some());
            }
        }
        assert!(decoded > base.len(), "only {decoded} mutations decoded");
    }

    #[test]
    fn ndjson_lines_decode_or_are_left_to_the_general_decoder() {
        let rows = ndjson(b"{\"x\": 1, \"y\": 2}\n\n{\"y\": 4, \"x\": 3}\n").unwrap();
        assert_eq!(rows.values, [vec![1.0, 3.0], vec![2.0, 4.0]]);
        assert!(ndjson(b"{\"x\": 1}\n{\"x\": true}\n").is_none());
        assert!(ndjson(b"{\"x\": 1} {\"x\": 2}\n").is_none());
        assert!(ndjson(b"{\"x\xff\": 1}\n").is_none());
    }
}
