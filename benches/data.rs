//! CSV parsing throughput, in bytes per second of file; and the intake's decoding of JSON
//! batches, in rows per second, as MQTT, Kafka and WebSocket deliver them.

mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use regserve::data::parse_csv;
use regserve::ingest::decode;

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

/// Batches of `rows` rows, `{"rows":[{"x0":..,"y":..},...]}`, of the benchmarks' data.
fn json_batches(batches: usize, rows: usize) -> Vec<String> {
    let (x, y) = common::linear_data(batches * rows, 1);
    let row = |i: usize| format!("{{\"x0\":{},\"y\":{}}}", x[[i, 0]], y[i]);
    let batch = |b: usize| (b * rows..(b + 1) * rows).map(row).collect::<Vec<_>>().join(",");
    (0..batches).map(|b| format!("{{\"rows\":[{}]}}", batch(b))).collect()
}

fn decoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_json");
    for rows in [1, 100] {
        let batches = json_batches(100_000 / rows, rows);
        group.throughput(Throughput::Elements(100_000));
        group.bench_function(format!("100k_rows_in_batches_of_{rows}"), |b| {
            b.iter(|| {
                batches
                    .iter()
                    .map(|batch| decode::json(batch.as_bytes()).unwrap().rows.count())
                    .sum::<usize>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parsing, decoding);
criterion_main!(benches);
