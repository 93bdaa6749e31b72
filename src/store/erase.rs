//! Erasure: `/forget` and retention delete what Hearth remembers so that
//! the bytes are gone, not just unlinked. Messages go with their queue and
//! outbox rows, chunks, vectors and full-text entries in one transaction;
//! `secure_delete` (set on every connection) zeroes the freed space, the
//! full-text index is merged, and the WAL is checkpointed and truncated.
//! `Everything` also vacuums the file.

use rusqlite::params;

use super::{Store, StoreError};
use crate::audit::{Action, Actor, Entry};

/// The settings row: bridges shred media saved before this time.
const MEDIA_ERASE: &str = "media_erase_before";

/// What to forget. `before_row` is the message row of the command asking
/// (it and anything after it stay: the command is answered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Erase {
    /// The last `n` messages of `chat` (both directions).
    Last { chat: String, n: usize },
    /// A whole chat, with its reminders and `/new` mark.
    Chat(String),
    /// Every message (any chat) stamped in `[from_ms, to_ms)`, replies
    /// and reminders created then.
    Range { from_ms: i64, to_ms: i64 },
    /// Retention: messages Hearth stored before `before_ms`, in kept chats
    /// (`kept`) or in every other chat, except messages still waiting
    /// for their answer or whose reply is not delivered yet; with the
    /// finished reminders created then.
    Older { kept: bool, before_ms: i64 },
    /// Everything remembered: messages, replies, reminders, indexed
    /// folders with their documents, kept chats, learned LID mappings,
    /// open questions and counters. The sender decisions (who is
    /// approved or denied), the settings and the audit log stay.
    Everything,
}

/// How much was erased.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    pub messages: u64,
    pub replies: u64,
    pub reminders: u64,
    pub documents: u64,
}

impl Erase {
    /// For the audit log: the scope without any content.
    fn describe(&self) -> String {
        match self {
            Erase::Last { chat, n } => format!("last {n} message(s) of {chat}"),
            Erase::Chat(chat) => format!("chat {chat}"),
            Erase::Range { from_ms, to_ms } => format!(
                "messages from {} to {}",
                crate::clock::utc_second(*from_ms),
                crate::clock::utc_second(*to_ms)
            ),
            Erase::Everything => "everything".into(),
            Erase::Older { kept, before_ms } => format!(
                "{} older than {}",
                if *kept {
                    "kept chats' messages"
                } else {
                    "conversations"
                },
                crate::clock::utc_second(*before_ms)
            ),
        }
    }
}

