//! Calendar timestamps of the Azure trace (`2023-11-16 18:15:46.6805900`) as
//! integer nanoseconds since 1970-01-01 00:00:00 (no time zone: the trace has none).
//!
//! Converting the whole date (not just the time of day) is what makes a trace
//! that crosses midnight, a month end or a year end come out right.

const NS_PER_S: u64 = 1_000_000_000;

/// Days from 1970-01-01 to the given proleptic Gregorian date (may be negative).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Shift the year to start in March, so the leap day is the last day of the year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // 0..=399
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1; // 0..=365
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // 0..=146096
    era * 146_097 + doe - 719_468
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses a field of exactly `len` ASCII digits.
fn digits(s: &str, len: usize) -> Option<u32> {
    if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Parses `YYYY-MM-DD HH:MM:SS[.f…]` (a `T` may replace the space; up to 9
/// fraction digits) into nanoseconds since 1970. `None` when malformed, out of
/// range (month 13, 31 April, hour 24, ...) or before 1970.
pub fn parse_timestamp_ns(text: &str) -> Option<u64> {
    let (date, time) = text.trim().split_once([' ', 'T'])?;
    let mut d = date.split('-');
    let year = digits(d.next()?, 4)?;
    let month = digits(d.next()?, 2)?;
    let day = digits(d.next()?, 2)?;
    if d.next().is_some() {
        return None;
    }
    let (hms, frac) = match time.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (time, None),
    };
    let mut t = hms.split(':');
    let hour = digits(t.next()?, 2)?;
    let minute = digits(t.next()?, 2)?;
    let second = digits(t.next()?, 2)?;
    if t.next().is_some() {
        return None;
    }
    let year = i64::from(year);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let frac_ns = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let v: u64 = f.parse().ok()?;
            v * 10u64.pow(9 - f.len() as u32)
        }
        Some(_) => return None,
    };
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    let secs = days * 86_400 + u64::from(hour) * 3_600 + u64::from(minute) * 60 + u64::from(second);
    secs.checked_mul(NS_PER_S)?.checked_add(frac_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_dates() {
        assert_eq!(parse_timestamp_ns("1970-01-01 00:00:00"), Some(0));
        // 2023-11-16 is day 19,677 since 1970 (date -d 2023-11-16 +%s = 1,700,092,800).
        assert_eq!(parse_timestamp_ns("2023-11-16 00:00:00"), Some(1_700_092_800 * NS_PER_S));
        // 7 fraction digits: .6805900 s = 680,590,000 ns.
        assert_eq!(
            parse_timestamp_ns("2023-11-16 18:15:46.6805900"),
            Some((1_700_092_800 + 18 * 3600 + 15 * 60 + 46) * NS_PER_S + 680_590_000)
        );
    }

    #[test]
    fn crossing_midnight_month_and_leap_day() {
        let a = parse_timestamp_ns("2023-12-31 23:59:59.5").unwrap();
        let b = parse_timestamp_ns("2024-01-01 00:00:00.25").unwrap();
        assert_eq!(b - a, 750_000_000);
        let c = parse_timestamp_ns("2024-02-28 12:00:00").unwrap();
        let d = parse_timestamp_ns("2024-03-01 12:00:00").unwrap();
        assert_eq!(d - c, 2 * 86_400 * NS_PER_S); // 2024 is a leap year: Feb 29 in between
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "2023-11-16",
            "2023-13-01 00:00:00",
            "2023-04-31 00:00:00",
            "2023-02-29 00:00:00",
            "2023-11-16 24:00:00",
            "2023-11-16 18:15:46.",
            "2023-11-16 18:15:46.1234567890",
            "2023-11-16 18:15",
            "23-11-16 18:15:46",
            "1969-12-31 23:59:59",
            "abc",
        ] {
            assert_eq!(parse_timestamp_ns(bad), None, "{bad}");
        }
    }
}
