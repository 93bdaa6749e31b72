//! Opt-in chat memory: the chats whose messages the owner chose to keep
//! for search and questions without Hearth ever answering in them, their
//! messages, and forgetting a chat (its messages, their chunks and
//! full-text entries go; `secure_delete` overwrites the pages).

use rusqlite::{OptionalExtension, params};

use super::docs::NewMessage;
use super::{Store, StoreError};

/// An opted-in chat and how many of its messages are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryChat {
    pub chat_id: String,
    pub messages: u64,
}

impl Store {
    /// Opts `chat` in; false when it already was.
    pub fn add_memory_chat(&mut self, chat: &str, now_ms: i64) -> Result<bool, StoreError> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO memory_chats (chat_id, added_ms) VALUES (?1, ?2)",
            )?
            .execute(params![chat, now_ms])?;
        Ok(n == 1)
    }

    pub fn is_memory_chat(&self, chat: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM memory_chats WHERE chat_id = ?1")?
            .query_row([chat], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// The opted-in chats, oldest first, with their message counts.
    pub fn memory_chats(&self) -> Result<Vec<MemoryChat>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT c.chat_id, (SELECT count(*) FROM messages m WHERE m.chat_id = c.chat_id)
             FROM memory_chats c ORDER BY c.added_ms, c.chat_id",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(MemoryChat {
                    chat_id: r.get(0)?,
                    messages: r.get::<_, i64>(1)? as u64,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Opts `chat` out and deletes every message stored from it (with
    /// their chunks and full-text entries), in one transaction. `None`
    /// when the chat was not opted in.
    pub fn remove_memory_chat(&mut self, chat: &str) -> Result<Option<u64>, StoreError> {
        let tx = self.conn.transaction()?;
        let was = tx.execute("DELETE FROM memory_chats WHERE chat_id = ?1", [chat])?;
        if was == 0 {
            tx.commit()?;
            return Ok(None);
        }
        let n = tx.execute("DELETE FROM messages WHERE chat_id = ?1", [chat])?;
        tx.commit()?;
        Ok(Some(n as u64))
    }

    /// Stores a message from an opted-in chat: kept and searchable, not
    /// queued for a reply. False for a duplicate.
    pub fn remember_message(&mut self, m: &NewMessage<'_>) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let n = super::queue::insert_inbound(&tx, m)?;
        tx.commit()?;
        Ok(n == 1)
    }

    /// Messages of opted-in chats that have no search chunks yet (chat,
    /// message id, text), oldest first.
    pub fn unembedded_memory(
        &self,
        limit: usize,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT m.chat_id, m.msg_id, m.text FROM messages m
             JOIN memory_chats c ON c.chat_id = m.chat_id
             WHERE NOT EXISTS (SELECT 1 FROM chunks k WHERE k.message_id = m.id)
               AND NOT EXISTS (SELECT 1 FROM voice_notes v WHERE v.message_id = m.id)
             ORDER BY m.id LIMIT ?1",
        )?;
        let rows = st
            .query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewChunk, temp_store};

    use crate::store::test_message as msg;

    #[test]
    fn an_opted_in_chat_is_kept_unqueued_and_forgotten_whole() {
        let (_d, mut s) = temp_store();
        let anna = "447009001111@s.whatsapp.net";
        assert!(s.add_memory_chat(anna, 1).unwrap());
        assert!(!s.add_memory_chat(anna, 2).unwrap());
        assert!(s.is_memory_chat(anna).unwrap());
        assert!(
            s.remember_message(&msg(anna, "a1", "dinner is at 8"))
                .unwrap()
        );
        assert!(
            !s.remember_message(&msg(anna, "a1", "dinner is at 8"))
                .unwrap()
        );
        assert_eq!(s.queue_depth().unwrap(), 0, "never queued for a reply");
        let todo = s.unembedded_memory(10).unwrap();
        assert_eq!(
            todo,
            vec![(anna.into(), "a1".into(), "dinner is at 8".into())]
        );
        s.index_message(
            anna,
            "a1",
            &[NewChunk {
                text: "dinner is at 8".into(),
                embedding: vec![0.0; 4],
            }],
        )
        .unwrap();
        assert!(s.unembedded_memory(10).unwrap().is_empty());
        assert_eq!(
            s.memory_chats().unwrap(),
            vec![MemoryChat {
                chat_id: anna.into(),
                messages: 1
            }]
        );
        assert_eq!(s.remove_memory_chat(anna).unwrap(), Some(1));
        assert_eq!(s.remove_memory_chat(anna).unwrap(), None);
        assert!(s.history(anna, 10).unwrap().is_empty());
        assert_eq!(s.count("SELECT count(*) FROM chunks").unwrap(), 0);
        assert_eq!(
            s.count("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'dinner'")
                .unwrap(),
            0
        );
    }
}
