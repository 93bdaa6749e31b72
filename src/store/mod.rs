//! The encrypted store: one SQLCipher database holding everything Hearth
//! remembers (indexed documents, chunks, their full-text index and
//! embeddings, messages). Opening it checks the key before anything is
//! written; the schema is migrated by `PRAGMA user_version`.
//!
//! This module is the only one with SQL. It must not know how text is
//! extracted, embedded or ranked: callers hand it rows and get rows back.

mod audit;
mod chats;
mod docs;
mod erase;
mod privacy;
mod queue;
mod reminders;
mod schema;
mod senders;
pub mod session;
mod voice;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

pub use chats::MemoryChat;
pub use docs::{
    ChunkHit, ChunkRow, DocId, DocSummary, DocumentRow, FileState, IndexStats, NewChunk,
    NewMessage, RootId, RootRow, Source,
};
pub use erase::{Erase, Erased};
pub use privacy::{ExportDocument, ExportMessage, ExportReminder, ExportSender, Holdings};
pub use queue::{Pending, Reply, Turn};
pub use reminders::{ReminderId, ReminderRow};
pub use senders::{Asked, QuestionRules};
pub use voice::VoiceNote;

use crate::key::{self, Key, KeyError};
use crate::paths::Paths;

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the key in {key} does not open {db} (wrong key file, or not a Hearth database); nothing was changed"
    )]
    WrongKey { db: PathBuf, key: PathBuf },
    #[error(
        "{db} exists but its key file {key} is missing; restore the key file or point --key-file at it (nothing was changed)"
    )]
    MissingKey { db: PathBuf, key: PathBuf },
    #[error(
        "{db} was written by a newer Hearth (schema {found}, this one knows {known}); upgrade Hearth"
    )]
    TooNew { db: PathBuf, found: i64, known: i64 },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// An open connection to the store. One writer at a time (SQLite's rule);
/// readers on other connections never block it (WAL).
pub struct Store {
    conn: Connection,
    db: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("db", &self.db).finish()
    }
}

/// Whether [`Store::open`] may create a missing database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Create the data directory, key and database when none exist.
    IfMissing,
    /// Fail when the database does not exist.
    Never,
}

impl Store {
    /// The single number a `SELECT count(*) …` query returns.
    fn count(&self, sql: &str) -> Result<u64, StoreError> {
        let n: i64 = self.conn.prepare_cached(sql)?.query_row([], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Opens the store at `paths`, creating key and database on first use
    /// (when `create` allows). A wrong or missing key fails before any
    /// byte of the database is written.
    pub fn open(paths: &Paths, create: Create) -> Result<Self, StoreError> {
        let db = paths.database();
        let (conn, key_created) = open_encrypted(&db, &paths.data_dir, &paths.key_file, create)?;
        schema::migrate(&conn, &db, schema::MIGRATIONS)?;
        let mut store = Self { conn, db };
        if key_created {
            store.audit(&crate::audit::Entry::new(
                crate::audit::Actor::Local,
                crate::audit::Action::KeyCreated,
                paths.key_file.display().to_string(),
            ))?;
        }
        Ok(store)
    }

    /// Opens an existing store, or `None` when nothing has been stored
    /// yet (no database file; a fresh box). A data directory this user may
    /// not look into is an error, not "nothing".
    pub fn open_existing(paths: &Paths) -> Result<Option<Self>, StoreError> {
        let db = paths.database();
        match fs::metadata(&db) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path: db, source }),
            Ok(_) => Self::open(paths, Create::Never).map(Some),
        }
    }

    pub fn path(&self) -> &Path {
        &self.db
    }

    /// Re-encrypts the store under a new key in `key_file` (see
    /// [`rotate`]), audited.
    pub fn rotate_key(&mut self, key_file: &Path) -> Result<(), StoreError> {
        rotate(&self.conn, key_file)?;
        self.audit(&crate::audit::Entry::new(
            crate::audit::Actor::Local,
            crate::audit::Action::KeyRotated,
            key_file.display().to_string(),
        ))?;
        Ok(())
    }

    /// Runs `PRAGMA integrity_check`; `Ok(())` when the database is sound.
    pub fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        let mut st = self.conn.prepare("PRAGMA integrity_check")?;
        let rows: Vec<String> = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        Ok(if rows == ["ok"] { Vec::new() } else { rows })
    }

    /// Writes the WAL back into the database and truncates it, so deleted
    /// bytes leave the WAL file too.
    /// A reader in another process (e.g. `hearth search` while serve
    /// runs) can hold old pages: then the WAL is retried for a moment, and
    /// a warning says it could not be truncated yet.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        for attempt in 0..20 {
            let busy: i64 = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
            if busy == 0 {
                return Ok(());
            }
            if attempt == 19 {
                tracing::warn!(
                    "the WAL could not be truncated (another process is reading the store); \
                     it is on the next checkpoint"
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(())
    }
}

