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

fn manual() -> Option<Activation> {
    Some(Reason::Manual.into())
}

fn rollback() -> Activation {
    Reason::Rollback.into()
}

async fn put(store: &MemoryStore, key: &str, bytes: &'static [u8]) {
    store.put(&Key::new(key).unwrap(), bytes.into(), PutMode::Overwrite).await.unwrap();
}

#[tokio::test]
async fn versions_and_the_active_one_survive_a_reopen() {
    let store = Arc::new(MemoryStore::new());
    let registry = Registry::open(store.clone(), 5).await.unwrap();
    assert!(registry.active().is_none());
    assert_eq!(registry.commit(trained(1), manual()).await.unwrap().version(), 1);
    assert_eq!(registry.commit(trained(2), manual()).await.unwrap().version(), 2);
    registry.activate(1, rollback()).await.unwrap();

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
    Registry::open(store.clone(), 5).await.unwrap().commit(trained(1), manual()).await.unwrap();
    put(&store, POINTER, b"1\n").await;
    let reopened = Registry::open(store, 5).await.unwrap();
    assert_eq!(reopened.active().unwrap().version(), 1);
    // And it can be swapped like any other.
    assert_eq!(reopened.commit(trained(2), manual()).await.unwrap().version(), 2);
}

#[tokio::test]
async fn an_active_version_whose_file_changed_is_reported_and_not_served() {
    let store = Arc::new(MemoryStore::new());
    let registry = Registry::open(store.clone(), 5).await.unwrap();
    registry.commit(trained(1), manual()).await.unwrap();
    registry.commit(trained(2), manual()).await.unwrap();
    // Version 2's file replaced by a whole, valid model file that is not the one activated.
    let other = file::to_json(&trained(3).with_version(2), false).unwrap();
    store.put(&key_of(2), other.into(), PutMode::Overwrite).await.unwrap();

    let reopened = Registry::open(store, 5).await.unwrap();
    assert!(reopened.active().is_none(), "a model that is not the activated one is never served");
    let problem = reopened.active_unavailable().unwrap();
    assert!(problem.contains("version 2 cannot be served") && problem.contains("SHA-256"), "{problem}");
    assert_eq!(reopened.problems(), [problem]);
    reopened.activate(1, rollback()).await.unwrap();
    assert!(reopened.active_unavailable().is_none());
}

#[tokio::test]
async fn a_number_another_process_took_is_skipped() {
    let store = Arc::new(MemoryStore::new());
    let registry = Registry::open(store.clone(), 5).await.unwrap();
    registry.commit(trained(1), manual()).await.unwrap();
    put(&store, "models/v000002.json", b"written by another trainer").await;
    assert_eq!(registry.commit(trained(2), manual()).await.unwrap().version(), 3);
    let Fetched::Found(kept) = store.get(&key_of(2), None).await.unwrap() else { panic!("v2 is gone") };
    assert_eq!(kept.bytes, &b"written by another trainer"[..], "a version is never overwritten");
}

#[tokio::test]
async fn the_loser_of_a_race_gets_a_conflict_and_serves_the_winner() {
    let store = Arc::new(MemoryStore::new());
    let first = Registry::open(store.clone(), 5).await.unwrap();
    first.commit(trained(1), manual()).await.unwrap();
    first.commit(trained(2), manual()).await.unwrap();
    let second = Registry::open(store.clone(), 5).await.unwrap();

    first.activate(1, rollback()).await.unwrap();
    match second.activate(2, rollback()).await {
        Err(RegistryError::Conflict { now: Some(1), wanted: 2 }) => {}
        other => panic!("expected a conflict, got {:?}", other.map(|model| model.version())),
    }
    assert_eq!(second.active().unwrap().version(), 1);
    // Having caught up, the loser swaps the pointer again.
    second.activate(2, rollback()).await.unwrap();
    assert_eq!(Registry::open(store, 5).await.unwrap().active().unwrap().version(), 2);
}

#[tokio::test]
async fn an_unreadable_version_is_listed_and_keeps_its_number() {
    let store = Arc::new(MemoryStore::new());
    let registry = Registry::open(store.clone(), 5).await.unwrap();
    registry.commit(trained(1), manual()).await.unwrap();
    put(&store, "models/v000002.json", b"{").await;
    let reopened = Registry::open(store, 5).await.unwrap();
    assert_eq!(reopened.active().unwrap().version(), 1);
    assert!(reopened.problems()[0].contains("model version 2 is unreadable"), "{:?}", reopened.problems());
    assert!(matches!(reopened.activate(2, rollback()).await, Err(RegistryError::Unreadable(_))));
    assert_eq!(reopened.commit(trained(3), manual()).await.unwrap().version(), 3);
}

