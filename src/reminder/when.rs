//! The grammar of time expressions, word by word: durations after "in"
//! (or before "from now"), and days, parts of days and clock times in any
//! order ("tomorrow morning at 7:15", "at 5pm tomorrow", "next Monday at
//! 10", "on the 24th at noon"), resolved to the next matching moment in
//! the owner's time zone.
//!
//! Two modes: a `/remind` command reads its time at the start and says
//! what it could not read; prose (a message in words) is scanned from
//! every word, so only unambiguous forms count there (no "sun" for
//! Sunday, no "10.30" unless after "at").

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Span, ZonedDateTime};

use super::WhenError;
use super::duration::{number_word, relative};

/// A message cut into words: the words as written, and each one lower-case
/// with surrounding punctuation removed (what the grammar reads).
#[derive(Debug, Clone)]
pub struct Words {
    original: Vec<String>,
    norm: Vec<String>,
}

impl Words {
    pub fn new(text: &str) -> Self {
        let original: Vec<String> = text.split_whitespace().map(str::to_string).collect();
        let norm = original
            .iter()
            .map(|w| {
                w.replace('\u{2019}', "'")
                    .trim_start_matches(['(', '"', '\'', '«', '“'])
                    .trim_end_matches([',', '!', '?', ';', ')', '"', '»', '”', '…'])
                    .trim_end_matches('.')
                    .trim_end_matches(':')
                    .to_lowercase()
            })
            .collect();
        Words { original, norm }
    }

    pub fn len(&self) -> usize {
        self.norm.len()
    }

    pub fn is_empty(&self) -> bool {
        self.norm.is_empty()
    }

    /// Every word, normalised.
    pub fn norms(&self) -> impl Iterator<Item = &str> {
        self.norm.iter().map(String::as_str)
    }

    /// Word `i`, normalised; `None` past the end.
    pub fn norm(&self, i: usize) -> Option<&str> {
        self.norm.get(i).map(String::as_str)
    }

