//! Synthetic data shared by the benchmarks: `y = 3 x0 - 2 x1 + ... + noise`, deterministic.
// Each benchmark binary uses only part of this module.
#![allow(dead_code)]

use ndarray::{Array1, Array2};

/// `rows` x `features` row-major features and the target.
pub fn linear_data(rows: usize, features: usize) -> (Array2<f64>, Array1<f64>) {
    let x = Array2::from_shape_fn((rows, features), |(i, j)| ((i * (j + 7) + j * 13) % 1000) as f64 / 100.0);
    let y = Array1::from_shape_fn(rows, |i| {
        let signal: f64 = x.row(i).iter().enumerate().map(|(j, v)| v * (3.0 - j as f64)).sum();
        signal + 2.0 + ((i * 7919) % 13) as f64 / 10.0 - 0.6
    });
    (x, y)
}

/// The same data as a CSV file with an R-style index column, like Income1.csv.
pub fn linear_csv(rows: usize, features: usize) -> String {
    let (x, y) = linear_data(rows, features);
    let mut csv = String::from("\"\"");
    (0..features).for_each(|j| csv.push_str(&format!(",\"x{j}\"")));
    csv.push_str(",\"y\"\n");
    for (i, (row, target)) in x.rows().into_iter().zip(&y).enumerate() {
        csv.push_str(&format!("\"{}\"", i + 1));
        row.iter().for_each(|v| csv.push_str(&format!(",{v}")));
        csv.push_str(&format!(",{target:.13}\n"));
    }
    csv
}
