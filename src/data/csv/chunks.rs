//! Cuts a byte stream into chunks of whole records, so that each chunk can be parsed on its own
//! thread, and fingerprints and numbers the lines of the bytes on the way.

use std::io::Read;

use memchr::{memchr, memchr_iter, memrchr};
use sha2::{Digest, Sha256};

use crate::data::DataError;

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
            if let Some(end) = self.record_ends.scan(&bytes[scanned..]) {
                self.partial_record = bytes.split_off(scanned + end);
                return Ok(Some(self.number(bytes)));
            }
        }
        Ok((!bytes.is_empty()).then(|| self.number(bytes)))
    }

    /// Whether the whole source has been handed out.
    pub fn is_exhausted(&self) -> bool {
        self.exhausted && self.partial_record.is_empty()
    }

    /// SHA-256 of every byte read, hex.
    pub fn fingerprint(self) -> String {
        self.hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn number(&mut self, bytes: Vec<u8>) -> Chunk {
        let first_line = self.next_line;
        self.next_line += memchr_iter(b'\n', &bytes).count() as u64;
        Chunk { bytes, first_line }
    }
}

/// Finds where records end by the csv reader's rules: only `\n` ends a record, a `"` opens a
/// quoted field only at the start of a field, and inside one `""` is a literal quote, so a `\n`
/// between quotes is part of a value.
#[derive(Default)]
struct RecordEnds {
    state: Quoting,
}

#[derive(Default, Clone, Copy)]
enum Quoting {
    #[default]
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

impl RecordEnds {
    /// Scans the stream's next bytes; returns the offset just past the last record end in them.
    fn scan(&mut self, bytes: &[u8]) -> Option<usize> {
        use Quoting::*;
        if matches!(self.state, FieldStart | Unquoted) && memchr(b'"', bytes).is_none() {
            // Most files quote nothing, or only a header: then every `\n` ends a record.
            if let Some(&last) = bytes.last() {
                self.state = if matches!(last, b'\n' | b',') { FieldStart } else { Unquoted };
            }
            return memrchr(b'\n', bytes).map(|newline| newline + 1);
        }
        let mut end = None;
        for (offset, &byte) in bytes.iter().enumerate() {
            self.state = match (self.state, byte) {
                (Quoted, b'"') => QuoteInQuoted,
                (Quoted, _) => Quoted,
                (FieldStart | QuoteInQuoted, b'"') => Quoted,
                (_, b'\n') => {
                    end = Some(offset + 1);
                    FieldStart
                }
                (_, b',') => FieldStart,
                _ => Unquoted,
            };
        }
        end
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
    fn the_fingerprint_covers_every_byte() {
        let mut chunker = Chunker::new(&b"a,b\n1,2\n3,4\n"[..], 4);
        while chunker.next_chunk().unwrap().is_some() {}
        assert!(chunker.is_exhausted());
        assert_eq!(chunker.fingerprint(), "b9485148546419a0f6a85e8d708c923557c15d7f3c7d078ef1fa7f7c0f57d5a5");
    }
}
