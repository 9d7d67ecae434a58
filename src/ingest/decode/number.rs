//! JSON numbers for the [`super::flat`] scanner: the grammar of RFC 8259 section 6, and the
//! correctly rounded value, read in the same pass. A number whose digits fit in 53 bits and
//! whose decimal exponent is within ±22 is exact in one IEEE operation (Clinger's fast path,
//! which covers readings such as `23.5` or `-0.125`); any other is handed to the standard
//! library's parser, which rounds correctly too.

/// The powers of ten that are exact in an `f64`.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
    1e19, 1e20, 1e21, 1e22,
];
/// Digits that surely fit in a `u64`.
const MAX_EXACT_DIGITS: usize = 19;
/// Larger exponents are all out of range; capping keeps the sum from overflowing.
const EXPONENT_CAP: i64 = 100_000;

/// The JSON number at the start of `bytes` and its length in bytes; `None` if there is none.
pub(super) fn parse(bytes: &[u8]) -> Option<(f64, usize)> {
    let negative = bytes.first() == Some(&b'-');
    let whole_start = usize::from(negative);
    let (mut mantissa, mut at) = digits(bytes, whole_start, 0);
    let whole = at - whole_start;
    if whole == 0 || (whole > 1 && bytes[whole_start] == b'0') {
        return None;
    }
    let mut exponent = 0_i64;
    let mut count = whole;
    if bytes.get(at) == Some(&b'.') {
        let (with_fraction, end) = digits(bytes, at + 1, mantissa);
        let fraction = end - at - 1;
        if fraction == 0 {
            return None;
        }
        (mantissa, at, count, exponent) = (with_fraction, end, count + fraction, -(fraction as i64));
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        let (written, end) = explicit_exponent(bytes, at + 1)?;
        (exponent, at) = (exponent + written, end);
    }
    let value = match exact(mantissa, count, exponent) {
        Some(magnitude) if negative => -magnitude,
        Some(magnitude) => magnitude,
        None => std::str::from_utf8(&bytes[..at]).ok()?.parse().ok()?,
    };
    Some((value, at))
}

/// Reads the digits from `at` on into `mantissa` (wrapping: only used when few enough), eight
/// at a time while it can; returns it and where the digits end.
fn digits(bytes: &[u8], mut at: usize, mut mantissa: u64) -> (u64, usize) {
    while let Some(word) =
        bytes.get(at..at + 8).map(|eight| u64::from_le_bytes(eight.try_into().expect("8 bytes")))
        && are_eight_digits(word)
    {
        mantissa = mantissa.wrapping_mul(100_000_000).wrapping_add(eight_digits(word));
        at += 8;
    }
    while let Some(&b) = bytes.get(at).filter(|b| b.is_ascii_digit()) {
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
        at += 1;
    }
    (mantissa, at)
}

/// True when each byte of `word` is an ASCII digit (fast_float's test: a byte above `9`
/// overflows into its top bit when 0x46 is added, one below `0` when 0x30 is taken).
fn are_eight_digits(word: u64) -> bool {
    let above = word.wrapping_add(0x4646_4646_4646_4646);
    let below = word.wrapping_sub(0x3030_3030_3030_3030);
    (above | below) & 0x8080_8080_8080_8080 == 0
}

/// The value of eight ASCII digits, the first in the lowest byte, in three multiplications.
fn eight_digits(word: u64) -> u64 {
    const LOW_BYTES: u64 = 0x0000_00FF_0000_00FF;
    let pairs = {
        let digits = word - 0x3030_3030_3030_3030;
        digits.wrapping_mul(10) + (digits >> 8)
    };
    let high = (pairs & LOW_BYTES).wrapping_mul(0x000F_4240_0000_0064);
    let low = ((pairs >> 16) & LOW_BYTES).wrapping_mul(0x0000_2710_0000_0001);
    high.wrapping_add(low) >> 32
}

/// The exponent after `e`: an optional sign, then at least one digit.
fn explicit_exponent(bytes: &[u8], mut at: usize) -> Option<(i64, usize)> {
    let negative = bytes.get(at) == Some(&b'-');
    at += usize::from(matches!(bytes.get(at), Some(b'+' | b'-')));
    let start = at;
    let mut value = 0_i64;
    while let Some(&b) = bytes.get(at).filter(|b| b.is_ascii_digit()) {
        value = (value * 10 + i64::from(b - b'0')).min(EXPONENT_CAP);
        at += 1;
    }
    (at > start).then_some((if negative { -value } else { value }, at))
}

/// `mantissa` × 10^`exponent` when both are exact, so one operation rounds it correctly.
fn exact(mantissa: u64, count: usize, exponent: i64) -> Option<f64> {
    if count > MAX_EXACT_DIGITS || mantissa > 1 << 53 {
        return None;
    }
    let power = *EXACT_POWERS_OF_TEN.get(exponent.unsigned_abs() as usize)?;
    Some(if exponent < 0 { mantissa as f64 / power } else { mantissa as f64 * power })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same_as_std(text: &str) {
        let (value, length) = parse(text.as_bytes()).unwrap_or_else(|| panic!("{text} is a number"));
        assert_eq!(length, text.len(), "{text}");
        assert_eq!(value.to_bits(), text.parse::<f64>().unwrap().to_bits(), "{text}");
    }

    #[test]
    fn values_are_those_of_the_standard_parser() {
        for text in [
            "0",
            "-0",
            "-0.0",
            "1",
            "23.5",
            "-0.125",
            "1e22",
            "1e23",
            "9007199254740992",
            "9007199254740993",
            "12345678901234567890",
            "11.420000000000002",
            "0.30000000000000004",
            "2.2250738585072014e-308",
            "4.9e-324",
            "1.7976931348623157e308",
            "1e-400",
            "0.000001",
            "123456789e-22",
            "1E+2",
            "5e-0",
        ] {
            same_as_std(text);
        }
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for _ in 0..200_000 {
            let digits = next(10) as u32 + 1;
            let whole = next(10_u64.pow(digits));
            let fraction = format!("{:0width$}", next(1_000_000_000), width = next(12) as usize + 1);
            let exponent = next(80) as i64 - 40;
            same_as_std(&format!("{whole}.{fraction}"));
            same_as_std(&format!("-{whole}.{fraction}e{exponent}"));
            same_as_std(&format!("{whole}E{exponent}"));
        }
    }

    #[test]
    fn eight_digits_at_once() {
        let word = |text: &[u8; 8]| u64::from_le_bytes(*text);
        assert_eq!(eight_digits(word(b"12345678")), 12_345_678);
        assert_eq!(eight_digits(word(b"00000009")), 9);
        assert!(are_eight_digits(word(b"98765432")));
        for bad in [b"1234567.", b"/2345678", b":2345678", b"1234\xb5678"] {
            assert!(!are_eight_digits(word(bad)), "{bad:?}");
        }
    }

    #[test]
    fn what_json_does_not_call_a_number_is_refused_and_the_length_stops_at_the_number() {
        for text in ["", "-", "01", "-01", "1.", ".5", "+1", "1e", "1e+", "-e5", "x", "1.e3"] {
            assert_eq!(parse(text.as_bytes()), None, "{text}");
        }
        assert_eq!(parse(b"12,3"), Some((12.0, 2)));
        assert_eq!(parse(b"1e999}"), Some((f64::INFINITY, 5)));
        assert_eq!(parse(b"0.5 "), Some((0.5, 3)));
    }
}
