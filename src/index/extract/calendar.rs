//! iCalendar files (`.ics`): each event becomes one record, its summary,
//! start and end in the owner's time zone, location and description, so
//! "when is the dentist?" finds the event and the answer can cite it.
//! Parsing (line unfolding, parameters, text unescaping) is the
//! `icalendar` crate's; times are converted with jiff's bundled tzdb.
//!
//! Pure: text in, records out.

use icalendar::{
    CalendarComponent, CalendarDateTime, Component, DatePerhapsTime, EventLike, Property,
};
use jiff::civil;
use jiff::tz::TimeZone;

use super::{DocumentError, Record};

/// The events of an `.ics` file, in file order. A file with no calendar
/// in it, or one the parser refuses, is malformed.
pub fn events(text: &str, zone: &TimeZone) -> Result<Vec<Record>, DocumentError> {
    let malformed = |reason: String| DocumentError::Malformed {
        format: "iCalendar",
        reason,
    };
    if !text.trim_start().starts_with("BEGIN:VCALENDAR") {
        return Err(malformed("it does not start with BEGIN:VCALENDAR".into()));
    }
    let cal: icalendar::Calendar = text.parse().map_err(malformed)?;
    let mut records = Vec::new();
    for component in &cal.components {
        let CalendarComponent::Event(e) = component else {
            continue;
        };
        let mut head = format!(
            "Event: {}",
            e.get_summary().map(str::trim).unwrap_or("(no title)")
        );
        let props = e.properties();
        let start = props.get("DTSTART").and_then(|p| when(p, zone));
        let end = props.get("DTEND").and_then(|p| when(p, zone));
        if let Some(start) = &start {
            head.push_str("\nWhen: ");
            head.push_str(&span(start, end.as_ref()));
        }
        if let Some(place) = e.get_location().map(str::trim).filter(|l| !l.is_empty()) {
            head.push_str("\nWhere: ");
            head.push_str(place);
        }
        if let Some(rule) = e.property_value("RRULE") {
            head.push_str("\nRepeats: ");
            head.push_str(rule);
        }
        let body = e
            .get_description()
            .map(|d| d.trim().to_string())
            .unwrap_or_default();
        records.push(Record { head, body });
    }
    Ok(records)
}

/// A civil date-time from its ISO form ("2026-12-03 09:00:00").
fn civil(n: impl std::fmt::Display) -> Option<civil::DateTime> {
    n.to_string().parse().ok()
}

/// A start or end: a moment, or a whole day.
#[derive(Debug, Clone, PartialEq)]
enum When {
    At(jiff::ZonedDateTime),
    Day(civil::Date),
}

/// Reads a DTSTART/DTEND property in the owner's `zone`: UTC and zoned
/// times are converted, floating times are taken as the owner's.
fn when(p: &Property, zone: &TimeZone) -> Option<When> {
    Some(match DatePerhapsTime::from_property(p)? {
        DatePerhapsTime::Date(d) => When::Day(d.to_string().parse().ok()?),
        DatePerhapsTime::DateTime(CalendarDateTime::Utc(t)) => {
            let ts = jiff::Timestamp::from_second(t.timestamp()).ok()?;
            When::At(ts.to_zoned_datetime(zone.clone()))
        }
        DatePerhapsTime::DateTime(CalendarDateTime::Floating(n)) => {
            When::At(civil(n)?.to_zoned_datetime(zone.clone()).ok()?)
        }
        DatePerhapsTime::DateTime(CalendarDateTime::WithTimezone { date_time, tzid }) => {
            // A name outside the tzdb (Outlook's "W. Europe Standard
            // Time") reads as the owner's own zone.
            let theirs = TimeZone::get(tzid.trim_matches('"')).unwrap_or_else(|_| zone.clone());
            When::At(
                civil(date_time)?
                    .to_zoned_datetime(theirs)
                    .ok()?
                    .with_time_zone(zone.clone()),
            )
        }
    })
}

/// "Thu 3 Dec 2026 09:00 to 10:00 CET", "Sat 5 Dec 2026 (all day)".
fn span(start: &When, end: Option<&When>) -> String {
    match (start, end) {
        (When::At(s), Some(When::At(e))) if s.date() == e.date() => {
            format!(
                "{} to {}",
                s.strftime("%a %-d %b %Y %H:%M"),
                e.strftime("%H:%M %Z")
            )
        }
        (When::At(s), Some(When::At(e))) => format!(
            "{} to {}",
            s.strftime("%a %-d %b %Y %H:%M %Z"),
            e.strftime("%a %-d %b %Y %H:%M %Z")
        ),
        (When::At(s), _) => s.strftime("%a %-d %b %Y %H:%M %Z").to_string(),
        (When::Day(d), end) => {
            // DTEND of an all-day event is the day after its last.
            let last = match end {
                Some(When::Day(e)) => e.yesterday().ok().filter(|l| l > d),
                _ => None,
            };
            match last {
                Some(l) => format!(
                    "{} to {} (all day)",
                    d.strftime("%a %-d %b %Y"),
                    l.strftime("%a %-d %b %Y")
                ),
                None => format!("{} (all day)", d.strftime("%a %-d %b %Y")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ICS: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
BEGIN:VEVENT\r\nUID:1\r\nSUMMARY:Dentist (Dr Weber)\r\n\
DTSTART;TZID=Europe/Berlin:20261203T090000\r\nDTEND;TZID=Europe/Berlin:20261203T093000\r\n\
LOCATION:Hauptstra\u{df}e 5\\, Berlin\r\nDESCRIPTION:Bring the insurance card.\\nCheck-up\r\n  \
and cleaning.\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:2\r\nSUMMARY:School trip\r\nDTSTART;VALUE=DATE:20261210\r\n\
DTEND;VALUE=DATE:20261212\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:3\r\nSUMMARY:Call with Sam\r\nDTSTART:20261204T170000Z\r\nEND:VEVENT\r\n\
BEGIN:VTODO\r\nUID:4\r\nSUMMARY:not an event\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";

    #[test]
    fn each_event_is_a_record_in_the_owners_zone() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let r = events(ICS, &ny).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0].head,
            "Event: Dentist (Dr Weber)\nWhen: Thu 3 Dec 2026 03:00 to 03:30 EST\n\
             Where: Hauptstra\u{df}e 5, Berlin"
        );
        assert_eq!(
            r[0].body,
            "Bring the insurance card.\nCheck-up and cleaning."
        );
        assert_eq!(
            r[1].head,
            "Event: School trip\nWhen: Thu 10 Dec 2026 to Fri 11 Dec 2026 (all day)"
        );
        assert_eq!(
            r[2].head,
            "Event: Call with Sam\nWhen: Fri 4 Dec 2026 12:00 EST"
        );
    }

    #[test]
    fn what_is_not_a_calendar_fails() {
        let z = TimeZone::UTC;
        assert!(events("hello", &z).is_err());
        assert!(events("BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY", &z).is_err());
    }
}
