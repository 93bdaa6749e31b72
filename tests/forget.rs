//! `/forget everything` through the real daemon erases the bytes: after
//! documents, the owner's chat, a reminder, a kept chat and searches have
//! put distinctive words into every table, the full-text index and the
//! vectors, no page of the database or its WAL (decrypted with the store
//! key, the way SQLCipher 4 lays pages out) and no file of the data
//! directory contains any of them. The same scan finds them all before.

mod common;

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::NoPadding};
use common::daemon::{kill, next_of, next_text, open, say, start_serve};
use common::{hearth_with_store, run};

const OWNER: &str = "4915112345678@s.whatsapp.net";
const ANNA: &str = "447009001111@s.whatsapp.net";

/// Words that appear nowhere else (each also as its full-text token).
const WORDS: [&str; 4] = ["quokkavault", "zebralocker", "axolotlfeed", "narwhaldinner"];

const PAGE: usize = 4096;
/// SQLCipher 4's per-page reserve: a 16-byte IV and a 64-byte HMAC.
const RESERVE: usize = 80;

/// Every page of a SQLCipher 4 database (or of the pages framed in its
/// WAL), decrypted with the raw 256-bit `key`.
fn decrypted_pages(key: &[u8; 32], file: &[u8], wal: bool) -> Vec<Vec<u8>> {
    // (page number, page bytes)
    let pages: Vec<(u32, &[u8])> = if wal {
        file.get(32..)
            .unwrap_or_default()
            .chunks_exact(24 + PAGE)
            .map(|f| (u32::from_be_bytes([f[0], f[1], f[2], f[3]]), &f[24..]))
            .collect()
    } else {
        (1..).zip(file.chunks_exact(PAGE)).collect()
    };
    pages
        .into_iter()
        .map(|(number, page)| {
            // Page 1 starts with the 16-byte salt, stored in the clear.
            let start = if number == 1 { 16 } else { 0 };
            let iv = &page[PAGE - RESERVE..PAGE - RESERVE + 16];
            let mut buf = page[start..PAGE - RESERVE].to_vec();
            cbc::Decryptor::<aes::Aes256>::new(key.into(), iv.into())
                .decrypt_padded_mut::<NoPadding>(&mut buf)
                .expect("whole blocks");
            buf
        })
        .collect()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    hay.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// Which of `WORDS` appear in the data directory: in decrypted database
/// and WAL pages, or anywhere in the raw files.
fn words_on_disk(dir: &Path) -> Vec<String> {
    let key_hex = std::fs::read_to_string(dir.join("key")).unwrap();
    let key: [u8; 32] = hearth::hex::decode(key_hex.trim())
        .unwrap()
        .try_into()
        .unwrap();
    let data = dir.join("data");
    let db = std::fs::read(data.join("hearth.db")).unwrap();
    let mut pages = decrypted_pages(&key, &db, false);
    // Proof that decryption works: page 1 is a SQLite header (page size
    // 4096 at offset 16, 80 reserved bytes at offset 20, once the 16 salt
    // bytes are accounted for).
    assert_eq!(&pages[0][0..2], &[0x10, 0x00], "page 1 did not decrypt");
    assert_eq!(pages[0][4], RESERVE as u8);
    if let Ok(wal) = std::fs::read(data.join("hearth.db-wal")) {
        pages.extend(decrypted_pages(&key, &wal, true));
    }
    let mut raw = Vec::new();
    for f in std::fs::read_dir(&data).unwrap() {
        let p = f.unwrap().path();
        if p.is_file() {
            raw.push(std::fs::read(&p).unwrap());
        }
    }
    WORDS
        .iter()
        .filter(|w| pages.iter().chain(&raw).any(|p| contains(p, w)))
        .map(|w| w.to_string())
        .collect()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ask(
    s: &mut UnixStream,
    r: &mut BufReader<UnixStream>,
    chat: &str,
    id: &str,
    text: &str,
) -> String {
    say(s, chat, id, text);
    next_text(r)
}

#[test]
fn forget_everything_leaves_no_byte_of_what_was_forgotten() {
    let (dir, _) = common::registered_docs([(
        "safe.txt",
        "The code for the quokkavault in the cellar is 7391.\n",
    )]);
    std::fs::write(
        dir.path().join("config.toml"),
        "[owner]\nnumbers = [\"+4915112345678\"]\n",
    )
    .unwrap();
    common::sync(dir.path());

    let serve = start_serve(dir.path());
    let (mut cli, mut c) = open(dir.path(), "cli");
    let (mut wa, mut w) = open(dir.path(), "bridge");
    ask(
        &mut cli,
        &mut c,
        "cli:owner",
        "1",
        "My zebralocker number is 12.",
    );
    let set = ask(
        &mut cli,
        &mut c,
        "cli:owner",
        "2",
        "/remind in 2 hours axolotlfeed time",
    );
    assert!(set.starts_with("Reminder 1 set"), "{set}");
    let kept = ask(&mut wa, &mut w, OWNER, "w1", "/memory add +447009001111");
    assert!(kept.starts_with("From now on"), "{kept}");
    // Kept chats are embedded while the daemon is idle: the chunk count
    // grows. (A /search for the word would copy it into the owner's chat.)
    let mut n = 0;
    let mut chunks = || {
        n += 1;
        let s = ask(&mut cli, &mut c, "cli:owner", &format!("s{n}"), "/status");
        let before = s.split(" chunk(s)").next().unwrap();
        before.rsplit(' ').next().unwrap().parse::<u64>().unwrap()
    };
    let start = chunks();
    say(
        &mut wa,
        ANNA,
        "a1",
        "Dinner at the narwhaldinner place at 8?",
    );
    assert_eq!(next_of(&mut w, "ack")["message_id"], "a1");
    wait_for("the kept chat is embedded", || chunks() > start);

    let mut before = words_on_disk(dir.path());
    before.sort();
    let mut all: Vec<String> = WORDS.iter().map(|w| w.to_string()).collect();
    all.sort();
    assert_eq!(before, all, "the scan finds every word before forgetting");

    // One chat first: its words go, the rest stay.
    let one = ask(&mut wa, &mut w, OWNER, "w2", "/forget chat +447009001111");
    assert!(
        one.starts_with("Forgotten and erased from the disk: 1 message(s)"),
        "{one}"
    );
    let mut rest = words_on_disk(dir.path());
    rest.sort();
    assert_eq!(rest, ["axolotlfeed", "quokkavault", "zebralocker"]);
    // (Searching copies hits into the owner's chat, so only now.)
    let found = ask(&mut cli, &mut c, "cli:owner", "3", "/search quokkavault");
    assert!(found.contains("safe.txt"), "{found}");

    let done = ask(&mut cli, &mut c, "cli:owner", "4", "/forget everything");
    assert!(done.starts_with("Forgotten and erased"), "{done}");
    assert!(done.contains("1 reminder(s), 1 document(s)"), "{done}");
    // (Searching for the word itself would store it again.)
    let none = ask(&mut cli, &mut c, "cli:owner", "5", "/search cellar");
    assert_eq!(none, "Nothing found.");
    let left = ask(&mut cli, &mut c, "cli:owner", "6", "/reminders");
    assert_eq!(left, "No reminders pending.");
    cli.flush().unwrap();
    kill(serve);

    assert_eq!(words_on_disk(dir.path()), Vec::<String>::new());
    let o = run(hearth_with_store(dir.path(), "key", &["audit", "verify"]));
    assert!(o.status.success());
    let o = run(hearth_with_store(
        dir.path(),
        "key",
        &["audit", "tail", "--json"],
    ));
    let log = String::from_utf8_lossy(&o.stdout);
    assert!(log.contains("\"action\":\"erased\""), "{log}");
    assert!(!WORDS.iter().any(|w| log.contains(w)), "{log}");
}

/// `/forget everything` reaches the bridge: the media it saved before is
/// shredded and the bridge reports it to the audit log.
#[test]
fn forget_everything_shreds_the_bridges_media() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[owner]\nnumbers = [\"+4915112345678\"]\n",
    )
    .unwrap();
    let inbox = dir.path().join("bridge/inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let photo = inbox.join("3EB0AA.jpg");
    std::fs::write(&photo, b"\xff\xd8 a photo").unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&photo)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let serve = start_serve(dir.path());
    let mut sim = hearth_with_store(dir.path(), "key", &["bridge", "--simulate", "--idle", "3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let m = serde_json::json!({"message_id":"f1","chat_id":OWNER,"sender_id":OWNER,
        "text":"/forget everything","timestamp_ms":0});
    sim.stdin
        .take()
        .unwrap()
        .write_all(format!("{m}\n").as_bytes())
        .unwrap();
    let out = sim.wait_with_output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("Forgotten and erased"), "{printed}");
    assert!(!photo.exists(), "the photo is still in the inbox");
    kill(serve);
    let o = run(hearth_with_store(
        dir.path(),
        "key",
        &["audit", "tail", "--json"],
    ));
    let log = String::from_utf8_lossy(&o.stdout);
    assert!(
        log.lines()
            .any(|l| l.contains("\"actor\":\"bridge\"") && l.contains("1 media file(s)")),
        "{log}"
    );
    // The bridge's new session key was reported too.
    assert!(
        log.lines()
            .any(|l| l.contains("\"actor\":\"bridge\"") && l.contains("\"action\":\"key-created\"")),
        "{log}"
    );
}