impl Store {
    /// Erases `what` (keeping message rows from `before_row` on), audits
    /// it in the same transaction, then makes sure the bytes are gone.
    pub fn erase(
        &mut self,
        what: &Erase,
        before_row: i64,
        actor: Actor,
    ) -> Result<Erased, StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS doomed (id INTEGER PRIMARY KEY);
             DELETE FROM doomed;",
        )?;
        match what {
            Erase::Last { chat, n } => tx.execute(
                "INSERT INTO doomed SELECT id FROM messages
                 WHERE chat_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
                params![chat, before_row, *n as i64],
            )?,
            Erase::Chat(chat) => tx.execute(
                "INSERT INTO doomed SELECT id FROM messages WHERE chat_id = ?1 AND id < ?2",
                params![chat, before_row],
            )?,
            Erase::Range { from_ms, to_ms } => tx.execute(
                "INSERT INTO doomed SELECT id FROM messages
                 WHERE ts_ms >= ?1 AND ts_ms < ?2 AND id < ?3",
                params![from_ms, to_ms, before_row],
            )?,
            Erase::Everything => tx.execute(
                "INSERT INTO doomed SELECT id FROM messages WHERE id < ?1",
                [before_row],
            )?,
            Erase::Older { kept, before_ms } => tx.execute(
                "INSERT INTO doomed SELECT id FROM messages m
                 WHERE stored_ms < ?1 AND id < ?2
                   AND (chat_id IN (SELECT chat_id FROM memory_chats)) = ?3
                   AND NOT EXISTS (SELECT 1 FROM inbox i
                                   WHERE i.message_id = m.id AND i.answered = 0)
                   AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.sent_ms IS NULL
                                   AND (o.inbound = m.id OR m.msg_id = 'out:' || o.id))",
                params![before_ms, before_row, kept],
            )?,
        };
        // Replies: the outbox rows of doomed outgoing messages
        // (`out:ID`), and any reply to a doomed inbound message.
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS doomed_out (id INTEGER PRIMARY KEY);
             DELETE FROM doomed_out;
             INSERT OR IGNORE INTO doomed_out
                 SELECT CAST(substr(m.msg_id, 5) AS INTEGER) FROM messages m
                 JOIN doomed d ON d.id = m.id
                 WHERE m.outgoing = 1 AND m.msg_id LIKE 'out:%';
             INSERT OR IGNORE INTO doomed_out
                 SELECT o.id FROM outbox o JOIN doomed d ON d.id = o.inbound;
             INSERT OR IGNORE INTO doomed
                 SELECT m.id FROM messages m JOIN doomed_out o ON m.msg_id = 'out:' || o.id
                 WHERE m.outgoing = 1;",
        )?;
        let mut erased = Erased::default();
        // A reminder that fired into a forgotten reply goes with it.
        erased.reminders += tx.execute(
            "DELETE FROM reminders WHERE out_id IN (SELECT id FROM doomed_out)",
            [],
        )? as u64;
        erased.replies = tx.execute(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM doomed_out)",
            [],
        )? as u64;
        // Chunks (with their vectors and full-text entries) and queue rows
        // go by cascade.
        erased.messages = tx.execute(
            "DELETE FROM messages WHERE id IN (SELECT id FROM doomed)",
            [],
        )? as u64;
        match what {
            Erase::Last { .. } => {}
            Erase::Older { kept: true, .. } => {}
            Erase::Older {
                kept: false,
                before_ms,
            } => {
                erased.reminders += tx.execute(
                    "DELETE FROM reminders WHERE state <> 'pending' AND created_ms < ?1",
                    [before_ms],
                )? as u64;
            }
            Erase::Chat(chat) => {
                erased.reminders +=
                    tx.execute("DELETE FROM reminders WHERE chat_id = ?1", [chat])? as u64;
                tx.execute("DELETE FROM chat_starts WHERE chat_id = ?1", [chat])?;
            }
            Erase::Range { from_ms, to_ms } => {
                erased.reminders += tx.execute(
                    "DELETE FROM reminders WHERE created_ms >= ?1 AND created_ms < ?2",
                    params![from_ms, to_ms],
                )? as u64;
            }
            Erase::Everything => {
                erased.reminders += tx.execute("DELETE FROM reminders", [])? as u64;
                erased.documents = tx.execute("DELETE FROM documents", [])? as u64;
                // Chunks not tied to a surviving message or document.
                tx.execute_batch(
                    "DELETE FROM chunks WHERE doc_id IS NULL AND message_id IS NULL;
                     DELETE FROM roots;
                     DELETE FROM exclusions;
                     DELETE FROM chat_starts;
                     DELETE FROM memory_chats;
                     DELETE FROM sender_requests;
                     DELETE FROM lid_map;
                     DELETE FROM dropped;",
                )?;
                // Bridges shred media saved before now (told on every
                // connection from now on).
                super::set_setting(&tx, MEDIA_ERASE, &crate::clock::now_ms().to_string())?;
                // Replies to messages that stay (the command) stay too.
                erased.replies += tx.execute(
                    "DELETE FROM outbox WHERE inbound IS NULL OR inbound < ?1",
                    [before_row],
                )? as u64;
            }
        }
        tx.execute_batch("DELETE FROM doomed; DELETE FROM doomed_out;")?;
        let retention = matches!(what, Erase::Older { .. });
        if retention && erased == Erased::default() {
            // A daily purge that found nothing leaves no record.
            tx.commit()?;
            return Ok(erased);
        }
        super::audit::append(
            &tx,
            crate::clock::now_ms(),
            &Entry::new(
                actor,
                if retention {
                    Action::Purged
                } else {
                    Action::Erased
                },
                format!(
                    "{}: {} message(s), {} reply(ies), {} reminder(s), {} document(s)",
                    what.describe(),
                    erased.messages,
                    erased.replies,
                    erased.reminders,
                    erased.documents
                ),
            ),
        )?;
        tx.commit()?;
        self.scrub(*what == Erase::Everything)?;
        Ok(erased)
    }

    /// When the last `/forget everything` asked bridges to shred their
    /// media (ms since the epoch).
    pub fn media_erase_before(&self) -> Result<Option<i64>, StoreError> {
        Ok(super::setting(&self.conn, MEDIA_ERASE)?.and_then(|v| v.parse().ok()))
    }

    /// Forgets one indexed file (its document, chunks, vectors and
    /// full-text entries), audited; false when it was not indexed.
    pub fn forget_document(
        &mut self,
        path: &std::path::Path,
        actor: Actor,
    ) -> Result<bool, StoreError> {
        let audit = Entry::new(actor, Action::Erased, format!("file {}", path.display()));
        self.forget_path("DELETE FROM documents WHERE path = ?1", path, &audit)
    }

    /// Forgets an indexed folder: unregistered, with everything indexed
    /// from it; audited. False when it was not registered.
    pub fn forget_root(
        &mut self,
        path: &std::path::Path,
        actor: Actor,
    ) -> Result<bool, StoreError> {
        let audit = Entry::new(actor, Action::RootRemoved, path.display().to_string());
        self.forget_path("DELETE FROM roots WHERE path = ?1", path, &audit)
    }

    /// Runs `delete` for `path`; when it removed a row, audits it in the
    /// same transaction and scrubs.
    fn forget_path(
        &mut self,
        delete: &str,
        path: &std::path::Path,
        audit: &Entry,
    ) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(delete, [super::docs::path_text(path)])?;
        if n > 0 {
            super::audit::append(&tx, crate::clock::now_ms(), audit)?;
        }
        tx.commit()?;
        if n > 0 {
            self.scrub(false)?;
        }
        Ok(n > 0)
    }

    /// Retention for documents: forgets indexed documents whose file was
    /// last modified before `before_ms` (the indexer skips such files from
    /// then on). Audited when any went.
    pub fn purge_documents(&mut self, before_ms: i64, actor: Actor) -> Result<u64, StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "DELETE FROM documents WHERE mtime_ns < ?1",
            [before_ms.saturating_mul(1_000_000)],
        )? as u64;
        if n > 0 {
            let e = Entry::new(
                actor,
                Action::Purged,
                format!(
                    "{n} document(s) last changed before {}",
                    crate::clock::utc_second(before_ms)
                ),
            );
            super::audit::append(&tx, crate::clock::now_ms(), &e)?;
        }
        tx.commit()?;
        if n > 0 {
            self.scrub(false)?;
        }
        Ok(n)
    }

    /// After a deletion: merges the full-text index (its segments are
    /// rewritten without the deleted terms), optionally rebuilds the whole
    /// file, and truncates the WAL so no old page survives in it.
    pub fn scrub(&mut self, vacuum: bool) -> Result<(), StoreError> {
        self.conn
            .execute_batch("INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize');")?;
        if vacuum {
            self.conn.execute_batch("VACUUM;")?;
        }
        self.checkpoint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewChunk, NewMessage, temp_store};

    fn say(s: &mut Store, chat: &str, id: &str, text: &str, ts_ms: i64) -> i64 {
        let m = NewMessage {
            chat_id: chat,
            msg_id: id,
            sender: chat,
            outgoing: false,
            text,
            ts_ms,
            typed_from: None,
        };
        assert!(s.enqueue_inbound(&m).unwrap());
        let p = s
            .pending_heads()
            .unwrap()
            .into_iter()
            .find(|p| p.msg_id == id)
            .unwrap();
        s.record_reply(&p, &format!("reply to {text}")).unwrap();
        s.index_message(
            chat,
            id,
            &[NewChunk {
                text: text.into(),
                embedding: vec![0.5; 4],
            }],
        )
        .unwrap();
        p.row
    }

    fn texts(s: &Store, chat: &str) -> Vec<String> {
        s.history(chat, 100)
            .unwrap()
            .into_iter()
            .map(|t| t.text)
            .collect()
    }

    #[test]
    fn retention_counts_from_arrival_and_spares_waiting_or_undelivered() {
        let (_d, mut s) = temp_store();
        let day = 86_400_000;
        let now = crate::clock::now_ms();
        let msg = |id| NewMessage {
            chat_id: "c",
            msg_id: id,
            sender: "c",
            outgoing: false,
            text: id,
            // The sender's clock says 1970: it does not matter.
            ts_ms: 0,
            typed_from: None,
        };
        for id in ["old", "old-undelivered", "old-waiting", "new"] {
            s.enqueue_inbound(&msg(id)).unwrap();
        }
        assert_eq!(s.pending_heads().unwrap().len(), 1, "one head per chat");
        // Answer the first two; only `old`'s reply is delivered.
        for id in ["old", "old-undelivered"] {
            let head = s.pending_heads().unwrap().remove(0);
            assert_eq!(head.msg_id, id);
            let r = s.record_reply(&head, &format!("reply to {id}")).unwrap();
            if id == "old" {
                s.mark_sent(r.out_id).unwrap();
            }
        }
        s.conn
            .execute(
                "UPDATE messages SET stored_ms = ?1 WHERE msg_id <> 'new'",
                [now - 100 * day],
            )
            .unwrap();
        let purge = |s: &mut Store| {
            let older = Erase::Older {
                kept: false,
                before_ms: now - 90 * day,
            };
            s.erase(&older, i64::MAX, Actor::Serve).unwrap()
        };
        let e = purge(&mut s);
        assert_eq!((e.messages, e.replies), (2, 1), "old and its reply");
        assert_eq!(s.unsent_count().unwrap(), 1);
        let waiting: Vec<String> = s
            .pending_heads()
            .unwrap()
            .into_iter()
            .map(|p| p.msg_id)
            .collect();
        assert_eq!(waiting, ["old-waiting"]);
        assert_eq!(s.audit_tail(1).unwrap()[0].action, "purged");
        // Nothing more to purge: no new audit record.
        let before = s.audit_tail(1).unwrap()[0].seq;
        purge(&mut s);
        assert_eq!(s.audit_tail(1).unwrap()[0].seq, before);
    }

    #[test]
    fn a_reply_after_forgetting_gets_a_new_outbox_id() {
        // The bridge drops out_ids it delivered before: reusing the id of
        // an erased reply silenced the next one.
        let (_d, mut s) = temp_store();
        say(&mut s, "a", "1", "alpha", 1_000);
        let last = s
            .conn
            .query_row("SELECT max(id) FROM outbox", [], |r| r.get::<_, i64>(0))
            .unwrap();
        s.erase(
            &Erase::Last {
                chat: "a".into(),
                n: 10,
            },
            i64::MAX,
            Actor::Serve,
        )
        .unwrap();
        let m = NewMessage {
            chat_id: "a",
            msg_id: "2",
            sender: "a",
            outgoing: false,
            text: "bravo",
            ts_ms: 2_000,
            typed_from: None,
        };
        s.enqueue_inbound(&m).unwrap();
        let p = s.pending_heads().unwrap().remove(0);
        let r = s.record_reply(&p, "reply").unwrap();
        assert!(r.out_id > last, "{} reused {last}", r.out_id);
    }

    #[test]
    fn forgetting_takes_replies_chunks_and_full_text_with_the_messages() {
        let (_d, mut s) = temp_store();
        say(&mut s, "a", "1", "alpha", 1_000);
        say(&mut s, "a", "2", "bravo", 2_000);
        say(&mut s, "b", "3", "charlie", 3_000);
        let cmd = say(&mut s, "a", "4", "/forget last 2", 4_000);
        // The last two of chat a before the command: bravo and its reply.
        let e = s
            .erase(
                &Erase::Last {
                    chat: "a".into(),
                    n: 2,
                },
                cmd,
                Actor::Local,
            )
            .unwrap();
        assert_eq!((e.messages, e.replies), (2, 1));
        assert_eq!(
            texts(&s, "a"),
            [
                "alpha",
                "reply to alpha",
                "/forget last 2",
                "reply to /forget last 2"
            ]
        );
        assert!(s.fts_search("bravo", 10).unwrap().is_empty());
        assert_eq!(s.fts_search("charlie", 10).unwrap().len(), 1);

        let e = s
            .erase(&Erase::Chat("b".into()), i64::MAX, Actor::Local)
            .unwrap();
        assert_eq!((e.messages, e.replies), (2, 1));
        assert!(texts(&s, "b").is_empty());

        let e = s
            .erase(
                &Erase::Range {
                    from_ms: 0,
                    to_ms: 1_500,
                },
                i64::MAX,
                Actor::Local,
            )
            .unwrap();
        // Alpha's reply is stamped later, but goes with the message it answers.
        assert_eq!((e.messages, e.replies), (2, 1));
        assert!(s.fts_search("alpha", 10).unwrap().is_empty());

        s.erase(&Erase::Everything, i64::MAX, Actor::Local).unwrap();
        assert_eq!(s.stats().unwrap().messages, 0);
        assert_eq!(s.chunk_count().unwrap(), 0);
        assert_eq!(s.unsent_count().unwrap(), 0);
        let log = s.audit_tail(4).unwrap();
        assert!(log.iter().all(|r| r.action == "erased"));
        assert!(log.iter().all(|r| !r.object.contains("alpha")));
    }
}
