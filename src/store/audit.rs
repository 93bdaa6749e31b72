//! The audit table: appending records to the hash chain (`crate::audit`
//! computes the hashes), reading them back for `hearth audit` and `/audit`,
//! and cutting the oldest off for retention while keeping the chain's
//! anchor. Records hold no message content.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};
use crate::audit::{Anchor, Break, Entry, Hash, Record, Verified};

/// The settings row holding the last record a retention purge removed.
const ANCHOR: &str = "audit_anchor";
/// The settings row holding the sha256 of the config serve last started with.
const CONFIG: &str = "config_sha256";

/// A record as found. A column someone changed to another type reads as
/// a value that cannot match its hash, so verification names the record
/// instead of failing to read it.
fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    use rusqlite::types::ValueRef;
    let int = |i: usize| -> rusqlite::Result<i64> {
        Ok(match r.get_ref(i)? {
            ValueRef::Integer(n) => n,
            _ => i64::MIN,
        })
    };
    let text = |i: usize| -> rusqlite::Result<String> {
        Ok(match r.get_ref(i)? {
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            other => format!("\u{0}not text: {other:?}"),
        })
    };
    let blob = |i: usize| -> rusqlite::Result<Vec<u8>> {
        Ok(match r.get_ref(i)? {
            ValueRef::Blob(b) => b.to_vec(),
            // Longer than any hash: never equal to one.
            other => format!("\u{0}not a blob: {other:?}").into_bytes(),
        })
    };
    Ok(Record {
        seq: int(0)?,
        ts_ms: int(1)?,
        actor: text(2)?,
        action: text(3)?,
        object: text(4)?,
        outcome: text(5)?,
        prev: blob(6)?,
        hash: blob(7)?,
    })
}

const COLUMNS: &str = "seq, ts_ms, actor, action, object, outcome, prev, hash";

