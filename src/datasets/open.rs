//! Loading the dataset from the store at start-up: the head (or, on a store written before
//! heads, `dataset.csv` or the built-in sample as generation 0), the base, and every segment of
//! the current generation. Segments of other generations are stale (an upload or reset
//! replaced them) and are deleted; retention is applied again.

use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};

use super::commit::{Keys, Writer};
use super::head::{BaseKind, Head, now_ms};
use super::history::{Chunk, History, schema_of};
use super::segment::Segment;
use super::{DATASET, DatasetError, retention};
use crate::data::{Dataset, default_dataset, parse_csv};
use crate::settings::IntakeSettings;
use crate::storage::{Fetched, Key, Storage, StoreError};

/// Segments fetched at once while loading.
const PARALLEL_FETCHES: usize = 16;

/// The built-in sample as generation 0, without reading the store.
pub fn builtin() -> (History, Writer) {
    let head = Head {
        generation: 0,
        base: BaseKind::Builtin,
        first_seq: 0,
        created_ms: 0,
        kafka: Default::default(),
    };
    let history = History::starting(&head, Some(Arc::new(default_dataset())));
    (history, Writer { head, keys: Keys::default(), kafka: Default::default() })
}

/// The stored dataset.
pub async fn load(store: &dyn Storage, settings: &IntakeSettings) -> Result<(History, Writer), DatasetError> {
    let stored_head = Head::read(store).await?;
    let file = load_file(store).await?;
    let head = match stored_head {
        Some(head) => head,
        None => Head {
            generation: 0,
            base: match &file {
                Some(dataset) => BaseKind::File { sha256: dataset.sha256().to_owned() },
                None => BaseKind::Builtin,
            },
            first_seq: 0,
            created_ms: now_ms(),
            kafka: Default::default(),
        },
    };
    let base = match &head.base {
        BaseKind::Builtin => Some(Arc::new(default_dataset())),
        BaseKind::File { .. } => Some(file.clone().ok_or_else(|| missing_file(store))?),
        BaseKind::Empty => None,
    };
    let segments = load_segments(store, head.generation).await?;
    let mut history = History::starting(&head, base);
    let mut writer = Writer { kafka: head.kafka.clone(), head, keys: Keys::default() };
    for segment in segments {
        add_segment(&mut history, &mut writer, segment);
    }
    // The upload stored its file but not yet the head that names it: the file is the dataset.
    if let (BaseKind::File { sha256 }, Some(file)) = (&writer.head.base, file)
        && *sha256 != file.sha256()
    {
        let base = BaseKind::File { sha256: file.sha256().to_owned() };
        history = writer.begin_generation(store, &history, base, Some(file)).await?;
    }
    let dropped = retention::apply(&mut history, settings, now_ms());
    for key in dropped {
        let _ = store.delete(&key).await;
    }
    Ok((history, writer))
}

/// The uploaded file, parsed, if there is one.
async fn load_file(store: &dyn Storage) -> Result<Option<Arc<Dataset>>, DatasetError> {
    let Some(file) = store.get_file(&Key::fixed(DATASET)).await? else { return Ok(None) };
    let parsed = tokio::task::spawn_blocking(move || parse_csv(file))
        .await
        .expect("parsing the stored dataset does not panic")
        .map_err(|source| DatasetError::Unloadable {
            store: store.name().to_owned(),
            key: DATASET.to_owned(),
            source,
        })?;
    Ok(Some(Arc::new(parsed)))
}

fn missing_file(store: &dyn Storage) -> DatasetError {
    DatasetError::Store(StoreError::Unavailable {
        store: store.name().to_owned(),
        action: "read",
        key: DATASET.to_owned(),
        reason: "the dataset head names an uploaded file, and there is none".into(),
    })
}

/// The segments of `generation`, oldest first; those of other generations are deleted.
async fn load_segments(store: &dyn Storage, generation: u64) -> Result<Vec<Segment>, DatasetError> {
    let listed = store.list(&Key::fixed("segments")).await?;
    let current = format!("segments/{generation:08}/");
    let (keys, stale): (Vec<Key>, Vec<Key>) =
        listed.into_iter().map(|listed| listed.key).partition(|key| key.as_str().starts_with(&current));
    for key in stale {
        let _ = store.delete(&key).await;
    }
    let mut segments: Vec<Segment> = futures_util::stream::iter(keys)
        .map(|key| fetch_segment(store, key))
        .buffer_unordered(PARALLEL_FETCHES)
        .try_collect()
        .await?;
    segments.sort_by_key(|segment| segment.header.first_seq);
    Ok(segments)
}

async fn fetch_segment(store: &dyn Storage, key: Key) -> Result<Segment, DatasetError> {
    let unreadable = |reason: String| {
        DatasetError::Store(StoreError::Unavailable {
            store: store.name().to_owned(),
            action: "read",
            key: key.to_string(),
            reason,
        })
    };
    match store.get(&key, None).await? {
        Fetched::Found(object) => {
            Segment::decode(&object.bytes).map_err(|error| unreadable(error.to_string()))
        }
        Fetched::NotModified | Fetched::Missing => Err(unreadable("it was listed, then gone".into())),
    }
}

/// Puts a loaded segment in service, with what it recorded of keys and Kafka positions.
fn add_segment(history: &mut History, writer: &mut Writer, segment: Segment) {
    if history.schema.is_none() {
        history.schema = Some(Arc::new(schema_of(&segment.header.columns)));
    }
    for keyed in &segment.header.keyed {
        let last_seq = segment.header.first_seq + (keyed.first + keyed.rows) as u64 - 1;
        writer.keys.remember(keyed.key.clone(), last_seq, keyed.rows);
    }
    if !segment.header.kafka.is_empty() {
        writer.kafka = segment.header.kafka.clone();
    }
    history.rows += segment.header.rows;
    history.next_seq = history.next_seq.max(segment.end_seq());
    history.chunks.push(Chunk::Segment(Arc::new(segment)));
}
