//! Wall-clock time for people: formatting timestamps (milliseconds since
//! the Unix epoch) without a calendar dependency.
//!
//! Pure functions; must not read the clock except in [`now_ms`] (and [`now_s`], from it).

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, now.
pub fn now_s() -> i64 {
    now_ms() / 1000
}

/// `2026-11-25 14:03 UTC` for a time in milliseconds since the epoch.
pub fn utc_minute(ts_ms: i64) -> String {
    let (date, rem) = utc_parts(ts_ms);
    format!("{date} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

/// `2026-11-25 14:03:07 UTC`.
pub fn utc_second(ts_ms: i64) -> String {
    let (date, rem) = utc_parts(ts_ms);
    format!(
        "{date} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The date as `YYYY-MM-DD` and the seconds into that day.
fn utc_parts(ts_ms: i64) -> (String, i64) {
    let secs = ts_ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    (format!("{year:04}-{month:02}-{day:02}"), rem)
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_537), (2026, 3, 25));
    }

    #[test]
    fn message_times_in_utc() {
        assert_eq!(utc_minute(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(1_764_079_380_000), "2025-11-25 14:03 UTC");
        assert_eq!(utc_minute(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(utc_minute(-60_000), "1969-12-31 23:59 UTC");
    }
}
