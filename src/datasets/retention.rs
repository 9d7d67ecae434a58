//! Retention (`--retain-rows`, `--retain-for`): the oldest chunks are dropped from the history,
//! whole, once the rows after them are enough or their rows are all too old; the newest chunk
//! always stays. A pure function of the history, the settings and the time, applied after every
//! commit and again when the dataset is opened, so that a segment whose deletion failed is
//! dropped again rather than brought back.

use super::commit::segment_key;
use super::history::{Chunk, History};
use crate::settings::IntakeSettings;
use crate::storage::Key;

/// Drops the chunks past retention from `history`; the keys of the dropped segments.
pub fn apply(history: &mut History, settings: &IntakeSettings, now_ms: i64) -> Vec<Key> {
    let expired = |chunk: &Chunk, rows_after: usize| {
        let enough_after = settings.retain_rows.is_some_and(|keep| rows_after as u64 >= keep);
        let too_old = settings.retain_for.is_some_and(|keep| {
            let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
            chunk.arrivals().1 < now_ms.saturating_sub(keep_ms)
        });
        enough_after || too_old
    };
    let mut dropped = Vec::new();
    while history.chunks.len() > 1 {
        let first = &history.chunks[0];
        if !expired(first, history.rows - first.rows()) {
            break;
        }
        history.rows -= first.rows();
        if let Chunk::Segment(segment) = history.chunks.remove(0) {
            dropped.push(segment_key(history.generation, segment.header.first_seq));
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::datasets::segment::{Segment, SegmentHeader};

    fn segment(first_seq: u64, rows: usize, arrived: i64) -> Chunk {
        Chunk::Segment(Arc::new(Segment {
            header: SegmentHeader {
                generation: 1,
                first_seq,
                rows,
                columns: vec!["x".into(), "y".into()],
                arrivals: vec![(0, arrived)],
                sources: Default::default(),
                keyed: Vec::new(),
                kafka: Default::default(),
                stats: Vec::new(),
                moments: None,
            },
            columns: vec![vec![0.0; rows]; 2],
        }))
    }

    fn history() -> History {
        let chunks = vec![segment(0, 10, 1_000), segment(10, 10, 2_000), segment(20, 5, 3_000)];
        History { generation: 1, uploaded: false, schema: None, chunks, next_seq: 25, rows: 25 }
    }

    #[test]
    fn rows_keep_at_least_the_newest_n() {
        let mut kept = history();
        let settings = IntakeSettings { retain_rows: Some(12), ..IntakeSettings::default() };
        let dropped = apply(&mut kept, &settings, 0);
        assert_eq!(dropped, [segment_key(1, 0)]);
        assert_eq!((kept.rows, kept.chunks.len()), (15, 2));
        assert!(apply(&mut kept, &settings, 0).is_empty(), "15 rows left; dropping 10 would leave 5");
    }

    #[test]
    fn time_drops_what_is_too_old_but_never_the_newest_chunk() {
        let mut kept = history();
        let settings =
            IntakeSettings { retain_for: Some(Duration::from_millis(500)), ..IntakeSettings::default() };
        assert_eq!(apply(&mut kept, &settings, 2_400).len(), 1);
        assert_eq!(apply(&mut kept, &settings, 1_000_000).len(), 1);
        assert_eq!((kept.rows, kept.chunks.len()), (5, 1));
        assert_eq!(apply(&mut kept, &IntakeSettings::default(), i64::MAX).len(), 0);
    }
}
