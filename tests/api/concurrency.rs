//! Predictions keep being answered while a long training runs, each from one whole model.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{linear_csv, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_during_training_come_from_the_old_or_the_new_model_never_a_mix() {
    let app = spawn_app().await;
    app.train(json!({ "epochs": 3, "seed": 1 })).await;
    // Two inputs, so that a kernel from one model with the bias of the other matches neither.
    let probe = json!([10.0, 20.0]);
    let old = app.predict_ok(probe.clone()).await;

    app.upload_ok(linear_csv(50_000)).await;
    let started = app.post_json("/train", &json!({ "epochs": 300, "seed": 2 })).await;
    assert_eq!(started.status(), 202);

    let mut answers = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while app.flag().await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "training did not finish in time");
        answers.push(app.predict_ok(probe.clone()).await);
    }
    let new = app.predict_ok(probe.clone()).await;
    assert_ne!(old, new, "the training produced a different model");
    assert!(
        answers.len() >= 10,
        "only {} predictions ran during the training; make it longer",
        answers.len()
    );
    for answer in &answers {
        assert!(*answer == old || *answer == new, "{answer:?} is from neither {old:?} nor {new:?}");
    }
    assert!(answers.contains(&old), "the old model kept answering while training ran");
}
