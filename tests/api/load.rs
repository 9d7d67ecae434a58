//! Load: many clients predicting while the model and the dataset keep changing under them, and
//! the server's memory across many trainings.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{linear_csv, spawn_app};
use crate::process::Server;

/// Concurrent prediction clients.
const CLIENTS: usize = 32;
/// How long the changes go on while the clients predict (longer if 8 changes take longer).
const LOAD_TIME: Duration = Duration::from_secs(6);
/// Predictions one client sends at most.
const MAX_PREDICTIONS_PER_CLIENT: usize = 5_000;
/// The inputs every client predicts: two rows, so a torn model would match no stored one.
const PROBE: [f64; 2] = [2.0, 7.5];

/// A second dataset with the same columns as [`linear_csv`] and other values (`y = -2x + 40`).
fn other_csv(rows: usize) -> String {
    let mut csv = String::from("x,y\n");
    for i in 0..rows {
        let x = (i % 500) as f64 / 25.0;
        let noise = ((i * 104_729) % 11) as f64 / 10.0 - 0.5;
        csv.push_str(&format!("{x},{}\n", -2.0 * x + 40.0 + noise));
    }
    csv
}

/// What `model` answers for [`PROBE`], computed as the server does (`x * w` summed, plus the bias).
fn expected_answer(model: &Value) -> (u64, u64) {
    let kernel: Vec<f64> = model["kernel"].as_array().unwrap().iter().map(|w| w.as_f64().unwrap()).collect();
    let bias = model["bias"].as_f64().unwrap();
    let predict = |x: f64| [x].iter().zip(&kernel).map(|(x, w)| x * w).sum::<f64>() + bias;
    (predict(PROBE[0]).to_bits(), predict(PROBE[1]).to_bits())
}

