//! Training speed: Keras-faithful epochs and fits, large Adam epochs, least squares.

mod common;

use std::hint::black_box;
use std::ops::ControlFlow;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use regserve::data::default_dataset;
use regserve::train::{AdamParams, AdamRun, FitParams, FitSettings, fit, least_squares};

fn adam(epochs: usize, shuffle: bool, features: usize) -> AdamParams {
    let settings =
        FitSettings { epochs: Some(epochs), shuffle: Some(shuffle), seed: Some(1), ..Default::default() };
    match settings.validate(features).unwrap() {
        FitParams::Adam(params) => params,
        _ => unreachable!("adam is the default solver"),
    }
}

fn keep_going(_: usize, _: f64) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

/// Income1 with the original's settings: one epoch, and the whole 500-epoch fit.
fn income1(c: &mut Criterion) {
    let dataset = default_dataset();
    let (x, y) = dataset.design(dataset.default_selection());
    let one = adam(1, true, 1);
    c.bench_function("income1/epoch", |b| {
        let mut run = AdamRun::new(x.view(), y.view(), &one, None);
        b.iter(|| black_box(run.epoch(1, &keep_going).unwrap()))
    });
    let params = FitParams::Adam(adam(500, true, 1));
    c.bench_function("income1/fit_500_epochs", |b| {
        b.iter(|| black_box(fit(x.view(), y.view(), &params, None, &mut keep_going).unwrap()))
    });
}

/// One Adam epoch (batch 32) over millions of rows, with one and four features, in file order
/// and shuffled.
fn large_epochs(c: &mut Criterion) {
    let mut group = c.benchmark_group("adam_epoch");
    group.sample_size(10);
    for rows in [1_000_000, 10_000_000] {
        for features in [1, 4] {
            let (x, y) = common::linear_data(rows, features);
            group.throughput(Throughput::Elements(rows as u64));
            for shuffle in [false, true] {
                let params = adam(1, shuffle, features);
                let name = format!("{rows}x{features}/{}", if shuffle { "shuffled" } else { "in_order" });
                group.bench_function(BenchmarkId::from_parameter(name), |b| {
                    let mut run = AdamRun::new(x.view(), y.view(), &params, None);
                    b.iter(|| black_box(run.epoch(1, &keep_going).unwrap()))
                });
            }
        }
    }
    group.finish();
}

/// The exact solution over ten million rows.
fn exact(c: &mut Criterion) {
    let mut group = c.benchmark_group("least_squares");
    group.sample_size(10);
    for features in [1, 4] {
        let (x, y) = common::linear_data(10_000_000, features);
        group.throughput(Throughput::Elements(10_000_000));
        group.bench_function(BenchmarkId::from_parameter(format!("10000000x{features}")), |b| {
            b.iter(|| black_box(least_squares(x.view(), y.view(), &keep_going).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, income1, large_epochs, exact);
criterion_main!(benches);
