//! The one suite of checks every backend passes: what [`Storage`] promises, tried on a real
//! store. Each backend's tests run [`check`] (the S3 one against a real S3-compatible server),
//! so the services above the interface can rely on the same behaviour from all of them.
//!
//! The suite panics on the first failure, naming the store and the step. It works below a
//! random prefix and deletes what it wrote, so that it can run against a shared bucket.

use std::io::{Read, Seek, Write};

use bytes::Bytes;
use futures_util::future::join_all;

use super::{Fetched, Key, Object, PutMode, Storage, StoreError, Tag};

/// The size of the large object: above 5 MiB, the smallest part of an S3 multipart upload, and
/// not a whole number of parts.
const LARGE: usize = 9 * 1024 * 1024 + 12_345;
/// How many writers race in the concurrency checks.
const RACERS: usize = 8;

/// Runs every check on `store`; panics with a message naming the first that fails.
pub async fn check(store: &dyn Storage) {
    let run = Run::new(store);
    run.round_trip().await;
    run.missing().await;
    run.conditional_get().await;
    run.create().await;
    run.update().await;
    run.overwrite().await;
    run.delete().await;
    run.list().await;
    run.empty_and_nested().await;
    run.large_file().await;
    run.concurrent_create().await;
    run.concurrent_update().await;
    run.clean_up().await;
}

/// One run of the suite: the store and the prefix below which it writes.
struct Run<'a> {
    store: &'a dyn Storage,
    prefix: Key,
}

impl<'a> Run<'a> {
    fn new(store: &'a dyn Storage) -> Self {
        let prefix = Key::new(format!("conformance-{:016x}", rand::random::<u64>())).expect("a valid prefix");
        Self { store, prefix }
    }

    fn key(&self, name: &str) -> Key {
        self.prefix.join(name).expect("a valid key")
    }

    fn fail(&self, step: &str, detail: impl std::fmt::Display) -> ! {
        panic!("storage conformance on {}: {step}: {detail}", self.store.name())
    }

    fn ok<T>(&self, step: &str, result: Result<T, StoreError>) -> T {
        result.unwrap_or_else(|e| self.fail(step, format!("failed: {e}")))
    }

    async fn put(&self, step: &str, key: &Key, bytes: impl Into<Bytes>, mode: PutMode) -> Tag {
        self.ok(step, self.store.put(key, bytes.into(), mode).await)
    }

    async fn get(&self, step: &str, key: &Key, unless: Option<&Tag>) -> Fetched {
        self.ok(step, self.store.get(key, unless).await)
    }

    /// The object at `key`, which must be there.
    async fn found(&self, step: &str, key: &Key) -> Object {
        match self.get(step, key, None).await {
            Fetched::Found(object) => object,
            other => self.fail(step, format!("expected {key} to be found, got {other:?}")),
        }
    }

    /// Checks that `key` holds `bytes` with version `tag`.
    async fn holds(&self, step: &str, key: &Key, bytes: &[u8], tag: &Tag) {
        let object = self.found(step, key).await;
        if object.bytes != bytes {
            self.fail(
                step,
                format!("{key} holds {:?}, expected {:?}", object.bytes, Bytes::copy_from_slice(bytes)),
            );
        }
        if &object.tag != tag {
            self.fail(
                step,
                format!("{key} has the tag {:?}, expected {tag:?} (the tag its put returned)", object.tag),
            );
        }
    }

    async fn round_trip(&self) {
        let step = "a put, then a get, gives back the bytes and the tag of the put";
        let key = self.key("round-trip");
        let tag = self.put(step, &key, "hello", PutMode::Overwrite).await;
        self.holds(step, &key, b"hello", &tag).await;
    }

    async fn missing(&self) {
        let step = "a get of a key never written finds nothing";
        let key = self.key("never-written");
        match self.get(step, &key, None).await {
            Fetched::Missing => {}
            other => self.fail(step, format!("got {other:?}")),
        }
        let step = "a get of a missing key, unless some tag, finds nothing";
        match self.get(step, &key, Some(&Tag("some-tag".into()))).await {
            Fetched::Missing => {}
            other => self.fail(step, format!("got {other:?}")),
        }
        let step = "get_file of a missing key finds nothing";
        if self.ok(step, self.store.get_file(&key).await).is_some() {
            self.fail(step, "got a file");
        }
    }

