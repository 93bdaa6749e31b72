//! Voice notes between arrival and transcript: the audio is stored with
//! its message (one transaction, before the `ack`), read by the agent,
//! and deleted when the transcript replaces the message's text.

use rusqlite::{OptionalExtension, params};

use super::docs::NewMessage;
use super::{Store, StoreError};

/// A stored voice note not heard yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceNote {
    /// The message's row.
    pub row: i64,
    pub chat_id: String,
    pub msg_id: String,
    /// The message's stored text (the `[voice note]` placeholder with any
    /// forwarded or quote marks).
    pub text: String,
    pub audio: Vec<u8>,
    /// The sender's own note (not forwarded).
    pub own: bool,
}

impl Store {
    /// Stores a voice note's message and audio; `queue` puts it in line
    /// for a reply (an opted-in chat's is only kept). False for a
    /// duplicate.
    pub fn enqueue_voice(
        &mut self,
        m: &NewMessage<'_>,
        audio: &[u8],
        own: bool,
        queue: bool,
    ) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let n = super::queue::insert_inbound(&tx, m)?;
        if n == 1 {
            let row = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO voice_notes (message_id, audio, own) VALUES (?1, ?2, ?3)",
                params![row, audio, own],
            )?;
            if queue {
                tx.execute(
                    "INSERT INTO inbox (message_id, chat_id) VALUES (?1, ?2)",
                    params![row, m.chat_id],
                )?;
            }
        }
        tx.commit()?;
        Ok(n == 1)
    }

    /// The audio of message `row`, if it is a voice note not heard yet.
    pub fn voice_note(&self, row: i64) -> Result<Option<VoiceNote>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT v.message_id, m.chat_id, m.msg_id, m.text, v.audio, v.own
                 FROM voice_notes v JOIN messages m ON m.id = v.message_id
                 WHERE v.message_id = ?1",
                [row],
                voice_row,
            )
            .optional()?)
    }

    /// The oldest voice note of an opted-in chat not heard yet (kept chats'
    /// notes are heard while the agent is idle).
    pub fn next_kept_voice_note(&self) -> Result<Option<VoiceNote>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT v.message_id, m.chat_id, m.msg_id, m.text, v.audio, v.own
                 FROM voice_notes v JOIN messages m ON m.id = v.message_id
                 WHERE NOT EXISTS (SELECT 1 FROM inbox i WHERE i.message_id = v.message_id)
                 ORDER BY v.message_id LIMIT 1",
                [],
                voice_row,
            )
            .optional()?)
    }

    /// Replaces a voice note's text with what was heard (`typed_from`:
    /// where the sender's own words begin in it) and deletes its audio.
    pub fn set_transcript(
        &mut self,
        row: i64,
        text: &str,
        typed_from: Option<usize>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE messages SET text = ?2, typed_from = ?3 WHERE id = ?1",
            params![row, text, typed_from.and_then(|n| i64::try_from(n).ok())],
        )?;
        tx.execute("DELETE FROM voice_notes WHERE message_id = ?1", [row])?;
        tx.commit()?;
        Ok(())
    }

    /// Voice notes waiting to be heard (for `/status`).
    pub fn voice_notes_waiting(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM voice_notes", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }
}

fn voice_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VoiceNote> {
    Ok(VoiceNote {
        row: r.get(0)?,
        chat_id: r.get(1)?,
        msg_id: r.get(2)?,
        text: r.get(3)?,
        audio: r.get(4)?,
        own: r.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use crate::store::{NewMessage, temp_store};

    #[test]
    fn a_voice_note_is_kept_until_its_transcript_replaces_it() {
        let (_dir, mut st) = temp_store();
        let m = NewMessage {
            chat_id: "c",
            msg_id: "1",
            sender: "s",
            outgoing: false,
            text: "[voice note]",
            ts_ms: 1,
            typed_from: None,
        };
        assert!(st.enqueue_voice(&m, b"OggS...", true, true).unwrap());
        assert!(!st.enqueue_voice(&m, b"OggS...", true, true).unwrap());
        let head = st.pending_heads().unwrap().remove(0);
        let note = st.voice_note(head.row).unwrap().unwrap();
        assert_eq!((note.audio.as_slice(), note.own), (&b"OggS..."[..], true));
        assert_eq!(note.text, "[voice note]");
        assert_eq!(st.voice_notes_waiting().unwrap(), 1);
        // Queued notes are the agent's; kept chats' are heard when idle.
        assert!(st.next_kept_voice_note().unwrap().is_none());
        st.set_transcript(head.row, "[voice note, 0:03] hello there", Some(19))
            .unwrap();
        let head = st.pending_heads().unwrap().remove(0);
        assert_eq!(head.typed(), Some("hello there"));
        assert!(st.voice_note(head.row).unwrap().is_none());
        assert_eq!(st.voice_notes_waiting().unwrap(), 0);
    }
}
