//! Reproduces training runs recorded from TensorFlow/Keras (`tests/fixtures/keras/*.json`):
//! starting from the recorded initial weights with shuffling off, every epoch's loss, the final
//! weights and the probe predictions must agree within 1e-4 relative.

use std::ops::ControlFlow;
use std::path::Path;

use ndarray::{Array1, Array2};
use regserve::train::{FitParams, FitSettings, InitialWeights, fit};
use serde::Deserialize;

const TOLERANCE: f64 = 1e-4;

#[derive(Deserialize)]
struct Recording {
    x: Vec<Vec<f64>>,
    y: Vec<f64>,
    initial: InitialWeights,
    fit: RecordedFit,
    history_loss: Vec<f64>,
    #[serde(rename = "final")]
    final_weights: InitialWeights,
    probe_x: Vec<Vec<f64>>,
    probe_y: Vec<f64>,
}

#[derive(Deserialize)]
struct RecordedFit {
    epochs: usize,
    batch_size: usize,
    shuffle: bool,
    learning_rate: f64,
    beta_1: f64,
    beta_2: f64,
    epsilon: f64,
}

fn assert_close(what: &str, got: f64, want: f64) {
    let relative = (got - want).abs() / want.abs().max(1e-12);
    assert!(
        relative <= TOLERANCE,
        "{what}: got {got}, Keras recorded {want} (relative error {relative:.2e})"
    );
}

fn replay(name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keras").join(name);
    let recording: Recording = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let features = recording.x[0].len();
    let x = Array2::from_shape_vec((recording.x.len(), features), recording.x.concat()).unwrap();
    let y = Array1::from(recording.y.clone());
    let recorded = &recording.fit;
    assert!(!recorded.shuffle, "recordings are made without shuffling");
    let params = FitSettings {
        epochs: Some(recorded.epochs),
        batch_size: Some(recorded.batch_size),
        learning_rate: Some(recorded.learning_rate),
        beta_1: Some(recorded.beta_1),
        beta_2: Some(recorded.beta_2),
        epsilon: Some(recorded.epsilon),
        shuffle: Some(false),
        seed: Some(0),
        initial: Some(recording.initial.clone()),
        ..Default::default()
    }
    .validate(features)
    .unwrap();

    assert!(matches!(params, FitParams::Adam(_)), "Keras-faithful Adam is the default solver");
    let outcome = fit(x.view(), y.view(), &params, None, &mut |_, _| ControlFlow::Continue(())).unwrap();

    assert_eq!(outcome.history.len(), recording.history_loss.len());
    for (epoch, (got, want)) in outcome.history.iter().zip(&recording.history_loss).enumerate() {
        assert_close(&format!("{name} loss at epoch {}", epoch + 1), *got, *want);
    }
    for (j, want) in recording.final_weights.kernel.iter().enumerate() {
        assert_close(&format!("{name} final kernel[{j}]"), outcome.weights.kernel()[j], *want);
    }
    assert_close(&format!("{name} final bias"), outcome.weights.bias(), recording.final_weights.bias);
    for (row, want) in recording.probe_x.iter().zip(&recording.probe_y) {
        assert_close(&format!("{name} prediction at {row:?}"), outcome.weights.predict_row(row), *want);
    }
}

#[test]
fn income1_with_keras_defaults_matches_tensorflow() {
    replay("income1_keras_defaults.json");
}

#[test]
fn income2_with_partial_batches_matches_tensorflow() {
    replay("income2_partial_batches.json");
}
