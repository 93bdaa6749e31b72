//! Reminders' times: reads the WHEN of `/remind WHEN WHAT` ("in 10
//! minutes", "at 18:30", "tomorrow 9am", "monday 8:00", "2026-12-24
//! 18:00") in the owner's time zone, and writes due times back the way a
//! person reads them.
//!
//! Pure: no store, no clock (the caller passes "now"); must not send
//! anything (the daemon fires reminders).

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ZonedDateTime};

/// A reminder read from `/remind`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub due: Timestamp,
    /// What to remind of (the words after the time).
    pub what: String,
}

/// Why `/remind`'s arguments are not a reminder. The messages are what the
/// owner reads.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WhenError {
    #[error("when? e.g. /remind in 10 minutes call Anna, /remind tomorrow 9am bins")]
    NoTime,
    #[error("remind of what? put it after the time, e.g. /remind at 18:30 call Anna")]
    NoText,
    #[error("{0} has already passed")]
    Past(String),
    #[error("that is more than 10 years away")]
    TooFar,
    #[error("`{0}` is not a time I can read (try 18:30, 9am or 9:15pm)")]
    BadTime(String),
    #[error("`{0}` is not a date I can read (try 2026-12-24)")]
    BadDate(String),
}

/// When a reminder is due without a time of day ("tomorrow", "monday").
const DEFAULT_HOUR: i8 = 9;

/// Reminders further out than this are refused (a typo like "in 500
/// weeks" is more likely than a real need).
const MAX_AHEAD_DAYS: i64 = 3653;

/// Reads `/remind`'s arguments (`args`, the text after the command) at
/// `now` in the owner's time zone.
pub fn parse(args: &str, now: &ZonedDateTime) -> Result<Request, WhenError> {
    let words: Vec<&str> = args.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let (due, used) = match lower.first().map(String::as_str) {
        Some("in") => relative(&lower[1..], now).map(|(d, n)| (d, n + 1))?,
        Some(_) => absolute(&lower, now)?,
        None => return Err(WhenError::NoTime),
    };
    if due.timestamp() <= now.timestamp() {
        return Err(WhenError::Past(describe(due.timestamp(), now.time_zone())));
    }
    let limit = now
        .checked_add(Span::new().days(MAX_AHEAD_DAYS))
        .map_err(|_| WhenError::TooFar)?;
    if due.timestamp() > limit.timestamp() {
        return Err(WhenError::TooFar);
    }
    let mut rest = &words[used..];
    if rest
        .first()
        .is_some_and(|w| w.eq_ignore_ascii_case("to") || w.eq_ignore_ascii_case("that"))
    {
        rest = &rest[1..];
    }
    let what = rest.join(" ");
    if what.is_empty() {
        return Err(WhenError::NoText);
    }
    Ok(Request {
        due: due.timestamp(),
        what,
    })
}

/// `in 10 minutes`, `in 2h`, `in 1 hour and 30 minutes`, `in a day`: the
/// due time and how many words it took.
fn relative(words: &[String], now: &ZonedDateTime) -> Result<(ZonedDateTime, usize), WhenError> {
    // Amounts per unit, seconds to weeks.
    let mut amounts = [0i64; 5];
    let mut i = 0;
    let mut any = false;
    while i < words.len() {
        if any && words[i] == "and" {
            i += 1;
            continue;
        }
        // "10 minutes", "a minute", or "10min" in one word.
        let (amount, unit, took) = match amount(&words[i]) {
            Some(n) if i + 1 < words.len() && unit(&words[i + 1]).is_some() => {
                (n, unit(&words[i + 1]), 2)
            }
            _ => match split_number(&words[i]) {
                Some((n, u)) if unit(u).is_some() => (n, unit(u), 1),
                _ => break,
            },
        };
        let Some(unit) = unit else { break };
        amounts[unit as usize] = amounts[unit as usize].saturating_add(amount);
        any = true;
        i += took;
    }
    if !any {
        return Err(WhenError::NoTime);
    }
    let [s, m, h, d, w] = amounts;
    let span = Span::new()
        .try_seconds(s)
        .and_then(|x| x.try_minutes(m))
        .and_then(|x| x.try_hours(h))
        .and_then(|x| x.try_days(d))
        .and_then(|x| x.try_weeks(w))
        .map_err(|_| WhenError::TooFar)?;
    let due = now.checked_add(span).map_err(|_| WhenError::TooFar)?;
    Ok((due, i))
}

