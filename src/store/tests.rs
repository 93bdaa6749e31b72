//! The store against its promises: created with private modes, unreadable
//! without the key, untouched by a wrong key, and consistent through
//! document replacement and deletion.

use std::os::unix::fs::PermissionsExt;

use super::*;

fn paths(dir: &Path) -> Paths {
    Paths {
        data_dir: dir.join("data"),
        key_file: dir.join("keys/store.key"),
    }
}

fn chunk(text: &str, v: f32) -> NewChunk {
    NewChunk {
        text: text.into(),
        embedding: vec![v; 4],
    }
}

fn state(n: u8) -> FileState {
    FileState {
        size: n as u64,
        mtime_ns: n as i64,
        sha256: [n; 32],
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn creates_private_files_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let p = paths(dir.path());
    {
        let s = Store::open(&p, Create::IfMissing).unwrap();
        s.add_root(Path::new("/r")).unwrap();
    }
    assert_eq!(mode(&p.database()), 0o600);
    assert_eq!(mode(&p.data_dir), 0o700);
    assert_eq!(mode(&p.key_file), 0o600);
    let s = Store::open(&p, Create::Never).unwrap();
    assert_eq!(s.roots().unwrap().len(), 1);
    assert!(s.integrity_check().unwrap().is_empty());
}

#[test]
fn wrong_or_missing_key_fails_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = paths(dir.path());
    {
        let mut s = Store::open(&p, Create::IfMissing).unwrap();
        let (root, _) = s.add_root(Path::new("/r")).unwrap();
        s.replace_document(
            root,
            Path::new("/r/a"),
            &state(1),
            "text",
            &[chunk("secret words", 1.0)],
        )
        .unwrap();
        s.checkpoint().unwrap();
    }
    let before = fs::read(p.database()).unwrap();
    let other = Paths {
        key_file: dir.path().join("other.key"),
        ..p.clone()
    };
    key::create(&other.key_file).unwrap();
    let err = Store::open(&other, Create::IfMissing).unwrap_err();
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err}");
    assert!(err.to_string().contains("nothing was changed"));
    let missing = Paths {
        key_file: dir.path().join("nope.key"),
        ..p.clone()
    };
    let err = Store::open(&missing, Create::IfMissing).unwrap_err();
    assert!(matches!(err, StoreError::MissingKey { .. }), "{err}");
    assert!(
        !missing.key_file.exists(),
        "no key may be invented for an existing database"
    );
    assert_eq!(fs::read(p.database()).unwrap(), before);
    // The right key still works.
    Store::open(&p, Create::Never).unwrap();
}

#[test]
fn raw_files_hold_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let p = paths(dir.path());
    let mut s = Store::open(&p, Create::IfMissing).unwrap();
    let (root, _) = s.add_root(Path::new("/r")).unwrap();
    let phrase = "the quokka password is marmalade";
    s.replace_document(
        root,
        Path::new("/r/secret.md"),
        &state(1),
        "text",
        &[chunk(phrase, 0.5)],
    )
    .unwrap();
    let m = NewMessage {
        chat_id: "chat-1",
        msg_id: "m1",
        sender: "owner",
        outgoing: false,
        text: "zebra crossing at noon",
        ts_ms: 7,
        typed_from: None,
    };
    s.insert_message(&m, &[]).unwrap();
    // Both the database and its write-ahead log, before and after a checkpoint.
    for checkpoint in [false, true] {
        if checkpoint {
            s.checkpoint().unwrap();
        }
        for entry in fs::read_dir(&p.data_dir).unwrap() {
            let bytes = fs::read(entry.unwrap().path()).unwrap();
            for needle in ["quokka", "marmalade", "zebra crossing", "secret.md"] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "found {needle:?} in a raw file"
                );
            }
        }
    }
}

