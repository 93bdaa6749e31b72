//! Tests of the time grammar: `/remind`'s forms and times found in prose.

use super::*;
use jiff::civil::{Date, DateTime, Time};

/// Wednesday 25 November 2026, 14:10 in Berlin (CET, UTC+1).
pub(crate) fn now() -> ZonedDateTime {
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
    assert_eq!(err("in zero minutes x"), WhenError::NoTime);
    assert!(matches!(err("2026-01-01 10:00 x"), WhenError::Past(_)));
    assert!(matches!(err("today 9:00 x"), WhenError::Past(_)));
    assert_eq!(err("at 25:00 x"), WhenError::BadTime("25:00".into()));
    assert_eq!(err("at 13pm x"), WhenError::BadTime("13pm".into()));
    assert_eq!(err("2026-02-30 x"), WhenError::BadDate("2026-02-30".into()));
    assert_eq!(err("in 9999 weeks x"), WhenError::TooFar);
    assert_eq!(err("in 99999 minutes"), WhenError::NoText);
}

/// The time found in a message and the words that said it.
fn found(text: &str) -> String {
    found_at(text, &now())
}

fn found_at(text: &str, now: &ZonedDateTime) -> String {
    let w = Words::new(text);
    match find(&w, now) {
        Ok(f) => format!(
            "{} | {}",
            describe(f.due, now.time_zone()),
            w.original(f.start, f.end)
        ),
        Err(e) => format!("error: {e}"),
    }
}

#[test]
fn what_people_say() {
    assert_eq!(
        found("remind me in 20 minutes to take the pizza out"),
        "Wed 25 Nov 2026 14:30 CET | in 20 minutes"
    );
    assert_eq!(
        found("remind me to take the pizza out in twenty minutes"),
        "Wed 25 Nov 2026 14:30 CET | in twenty minutes"
    );
    assert_eq!(
        found("in an hour and a half remind me to call"),
        "Wed 25 Nov 2026 15:40 CET | in an hour and a half"
    );
    assert_eq!(
        found("in half an hour x"),
        "Wed 25 Nov 2026 14:40 CET | in half an hour"
    );
    assert_eq!(
        found("in 1.5 hours x"),
        "Wed 25 Nov 2026 15:40 CET | in 1.5 hours"
    );
    assert_eq!(
        found("in a quarter of an hour x"),
        "Wed 25 Nov 2026 14:25 CET | in a quarter of an hour"
    );
    assert_eq!(
        found("forty-five minutes from now"),
        "Wed 25 Nov 2026 14:55 CET | forty-five minutes from now"
    );
    assert_eq!(
        found("ping me in an hour about the dentist"),
        "Wed 25 Nov 2026 15:10 CET | in an hour"
    );
    assert_eq!(
        found("don't let me forget to pay the bill tomorrow at noon"),
        "Thu 26 Nov 2026 12:00 CET | tomorrow at noon"
    );
    assert_eq!(
        found("tomorrow morning at 7:15 the car"),
        "Thu 26 Nov 2026 07:15 CET | tomorrow morning at 7:15"
    );
    assert_eq!(
        found("next Monday at 10 dentist"),
        "Mon 30 Nov 2026 10:00 CET | next Monday at 10"
    );
    assert_eq!(
        found("at 5pm tomorrow call mum"),
        "Thu 26 Nov 2026 17:00 CET | at 5pm tomorrow"
    );
    assert_eq!(
        found("call mum at noon"),
        "Wed 25 Nov 2026 12:00 CET | at noon".replace("Wed 25", "Thu 26")
    );
    assert_eq!(
        found("this evening to water the plants"),
        "Wed 25 Nov 2026 18:00 CET | this evening"
    );
    assert_eq!(
        found("tonight at 8 bins"),
        "Wed 25 Nov 2026 20:00 CET | tonight at 8"
    );
    assert_eq!(
        found("at 7 in the evening"),
        "Wed 25 Nov 2026 19:00 CET | at 7 in the evening"
    );
    // A bare hour on no day: the next time the clock shows it.
    assert_eq!(found("at 7 call"), "Wed 25 Nov 2026 19:00 CET | at 7");
    assert_eq!(found("at 3 call"), "Wed 25 Nov 2026 15:00 CET | at 3");
    // On a named day, daytime.
    assert_eq!(
        found("friday at 4 x"),
        "Fri 27 Nov 2026 16:00 CET | friday at 4"
    );
    assert_eq!(
        found("on the 24th at 18:00"),
        "Thu 24 Dec 2026 18:00 CET | on the 24th at 18:00"
    );
    assert_eq!(
        found("on 24 December x"),
        "Thu 24 Dec 2026 09:00 CET | on 24 December"
    );
    assert_eq!(
        found("december 1st at half past 5"),
        "Tue 1 Dec 2026 17:30 CET | december 1st at half past 5"
    );
    assert_eq!(
        found("at quarter to 6 x"),
        "Wed 25 Nov 2026 17:45 CET | at quarter to 6"
    );
    assert_eq!(
        found("the day after tomorrow x"),
        "Fri 27 Nov 2026 09:00 CET | the day after tomorrow"
    );
    assert_eq!(
        found("in two days x"),
        "Fri 27 Nov 2026 14:10 CET | in two days"
    );
    assert_eq!(
        found("in 3 days at 10am x"),
        "Sat 28 Nov 2026 10:00 CET | in 3 days at 10am"
    );
    assert_eq!(
        found("in a week at noon x"),
        "Wed 2 Dec 2026 12:00 CET | in a week at noon"
    );
    assert_eq!(
        found("at 9 o'clock tomorrow"),
        "Thu 26 Nov 2026 09:00 CET | at 9 o'clock tomorrow"
    );
}

#[test]
fn prose_without_a_time() {
    for text in [
        "remind me to call Anna",
        "put the chair in the sun",
        "it costs 10.30 now",
        "the morning show was good",
        "I may go",
        "in the garden",
    ] {
        assert_eq!(
            found(text),
            "error: when? e.g. /remind in 10 minutes call Anna, /remind tomorrow 9am bins",
            "{text}"
        );
    }
    assert!(
        found("remind me today at 9:00 to x")
            .starts_with("error: Wed 25 Nov 2026 09:00 CET has already passed")
    );
}

#[test]
fn across_a_dst_change() {
    // Saturday 24 October 2026 20:00 in New York (EDT); clocks go back on
    // Sunday 1 November 2026.
    let ny = DateTime::from_parts(
        Date::new(2026, 10, 31).unwrap(),
        Time::new(20, 0, 0, 0).unwrap(),
    )
    .to_zoned_datetime(TimeZone::get("America/New_York").unwrap())
    .unwrap();
    assert_eq!(
        found_at("tomorrow at 9am x", &ny),
        "Sun 1 Nov 2026 09:00 EST | tomorrow at 9am"
    );
    // Six hours of real time: 02:00 EDT is 01:00 EST.
    assert_eq!(
        found_at("in 6 hours x", &ny),
        "Sun 1 Nov 2026 01:00 EST | in 6 hours"
    );
    assert_eq!(
        found_at("in 2 days x", &ny),
        "Mon 2 Nov 2026 20:00 EST | in 2 days"
    );
}