#[derive(Debug, Clone, Copy)]
enum Unit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
}

fn unit(word: &str) -> Option<Unit> {
    Some(match word.trim_end_matches([',', '.']) {
        "s" | "sec" | "secs" | "second" | "seconds" => Unit::Second,
        "m" | "min" | "mins" | "minute" | "minutes" => Unit::Minute,
        "h" | "hr" | "hrs" | "hour" | "hours" => Unit::Hour,
        "d" | "day" | "days" => Unit::Day,
        "w" | "week" | "weeks" => Unit::Week,
        _ => return None,
    })
}

fn amount(word: &str) -> Option<i64> {
    match word {
        "a" | "an" | "one" => Some(1),
        "two" => Some(2),
        "half" => None,
        w => w.parse().ok().filter(|n| (1..=99_999).contains(n)),
    }
}

/// `10min` → (10, "min").
fn split_number(word: &str) -> Option<(i64, &str)> {
    let digits = word.find(|c: char| !c.is_ascii_digit())?;
    let n: i64 = word[..digits].parse().ok()?;
    (1..=99_999).contains(&n).then_some((n, &word[digits..]))
}

/// `[on] [DAY] [at] [TIME]`, at least one of DAY and TIME: the due time
/// and how many words it took. DAY is `today`, `tonight`, `tomorrow`, a
/// weekday or `YYYY-MM-DD`; TIME is `18:30`, `9am`, `9:15 pm`, `noon`.
fn absolute(words: &[String], now: &ZonedDateTime) -> Result<(ZonedDateTime, usize), WhenError> {
    let tz = now.time_zone().clone();
    let today = now.date();
    let mut i = 0;
    if words.first().is_some_and(|w| w == "on") {
        i += 1;
    }
    let mut day: Option<Day> = None;
    if let Some(w) = words.get(i) {
        day = day_word(w, today)?;
        if day.is_some() {
            i += 1;
        }
    }
    if words.get(i).is_some_and(|w| w == "at") {
        i += 1;
    }
    let mut time = None;
    if let Some(w) = words.get(i) {
        // "9 am": the meridiem as its own word.
        let joined = match words.get(i + 1).map(String::as_str) {
            Some(m @ ("am" | "pm" | "a.m." | "p.m.")) => Some(format!("{w}{m}")),
            _ => None,
        };
        if let Some(t) = joined.as_deref().and_then(time_of_day) {
            time = Some(t);
            i += 2;
        } else if let Some(t) = time_of_day(w) {
            time = Some(t);
            i += 1;
        } else if i > 0 && words[i - 1] == "at" {
            return Err(WhenError::BadTime(w.clone()));
        }
    }
    let due = match (day, time) {
        (None, None) => return Err(WhenError::NoTime),
        // A time alone: its next occurrence.
        (None, Some(t)) => {
            let mut d = today;
            loop {
                let z = at(d, t, &tz)?;
                if z.timestamp() > now.timestamp() {
                    break z;
                }
                d = d.tomorrow().map_err(|_| WhenError::TooFar)?;
            }
        }
        (Some(Day::Date(d)), t) => at(d, t.unwrap_or(default_time()), &tz)?,
        // A weekday: the next such day whose time is still ahead.
        (Some(Day::Weekday(wd)), t) => {
            let t = t.unwrap_or(default_time());
            let mut d = if today.weekday() == wd {
                today
            } else {
                today.nth_weekday(1, wd).map_err(|_| WhenError::TooFar)?
            };
            loop {
                let z = at(d, t, &tz)?;
                if z.timestamp() > now.timestamp() {
                    break z;
                }
                d = d.nth_weekday(1, wd).map_err(|_| WhenError::TooFar)?;
            }
        }
    };
    Ok((due, i))
}

