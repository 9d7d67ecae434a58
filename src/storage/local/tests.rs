use super::*;
use crate::storage::conformance;

fn key(key: &str) -> Key {
    Key::new(key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path().join("store")).unwrap();
    conformance::check(&store).await;
    assert_eq!(store.staging_files(), [], "every put cleans up its staging file");
}

#[test]
fn open_removes_the_staging_files_a_crash_left() {
    let dir = tempfile::tempdir().unwrap();
    LocalStore::open(dir.path()).unwrap();
    fs::write(dir.path().join(STAGING).join("put-crashed"), b"half a model").unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    assert_eq!(store.staging_files(), []);
}

#[test]
fn open_keeps_the_staging_files_another_store_still_writes() {
    let dir = tempfile::tempdir().unwrap();
    let first = LocalStore::open(dir.path()).unwrap();
    let in_use = first.staging_file().unwrap();
    let second = LocalStore::open(dir.path()).unwrap();
    let name = in_use.path().file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(second.staging_files(), [(name, 0)], "the file another store writes is kept");
    assert_eq!(second.staging_leftovers(), [], "and it is not a leftover");
    drop(in_use);
    assert_eq!(second.staging_files(), []);
}

/// Two stores on one directory stand for two processes: each operation opens the lock file
/// anew, and `flock` locks of separate opens exclude each other even within one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_through_two_stores_on_one_directory_are_serialised() {
    let dir = tempfile::tempdir().unwrap();
    let stores = [LocalStore::open(dir.path()).unwrap(), LocalStore::open(dir.path()).unwrap()];
    let pointer = key("models/active");
    for round in 0..20 {
        let base =
            stores[0].put(&pointer, Bytes::from(format!("round {round}")), PutMode::Overwrite).await.unwrap();
        let racers = (0..8).map(|writer| {
            let store = stores[writer % 2].clone();
            let (pointer, base) = (pointer.clone(), base.clone());
            tokio::spawn(async move {
                let bytes = Bytes::from(format!("round {round} writer {writer}"));
                store.put(&pointer, bytes, PutMode::Update(base)).await
            })
        });
        let results = futures_util::future::join_all(racers).await;
        let won = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
        let conflicts = results.iter().filter(|r| matches!(r, Ok(Err(StoreError::Conflict { .. })))).count();
        assert_eq!((won, conflicts), (1, 7), "round {round}: {results:?}");
    }
}

#[tokio::test]
async fn the_store_own_names_are_not_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    for reserved in ["staging/x", ".lock"] {
        let put = store.put(&key(reserved), Bytes::from_static(b"x"), PutMode::Overwrite).await;
        assert!(matches!(put, Err(StoreError::Unavailable { .. })), "{reserved}: {put:?}");
    }
    assert!(store.list(&key("staging")).await.is_err());
}

#[tokio::test]
async fn the_tag_is_the_sha256_of_the_contents() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let tag = store.put(&key("a"), Bytes::from_static(b"abc"), PutMode::Overwrite).await.unwrap();
    assert_eq!(tag.0, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"abc");
}

#[tokio::test]
async fn a_file_that_is_no_key_is_not_listed() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    store.put(&key("data/ok"), Bytes::from_static(b"1"), PutMode::Overwrite).await.unwrap();
    fs::write(dir.path().join("data").join("not a key"), b"2").unwrap();
    let listed: Vec<String> =
        store.list(&key("data")).await.unwrap().into_iter().map(|l| l.key.to_string()).collect();
    assert_eq!(listed, ["data/ok"]);
}