/// The events as `(id, version, previous, reason)`.
fn events_of(registry: &Registry) -> Vec<(u64, u64, Option<u64>, &'static str)> {
    let backlog = registry.events().replay(Some(0), 0);
    backlog
        .events
        .iter()
        .map(|event| (event.id, event.version, event.previous, event.reason.label()))
        .collect()
}

#[tokio::test]
async fn each_activation_is_an_event_and_a_stored_only_version_is_none() {
    let registry = Registry::open(Arc::new(MemoryStore::new()), 5).await.unwrap();
    let mut wakeup = registry.events().subscribe();
    registry.commit(trained(1), manual()).await.unwrap();
    assert!(wakeup.recorded().await, "a reader is woken by the event");
    registry.commit(trained(2), None).await.unwrap();
    assert_eq!(
        registry.active().unwrap().version(),
        1,
        "a version stored without an activation is not served"
    );
    registry.activate(2, rollback()).await.unwrap();
    let trigger = Activation {
        reason: Reason::Trigger { name: "nightly".into() },
        gate: Some(GateScores { candidate_mse: 1.5, active_mse: Some(2.0), margin: 0.1, holdout_rows: 7 }),
    };
    registry.commit(trained(3), Some(trigger.clone())).await.unwrap();
    registry.activate(3, rollback()).await.unwrap();

    assert_eq!(
        events_of(&registry),
        [(1, 1, None, "manual"), (2, 2, Some(1), "rollback"), (3, 3, Some(2), "trigger")]
    );
    let last = registry.events().replay(Some(2), 0).events.pop().unwrap();
    assert_eq!((last.reason, last.gate), (trigger.reason, trigger.gate));
    let fresh = registry.events().replay(None, 2);
    assert_eq!((fresh.events.len(), fresh.events[0].id, fresh.through, fresh.gap), (2, 2, 3, None));
}

#[tokio::test]
async fn event_ids_continue_after_a_reopen() {
    let store = Arc::new(MemoryStore::new());
    let registry = Registry::open(store.clone(), 5).await.unwrap();
    registry.commit(trained(1), manual()).await.unwrap();
    registry.commit(trained(2), manual()).await.unwrap();

    let reopened = Registry::open(store.clone(), 5).await.unwrap();
    assert_eq!(events_of(&reopened), [(1, 1, None, "manual"), (2, 2, Some(1), "manual")]);
    reopened.activate(1, rollback()).await.unwrap();
    assert_eq!(events_of(&reopened).last(), Some(&(3, 1, Some(2), "rollback")));
    let keys: Vec<String> =
        store.list(&Key::fixed("models/events")).await.unwrap().iter().map(|l| l.key.to_string()).collect();
    assert_eq!(keys.last().unwrap(), "models/events/00000000000000000003.json");
    assert_eq!(keys.len(), 3);
}

#[tokio::test]
async fn only_the_newest_events_are_kept_and_a_reader_behind_them_is_told_of_the_gap() {
    let store = Arc::new(MemoryStore::new());
    let registry = Registry::open(store.clone(), 5).await.unwrap();
    registry.commit(trained(1), manual()).await.unwrap();
    registry.commit(trained(2), manual()).await.unwrap();
    let total = events::KEEP_EVENTS as u64 + 5;
    for round in 3..=total {
        registry.activate(1 + (round + 1) % 2, rollback()).await.unwrap();
    }
    let stored = store.list(&Key::fixed("models/events")).await.unwrap();
    assert_eq!(stored.len(), events::KEEP_EVENTS, "older events are deleted from the store");
    assert_eq!(stored[0].key.as_str(), "models/events/00000000000000000006.json");

    let reopened = Registry::open(store, 5).await.unwrap();
    for log in [registry.events(), reopened.events()] {
        let behind = log.replay(Some(3), 0);
        assert_eq!(behind.gap, Some(events::Gap { after: 3, oldest: 6 }));
        assert_eq!(
            (behind.events.len(), behind.events[0].id, behind.through),
            (events::KEEP_EVENTS, 6, total)
        );
        assert_eq!(log.replay(Some(5), 0).gap, None, "nothing was missed after 5");
        assert_eq!(log.replay(Some(total), 0).events, []);
        let other_log = log.replay(Some(total + 10), 1);
        assert_eq!((other_log.gap, other_log.events[0].id), (None, total), "an id this log never reached");
    }
}