enum Day {
    Date(Date),
    Weekday(Weekday),
}

fn day_word(w: &str, today: Date) -> Result<Option<Day>, WhenError> {
    let next = |d: Date| d.tomorrow().map_err(|_| WhenError::TooFar);
    Ok(Some(match w {
        "today" | "tonight" => Day::Date(today),
        "tomorrow" | "tmrw" => Day::Date(next(today)?),
        w => {
            if let Some(wd) = weekday(w) {
                Day::Weekday(wd)
            } else if w.len() == 10 && w.as_bytes()[4] == b'-' && w.as_bytes()[7] == b'-' {
                let part = |r: std::ops::Range<usize>| w.get(r).and_then(|p| p.parse::<i16>().ok());
                let bad = || WhenError::BadDate(w.to_string());
                let (y, m, d) = (
                    part(0..4).ok_or_else(bad)?,
                    part(5..7).ok_or_else(bad)?,
                    part(8..10).ok_or_else(bad)?,
                );
                Day::Date(Date::new(y, m as i8, d as i8).map_err(|_| bad())?)
            } else {
                return Ok(None);
            }
        }
    }))
}

fn weekday(w: &str) -> Option<Weekday> {
    Some(match w.trim_end_matches(',') {
        "mon" | "monday" => Weekday::Monday,
        "tue" | "tues" | "tuesday" => Weekday::Tuesday,
        "wed" | "wednesday" => Weekday::Wednesday,
        "thu" | "thur" | "thurs" | "thursday" => Weekday::Thursday,
        "fri" | "friday" => Weekday::Friday,
        "sat" | "saturday" => Weekday::Saturday,
        "sun" | "sunday" => Weekday::Sunday,
        _ => return None,
    })
}

fn default_time() -> Time {
    Time::new(DEFAULT_HOUR, 0, 0, 0).unwrap_or(Time::midnight())
}

/// `18:30`, `18.30`, `18h`, `9am`, `9:15pm`, `noon`, `midnight`.
fn time_of_day(w: &str) -> Option<Time> {
    let w = w.trim_end_matches([',', '.']);
    match w {
        "noon" | "midday" => return Time::new(12, 0, 0, 0).ok(),
        "midnight" => return Some(Time::midnight()),
        _ => {}
    }
    let (clock, meridiem) = if let Some(c) = w.strip_suffix("am").or(w.strip_suffix("a.m")) {
        (c, Some(false))
    } else if let Some(c) = w.strip_suffix("pm").or(w.strip_suffix("p.m")) {
        (c, Some(true))
    } else {
        (w.strip_suffix('h').unwrap_or(w), None)
    };
    let (h, m) = match clock.split_once([':', '.']) {
        Some((h, m)) if m.len() == 2 => (h.parse::<i8>().ok()?, m.parse::<i8>().ok()?),
        Some(_) => return None,
        // A bare number is a time only with am/pm ("at 9" is ambiguous).
        None if meridiem.is_some() => (clock.parse::<i8>().ok()?, 0),
        None => return None,
    };
    // Digits only: `i8::parse` accepts a sign.
    if h < 0 || m < 0 {
        return None;
    }
    let h = match meridiem {
        Some(_) if !(1..=12).contains(&h) => return None,
        Some(false) => h % 12,
        Some(true) => h % 12 + 12,
        None => h,
    };
    Time::new(h, m, 0, 0).ok()
}

fn at(d: Date, t: Time, tz: &TimeZone) -> Result<ZonedDateTime, WhenError> {
    DateTime::from_parts(d, t)
        .to_zoned_datetime(tz.clone())
        .map_err(|_| WhenError::TooFar)
}

/// `Thu 24 Dec 2026 18:00 CET`: a due time as the owner reads it.
pub fn describe(due: Timestamp, tz: &TimeZone) -> String {
    due.to_zoned_datetime(tz.clone())
        .strftime("%a %-d %b %Y %H:%M %Z")
        .to_string()
}