    /// Words `a..b` as written, joined by spaces, without the sentence's
    /// closing punctuation.
    pub fn original(&self, a: usize, b: usize) -> String {
        let b = b.min(self.original.len());
        if a >= b {
            return String::new();
        }
        self.original[a..b]
            .join(" ")
            .trim_end_matches(['.', ',', '!', '?', ';', ':'])
            .to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `/remind WHEN WHAT`: WHEN at the start; unreadable times are errors.
    Command,
    /// A message in words, scanned from every word: unambiguous forms only.
    Prose,
}

/// The time expression starting at word `i`: its due time and the index
/// after its last word; `None` when none starts there.
pub fn at(
    w: &Words,
    i: usize,
    now: &ZonedDateTime,
    mode: Mode,
) -> Result<Option<(ZonedDateTime, usize)>, WhenError> {
    if let Some((span, end)) = relative(w, i) {
        let due = now.checked_add(span).map_err(|_| WhenError::TooFar)?;
        // "in 3 days at 10am": whole days, then the clock time on that day.
        if span.get_days() > 0 && span.get_seconds() == 0 {
            let day = due.date();
            let midnight = zoned(day, Time::midnight(), now.time_zone())?;
            if let Ok(Some((at, end2))) = absolute(w, end, &midnight, mode)
                && at.date() == day
            {
                return Ok(Some((at, end2)));
            }
        }
        return Ok(Some((due, end)));
    }
    absolute(w, i, now, mode)
}

// ---------------------------------------------------------------------
// Days, parts of days, clock times

#[derive(Debug, Clone, Copy)]
enum Day {
    Date(Date),
    /// A weekday; `next` excludes today ("next Monday" said on a Monday is
    /// a week away, said on a Wednesday it is the coming Monday).
    Weekday {
        day: Weekday,
        next: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Morning,
    Afternoon,
    Evening,
    Night,
}

impl Part {
    fn default_hour(self) -> i8 {
        match self {
            Part::Morning => 9,
            Part::Afternoon => 15,
            Part::Evening => 18,
            Part::Night => 20,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Clock {
    /// A time that says its half of the day: 18:30, 9am, noon.
    Fixed(Time),
    /// Written with minutes and no am/pm ("7:15"): read as a 24-hour time
    /// unless a part of the day says otherwise ("this evening at 7:30").
    Dial(i8, i8),
    /// An hour in words or a bare number ("at 7", "7 o'clock", "half past
    /// 5"): morning or evening as the rest of the expression says.
    Hour(i8, i8),
}

/// When a reminder is due without a time of day ("tomorrow", "monday").
const DEFAULT_HOUR: i8 = 9;

#[derive(Default)]
struct Parts {
    day: Option<Day>,
    part: Option<Part>,
    clock: Option<Clock>,
}

/// `[on|this|next] DAY [PART] [at] TIME` in any order, each at most once.
fn absolute(
    w: &Words,
    i: usize,
    now: &ZonedDateTime,
    mode: Mode,
) -> Result<Option<(ZonedDateTime, usize)>, WhenError> {
    let today = now.date();
    let mut p = Parts::default();
    let mut j = i;
    let mut end = i;
    while let Some(word) = w.norm(j) {
        // A clock time, possibly after "at" / "by".
        if p.clock.is_none() {
            let after_at = matches!(word, "at" | "by" | "around");
            let k = if after_at { j + 1 } else { j };
            if let Some((c, used)) = clock(w, k, after_at, mode) {
                p.clock = Some(c);
                j = k + used;
                end = j;
                continue;
            }
            if after_at
                && mode == Mode::Command
                && p.day.is_none()
                && let Some(next) = w.norm(k)
                && day(w, k, today, mode)?.is_none()
            {
                return Err(WhenError::BadTime(next.to_string()));
            }
        }
        if p.day.is_none() {
            let k = if word == "on" { j + 1 } else { j };
            if let Some((d, part, used)) = day(w, k, today, mode)? {
                p.day = Some(d);
                if part.is_some() {
                    p.part = part;
                }
                j = k + used;
                end = j;
                continue;
            }
        }
        if p.part.is_none() {
            // "tomorrow morning", "this evening", "in the afternoon",
            // "7 in the evening"; a bare "morning" is not a time.
            let (k, ok) = match (word, w.norm(j + 1)) {
                ("this", _) => (j + 1, true),
                ("in", Some("the")) => (j + 2, true),
                _ => (j, p.day.is_some()),
            };
            if let Some(part) = w.norm(k).and_then(part_word)
                && ok
            {
                p.part = Some(part);
                j = k + 1;
                end = j;
                continue;
            }
        }
        break;
    }
    if p.day.is_none() && p.part.is_none() && p.clock.is_none() {
        return Ok(None);
    }
    resolve(&p, now).map(|due| Some((due, end)))
}

fn part_word(w: &str) -> Option<Part> {
    Some(match w {
        "morning" => Part::Morning,
        "afternoon" => Part::Afternoon,
        "evening" => Part::Evening,
        "night" => Part::Night,
        _ => return None,
    })
}

/// A day at word `i`: the day, a part of it the word implies ("tonight"),
/// and the words used.
fn day(
    w: &Words,
    i: usize,
    today: Date,
    mode: Mode,
) -> Result<Option<(Day, Option<Part>, usize)>, WhenError> {
    let Some(word) = w.norm(i) else {
        return Ok(None);
    };
    let next = |d: Date| d.tomorrow().map_err(|_| WhenError::TooFar);
    let found = match word {
        "today" => (Day::Date(today), None, 1),
        "tonight" => (Day::Date(today), Some(Part::Night), 1),
        "tomorrow" | "tmrw" => (Day::Date(next(today)?), None, 1),
        "the" | "day" => {
            // "the day after tomorrow", "the 24th [of December]"
            let k = i + usize::from(word == "the");
            if (w.norm(k), w.norm(k + 1), w.norm(k + 2))
                == (Some("day"), Some("after"), Some("tomorrow"))
            {
                (Day::Date(next(next(today)?)?), None, k + 3 - i)
            } else if word == "the"
                && let Some(d) = w.norm(i + 1).and_then(|x| ordinal(x, true))
            {
                let (date, used) = match (w.norm(i + 2), w.norm(i + 3).and_then(month)) {
                    (Some("of"), Some(m)) => (month_day(m, d, None, today, w.norm(i + 3))?, 4),
                    _ => (day_of_month(d, today, w.norm(i + 1))?, 2),
                };
                (Day::Date(date), None, used)
            } else {
                return Ok(None);
            }
        }
        "next" | "this" => match w.norm(i + 1).and_then(|x| weekday(x, mode)) {
            Some(day) => (
                Day::Weekday {
                    day,
                    next: word == "next",
                },
                None,
                2,
            ),
            None => return Ok(None),
        },
        w0 => {
            if let Some(day) = weekday(w0, mode) {
                (Day::Weekday { day, next: false }, None, 1)
            } else if w0.len() == 10 && w0.as_bytes()[4] == b'-' && w0.as_bytes()[7] == b'-' {
                (Day::Date(iso_date(w0)?), None, 1)
            } else if let Some(d) = ordinal(w0, false)
                && let Some(m) = w.norm(i + 1).and_then(month)
            {
                // "24 December [2026]", "24th of December"
                let year = w.norm(i + 2).and_then(year);
                let used = 2 + usize::from(year.is_some());
                (
                    Day::Date(month_day(m, d, year, today, Some(w0))?),
                    None,
                    used,
                )
            } else if let Some(d) = ordinal(w0, true)
                && w.norm(i + 1) == Some("of")
                && let Some(m) = w.norm(i + 2).and_then(month)
            {
                (Day::Date(month_day(m, d, None, today, Some(w0))?), None, 3)
            } else if let Some(m) = month(w0)
                && let Some(d) = w.norm(i + 1).and_then(|x| ordinal(x, false))
            {
                // "December 24 [2026]"; "may" only with a day after it
                let year = w.norm(i + 2).and_then(year);
                let used = 2 + usize::from(year.is_some());
                (
                    Day::Date(month_day(m, d, year, today, w.norm(i + 1))?),
                    None,
                    used,
                )
            } else {
                return Ok(None);
            }
        }
    };
    Ok(Some(found))
}

fn iso_date(w: &str) -> Result<Date, WhenError> {
    let part = |r: std::ops::Range<usize>| w.get(r).and_then(|p| p.parse::<i16>().ok());
    let bad = || WhenError::BadDate(w.to_string());
    let (y, m, d) = (
        part(0..4).ok_or_else(bad)?,
        part(5..7).ok_or_else(bad)?,
        part(8..10).ok_or_else(bad)?,
    );
    Date::new(y, m as i8, d as i8).map_err(|_| bad())
}

/// A day of the month: "24", "24th", "1st"; with `suffix_needed` only the
/// ordinal forms.
fn ordinal(w: &str, suffix_needed: bool) -> Option<i8> {
    let digits = w.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &w[digits.len()..];
    if !matches!(suffix, "st" | "nd" | "rd" | "th") && (suffix_needed || !suffix.is_empty()) {
        return None;
    }
    let d: i8 = digits.parse().ok()?;
    (1..=31).contains(&d).then_some(d)
}

fn year(w: &str) -> Option<i16> {
    let y: i16 = w.parse().ok()?;
    (2000..=2200).contains(&y).then_some(y)
}

fn month(w: &str) -> Option<i8> {
    Some(match w {
        "january" | "jan" => 1,
        "february" | "feb" => 2,
        "march" | "mar" => 3,
        "april" | "apr" => 4,
        "may" => 5,
        "june" | "jun" => 6,
        "july" | "jul" => 7,
        "august" | "aug" => 8,
        "september" | "sep" | "sept" => 9,
        "october" | "oct" => 10,
        "november" | "nov" => 11,
        "december" | "dec" => 12,
        _ => return None,
    })
}

/// `d` of month `m` in `year`, or this year's if still ahead (today
/// counts), else next year's.
fn month_day(
    m: i8,
    d: i8,
    year: Option<i16>,
    today: Date,
    written: Option<&str>,
) -> Result<Date, WhenError> {
    let bad = || WhenError::BadDate(written.unwrap_or_default().to_string());
    if let Some(y) = year {
        return Date::new(y, m, d).map_err(|_| bad());
    }
    let this = Date::new(today.year(), m, d).map_err(|_| bad())?;
    if this >= today {
        return Ok(this);
    }
    Date::new(today.year() + 1, m, d).map_err(|_| bad())
}

/// "the 24th": this month's if still ahead (today counts), else the next
/// month that has that day.
fn day_of_month(d: i8, today: Date, written: Option<&str>) -> Result<Date, WhenError> {
    let mut first = today.first_of_month();
    for _ in 0..13 {
        if let Ok(date) = Date::new(first.year(), first.month(), d)
            && date >= today
        {
            return Ok(date);
        }
        first = first
            .checked_add(Span::new().months(1))
            .map_err(|_| WhenError::TooFar)?;
    }
    Err(WhenError::BadDate(written.unwrap_or_default().to_string()))
}

/// A weekday's name; the three-letter forms only in `/remind` (in prose
/// "sun", "sat" and "wed" are words).
fn weekday(w: &str, mode: Mode) -> Option<Weekday> {
    let full = match w {
        "monday" | "mondays" => Some(Weekday::Monday),
        "tuesday" | "tues" => Some(Weekday::Tuesday),
        "wednesday" | "weds" => Some(Weekday::Wednesday),
        "thursday" | "thurs" => Some(Weekday::Thursday),
        "friday" => Some(Weekday::Friday),
        "saturday" => Some(Weekday::Saturday),
        "sunday" => Some(Weekday::Sunday),
        _ => None,
    };
    if full.is_some() || mode == Mode::Prose {
        return full;
    }
    Some(match w {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" | "thur" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
}

/// A clock time at word `i`: the time and the words used. `after_at`:
/// the word before was "at" (a bare hour is a time only then).
fn clock(w: &Words, i: usize, after_at: bool, mode: Mode) -> Option<(Clock, usize)> {
    let word = w.norm(i)?;
    match word {
        "noon" | "midday" | "lunchtime" => return Some((Clock::Fixed(hm(12, 0)?), 1)),
        "midnight" => return Some((Clock::Fixed(Time::midnight()), 1)),
        "half" | "quarter" => {
            // "half past 5", "quarter past 6", "quarter to 7"
            let (past, hour) = (w.norm(i + 1)?, w.norm(i + 2)?);
            let h = hour_word(hour)?;
            let (c, extra) = match meridiem(w.norm(i + 3)) {
                Some(pm) => (h % 12 + if pm { 12 } else { 0 }, 1),
                None => (h, 0),
            };
            let (h, m) = match (word, past) {
                ("half", "past") => (c, 30),
                ("quarter", "past") => (c, 15),
                ("quarter", "to") => ((c + 23) % 24, 45),
                _ => return None,
            };
            let clock = if extra == 1 {
                Clock::Fixed(hm(h, m)?)
            } else if h == 0 {
                Clock::Hour(12, m)
            } else {
                Clock::Hour(h, m)
            };
            return Some((clock, 3 + extra));
        }
        _ => {}
    }
    // "9 am", "9 pm", "9 o'clock"
    if let Some(h) = hour_word(word) {
        if let Some(pm) = meridiem(w.norm(i + 1)) {
            return Some((Clock::Fixed(hm(h % 12 + if pm { 12 } else { 0 }, 0)?), 2));
        }
        if matches!(w.norm(i + 1), Some("o'clock" | "oclock")) {
            return Some((Clock::Hour(h, 0), 2));
        }
    }
    // "9am", "9:15pm", "18:30", "18.30", "18h"
    if let Some(c) = clock_word(word, after_at || mode == Mode::Command) {
        return Some((c, 1));
    }
    if after_at {
        // "at 7", "at 19"
        let h: i8 = word.parse().ok()?;
        return match h {
            1..=12 => Some((Clock::Hour(h, 0), 1)),
            13..=23 => Some((Clock::Fixed(hm(h, 0)?), 1)),
            _ => None,
        };
    }
    None
}

/// An hour as a number or a word, 1 to 12.
fn hour_word(w: &str) -> Option<i8> {
    let h = match w.parse::<i8>() {
        Ok(h) => h as i64,
        Err(_) => number_word(w)?,
    };
    (1..=12).contains(&h).then_some(h as i8)
}

fn meridiem(w: Option<&str>) -> Option<bool> {
    match w? {
        "am" | "a.m" => Some(false),
        "pm" | "p.m" => Some(true),
        _ => None,
    }
}

fn hm(h: i8, m: i8) -> Option<Time> {
    Time::new(h, m, 0, 0).ok()
}

/// One word that is a time: `9am`, `9:15pm`, `18:30`; with `loose` also
/// `18.30` and `18h` (in prose those are other things: prices, heights).
fn clock_word(w: &str, loose: bool) -> Option<Clock> {
    let (digits, pm) = if let Some(c) = w.strip_suffix("am").or(w.strip_suffix("a.m")) {
        (c, Some(false))
    } else if let Some(c) = w.strip_suffix("pm").or(w.strip_suffix("p.m")) {
        (c, Some(true))
    } else if loose {
        (w.strip_suffix('h').unwrap_or(w), None)
    } else {
        (w, None)
    };
    let seps: &[char] = if loose || pm.is_some() {
        &[':', '.']
    } else {
        &[':']
    };
    let (h, m) = match digits.split_once(seps) {
        Some((h, m)) if m.len() == 2 => (h.parse::<i8>().ok()?, m.parse::<i8>().ok()?),
        Some(_) => return None,
        // A bare number is a time only with am/pm, or after "at".
        None if pm.is_some() || (loose && w.ends_with('h')) => (digits.parse::<i8>().ok()?, 0),
        None => return None,
    };
    // Digits only: `i8::parse` accepts a sign.
    if h < 0 || m < 0 || !digits.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    match pm {
        Some(_) if !(1..=12).contains(&h) => None,
        Some(pm) => Some(Clock::Fixed(hm(h % 12 + if pm { 12 } else { 0 }, m)?)),
        None if (1..=12).contains(&h) && digits.contains([':', '.']) => {
            hm(h, m)?;
            Some(Clock::Dial(h, m))
        }
        None => Some(Clock::Fixed(hm(h, m)?)),
    }
}

/// The times of day `p` may mean, in the order they are tried.
fn times(p: &Parts) -> Vec<Time> {
    let bias = |h: i8, m: i8, part: Part| -> Option<Time> {
        let h = match part {
            Part::Morning => h % 12,
            Part::Afternoon | Part::Evening => h % 12 + 12,
            // "at 11 tonight" is 23:00, "at 1 tonight" after midnight.
            Part::Night if h >= 6 => h % 12 + 12,
            Part::Night => h,
        };
        hm(h, m)
    };
    let candidates = match (p.clock, p.part) {
        (Some(Clock::Fixed(t)), _) => vec![Some(t)],
        (Some(Clock::Dial(h, m) | Clock::Hour(h, m)), Some(part)) => vec![bias(h, m, part)],
        (Some(Clock::Dial(h, m)), None) => vec![hm(h, m)],
        // A bare hour on a named day: daytime (7–11 morning, 12 noon, 1–6
        // afternoon); on no named day, whichever comes first.
        (Some(Clock::Hour(h, m)), None) if p.day.is_some() => {
            vec![hm(if (1..=6).contains(&h) { h + 12 } else { h }, m)]
        }
        (Some(Clock::Hour(h, m)), None) => vec![hm(h % 12, m), hm(h % 12 + 12, m)],
        (None, Some(part)) => vec![hm(part.default_hour(), 0)],
        (None, None) => vec![hm(DEFAULT_HOUR, 0)],
    };
    candidates.into_iter().flatten().collect()
}

/// The first moment matching `p` after `now`; when the one day it names
/// is already over at those times, the first of them (in the past).
fn resolve(p: &Parts, now: &ZonedDateTime) -> Result<ZonedDateTime, WhenError> {
    let tz = now.time_zone().clone();
    let today = now.date();
    let times = times(p);
    let days: Vec<Date> = match p.day {
        Some(Day::Date(d)) => vec![d],
        Some(Day::Weekday { day, next }) => {
            let first = if today.weekday() == day && !next {
                today
            } else {
                today.nth_weekday(1, day).map_err(|_| WhenError::TooFar)?
            };
            let second = first.nth_weekday(1, day).map_err(|_| WhenError::TooFar)?;
            vec![first, second]
        }
        None => {
            let t1 = today.tomorrow().map_err(|_| WhenError::TooFar)?;
            vec![today, t1]
        }
    };
    let mut first = None;
    // Earliest future moment over the allowed days and times: candidate
    // days are in order, so the first day with a future time wins.
    for d in &days {
        let mut best: Option<ZonedDateTime> = None;
        for t in &times {
            let z = zoned(*d, *t, &tz)?;
            first.get_or_insert_with(|| z.clone());
            if z.timestamp() > now.timestamp()
                && best.as_ref().is_none_or(|b| z.timestamp() < b.timestamp())
            {
                best = Some(z);
            }
        }
        if let Some(b) = best {
            return Ok(b);
        }
        // A part of the day on no named day ("this evening") is today's.
        if p.day.is_none() && p.part.is_some() && p.clock.is_none() {
            break;
        }
    }
    // Nothing ahead: the first moment it meant (the caller says it has
    // passed).
    first.ok_or(WhenError::NoTime)
}

fn zoned(d: Date, t: Time, tz: &TimeZone) -> Result<ZonedDateTime, WhenError> {
    DateTime::from_parts(d, t)
        .to_zoned_datetime(tz.clone())
        .map_err(|_| WhenError::TooFar)
}
