//! Jobs: states, progress, the event stream, cancellation and failures.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{error_of, slow_dataset, spawn_app};

#[tokio::test]
async fn a_job_goes_from_running_to_succeeded_with_progress_on_the_way() {
    let app = spawn_app().await;
    app.upload_ok(slow_dataset()).await;
    let id = app.start_training(json!({ "epochs": 200, "seed": 1 })).await;

    let mut seen_running = false;
    loop {
        let job = app.json(&format!("/v1/jobs/{id}")).await;
        let epoch = job["epoch"].as_u64().unwrap();
        assert_eq!(job["history"]["loss"].as_array().unwrap().len() as u64, epoch, "history so far");
        assert_eq!(job["epochs"], 200);
        match job["state"].as_str().unwrap() {
            "queued" => {}
            "running" => {
                seen_running = true;
                if epoch > 0 {
                    assert!(job["eta_ms"].as_f64().unwrap() >= 0.0);
                    assert_eq!(job["loss"], *job["history"]["loss"].as_array().unwrap().last().unwrap());
                }
            }
            "succeeded" => {
                assert_eq!(epoch, 200);
                assert_eq!(job["model_version"], 1);
                assert_eq!(job["eta_ms"], 0.0);
                for metric in ["mse", "r2", "optimum_mse", "gap"] {
                    assert!(job[metric].is_f64(), "{metric} is reported: {job}");
                }
                break;
            }
            other => panic!("unexpected state {other}: {job}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen_running, "the job was seen running");
    let jobs = app.json("/v1/jobs").await;
    assert_eq!(jobs[0]["id"], id);
    assert!(jobs[0].get("history").is_none(), "the list leaves histories out");
}

#[tokio::test]
async fn event_stream_sends_throttled_progress_then_one_final_event_to_every_follower() {
    let app = spawn_app().await;
    app.upload_ok(slow_dataset()).await;
    let id = app.start_training(json!({ "epochs": 300, "seed": 5 })).await;
    let started = Instant::now();
    let (first, second) = tokio::join!(app.job_events(id), app.job_events(id));
    let took = started.elapsed().as_secs_f64();
    let job = app.json(&format!("/v1/jobs/{id}")).await;
    let history = job["history"]["loss"].as_array().unwrap().clone();

    for events in [&first, &second] {
        let (last, progress) = events.split_last().unwrap();
        assert_eq!(last.0, "done", "the stream ends with the outcome");
        assert_eq!(last.1["state"], "succeeded");
        assert_eq!(last.1["model_version"], job["model_version"]);
        assert!(progress.iter().all(|(name, _)| name == "progress"), "only progress before done");
        assert!(progress.len() >= 3, "several progress events during the fit: {}", progress.len());
        let rate = events.len() as f64 / took;
        assert!(rate <= 25.0, "{} events in {took:.2}s is more than about 20 a second", events.len());
        // The losses of consecutive events continue each other and add up to the whole history.
        let mut streamed: Vec<Value> = Vec::new();
        for (_, event) in progress {
            assert_eq!(event["first_epoch"].as_u64().unwrap() as usize, streamed.len() + 1);
            streamed.extend(event["losses"].as_array().unwrap().iter().cloned());
            assert_eq!(event["epoch"].as_u64().unwrap() as usize, streamed.len());
        }
        assert_eq!(streamed, history, "the events carry every epoch's loss");
    }
}

#[tokio::test]
async fn a_finished_job_streams_its_whole_history_then_its_outcome() {
    let app = spawn_app().await;
    app.train(json!({ "epochs": 3 })).await;
    let events = app.job_events(1).await;
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["progress", "done"]);
    assert_eq!(events[0].1["losses"].as_array().unwrap().len(), 3);
    assert_eq!(events[0].1["first_epoch"], 1);
    error_of(app.get("/v1/jobs/99/events").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn cancelling_stops_the_job_and_keeps_the_served_model() {
    let app = spawn_app().await;
    let served = app.train(json!({ "epochs": 5 })).await;
    app.upload_ok(slow_dataset()).await;
    let id = app.start_training(json!({ "epochs": 100_000 })).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let response = app.client.delete(app.url(&format!("/v1/jobs/{id}"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["state"], "cancelled");
    assert!(job["error"].as_str().unwrap().contains("cancelled on request"));
    assert_eq!(job["model_version"], Value::Null);

    let current = app.json("/v1/model").await;
    assert_eq!((current["version"].clone(), current["kernel"].clone()), (json!(1), served["kernel"].clone()));
    assert_eq!(app.flag().await, 1, "the flag is back to 1 after a cancelled training");
    let again = app.client.delete(app.url(&format!("/v1/jobs/{id}"))).send().await.unwrap();
    assert!(error_of(again, StatusCode::CONFLICT).await.contains("already finished"));
    let unknown = app.client.delete(app.url("/v1/jobs/777")).send().await.unwrap();
    error_of(unknown, StatusCode::NOT_FOUND).await;
    let malformed = app.client.delete(app.url("/v1/jobs/abc")).send().await.unwrap();
    error_of(malformed, StatusCode::BAD_REQUEST).await;
}

/// A CSV of `rows` rows and `features` feature columns (and a target), about `rows * features * 7`
/// bytes: wide enough that an exact solution takes seconds in a test build.
fn wide_csv(rows: usize, features: usize) -> String {
    let header: Vec<String> = (0..features).map(|j| format!("x{j}")).chain(["y".to_owned()]).collect();
    let mut csv = header.join(",") + "\n";
    for i in 0..rows {
        let values: Vec<String> =
            (0..=features).map(|j| format!("{:.3}", ((i * 31 + j * 17) % 997) as f64 / 97.0)).collect();
        csv.push_str(&values.join(","));
        csv.push('\n');
    }
    csv
}

#[tokio::test]
async fn cancelling_a_least_squares_fit_stops_it_promptly_and_never_activates_its_model() {
    let app = spawn_app().await;
    let served = app.train(json!({ "solver": "least-squares" })).await;
    app.upload_ok(wide_csv(6_000, 400)).await;
    let id = app.start_training(json!({ "solver": "least-squares" })).await;
    for _ in 0..500 {
        if app.json(&format!("/v1/jobs/{id}")).await["state"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let response = app.client.delete(app.url(&format!("/v1/jobs/{id}"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["state"], "cancelled", "{job}");
    assert!(started.elapsed() < Duration::from_secs(3), "the cancel took {:?}", started.elapsed());
    // Give a fit that ignored the cancel the time to finish: it must not have replaced the model.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(app.json("/v1/model").await["version"], served["version"]);
    assert_eq!(app.json("/v1/models").await.as_array().unwrap().len(), 1);
    assert_eq!(app.json(&format!("/v1/jobs/{id}")).await["state"], "cancelled");
}

#[tokio::test]
async fn a_waiting_client_learns_that_its_job_was_cancelled() {
    let app = spawn_app().await;
    app.upload_ok(slow_dataset()).await;
    let url = app.url("/train?wait=true");
    let client = app.client.clone();
    let waiting =
        tokio::spawn(async move { client.post(url).json(&json!({ "epochs": 100_000 })).send().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.client.delete(app.url("/v1/jobs/1")).send().await.unwrap();
    let message = error_of(waiting.await.unwrap().unwrap(), StatusCode::CONFLICT).await;
    assert!(message.contains("cancelled"), "{message}");
}

#[tokio::test]
async fn a_failed_job_records_why_and_the_flag_does_not_stick_at_zero() {
    let app = spawn_app().await;
    app.train(json!({ "epochs": 2 })).await;
    let id = app.start_training(json!({ "epochs": 5, "learning_rate": 1e305 })).await;
    let events = app.job_events(id).await;
    let (name, done) = events.last().unwrap();
    assert_eq!(name, "done");
    assert_eq!(done["state"], "failed");
    assert!(done["error"].as_str().unwrap().contains("diverged"), "{done}");
    assert_eq!(app.json(&format!("/v1/jobs/{id}")).await["state"], "failed");
    assert_eq!(app.flag().await, 1);
}

#[tokio::test]
async fn solvers_report_their_fit_and_the_gap_to_the_optimum() {
    let app = spawn_app().await;
    let exact = app.train(json!({ "solver": "least-squares" })).await;
    assert_eq!(exact["params"], json!({ "solver": "least-squares" }));
    assert!((exact["kernel"][0].as_f64().unwrap() - 5.599482874119919).abs() < 1e-9);
    assert!(exact["gap"].as_f64().unwrap().abs() < 1e-9);

    let standardized = app.train(json!({ "solver": "adam-standardized", "seed": 4 })).await;
    let gap = standardized["gap"].as_f64().unwrap() / standardized["optimum_mse"].as_f64().unwrap();
    assert!(gap < 1e-3, "relative gap {gap}");
    assert!(standardized["history"]["loss"].as_array().unwrap().len() < 10_000, "it stopped early");

    let keras = app.train(json!({ "epochs": 500, "seed": 4 })).await;
    assert!(keras["gap"].as_f64().unwrap() > 100.0, "the original's defaults do not converge");
    let r2 = keras["r2"].as_f64().unwrap();
    let expected = 1.0
        - keras["mse"].as_f64().unwrap() / exact["mse"].as_f64().unwrap()
            * (1.0 - exact["r2"].as_f64().unwrap());
    assert!((r2 - expected).abs() < 1e-9, "R² = 1 - mse / var(y)");

    let message = error_of(
        app.post_json("/train", &json!({ "solver": "newton" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(message.contains("solver"), "{message}");
    let message = error_of(
        app.post_json("/train", &json!({ "solver": "least-squares", "epochs": 5 })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(message.starts_with("epochs:"), "{message}");
}

#[tokio::test]
async fn least_squares_refuses_collinear_features() {
    let app = spawn_app().await;
    app.upload_ok("a,b,y\n1,2,1\n2,4,3\n3,6,2\n4,8,5\n").await;
    let response = app.post_json("/train?wait=true", &json!({ "solver": "least-squares" })).await;
    let message = error_of(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(message.contains("linearly dependent"), "{message}");
}

#[tokio::test]
async fn warm_start_continues_from_the_served_model() {
    let app = spawn_app().await;
    let message =
        error_of(app.post_json("/train", &json!({ "warm_start": true })).await, StatusCode::CONFLICT).await;
    assert!(message.contains("no current model"), "{message}");
    let first = app.train(json!({ "epochs": 50, "seed": 1 })).await;
    let second = app.train(json!({ "epochs": 50, "warm_start": true })).await;
    assert_eq!(second["initial"]["kernel"], first["kernel"]);
    assert_eq!(second["initial"]["bias"], first["bias"]);
    assert_eq!(second["warm_start_from"], 1);
    app.upload_ok(crate::helpers::INCOME2).await;
    let mismatch = json!({ "warm_start": true, "features": ["Education", "Seniority"] });
    let message = error_of(app.post_json("/train", &mismatch).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(message.starts_with("warm_start: the current model"), "{message}");
    let both = json!({ "warm_start": true, "initial": { "kernel": [1], "bias": 0 } });
    error_of(app.post_json("/train", &both).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    let first_loss = second["history"]["loss"][0].as_f64().unwrap();
    assert!(
        first_loss < first["history"]["loss"][0].as_f64().unwrap(),
        "it picked up where the first left off"
    );
}
