//! Prediction: the model alone, and a whole `POST /predict` through the router (JSON in and out).

#[path = "../tests/support/trained_state.rs"]
mod trained_state;
use trained_state::trained_state;

use std::hint::black_box;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use regserve::api::app;
use tower::ServiceExt;

fn predict(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let state = trained_state(&runtime, 10);
    let model = state.model().unwrap();
    let batch: Vec<[f64; 1]> = (0..1000).map(|i| [10.0 + i as f64 / 100.0]).collect();

    let mut group = c.benchmark_group("predict");
    group.throughput(Throughput::Elements(1));
    group.bench_function("model/1_row", |b| b.iter(|| black_box(model.predict([&[15.5][..]]).unwrap())));
    group.throughput(Throughput::Elements(1000));
    group.bench_function("model/1000_rows", |b| {
        b.iter(|| black_box(model.predict(batch.iter().map(|row| &row[..])).unwrap()))
    });

    let router = app(state.clone());
    let json_1000 =
        serde_json::json!({ "x_predict": batch.iter().map(|row| row[0]).collect::<Vec<_>>() }).to_string();
    for (name, body, rows) in
        [("http/1_row", r#"{"x_predict":[15.5]}"#.to_owned(), 1), ("http/1000_rows", json_1000, 1000)]
    {
        group.throughput(Throughput::Elements(rows));
        group.bench_function(name, |b| {
            b.iter(|| {
                let request = Request::post("/predict")
                    .header("content-type", "application/json")
                    .body(Body::from(body.clone()))
                    .unwrap();
                let response = runtime.block_on(router.clone().oneshot(request)).unwrap();
                assert!(response.status().is_success());
                black_box(response)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, predict);
criterion_main!(benches);
