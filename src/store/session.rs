//! The bridge's own encrypted database, `session.db` in the bridge's state
//! directory: the WhatsApp linked-device session (a full account-takeover
//! credential, kept as namespaced key/value rows for the transport
//! library's storage traits) and the bridge's durable queues (inbound
//! messages `serve` has not acknowledged yet, reply ids already delivered,
//! ids of messages Hearth itself sent).
//!
//! A separate file under a separate key from the Hearth store: the bridge
//! opens this and never `hearth.db`. Same mechanism as the store (SQLCipher,
//! raw 256-bit key in a 0600 key file outside the directory, files 0600).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

use super::{Create, StoreError};
use crate::clock::now_s;

const MIGRATIONS: &[&str] = &[
    // 1: session key/values, inbound queue, delivered replies, own sends.
    "
    CREATE TABLE kv (
        ns  TEXT NOT NULL,
        k   TEXT NOT NULL,
        v   BLOB NOT NULL,
        aux INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (ns, k)
    ) WITHOUT ROWID;
    CREATE TABLE inbound (
        seq        INTEGER PRIMARY KEY,
        chat_id    TEXT NOT NULL,
        message_id TEXT NOT NULL,
        frame      TEXT NOT NULL,
        queued_at  INTEGER NOT NULL,
        UNIQUE (chat_id, message_id)
    );
    CREATE TABLE delivered (
        out_id INTEGER PRIMARY KEY,
        at     INTEGER NOT NULL
    );
    CREATE TABLE own_sent (
        wa_id TEXT PRIMARY KEY,
        at    INTEGER NOT NULL
    );
    ",
    // 2: events for Hearth's audit log (pairing, unpairing, media erased),
    // kept until `serve` has recorded them.
    "
    CREATE TABLE audit_out (
        id     INTEGER PRIMARY KEY,
        action TEXT NOT NULL,
        object TEXT NOT NULL,
        at_ms  INTEGER NOT NULL
    );
    ",
];

/// One row of a namespace: key, value, and the auxiliary number the
/// caller keeps beside it (a timestamp, a flag).
pub type KvRow = (String, Vec<u8>, i64);

/// The bridge's database. Cheap calls behind one mutex; share it in an
/// `Arc`.
pub struct SessionDb {
    conn: Mutex<Connection>,
    db: PathBuf,
}

impl std::fmt::Debug for SessionDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionDb").field("db", &self.db).finish()
    }
}

impl SessionDb {
    /// The database file in `state_dir`.
    pub fn file(state_dir: &Path) -> PathBuf {
        state_dir.join("session.db")
    }

    /// Opens `state_dir/session.db` under the key in `key_file`, creating
    /// both (and the directory, mode 0700) when `create` allows.
    pub fn open(state_dir: &Path, key_file: &Path, create: Create) -> Result<Self, StoreError> {
        let db = Self::file(state_dir);
        let (conn, key_created) = super::open_encrypted(&db, state_dir, key_file, create)?;
        super::schema::migrate(&conn, &db, MIGRATIONS)?;
        let session = Self {
            conn: Mutex::new(conn),
            db,
        };
        if key_created {
            // For Hearth's audit log, delivered by the bridge.
            session.queue_audit(
                crate::proto::BridgeAction::KeyCreated.as_str(),
                &key_file.display().to_string(),
            )?;
        }
        Ok(session)
    }

    pub fn path(&self) -> &Path {
        &self.db
    }

    /// Re-encrypts the session under a new key in `key_file`.
    pub fn rotate_key(&self, key_file: &Path) -> Result<(), StoreError> {
        super::rotate(&self.conn(), key_file)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    // --- key/value rows for the transport's session ---

    pub fn kv_get(&self, ns: &str, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT v FROM kv WHERE ns = ?1 AND k = ?2")?
            .query_row(params![ns, k], |r| r.get(0))
            .optional()?)
    }

