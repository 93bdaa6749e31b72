//! `hearth serve` through the path a WhatsApp message takes: the real
//! daemon on the real model, driven by `hearth bridge --simulate` or by a
//! raw socket client. Covers exactly-once replies across `kill -9`s,
//! per-chat order, and error frames that leave the daemon running.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::daemon::{allow_people, frame, next_of, open, person, say, socket, start_serve};
use common::hearth_with_store;

fn bridge(dir: &Path) -> Command {
    let mut c = hearth_with_store(dir, "key", &["bridge", "--simulate", "--idle", "60"]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Message `id` from test person `who` (allowed by `allow_people`).
fn inbound(who: usize, id: usize) -> String {
    let chat = person(who);
    format!(
        "{{\"message_id\":\"{id}\",\"chat_id\":\"{chat}\",\"sender_id\":\"{chat}\",\"text\":\"Say the number {id}.\",\"timestamp_ms\":{id}}}\n"
    )
}

/// (chat, reply_to) of every reply line the bridge printed.
fn replies(stdout: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["chat_id"].as_str().unwrap().to_string(),
                v["reply_to"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_message_gets_one_reply_in_chat_order() {
    let dir = tempfile::tempdir().unwrap();
    allow_people(dir.path(), 5, "");
    let mut serve = start_serve(dir.path());
    let mut b = bridge(dir.path()).spawn().unwrap();
    let mut input = String::new();
    for id in 0..9 {
        input.push_str(&inbound(id % 3, id));
    }
    b.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = b.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = replies(&out.stdout);
    assert_eq!(got.len(), 9, "{got:?}");
    for chat in (0..3).map(person) {
        let ids: Vec<usize> = got
            .iter()
            .filter(|(c, _)| *c == chat)
            .map(|(_, id)| id.parse().unwrap())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "chat {chat} answered out of order");
        assert_eq!(ids.len(), 3);
    }
    // Chats interleave: the first three replies are for three chats.
    let first: std::collections::HashSet<&str> = got[..3].iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(first.len(), 3, "{got:?}");
    serve.kill().unwrap();
    serve.wait().unwrap();
}

#[test]
fn bad_frames_get_error_frames_and_the_daemon_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = start_serve(dir.path());
    let connect = || {
        let s = UnixStream::connect(socket(dir.path())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let r = BufReader::new(s.try_clone().unwrap());
        (s, r)
    };
    // Wrong version: an error frame, then the daemon hangs up.
    let (mut s, mut r) = connect();
    let v = frame(
        &mut s,
        &mut r,
        r#"{"type":"hello","version":99,"role":"bridge"}"#,
    );
    assert_eq!(v["type"], "error");
    assert_eq!(v["code"], "unsupported_version");

    const HELLO: &str = r#"{"type":"hello","version":1,"role":"cli"}"#;
    let (mut s, mut r) = connect();
    let v = frame(&mut s, &mut r, "this is not json");
    assert_eq!(v["code"], "malformed");
    let v = frame(&mut s, &mut r, HELLO);
    assert_eq!(v["type"], "welcome");
    let v = frame(&mut s, &mut r, &"x".repeat(70 * 1024));
    assert_eq!(v["code"], "too_large");
    let v = frame(&mut s, &mut r, r#"{"type":"format_disk"}"#);
    assert_eq!(v["code"], "malformed");
    let v = frame(&mut s, &mut r, HELLO);
    assert_eq!(v["code"], "out_of_order");
    // Still alive and answering on the same connection and a new one.
    let v = frame(&mut s, &mut r, r#"{"type":"status"}"#);
    assert_eq!(v["type"], "status");
    assert_eq!(v["model"], "smollm2");
    let (mut s, mut r) = connect();
    frame(&mut s, &mut r, HELLO);
    let v = frame(&mut s, &mut r, r#"{"type":"status"}"#);
    assert_eq!(v["queue_depth"], 0);
    assert!(serve.try_wait().unwrap().is_none(), "daemon exited");
    serve.kill().unwrap();
    serve.wait().unwrap();
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    allow_people(dir.path(), 5, "");
    let mut serve = start_serve(dir.path());
    let mut b = bridge(dir.path()).spawn().unwrap();
    let mut stdin = b.stdin.take().unwrap();
    // The bridge reads stdout lines in its own thread so it never blocks.
    let stdout = b.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map(|l| l.unwrap())
            .collect::<Vec<_>>()
    });
    let chats: Vec<String> = (0..5).map(person).collect();
    let total = 50;
    let mut x = 0x2545_f491_u64;
    let mut rnd = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut kills = 0;
    for id in 0..total {
        stdin
            .write_all(inbound(id % chats.len(), id).as_bytes())
            .unwrap();
        // Every 4th message or so, kill the daemon at a random moment.
        if id % 4 == 3 {
            std::thread::sleep(Duration::from_millis(rnd(900)));
            serve.kill().unwrap();
            serve.wait().unwrap();
            kills += 1;
            serve = start_serve(dir.path());
        }
    }
    drop(stdin);
    let out = b.wait_with_output().unwrap();
    let printed = lines.join().unwrap().join("\n");
    assert!(kills >= 10);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = replies(printed.as_bytes());
    let mut ids: Vec<usize> = got.iter().map(|(_, id)| id.parse().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, (0..total).collect::<Vec<_>>(), "one reply per message");
    serve.kill().unwrap();
    serve.wait().unwrap();

    // The store agrees: every chat alternates message, reply.
    let paths = hearth::paths::Paths {
        data_dir: dir.path().join("data"),
        key_file: dir.path().join("key"),
    };
    let store = hearth::store::Store::open(&paths, hearth::store::Create::Never).unwrap();
    assert_eq!(store.queue_depth().unwrap(), 0);
    for chat in &chats {
        let h = store.history(chat, 1000).unwrap();
        assert_eq!(h.len(), 2 * total / chats.len(), "chat {chat}");
        for (i, t) in h.iter().enumerate() {
            assert_eq!(t.outgoing, i % 2 == 1, "chat {chat} turn {i}");
        }
    }
    assert!(store.integrity_check().unwrap().is_empty());
}

/// Inodes of the sockets process `pid` holds.
fn socket_inodes(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect()
}

/// Socket inodes in one of `/proc/PID/net/*` (inode is the 10th column in
/// tcp/udp/raw tables, the 7th in unix).
fn table_inodes(pid: u32, table: &str, column: usize) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/net/{table}"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(column).map(str::to_string))
        .collect()
}

#[test]
fn serve_holds_no_network_socket() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = start_serve(dir.path());
    // A client connected, so the daemon holds its listener and a connection.
    let _client = UnixStream::connect(socket(dir.path())).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = serve.id();
    let held = socket_inodes(pid);
    assert!(held.len() >= 2, "listener and connection: {held:?}");
    // The same look `hearth doctor` takes (serve.network).
    assert_eq!(
        hearth::doctor::network_sockets(pid).unwrap(),
        Vec::<String>::new(),
        "serve holds IP sockets"
    );
    let unix = table_inodes(pid, "unix", 6);
    assert!(
        held.iter().all(|i| unix.contains(i)),
        "every socket serve holds is a Unix socket: {held:?}"
    );
    serve.kill().unwrap();
    serve.wait().unwrap();
}

#[test]
fn owner_commands_are_parsed_before_the_model_and_only_for_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    allow_people(dir.path(), 1, "");
    let mut serve = start_serve(dir.path());
    let open = |role: &str| open(dir.path(), role);
    let (mut cli, mut cli_r) = open("cli");
    say(&mut cli, "cli:owner", "1", "/help");
    assert!(
        next_of(&mut cli_r, "outbound")["text"]
            .as_str()
            .unwrap()
            .contains("/status")
    );
    say(&mut cli, "cli:owner", "2", "/status");
    let status = next_of(&mut cli_r, "outbound")["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(status.starts_with("Model smollm2"), "{status}");
    say(&mut cli, "cli:owner", "3", "/frobnicate now");
    assert!(
        next_of(&mut cli_r, "outbound")["text"]
            .as_str()
            .unwrap()
            .starts_with("Unknown command /frobnicate")
    );
    // A terminal client cannot write as a WhatsApp chat.
    say(&mut cli, "123@s.whatsapp.net", "4", "/help");
    assert_eq!(next_of(&mut cli_r, "error")["code"], "forbidden");

    // A transport sender's "/help" is text for the model, not a command,
    // and the transport cannot pose as the owner's terminal chat.
    let (mut bridge, mut bridge_r) = open("bridge");
    say(&mut bridge, "cli:owner", "5", "/status");
    assert_eq!(next_of(&mut bridge_r, "error")["code"], "forbidden");
    say(&mut bridge, &person(0), "6", "/help");
    let reply = next_of(&mut bridge_r, "outbound");
    assert_eq!(reply["reply_to"], "6");
    assert_ne!(reply["text"], hearth::command::HELP);
    assert!(!reply["text"].as_str().unwrap().contains("/status: model"));
    serve.kill().unwrap();
    serve.wait().unwrap();
}

#[test]
fn status_and_chat_go_through_a_running_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let o = hearth_with_store(dir.path(), "key", &["status"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "no daemon: check failed");
    let mut serve = start_serve(dir.path());
    let o = hearth_with_store(dir.path(), "key", &["status"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("model:           smollm2"));
    let mut c = hearth_with_store(dir.path(), "key", &["chat"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"/status\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    // The reply came from the daemon (a local chat has no /status).
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("Model smollm2, up "),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    serve.kill().unwrap();
    serve.wait().unwrap();
}

#[test]
fn init_writes_a_config_whose_owner_may_command() {
    let dir = tempfile::tempdir().unwrap();
    let init = |args: &[&str]| {
        let mut all = vec!["init"];
        all.extend_from_slice(args);
        hearth_with_store(dir.path(), "key", &all).output().unwrap()
    };
    assert!(init(&["--owner", "+49 151 12345678"]).status.success());
    let text = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
    assert!(text.contains("numbers = [\"+4915112345678\"]"), "{text}");
    let again = init(&[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(init(&["--owner", "0151"]).status.code(), Some(2));

    // The owner's number commands over the transport; others do not.
    let config = dir.path().join("config.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("groups = []", "groups = [\"123-456@g.us\"]");
    std::fs::write(&config, text).unwrap();
    let mut serve = start_serve(dir.path());
    let mut s = UnixStream::connect(socket(dir.path())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    frame(
        &mut s,
        &mut r,
        r#"{"type":"hello","version":1,"role":"bridge"}"#,
    );
    let owner = "4915112345678@s.whatsapp.net";
    let m = serde_json::json!({"type":"inbound","message_id":"1","chat_id":owner,
        "sender_id":owner,"text":"/help","timestamp_ms":0});
    s.write_all(format!("{m}\n").as_bytes()).unwrap();
    assert_eq!(next_of(&mut r, "outbound")["text"], hearth::command::HELP);
    // In a group, even the owner's "/help" is only text (the group is
    // allow-listed and Hearth mentioned, so it is answered at all).
    let m = serde_json::json!({"type":"inbound","message_id":"2","chat_id":"123-456@g.us",
        "sender_id":owner,"is_group":true,"mentions_me":true,"text":"/help","timestamp_ms":0});
    s.write_all(format!("{m}\n").as_bytes()).unwrap();
    assert_ne!(next_of(&mut r, "outbound")["text"], hearth::command::HELP);
    serve.kill().unwrap();
    serve.wait().unwrap();

    // A broken config stops serve with the file, line and field.
    std::fs::write(dir.path().join("config.toml"), "[model]\ncontex = 1\n").unwrap();
    let o = hearth_with_store(dir.path(), "key", &["serve"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("config.toml") && err.contains("contex"),
        "{err}"
    );
}

#[test]
fn under_systemd_it_says_ready_pings_the_watchdog_and_stops_cleanly() {
    use std::os::unix::net::UnixDatagram;
    common::require_model("SmolLM2-135M-Instruct.Q4_1.gguf");
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut serve = hearth_with_store(dir.path(), "key", &["serve", "-t", "1"])
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let mut next = || {
        let n = notify.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).trim_end().to_string()
    };
    assert_eq!(next(), "READY=1");
    // Ready means listening.
    UnixStream::connect(socket(dir.path())).unwrap();
    assert_eq!(next(), "WATCHDOG=1");
    assert_eq!(next(), "WATCHDOG=1");
    let term = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    while next() != "STOPPING=1" {}
    let status = serve.wait().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean exit");
    assert!(!socket(dir.path()).exists(), "the socket file is removed");
}
