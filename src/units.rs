//! Byte sizes, durations and times as people write them in flags and read them in answers:
//! parsed and formatted in one place. Times are RFC 3339 in UTC, and kept as milliseconds since
//! 1970 where they are stored as numbers.

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parses `123`, `64K`, `16M`, `2G` (binary multiples; an optional trailing `B` or `iB`).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a size like 1048576 or 16M"))?;
    let shift = match unit.trim().to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(format!("{text:?} has an unknown unit; use K, M or G")),
    };
    number.checked_mul(1 << shift).ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses a duration: `30s`, `500ms`, `2m`, `1h`, `7d`, or a bare number of seconds; it must not
/// be 0.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 30s or 500ms"))?;
    let duration = match unit.trim() {
        "ms" => Duration::from_millis(number),
        "" | "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        "d" => Duration::from_secs(number.saturating_mul(86_400)),
        _ => return Err(format!("{text:?} has an unknown unit; use ms, s, m, h or d")),
    };
    if duration.is_zero() {
        return Err(format!("{text:?}: a duration must be above 0"));
    }
    Ok(duration)
}

/// `time` as RFC 3339, as every answer writes a time.
pub fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).expect("a time since 1970 formats as RFC 3339")
}

/// Now, as RFC 3339.
pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

/// Reads an RFC 3339 time.
pub fn parse_rfc3339(text: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(text, &Rfc3339)
}

/// The time since an RFC 3339 time (zero for one in the future); `None` if it is not one.
pub fn since_rfc3339(at: &str) -> Option<Duration> {
    let at = parse_rfc3339(at).ok()?;
    Some((OffsetDateTime::now_utc() - at).try_into().unwrap_or(Duration::ZERO))
}

/// `time` in milliseconds since 1970.
pub fn millis(time: OffsetDateTime) -> i64 {
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The time `ms` milliseconds after 1970 (1970 itself for one out of range).
pub fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `1.5s`, `250ms`, `30s`, `2m`, `1h`, `7d`: a duration as the flags write it.
pub fn short_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let whole = |unit: u64| seconds >= unit && seconds.is_multiple_of(unit);
    match duration.subsec_millis() {
        0 if whole(86_400) => format!("{}d", seconds / 86_400),
        0 if whole(3600) => format!("{}h", seconds / 3600),
        0 if whole(60) => format!("{}m", seconds / 60),
        0 => format!("{seconds}s"),
        _ if duration.as_secs() == 0 => format!("{}ms", duration.as_millis()),
        _ => format!("{}s", duration.as_secs_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_binary_suffixes() {
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("16M"), Ok(16 << 20));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("64kb"), Ok(64 << 10));
        assert!(parse_bytes("12X").is_err());
        assert!(parse_bytes("M").is_err());
    }

    #[test]
    fn durations_accept_units_and_read_like_flags() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
        assert_eq!(short_duration(Duration::from_secs(30)), "30s");
        assert_eq!(short_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(short_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(short_duration(Duration::from_secs(90)), "90s");
        assert_eq!(short_duration(Duration::from_secs(120)), "2m");
        assert_eq!(short_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(short_duration(Duration::from_secs(7 * 86_400)), "7d");
    }
}