    /// Value and auxiliary number of one row.
    pub fn kv_get_aux(&self, ns: &str, k: &str) -> Result<Option<(Vec<u8>, i64)>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT v, aux FROM kv WHERE ns = ?1 AND k = ?2")?
            .query_row(params![ns, k], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// Inserts or replaces rows of one namespace in one transaction.
    pub fn kv_put_many(&self, ns: &str, rows: &[(&str, &[u8], i64)]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO kv (ns, k, v, aux) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (ns, k) DO UPDATE SET v = excluded.v, aux = excluded.aux",
            )?;
            for (k, v, aux) in rows {
                st.execute(params![ns, k, v, aux])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn kv_put(&self, ns: &str, k: &str, v: &[u8], aux: i64) -> Result<(), StoreError> {
        self.kv_put_many(ns, &[(k, v, aux)])
    }

    /// Deletes the given keys of a namespace; returns how many existed.
    pub fn kv_delete(&self, ns: &str, keys: &[&str]) -> Result<u32, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut n = 0;
        {
            let mut st = tx.prepare_cached("DELETE FROM kv WHERE ns = ?1 AND k = ?2")?;
            for k in keys {
                n += st.execute(params![ns, k])? as u32;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// Removes a row and returns its value, atomically.
    pub fn kv_take(&self, ns: &str, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM kv WHERE ns = ?1 AND k = ?2 RETURNING v")?
            .query_row(params![ns, k], |r| r.get(0))
            .optional()?)
    }

    /// Deletes a whole namespace.
    pub fn kv_clear(&self, ns: &str) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("DELETE FROM kv WHERE ns = ?1")?
            .execute(params![ns])?;
        Ok(())
    }

    /// Deletes the given keys from every namespace starting with `prefix`
    /// (`None`: every key of those namespaces).
    pub fn kv_delete_in_prefix(
        &self,
        prefix: &str,
        keys: Option<&[&str]>,
    ) -> Result<(), StoreError> {
        let pattern = format!("{}%", prefix.replace('%', "\\%").replace('_', "\\_"));
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        match keys {
            None => {
                tx.prepare_cached("DELETE FROM kv WHERE ns LIKE ?1 ESCAPE '\\'")?
                    .execute(params![pattern])?;
            }
            Some(keys) => {
                let mut st =
                    tx.prepare_cached("DELETE FROM kv WHERE ns LIKE ?1 ESCAPE '\\' AND k = ?2")?;
                for k in keys {
                    st.execute(params![pattern, k])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every row of a namespace, by key.
    pub fn kv_scan(&self, ns: &str) -> Result<Vec<KvRow>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached("SELECT k, v, aux FROM kv WHERE ns = ?1 ORDER BY k")?;
        let rows = st
            .query_map(params![ns], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Sets the auxiliary number of existing rows.
    pub fn kv_set_aux(&self, ns: &str, keys: &[&str], aux: i64) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached("UPDATE kv SET aux = ?3 WHERE ns = ?1 AND k = ?2")?;
            for k in keys {
                st.execute(params![ns, k, aux])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes rows whose auxiliary number is in `1..cutoff` (0 = keep
    /// forever); returns how many.
    pub fn kv_delete_aux_before(&self, ns: &str, cutoff: i64) -> Result<u32, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM kv WHERE ns = ?1 AND aux != 0 AND aux < ?2")?
            .execute(params![ns, cutoff])? as u32)
    }

    /// The largest key of a namespace read as an integer (0 when empty).
    pub fn kv_max_int_key(&self, ns: &str) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT COALESCE(MAX(CAST(k AS INTEGER)), 0) FROM kv WHERE ns = ?1")?
            .query_row(params![ns], |r| r.get(0))?)
    }

    /// Deletes every session row (the linked device is forgotten); the
    /// queues stay.
    pub fn forget_session(&self) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute_batch("DELETE FROM kv; DELETE FROM own_sent;")?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    // --- the bridge's durable queues ---

    /// Keeps an event for Hearth's audit log until `serve` records it.
    pub fn queue_audit(&self, action: &str, object: &str) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("INSERT INTO audit_out (action, object, at_ms) VALUES (?1, ?2, ?3)")?
            .execute(params![action, object, crate::clock::now_ms()])?;
        Ok(())
    }

    /// Events waiting for `serve`: (id, action, object, time).
    pub fn queued_audit(&self) -> Result<Vec<(i64, String, String, i64)>, StoreError> {
        let conn = self.conn();
        let mut st =
            conn.prepare_cached("SELECT id, action, object, at_ms FROM audit_out ORDER BY id")?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// `serve` recorded event `id`.
    pub fn audit_recorded(&self, id: i64) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("DELETE FROM audit_out WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }

    /// Keeps an inbound frame until `serve` acknowledges it. Returns false
    /// when this (chat, message) is already queued.
    pub fn queue_inbound(
        &self,
        chat_id: &str,
        message_id: &str,
        frame: &str,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .prepare_cached(
                "INSERT OR IGNORE INTO inbound (chat_id, message_id, frame, queued_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![chat_id, message_id, frame, now_s()])?;
        Ok(n == 1)
    }

    /// Every queued inbound frame, oldest first.
    pub fn queued_inbound(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached("SELECT frame FROM inbound ORDER BY seq")?;
        let rows = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// `serve` committed this message: forget it. Returns the frame it was
    /// queued as (to shred a voice note serve now holds).
    pub fn ack_inbound(
        &self,
        chat_id: &str,
        message_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "DELETE FROM inbound WHERE chat_id = ?1 AND message_id = ?2 RETURNING frame",
            )?
            .query_row(params![chat_id, message_id], |r| r.get(0))
            .optional()?)
    }

    pub fn queued_inbound_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT count(*) FROM inbound", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Whether reply `out_id` was already delivered.
    pub fn was_delivered(&self, out_id: u64) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT 1 FROM delivered WHERE out_id = ?1")?
            .query_row(params![out_id as i64], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Records reply `out_id` as delivered; false when it already was.
    /// Entries older than a week are pruned (`serve` forgets a reply once
    /// it hears `sent`, which follows within seconds).
    pub fn mark_delivered(&self, out_id: u64) -> Result<bool, StoreError> {
        let conn = self.conn();
        let now = now_s();
        conn.prepare_cached("DELETE FROM delivered WHERE at < ?1")?
            .execute(params![now - 7 * 86_400])?;
        let n = conn
            .prepare_cached("INSERT OR IGNORE INTO delivered (out_id, at) VALUES (?1, ?2)")?
            .execute(params![out_id as i64, now])?;
        Ok(n == 1)
    }

    /// Remembers the transport id of a message Hearth sent, so its echo is
    /// recognised (kept 30 days).
    pub fn remember_own(&self, wa_id: &str) -> Result<(), StoreError> {
        let conn = self.conn();
        let now = now_s();
        conn.prepare_cached("DELETE FROM own_sent WHERE at < ?1")?
            .execute(params![now - 30 * 86_400])?;
        conn.prepare_cached("INSERT OR IGNORE INTO own_sent (wa_id, at) VALUES (?1, ?2)")?
            .execute(params![wa_id, now])?;
        Ok(())
    }

    /// Whether Hearth itself sent the message with this transport id.
    pub fn is_own(&self, wa_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT 1 FROM own_sent WHERE wa_id = ?1")?
            .query_row(params![wa_id], |_| Ok(()))
            .optional()?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_temp() -> (tempfile::TempDir, SessionDb) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = SessionDb::open(
            &dir.path().join("state"),
            &dir.path().join("bridge.key"),
            Create::IfMissing,
        )
        .expect("a new session database opens");
        (dir, db)
    }

    #[test]
    fn the_session_key_rotates() {
        let (d, db) = open_temp();
        db.kv_put("device", "me", b"keys", 0).unwrap();
        let key = d.path().join("bridge.key");
        let old = std::fs::read(&key).unwrap();
        db.rotate_key(&key).unwrap();
        drop(db);
        assert_ne!(std::fs::read(&key).unwrap(), old);
        let db = SessionDb::open(&d.path().join("state"), &key, Create::Never).unwrap();
        assert_eq!(
            db.kv_get("device", "me").unwrap().as_deref(),
            Some(&b"keys"[..])
        );
    }

    #[test]
    fn key_values_round_trip_and_scan_in_key_order() {
        let (_d, db) = open_temp();
        db.kv_put("prekey", "2", b"two", 0).unwrap();
        db.kv_put("prekey", "10", b"ten", 1).unwrap();
        db.kv_put("other", "1", b"x", 0).unwrap();
        assert_eq!(
            db.kv_get("prekey", "2").unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(db.kv_max_int_key("prekey").unwrap(), 10);
        assert_eq!(db.kv_max_int_key("empty").unwrap(), 0);
        assert_eq!(db.kv_scan("prekey").unwrap().len(), 2);
        db.kv_set_aux("prekey", &["2"], 1).unwrap();
        assert_eq!(db.kv_get_aux("prekey", "2").unwrap().unwrap().1, 1);
        assert_eq!(
            db.kv_take("prekey", "2").unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert!(db.kv_take("prekey", "2").unwrap().is_none());
        assert_eq!(db.kv_delete("prekey", &["10", "11"]).unwrap(), 1);
        db.kv_clear("other").unwrap();
        assert!(db.kv_get("other", "1").unwrap().is_none());
    }

    #[test]
    fn prefix_deletes_and_expiry_by_aux() {
        let (_d, db) = open_temp();
        db.kv_put("skd:g1", "dev1", &[1], 0).unwrap();
        db.kv_put("skd:g2", "dev1", &[1], 0).unwrap();
        db.kv_put("skd:g2", "dev2", &[0], 0).unwrap();
        db.kv_put("skdx", "dev1", &[0], 0).unwrap();
        db.kv_delete_in_prefix("skd:", Some(&["dev1"])).unwrap();
        assert!(db.kv_get("skd:g1", "dev1").unwrap().is_none());
        assert!(db.kv_get("skd:g2", "dev2").unwrap().is_some());
        assert!(
            db.kv_get("skdx", "dev1").unwrap().is_some(),
            "no LIKE wildcard leak"
        );
        db.kv_delete_in_prefix("skd:", None).unwrap();
        assert!(db.kv_scan("skd:g2").unwrap().is_empty());

        db.kv_put("sent", "a", b"1", 100).unwrap();
        db.kv_put("sent", "b", b"2", 300).unwrap();
        db.kv_put("sent", "c", b"3", 0).unwrap();
        assert_eq!(db.kv_delete_aux_before("sent", 200).unwrap(), 1);
        assert_eq!(db.kv_scan("sent").unwrap().len(), 2);
    }

    #[test]
    fn queues_survive_reopening_and_dedupe() {
        let dir = tempfile::tempdir().unwrap();
        let (state, key) = (dir.path().join("s"), dir.path().join("k"));
        {
            let db = SessionDb::open(&state, &key, Create::IfMissing).unwrap();
            assert!(db.queue_inbound("c", "m1", "{1}").unwrap());
            assert!(!db.queue_inbound("c", "m1", "{1}").unwrap());
            assert!(db.queue_inbound("c", "m2", "{2}").unwrap());
            assert!(db.mark_delivered(7).unwrap());
            db.remember_own("3EB0AA").unwrap();
        }
        let db = SessionDb::open(&state, &key, Create::Never).unwrap();
        assert_eq!(db.queued_inbound().unwrap(), vec!["{1}", "{2}"]);
        db.ack_inbound("c", "m1").unwrap();
        assert_eq!(db.queued_inbound_count().unwrap(), 1);
        assert!(db.was_delivered(7).unwrap());
        assert!(!db.mark_delivered(7).unwrap());
        assert!(db.is_own("3EB0AA").unwrap());
        assert!(!db.is_own("3EB0AB").unwrap());
    }

    #[test]
    fn files_are_private_and_hold_no_plaintext() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, db) = open_temp();
        let secret = b"noise-private-key-material-0123456789";
        db.kv_put("device", "0", secret, 0).unwrap();
        db.queue_inbound("c", "m", "hello from Anna").unwrap();
        drop(db);
        let state = dir.path().join("state");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        for entry in std::fs::read_dir(&state).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            let bytes = std::fs::read(&path).unwrap();
            for needle in [&secret[..], b"hello from Anna", b"SQLite format 3"] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{} holds plaintext",
                    path.display()
                );
            }
        }
    }
}
