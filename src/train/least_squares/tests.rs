use super::*;
use ndarray::array;

fn keep_going(_: usize, _: f64) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

fn solve(x: ArrayView2<f64>, y: ArrayView1<f64>) -> LeastSquares {
    least_squares(x, y, &keep_going).unwrap()
}

#[test]
fn recovers_an_exact_line() {
    let x = array![[1.0], [2.0], [3.0], [4.0]];
    let y = array![5.0, 7.0, 9.0, 11.0];
    let fit = solve(x.view(), y.view());
    assert!((fit.weights.kernel()[0] - 2.0).abs() < 1e-12);
    assert!((fit.weights.bias() - 3.0).abs() < 1e-12);
    assert!(fit.mse < 1e-20);
    assert_eq!(fit.rank, 1);
}

#[test]
fn matches_the_closed_form_for_two_features() {
    // y = 1 + 2 a - 3 b + noise, solved independently: noise is orthogonal to [1, a, b].
    let x = array![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]];
    let noise = array![0.5, -0.5, -0.5, 0.5];
    let y = x.column(0).mapv(|a| 1.0 + 2.0 * a) - x.column(1).mapv(|b| 3.0 * b) + &noise;
    let fit = solve(x.view(), y.view());
    assert!((fit.weights.kernel()[0] - 2.0).abs() < 1e-12);
    assert!((fit.weights.kernel()[1] + 3.0).abs() < 1e-12);
    assert!((fit.weights.bias() - 1.0).abs() < 1e-12);
    assert!((fit.mse - 0.25).abs() < 1e-12);
}

#[test]
fn badly_scaled_columns_keep_full_accuracy() {
    // Column b is a billion times larger than a and offset far from zero.
    let a: Vec<f64> = (0..50).map(|i| (i as f64 * 0.37).sin()).collect();
    let b: Vec<f64> = (0..50).map(|i| 1e12 + 1e9 * (i as f64 * 0.11).cos()).collect();
    let x = Array2::from_shape_fn((50, 2), |(i, j)| if j == 0 { a[i] } else { b[i] });
    let y = Array1::from_shape_fn(50, |i| 4.0 * a[i] + 2e-9 * b[i] - 7.0);
    let fit = solve(x.view(), y.view());
    assert!((fit.weights.kernel()[0] - 4.0).abs() < 1e-6, "{:?}", fit.weights);
    assert!((fit.weights.kernel()[1] - 2e-9).abs() < 1e-15, "{:?}", fit.weights);
    assert!(fit.mse < 1e-12, "{}", fit.mse);
}

#[test]
fn the_statistics_of_the_rows_give_the_same_solution_as_the_rows() {
    let rows = 1000;
    let a: Vec<f64> = (0..rows).map(|i| 12.0 + (i as f64 * 0.37).sin() * 4.0).collect();
    let b: Vec<f64> = (0..rows).map(|i| 100.0 + (i as f64 * 0.013).cos() * 30.0).collect();
    let y: Vec<f64> = (0..rows).map(|i| 3.0 * a[i] - 0.5 * b[i] + 7.0 + (i as f64 * 1.7).sin()).collect();
    let x = Array2::from_shape_fn((rows, 2), |(i, j)| if j == 0 { a[i] } else { b[i] });
    let direct = solve(x.view(), ArrayView1::from(&y));
    let halves =
        [0..400, 400..rows].map(|r| SummaryMoments::of_columns(&[&a[r.clone()], &b[r.clone()], &y[r]]));
    let merged = halves[0].merge(&halves[1]);
    let from_moments = least_squares_from_moments(&merged).unwrap();
    let relative = |p: f64, q: f64| (p - q).abs() / q.abs();
    assert!(relative(from_moments.mse, direct.mse) < 1e-9, "{} vs {}", from_moments.mse, direct.mse);
    assert!(relative(from_moments.weights.bias(), direct.weights.bias()) < 1e-9);
    for j in 0..2 {
        assert!(relative(from_moments.weights.kernel()[j], direct.weights.kernel()[j]) < 1e-9);
    }
    assert_eq!(from_moments.rank, 2);
    let overflowing = SummaryMoments::of_columns(&[&[1e300, -1e300], &[1.0, 2.0]]);
    assert!(least_squares_from_moments(&overflowing).is_none());
}

#[test]
fn collinear_and_constant_columns_are_dropped_but_the_mse_is_optimal() {
    let x = array![[1.0, 2.0, 5.0], [2.0, 4.0, 5.0], [3.0, 6.0, 5.0], [4.0, 8.0, 5.0]];
    let y = array![1.0, 3.0, 2.0, 5.0];
    let fit = solve(x.view(), y.view());
    assert_eq!(fit.rank, 1);
    let single = solve(x.slice(ndarray::s![.., 0..1]), y.view());
    assert!((fit.mse - single.mse).abs() < 1e-12);
}
