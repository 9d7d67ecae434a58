use std::ops::ControlFlow;

use super::*;
use crate::data::default_dataset;
use crate::model::TrainSpec;
use crate::storage::memory::MemoryStore;
use crate::train::FitSettings;

fn trained(seed: u64) -> Model {
    let dataset = default_dataset();
    let settings = FitSettings { epochs: Some(2), seed: Some(seed), ..Default::default() };
    let spec = TrainSpec {
        selection: dataset.default_selection().clone(),
        params: settings.validate(1).unwrap(),
        warm_start: None,
        job: seed,
    };
    Model::train(&dataset, spec, &mut |_, _| ControlFlow::Continue(())).unwrap()
}

async fn put(store: &MemoryStore, key: &str, bytes: &'static [u8]) {
    store.put(&Key::new(key).unwrap(), bytes.into(), PutMode::Overwrite).await.unwrap();
}

#[tokio::test]
async fn versions_and_the_active_one_survive_a_reopen() {
    let store = Arc::new(MemoryStore::new());
    let registry = Registry::open(store.clone(), 5).await.unwrap();
    assert!(registry.active().is_none());
    assert_eq!(registry.commit(trained(1)).await.unwrap().version(), 1);
    assert_eq!(registry.commit(trained(2)).await.unwrap().version(), 2);
    registry.activate(1).await.unwrap();

    let reopened = Registry::open(store, 5).await.unwrap();
    assert_eq!(reopened.active().unwrap().version(), 1);
    let listed: Vec<(u64, bool)> = reopened
        .list()
        .iter()
        .map(|listing| match listing {
            VersionListing::Readable(summary) => (summary.version, summary.active),
            VersionListing::Unreadable(unreadable) => panic!("{}", unreadable.error),
        })
        .collect();
    assert_eq!(listed, [(2, false), (1, true)]);
    assert!(matches!(reopened.get(7).await, Err(RegistryError::NotFound(7))));
}

#[tokio::test]
async fn a_pointer_of_the_old_format_is_read() {
    let store = Arc::new(MemoryStore::new());
    Registry::open(store.clone(), 5).await.unwrap().commit(trained(1)).await.unwrap();
    put(&store, POINTER, b"1\n").await;
    let reopened = Registry::open(store, 5).await.unwrap();
    assert_eq!(reopened.active().unwrap().version(), 1);
    // And it can be swapped like any other.
    assert_eq!(reopened.commit(trained(2)).await.unwrap().version(), 2);
}

#[tokio::test]
async fn an_active_version_whose_file_changed_is_reported_and_not_served() {
    let store = Arc::new(MemoryStore::new());
    let registry = Registry::open(store.clone(), 5).await.unwrap();
    registry.commit(trained(1)).await.unwrap();
    registry.commit(trained(2)).await.unwrap();
    // Version 2's file replaced by a whole, valid model file that is not the one activated.
    let other = file::to_json(&trained(3).with_version(2), false).unwrap();
    store.put(&key_of(2), other.into(), PutMode::Overwrite).await.unwrap();

    let reopened = Registry::open(store, 5).await.unwrap();
    assert!(reopened.active().is_none(), "a model that is not the activated one is never served");
    let problem = reopened.active_unavailable().unwrap();
    assert!(problem.contains("version 2 cannot be served") && problem.contains("SHA-256"), "{problem}");
    assert_eq!(reopened.problems(), [problem]);
    reopened.activate(1).await.unwrap();
    assert!(reopened.active_unavailable().is_none());
}

#[tokio::test]
async fn a_number_another_process_took_is_skipped() {
    let store = Arc::new(MemoryStore::new());
    let registry = Registry::open(store.clone(), 5).await.unwrap();
    registry.commit(trained(1)).await.unwrap();
    put(&store, "models/v000002.json", b"written by another trainer").await;
    assert_eq!(registry.commit(trained(2)).await.unwrap().version(), 3);
    let Fetched::Found(kept) = store.get(&key_of(2), None).await.unwrap() else { panic!("v2 is gone") };
    assert_eq!(kept.bytes, &b"written by another trainer"[..], "a version is never overwritten");
}

#[tokio::test]
async fn the_loser_of_a_race_gets_a_conflict_and_serves_the_winner() {
    let store = Arc::new(MemoryStore::new());
    let first = Registry::open(store.clone(), 5).await.unwrap();
    first.commit(trained(1)).await.unwrap();
    first.commit(trained(2)).await.unwrap();
    let second = Registry::open(store.clone(), 5).await.unwrap();

    first.activate(1).await.unwrap();
    match second.activate(2).await {
        Err(RegistryError::Conflict { now: Some(1), wanted: 2 }) => {}
        other => panic!("expected a conflict, got {:?}", other.map(|model| model.version())),
    }
    assert_eq!(second.active().unwrap().version(), 1);
    // Having caught up, the loser swaps the pointer again.
    second.activate(2).await.unwrap();
    assert_eq!(Registry::open(store, 5).await.unwrap().active().unwrap().version(), 2);
}

#[tokio::test]
async fn an_unreadable_version_is_listed_and_keeps_its_number() {
    let store = Arc::new(MemoryStore::new());
    let registry = Registry::open(store.clone(), 5).await.unwrap();
    registry.commit(trained(1)).await.unwrap();
    put(&store, "models/v000002.json", b"{").await;
    let reopened = Registry::open(store, 5).await.unwrap();
    assert_eq!(reopened.active().unwrap().version(), 1);
    assert!(reopened.problems()[0].contains("model version 2 is unreadable"), "{:?}", reopened.problems());
    assert!(matches!(reopened.activate(2).await, Err(RegistryError::Unreadable(_))));
    assert_eq!(reopened.commit(trained(3)).await.unwrap().version(), 3);
}