/// Appends `e` at `ts_ms` to the chain, inside the caller's transaction.
pub(super) fn append(
    conn: &rusqlite::Connection,
    ts_ms: i64,
    e: &Entry,
) -> Result<Record, StoreError> {
    let last: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let after = match last {
        Some((seq, hash)) => Some((seq, to_hash(&hash))),
        None => anchor(conn)?.map(|a| (a.seq, a.hash)),
    };
    let rec = Record::next(after, ts_ms, e);
    conn.prepare_cached(&format!(
        "INSERT INTO audit ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))?
    .execute(params![
        rec.seq,
        rec.ts_ms,
        rec.actor,
        rec.action,
        rec.object,
        rec.outcome,
        rec.prev,
        rec.hash
    ])?;
    Ok(rec)
}

/// A stored hash; a damaged one (wrong length) chains to nothing, so the
/// next record is reported.
fn to_hash(b: &[u8]) -> Hash {
    b.try_into().unwrap_or([0xff; 32])
}

fn anchor(conn: &rusqlite::Connection) -> Result<Option<Anchor>, StoreError> {
    Ok(super::setting(conn, ANCHOR)?
        .and_then(|v| crate::audit::parse_head(&v))
        .map(|(seq, hash)| Anchor { seq, hash }))
}

impl Store {
    /// Appends one audit record in its own transaction.
    pub fn audit(&mut self, e: &Entry) -> Result<Record, StoreError> {
        let tx = self.conn.transaction()?;
        let rec = append(&tx, crate::clock::now_ms(), e)?;
        tx.commit()?;
        Ok(rec)
    }

    /// Records that the daemon started with the config whose sha256 is
    /// `fingerprint`, auditing a change since the last start (or the
    /// first config seen) in the same transaction. True when it changed.
    pub fn config_seen(&mut self, file: &str, fingerprint: &str) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let changed = super::setting(&tx, CONFIG)?.as_deref() != Some(fingerprint);
        if changed {
            super::set_setting(&tx, CONFIG, fingerprint)?;
            let short = fingerprint.get(..16).unwrap_or(fingerprint);
            let e = Entry::new(
                crate::audit::Actor::Local,
                crate::audit::Action::ConfigChanged,
                format!("{file} (sha256 {short}…)"),
            );
            append(&tx, crate::clock::now_ms(), &e)?;
        }
        tx.commit()?;
        Ok(changed)
    }

    /// Where the chain starts: the genesis, or the anchor a purge left.
    pub fn audit_anchor(&self) -> Result<Anchor, StoreError> {
        Ok(anchor(&self.conn)?.unwrap_or(Anchor::GENESIS))
    }

    /// Checks the whole chain and, when `kept` is a head the owner kept,
    /// that this record still has that hash.
    pub fn verify_audit(
        &self,
        kept: Option<(i64, Hash)>,
    ) -> Result<Result<Verified, Break>, StoreError> {
        let verified = match crate::audit::verify(self.audit_anchor()?, self.audit_records()?) {
            Ok(v) => v,
            Err(b) => return Ok(Err(b)),
        };
        if let Some((seq, hash)) = kept {
            let last = verified.head.map(|h| h.0).unwrap_or(0);
            match self.audit_record(seq)? {
                None => return Ok(Err(Break::NoSuchRecord { seq, last })),
                Some(r) if r.hash != hash => return Ok(Err(Break::HeadMismatch { seq })),
                Some(_) => {}
            }
        }
        Ok(Ok(verified))
    }

    /// Every record in ascending `seq` order, for verification.
    pub fn audit_records(&self) -> Result<Vec<Record>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM audit ORDER BY seq"))?;
        let rows = st.query_map([], record)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The last `n` records, oldest first.
    pub fn audit_tail(&self, n: usize) -> Result<Vec<Record>, StoreError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM audit ORDER BY seq DESC LIMIT ?1"
        ))?;
        let mut rows: Vec<Record> = st
            .query_map([n as i64], record)?
            .collect::<Result<_, _>>()?;
        rows.reverse();
        Ok(rows)
    }

    /// One record by its number.
    pub fn audit_record(&self, seq: i64) -> Result<Option<Record>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM audit WHERE seq = ?1"))?
            .query_row([seq], record)
            .optional()?)
    }

    /// Deletes records older than `before_ms` (never the last one), moving
    /// the anchor to the last deleted record, and audits the cut; one
    /// transaction. Returns how many were deleted.
    pub fn purge_audit(&mut self, before_ms: i64, e: &Entry) -> Result<u64, StoreError> {
        let tx = self.conn.transaction()?;
        let cut: Option<(i64, Vec<u8>)> = tx
            .prepare_cached(
                "SELECT seq, hash FROM audit
                 WHERE ts_ms < ?1 AND seq < (SELECT max(seq) FROM audit)
                 ORDER BY seq DESC LIMIT 1",
            )?
            .query_row([before_ms], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((seq, hash)) = cut else {
            return Ok(0);
        };
        let n = tx
            .prepare_cached("DELETE FROM audit WHERE seq <= ?1")?
            .execute([seq])?;
        super::set_setting(
            &tx,
            ANCHOR,
            &crate::audit::format_head(seq, &to_hash(&hash)),
        )?;
        let mut e = e.clone();
        e.object = format!("{} ({n} audit record(s) up to #{seq})", e.object);
        append(&tx, crate::clock::now_ms(), &e)?;
        tx.commit()?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use crate::audit::{Action, Actor, Entry, verify};

    #[test]
    fn appended_records_chain_and_survive_a_purge() {
        let (_dir, mut s) = crate::store::temp_store();
        for i in 0..4 {
            s.audit(&Entry::new(
                Actor::Local,
                Action::RootAdded,
                format!("/r{i}"),
            ))
            .expect("append");
        }
        let all = s.audit_records().expect("read");
        // The key's creation came first.
        assert_eq!(all.len(), 5);
        assert_eq!(all[0].action, "key-created");
        assert!(verify(s.audit_anchor().expect("anchor"), all).is_ok());
        let n = s
            .purge_audit(
                i64::MAX,
                &Entry::new(Actor::Serve, Action::Purged, "retention"),
            )
            .expect("purge");
        assert_eq!(n, 4, "the last record stays");
        let left = s.audit_records().expect("read");
        assert_eq!(left.first().map(|r| r.seq), Some(5));
        assert_eq!(left.last().map(|r| r.action.as_str()), Some("purged"));
        let v = verify(s.audit_anchor().expect("anchor"), left).expect("still intact");
        assert_eq!(v.head.map(|h| h.0), Some(6));
        assert_eq!(s.audit_tail(1).expect("tail")[0].seq, 6);
    }
}
