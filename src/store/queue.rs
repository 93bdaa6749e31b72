//! The durable inbound queue and the outbox: an inbound message is
//! committed (message row + inbox row, one transaction) before the daemon
//! acknowledges it; a reply is recorded (outbox row + outgoing message +
//! inbox marked answered, one transaction) before it is handed to the
//! bridge, and stays "unsent" until the bridge confirms it. A crash at any
//! point leaves each inbound message either pending (it will be answered)
//! or answered with exactly one reply (which will be re-sent, never
//! regenerated).

use rusqlite::{OptionalExtension, params};

use super::{NewMessage, Store, StoreError};
use crate::clock::now_ms;

/// An inbound message waiting for its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The message's row (arrival order across all chats).
    pub row: i64,
    pub chat_id: String,
    pub msg_id: String,
    pub sender: String,
    pub text: String,
    pub ts_ms: i64,
    /// Where the sender's own typing begins in `text` (see
    /// [`NewMessage::typed_from`]).
    pub typed_from: Option<usize>,
}

impl Pending {
    /// The words the sender typed themselves, if any part of the text is
    /// theirs: never a quote, a forwarded message or a media note.
    pub fn typed(&self) -> Option<&str> {
        self.text.get(self.typed_from?..)
    }
}

/// A recorded reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub out_id: i64,
    pub chat_id: String,
    pub reply_to: Option<String>,
    pub text: String,
}

/// One turn of a chat's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub outgoing: bool,
    pub text: String,
}

/// Puts `text` into the outbox and `chat`'s history (inside the caller's
/// transaction); `answers` is the inbound message's row and id when it is a
/// reply. Returns the outbox id.
pub(super) fn insert_outgoing(
    tx: &rusqlite::Transaction<'_>,
    chat: &str,
    answers: Option<(i64, &str)>,
    text: &str,
) -> Result<i64, StoreError> {
    let now = now_ms();
    // Never an id used before, even by a row since erased: the bridge
    // drops ids it already delivered.
    let out_id: i64 = tx.query_row(
        "UPDATE outbox_seq SET n = max(n, (SELECT coalesce(max(id), 0) FROM outbox)) + 1
         RETURNING n",
        [],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO outbox (id, chat_id, inbound, reply_to, text, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            out_id,
            chat,
            answers.map(|a| a.0),
            answers.map(|a| a.1),
            text,
            now
        ],
    )?;
    // A reply is never dated before the message it answers: that one
    // carries WhatsApp's time, this box's clock may still be unset.
    let dated = match answers {
        Some((row, _)) => tx
            .query_row(
                "SELECT max(?2, ts_ms) FROM messages WHERE id = ?1",
                params![row, now],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(now),
        None => now,
    };
    tx.execute(
        "INSERT INTO messages (chat_id, msg_id, sender, outgoing, text, ts_ms)
         VALUES (?1, ?2, 'hearth', 1, ?3, ?4)",
        params![chat, format!("out:{out_id}"), text, dated],
    )?;
    Ok(out_id)
}

fn pending_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Pending> {
    Ok(Pending {
        row: r.get(0)?,
        chat_id: r.get(1)?,
        msg_id: r.get(2)?,
        sender: r.get(3)?,
        text: r.get(4)?,
        ts_ms: r.get(5)?,
        typed_from: r
            .get::<_, Option<i64>>(6)?
            .and_then(|n| usize::try_from(n).ok()),
    })
}

/// Inserts an inbound message unless the same chat and message id is
/// there already; 1 when inserted, 0 for a duplicate.
pub(super) fn insert_inbound(
    tx: &rusqlite::Transaction<'_>,
    m: &NewMessage<'_>,
) -> Result<usize, StoreError> {
    Ok(tx.execute(
        "INSERT OR IGNORE INTO messages (chat_id, msg_id, sender, outgoing, text, ts_ms, typed_from)
         VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6)",
        params![
            m.chat_id,
            m.msg_id,
            m.sender,
            m.text,
            m.ts_ms,
            m.typed_from.and_then(|n| i64::try_from(n).ok())
        ],
    )?)
}