/// One row of the `settings` table (the daemon's switches and markers:
/// `/pause`, the audit anchor, the config fingerprint, the media-erase
/// time), read inside any connection or transaction.
fn setting(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

/// Writes one row of the `settings` table.
fn set_setting(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute([key, value])?;
    Ok(())
}

/// Opens (or creates, when `create` allows) the SQLCipher database `db` in
/// `dir` under the key in `key_file`, configured for durability. The file is
/// made mode 0600 before SQLite touches it, its directory 0700. A wrong or
/// missing key fails before any byte of the database is written. Says
/// whether the key was created now.
fn open_encrypted(
    db: &Path,
    dir: &Path,
    key_file: &Path,
    create: Create,
) -> Result<(Connection, bool), StoreError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    key::check_apart(key_file, dir)?;
    let db_exists = db.exists();
    let mut created = false;
    let key = match key::read(key_file) {
        Ok(k) => k,
        Err(KeyError::Missing { .. }) if db_exists => {
            return Err(StoreError::MissingKey {
                db: db.to_path_buf(),
                key: key_file.to_path_buf(),
            });
        }
        Err(KeyError::Missing { .. }) if create == Create::IfMissing => {
            let k = key::create(key_file)?;
            tracing::info!(key_file = %key_file.display(), "created a new key");
            created = true;
            k
        }
        Err(e) => return Err(e.into()),
    };
    if !db_exists {
        if create == Create::Never {
            return Err(StoreError::Io {
                path: db.to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        // An empty file with the right mode: SQLite gives its WAL and
        // shared-memory files the same permissions.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(db)
            .map_err(io(db))?;
    }
    // SQLCipher sets up its crypto provider and log level as process
    // globals on first use; opening one database at a time keeps that
    // single-threaded. Opening is rare, so the lock costs nothing.
    static OPENING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = OPENING.lock().unwrap_or_else(|p| p.into_inner());
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    match unlock(&conn, &key, db, key_file) {
        // A rotation that re-encrypted the database but crashed before
        // the new key file replaced the old one: finish it.
        Err(StoreError::WrongKey { .. }) if key::pending(key_file).exists() => {
            let new = key::read(&key::pending(key_file))?;
            unlock(&conn, &new, db, key_file)?;
            key::commit_pending(key_file)?;
            tracing::warn!(key_file = %key_file.display(), "finished an interrupted key rotation");
        }
        other => other?,
    }
    configure(&conn)?;
    Ok((conn, created))
}

/// Re-encrypts the database on `conn` under a new key: the key is written
/// to `KEY.new` first, the pages are rewritten in one transaction (WAL
/// emptied and switched off for it, as SQLCipher requires), then `KEY.new`
/// replaces `KEY`. A crash before the commit leaves the old key valid; a
/// crash after it is finished by the next open.
fn rotate(conn: &Connection, key_file: &Path) -> Result<(), StoreError> {
    let pending = key::pending(key_file);
    if pending.exists() {
        // Left by a rotation that never re-encrypted (the open worked with
        // the old key): start over.
        std::fs::remove_file(&pending).map_err(|source| StoreError::Io {
            path: pending.clone(),
            source,
        })?;
    }
    let new = key::create(&pending)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
    let rekeyed = conn.execute_batch(&format!("PRAGMA rekey = \"x'{}'\";", new.to_hex()));
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    rekeyed?;
    key::commit_pending(key_file)?;
    Ok(())
}

/// Hands SQLCipher the raw 256-bit key and proves it opens the file.
fn unlock(conn: &Connection, key: &Key, db: &Path, key_file: &Path) -> Result<(), StoreError> {
    // SQLCipher would print its own decryption errors to stderr; the
    // error returned below says what matters.
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", key.to_hex()))?;
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::NotADatabase =>
        {
            Err(StoreError::WrongKey {
                db: db.to_path_buf(),
                key: key_file.to_path_buf(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA busy_timeout = 10000;
         PRAGMA cache_size = -32768;",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;

/// An inbound message from sender `s`, for tests.
#[cfg(test)]
pub(crate) fn test_message<'a>(chat: &'a str, id: &'a str, text: &'a str) -> NewMessage<'a> {
    NewMessage {
        chat_id: chat,
        msg_id: id,
        sender: "s",
        outgoing: false,
        text,
        ts_ms: 1,
        typed_from: Some(0),
    }
}

/// A store in a fresh temporary directory, for tests.
#[cfg(test)]
pub(crate) fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let paths = Paths {
        data_dir: dir.path().join("d"),
        key_file: dir.path().join("k"),
    };
    let store = Store::open(&paths, Create::IfMissing).expect("a new store opens");
    (dir, store)
}
