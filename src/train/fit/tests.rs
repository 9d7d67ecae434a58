use super::*;
use crate::train::{FitParams, FitSettings, InitialWeights};
use ndarray::array;

fn keep_going(_: usize, _: f64) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

#[test]
fn mse_gradient_matches_hand_computed_values() {
    // x = [1, 2, 3], y = [2, 3, 7], w = 2, b = 1 -> predictions 3, 5, 7, residuals 1, 2, 0.
    // loss = (1 + 4 + 0) / 3; dL/dw = 2/3 (1*1 + 2*2 + 0*3) = 10/3; dL/db = 2/3 (1 + 2) = 2.
    let mut grad = [0.0; 2];
    let rows = Rows::InOrder { xs: &[1.0, 2.0, 3.0], ys: &[2.0, 3.0, 7.0] };
    let loss = batch_gradient::<1>(&rows, 0..3, &[2.0, 1.0], &mut grad);
    assert!((loss - 5.0 / 3.0).abs() < 1e-15);
    assert!((grad[0] - 10.0 / 3.0).abs() < 1e-15);
    assert!((grad[1] - 2.0).abs() < 1e-15);
}

#[test]
fn gradient_of_a_batch_uses_only_its_rows() {
    // Two features; batch holds rows 2 and 0 only.
    let x = array![[1.0, 0.0], [5.0, 5.0], [0.0, 2.0]];
    let y = array![1.0, 100.0, 0.0];
    let samples = interleave(x.view(), y.view());
    let mut grad = [0.0; 3];
    // theta: kernel [1, 1], bias 0 -> row0 pred 1 (res 0), row2 pred 2 (res 2).
    // The epoch's order is [1, 2, 0]; the batch is positions 1..3 of it.
    let rows = Rows::Shuffled { samples: &samples, order: &[1, 2, 0] };
    let loss = batch_gradient::<2>(&rows, 1..3, &[1.0, 1.0, 0.0], &mut grad);
    assert!((loss - 2.0).abs() < 1e-15);
    assert_eq!(grad, [0.0, 4.0, 2.0]);
}

#[test]
fn shuffle_draws_the_permutations_of_rands_shuffle() {
    for rows in [PREFETCH_FROM_ROWS as u32, 100_003] {
        for seed in [1, 42] {
            let mut expected: Vec<u32> = (0..rows).collect();
            let mut order = expected.clone();
            let (mut rng, mut expected_rng) =
                (ChaCha8Rng::seed_from_u64(seed), ChaCha8Rng::seed_from_u64(seed));
            for _ in 0..2 {
                expected.shuffle(&mut expected_rng);
                shuffle(&mut order, &mut rng);
                assert_eq!(order, expected, "{rows} rows, seed {seed}");
            }
        }
    }
}

fn params(settings: FitSettings) -> AdamParams {
    match settings.validate(1).unwrap() {
        FitParams::Adam(params) | FitParams::AdamStandardized(params) => params,
        FitParams::LeastSquares => unreachable!(),
    }
}

fn small(epochs: usize, shuffle: bool, seed: u64) -> AdamParams {
    params(FitSettings {
        epochs: Some(epochs),
        shuffle: Some(shuffle),
        seed: Some(seed),
        learning_rate: Some(0.1),
        batch_size: Some(2),
        ..Default::default()
    })
}

#[test]
fn same_seed_reproduces_a_shuffled_fit_and_another_seed_does_not() {
    let x = array![[1.0], [2.0], [3.0], [4.0], [5.0]];
    let y = array![2.0, 4.1, 5.9, 8.2, 9.9];
    let run = |seed| fit_adam(x.view(), y.view(), &small(20, true, seed), None, &mut keep_going).unwrap();
    assert_eq!(run(7).history, run(7).history);
    assert_ne!(run(7).history, run(8).history);
}

#[test]
fn history_has_one_loss_per_epoch_and_observer_can_stop_the_fit() {
    let x = array![[1.0], [2.0], [3.0]];
    let y = array![1.0, 2.0, 3.0];
    let fit = fit_adam(x.view(), y.view(), &small(7, false, 1), None, &mut keep_going).unwrap();
    assert_eq!(fit.history.len(), 7);
    let mut stop_at_3 =
        |epoch, _| if epoch == 3 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) };
    let stopped = fit_adam(x.view(), y.view(), &small(7, false, 1), None, &mut stop_at_3);
    assert!(matches!(stopped, Err(TrainError::Cancelled { epoch: 3 })));
}

#[test]
fn a_cancelled_observer_stops_the_fit_within_an_epoch() {
    struct Cancelled;
    impl Observer for Cancelled {
        fn epoch_end(&mut self, _: usize, _: f64) -> ControlFlow<()> {
            panic!("the fit should stop before any epoch ends");
        }
        fn checkpoint(&self) -> ControlFlow<()> {
            ControlFlow::Break(())
        }
    }
    let x = array![[1.0], [2.0], [3.0]];
    let y = array![1.0, 2.0, 3.0];
    let result = fit_adam(x.view(), y.view(), &small(7, false, 1), None, &mut Cancelled);
    assert!(matches!(result, Err(TrainError::Cancelled { epoch: 1 })));
}

#[test]
fn a_non_finite_loss_is_reported_as_divergence() {
    let x = array![[1e200], [2e200]];
    let y = array![1.0, 2.0];
    let params = params(FitSettings {
        initial: Some(InitialWeights { kernel: vec![1e200], bias: 0.0 }),
        ..Default::default()
    });
    let start = params.initial.as_ref().map(Weights::from);
    let result = fit_adam(x.view(), y.view(), &params, start, &mut keep_going);
    assert!(matches!(result, Err(TrainError::Diverged { epoch: 1 })), "{result:?}");
}

#[test]
fn patience_halves_the_learning_rate_then_stops_early_near_the_optimum() {
    // An exact line through centred data: the optimum loss is 0.
    let x = array![[-1.5], [-0.5], [0.5], [1.5]];
    let y = x.column(0).mapv(|v| 2.0 * v + 1.0);
    let settings = FitSettings {
        epochs: Some(100_000),
        learning_rate: Some(0.01),
        patience: Some(20),
        seed: Some(3),
        ..Default::default()
    };
    let fit = fit_adam(x.view(), y.view(), &params(settings), None, &mut keep_going).unwrap();
    assert!(fit.history.len() < 100_000, "the fit never stopped early");
    assert!(*fit.history.last().unwrap() < 1e-8, "stopped far from the optimum: {:?}", fit.history.last());
}
