//! Cuts a byte stream into chunks of whole records, so that each chunk can be parsed on its own
//! thread, and fingerprints and numbers the lines of the bytes on the way.

use std::io::Read;
use std::ops::Range;

use memchr::{memchr_iter, memrchr};
use sha2::{Digest, Sha256};

use crate::data::DataError;

const BOM: &[u8] = b"\xef\xbb\xbf";

/// Whole records, and the line of the file they start on.
pub struct Chunk {
    pub bytes: Vec<u8>,
    /// 1-based line number of the chunk's first byte.
    pub first_line: u64,
}

/// Reads the source a block at a time and hands out the records it holds.
pub struct Chunker<R> {
    source: R,
    block_bytes: usize,
    hasher: Sha256,
    record_ends: RecordEnds,
    /// Bytes after the last record end read so far (already hashed and scanned).
    partial_record: Vec<u8>,
    next_line: u64,
    exhausted: bool,
}

impl<R: Read> Chunker<R> {
    pub fn new(source: R, block_bytes: usize) -> Self {
        Self {
            source,
            block_bytes,
            hasher: Sha256::new(),
            record_ends: RecordEnds::default(),
            partial_record: Vec::new(),
            next_line: 1,
            exhausted: false,
        }
    }

    /// The next chunk: what was left of the last block and the next block, cut after the last
    /// record end in that block. A record longer than a block makes the chunk span more blocks.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, DataError> {
        let mut bytes = std::mem::take(&mut self.partial_record);
        while !self.exhausted {
            let scanned = bytes.len();
            bytes.reserve(self.block_bytes);
            let read = (&mut self.source)
                .take(self.block_bytes as u64)
                .read_to_end(&mut bytes)
                .map_err(DataError::storage("read the upload"))?;
            self.exhausted = read < self.block_bytes;
            self.hasher.update(&bytes[scanned..]);
            // The csv reader drops a byte-order mark at the start of the file.
            let from = if self.next_line == 1 && scanned == 0 && bytes.starts_with(BOM) {
                BOM.len()
            } else {
                scanned
            };
            if let Some(end) = self.record_ends.scan(&bytes[from..]) {
                self.partial_record = bytes.split_off(from + end);
                return Ok(Some(self.number(bytes)));
            }
            // No record ends in the block: all of `bytes` is one record, longer than a block.
            check_long_record(&bytes, self.next_line)?;
        }
        Ok((!bytes.is_empty()).then(|| self.number(bytes)))
    }

    /// Whether the whole source has been handed out.
    pub fn is_exhausted(&self) -> bool {
        self.exhausted && self.partial_record.is_empty()
    }

    /// SHA-256 of every byte read, hex.
    pub fn fingerprint(self) -> String {
        crate::digest::hex(&self.hasher.finalize())
    }

    fn number(&mut self, bytes: Vec<u8>) -> Chunk {
        let first_line = self.next_line;
        self.next_line += memchr_iter(b'\n', &bytes).count() as u64;
        Chunk { bytes, first_line }
    }
}

/// Refuses a record (starting on `line`) that is longer than a row may be, or that holds a value
/// longer than a value may be, before more of it is read. Values are cut at every comma and
/// newline here, quoted or not: a quoted value can only come out shorter than it is, and the row
/// limit bounds those.
fn check_long_record(record: &[u8], line: u64) -> Result<(), DataError> {
    use crate::data::{MAX_ROW_BYTES, MAX_VALUE_BYTES};
    if record.len() > MAX_ROW_BYTES {
        return Err(DataError::RowTooLong { line, limit: MAX_ROW_BYTES });
    }
    let mut start = 0;
    for separator in memchr::memchr2_iter(b',', b'\n', record).chain([record.len()]) {
        if separator - start > MAX_VALUE_BYTES {
            return Err(DataError::ValueTooLong { line, column: None, limit: MAX_VALUE_BYTES });
        }
        start = separator + 1;
    }
    Ok(())
}

/// Finds where records end by the csv reader's rules: only `\n` ends a record, a `"` opens a
/// quoted value only at the start of a field, and inside one `""` is a literal quote, so a `\n`
/// between quotes is part of a value. Jumps from quote to quote, so it costs little more than
/// finding them.
struct RecordEnds {
    quoted: bool,
    /// Inside a quoted value, the last byte scanned was a `"`: it closes the value unless the
    /// next byte is another `"`.
    quote_last: bool,
    /// The last byte scanned; a `"` after `,` or `\n` (or at the start) opens a quoted value.
    last_byte: u8,
    /// Stretches of the bytes being scanned that are outside quoted values.
    unquoted: Vec<Range<usize>>,
}

