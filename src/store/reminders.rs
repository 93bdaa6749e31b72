//! Reminders and the daemon's persistent switches. A reminder fires in one
//! transaction that puts its text into the outbox and marks it fired, so a
//! crash either leaves it pending (it fires on the next start) or fired
//! with exactly one message (which is re-sent until delivered).

use rusqlite::{OptionalExtension, params};

use super::queue::insert_outgoing;
use super::{Reply, Store, StoreError};
use crate::audit::{Action, Actor, Entry};
use crate::clock::now_ms;

/// A reminder's number, as `/reminders` lists it and `/cancel` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReminderId(pub i64);

/// A pending reminder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderRow {
    pub id: ReminderId,
    /// The chat it was set in, where it fires.
    pub chat_id: String,
    pub text: String,
    pub due_ms: i64,
}

const PAUSED: &str = "paused";

impl Store {
    /// Stores a reminder for `chat`, due at `due_ms`.
    pub fn add_reminder(
        &mut self,
        chat: &str,
        text: &str,
        due_ms: i64,
    ) -> Result<ReminderId, StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO reminders (chat_id, text, due_ms, created_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![chat, text, due_ms, now_ms()])?;
        Ok(ReminderId(self.conn.last_insert_rowid()))
    }

    /// Pending reminders, soonest first.
    pub fn pending_reminders(&self) -> Result<Vec<ReminderRow>, StoreError> {
        self.reminders_where("state = 'pending'", i64::MAX)
    }

    /// How many reminders are pending.
    pub fn pending_reminder_count(&self) -> Result<u64, StoreError> {
        self.count("SELECT count(*) FROM reminders WHERE state = 'pending'")
    }

    fn reminders_where(&self, cond: &str, due_by: i64) -> Result<Vec<ReminderRow>, StoreError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT id, chat_id, text, due_ms FROM reminders
             WHERE {cond} AND due_ms <= ?1 ORDER BY due_ms, id"
        ))?;
        let rows = st
            .query_map([due_by], |r| {
                Ok(ReminderRow {
                    id: ReminderId(r.get(0)?),
                    chat_id: r.get(1)?,
                    text: r.get(2)?,
                    due_ms: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Cancels a pending reminder; false when there is none with that id.
    pub fn cancel_reminder(&mut self, id: ReminderId) -> Result<bool, StoreError> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE reminders SET state = 'cancelled' WHERE id = ?1 AND state = 'pending'",
            )?
            .execute([id.0])?;
        Ok(n == 1)
    }

    /// When the next pending reminder is due.
    pub fn next_reminder_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT min(due_ms) FROM reminders WHERE state = 'pending'")?
            .query_row([], |r| r.get(0))
            .optional()?
            .flatten())
    }

    /// Fires every pending reminder due by `now_ms`: its message (`text`
    /// renders it) goes into the outbox of its chat, and it is marked
    /// fired, all in one transaction. Returns the messages to hand out.
    pub fn fire_due_reminders(
        &mut self,
        now_ms: i64,
        text: impl Fn(&[ReminderRow]) -> String,
    ) -> Result<Vec<Reply>, StoreError> {
        let due = self.reminders_where("state = 'pending'", now_ms)?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        // One message per chat, its reminders earliest first.
        let mut chats: Vec<(String, Vec<ReminderRow>)> = Vec::new();
        for r in due {
            match chats.iter_mut().find(|(c, _)| *c == r.chat_id) {
                Some((_, rs)) => rs.push(r),
                None => chats.push((r.chat_id.clone(), vec![r])),
            }
        }
        let tx = self.conn.transaction()?;
        let mut out = Vec::with_capacity(chats.len());
        for (chat_id, rs) in &chats {
            let body = text(rs);
            let out_id = insert_outgoing(&tx, chat_id, None, &body)?;
            for r in rs {
                tx.execute(
                    "UPDATE reminders SET state = 'fired', out_id = ?2 WHERE id = ?1",
                    params![r.id.0, out_id],
                )?;
                super::audit::append(
                    &tx,
                    now_ms,
                    &Entry::new(
                        Actor::Serve,
                        Action::ReminderFired,
                        format!("reminder {} in {}", r.id.0, r.chat_id),
                    ),
                )?;
            }
            out.push(Reply {
                out_id,
                chat_id: chat_id.clone(),
                reply_to: None,
                text: body,
            });
        }
        tx.commit()?;
        Ok(out)
    }

    /// Whether the owner paused answering (`/pause`); survives restarts.
    pub fn paused(&self) -> Result<bool, StoreError> {
        Ok(super::setting(&self.conn, PAUSED)?.as_deref() == Some("1"))
    }

    pub fn set_paused(&mut self, paused: bool) -> Result<(), StoreError> {
        super::set_setting(&self.conn, PAUSED, if paused { "1" } else { "0" })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reminders_fire_once_and_cancelled_ones_never() {
        let (_dir, mut s) = crate::store::temp_store();
        let a = s.add_reminder("cli:owner", "tea", 1_000).unwrap();
        let b = s.add_reminder("cli:owner", "bins", 3_000).unwrap();
        let c = s.add_reminder("cli:owner", "never", 2_000).unwrap();
        assert_eq!(s.next_reminder_due().unwrap(), Some(1_000));
        assert!(s.cancel_reminder(c).unwrap());
        assert!(!s.cancel_reminder(c).unwrap(), "already cancelled");
        let ids: Vec<_> = s
            .pending_reminders()
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, [a, b]);

        let fired = s
            .fire_due_reminders(2_500, |rs| format!("Reminder: {}", rs[0].text))
            .unwrap();
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].text, "Reminder: tea");
        assert_eq!(fired[0].reply_to, None);
        assert!(
            s.fire_due_reminders(2_500, |_| String::new())
                .unwrap()
                .is_empty()
        );
        assert!(!s.cancel_reminder(a).unwrap(), "fired reminders stay fired");
        assert_eq!(s.pending_reminder_count().unwrap(), 1);
        assert_eq!(s.unsent_replies().unwrap(), fired);
        assert_eq!(s.next_reminder_due().unwrap(), Some(3_000));

        assert!(!s.paused().unwrap());
        s.set_paused(true).unwrap();
        assert!(s.paused().unwrap());
        s.set_paused(false).unwrap();
        assert!(!s.paused().unwrap());
    }
}