#[derive(Default)]
struct ClientReport {
    succeeded: usize,
    failed: usize,
    /// The first few failures, for the assertion message.
    failures: Vec<String>,
    answers: HashSet<(u64, u64)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn predictions_never_fail_while_trainings_uploads_and_activations_run() {
    let app = spawn_app().await;
    let datasets = [linear_csv(1_000), other_csv(1_500)];
    app.upload_ok(datasets[0].clone()).await;
    let mut models = vec![app.train(json!({ "solver": "least-squares" })).await];

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, url, stop) = (app.client.clone(), app.url("/predict"), stop.clone());
            tokio::spawn(async move {
                let mut report = ClientReport::default();
                let body = json!({ "x_predict": PROBE });
                while !stop.load(Ordering::Relaxed)
                    && report.succeeded + report.failed < MAX_PREDICTIONS_PER_CLIENT
                {
                    let failure = match client.post(&url).json(&body).send().await {
                        Ok(response) if response.status().is_success() => {
                            match response.json::<Value>().await {
                                Ok(body) => {
                                    let y =
                                        |row: usize| body["y_predict"][row][0].as_f64().unwrap().to_bits();
                                    report.answers.insert((y(0), y(1)));
                                    report.succeeded += 1;
                                    continue;
                                }
                                Err(error) => format!("unreadable answer: {error}"),
                            }
                        }
                        Ok(response) => {
                            format!("{}: {}", response.status(), response.text().await.unwrap_or_default())
                        }
                        Err(error) => format!("request failed: {error}"),
                    };
                    report.failed += 1;
                    if report.failures.len() < 5 {
                        report.failures.push(failure);
                    }
                }
                report
            })
        })
        .collect();

    // Meanwhile, one change after another: trainings with every solver, uploads alternating
    // between the two datasets, and activations of stored versions.
    let started = Instant::now();
    let (mut trainings, mut uploads, mut activations) = (0, 0, 0);
    // At least two rounds of each, however slowly the trainings go on a busy machine.
    let mut round = 0u64;
    while round < 8 || (started.elapsed() < LOAD_TIME && round < 300) {
        round += 1;
        match round % 4 {
            0 | 2 => {
                let body = match trainings % 3 {
                    0 => json!({ "solver": "adam", "epochs": 5, "batch_size": 64, "seed": round }),
                    1 => {
                        json!({ "solver": "adam-standardized", "epochs": 20, "batch_size": 64, "seed": round })
                    }
                    _ => json!({ "solver": "least-squares" }),
                };
                models.push(app.train(body).await);
                trainings += 1;
            }
            1 => {
                app.upload_ok(datasets[(uploads + 1) % 2].clone()).await;
                uploads += 1;
            }
            _ => {
                let version = models[(round as usize * 7) % models.len()]["version"].as_u64().unwrap();
                let response = app
                    .client
                    .post(app.url(&format!("/v1/models/regserve/versions/{version}/activate")))
                    .send()
                    .await;
                assert_eq!(response.unwrap().status(), 200, "activating v{version}");
                activations += 1;
            }
        }
    }
    let busy_for = started.elapsed();
    stop.store(true, Ordering::Relaxed);

    let (mut succeeded, mut failed, mut failures, mut answers) = (0, 0, Vec::new(), HashSet::new());
    for client in clients {
        let report = client.await.unwrap();
        succeeded += report.succeeded;
        failed += report.failed;
        failures.extend(report.failures);
        answers.extend(report.answers);
    }
    println!(
        "{CLIENTS} clients: {succeeded} predictions in {:.1} s during {trainings} trainings, {uploads} uploads \
         and {activations} activations; {} distinct answers",
        busy_for.as_secs_f64(),
        answers.len()
    );
    assert_eq!(failed, 0, "{failed} predictions failed, for example: {failures:#?}");
    assert!(trainings >= 3 && uploads >= 2 && activations >= 2, "too few changes happened under load");
    assert!(succeeded >= CLIENTS * 10, "only {succeeded} predictions were answered");
    let possible: HashSet<(u64, u64)> = models.iter().map(expected_answer).collect();
    for answer in &answers {
        assert!(
            possible.contains(answer),
            "the prediction {:?} comes from none of the {} models that were active",
            (f64::from_bits(answer.0), f64::from_bits(answer.1)),
            models.len()
        );
    }
    assert!(answers.len() >= 2, "the clients saw the model change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_across_repeated_trainings() {
    const ROWS: usize = 3_000;
    // The real binary, so that what is measured is the server alone, not the other tests that
    // share this process.
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path()).await;
    let csv = linear_csv(ROWS);
    server.upload_ok(csv.clone()).await;
    let body = |i: u64| match i % 3 {
        0 => json!({ "solver": "adam", "epochs": 1, "batch_size": 512, "seed": i }),
        1 => json!({ "solver": "adam-standardized", "epochs": 2, "batch_size": 512, "seed": i }),
        _ => json!({ "solver": "least-squares" }),
    };
    let started = Instant::now();
    for i in 0..20 {
        server.train(body(i)).await;
    }
    server.predict_ok(json!([1.0, 2.0])).await;
    let warm = server.rss_kib();
    let warmed_up_in = started.elapsed();
    for i in 20..120 {
        let model = server.train(body(i)).await;
        assert_eq!(model["rows"], ROWS);
        if i % 10 == 0 {
            server.predict_ok(json!([1.0, 2.0])).await;
        }
        if i % 25 == 0 {
            server.upload_ok(csv.clone()).await;
        }
    }
    let after = server.rss_kib();
    println!(
        "server RSS: {warm} KiB after 20 trainings ({:.1} s), {after} KiB after 100 more ({:.1} s in all)",
        warmed_up_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(server.json("/v1/models").await.as_array().unwrap().len(), 20, "old versions are pruned");
    let growth = after.saturating_sub(warm);
    // Measured growth stays under 1 MiB: the margin is for the allocator, while a leak of
    // 80 KiB or more per training would cross it.
    assert!(growth < 8 * 1024, "the server grew by {growth} KiB over 100 trainings ({warm} -> {after} KiB)");
}
