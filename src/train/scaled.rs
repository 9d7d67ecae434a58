//! Statistics that cannot overflow or underflow: values are divided by a power of two that
//! bounds their magnitude (an exact operation) before they are summed or squared, and the
//! result is scaled back once at the end. A mean of values near `f64::MAX`, or a sum of squares
//! of values near `1e154`, is then as accurate as one of ordinary values, and a result that
//! truly cannot be represented comes out infinite instead of silently wrong.

use ndarray::ArrayView1;

/// The power of two `2^e` with `max_abs < 2^e` (so that `value / scale` lies in `(-1, 1)`),
/// or `2^1023` for values that large; 1 for 0 or a non-finite bound.
pub fn scale_for(max_abs: f64) -> f64 {
    if max_abs == 0.0 || !max_abs.is_finite() {
        return 1.0;
    }
    pow2((exponent_of(max_abs) + 1).clamp(-1022, 1023))
}

/// `2^e` for `e` in `-1022..=1023`.
pub fn pow2(e: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&e), "2^{e} is not a normal f64");
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// The binary exponent `e` of a power of two `2^e` (as [`scale_for`] returns).
pub fn log2_of(power_of_two: f64) -> i32 {
    exponent_of(power_of_two)
}

/// `value * 2^e`, computed in steps so that intermediate powers never overflow: only the result
/// can (to infinity) or underflow (towards 0).
pub fn ldexp(mut value: f64, mut e: i32) -> f64 {
    while e > 1000 {
        value *= pow2(1000);
        e -= 1000;
    }
    while e < -1000 {
        value *= pow2(-1000);
        e += 1000;
    }
    value * pow2(e)
}

/// The largest magnitude among `values` (0 for none).
pub fn max_abs(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(0.0, |max, value| max.max(value.abs()))
}

/// The largest magnitude in each of `columns` interleaved columns (`values` holds one row after
/// another; 0 for none). The same as [`max_abs`] on each column, a few times faster on large
/// inputs: sixteen rows' worth of running maxima are kept, so no maximum waits for the one before.
pub fn column_max_abs(values: &[f64], columns: usize) -> Vec<f64> {
    const ROWS_IN_FLIGHT: usize = 16;
    let width = columns * ROWS_IN_FLIGHT;
    let mut lanes = vec![0.0f64; width];
    let mut blocks = values.chunks_exact(width);
    for block in &mut blocks {
        raise_to_magnitudes(&mut lanes, block);
    }
    // The remainder starts on a row, so its value `i` belongs to the column of lane `i` too.
    raise_to_magnitudes(&mut lanes, blocks.remainder());
    (0..columns).map(|column| max_abs(lanes.iter().copied().skip(column).step_by(columns))).collect()
}

fn raise_to_magnitudes(lanes: &mut [f64], values: &[f64]) {
    for (lane, value) in lanes.iter_mut().zip(values) {
        let magnitude = value.abs();
        // A comparison rather than `f64::max`, whose NaN rule keeps the loop from vectorising;
        // a NaN is skipped either way.
        if magnitude > *lane {
            *lane = magnitude;
        }
    }
}

/// The mean, accurate for any finite values (it lies between their minimum and maximum).
pub fn mean(values: ArrayView1<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let scale = scale_for(max_abs(values.iter().copied()));
    Some(scaled_mean(values, scale) * scale)
}

/// The mean and the population variance; the variance is infinite when it exceeds `f64::MAX`.
pub fn mean_and_variance(values: ArrayView1<f64>) -> Option<(f64, f64)> {
    let (mean, variance, scale) = scaled_mean_and_variance(values)?;
    Some((mean * scale, ldexp(variance, 2 * log2_of(scale))))
}

/// The mean and the population standard deviation; the deviation is infinite only when it
/// exceeds `f64::MAX`.
pub fn mean_and_std(values: ArrayView1<f64>) -> Option<(f64, f64)> {
    let (mean, variance, scale) = scaled_mean_and_variance(values)?;
    Some((mean * scale, variance.sqrt() * scale))
}

/// `Σ v² / n`: the mean of the squares (the MSE of residuals), infinite only when it exceeds
/// `f64::MAX`; 0 for no values.
pub fn mean_square(values: ArrayView1<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let scale = scale_for(max_abs(values.iter().copied()));
    let sum: f64 = values.iter().map(|v| (v / scale) * (v / scale)).sum();
    ldexp(sum / values.len() as f64, 2 * log2_of(scale))
}

/// `1 - mse / variance(values)`, the coefficient of determination of a fit with that MSE on
/// the target `values`, computed on the scaled values so that a variance beyond `f64` still gives
/// the right share; `None` for a constant target.
pub fn explained_share(mse: f64, values: ArrayView1<f64>) -> Option<f64> {
    let (_, variance, scale) = scaled_mean_and_variance(values)?;
    (variance > 0.0).then(|| 1.0 - ldexp(mse, -2 * log2_of(scale)) / variance)
}

