//! The audit log through the real binary: actions at the terminal leave
//! records, `hearth audit verify` passes on an untouched log and exits 1
//! naming the record when any byte of any record is edited through
//! SQLCipher, a record is deleted, two are swapped or one is inserted; a
//! log rewritten consistently from some record on is caught with a head
//! kept earlier.

mod common;

use std::path::Path;

use common::{hearth_with_store, run};
use hearth::audit::{Action, Actor, Entry, Record};
use rusqlite::{Connection, params};

fn hearth(dir: &Path, args: &[&str]) -> std::process::Output {
    run(hearth_with_store(dir, "store.key", args))
}

/// The test's own connection to the store, through SQLCipher with its key.
fn open(dir: &Path) -> Connection {
    let key = std::fs::read_to_string(dir.join("store.key")).expect("key file");
    let conn = Connection::open(dir.join("data/hearth.db")).expect("open");
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", key.trim()))
        .expect("key");
    conn
}

fn verify(dir: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["audit", "verify"];
    args.extend_from_slice(extra);
    let o = hearth(dir, &args);
    let text = String::from_utf8_lossy(&o.stdout).into_owned() + &common::stderr(&o);
    (o.status.code().unwrap_or(-1), text)
}

/// A store whose audit log holds five records made by real commands.
fn store_with_records() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let docs = dir.path().join("docs");
    std::fs::create_dir(&docs).expect("docs");
    let docs = docs.to_str().expect("utf-8 path");
    for args in [
        &["index", "add", docs][..],
        &["index", "exclude", "*.tmp"],
        &["index", "include", "*.tmp"],
        &["index", "remove", docs],
    ] {
        let o = hearth(dir.path(), args);
        assert!(o.status.success(), "{args:?}: {}", common::stderr(&o));
    }
    dir
}

#[test]
fn actions_are_recorded_and_an_untouched_log_verifies() {
    let dir = store_with_records();
    let (code, text) = verify(dir.path(), &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("intact: 5 record(s)"), "{text}");
    let o = hearth(dir.path(), &["audit", "tail", "--json"]);
    assert!(o.status.success());
    let actions: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            v["action"].as_str().expect("action").to_string()
        })
        .collect();
    assert_eq!(
        actions,
        [
            "key-created",
            "root-added",
            "exclusion-added",
            "exclusion-removed",
            "root-removed"
        ]
    );
}

/// A copy of `dir`'s store and key, to tamper with.
fn copy(dir: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(to.path().join("data")).expect("data dir");
    for f in std::fs::read_dir(dir.join("data")).expect("data dir") {
        let f = f.expect("entry").path();
        let name = f.file_name().expect("name");
        std::fs::copy(&f, to.path().join("data").join(name)).expect("copy");
    }
    std::fs::copy(dir.join("store.key"), to.path().join("store.key")).expect("copy key");
    to
}

/// Runs `sql` (with `?1` = `seq`) on a copy of the store; the verdict of
/// `hearth audit verify` (and any extra arguments) on it.
fn tampered(dir: &Path, sql: &str, seq: i64, extra: &[&str]) -> (i32, String) {
    let copy = copy(dir);
    let conn = open(copy.path());
    conn.execute_batch("BEGIN").expect("begin");
    let n = if sql.contains("?1") {
        conn.execute(sql, [seq])
    } else {
        conn.execute(sql, [])
    }
    .expect("tamper");
    assert!(n >= 1, "{sql} changed nothing");
    conn.execute_batch("COMMIT").expect("commit");
    drop(conn);
    verify(copy.path(), extra)
}

#[test]
fn editing_any_field_of_any_record_is_named() {
    let dir = store_with_records();
    for seq in 1..=5i64 {
        for col in [
            "seq", "ts_ms", "actor", "action", "object", "outcome", "prev", "hash",
        ] {
            // One byte (text, blob) or one unit (numbers) changed.
            let edit = match col {
                "seq" => "UPDATE audit SET seq = seq + 100 WHERE seq = ?1".to_string(),
                "ts_ms" => "UPDATE audit SET ts_ms = ts_ms + 1 WHERE seq = ?1".to_string(),
                "prev" | "hash" => format!(
                    "UPDATE audit SET {col} = CAST(substr({col}, 1, 3) || \
                     CASE WHEN substr({col}, 4, 1) = X'00' THEN X'01' ELSE X'00' END || \
                     substr({col}, 5) AS BLOB) WHERE seq = ?1"
                ),
                _ => format!(
                    "UPDATE audit SET {col} = \
                     CASE WHEN substr({col}, 1, 1) = 'X' THEN 'Y' ELSE 'X' END || \
                     substr({col}, 2) WHERE seq = ?1"
                ),
            };
            let (code, text) = tampered(dir.path(), &edit, seq, &[]);
            assert_eq!(code, 1, "{col} of #{seq}: {text}");
            assert!(
                text.contains(&format!("record #{seq}")),
                "{col} of #{seq} not named: {text}"
            );
        }
    }
    // The original was never touched.
    assert_eq!(verify(dir.path(), &[]).0, 0);
}

