//! The solvers that are meant to converge do: `adam-standardized` with its defaults reaches
//! within 0.1% of the least-squares MSE on both shipped datasets whatever the seed, and
//! `least-squares` matches the closed-form solution.

use std::ops::ControlFlow;

use regserve::data::{Dataset, parse_csv};
use regserve::model::{Model, TrainSpec};
use regserve::train::{FitSettings, Solver};

fn dataset(name: &str) -> Dataset {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dataset").join(name);
    parse_csv(std::fs::File::open(path).unwrap()).unwrap()
}

fn train(data: &Dataset, features: &[&str], settings: FitSettings) -> Model {
    let selection = data.select(Some(features.iter().map(|f| f.to_string()).collect()), None).unwrap();
    let params = settings.validate(features.len()).unwrap();
    let spec = TrainSpec { selection, params, warm_start: None, job: 0 };
    Model::train(data, spec, &mut |_, _| ControlFlow::Continue(())).unwrap()
}

#[test]
fn adam_standardized_reaches_the_optimum_on_both_datasets_for_any_seed() {
    for (file, features) in
        [("Income1.csv", &["Education"][..]), ("Income2.csv", &["Education", "Seniority"][..])]
    {
        let data = dataset(file);
        for seed in 0..20 {
            let settings = FitSettings {
                solver: Some(Solver::AdamStandardized),
                seed: Some(seed),
                ..Default::default()
            };
            let model = train(&data, features, settings);
            let metrics = model.metrics();
            let relative_gap = metrics.gap / metrics.optimum_mse;
            assert!(
                relative_gap < 1e-3,
                "{file}, seed {seed}: MSE {} is {relative_gap:.2e} above the optimum {} after {} epochs",
                metrics.mse,
                metrics.optimum_mse,
                model.history().len()
            );
        }
    }
}

#[test]
fn least_squares_matches_the_closed_form_solution() {
    // ../shared/NOTES.md: Income1 slope 5.599482874119919, intercept -39.44625667909617, MSE 29.82881619900623.
    let model = train(
        &dataset("Income1.csv"),
        &["Education"],
        FitSettings { solver: Some(Solver::LeastSquares), ..Default::default() },
    );
    let weights = model.weights();
    assert!((weights.kernel()[0] - 5.599482874119919).abs() < 1e-9, "{}", weights.kernel()[0]);
    assert!((weights.bias() - -39.44625667909617).abs() < 1e-9, "{}", weights.bias());
    assert!((model.metrics().mse - 29.82881619900623).abs() < 1e-9);
    assert!(model.metrics().gap.abs() < 1e-9);
    assert!(model.history().is_empty(), "the exact solver runs no epochs");
}
