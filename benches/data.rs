//! CSV parsing throughput, in bytes per second of file.

mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use regserve::data::parse_csv;

fn parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_csv");
    group.sample_size(10);
    for features in [1, 4] {
        let csv = common::linear_csv(2_000_000, features);
        group.throughput(Throughput::Bytes(csv.len() as u64));
        group.bench_function(format!("{}MB_{features}_features", csv.len() >> 20), |b| {
            b.iter(|| black_box(parse_csv(csv.as_bytes()).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, parsing);
criterion_main!(benches);
