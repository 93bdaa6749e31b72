//! The schema and its migrations. `PRAGMA user_version` is the number of
//! migrations applied; each runs in one transaction, so a crash leaves the
//! database at a whole version.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

/// Migration `i` takes the schema from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: indexed roots and documents, chunks with embeddings, full-text
    // index, chat messages.
    "
    CREATE TABLE roots (
        id       INTEGER PRIMARY KEY,
        path     TEXT NOT NULL UNIQUE,
        added_at INTEGER NOT NULL
    );
    CREATE TABLE exclusions (
        pattern  TEXT PRIMARY KEY,
        added_at INTEGER NOT NULL
    );
    CREATE TABLE documents (
        id         INTEGER PRIMARY KEY,
        root_id    INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
        path       TEXT NOT NULL UNIQUE,
        size       INTEGER NOT NULL,
        mtime_ns   INTEGER NOT NULL,
        sha256     BLOB NOT NULL,
        kind       TEXT NOT NULL,
        indexed_at INTEGER NOT NULL
    );
    CREATE INDEX documents_root ON documents(root_id);
    CREATE TABLE messages (
        id        INTEGER PRIMARY KEY,
        chat_id   TEXT NOT NULL,
        msg_id    TEXT NOT NULL,
        sender    TEXT NOT NULL,
        outgoing  INTEGER NOT NULL,
        text      TEXT NOT NULL,
        ts_ms     INTEGER NOT NULL,
        UNIQUE (chat_id, msg_id)
    );
    CREATE TABLE chunks (
        id         INTEGER PRIMARY KEY,
        doc_id     INTEGER REFERENCES documents(id) ON DELETE CASCADE,
        message_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
        ord        INTEGER NOT NULL,
        text       TEXT NOT NULL,
        embedding  BLOB NOT NULL,
        CHECK ((doc_id IS NULL) <> (message_id IS NULL))
    );
    CREATE INDEX chunks_doc ON chunks(doc_id);
    CREATE INDEX chunks_message ON chunks(message_id);
    CREATE VIRTUAL TABLE chunks_fts USING fts5(
        text, content = 'chunks', content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2'
    );
    INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('secure-delete', 1);
    CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    ",
    // 2: the durable inbound queue and the outbox of replies. An inbound
    // message is in `inbox` until answered; its reply is in `outbox` (one
    // per inbound message) until the bridge confirms delivery.
    "
    CREATE TABLE inbox (
        message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
        chat_id    TEXT NOT NULL,
        answered   INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX inbox_pending ON inbox(answered, chat_id, message_id);
    CREATE TABLE outbox (
        id         INTEGER PRIMARY KEY,
        chat_id    TEXT NOT NULL,
        inbound    INTEGER UNIQUE REFERENCES messages(id) ON DELETE SET NULL,
        reply_to   TEXT,
        text       TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        sent_ms    INTEGER
    );
    CREATE INDEX outbox_unsent ON outbox(sent_ms);
    ",
    // 3: `/new`: a chat's history starts after this message row.
    "
    CREATE TABLE chat_starts (
        chat_id TEXT PRIMARY KEY,
        after   INTEGER NOT NULL
    );
    ",
    // 4: reminders (fired through the outbox, in the same transaction that
    // marks them fired) and the daemon's persistent switches (`/pause`).
    "
    CREATE TABLE reminders (
        id         INTEGER PRIMARY KEY,
        chat_id    TEXT NOT NULL,
        text       TEXT NOT NULL,
        due_ms     INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        out_id     INTEGER REFERENCES outbox(id) ON DELETE SET NULL,
        state      TEXT NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'fired', 'cancelled'))
    );
    CREATE INDEX reminders_due ON reminders(state, due_ms);
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    ",
    // 5: the sender policy: the owner's decisions, open questions (codes
    // for /approve and /deny), LID -> phone number mappings learned from
    // the transport, and counts of dropped messages (never their content).
    "
    CREATE TABLE senders (
        identity   TEXT PRIMARY KEY,
        decision   TEXT NOT NULL CHECK (decision IN ('approved', 'denied')),
        decided_ms INTEGER NOT NULL
    );
    CREATE TABLE sender_requests (
        code       TEXT PRIMARY KEY,
        identity   TEXT NOT NULL UNIQUE,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE lid_map (
        lid   TEXT PRIMARY KEY,
        phone TEXT NOT NULL
    );
    CREATE TABLE dropped (
        reason TEXT PRIMARY KEY,
        n      INTEGER NOT NULL
    );
    ",
    // 6: chats the owner opted in to memory: stored and searchable, never
    // answered.
    "
    CREATE TABLE memory_chats (
        chat_id  TEXT PRIMARY KEY,
        added_ms INTEGER NOT NULL
    );
    ",
    // 7: the audit log, a hash chain (`crate::audit`): who did what to
    // which object, never message content.
    "
    CREATE TABLE audit (
        seq     INTEGER PRIMARY KEY,
        ts_ms   INTEGER NOT NULL,
        actor   TEXT NOT NULL,
        action  TEXT NOT NULL,
        object  TEXT NOT NULL,
        outcome TEXT NOT NULL,
        prev    BLOB NOT NULL,
        hash    BLOB NOT NULL
    );
    ",
    // 8: when Hearth stored each message (retention counts from arrival,
    // not from the sender's clock); set by a trigger on every insert.
    "
    ALTER TABLE messages ADD COLUMN stored_ms INTEGER NOT NULL DEFAULT 0;
    UPDATE messages SET stored_ms = ts_ms;
    CREATE TRIGGER messages_stored AFTER INSERT ON messages WHEN new.stored_ms = 0 BEGIN
        UPDATE messages
        SET stored_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
        WHERE id = new.id;
    END;
    ",
    // 9: where the words the sender typed begin in a message's text (NULL:
    // none are, e.g. forwarded): only those words may ask for an action.
    "
    ALTER TABLE messages ADD COLUMN typed_from INTEGER;
    ",
    // 10: voice notes waiting to be heard: the audio, encrypted like
    // everything else, only until the transcript replaces the message's
    // text (then the row is deleted; secure_delete zeroes it). `own`: the
    // sender's own note (not forwarded), whose words may ask for actions.
    "
    CREATE TABLE voice_notes (
        message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
        audio      BLOB NOT NULL,
        own        INTEGER NOT NULL
    );
    ",
    // 11: the highest outbox id ever handed out. `INTEGER PRIMARY KEY`
    // reuses the ids of deleted rows, and after `/forget` a new reply got
    // an id the bridge had already delivered, so it was dropped as a
    // duplicate; ids now only grow.
    "
    CREATE TABLE outbox_seq (n INTEGER NOT NULL);
    INSERT INTO outbox_seq SELECT coalesce(max(id), 0) FROM outbox;
    ",
];

/// Brings `db` up to the last of `migrations` (the store's or the
/// bridge session's), refusing a database written by a newer Hearth.
pub fn migrate(conn: &Connection, db: &Path, migrations: &[&str]) -> Result<(), StoreError> {
    let version = migrations.len() as i64;
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > version {
        return Err(StoreError::TooNew {
            db: db.to_path_buf(),
            found,
            known: version,
        });
    }
    for (i, sql) in migrations.iter().enumerate().skip(found as usize) {
        let next = i as i64 + 1;
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql} PRAGMA user_version = {next}; COMMIT;"
        ))
        .inspect_err(|_| {
            let _ = conn.execute_batch("ROLLBACK");
        })?;
        tracing::info!(version = next, "store schema migrated");
    }
    Ok(())
}
