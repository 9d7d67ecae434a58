//! Cron schedules for the retraining triggers: parsing standard 5-field
//! expressions (crontab(5)) and finding the next minute one fires, in UTC.

use std::fmt;
use std::str::FromStr;

use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// How many calendar years past the start `next_after` searches; enough for
/// a Feb 29 schedule across a century year that is not a leap year.
const SEARCH_YEARS: i32 = 8;

const MONTH_NAMES: [&str; 12] =
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
/// The longest each month can be (February in a leap year).
const MONTH_DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// One of the five fields: its name, its range of values and the names that
/// stand for `min`, `min + 1`, ...
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field { name: "minute", min: 0, max: 59, names: &[] },
    Field { name: "hour", min: 0, max: 23, names: &[] },
    Field { name: "day-of-month", min: 1, max: 31, names: &[] },
    Field { name: "month", min: 1, max: 12, names: &MONTH_NAMES },
    Field { name: "day-of-week", min: 0, max: 7, names: &DAY_NAMES },
];

/// A cron schedule: `minute hour day-of-month month day-of-week`, or one of
/// the macros `@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`,
/// `@yearly` and `@annually`, evaluated in UTC at minute resolution.
///
/// As in crontab(5), when both day fields are restricted (neither starts
/// with `*`) a day matches if either does; otherwise both must match.
#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    text: String,
    // Bit `n` is set when value `n` matches; day-of-week uses 0-6, Sunday 0.
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_either: bool,
}

/// Parses a cron expression; the error is a sentence naming what is wrong.
pub fn parse(text: &str) -> Result<Cron, String> {
    let text = text.trim();
    let expanded = match text.to_ascii_lowercase().as_str() {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        m if m.starts_with('@') => {
            return Err(format!(
                "\"{text}\": unknown macro; use @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually"
            ));
        }
        _ => text,
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "\"{text}\": a cron expression has 5 fields (minute hour day-of-month month day-of-week); this has {}",
            fields.len()
        ));
    }
    let mut masks = [0; 5];
    for ((mask, field), spec) in masks.iter_mut().zip(&fields).zip(&FIELDS) {
        *mask = parse_field(text, spec, field)?;
    }
    let [minutes, hours, days, months, weekdays] = masks;
    let cron = Cron {
        text: text.to_owned(),
        minutes,
        hours,
        days,
        months,
        weekdays: (weekdays | weekdays >> 7) & 0x7f, // 7 is Sunday too
        days_either: !fields[2].starts_with('*') && !fields[4].starts_with('*'),
    };
    // When both day fields must match, the smallest day has to fit in one of the months.
    let fits = (1..=12).any(|m| has(months, m) && days.trailing_zeros() <= MONTH_DAYS[m as usize - 1]);
    if !cron.days_either && !fits {
        return Err(format!("\"{text}\": it never fires: none of its months has any of its days"));
    }
    Ok(cron)
}

/// Parses one field (a comma list of `*`, `n`, `a-b`, each with an optional
/// `/step`) into a bit mask of the values it matches.
fn parse_field(text: &str, spec: &Field, field: &str) -> Result<u64, String> {
    let fail = |what: String| format!("\"{text}\": the {} field \"{field}\" {what}", spec.name);
    let (min, max) = (spec.min, spec.max);
    let mut mask = 0;
    for item in field.split(',') {
        if item.is_empty() {
            return Err(fail("has an empty list item".into()));
        }
        let value = |part: &str| -> Result<u32, String> {
            let v = if part.is_empty() {
                return Err(fail(format!("has an incomplete item \"{item}\"")));
            } else if part.bytes().all(|b| b.is_ascii_digit()) {
                part.parse().unwrap_or(u32::MAX)
            } else if let Some(i) = spec.names.iter().position(|n| n.eq_ignore_ascii_case(part)) {
                min + i as u32
            } else if let [first, .., last] = spec.names {
                return Err(fail(format!("has an unknown name \"{part}\" (names are {first}-{last})")));
            } else {
                return Err(fail(format!("has \"{part}\", which is not a number")));
            };
            if (min..=max).contains(&v) {
                Ok(v)
            } else if part == field {
                Err(fail(format!("is out of range {min}-{max}")))
            } else {
                Err(fail(format!("has {part}, which is out of range {min}-{max}")))
            }
        };
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => match step.parse::<usize>() {
                Ok(0) => return Err(fail("has a step of 0".into())),
                Ok(n) if step.bytes().all(|b| b.is_ascii_digit()) => (range, Some(n)),
                _ => return Err(fail(format!("has a step \"{step}\" that is not a positive number"))),
            },
            None => (item, None),
        };
        let (lo, hi) = match range.split_once('-') {
            _ if range == "*" => (min, max),
            Some((a, b)) => (value(a)?, value(b)?),
            None => value(range).map(|v| (v, if step.is_some() { max } else { v }))?,
        };
        if lo > hi {
            return Err(fail(format!("has a reversed range {range}")));
        }
        for v in (lo..=hi).step_by(step.unwrap_or(1)) {
            mask |= 1 << v;
        }
    }
    Ok(mask)
}

