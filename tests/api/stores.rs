//! Where the API tests keep a server's state. By default a fresh local directory; with
//! `REGSERVE_TEST_STORE=s3://BUCKET` (and that store's `AWS_*` variables) a fresh prefix of the
//! bucket, named after the path of the test's scratch directory, so that the same tests run on both
//! backends. The tests look at and damage what is stored through the store's own interface.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use regserve::registry::Pointer;
use regserve::settings::Location;
use regserve::storage::local::LocalStore;
use regserve::storage::{Fetched, Key, PutMode, Storage};

/// The bucket the tests run on instead of local directories, if any.
fn test_bucket() -> Option<String> {
    std::env::var("REGSERVE_TEST_STORE").ok().filter(|bucket| !bucket.is_empty())
}

/// Whether the tests keep their state in local directories.
pub fn is_local() -> bool {
    test_bucket().is_none()
}

/// The store of a test whose scratch directory is `dir`.
pub fn location(dir: &Path) -> Location {
    match test_bucket() {
        None => Location::Local(dir.to_path_buf()),
        Some(bucket) => {
            let name = dir.to_string_lossy().replace(|c: char| !c.is_ascii_alphanumeric(), "");
            Location::parse(&format!("{}/api-{name}", bucket.trim_end_matches('/'))).unwrap()
        }
    }
}

/// The store of `dir`, opened as the server opens it.
pub fn open(dir: &Path) -> Arc<dyn Storage> {
    location(dir).open().unwrap()
}

fn key(key: &str) -> Key {
    Key::new(key).unwrap()
}

/// The object at `key`, if there is one.
pub async fn object(dir: &Path, name: &str) -> Option<Bytes> {
    match open(dir).get(&key(name), None).await.unwrap() {
        Fetched::Found(object) => Some(object.bytes),
        _ => None,
    }
}

/// Replaces (or creates) the object at `key`.
pub async fn put(dir: &Path, name: &str, bytes: impl Into<Bytes>) {
    open(dir).put(&key(name), bytes.into(), PutMode::Overwrite).await.unwrap();
}

/// The names of the model files and the active-model pointer (the objects under `models/` but
/// the activation events), sorted.
pub async fn model_objects(dir: &Path) -> Vec<String> {
    let listed = open(dir).list(&key("models")).await.unwrap();
    let versions = listed.iter().filter(|listed| !listed.key.as_str().starts_with("models/events/"));
    let mut names: Vec<String> = versions.map(|listed| listed.key.name().to_owned()).collect();
    names.sort();
    names
}

/// The version the active-model pointer names.
pub async fn active_pointer(dir: &Path) -> u64 {
    let bytes = object(dir, "models/active").await.expect("an active-model pointer is stored");
    Pointer::parse(&bytes).unwrap().version
}

/// The uploaded dataset as stored.
pub async fn stored_dataset(dir: &Path) -> Option<Bytes> {
    object(dir, "dataset.csv").await
}

/// The staging files of a local store, with their sizes (none on an object store, whose
/// staging files are not in the store).
pub fn staging_files(dir: &Path) -> Vec<(String, u64)> {
    match is_local() {
        true => LocalStore::inspect(dir).staging_files(),
        false => Vec::new(),
    }
}

/// Checks that no staging file is left behind: none that no live process is writing (a
/// running server writes its heartbeat through one every few seconds).
pub fn assert_no_staging_files(dir: &Path) {
    let stray = match is_local() {
        true => LocalStore::inspect(dir).staging_leftovers(),
        false => Vec::new(),
    };
    assert!(stray.is_empty(), "staging files were left behind: {stray:?}");
}

/// Waits (at most 10 s) until a staging file of the local store holds at least `bytes`.
pub async fn wait_for_staging_file(dir: &Path, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !staging_files(dir).iter().any(|(_, size)| *size >= bytes) {
        assert!(Instant::now() < deadline, "the upload never reached the store's staging directory");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
