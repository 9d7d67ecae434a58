//! Streaming CSV parser: reads a header and numeric columns without loading the file whole.
//!
//! The first row names the columns. A column with an empty name is the row index that R and
//! pandas write and is ignored. The default feature and target columns (see
//! [`Selection::default_for`]) must hold finite numbers on every row. Another column is a text
//! column (never trained on) when its first value is not a number; once a column has started
//! with numbers, every later value must be one too. The first bad value stops the parse with its
//! line and column, so a typo never turns a numeric column into text.

use std::io::Read;
use std::num::NonZero;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

mod chunks;
mod records;

use self::chunks::{Chunk, Chunker};
pub use self::records::parse_number;
use self::records::{ChunkReader, ChunkValues, ColumnSpec, Columns, Layout, parse_records};
use super::DataError;
use super::dataset::{Dataset, Selection};

/// The most named columns a dataset may have.
pub const MAX_COLUMNS: usize = 1_000;
/// The longest value (field) accepted: far longer than any number, and than any text a dataset
/// column should hold. A longer one is refused as soon as it is seen, so a file that is one
/// huge line costs no more memory than a block of it.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// The longest row accepted (fields separated by commas can still add up).
pub const MAX_ROW_BYTES: usize = 16 << 20;
/// The longest column name accepted: names appear in every model, job and error message.
pub const MAX_NAME_BYTES: usize = 256;

/// Bytes read at a time; a chunk of about this size is the unit of work of a parsing thread.
const BLOCK_BYTES: usize = 1 << 20;

/// Parsing stops paying for more threads well before this (reading and merging are serial).
const MAX_PARSING_THREADS: usize = 8;

/// Parses and validates a whole CSV document, and fingerprints its bytes (SHA-256) on the way.
///
/// The calling thread reads, hashes and cuts the input into chunks of whole records; one thread
/// per core parses chunks; another joins their values in file order. Errors are the ones a
/// sequential parse would report: the first problem in the file, by line and then column.
pub fn parse_csv(reader: impl Read) -> Result<Dataset, DataError> {
    let threads = std::thread::available_parallelism().map_or(1, NonZero::get).min(MAX_PARSING_THREADS);
    parse_in_chunks(reader, BLOCK_BYTES, threads)
}

fn parse_in_chunks(reader: impl Read, block_bytes: usize, threads: usize) -> Result<Dataset, DataError> {
    let mut chunks = Chunker::new(reader, block_bytes);
    let (layout, defaults, first_values) = read_header(&mut chunks)?;
    let mut columns = Columns::new(&layout);
    columns.append(first_values)?;
    if !chunks.is_exhausted() {
        parse_rest(&mut chunks, &layout, &mut columns, threads)?;
    }
    let rows = columns.rows();
    if rows < 2 {
        return Err(DataError::TooFewRows { rows });
    }
    Ok(Dataset::new(columns.finish(), rows, defaults, chunks.fingerprint()))
}

/// Reads the header (the first record that is not blank) and the rows after it in its chunk.
fn read_header(chunks: &mut Chunker<impl Read>) -> Result<(Layout, Selection, ChunkValues), DataError> {
    let mut record = ::csv::StringRecord::new();
    while let Some(chunk) = chunks.next_chunk()? {
        let mut reader = ChunkReader::new(&chunk.bytes, chunk.first_line);
        if reader.next_record(&mut record)?.is_some() {
            let (layout, defaults) = parse_header(&record)?;
            let values = parse_records(&mut reader, &layout);
            return Ok((layout, defaults, values));
        }
    }
    Err(DataError::Empty)
}

/// Parses the remaining chunks on `threads` threads, dealt round-robin so that the joining
/// thread can take their values back in file order.
fn parse_rest(
    chunks: &mut Chunker<impl Read>,
    layout: &Layout,
    columns: &mut Columns,
    threads: usize,
) -> Result<(), DataError> {
    std::thread::scope(|scope| {
        let (to_parsers, from_parsers): (Vec<SyncSender<Chunk>>, Vec<Receiver<ChunkValues>>) = (0..threads)
            .map(|_| {
                let (chunk_sender, chunk_receiver) = sync_channel::<Chunk>(1);
                let (values_sender, values_receiver) = sync_channel(1);
                scope.spawn(move || {
                    for chunk in chunk_receiver {
                        let values =
                            parse_records(&mut ChunkReader::new(&chunk.bytes, chunk.first_line), layout);
                        // A send fails once the joiner has stopped at an error.
                        if values_sender.send(values).is_err() {
                            break;
                        }
                    }
                });
                (chunk_sender, values_receiver)
            })
            .unzip();
        // Dropping the receivers at the first error stops the parsers, and through them the reader.
        let joiner = scope.spawn(move || {
            // Chunks go round-robin, so the first parser with nothing left marks the end.
            for values in from_parsers.iter().cycle().map_while(|parser| parser.recv().ok()) {
                columns.append(values)?;
            }
            Ok::<_, DataError>(())
        });
        let read = deal_chunks(chunks, &to_parsers);
        drop(to_parsers);
        let joined = joiner.join().expect("the joining thread does not panic");
        // A problem earlier in the file wins over failing to read a later part of it.
        joined.and(read)
    })
}