/// The owner's time zone by its IANA name; `None` when this box's time
/// zone database does not know it.
pub fn time_zone(name: &str) -> Option<TimeZone> {
    TimeZone::get(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wednesday 25 November 2026, 14:10 in Berlin (CET, UTC+1).
    fn now() -> ZonedDateTime {
        DateTime::from_parts(
            Date::new(2026, 11, 25).unwrap(),
            Time::new(14, 10, 0, 0).unwrap(),
        )
        .to_zoned_datetime(TimeZone::get("Europe/Berlin").unwrap())
        .unwrap()
    }

    fn due(args: &str) -> String {
        let r = parse(args, &now()).unwrap_or_else(|e| panic!("{args}: {e}"));
        format!("{} | {}", describe(r.due, now().time_zone()), r.what)
    }

    #[test]
    fn the_forms_the_issue_names() {
        assert_eq!(
            due("in 10 minutes call Anna"),
            "Wed 25 Nov 2026 14:20 CET | call Anna"
        );
        assert_eq!(due("at 18:30 dinner"), "Wed 25 Nov 2026 18:30 CET | dinner");
        assert_eq!(due("tomorrow 9am bins"), "Thu 26 Nov 2026 09:00 CET | bins");
        assert_eq!(due("monday 8:00 gym"), "Mon 30 Nov 2026 08:00 CET | gym");
        assert_eq!(
            due("2026-12-24 18:00 presents"),
            "Thu 24 Dec 2026 18:00 CET | presents"
        );
    }

    #[test]
    fn more_ways_to_say_it() {
        assert_eq!(due("in 1 minute test"), "Wed 25 Nov 2026 14:11 CET | test");
        assert_eq!(due("in 2h to call"), "Wed 25 Nov 2026 16:10 CET | call");
        assert_eq!(
            due("in 1 hour and 30 minutes x"),
            "Wed 25 Nov 2026 15:40 CET | x"
        );
        assert_eq!(due("in a day x"), "Thu 26 Nov 2026 14:10 CET | x");
        assert_eq!(due("at 9 pm x"), "Wed 25 Nov 2026 21:00 CET | x");
        assert_eq!(due("at 12am x"), "Thu 26 Nov 2026 00:00 CET | x");
        assert_eq!(due("at 9:15pm x"), "Wed 25 Nov 2026 21:15 CET | x");
        assert_eq!(due("tomorrow x"), "Thu 26 Nov 2026 09:00 CET | x");
        assert_eq!(due("on friday at noon x"), "Fri 27 Nov 2026 12:00 CET | x");
        // A time already gone today is tomorrow's.
        assert_eq!(due("at 8:00 x"), "Thu 26 Nov 2026 08:00 CET | x");
        // Today's weekday with its time still ahead is today; passed is next week.
        assert_eq!(due("wednesday 18:00 x"), "Wed 25 Nov 2026 18:00 CET | x");
        assert_eq!(due("wednesday 8:00 x"), "Wed 2 Dec 2026 08:00 CET | x");
        // Summer time is the zone's business.
        assert_eq!(due("2027-07-01 08:00 x"), "Thu 1 Jul 2027 08:00 CEST | x");
    }

    #[test]
    fn what_is_refused() {
        let err = |a: &str| parse(a, &now()).unwrap_err();
        assert_eq!(err(""), WhenError::NoTime);
        assert_eq!(err("call Anna"), WhenError::NoTime);
        assert_eq!(err("in 10 minutes"), WhenError::NoText);
        assert_eq!(err("in ten minutes x"), WhenError::NoTime);
        assert!(matches!(err("2026-01-01 10:00 x"), WhenError::Past(_)));
        assert!(matches!(err("today 9:00 x"), WhenError::Past(_)));
        assert_eq!(err("at 25:00 x"), WhenError::BadTime("25:00".into()));
        assert_eq!(err("at 13pm x"), WhenError::BadTime("13pm".into()));
        assert_eq!(err("2026-02-30 x"), WhenError::BadDate("2026-02-30".into()));
        assert_eq!(err("in 9999 weeks x"), WhenError::TooFar);
        assert_eq!(err("in 99999 minutes"), WhenError::NoText);
    }
}
