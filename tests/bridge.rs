//! The bridge's promises through the real binaries: `hearth bridge
//! --simulate` (the real bridge's queue, echo rule and reconnects, with
//! stdin/stdout for WhatsApp) against the real `hearth serve` on the real
//! model. Either process is killed (`kill -9`) and restarted, in both
//! orders, with messages arriving while the daemon is down and bridges
//! dying with messages only they held: every message gets exactly one
//! reply. In personal mode Hearth's own replies coming
//! back (their echo) are dropped, and other chats are never answered.
//! `hearth pair` with WhatsApp unreachable fails within seconds; a bridge
//! on a box not linked yet waits (telling serve so) instead of exiting.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::daemon::{allow_people, kill, person, start_serve};
use common::hearth_with_store;

fn bridge_cmd(dir: &Path, idle: &str) -> Command {
    let mut c = hearth_with_store(dir, "key", &["bridge", "--simulate", "--idle", idle]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// A running simulated bridge: its stdin, and its stdout lines collected
/// by a thread (they survive a `kill -9`: the pipe keeps them).
struct Bridge {
    child: Child,
    stdin: Option<ChildStdin>,
    reader: JoinHandle<()>,
    printed: Arc<Mutex<Vec<Value>>>,
}

impl Bridge {
    fn start(dir: &Path) -> Self {
        Self::start_idle(dir, "90")
    }

    fn start_idle(dir: &Path, idle: &str) -> Self {
        let mut child = bridge_cmd(dir, idle).spawn().unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let printed = Arc::new(Mutex::new(Vec::new()));
        let sink = printed.clone();
        let reader = std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_str::<Value>(&l).unwrap());
            }
        });
        Self {
            child,
            stdin,
            reader,
            printed,
        }
    }

    fn seen(&self) -> usize {
        self.printed.lock().unwrap().len()
    }

    fn lines(self) -> Vec<Value> {
        self.reader.join().unwrap();
        Arc::try_unwrap(self.printed).unwrap().into_inner().unwrap()
    }

    fn send(&mut self, line: Value) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits until at least `n` lines were printed (at most 5 minutes).
    fn wait_for(&self, n: usize) {
        let start = Instant::now();
        while self.seen() < n {
            assert!(start.elapsed() < Duration::from_secs(300), "no reply");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(mut self) -> Vec<Value> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        drop(self.stdin.take());
        self.lines()
    }

    /// Closes stdin and waits for the bridge to finish on its own.
    fn finish(mut self) -> (std::process::ExitStatus, String, Vec<Value>) {
        drop(self.stdin.take());
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut stderr).unwrap();
        }
        let status = self.child.wait().unwrap();
        (status, stderr, self.lines())
    }
}

fn message(who: usize, id: usize) -> Value {
    let chat = person(who);
    json!({"message_id": id.to_string(), "chat_id": chat, "sender_id": chat,
        "text": format!("Say the number {id}."), "timestamp_ms": id})
}

#[test]
fn killing_bridge_and_daemon_in_either_order_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    allow_people(dir, 3, "");
    let mut printed = Vec::new();

    // 1. Three messages answered; then the daemon dies and three more
    //    arrive: the bridge can only queue them. Then the bridge dies.
    let serve = start_serve(dir);
    let mut a = Bridge::start(dir);
    for id in 0..3 {
        a.send(message(id % 3, id));
    }
    a.wait_for(3);
    kill(serve);
    for id in 3..6 {
        a.send(message(id % 3, id));
    }
    std::thread::sleep(Duration::from_secs(1));
    printed.extend(a.kill());

    // 2. Another bridge takes three more while the daemon is still down,
    //    and dies too.
    let mut b = Bridge::start(dir);
    for id in 6..9 {
        b.send(message(id % 3, id));
    }
    std::thread::sleep(Duration::from_secs(1));
    printed.extend(b.kill());

    // 3. A bridge with nothing new starts before the daemon; the daemon
    //    is killed again after the first reply and restarted.
    let c = Bridge::start(dir);
    std::thread::sleep(Duration::from_millis(300));
    let serve = start_serve(dir);
    c.wait_for(1);
    kill(serve);
    let serve = start_serve(dir);
    let (status, stderr, lines) = c.finish();
    printed.extend(lines);
    kill(serve);
    assert!(status.success(), "{stderr}");

    // Every message exactly one reply, across all bridges.
    let mut answered: Vec<usize> = printed
        .iter()
        .map(|v| v["reply_to"].as_str().unwrap().parse().unwrap())
        .collect();
    answered.sort();
    assert_eq!(answered, (0..9).collect::<Vec<_>>(), "{printed:#?}");
    let mut out_ids: Vec<i64> = printed
        .iter()
        .map(|v| v["out_id"].as_i64().unwrap())
        .collect();
    out_ids.sort();
    out_ids.dedup();
    assert_eq!(out_ids.len(), 9, "a reply printed twice");
    for v in &printed {
        let want = person(v["reply_to"].as_str().unwrap().parse::<usize>().unwrap() % 3);
        assert_eq!(v["chat_id"], want.as_str(), "a reply in the wrong chat");
    }
}