fn has(mask: u64, value: u32) -> bool {
    mask >> value & 1 == 1
}

/// The smallest value at or above `from` whose bit is set in `mask`.
fn next_bit(mask: u64, from: u32) -> Option<u32> {
    let rest = mask >> from;
    (rest != 0).then(|| from + rest.trailing_zeros())
}

impl Cron {
    /// The first minute this schedule fires strictly after `after` (whose
    /// seconds are dropped), in UTC; `None` if there is none within the
    /// next `SEARCH_YEARS` (8) calendar years.
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let start = after.to_offset(UtcOffset::UTC).checked_add(Duration::MINUTE)?;
        // Seconds drop out: only the hour and minute of `from` are used.
        let (mut date, mut from) = (start.date(), start.time());
        while date.year() - start.year() <= SEARCH_YEARS {
            if !has(self.months, date.month() as u32) {
                date = date.replace_day(1).ok()?.checked_add(Duration::days(32))?.replace_day(1).ok()?;
            } else {
                if self.day_matches(date)
                    && let Some(time) = self.first_time_from(from)
                {
                    return Some(PrimitiveDateTime::new(date, time).assume_utc());
                }
                date = date.next_day()?;
            }
            from = Time::MIDNIGHT;
        }
        None
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = has(self.days, date.day().into());
        let dow = has(self.weekdays, date.weekday().number_days_from_sunday().into());
        if self.days_either { dom || dow } else { dom && dow }
    }

    /// The first matching time of day at or after `from`.
    fn first_time_from(&self, from: Time) -> Option<Time> {
        let (h0, m0) = (u32::from(from.hour()), u32::from(from.minute()));
        let hour = next_bit(self.hours, h0)?;
        let (hour, minute) = match next_bit(self.minutes, if hour == h0 { m0 } else { 0 }) {
            Some(minute) => (hour, minute),
            None => (next_bit(self.hours, hour + 1)?, next_bit(self.minutes, 0)?),
        };
        Time::from_hms(hour as u8, minute as u8, 0).ok()
    }
}

impl FromStr for Cron {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse(text)
    }
}

impl fmt::Display for Cron {
    /// The expression as written, without surrounding whitespace.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::format_description::well_known::Rfc3339;

    /// RFC 3339, or UTC minutes written `YYYY-MM-DDTHH:MM`.
    fn at(text: &str) -> OffsetDateTime {
        let text = if text.len() == 16 { format!("{text}:00Z") } else { text.to_owned() };
        OffsetDateTime::parse(&text, &Rfc3339).expect("a valid test time")
    }

    /// Follows `expr` from `after` and checks each of the fire times in turn.
    fn fires(expr: &str, after: &str, expected: &str) {
        let cron = parse(expr).expect("a valid expression");
        let mut t = at(after);
        for want in expected.split_whitespace() {
            t = cron.next_after(t).expect("a next fire time");
            assert_eq!((t, t.offset()), (at(want), UtcOffset::UTC), "{expr} after {after}");
        }
    }

    fn error(expr: &str) -> String {
        parse(expr).expect_err("an invalid expression")
    }

    #[test]
    fn every_minute_drops_seconds_and_is_strictly_after() {
        fires("* * * * *", "2026-05-10T12:34:56.789Z", "2026-05-10T12:35 2026-05-10T12:36");
        fires("*/15 * * * *", "2026-05-10T12:15", "2026-05-10T12:30 2026-05-10T12:45 2026-05-10T13:00");
        fires("*/15 * * * *", "2026-05-10T12:14:59.999Z", "2026-05-10T12:15");
    }

    #[test]
    fn ranges_steps_and_lists() {
        fires(
            "10-40/15 9-17/4 * * *",
            "2026-05-10T13:41",
            "2026-05-10T17:10 2026-05-10T17:25 2026-05-10T17:40",
        );
        fires("10-40/15 9-17/4 * * *", "2026-05-10T17:40", "2026-05-11T09:10");
        fires("50/5 * * * *", "2026-05-10T12:56", "2026-05-10T13:50 2026-05-10T13:55");
        fires("0,30 8,20 * * *", "2026-05-10T08:30", "2026-05-10T20:00 2026-05-10T20:30 2026-05-11T08:00");
    }

