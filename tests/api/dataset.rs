//! `GET /v1/dataset` and `GET /v1/dataset.csv`.

use sha2::{Digest, Sha256};

use crate::helpers::{INCOME1, INCOME2, spawn_app};

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn summary_describes_the_active_dataset() {
    let app = spawn_app().await;
    let builtin = app.json("/v1/dataset").await;
    assert_eq!(builtin["rows"], 30);
    assert_eq!(builtin["sha256"], sha256_hex(INCOME1.as_bytes()));

    app.upload_ok(INCOME2).await;
    let summary = app.json("/v1/dataset").await;
    assert_eq!(summary["sha256"], sha256_hex(INCOME2.as_bytes()));
    assert_eq!(summary["default_features"], serde_json::json!(["Education"]));
    assert_eq!(summary["default_target"], "Income");
    let names: Vec<&str> =
        summary["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Education", "Seniority", "Income"]);

    let seniority: Vec<f64> =
        INCOME2.lines().skip(1).map(|line| line.split(',').nth(2).unwrap().parse().unwrap()).collect();
    let column = &summary["columns"][1];
    assert_eq!(column["type"], "number");
    assert_eq!(column["position"], 3);
    assert_eq!(column["min"].as_f64().unwrap(), seniority.iter().copied().fold(f64::INFINITY, f64::min));
    assert_eq!(column["max"].as_f64().unwrap(), seniority.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    let mean = seniority.iter().sum::<f64>() / seniority.len() as f64;
    assert!((column["mean"].as_f64().unwrap() - mean).abs() < 1e-9);
}

#[tokio::test]
async fn download_returns_the_stored_file_byte_for_byte() {
    let app = spawn_app().await;
    let builtin = app.get("/v1/dataset.csv").await;
    assert!(builtin.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert_eq!(builtin.text().await.unwrap(), INCOME1);
    app.upload_ok(INCOME2).await;
    assert_eq!(app.get("/v1/dataset.csv").await.text().await.unwrap(), INCOME2);
}