#[test]
fn replacing_and_deleting_documents_keeps_search_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&paths(dir.path()), Create::IfMissing).unwrap();
    let (root, new) = s.add_root(Path::new("/r")).unwrap();
    assert!(new);
    assert!(!s.add_root(Path::new("/r")).unwrap().1);
    let a = Path::new("/r/a.txt");
    s.replace_document(
        root,
        a,
        &state(1),
        "text",
        &[chunk("alpha beta", 1.0), chunk("gamma", 2.0)],
    )
    .unwrap();
    assert_eq!(s.fts_search("alpha", 10).unwrap().len(), 1);
    s.replace_document(root, a, &state(2), "text", &[chunk("delta", 3.0)])
        .unwrap();
    assert!(s.fts_search("alpha", 10).unwrap().is_empty());
    assert_eq!(
        s.term_frequencies(&["delta".into(), "alpha".into()])
            .unwrap(),
        (1, vec![1, 0]),
        "document frequencies follow replacements"
    );
    let hits = s.fts_search("delta", 10).unwrap();
    assert_eq!(hits.len(), 1);
    let row = s.chunk(hits[0].chunk_id).unwrap().unwrap();
    assert_eq!(row.text, "delta");
    assert!(matches!(row.source, Source::Document { ref path, .. } if path == a));
    assert_eq!(
        s.embedding(hits[0].chunk_id).unwrap().unwrap(),
        vec![3.0; 4]
    );
    let docs = s.documents_under(root).unwrap();
    assert_eq!(docs[a].state, state(2));
    s.delete_document(docs[a].id).unwrap();
    assert!(s.fts_search("delta", 10).unwrap().is_empty());
    assert_eq!(s.stats().unwrap().chunks, 0);
    // Removing a root removes what was under it.
    s.replace_document(root, a, &state(3), "text", &[chunk("epsilon", 1.0)])
        .unwrap();
    assert!(s.remove_root(Path::new("/r")).unwrap());
    assert_eq!(s.stats().unwrap(), IndexStats::default());
}

#[test]
fn a_key_inside_the_data_directory_is_refused_before_anything_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let p = Paths {
        data_dir: dir.path().join("data"),
        key_file: dir.path().join("data/store.key"),
    };
    let err = Store::open(&p, Create::IfMissing).unwrap_err();
    assert!(
        matches!(err, StoreError::Key(KeyError::InDataDir { .. })),
        "{err}"
    );
    assert!(!p.data_dir.exists() && !p.key_file.exists());
}

#[test]
fn rotating_the_key_reencrypts_and_survives_a_crash_before_the_key_file_moves() {
    let dir = tempfile::tempdir().unwrap();
    let p = paths(dir.path());
    let old = {
        let mut s = Store::open(&p, Create::IfMissing).unwrap();
        s.add_root(Path::new("/kept")).unwrap();
        let old = fs::read(&p.key_file).unwrap();
        s.rotate_key(&p.key_file).unwrap();
        old
    };
    let new = fs::read(&p.key_file).unwrap();
    assert_ne!(old, new);
    assert_eq!(mode(&p.key_file), 0o600);
    assert!(!key::pending(&p.key_file).exists());
    {
        let s = Store::open(&p, Create::Never).unwrap();
        assert_eq!(s.roots().unwrap().len(), 1);
        assert_eq!(s.audit_tail(1).unwrap()[0].action, "key-rotated");
    }
    // The old key no longer opens it.
    let stale = dir.path().join("old.key");
    fs::write(&stale, &old).unwrap();
    fs::set_permissions(&stale, fs::Permissions::from_mode(0o600)).unwrap();
    let wrong = Paths {
        key_file: stale,
        ..p.clone()
    };
    assert!(matches!(
        Store::open(&wrong, Create::Never),
        Err(StoreError::WrongKey { .. })
    ));
    // A crash after re-encrypting, before the new key replaced the old
    // file: the next open finishes the rotation.
    fs::write(key::pending(&p.key_file), &new).unwrap();
    fs::set_permissions(key::pending(&p.key_file), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&p.key_file, &old).unwrap();
    let s = Store::open(&p, Create::Never).unwrap();
    assert_eq!(s.roots().unwrap().len(), 1);
    assert_eq!(fs::read(&p.key_file).unwrap(), new);
    assert!(!key::pending(&p.key_file).exists());
}