    #[test]
    fn names_and_sunday() {
        // 2026-07-01 is a Wednesday, 2027-01-01 a Friday.
        fires("0 9 * JAN,Jul Sat", "2026-05-10T00:00", "2026-07-04T09:00 2026-07-11T09:00");
        fires("0 9 * JAN,Jul Sat", "2026-07-31T12:00", "2027-01-02T09:00");
        // 2026-05-10 is a Sunday.
        for sunday in ["0", "7", "sun"] {
            fires(&format!("0 12 * * {sunday}"), "2026-05-10T12:00", "2026-05-17T12:00");
        }
        let weekend = "2026-05-15T12:00 2026-05-16T12:00 2026-05-17T12:00 2026-05-22T12:00";
        fires("0 12 * * fri-7", "2026-05-10T12:00", weekend);
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // The 13th of May 2026 is a Wednesday; the 15th and 22nd are Fridays.
        fires("0 0 13 * fri", "2026-05-10T00:00", "2026-05-13T00:00 2026-05-15T00:00 2026-05-22T00:00");
        fires("0 0 13 * *", "2026-05-13T00:00", "2026-06-13T00:00");
        // A field starting with `*` is unrestricted: odd days that are Fridays.
        fires("0 0 */2 * fri", "2026-05-10T00:00", "2026-05-15T00:00 2026-05-29T00:00");
    }

    #[test]
    fn month_and_year_rollover() {
        fires("30 2 31 * *", "2026-04-01T00:00", "2026-05-31T02:30 2026-07-31T02:30");
        fires("* * * * *", "2026-12-31T23:59", "2027-01-01T00:00");
        fires("0 0 1 1 *", "2026-05-10T00:00", "2027-01-01T00:00 2028-01-01T00:00");
    }

    #[test]
    fn leap_days() {
        fires("0 0 29 2 *", "2026-03-01T00:00", "2028-02-29T00:00 2032-02-29T00:00");
        fires("0 0 29 2 *", "2096-03-01T00:00", "2104-02-29T00:00");
    }

    #[test]
    fn other_offsets_are_converted_to_utc() {
        // 01:30 at +05:00 on the 11th is 20:30Z on the 10th.
        fires("0 22 * * *", "2026-05-11T01:30:00+05:00", "2026-05-10T22:00");
    }

    #[test]
    fn nothing_past_the_end_of_time() {
        assert_eq!(parse("* * * * *").unwrap().next_after(at("9999-12-31T23:59")), None);
        assert_eq!(parse("0 0 1 1 *").unwrap().next_after(at("9999-06-01T00:00")), None);
    }

    #[test]
    fn macros() {
        fires("@hourly", "2026-05-10T12:00", "2026-05-10T13:00");
        for daily in ["@daily", "@midnight", "@DAILY"] {
            fires(daily, "2026-05-10T00:00", "2026-05-11T00:00");
        }
        fires("@weekly", "2026-05-10T00:00", "2026-05-17T00:00");
        fires("@monthly", "2026-05-10T00:00", "2026-06-01T00:00");
        for yearly in ["@yearly", "@annually"] {
            fires(yearly, "2026-05-10T00:00", "2027-01-01T00:00");
        }
    }

    #[test]
    fn displays_the_text_as_written() {
        let cron: Cron = "  */5  *\t* * *  ".parse().unwrap();
        assert_eq!(cron.to_string(), "*/5  *\t* * *");
        assert_eq!(parse("@daily").unwrap().to_string(), "@daily");
    }

    #[test]
    fn errors_name_the_field_and_the_problem() {
        let fields = "a cron expression has 5 fields (minute hour day-of-month month day-of-week)";
        assert_eq!(error("* * *"), format!("\"* * *\": {fields}; this has 3"));
        assert_eq!(error("0 25 * * *"), "\"0 25 * * *\": the hour field \"25\" is out of range 0-23");
        let cases = [
            ("1,60 * * * *", "the minute field \"1,60\" has 60, which is out of range 0-59"),
            ("0 0 * * 8", "the day-of-week field \"8\" is out of range 0-7"),
            ("0 0 0 * *", "the day-of-month field \"0\" is out of range 1-31"),
            ("*/0 * * * *", "the minute field \"*/0\" has a step of 0"),
            ("*/x * * * *", "has a step \"x\" that is not a positive number"),
            ("0 5-1 * * *", "the hour field \"5-1\" has a reversed range 5-1"),
            ("0 0 * foo *", "the month field \"foo\" has an unknown name \"foo\" (names are jan-dec)"),
            ("0 0 * * mon-funday", "has an unknown name \"funday\" (names are sun-sat)"),
            ("x * * * *", "the minute field \"x\" has \"x\", which is not a number"),
            ("1,,2 * * * *", "the minute field \"1,,2\" has an empty list item"),
            ("5- * * * *", "has an incomplete item \"5-\""),
            ("0 0 30 feb *", "\"0 0 30 feb *\": it never fires"),
            ("0 0 31 4,6,9,11 *", "it never fires"),
            ("@reboot", "\"@reboot\": unknown macro"),
        ];
        for (expr, message) in cases {
            assert!(error(expr).contains(message), "{expr}: {}", error(expr));
        }
        assert!(parse("0 0 31 4,6,9,11 fri").is_ok(), "fires on Fridays");
    }
}