    async fn conditional_get(&self) {
        let key = self.key("conditional");
        let first = self.put("put for a conditional get", &key, "first", PutMode::Overwrite).await;

        let step = "a get unless the current tag is NotModified";
        match self.get(step, &key, Some(&first)).await {
            Fetched::NotModified => {}
            other => self.fail(step, format!("got {other:?}")),
        }
        let step = "a get unless another tag finds the object";
        match self.get(step, &key, Some(&Tag("\"another\"".into()))).await {
            Fetched::Found(object) if object.bytes == "first" && object.tag == first => {}
            other => self.fail(step, format!("got {other:?}")),
        }
        let second = self.put("a change", &key, "second", PutMode::Overwrite).await;
        if second == first {
            self.fail("a change", "a put of other bytes kept the tag");
        }
        let step = "a get unless the old tag, after a change, finds the new version";
        match self.get(step, &key, Some(&first)).await {
            Fetched::Found(object) if object.bytes == "second" && object.tag == second => {}
            other => self.fail(step, format!("got {other:?}")),
        }
    }

    async fn create(&self) {
        let key = self.key("created");
        let step = "Create on a new key";
        let tag = self.put(step, &key, "original", PutMode::Create).await;
        self.holds(step, &key, b"original", &tag).await;

        let step = "Create on an existing key is AlreadyExists";
        match self.store.put(&key, Bytes::from_static(b"replacement"), PutMode::Create).await {
            Err(StoreError::AlreadyExists { key: named, .. }) if named == key => {}
            other => self.fail(step, format!("got {other:?}")),
        }
        self.holds("a refused Create leaves the object unchanged", &key, b"original", &tag).await;
    }

    async fn update(&self) {
        let key = self.key("updated");
        let first = self.put("put before an Update", &key, "v1", PutMode::Overwrite).await;

        let step = "Update with the current tag";
        let second = self.put(step, &key, "v2", PutMode::Update(first.clone())).await;
        if second == first {
            self.fail(step, "the tag did not change");
        }
        self.holds(step, &key, b"v2", &second).await;

        let step = "Update with a stale tag is Conflict";
        match self.store.put(&key, Bytes::from_static(b"v3"), PutMode::Update(first)).await {
            Err(StoreError::Conflict { key: named, .. }) if named == key => {}
            other => self.fail(step, format!("got {other:?}")),
        }
        self.holds("a refused Update leaves the object unchanged", &key, b"v2", &second).await;

        let step = "Update of a missing key is Conflict";
        let missing = self.key("never-updated");
        match self.store.put(&missing, Bytes::from_static(b"v1"), PutMode::Update(second)).await {
            Err(StoreError::Conflict { .. }) => {}
            other => self.fail(step, format!("got {other:?}")),
        }
        match self.get(step, &missing, None).await {
            Fetched::Missing => {}
            other => self.fail(step, format!("the refused Update stored something: {other:?}")),
        }
    }

    async fn overwrite(&self) {
        let key = self.key("overwritten");
        let step = "Overwrite on a new key";
        let first = self.put(step, &key, "one", PutMode::Overwrite).await;
        self.holds(step, &key, b"one", &first).await;
        let step = "Overwrite on an existing key replaces it";
        let second = self.put(step, &key, "two, longer", PutMode::Overwrite).await;
        self.holds(step, &key, b"two, longer", &second).await;
    }

    async fn delete(&self) {
        let key = self.key("deleted");
        self.put("put before a delete", &key, "doomed", PutMode::Overwrite).await;
        let step = "delete, then get, finds nothing";
        self.ok(step, self.store.delete(&key).await);
        match self.get(step, &key, None).await {
            Fetched::Missing => {}
            other => self.fail(step, format!("got {other:?}")),
        }
        self.ok("deleting a missing key", self.store.delete(&key).await);
        let step = "Create after a delete";
        let tag = self.put(step, &key, "reborn", PutMode::Create).await;
        self.holds(step, &key, b"reborn", &tag).await;
    }

    async fn list(&self) {
        let step = "list of a prefix";
        let written = [("models/a", "1"), ("models/b/c", "22"), ("models/b/d", ""), ("models2/x", "4444")];
        for (name, bytes) in written {
            self.put(step, &self.key(name), bytes, PutMode::Overwrite).await;
        }
        self.put(step, &self.key("models-and-more"), "5", PutMode::Overwrite).await;
        let listed = self.ok(step, self.store.list(&self.key("models")).await);
        let got: Vec<(String, u64)> = listed.iter().map(|l| (l.key.to_string(), l.size)).collect();
        let expected: Vec<(String, u64)> = [("models/a", 1), ("models/b/c", 2), ("models/b/d", 0)]
            .into_iter()
            .map(|(name, size)| (self.key(name).to_string(), size))
            .collect();
        if got != expected {
            self.fail(step, format!("listed {got:?}, expected {expected:?} (sorted, only below the prefix)"));
        }
        let step = "list of a prefix with nothing below it";
        let nothing = self.ok(step, self.store.list(&self.key("nothing-here")).await);
        if !nothing.is_empty() {
            self.fail(step, format!("listed {nothing:?}"));
        }
    }

