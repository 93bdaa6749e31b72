//! The indexer on a real folder with the real embedder: first run indexes,
//! second skips everything, edits/deletes/additions are reflected exactly,
//! and files outside the root or excluded are never indexed.

use std::path::{Path, PathBuf};

use hearth::embed::Embedder;
use hearth::index::sync::{Quiet, sync};
use hearth::paths::Paths;
use hearth::store::{Create, Store};

fn embedder() -> Embedder {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "run scripts/setup.sh"
    );
    Embedder::load(&dir).unwrap()
}

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn sync_is_incremental_and_scoped() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let root = base.join("docs");
    write(
        &root.join("router.md"),
        "The router admin password is hunter2-velvet.",
    );
    write(
        &root.join("notes/plants.txt"),
        "Water the ferns every Sunday.\n\nThe cactus needs little.",
    );
    write(&root.join(".ssh/id_rsa"), "PRIVATE KEY bluebird");
    write(&root.join(".env"), "TOKEN=bluebird");
    std::fs::write(root.join("photo.bin"), [0u8, 1, 2, 3, 0, 255]).unwrap();
    write(&base.join("outside.txt"), "outside bluebird");
    std::os::unix::fs::symlink(base.join("outside.txt"), root.join("link.txt")).unwrap();

    let paths = Paths {
        data_dir: base.join("data"),
        key_file: base.join("store.key"),
    };
    let mut store = Store::open(&paths, Create::IfMissing).unwrap();
    store.add_root(&root).unwrap();
    let emb = embedder();

    let r = sync(&mut store, &emb, &mut Quiet).unwrap();
    assert_eq!(
        (r.added, r.updated, r.removed, r.binary, r.refused),
        (2, 0, 0, 1, 1),
        "{r:?}"
    );
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(
        store.fts_search("bluebird", 10).unwrap().is_empty(),
        "nothing secret or outside indexed"
    );
    assert_eq!(store.fts_search("hunter2", 10).unwrap().len(), 1);

    let r = sync(&mut store, &emb, &mut Quiet).unwrap();
    assert_eq!(
        (r.added, r.updated, r.removed, r.unchanged),
        (0, 0, 0, 2),
        "{r:?}"
    );

    write(
        &root.join("router.md"),
        "The router admin password changed to orchid-lantern.",
    );
    std::fs::remove_file(root.join("notes/plants.txt")).unwrap();
    write(&root.join("new.md"), "Dentist on Thursday at 10am.");
    let r = sync(&mut store, &emb, &mut Quiet).unwrap();
    assert_eq!(
        (r.added, r.updated, r.removed, r.unchanged),
        (1, 1, 1, 0),
        "{r:?}"
    );
    assert!(store.fts_search("hunter2", 10).unwrap().is_empty());
    assert!(store.fts_search("ferns", 10).unwrap().is_empty());
    assert_eq!(store.fts_search("orchid", 10).unwrap().len(), 1);
    assert_eq!(store.fts_search("dentist", 10).unwrap().len(), 1);
    assert!(store.integrity_check().unwrap().is_empty());
}
