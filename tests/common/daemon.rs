//! A running `hearth serve` for the integration tests, and a raw socket
//! client speaking the protocol the bridge and the CLI speak.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{hearth_with_store, require_model};

pub fn socket(dir: &Path) -> PathBuf {
    dir.join("data/hearth.sock")
}

/// A WhatsApp direct chat (and its sender) for test person `n`.
pub fn person(n: usize) -> String {
    format!("44700900{n:04}@s.whatsapp.net")
}

/// Writes `dir/config.toml` letting people `0..n` talk to Hearth without
/// approval, plus `extra` TOML.
pub fn allow_people(dir: &Path, n: usize, extra: &str) {
    let numbers: Vec<String> = (0..n).map(|i| format!("\"+44700900{i:04}\"")).collect();
    std::fs::write(
        dir.join("config.toml"),
        format!("{extra}\n[whatsapp]\nallowed = [{}]\n", numbers.join(", ")),
    )
    .unwrap();
}

/// Starts the daemon (short replies) and waits until its socket answers.
pub fn start_serve(dir: &Path) -> Child {
    start_serve_with(dir, &["-n", "12"])
}

/// Starts the daemon with more arguments (one thread).
pub fn start_serve_with(dir: &Path, args: &[&str]) -> Child {
    require_model("SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut all = vec!["serve", "-t", "1"];
    all.extend_from_slice(args);
    let mut c = hearth_with_store(dir, "key", &all);
    c.stdout(Stdio::null());
    match std::env::var_os("HEARTH_TEST_SERVE_LOG") {
        Some(path) => {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap();
            // RUST_LOG=hearth=trace shows the prompts too.
            let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "hearth=debug".into());
            c.stderr(log).env("RUST_LOG", level);
        }
        None => {
            c.stderr(Stdio::null());
        }
    }
    let child = c.spawn().unwrap();
    let start = Instant::now();
    while UnixStream::connect(socket(dir)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "serve never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Writes one frame and reads the next line back as JSON.
pub fn frame(stream: &mut UnixStream, reader: &mut BufReader<UnixStream>, line: &str) -> Value {
    stream.write_all(line.as_bytes()).unwrap();
    stream.write_all(b"\n").unwrap();
    let mut reply = String::new();
    reader.read_line(&mut reply).unwrap();
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{e}: {reply:?}"))
}

/// A client that said hello as `role` (`cli` or `bridge`).
pub fn open(dir: &Path, role: &str) -> (UnixStream, BufReader<UnixStream>) {
    let mut s = UnixStream::connect(socket(dir)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let hello = format!(r#"{{"type":"hello","version":1,"role":"{role}"}}"#);
    assert_eq!(frame(&mut s, &mut r, &hello)["type"], "welcome");
    (s, r)
}

/// Reads frames until one of type `ty`, returning it.
pub fn next_of(reader: &mut BufReader<UnixStream>, ty: &str) -> Value {
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "connection closed while waiting for {ty}");
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["type"] == ty {
            return v;
        }
    }
}

/// The next outbound message's text.
pub fn next_text(reader: &mut BufReader<UnixStream>) -> String {
    next_of(reader, "outbound")["text"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Sends an inbound message from `chat` (a direct chat: the sender is the
/// chat).
pub fn say(s: &mut UnixStream, chat: &str, id: &str, text: &str) {
    let m = serde_json::json!({
        "type": "inbound", "message_id": id, "chat_id": chat, "sender_id": chat,
        "text": text, "timestamp_ms": 0
    });
    s.write_all(format!("{m}\n").as_bytes()).unwrap();
}

/// Stops the daemon the hard way.
pub fn kill(mut serve: Child) {
    serve.kill().unwrap();
    serve.wait().unwrap();
}

/// The audit log of the store in `dir`, one `action object` line per
/// record.
pub fn audit_lines(dir: &Path) -> Vec<String> {
    let o = super::run(hearth_with_store(
        dir,
        "key",
        &["audit", "tail", "-n", "1000", "--json"],
    ));
    assert!(o.status.success(), "{}", super::stderr(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            format!(
                "{} {}",
                v["action"].as_str().unwrap(),
                v["object"].as_str().unwrap()
            )
        })
        .collect()
}

/// `hearth chat` (with `args`) on the store in `dir`, as a person at the
/// terminal: its stdin, and its stdout lines with when each arrived.
pub fn chat_client(
    dir: &Path,
    args: &[&str],
) -> (
    Child,
    std::process::ChildStdin,
    std::sync::mpsc::Receiver<(Instant, String)>,
) {
    let mut all = vec!["chat"];
    all.extend_from_slice(args);
    let mut c = hearth_with_store(dir, "key", &all);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut chat = c.spawn().unwrap();
    let stdin = chat.stdin.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = chat.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            let _ = tx.send((Instant::now(), l.unwrap()));
        }
    });
    (chat, stdin, lines)
}