const OWNER: &str = "4915112345678@s.whatsapp.net";
const ANNA: &str = "447009001111@s.whatsapp.net";

#[test]
fn personal_mode_drops_its_own_echo_and_never_answers_other_chats() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(
        dir.join("config.toml"),
        "[owner]\nnumbers = [\"+4915112345678\"]\n[whatsapp]\nmode = \"personal\"\nallowed = [\"+447009001111\"]\n",
    )
    .unwrap();
    let serve = start_serve(dir);
    // Anna's messages are never answered: do not wait long for them.
    let mut b = Bridge::start_idle(dir, "5");
    let mine = |id: &str, chat: &str, text: &str| {
        json!({"message_id": id, "chat_id": chat, "sender_id": OWNER, "is_from_me": true,
            "text": text, "timestamp_ms": 1})
    };
    // The owner writing to Anna and Anna writing back: not Hearth's.
    b.send(mine("p1", ANNA, "secret-one"));
    b.send(
        json!({"message_id": "p2", "chat_id": ANNA, "sender_id": ANNA,
        "text": "secret-two", "timestamp_ms": 2}),
    );
    // The owner in the self chat: answered.
    b.send(mine("p3", OWNER, "/help"));
    b.wait_for(1);
    // `hearth status` shows the bridge's link and the policy's counts.
    let status = common::run(hearth_with_store(dir, "key", &["status"]));
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(shown.contains("whatsapp:        simulated"), "{shown}");
    assert!(
        shown.contains("0 waiting for /approve, 2 message(s) dropped by policy"),
        "{shown}"
    );
    // WhatsApp shows Hearth's reply in the self chat, as from the owner:
    // the same transport id comes back. It must not become a message.
    let help_id = b.printed.lock().unwrap()[0]["sent_id"]
        .as_str()
        .unwrap()
        .to_string();
    b.send(mine(&help_id, OWNER, hearth::command::HELP));
    let (status, stderr, printed) = b.finish();
    // With the bridge gone, its last link state is not shown as current.
    let after = common::run(hearth_with_store(dir, "key", &["status"]));
    let shown = String::from_utf8_lossy(&after.stdout);
    assert!(shown.contains("bridge:          not connected"), "{shown}");
    assert!(!shown.contains("whatsapp:"), "{shown}");
    kill(serve);
    // Anna's two messages stay unanswered (exit 1 says so).
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("2 unanswered"), "{stderr}");
    assert_eq!(printed.len(), 1, "{printed:#?}");
    assert_eq!(printed[0]["chat_id"], OWNER);
    assert_eq!(printed[0]["reply_to"], "p3");
    assert_eq!(printed[0]["sent_id"], help_id);
    assert!(stderr.contains("1 own echoes dropped"), "{stderr}");

    // The store saw the owner's one command and its reply, nothing else.
    let paths = hearth::paths::Paths {
        data_dir: dir.join("data"),
        key_file: dir.join("key"),
    };
    let store = hearth::store::Store::open(&paths, hearth::store::Create::Never).unwrap();
    let own = store.history(OWNER, 100).unwrap();
    assert_eq!(own.len(), 2, "the echo was stored: {:?}", own.len());
    assert!(store.history(ANNA, 100).unwrap().is_empty());
}

#[test]
fn pair_without_whatsapp_fails_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let out = hearth_with_store(dir.path(), "key", &["pair"])
        .env("HEARTH_WHATSAPP_HOST", "127.0.0.1:9")
        .output()
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach WhatsApp"), "{err}");
    assert!(
        !dir.path().join("bridge/session.db").exists(),
        "nothing is created before WhatsApp answers"
    );
}

/// A fresh appliance starts the bridge before anyone has paired: it keeps
/// running, reports "not linked" to serve (shown by `/status`), does not
/// exit or loop, and stops promptly when told.
#[test]
fn an_unlinked_bridge_waits_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let serve = start_serve(dir.path());
    let mut bridge = hearth_with_store(dir.path(), "key", &["bridge"])
        .env("HEARTH_WHATSAPP_HOST", "127.0.0.1:9")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let link = loop {
        let (mut cli, mut r) = common::daemon::open(dir.path(), "cli");
        let status = common::daemon::frame(&mut cli, &mut r, r#"{"type":"status"}"#);
        if status["link"] == "not_linked" || Instant::now() > deadline {
            break status["link"].clone();
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(link, "not_linked");
    // Still waiting, not restarting in a loop, after two more looks.
    std::thread::sleep(Duration::from_secs(11));
    assert!(bridge.try_wait().unwrap().is_none(), "the bridge exited");
    // SAFETY: signalling a child this test started.
    unsafe { libc::kill(bridge.id() as i32, libc::SIGTERM) };
    let stopped = Instant::now();
    let status = bridge.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(stopped.elapsed() < Duration::from_secs(5));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut bridge.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(
        err.matches("not linked to WhatsApp yet").count(),
        1,
        "said once: {err}"
    );
    assert!(
        !dir.path().join("bridge/session.db").exists(),
        "waiting creates no session"
    );
    kill(serve);
}