impl Default for RecordEnds {
    fn default() -> Self {
        Self { quoted: false, quote_last: false, last_byte: b'\n', unquoted: Vec::new() }
    }
}

impl RecordEnds {
    /// Scans the stream's next bytes; returns the offset just past the last record end in them.
    fn scan(&mut self, bytes: &[u8]) -> Option<usize> {
        let &last_byte = bytes.last()?;
        self.unquoted.clear();
        let mut quotes = memchr_iter(b'"', bytes).peekable();
        if std::mem::take(&mut self.quote_last) && quotes.next_if_eq(&0).is_none() {
            self.quoted = false;
        }
        let mut unquoted_from = (!self.quoted).then_some(0);
        while let Some(quote) = quotes.next() {
            if self.quoted {
                if quotes.next_if_eq(&(quote + 1)).is_some() {
                    continue; // `""`: a literal quote
                }
                if quote + 1 == bytes.len() {
                    self.quote_last = true;
                } else {
                    self.quoted = false;
                    unquoted_from = Some(quote + 1);
                }
            } else if matches!(
                quote.checked_sub(1).map_or(self.last_byte, |before| bytes[before]),
                b',' | b'\n'
            ) {
                self.unquoted.extend(unquoted_from.take().map(|from| from..quote));
                self.quoted = true;
            }
        }
        self.unquoted.extend(unquoted_from.map(|from| from..bytes.len()));
        self.last_byte = last_byte;
        let mut stretches = self.unquoted.iter().rev();
        stretches.find_map(|stretch| memrchr(b'\n', &bytes[stretch.clone()]).map(|at| stretch.start + at + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(text: &str, block_bytes: usize) -> Vec<(String, u64)> {
        let mut chunker = Chunker::new(text.as_bytes(), block_bytes);
        std::iter::from_fn(|| chunker.next_chunk().unwrap())
            .map(|chunk| (String::from_utf8(chunk.bytes).unwrap(), chunk.first_line))
            .collect()
    }

    #[test]
    fn chunks_end_after_whole_records_and_know_their_first_line() {
        let expected = [("a,b\n".into(), 1), ("1,2\n".into(), 2), ("3,4".into(), 3)];
        assert_eq!(chunks("a,b\n1,2\n3,4", 5), expected);
        assert_eq!(chunks("a,b\n1,2\n", 100), [("a,b\n1,2\n".into(), 1)]);
        assert!(chunks("", 4).is_empty());
    }

    #[test]
    fn a_newline_inside_quotes_does_not_end_a_record() {
        let text = "\"a\nb\",c\n\"x\"\"\n\",1\n";
        assert_eq!(chunks(text, 3), [("\"a\nb\",c\n".into(), 1), ("\"x\"\"\n\",1\n".into(), 3)]);
    }

    #[test]
    fn a_quote_inside_an_unquoted_value_is_literal() {
        assert_eq!(chunks("a\"b,c\nd,e\n", 7), [("a\"b,c\n".into(), 1), ("d,e\n".into(), 2)]);
        // The second quote opens a quoted value: its newlines end no record.
        assert_eq!(chunks("a\"b,\"c\nd\",e\n", 2), [("a\"b,\"c\nd\",e\n".into(), 1)]);
    }

    #[test]
    fn a_quote_right_after_a_byte_order_mark_opens_a_quoted_value() {
        assert_eq!(
            chunks("\u{feff}\"a\nb\",c\nd,e\n", 4),
            [("\u{feff}\"a\nb\",c\n".into(), 1), ("d,e\n".into(), 3)]
        );
    }

    #[test]
    fn the_fingerprint_covers_every_byte() {
        let mut chunker = Chunker::new(&b"a,b\n1,2\n3,4\n"[..], 4);
        while chunker.next_chunk().unwrap().is_some() {}
        assert!(chunker.is_exhausted());
        assert_eq!(chunker.fingerprint(), "b9485148546419a0f6a85e8d708c923557c15d7f3c7d078ef1fa7f7c0f57d5a5");
    }
}
