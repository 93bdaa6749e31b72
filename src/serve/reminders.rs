//! The reminder clock: a task that sleeps until the next reminder is due
//! (woken early when one is added or cancelled, and at least every
//! [`TICK`], because the wall clock of a box without a real-time clock
//! jumps when it syncs), then fires what is due through the outbox, the
//! same path replies take. A reminder that came due while Hearth was not
//! running fires on start with a note that it is late; several due in one
//! chat at once (a box that was off, or whose clock was just set) come as
//! one message. Nothing fires while the clock is not trusted
//! ([`crate::timesync`]): a Pi boots at a stale time and jumps when network
//! time arrives.
//!
//! Must not hold SQL (the store fires reminders in one transaction).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Event, Shared};
use crate::reminder;
use crate::store::ReminderRow;

/// The longest the clock sleeps between looks.
const TICK: Duration = Duration::from_secs(10);

/// A reminder firing more than this after its time says it is late.
const LATE_AFTER_MS: i64 = 60_000;

/// Runs until `shutdown` is cancelled.
pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut waiting = false;
    loop {
        match shared.clock.check() {
            Err(why) => {
                if !waiting {
                    tracing::warn!(reason = %why, "reminders wait for a trusted clock");
                    waiting = true;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(TICK) => {}
                }
                continue;
            }
            Ok(()) if waiting => {
                tracing::info!("the clock is trusted; reminders fire");
                waiting = false;
            }
            Ok(()) => {}
        }
        let s = shared.clone();
        let fired = tokio::task::spawn_blocking(move || {
            let now = crate::clock::now_ms();
            let tz = s.time_zone.clone();
            let fired = s
                .store()
                .fire_due_reminders(now, |rs| message(rs, now, &tz));
            let next = s.store().next_reminder_due();
            (fired, next)
        })
        .await;
        let next = match fired {
            Ok((Ok(replies), next)) => {
                for r in replies {
                    tracing::info!(out_id = r.out_id, "reminder fired");
                    let _ = shared.events.send(Event::Reply(r));
                }
                next.unwrap_or_else(|e| {
                    tracing::error!(error = %e, "reading reminders failed");
                    None
                })
            }
            Ok((Err(e), _)) => {
                tracing::error!(error = %e, "firing reminders failed");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "the reminder task panicked");
                None
            }
        };
        let wait = next
            .map(|due| {
                let ms = (due - crate::clock::now_ms()).max(0) as u64;
                Duration::from_millis(ms).min(TICK)
            })
            .unwrap_or(TICK);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = shared.reminders_changed.notified() => {}
        }
    }
}

/// What the owner reads when the reminders `rs` (one chat's, due
/// earliest first) fire at `now_ms`.
pub fn message(rs: &[ReminderRow], now_ms: i64, tz: &jiff::tz::TimeZone) -> String {
    let late = |r: &ReminderRow| now_ms - r.due_ms > LATE_AFTER_MS;
    let due = |r: &ReminderRow| {
        jiff::Timestamp::from_millisecond(r.due_ms)
            .map(|t| reminder::describe(t, tz))
            .unwrap_or_default()
    };
    match rs {
        [] => String::new(),
        [r] if late(r) => format!("Reminder (late: it was due {}): {}", due(r), r.text),
        [r] => format!("Reminder: {}", r.text),
        _ => {
            let n = rs.len();
            let head = if rs.iter().any(late) {
                format!("{n} reminders came due while Hearth was off or its clock was not set yet:")
            } else {
                format!("{n} reminders:")
            };
            let lines: Vec<String> = rs
                .iter()
                .map(|r| {
                    if late(r) {
                        format!("• {} (due {})", r.text, due(r))
                    } else {
                        format!("• {}", r.text)
                    }
                })
                .collect();
            format!("{head}\n{}", lines.join("\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ReminderId;

    #[test]
    fn late_reminders_say_so() {
        let r = ReminderRow {
            id: ReminderId(1),
            chat_id: "cli:owner".into(),
            text: "tea".into(),
            due_ms: 1_796_000_000_000,
        };
        let tz = jiff::tz::TimeZone::UTC;
        let one = std::slice::from_ref(&r);
        assert_eq!(message(one, r.due_ms + 500, &tz), "Reminder: tea");
        let late = message(one, r.due_ms + 3_600_000, &tz);
        assert!(late.starts_with("Reminder (late: it was due "), "{late}");
        assert!(late.ends_with("): tea"), "{late}");
    }

    #[test]
    fn reminders_due_together_come_as_one_message() {
        let r = |id, text: &str, due_ms| ReminderRow {
            id: ReminderId(id),
            chat_id: "cli:owner".into(),
            text: text.into(),
            due_ms,
        };
        let rs = [
            r(1, "tea", 1_796_000_000_000),
            r(2, "bins", 1_796_000_600_000),
        ];
        let text = message(&rs, 1_796_090_000_000, &jiff::tz::TimeZone::UTC);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("2 reminders came due"), "{text}");
        assert!(lines[1].starts_with("• tea (due "), "{text}");
        assert!(lines[2].starts_with("• bins (due "), "{text}");
    }
}