/// Mean and variance of `values / scale`, and the scale.
fn scaled_mean_and_variance(values: ArrayView1<f64>) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let scale = scale_for(max_abs(values.iter().copied()));
    let mean = scaled_mean(values, scale);
    let squares: f64 = values.iter().map(|v| (v / scale - mean).powi(2)).sum();
    Some((mean, squares / values.len() as f64, scale))
}

fn scaled_mean(values: ArrayView1<f64>, scale: f64) -> f64 {
    values.iter().map(|v| v / scale).sum::<f64>() / values.len() as f64
}

/// The unbiased binary exponent of a positive normal or subnormal number.
fn exponent_of(value: f64) -> i32 {
    let biased = ((value.to_bits() >> 52) & 0x7ff) as i32;
    if biased == 0 {
        // Subnormal: the exponent of its highest set bit.
        let mantissa = value.to_bits() & ((1 << 52) - 1);
        return -1023 - (mantissa.leading_zeros() as i32 - 12);
    }
    biased - 1023
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_maxima_match_the_plain_maximum_of_each_column() {
        for (rows, columns) in [(0, 1), (1, 1), (15, 1), (16, 1), (1000, 1), (17, 3), (100, 4), (33, 7)] {
            let values: Vec<f64> =
                (0..rows * columns).map(|i| ((i * 7919 % 1013) as f64 - 500.0) * (1.0 + i as f64)).collect();
            let expected: Vec<f64> =
                (0..columns).map(|c| max_abs(values.iter().copied().skip(c).step_by(columns))).collect();
            assert_eq!(column_max_abs(&values, columns), expected, "{rows} rows x {columns}");
        }
        assert_eq!(column_max_abs(&[1.0, -1e300, f64::NAN, 2.0], 1), [1e300]);
    }

    #[test]
    fn scales_are_powers_of_two_just_above_the_values() {
        assert_eq!(scale_for(1.0), 2.0);
        assert_eq!(scale_for(0.75), 1.0);
        assert_eq!(scale_for(3.0), 4.0);
        assert_eq!(scale_for(0.0), 1.0);
        assert_eq!(scale_for(f64::MAX), pow2(1023));
        assert_eq!(scale_for(5e-324), pow2(-1022), "subnormals scale to the smallest normal power");
        assert_eq!(log2_of(pow2(-700)), -700);
        assert_eq!(ldexp(1.5, 2000), f64::INFINITY);
        assert_eq!(ldexp(pow2(1000), -1999), pow2(-999));
    }

    fn view(values: &[f64]) -> ArrayView1<'_, f64> {
        ArrayView1::from(values)
    }

    #[test]
    fn means_of_values_near_the_limit_stay_finite_and_exact() {
        assert_eq!(mean(view(&[f64::MAX, f64::MAX])), Some(f64::MAX));
        assert_eq!(mean(view(&[1.7e308, -1.7e308, 1.7e308, -1.7e308])), Some(0.0));
        assert_eq!(mean(view(&[1e300, 3e300])), Some(2e300));
        assert_eq!(mean(view(&[])), None);
    }

    #[test]
    fn variances_of_large_values_are_right_or_infinite_when_they_must_be() {
        let (mean, variance) = mean_and_variance(view(&[1e154, 3e154])).unwrap();
        assert_eq!(mean, 2e154);
        assert!((variance / 1e308 - 1.0).abs() < 1e-12, "{variance}");
        let (_, variance) = mean_and_variance(view(&[1e299, 2e299, 3e299])).unwrap();
        assert!(variance.is_infinite(), "(1e299)^2 is not representable");
        let (_, std) = mean_and_std(view(&[1e299, 2e299, 3e299])).unwrap();
        assert!((std / (1e299 * (2.0f64 / 3.0).sqrt()) - 1.0).abs() < 1e-12, "{std}");
        let (_, tiny) = mean_and_std(view(&[1e-200, 3e-200])).unwrap();
        assert!((tiny / 1e-200 - 1.0).abs() < 1e-12, "squares of 1e-200 would underflow: {tiny}");
    }

    #[test]
    fn the_explained_share_is_right_when_the_variance_is_beyond_f64() {
        // variance = (2e155)^2 * 2/3 = 2.67e310, beyond f64; with an MSE of 2.67e305, r2 = 1 - 1e-5.
        let y = [1e155, 3e155, 5e155];
        let mse = 2e155 * (2e155 * 1e-5) * (2.0 / 3.0);
        let r2 = explained_share(mse, view(&y)).unwrap();
        assert!((r2 - (1.0 - 1e-5)).abs() < 1e-12, "{r2}");
        assert_eq!(explained_share(0.0, view(&[2.0, 2.0])), None, "a constant target");
        assert_eq!(explained_share(1.0, view(&[1.0, 3.0])), Some(0.0));
    }

    #[test]
    fn mean_squares_scale_before_squaring() {
        assert!((mean_square(view(&[1e154, -1e154])) / 1e308 - 1.0).abs() < 1e-12);
        assert_eq!(mean_square(view(&[1.7e308])), f64::INFINITY);
        assert_eq!(mean_square(view(&[3.0, 4.0])), 12.5);
        assert_eq!(mean_square(view(&[])), 0.0);
    }
}
