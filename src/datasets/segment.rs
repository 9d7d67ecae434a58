//! One segment of appended rows: the rows of one commit, immutable once stored, and its file
//! format. A segment is stored whole under a key of its own (create-only), so a commit is one
//! atomic put, whatever the backend, and nothing stored is ever rewritten.
//!
//! The format: the line `RSEG1`, the length of a JSON header as 4 little-endian bytes, the
//! header, then each column's values as little-endian `f64`, one column after the other. The
//! header carries everything about the rows that is read without them: their sequence numbers,
//! arrival times, sources, the idempotency keys of the batches in it, the Kafka offsets stored
//! with it, and the rows' sufficient statistics.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::data::ColumnStats;
use crate::train::Moments;

const MAGIC: &[u8] = b"RSEG1\n";

/// The most columns whose co-moments a segment keeps (their number grows as the square).
pub const MAX_MOMENT_COLUMNS: usize = 64;

/// Kafka positions: the next offset to read, by partition, by topic.
pub type KafkaOffsets = BTreeMap<String, BTreeMap<i32, i64>>;

/// Everything about a segment's rows but their values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentHeader {
    /// The dataset generation the rows were appended to (an upload starts a new one).
    pub generation: u64,
    /// The sequence number of the first row; the others follow without gaps.
    pub first_seq: u64,
    pub rows: usize,
    pub columns: Vec<String>,
    /// When rows arrived, in milliseconds since 1970: `(first row, time)` runs, the first
    /// starting at row 0.
    pub arrivals: Vec<(usize, i64)>,
    /// Rows by the source they came from (`http`, `websocket`, `mqtt`, `kafka`).
    pub sources: BTreeMap<String, usize>,
    /// The batches that carried an idempotency key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keyed: Vec<KeyedBatch>,
    /// Every Kafka position consumed up to and including this segment's rows.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kafka: KafkaOffsets,
    /// Each column's range and mean.
    pub stats: Vec<ColumnStats>,
    /// The rows' statistics over all columns, for datasets of at most [`MAX_MOMENT_COLUMNS`].
    pub moments: Option<Moments>,
}

/// A batch appended under an idempotency key: which rows of the segment it became.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedBatch {
    pub key: String,
    pub first: usize,
    pub rows: usize,
}

/// A segment: its header and its values, one vector per column.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub header: SegmentHeader,
    pub columns: Vec<Vec<f64>>,
}

/// Why stored bytes are not a segment.
#[derive(Debug, thiserror::Error)]
#[error("not a segment: {0}")]
pub struct Corrupt(String);

impl Segment {
    /// The sequence number after the last row.
    pub fn end_seq(&self) -> u64 {
        self.header.first_seq + self.header.rows as u64
    }

    /// When row `row` arrived, in milliseconds since 1970.
    pub fn arrival(&self, row: usize) -> i64 {
        let run = self.header.arrivals.partition_point(|&(first, _)| first <= row);
        self.header.arrivals[run.saturating_sub(1)].1
    }

    /// The first row that arrived at or after `time` (arrival times never decrease).
    pub fn first_arrived_since(&self, time: i64) -> usize {
        match self.header.arrivals.iter().find(|&&(_, arrived)| arrived >= time) {
            Some(&(first, _)) => first,
            None => self.header.rows,
        }
    }

    pub fn encode(&self) -> Bytes {
        let header = serde_json::to_vec(&self.header).expect("a segment header serialises");
        let values: usize = self.columns.iter().map(Vec::len).sum();
        let mut out = BytesMut::with_capacity(MAGIC.len() + 4 + header.len() + values * 8);
        out.put_slice(MAGIC);
        out.put_u32_le(u32::try_from(header.len()).expect("a segment header is under 4 GiB"));
        out.put_slice(&header);
        for column in &self.columns {
            for value in column {
                out.put_f64_le(*value);
            }
        }
        out.freeze()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Corrupt> {
        let rest = bytes.strip_prefix(MAGIC).ok_or_else(|| Corrupt("it does not start with RSEG1".into()))?;
        let (length, rest) = rest.split_first_chunk::<4>().ok_or_else(|| Corrupt("it ends early".into()))?;
        let length = u32::from_le_bytes(*length) as usize;
        let (header, values) =
            rest.split_at_checked(length).ok_or_else(|| Corrupt("its header ends early".into()))?;
        let header: SegmentHeader =
            serde_json::from_slice(header).map_err(|error| Corrupt(format!("its header: {error}")))?;
        let expected = header.rows * header.columns.len() * 8;
        if values.len() != expected || header.arrivals.first().is_none_or(|&(first, _)| first != 0) {
            return Err(Corrupt(format!("{} bytes of values where {expected} were expected", values.len())));
        }
        let columns = values
            .chunks_exact((header.rows * 8).max(1))
            .take(header.columns.len())
            .map(|column| {
                column.chunks_exact(8).map(|v| f64::from_le_bytes(v.try_into().expect("8 bytes"))).collect()
            })
            .collect();
        Ok(Self { header, columns })
    }
}

/// The statistics of `columns`, when there are few enough of them and they are finite.
pub fn moments_of(columns: &[Vec<f64>]) -> Option<Moments> {
    if columns.len() > MAX_MOMENT_COLUMNS {
        return None;
    }
    let views: Vec<&[f64]> = columns.iter().map(Vec::as_slice).collect();
    Some(Moments::of_columns(&views)).filter(Moments::is_finite)
}

/// Each column's range and mean (of at least one value).
pub fn stats_of(columns: &[Vec<f64>]) -> Vec<ColumnStats> {
    let stats = |values: &[f64]| ColumnStats {
        min: values.iter().copied().fold(f64::INFINITY, f64::min),
        mean: crate::train::scaled::mean(ndarray::ArrayView1::from(values)).unwrap_or(f64::NAN),
        max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    };
    columns.iter().map(|column| stats(column)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment() -> Segment {
        let columns = vec![vec![1.0, 2.0, 3.5], vec![-1.0, f64::MAX, 0.25]];
        Segment {
            header: SegmentHeader {
                generation: 2,
                first_seq: 40,
                rows: 3,
                columns: vec!["x".into(), "y".into()],
                arrivals: vec![(0, 1_000), (2, 2_000)],
                sources: BTreeMap::from([("http".into(), 3)]),
                keyed: vec![KeyedBatch { key: "k1".into(), first: 0, rows: 2 }],
                kafka: BTreeMap::from([("t".into(), BTreeMap::from([(0, 17)]))]),
                stats: stats_of(&columns),
                moments: moments_of(&columns[..1]),
            },
            columns,
        }
    }

    #[test]
    fn a_segment_reads_back_as_written() {
        let segment = segment();
        let decoded = Segment::decode(&segment.encode()).unwrap();
        assert_eq!(decoded, segment);
        assert_eq!((decoded.end_seq(), decoded.arrival(1), decoded.arrival(2)), (43, 1_000, 2_000));
        assert_eq!((decoded.first_arrived_since(1_500), decoded.first_arrived_since(9_999)), (2, 3));
    }

    #[test]
    fn damaged_bytes_are_refused_not_misread() {
        let bytes = segment().encode();
        for bad in [&bytes[..bytes.len() - 1], &bytes[..10], &b"RSEG2\n...."[..], &[][..]] {
            assert!(Segment::decode(bad).is_err());
        }
    }
}
