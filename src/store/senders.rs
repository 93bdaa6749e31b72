//! The sender policy's memory: the owner's approvals and denials, the open
//! questions (a code per unknown sender, at most a few at a time, expiring),
//! LID -> phone number mappings, and per-reason counts of dropped messages.
//! Nothing here holds message content.

use rusqlite::{OptionalExtension, params};

use super::queue::insert_outgoing;
use super::{Reply, Store, StoreError};
use crate::policy::Decision;

/// The outcome of asking the owner about a sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// A new question: the notice to hand to the owner.
    New(Reply),
    /// This sender's question is already open.
    AlreadyOpen,
    /// Too many open questions; this sender is not asked about.
    TooMany,
}

/// Limits on open questions.
#[derive(Debug, Clone, Copy)]
pub struct QuestionRules {
    pub max_open: u64,
    pub ttl_ms: i64,
}

impl Store {
    /// What the owner decided about `identity` (a policy key).
    pub fn sender_decision(&self, identity: &str) -> Result<Option<Decision>, StoreError> {
        let d: Option<String> = self
            .conn
            .prepare_cached("SELECT decision FROM senders WHERE identity = ?1")?
            .query_row([identity], |r| r.get(0))
            .optional()?;
        Ok(d.map(|d| {
            if d == "approved" {
                Decision::Approved
            } else {
                Decision::Denied
            }
        }))
    }

    /// Remembers that LID `lid` is phone number `phone` (digits).
    pub fn learn_lid(&mut self, lid: &str, phone: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO lid_map (lid, phone) VALUES (?1, ?2)
                 ON CONFLICT (lid) DO UPDATE SET phone = excluded.phone",
            )?
            .execute([lid, phone])?;
        Ok(())
    }

    pub fn phone_for_lid(&self, lid: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT phone FROM lid_map WHERE lid = ?1")?
            .query_row([lid], |r| r.get(0))
            .optional()?)
    }

    /// Opens a question about `identity` under `code`, and puts `notice`
    /// (code included) into `owner_chat`'s outbox, in one transaction.
    pub fn ask_about_sender(
        &mut self,
        identity: &str,
        code: &str,
        now_ms: i64,
        rules: QuestionRules,
        owner_chat: &str,
        notice: &str,
    ) -> Result<Asked, StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM sender_requests WHERE created_ms <= ?1",
            [now_ms - rules.ttl_ms],
        )?;
        let open: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM sender_requests WHERE identity = ?1",
                [identity],
                |r| r.get(0),
            )
            .optional()?;
        if open.is_some() {
            tx.commit()?;
            return Ok(Asked::AlreadyOpen);
        }
        let n: i64 = tx.query_row("SELECT count(*) FROM sender_requests", [], |r| r.get(0))?;
        if n as u64 >= rules.max_open {
            tx.commit()?;
            return Ok(Asked::TooMany);
        }
        tx.execute(
            "INSERT INTO sender_requests (code, identity, created_ms) VALUES (?1, ?2, ?3)",
            params![code, identity, now_ms],
        )?;
        let out_id = insert_outgoing(&tx, owner_chat, None, notice)?;
        tx.commit()?;
        Ok(Asked::New(Reply {
            out_id,
            chat_id: owner_chat.to_string(),
            reply_to: None,
            text: notice.to_string(),
        }))
    }

    /// Settles the open question `code` with `decision`; the sender's
    /// identity, or `None` when no such question is open (or it expired).
    pub fn settle_sender(
        &mut self,
        code: &str,
        decision: Decision,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let tx = self.conn.transaction()?;
        let identity: Option<String> = tx
            .query_row(
                "DELETE FROM sender_requests WHERE code = ?1 AND created_ms > ?2
                 RETURNING identity",
                params![code, now_ms - ttl_ms],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = &identity {
            let d = match decision {
                Decision::Approved => "approved",
                Decision::Denied => "denied",
            };
            tx.execute(
                "INSERT INTO senders (identity, decision, decided_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (identity) DO UPDATE SET decision = excluded.decision,
                     decided_ms = excluded.decided_ms",
                params![id, d, now_ms],
            )?;
        }
        tx.commit()?;
        Ok(identity)
    }

    /// Counts one dropped message under `reason`.
    pub fn count_dropped(&mut self, reason: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO dropped (reason, n) VALUES (?1, 1)
                 ON CONFLICT (reason) DO UPDATE SET n = n + 1",
            )?
            .execute([reason])?;
        Ok(())
    }

    /// Questions about unknown senders still open at `now_ms` (the owner
    /// has not answered and they have not expired).
    pub fn open_questions(&self, now_ms: i64, rules: QuestionRules) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM sender_requests WHERE created_ms > ?1")?
            .query_row([now_ms - rules.ttl_ms], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Dropped messages per reason.
    pub fn dropped(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT reason, n FROM dropped ORDER BY reason")?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_are_asked_once_limited_and_expire() {
        let (_dir, mut s) = crate::store::temp_store();
        let rules = QuestionRules {
            max_open: 2,
            ttl_ms: 1000,
        };
        let ask = |s: &mut Store, who: &str, code: &str, now: i64| {
            s.ask_about_sender(who, code, now, rules, "owner@s.whatsapp.net", "who?")
                .unwrap()
        };
        assert!(matches!(ask(&mut s, "+1", "AAAAA", 0), Asked::New(_)));
        assert_eq!(ask(&mut s, "+1", "BBBBB", 10), Asked::AlreadyOpen);
        assert!(matches!(ask(&mut s, "+2", "CCCCC", 20), Asked::New(_)));
        assert_eq!(ask(&mut s, "+3", "DDDDD", 30), Asked::TooMany);
        assert_eq!(s.unsent_replies().unwrap().len(), 2, "one notice each");
        // +1's question expires; a new one may be asked.
        assert!(matches!(ask(&mut s, "+3", "EEEEE", 1005), Asked::New(_)));
        assert_eq!(
            s.settle_sender("AAAAA", Decision::Approved, 1006, 1000)
                .unwrap(),
            None,
            "expired"
        );
        assert_eq!(
            s.settle_sender("EEEEE", Decision::Denied, 1006, 1000)
                .unwrap(),
            Some("+3".into())
        );
        assert_eq!(s.sender_decision("+3").unwrap(), Some(Decision::Denied));
        assert_eq!(s.sender_decision("+2").unwrap(), None);

        s.learn_lid("555", "4411").unwrap();
        assert_eq!(s.phone_for_lid("555").unwrap(), Some("4411".into()));
        s.count_dropped("denied").unwrap();
        s.count_dropped("denied").unwrap();
        assert_eq!(s.dropped().unwrap(), vec![("denied".into(), 2)]);
    }
}
