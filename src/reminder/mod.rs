//! Reminders' times: reads a time expression ("in 10 minutes", "in an
//! hour and a half", "at 18:30", "tomorrow morning at 7:15", "next Monday
//! at 10", "at noon", "2026-12-24 18:00") in the owner's time zone, either
//! at the start of `/remind WHEN WHAT` ([`parse`]) or anywhere in what the
//! owner wrote in words ([`find`]), and writes due times back the way a
//! person reads them.
//!
//! Pure: no store, no clock (the caller passes "now"); must not send
//! anything (the daemon fires reminders) or guess a time it cannot read
//! (an error is a question back to the owner).

mod duration;
mod when;

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ZonedDateTime};

pub use when::Words;

/// A reminder read from `/remind`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub due: Timestamp,
    /// What to remind of (the words after the time).
    pub what: String,
}

/// A time expression found in a message: when, and which words (indices
/// into [`Words`], end exclusive) said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub due: Timestamp,
    pub start: usize,
    pub end: usize,
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

/// Reminders further out than this are refused (a typo like "in 500
/// weeks" is more likely than a real need).
const MAX_AHEAD_DAYS: i64 = 3653;

/// Reads `/remind`'s arguments (`args`, the text after the command) at
/// `now` in the owner's time zone: the time first, then what to remind of.
pub fn parse(args: &str, now: &ZonedDateTime) -> Result<Request, WhenError> {
    let words = Words::new(args);
    let (due, used) = match when::at(&words, 0, now, when::Mode::Command)? {
        Some(found) => found,
        None => return Err(WhenError::NoTime),
    };
    check(&due, now)?;
    let mut rest = used;
    if words
        .norm(rest)
        .is_some_and(|w| w == "to" || w == "that" || w == "about")
    {
        rest += 1;
    }
    let what = words.original(rest, words.len());
    if what.is_empty() {
        return Err(WhenError::NoText);
    }
    Ok(Request {
        due: due.timestamp(),
        what,
    })
}

/// The time expression in `words` (a message in words: "remind me to
/// take the pizza out in 20 minutes"): the longest one that reads, the
/// first of equals. `NoTime` when none does; `Past` or `TooFar` when the
/// only ones found are out of range.
pub fn find(words: &Words, now: &ZonedDateTime) -> Result<Found, WhenError> {
    // The longest expression wins, refused or not: "today at 9:00" said
    // in the afternoon has passed, even though "at 9:00" alone would be
    // tomorrow's.
    let mut best: Option<(usize, Result<Found, WhenError>)> = None;
    for start in 0..words.len() {
        let Ok(Some((due, end))) = when::at(words, start, now, when::Mode::Prose) else {
            continue;
        };
        let len = end - start;
        let this = check(&due, now).map(|()| Found {
            due: due.timestamp(),
            start,
            end,
        });
        let better = match &best {
            None => true,
            Some((l, r)) => len > *l || (len == *l && r.is_err() && this.is_ok()),
        };
        if better {
            best = Some((len, this));
        }
    }
    best.map_or(Err(WhenError::NoTime), |(_, r)| r)
}

/// A due time must be ahead of `now` and within ten years.
fn check(due: &ZonedDateTime, now: &ZonedDateTime) -> Result<(), WhenError> {
    if due.timestamp() <= now.timestamp() {
        return Err(WhenError::Past(describe(due.timestamp(), now.time_zone())));
    }
    let limit = now
        .checked_add(Span::new().days(MAX_AHEAD_DAYS))
        .map_err(|_| WhenError::TooFar)?;
    if due.timestamp() > limit.timestamp() {
        return Err(WhenError::TooFar);
    }
    Ok(())
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
pub(crate) mod tests;