#[test]
fn deleted_swapped_and_inserted_records_are_named() {
    let dir = store_with_records();
    let cases: [(&str, i64, &str); 5] = [
        // The same bytes as text instead of a blob.
        (
            "UPDATE audit SET hash = CAST(hash AS TEXT) WHERE seq = ?1",
            4,
            "record #4",
        ),
        ("DELETE FROM audit WHERE seq = ?1", 3, "record #3"),
        // Swap records 2 and 3 (numbers stay in order, contents move).
        (
            "UPDATE audit SET seq = CASE seq WHEN 2 THEN 3 WHEN 3 THEN 2 END + 1000 \
             WHERE seq IN (2, 3)",
            0,
            "record #2",
        ),
        // A copy of record 2 slipped in after it.
        (
            "INSERT INTO audit SELECT seq + 1000, ts_ms, actor, action, 'forged', outcome, prev, hash \
             FROM audit WHERE seq = ?1",
            2,
            "record #3",
        ),
        ("DELETE FROM audit WHERE seq = ?1", 1, "record #1"),
    ];
    for (sql, seq, named) in cases {
        // Renumbered rows go to +1000 first, then into place, so the
        // primary key never collides.
        let sql = if sql.contains("+ 1000") && sql.starts_with("UPDATE") {
            format!("{sql}; UPDATE audit SET seq = seq - 1000 WHERE seq > 1000")
        } else if sql.starts_with("INSERT") {
            format!(
                "UPDATE audit SET seq = seq + 2000 WHERE seq > {seq}; {sql}; \
                 UPDATE audit SET seq = {seq} + 1 WHERE seq = {seq} + 1000; \
                 UPDATE audit SET seq = seq - 2000 + 1 WHERE seq > 2000"
            )
        } else {
            sql.to_string()
        };
        let copy = copy(dir.path());
        let conn = open(copy.path());
        conn.execute_batch(&format!(
            "BEGIN; {}; COMMIT;",
            sql.replace("?1", &seq.to_string())
        ))
        .expect("tamper");
        drop(conn);
        let (code, text) = verify(copy.path(), &[]);
        assert_eq!(code, 1, "{sql}: {text}");
        assert!(text.contains(named), "{sql}: expected {named}: {text}");
    }
}

#[test]
fn a_log_rewritten_from_scratch_is_caught_by_a_kept_head() {
    let dir = store_with_records();
    let (_, text) = verify(dir.path(), &[]);
    let head = text
        .split("head ")
        .nth(1)
        .map(str::trim)
        .expect("verify prints the head")
        .to_string();
    assert_eq!(verify(dir.path(), &["--head", &head]).0, 0);
    // Rewrite records 3..5 consistently, as someone holding the key could.
    let copy = copy(dir.path());
    let conn = open(copy.path());
    let prev: Vec<u8> = conn
        .query_row("SELECT hash FROM audit WHERE seq = 2", [], |r| r.get(0))
        .expect("record 2");
    conn.execute("DELETE FROM audit WHERE seq >= 3", [])
        .expect("delete");
    let mut after = Some((2, <[u8; 32]>::try_from(prev.as_slice()).expect("32 bytes")));
    for i in 3..=5 {
        let r = Record::next(
            after,
            i,
            &Entry::new(Actor::Local, Action::RootAdded, "/innocent"),
        );
        conn.execute(
            "INSERT INTO audit VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                r.seq, r.ts_ms, r.actor, r.action, r.object, r.outcome, r.prev, r.hash
            ],
        )
        .expect("insert");
        after = Some((r.seq, r.stored_hash().expect("32 bytes")));
    }
    drop(conn);
    let (code, text) = verify(copy.path(), &[]);
    assert_eq!(code, 0, "a consistent rewrite passes on its own: {text}");
    let (code, text) = verify(copy.path(), &["--head", &head]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("record #5") && text.contains("rewritten"),
        "{text}"
    );
}