impl Store {
    /// Stores an inbound message and queues it for a reply. Returns false
    /// when the same message (chat and message id) was accepted before:
    /// a re-sent duplicate changes nothing.
    pub fn enqueue_inbound(&mut self, m: &NewMessage<'_>) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let n = insert_inbound(&tx, m)?;
        if n == 1 {
            tx.execute(
                "INSERT INTO inbox (message_id, chat_id) VALUES (last_insert_rowid(), ?1)",
                [m.chat_id],
            )?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    /// Stores an inbound message that gets a fixed answer instead of the
    /// model's (a voice note, for now) and its answer, in one transaction.
    /// `None` when the message was accepted before.
    pub fn enqueue_answered(
        &mut self,
        m: &NewMessage<'_>,
        answer: &str,
    ) -> Result<Option<Reply>, StoreError> {
        let tx = self.conn.transaction()?;
        let n = insert_inbound(&tx, m)?;
        if n == 0 {
            tx.commit()?;
            return Ok(None);
        }
        let row = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO inbox (message_id, chat_id, answered) VALUES (?1, ?2, 1)",
            params![row, m.chat_id],
        )?;
        let out_id = insert_outgoing(&tx, m.chat_id, Some((row, m.msg_id)), answer)?;
        tx.commit()?;
        Ok(Some(Reply {
            out_id,
            chat_id: m.chat_id.to_string(),
            reply_to: Some(m.msg_id.to_string()),
            text: answer.to_string(),
        }))
    }

    /// The oldest unanswered message of every chat that has one, oldest
    /// first (the scheduler picks among them fairly).
    pub fn pending_heads(&self) -> Result<Vec<Pending>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT m.id, m.chat_id, m.msg_id, m.sender, m.text, m.ts_ms, m.typed_from
             FROM messages m JOIN (
                 SELECT min(message_id) AS head FROM inbox WHERE answered = 0 GROUP BY chat_id
             ) h ON m.id = h.head
             ORDER BY m.id",
        )?;
        let rows = st.query_map([], pending_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Every unanswered message that looks like a command (starts with
    /// `/`), oldest first: while answering is paused, the owner's
    /// `/resume` must not wait behind the messages queued before it.
    pub fn pending_commands(&self) -> Result<Vec<Pending>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT m.id, m.chat_id, m.msg_id, m.sender, m.text, m.ts_ms, m.typed_from
             FROM inbox i JOIN messages m ON m.id = i.message_id
             WHERE i.answered = 0 AND ltrim(m.text) LIKE '/%'
             ORDER BY m.id",
        )?;
        let rows = st.query_map([], pending_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Puts a message from Hearth (not a reply) into `chat`'s outbox.
    pub fn notify(&mut self, chat: &str, text: &str) -> Result<Reply, StoreError> {
        let tx = self.conn.transaction()?;
        let out_id = insert_outgoing(&tx, chat, None, text)?;
        tx.commit()?;
        Ok(Reply {
            out_id,
            chat_id: chat.to_string(),
            reply_to: None,
            text: text.to_string(),
        })
    }

    /// Replies not yet confirmed delivered.
    pub fn unsent_count(&self) -> Result<u64, StoreError> {
        self.count("SELECT count(*) FROM outbox WHERE sent_ms IS NULL")
    }

    /// Unanswered inbound messages.
    pub fn queue_depth(&self) -> Result<u64, StoreError> {
        self.count("SELECT count(*) FROM inbox WHERE answered = 0")
    }

    /// Records the reply to `inbound` (a [`Pending::row`]) and marks it
    /// answered, in one transaction. A message already answered keeps its
    /// first reply, which is returned instead.
    pub fn record_reply(&mut self, inbound: &Pending, text: &str) -> Result<Reply, StoreError> {
        let tx = self.conn.transaction()?;
        let existing = tx
            .query_row(
                "SELECT id, text FROM outbox WHERE inbound = ?1",
                [inbound.row],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?;
        let (out_id, text) = match existing {
            Some(found) => found,
            None => {
                let out_id = insert_outgoing(
                    &tx,
                    &inbound.chat_id,
                    Some((inbound.row, &inbound.msg_id)),
                    text,
                )?;
                (out_id, text.to_string())
            }
        };
        tx.execute(
            "UPDATE inbox SET answered = 1 WHERE message_id = ?1",
            [inbound.row],
        )?;
        tx.commit()?;
        Ok(Reply {
            out_id,
            chat_id: inbound.chat_id.clone(),
            reply_to: Some(inbound.msg_id.clone()),
            text,
        })
    }

    /// Replies not yet confirmed delivered, oldest first.
    pub fn unsent_replies(&self) -> Result<Vec<Reply>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, chat_id, reply_to, text FROM outbox WHERE sent_ms IS NULL ORDER BY id",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(Reply {
                    out_id: r.get(0)?,
                    chat_id: r.get(1)?,
                    reply_to: r.get(2)?,
                    text: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Starts `chat` afresh: its history begins after message row `after`
    /// (the `/new` command; it and its reply are left out too).
    pub fn restart_chat(&mut self, chat: &str, after: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO chat_starts (chat_id, after) VALUES (?1, ?2)
                 ON CONFLICT (chat_id) DO UPDATE SET after = excluded.after",
            )?
            .execute(params![chat, after])?;
        Ok(())
    }

    /// The bridge delivered `out_id`.
    pub fn mark_sent(&mut self, out_id: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE outbox SET sent_ms = ?2 WHERE id = ?1 AND sent_ms IS NULL")?
            .execute(params![out_id, now_ms()])?;
        Ok(())
    }

    /// The last `limit` answered exchanges of a chat, oldest first: every
    /// inbound message already answered and every reply, each reply right
    /// after the message it answers. Unanswered messages (the one being
    /// answered now, and any behind it) are left out.
    pub fn history(&self, chat_id: &str, limit: usize) -> Result<Vec<Turn>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT outgoing, text FROM (
                 SELECT m.outgoing, m.text, COALESCE(o.inbound, m.id) AS k
                 FROM messages m
                 LEFT JOIN outbox o ON m.outgoing = 1 AND m.msg_id = 'out:' || o.id
                 WHERE m.chat_id = ?1 AND m.id NOT IN
                     (SELECT message_id FROM inbox WHERE answered = 0)
                   AND COALESCE(o.inbound, m.id) >
                     COALESCE((SELECT after FROM chat_starts WHERE chat_id = ?1), 0)
                 ORDER BY k DESC, m.outgoing DESC LIMIT ?2
             ) ORDER BY k, outgoing",
        )?;
        let rows = st
            .query_map(params![chat_id, limit as i64], |r| {
                Ok(Turn {
                    outgoing: r.get(0)?,
                    text: r.get(1)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::test_message as msg;

    #[test]
    fn each_message_is_queued_once_and_answered_once() {
        let (_dir, mut s) = crate::store::temp_store();
        assert!(s.enqueue_inbound(&msg("a", "1", "a1")).unwrap());
        assert!(
            !s.enqueue_inbound(&msg("a", "1", "a1")).unwrap(),
            "duplicate"
        );
        assert!(s.enqueue_inbound(&msg("a", "2", "a2")).unwrap());
        assert!(s.enqueue_inbound(&msg("b", "1", "b1")).unwrap());
        assert_eq!(s.queue_depth().unwrap(), 3);
        // FIFO per chat: the heads are a1 and b1.
        let heads = s.pending_heads().unwrap();
        let texts: Vec<&str> = heads.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, ["a1", "b1"]);

        let r1 = s.record_reply(&heads[0], "reply a1").unwrap();
        // Recording again (a crash between generating and marking cannot
        // happen, but a retry must not duplicate) returns the first reply.
        let again = s.record_reply(&heads[0], "different").unwrap();
        assert_eq!(again, r1);
        assert_eq!(s.queue_depth().unwrap(), 2);
        let texts: Vec<String> = s
            .pending_heads()
            .unwrap()
            .into_iter()
            .map(|p| p.text)
            .collect();
        assert_eq!(texts, ["a2", "b1"]);

        assert_eq!(s.unsent_replies().unwrap(), vec![r1.clone()]);
        s.mark_sent(r1.out_id).unwrap();
        assert!(s.unsent_replies().unwrap().is_empty());

        let h = s.history("a", 10).unwrap();
        assert_eq!(
            h,
            vec![
                Turn {
                    outgoing: false,
                    text: "a1".into()
                },
                Turn {
                    outgoing: true,
                    text: "reply a1".into()
                },
            ]
        );
    }

    #[test]
    fn a_reply_is_not_dated_before_the_message_it_answers() {
        let (_dir, mut s) = crate::store::temp_store();
        // Dated by WhatsApp a day ahead of this box's (unset) clock: the
        // reply is not dated before it.
        let ahead = crate::clock::now_ms() + 86_400_000;
        s.enqueue_inbound(&crate::store::NewMessage {
            ts_ms: ahead,
            ..msg("c", "1", "c1")
        })
        .unwrap();
        let head = s
            .pending_heads()
            .unwrap()
            .into_iter()
            .find(|p| p.chat_id == "c");
        s.record_reply(&head.unwrap(), "reply c1").unwrap();
        let dates: Vec<i64> = s
            .export_messages()
            .unwrap()
            .iter()
            .filter(|m| m.chat_id == "c")
            .map(|m| m.ts_ms)
            .collect();
        assert_eq!(dates.len(), 2);
        assert!(dates[1] >= ahead, "{dates:?}");
    }
}