/// Hands out chunks round-robin until the input ends or the parsers stop taking them.
fn deal_chunks(chunks: &mut Chunker<impl Read>, parsers: &[SyncSender<Chunk>]) -> Result<(), DataError> {
    for parser in parsers.iter().cycle() {
        let Some(chunk) = chunks.next_chunk()? else { break };
        if parser.send(chunk).is_err() {
            break;
        }
    }
    Ok(())
}

/// Reads the header row: how many fields each row has, which of them are named columns, and
/// which of those are the default selection.
fn parse_header(record: &::csv::StringRecord) -> Result<(Layout, Selection), DataError> {
    // Counted before anything else, so a hostile header of a million names costs one pass.
    let count = record.iter().filter(|field| !field.trim_start_matches('\u{feff}').trim().is_empty()).count();
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
        if name.len() > MAX_NAME_BYTES {
            return Err(DataError::NameTooLong {
                column: position,
                bytes: name.len(),
                limit: MAX_NAME_BYTES,
            });
        }
        if name.parse::<f64>().is_ok() {
            return Err(DataError::HeaderLooksLikeData { column: position, value: super::excerpt(name) });
        }
        if let Some((first, _)) = named.iter().find(|(_, existing)| existing == name) {
            return Err(DataError::DuplicateColumn { name: name.into(), first: *first, second: position });
        }
        named.push((position, name.to_owned()));
    }
    if named.len() < 2 {
        return Err(DataError::TooFewColumns { named: named.len() });
    }
    let defaults = Selection::default_for(&named.iter().map(|(_, name)| name.clone()).collect::<Vec<_>>());
    let columns = named
        .into_iter()
        .map(|(position, name)| ColumnSpec { required: defaults.contains(&name), name, position })
        .collect();
    Ok((Layout { width: record.len(), columns }, defaults))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

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
        let error = parse("a,b\n\n\n1,2\n\n3,x\n").unwrap_err().to_string();
        assert!(error.starts_with("line 6, column 2"), "{error}");
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

    #[test]
    fn values_far_longer_than_a_number_are_refused_and_never_quoted_whole() {
        let long = "9".repeat(MAX_VALUE_BYTES + 1);
        let error = parse(&format!("a,b\n1,2\n3,{long}\n")).unwrap_err().to_string();
        assert_eq!(
            error,
            "line 3, column 2: a value longer than 65536 bytes; no number is that long (values are limited to 64 KiB)"
        );
        // One line longer than a block: refused from the chunker, before the line ends.
        let error =
            parse_in_chunks(format!("a,b\n1,{long}{long}").as_bytes(), 1024, 2).unwrap_err().to_string();
        assert!(error.starts_with("line 2: a value longer than"), "{error}");
        let error = parse(&format!("a,{long}\n1,2\n3,4\n")).unwrap_err().to_string();
        assert!(error.starts_with("line 1, column 2: a column name of 65537 bytes"), "{error}");
        let error = parse(&format!("{},b\n1,2\n3,4\n", "1".repeat(200))).unwrap_err().to_string();
        assert!(error.len() < 200, "the header value is quoted whole: {error}");
        let many = vec!["1234"; MAX_ROW_BYTES / 4].join(",");
        let error = parse_in_chunks(format!("a,b\n{many}").as_bytes(), 1 << 20, 2).unwrap_err().to_string();
        assert!(error.starts_with("line 2: a row longer than 16 MiB"), "{error}");
    }

    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            12 => "[0-9]{1,3}(\\.[0-9]{1,2})?",
            2 => "\"[0-9]{1,2}\"",
            1 => Just("\"a\n,\"\"b\"".to_owned()),
            1 => Just("c\"d".to_owned()),
            1 => Just("\u{feff}1".to_owned()),
            1 => Just("n/a".to_owned()),
            1 => Just(String::new()),
        ]
    }

    /// Mostly rows as wide as the header (a text-or-number column, the defaults and an index).
    fn document() -> impl Strategy<Value = String> {
        let row =
            prop_oneof![12 => prop::collection::vec(field(), 4), 1 => prop::collection::vec(field(), 3..=5)];
        let rows = prop::collection::vec(row.prop_map(|fields| fields.join(",")), 0..60);
        let end = prop_oneof!["\n", "\r\n", "\n\n"];
        (rows, end).prop_map(|(rows, end)| {
            let mut text = String::from("Name,Education,Income,\"\"");
            rows.iter().for_each(|row| text.push_str(&format!("{end}{row}")));
            text
        })
    }

    proptest! {
        /// However the file is cut into chunks and shared among threads, the parse is the same
        /// as reading it in one piece: the same columns and values, or the same first error.
        #[test]
        fn chunks_and_threads_do_not_change_the_result(
            text in document(),
            block_bytes in 1usize..64,
            threads in 1usize..4,
        ) {
            let whole = format!("{:?}", parse_in_chunks(text.as_bytes(), text.len() + 1, 1));
            let chunked = format!("{:?}", parse_in_chunks(text.as_bytes(), block_bytes, threads));
            prop_assert_eq!(chunked, whole);
        }
    }
}