    async fn empty_and_nested(&self) {
        let step = "an empty object";
        let key = self.key("empty");
        let tag = self.put(step, &key, Bytes::new(), PutMode::Create).await;
        self.holds(step, &key, b"", &tag).await;
        match self.get(step, &key, Some(&tag)).await {
            Fetched::NotModified => {}
            other => self.fail(step, format!("a get unless its tag got {other:?}")),
        }

        let step = "a key with nested components";
        let key = self.key("deeply/nested/key.with_dots-and_underscores");
        let tag = self.put(step, &key, "deep", PutMode::Create).await;
        self.holds(step, &key, b"deep", &tag).await;
    }

    async fn large_file(&self) {
        let step = "staging_file, put_file and get_file of a large object";
        let key = self.key("large/data.bin");
        let content: Vec<u8> = (0..LARGE).map(|i| (i % 251) as u8).collect();
        let mut file = self.ok(step, self.store.staging_file());
        file.write_all(&content)
            .unwrap_or_else(|e| self.fail(step, format!("writing the staging file: {e}")));
        let tag = self.ok(step, self.store.put_file(&key, file).await);

        let Some(mut read) = self.ok(step, self.store.get_file(&key).await) else {
            self.fail(step, "get_file found nothing")
        };
        let mut back = Vec::new();
        read.rewind().and_then(|()| read.read_to_end(&mut back)).unwrap_or_else(|e| self.fail(step, e));
        if back != content {
            self.fail(step, format!("got {} bytes back, not the {} written", back.len(), content.len()));
        }
        self.holds(step, &key, &content, &tag).await;

        let step = "put_file replaces an object";
        let mut file = self.ok(step, self.store.staging_file());
        file.write_all(b"small now").unwrap_or_else(|e| self.fail(step, e));
        let tag = self.ok(step, self.store.put_file(&key, file).await);
        self.holds(step, &key, b"small now", &tag).await;
    }

    async fn concurrent_create(&self) {
        let step = "Create of one key by concurrent writers";
        let key = self.key("raced-create");
        let writers =
            (0..RACERS).map(|i| self.store.put(&key, Bytes::from(format!("writer {i}")), PutMode::Create));
        let results = join_all(writers).await;
        let winner = self.one_winner(step, &results, |e| matches!(e, StoreError::AlreadyExists { .. }));
        let (i, tag) = winner;
        self.holds(step, &key, format!("writer {i}").as_bytes(), tag).await;
    }

    async fn concurrent_update(&self) {
        let step = "Update from one tag by concurrent writers";
        let key = self.key("raced-update");
        let base = self.put(step, &key, "base", PutMode::Overwrite).await;
        let writers = (0..RACERS)
            .map(|i| self.store.put(&key, Bytes::from(format!("writer {i}")), PutMode::Update(base.clone())));
        let results = join_all(writers).await;
        let (i, tag) = self.one_winner(step, &results, |e| matches!(e, StoreError::Conflict { .. }));
        self.holds(step, &key, format!("writer {i}").as_bytes(), tag).await;
    }

    /// The one writer that succeeded, and its tag; every other must have failed as `lost`.
    fn one_winner<'r>(
        &self,
        step: &str,
        results: &'r [Result<Tag, StoreError>],
        lost: impl Fn(&StoreError) -> bool,
    ) -> (usize, &'r Tag) {
        let won: Vec<(usize, &Tag)> =
            results.iter().enumerate().filter_map(|(i, r)| r.as_ref().ok().map(|tag| (i, tag))).collect();
        if won.len() != 1 {
            self.fail(step, format!("{} writers succeeded, not exactly one: {results:?}", won.len()));
        }
        if let Some(e) = results.iter().filter_map(|r| r.as_ref().err()).find(|e| !lost(e)) {
            self.fail(step, format!("a losing writer failed otherwise: {e}"));
        }
        won[0]
    }

    /// Deletes everything the run wrote, and checks it is gone.
    async fn clean_up(&self) {
        let step = "deleting everything the suite wrote";
        for listed in self.ok(step, self.store.list(&self.prefix).await) {
            self.ok(step, self.store.delete(&listed.key).await);
        }
        let left = self.ok(step, self.store.list(&self.prefix).await);
        if !left.is_empty() {
            self.fail(step, format!("still listed: {left:?}"));
        }
    }
}
