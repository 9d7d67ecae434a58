//! The memory backend, for tests: objects in a map behind a mutex, lost with the process. It
//! keeps every promise of [`Storage`] (each operation holds the mutex for its whole check and
//! change), and can be made to fail on demand ([`MemoryStore::set_unavailable`]) so that tests
//! of the services above it can see what they do when the store is down.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Seek, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use tempfile::NamedTempFile;

use super::{Fetched, Io, Key, Listed, Object, PutMode, Storage, StoreError, Tag};

const NAME: &str = "memory://";

/// A store in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    unavailable: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<Key, Stored>,
    /// The last tag given: every write takes the next, so no two versions share one.
    last_tag: u64,
}

#[derive(Debug)]
struct Stored {
    bytes: Bytes,
    tag: u64,
    modified: SystemTime,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// While `true`, every operation fails with [`StoreError::Unavailable`] and changes nothing,
    /// as a store that cannot be reached would.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// The state, or the error of a store that is down.
    fn state(&self, action: &'static str, key: &str) -> Result<MutexGuard<'_, State>, StoreError> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(unavailable(action, key, "the store was made unavailable".to_owned()));
        }
        // A test that panicked while holding the lock left the map whole: every change is one
        // insert or remove.
        Ok(self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn store(&self, key: &Key, bytes: Bytes, mode: PutMode) -> Result<Tag, StoreError> {
        let mut state = self.state("write", key.as_str())?;
        let current = state.objects.get(key).map(|stored| tag_of(stored.tag));
        match (mode, current) {
            (PutMode::Create, Some(_)) => {
                return Err(StoreError::AlreadyExists { store: NAME.to_owned(), key: key.clone() });
            }
            (PutMode::Update(expected), current) if current.as_ref() != Some(&expected) => {
                return Err(StoreError::Conflict { store: NAME.to_owned(), key: key.clone() });
            }
            _ => {}
        }
        state.last_tag += 1;
        let tag = state.last_tag;
        state.objects.insert(key.clone(), Stored { bytes, tag, modified: SystemTime::now() });
        Ok(tag_of(tag))
    }

    fn fetch(&self, key: &Key, unless: Option<&Tag>) -> Result<Fetched, StoreError> {
        let state = self.state("read", key.as_str())?;
        Ok(match state.objects.get(key) {
            None => Fetched::Missing,
            Some(stored) if unless == Some(&tag_of(stored.tag)) => Fetched::NotModified,
            Some(stored) => Fetched::Found(Object { bytes: stored.bytes.clone(), tag: tag_of(stored.tag) }),
        })
    }

    fn listing(&self, prefix: &Key) -> Result<Vec<Listed>, StoreError> {
        let state = self.state("list", prefix.as_str())?;
        let below = format!("{prefix}/");
        // Keys order as strings, so the keys below the prefix are one run of the map.
        let listed = state
            .objects
            .range(Key(below.clone())..)
            .take_while(|(key, _)| key.as_str().starts_with(&below))
            .map(|(key, stored)| Listed {
                key: key.clone(),
                size: stored.bytes.len() as u64,
                modified: stored.modified,
            })
            .collect();
        Ok(listed)
    }
}

impl Storage for MemoryStore {
    fn name(&self) -> &str {
        NAME
    }

    fn get<'a>(&'a self, key: &'a Key, unless: Option<&'a Tag>) -> Io<'a, Fetched> {
        Box::pin(async move { self.fetch(key, unless) })
    }

    fn put<'a>(&'a self, key: &'a Key, bytes: Bytes, mode: PutMode) -> Io<'a, Tag> {
        Box::pin(async move { self.store(key, bytes, mode) })
    }

    fn staging_file(&self) -> Result<NamedTempFile, StoreError> {
        drop(self.state("create", "a staging file")?);
        NamedTempFile::new().map_err(|e| unavailable("create", "a staging file", e.to_string()))
    }

    fn put_file<'a>(&'a self, key: &'a Key, file: NamedTempFile) -> Io<'a, Tag> {
        Box::pin(async move {
            let read = tokio::task::spawn_blocking(move || std::fs::read(file.path())).await;
            let bytes = match read {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(e)) => return Err(unavailable("write", key.as_str(), e.to_string())),
                Err(e) => return Err(unavailable("write", key.as_str(), e.to_string())),
            };
            self.store(key, Bytes::from(bytes), PutMode::Overwrite)
        })
    }

    fn get_file<'a>(&'a self, key: &'a Key) -> Io<'a, Option<File>> {
        Box::pin(async move {
            let Fetched::Found(object) = self.fetch(key, None)? else { return Ok(None) };
            let written = tokio::task::spawn_blocking(move || anonymous_file(&object.bytes)).await;
            match written {
                Ok(Ok(file)) => Ok(Some(file)),
                Ok(Err(e)) => Err(unavailable("read", key.as_str(), e.to_string())),
                Err(e) => Err(unavailable("read", key.as_str(), e.to_string())),
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a Key) -> Io<'a, ()> {
        Box::pin(async move {
            self.state("delete", key.as_str())?.objects.remove(key);
            Ok(())
        })
    }

    fn list<'a>(&'a self, prefix: &'a Key) -> Io<'a, Vec<Listed>> {
        Box::pin(async move { self.listing(prefix) })
    }
}

/// An unnamed temporary file holding `bytes`, positioned at its start.
fn anonymous_file(bytes: &[u8]) -> std::io::Result<File> {
    let mut file = tempfile::tempfile()?;
    file.write_all(bytes)?;
    file.rewind()?;
    Ok(file)
}

fn tag_of(counter: u64) -> Tag {
    Tag(counter.to_string())
}

fn unavailable(action: &'static str, key: &str, reason: String) -> StoreError {
    StoreError::Unavailable { store: NAME.to_owned(), action, key: key.to_owned(), reason }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::storage::conformance;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_conformance_suite() {
        conformance::check(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn fails_on_demand_and_changes_nothing_meanwhile() {
        let store = MemoryStore::new();
        let key = Key::fixed("models/active");
        store.put(&key, Bytes::from_static(b"1"), PutMode::Overwrite).await.unwrap();

        store.set_unavailable(true);
        let put = store.put(&key, Bytes::from_static(b"2"), PutMode::Overwrite).await;
        assert!(matches!(put, Err(StoreError::Unavailable { .. })), "{put:?}");
        assert!(matches!(store.get(&key, None).await, Err(StoreError::Unavailable { .. })));
        assert!(matches!(store.delete(&key).await, Err(StoreError::Unavailable { .. })));
        assert!(matches!(store.list(&Key::fixed("models")).await, Err(StoreError::Unavailable { .. })));
        assert!(store.staging_file().is_err());

        store.set_unavailable(false);
        let Fetched::Found(object) = store.get(&key, None).await.unwrap() else {
            panic!("the object is gone")
        };
        assert_eq!(object.bytes, "1");
    }

    #[tokio::test]
    async fn get_file_reads_from_the_start() {
        let store = MemoryStore::new();
        let key = Key::fixed("data/set.csv");
        store.put(&key, Bytes::from_static(b"x,y\n1,2\n"), PutMode::Overwrite).await.unwrap();
        let mut text = String::new();
        store.get_file(&key).await.unwrap().unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "x,y\n1,2\n");
    }
}
