//! What the store holds, for `/privacy`, `hearth privacy` and `hearth
//! export`: counts per kind of data, and every row the owner may take away
//! (messages, documents index, reminders, sender decisions), as plain
//! values for the caller to serialise.

use serde::Serialize;

use super::{Store, StoreError};

/// How much of each kind of data is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Holdings {
    /// Messages in conversations with Hearth (both directions).
    pub conversation_messages: u64,
    /// Messages of chats kept with `/memory add`.
    pub kept_chat_messages: u64,
    pub kept_chats: u64,
    pub documents: u64,
    pub chunks: u64,
    pub roots: Vec<String>,
    pub reminders_pending: u64,
    pub reminders_done: u64,
    pub senders_approved: u64,
    pub senders_denied: u64,
    pub audit_records: u64,
    /// Voice notes whose audio waits to be transcribed.
    pub voice_notes_waiting: u64,
    /// The oldest stored message (ms since the epoch).
    pub oldest_message_ms: Option<i64>,
}

/// One stored message, for export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportMessage {
    pub chat_id: String,
    pub message_id: String,
    pub sender: String,
    pub outgoing: bool,
    pub text: String,
    pub ts_ms: i64,
}

/// One indexed document, for export (its text stays in the file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportDocument {
    pub path: String,
    pub kind: String,
    pub size: i64,
    pub sha256: String,
    pub indexed_at_ms: i64,
    pub chunks: i64,
}

/// One reminder, for export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportReminder {
    pub id: i64,
    pub chat_id: String,
    pub text: String,
    pub due_ms: i64,
    pub created_ms: i64,
    pub state: String,
}

/// The owner's decision about a sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportSender {
    pub identity: String,
    pub decision: String,
    pub decided_ms: i64,
}

impl Store {
    pub fn holdings(&self) -> Result<Holdings, StoreError> {
        let kept = "chat_id IN (SELECT chat_id FROM memory_chats)";
        let roots = self
            .roots()?
            .into_iter()
            .map(|r| r.path.display().to_string())
            .collect();
        Ok(Holdings {
            conversation_messages: self
                .count(&format!("SELECT count(*) FROM messages WHERE NOT {kept}"))?,
            kept_chat_messages: self
                .count(&format!("SELECT count(*) FROM messages WHERE {kept}"))?,
            kept_chats: self.count("SELECT count(*) FROM memory_chats")?,
            documents: self.count("SELECT count(*) FROM documents")?,
            chunks: self.chunk_count()?,
            roots,
            reminders_pending: self
                .count("SELECT count(*) FROM reminders WHERE state = 'pending'")?,
            reminders_done: self
                .count("SELECT count(*) FROM reminders WHERE state <> 'pending'")?,
            senders_approved: self
                .count("SELECT count(*) FROM senders WHERE decision = 'approved'")?,
            senders_denied: self.count("SELECT count(*) FROM senders WHERE decision = 'denied'")?,
            audit_records: self.count("SELECT count(*) FROM audit")?,
            voice_notes_waiting: self.count("SELECT count(*) FROM voice_notes")?,
            oldest_message_ms: self
                .conn
                .query_row("SELECT min(ts_ms) FROM messages", [], |r| r.get(0))?,
        })
    }

    /// Every stored message, by chat then arrival.
    pub fn export_messages(&self) -> Result<Vec<ExportMessage>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT chat_id, msg_id, sender, outgoing, text, ts_ms FROM messages ORDER BY chat_id, id",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(ExportMessage {
                    chat_id: r.get(0)?,
                    message_id: r.get(1)?,
                    sender: r.get(2)?,
                    outgoing: r.get(3)?,
                    text: r.get(4)?,
                    ts_ms: r.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    pub fn export_documents(&self) -> Result<Vec<ExportDocument>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT d.path, d.kind, d.size, d.sha256, d.indexed_at,
                    (SELECT count(*) FROM chunks c WHERE c.doc_id = d.id)
             FROM documents d ORDER BY d.path",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(ExportDocument {
                    path: r.get(0)?,
                    kind: r.get(1)?,
                    size: r.get(2)?,
                    sha256: crate::hex::encode(&r.get::<_, Vec<u8>>(3)?),
                    indexed_at_ms: r.get(4)?,
                    chunks: r.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    pub fn export_reminders(&self) -> Result<Vec<ExportReminder>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT id, chat_id, text, due_ms, created_ms, state FROM reminders ORDER BY id",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(ExportReminder {
                    id: r.get(0)?,
                    chat_id: r.get(1)?,
                    text: r.get(2)?,
                    due_ms: r.get(3)?,
                    created_ms: r.get(4)?,
                    state: r.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    pub fn export_senders(&self) -> Result<Vec<ExportSender>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT identity, decision, decided_ms FROM senders ORDER BY identity")?;
        let rows = st
            .query_map([], |r| {
                Ok(ExportSender {
                    identity: r.get(0)?,
                    decision: r.get(1)?,
                    decided_ms: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}
