use std::ops::ControlFlow;

use super::*;
use crate::data::{default_dataset, parse_csv};
use crate::train::{FitSettings, InitialWeights, Solver};

fn keep_going(_: usize, _: f64) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

fn train(dataset: &Dataset, settings: FitSettings, warm_start: Option<&Model>) -> Result<Model, TrainError> {
    let selection = dataset.default_selection().clone();
    let params = settings.validate(selection.features.len())?;
    Model::train(dataset, TrainSpec { selection, params, warm_start, job: 1 }, &mut keep_going)
}

fn trained() -> Model {
    let settings = FitSettings {
        epochs: Some(3),
        seed: Some(1),
        initial: Some(InitialWeights { kernel: vec![2.0], bias: 0.0 }),
        ..Default::default()
    };
    train(&default_dataset(), settings, None).unwrap()
}

#[test]
fn age_counts_from_trained_at() {
    let model = trained();
    assert!(model.age().unwrap() < std::time::Duration::from_secs(60));
    let trained_at = |at: &str| {
        let mut model = trained();
        model.fit.trained_at = at.into();
        model
    };
    assert!(trained_at("2020-01-01T00:00:00Z").age().unwrap() > std::time::Duration::from_secs(86_400 * 365));
    assert_eq!(trained_at("2999-01-01T00:00:00Z").age(), Some(std::time::Duration::ZERO));
    assert_eq!(trained_at("yesterday").age(), None);
}

#[test]
fn trained_model_reports_its_fit_and_the_optimum() {
    let model = trained();
    assert_eq!(model.features(), ["Education"]);
    assert_eq!(model.history().len(), 3);
    // Values from ../shared/NOTES.md: the exact least-squares MSE on Income1.
    let metrics = model.metrics();
    assert!((metrics.optimum_mse - 29.82881619900623).abs() < 1e-9, "{}", metrics.optimum_mse);
    assert!(metrics.mse > metrics.optimum_mse);
    assert!((metrics.gap - (metrics.mse - metrics.optimum_mse)).abs() < 1e-12);
    assert!(metrics.r2.unwrap() < 1.0);
    assert_eq!(model.dataset_sha256(), default_dataset().sha256());
}

#[test]
fn predictions_check_the_row_width() {
    let model = trained();
    let w = model.weights();
    let got = model.predict([&[10.0][..], &[21.0][..]]).unwrap();
    assert_eq!(got, [w.kernel()[0] * 10.0 + w.bias(), w.kernel()[0] * 21.0 + w.bias()]);
    let error = model.predict([&[1.0][..], &[1.0, 2.0][..]]).unwrap_err();
    assert!(matches!(error, PredictError::WrongWidth { row: 1, found: 2, expected: 1, .. }));
    assert!(matches!(model.predict([&[f64::MAX][..]]), Err(PredictError::NotFinite { row: 0 })));
}

#[test]
fn warm_start_continues_from_the_previous_weights() {
    let first = trained().with_version(4);
    let settings = FitSettings { epochs: Some(1), seed: Some(1), ..Default::default() };
    let next = train(&default_dataset(), settings.clone(), Some(&first)).unwrap();
    assert_eq!(next.fit.initial.as_ref(), Some(first.weights()));
    assert_eq!(next.fit.warm_start_from, Some(4));
    let exact = FitSettings { solver: Some(Solver::LeastSquares), ..Default::default() };
    assert!(matches!(train(&default_dataset(), exact, Some(&first)), Err(TrainError::WarmStart { .. })));
}

#[test]
fn warm_start_needs_the_same_features() {
    let other = parse_csv(&b"a,b,c\n1,2,3\n2,3,5\n4,1,6\n"[..]).unwrap();
    let first = trained();
    let settings = FitSettings { epochs: Some(1), ..Default::default() };
    let error = train(&other, settings, Some(&first)).unwrap_err().to_string();
    assert!(error.starts_with("warm_start: the current model"), "{error}");
}

#[test]
fn constant_columns_are_named() {
    let data = parse_csv(&b"a,b,c\n1,5,3\n2,5,5\n4,5,6\n"[..]).unwrap();
    let settings = FitSettings { solver: Some(Solver::AdamStandardized), ..Default::default() };
    let error = train(&data, settings, None).unwrap_err().to_string();
    assert!(error.starts_with("feature \"b\" has the same value"), "{error}");
}

#[test]
fn model_files_round_trip() {
    let model = trained().with_version(3);
    let json = serde_json::to_string(&model).unwrap();
    let back: Model = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
}
