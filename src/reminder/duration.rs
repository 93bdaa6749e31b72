//! Durations in words, as people say them: "in 10 minutes", "in an hour
//! and a half", "in 1.5 hours", "in a quarter of an hour", "forty-five
//! minutes from now", "in two days" (calendar days: the clock time stays
//! across a DST change).
//!
//! Pure: words in, a span out.

use jiff::Span;

use super::Words;

/// Seconds of each unit below a day, and whole days (calendar days, so "in
/// 2 days" keeps the clock time across a DST change).
#[derive(Debug, Clone, Copy)]
enum Unit {
    Seconds(i64),
    Days(i64),
}

fn unit(word: &str) -> Option<Unit> {
    Some(match word {
        "s" | "sec" | "secs" | "second" | "seconds" => Unit::Seconds(1),
        "m" | "min" | "mins" | "minute" | "minutes" => Unit::Seconds(60),
        "h" | "hr" | "hrs" | "hour" | "hours" => Unit::Seconds(3600),
        "d" | "day" | "days" => Unit::Days(1),
        "w" | "wk" | "wks" | "week" | "weeks" => Unit::Days(7),
        "fortnight" | "fortnights" => Unit::Days(14),
        _ => return None,
    })
}

/// A number written as a word (one to ninety-nine, the common ones).
pub(super) fn number_word(w: &str) -> Option<i64> {
    const ONES: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 8] = [
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    if let Some(n) = ONES.iter().position(|o| *o == w) {
        return (n > 0).then_some(n as i64);
    }
    if let Some(n) = TENS.iter().position(|t| *t == w) {
        return Some(20 + 10 * n as i64);
    }
    // "forty-five"
    let (t, o) = w.split_once('-')?;
    let t = TENS.iter().position(|x| *x == t)?;
    let o = ONES[1..10].iter().position(|x| *x == o)?;
    Some(20 + 10 * t as i64 + o as i64 + 1)
}

/// An amount before a unit at word `i`: (amount in quarters, words used).
/// Quarters, so "1.5 hours" and "a quarter of an hour" stay integers.
fn amount(w: &Words, i: usize) -> Option<(i64, usize)> {
    let word = w.norm(i)?;
    if let ("a", Some("couple"), Some("of")) = (word, w.norm(i + 1), w.norm(i + 2)) {
        return Some((8, 3));
    }
    if matches!(word, "a" | "an") {
        return Some((4, 1));
    }
    if let Some(n) = number_word(word) {
        // "forty five"
        if n >= 20
            && n % 10 == 0
            && let Some(o) = w.norm(i + 1).and_then(number_word).filter(|o| *o < 10)
        {
            return Some(((n + o) * 4, 2));
        }
        return Some((n * 4, 1));
    }
    if let Some((whole, frac)) = word.split_once('.') {
        let whole: i64 = whole.parse().ok()?;
        let quarters = match frac {
            "5" | "50" => 2,
            "25" => 1,
            "75" => 3,
            "0" => 0,
            _ => return None,
        };
        return (0..=99_999)
            .contains(&whole)
            .then_some((whole * 4 + quarters, 1));
    }
    let n: i64 = word.parse().ok()?;
    (1..=99_999).contains(&n).then_some((n * 4, 1))
}

/// One term of a duration at word `i`: (quarters of a unit, unit, words).
fn term(w: &Words, i: usize) -> Option<(i64, Unit, usize)> {
    let word = w.norm(i)?;
    // "half an hour", "half a day"
    if word == "half"
        && matches!(w.norm(i + 1), Some("a" | "an"))
        && let Some(u) = w.norm(i + 2).and_then(unit)
    {
        return Some((2, u, 3));
    }
    // "a quarter of an hour", "quarter of an hour", "a quarter hour"
    let q = usize::from(word == "a");
    if w.norm(i + q) == Some("quarter") {
        let mut j = i + q + 1;
        if w.norm(j) == Some("of") {
            j += 1;
        }
        if matches!(w.norm(j), Some("a" | "an")) {
            j += 1;
        }
        if let Some(u) = w.norm(j).and_then(unit) {
            return Some((1, u, j + 1 - i));
        }
    }
    // "10min", "2h"
    if let Some(d) = word.find(|c: char| !c.is_ascii_digit())
        && d > 0
        && let (Ok(n), Some(u)) = (word[..d].parse::<i64>(), unit(&word[d..]))
        && (1..=99_999).contains(&n)
    {
        return Some((n * 4, u, 1));
    }
    let (n, took) = amount(w, i)?;
    let u = unit(w.norm(i + took)?)?;
    let mut quarters = n;
    let mut used = took + 1;
    // "an hour and a half", "two hours and a quarter"
    if w.norm(i + used) == Some("and") && w.norm(i + used + 1) == Some("a") {
        match w.norm(i + used + 2) {
            Some("half") => {
                quarters += 2;
                used += 3;
            }
            Some("quarter") => {
                quarters += 1;
                used += 3;
            }
            _ => {}
        }
    }
    Some((quarters, u, used))
}

/// A duration at word `i`: the span and the index after it.
fn duration(w: &Words, i: usize) -> Option<(Span, usize)> {
    let (mut secs, mut days) = (0i64, 0i64);
    let mut j = i;
    let mut any = false;
    loop {
        let k = if any && w.norm(j) == Some("and") {
            j + 1
        } else {
            j
        };
        let Some((quarters, u, used)) = term(w, k) else {
            break;
        };
        match u {
            Unit::Seconds(s) => secs = secs.saturating_add(quarters.saturating_mul(s) / 4),
            // A fraction of a day is counted in hours.
            Unit::Days(d) if quarters % 4 == 0 => {
                days = days.saturating_add(quarters / 4 * d);
            }
            Unit::Days(d) => secs = secs.saturating_add(quarters.saturating_mul(d * 86_400) / 4),
        }
        any = true;
        j = k + used;
    }
    if !any || (secs == 0 && days == 0) {
        return None;
    }
    let span = Span::new().try_seconds(secs).ok()?.try_days(days).ok()?;
    Some((span, j))
}

/// "in DURATION" or "DURATION from now" / "DURATION later".
pub(super) fn relative(w: &Words, i: usize) -> Option<(Span, usize)> {
    if w.norm(i) == Some("in") {
        return duration(w, i + 1);
    }
    let (span, end) = duration(w, i)?;
    match (w.norm(end), w.norm(end + 1)) {
        (Some("from"), Some("now")) => Some((span, end + 2)),
        (Some("later"), _) => Some((span, end + 1)),
        _ => None,
    }
}
