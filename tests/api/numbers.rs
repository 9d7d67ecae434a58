//! Values near the edge of f64: representable answers are fitted correctly, answers that
//! cannot be represented fail their job with a clear message, and the served model stays.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_of, spawn_app};

/// `y = scale (3 + 2 x + noise)` for `x` in 0.0 .. 19.9: the rows and the exact least-squares
/// slope and intercept of the unscaled problem (least squares is linear in `y`).
fn scaled_line(scale: f64) -> (String, f64, f64) {
    let rows: Vec<(f64, f64)> = (0..200)
        .map(|i| (i as f64 / 10.0, 3.0 + 2.0 * (i as f64 / 10.0) + ((i * 7) % 11) as f64 / 50.0))
        .collect();
    let n = rows.len() as f64;
    let (mean_x, mean_y) =
        (rows.iter().map(|r| r.0).sum::<f64>() / n, rows.iter().map(|r| r.1).sum::<f64>() / n);
    let sxy: f64 = rows.iter().map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
    let sxx: f64 = rows.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    let slope = sxy / sxx;
    let csv: String = std::iter::once("x,y\n".to_owned())
        .chain(rows.iter().map(|(x, y)| format!("{x},{:e}\n", y * scale)))
        .collect();
    (csv, slope * scale, (mean_y - slope * mean_x) * scale)
}

fn relative_error(got: f64, want: f64) -> f64 {
    ((got - want) / want).abs()
}

/// A server serving a least-squares model of the built-in dataset; returns it with the model.
async fn serving() -> (TestApp, Value) {
    let app = spawn_app().await;
    let model = app.train(json!({ "solver": "least-squares" })).await;
    (app, model)
}

/// Checks that the served model is still `model` and predicts.
async fn still_serves(app: &TestApp, model: &Value) {
    assert_eq!(app.json("/v1/model").await["version"], model["version"]);
    assert_eq!(app.json("/readyz").await["model_version"], model["version"]);
    assert_eq!(app.predict_ok(json!([12])).await.len(), 1);
    assert_eq!(app.json("/v1/models").await.as_array().unwrap().len(), 1, "nothing new was stored");
}

#[tokio::test]
async fn least_squares_fits_a_target_near_1e154_to_the_exact_solution() {
    let app = spawn_app().await;
    let (csv, slope, intercept) = scaled_line(1e154);
    app.upload_ok(csv).await;
    let model = app.train(json!({ "solver": "least-squares" })).await;
    let kernel = model["kernel"][0].as_f64().unwrap();
    let bias = model["bias"].as_f64().unwrap();
    assert!(relative_error(kernel, slope) < 1e-6, "kernel {kernel:e}, exact {slope:e}");
    assert!(relative_error(bias, intercept) < 1e-6, "bias {bias:e}, exact {intercept:e}");
    for field in ["mse", "optimum_mse", "gap", "r2"] {
        assert!(model[field].is_f64(), "{field} is {}", model[field]);
    }
    assert!(model["r2"].as_f64().unwrap() < 1.0, "r2 is computed, not rounded to 1: {}", model["r2"]);
    // The stored version reads back, and predictions come from it.
    assert_eq!(app.json("/v1/models/regserve/versions/1").await["kernel"], model["kernel"]);
    let predicted = app.predict_ok(json!([10])).await[0];
    assert!(relative_error(predicted, slope * 10.0 + intercept) < 1e-6);
}

#[tokio::test]
async fn a_tiny_target_is_fitted_as_accurately_as_an_ordinary_one() {
    let app = spawn_app().await;
    let (csv, slope, intercept) = scaled_line(1e-200);
    app.upload_ok(csv).await;
    let model = app.train(json!({ "solver": "least-squares" })).await;
    assert!(relative_error(model["kernel"][0].as_f64().unwrap(), slope) < 1e-6, "{model}");
    assert!(relative_error(model["bias"].as_f64().unwrap(), intercept) < 1e-6, "{model}");
}

#[tokio::test]
async fn a_fit_whose_answer_is_beyond_f64_fails_clearly_and_the_served_model_stays() {
    let (app, served) = serving().await;
    let alternating: String = std::iter::once("x,y\n".to_owned())
        .chain((0..20).map(|i| format!("{i},{}e308\n", [-1.7, 1.7][i % 2])))
        .collect();
    app.upload_ok(alternating).await;
    for solver in ["least-squares", "adam-standardized", "adam"] {
        let response = app.post_json("/train?wait=true", &json!({ "solver": solver })).await;
        let message = error_of(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(message.contains("beyond the range of 64-bit floating-point numbers"), "{solver}: {message}");
        assert!(!message.contains("same value on every row"), "{solver}: {message}");
        still_serves(&app, &served).await;
    }
    let jobs = app.json("/v1/jobs").await;
    assert!(jobs.as_array().unwrap().iter().take(3).all(|job| job["state"] == "failed"), "{jobs}");
}

#[tokio::test]
async fn statistics_of_huge_values_are_numbers_and_errors_say_what_is_wrong() {
    let (app, served) = serving().await;
    let huge: String = std::iter::once("x,y\n".to_owned())
        .chain((1..=20).map(|i| format!("{i}e299,{}e299\n", 3 * i)))
        .collect();
    app.upload_ok(huge).await;
    let summary = app.json("/v1/dataset").await;
    for column in summary["columns"].as_array().unwrap() {
        for stat in ["min", "mean", "max"] {
            assert!(column[stat].is_f64(), "{stat} of {column}");
        }
    }
    assert!((summary["columns"][0]["mean"].as_f64().unwrap() / 10.5e299 - 1.0).abs() < 1e-12, "{summary}");
    // The squared errors of values of 1e299 are beyond f64 whatever the fit: said, not "constant".
    let response = app.post_json("/train?wait=true", &json!({ "solver": "adam-standardized" })).await;
    let message = error_of(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(message.contains("beyond the range") && message.contains("target \"y\""), "{message}");
    still_serves(&app, &served).await;
}
