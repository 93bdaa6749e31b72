//! The sender policy through the real daemon, driven the two ways a
//! transport drives it: as `hearth bridge --simulate` (the real bridge's
//! queue and echo rule, stdin/stdout for WhatsApp) and as a raw bridge
//! client on the socket. Deny by default, one question to the owner per
//! unknown sender with `/approve` and `/deny`, LID senders mapped to the
//! person behind them, groups only when allow-listed and mentioned,
//! personal mode confined to the owner's self chat, opted-in chats kept
//! but never answered. Nothing from a sender who is not let in is stored,
//! and every reply goes to the chat that asked.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use serde_json::{Value, json};

mod common;
use common::daemon::{kill, next_of, open, start_serve};
use common::hearth_with_store;

const OWNER: &str = "4915112345678@s.whatsapp.net";
const ANNA: &str = "447009001111@s.whatsapp.net";
const GROUP: &str = "120363000000000001@g.us";

fn config(dir: &Path, extra: &str) {
    std::fs::write(
        dir.join("config.toml"),
        format!("[owner]\nnumbers = [\"+4915112345678\"]\n[whatsapp]\n{extra}\n"),
    )
    .unwrap();
}

fn msg(id: &str, chat: &str, sender: &str, text: &str) -> Value {
    json!({"message_id":id,"chat_id":chat,"sender_id":sender,"text":text,"timestamp_ms":0})
}

/// How a test talks to the daemon: as a transport would.
trait Transport {
    /// Delivers an inbound message.
    fn send(&mut self, m: Value);
    /// The next message Hearth sends (confirmed delivered).
    fn outbound(&mut self) -> Value;
    /// Asserts Hearth sends nothing within `wait`.
    fn silence(&mut self, wait: Duration);
}

/// A raw bridge client on the socket.
struct Raw {
    s: UnixStream,
    r: BufReader<UnixStream>,
}

impl Transport for Raw {
    fn send(&mut self, mut m: Value) {
        m["type"] = json!("inbound");
        self.s.write_all(format!("{m}\n").as_bytes()).unwrap();
    }

    fn outbound(&mut self) -> Value {
        let o = next_of(&mut self.r, "outbound");
        let sent = json!({"type":"sent","out_id":o["out_id"]});
        self.s.write_all(format!("{sent}\n").as_bytes()).unwrap();
        o
    }

    fn silence(&mut self, wait: Duration) {
        self.r.get_ref().set_read_timeout(Some(wait)).unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            match self.r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => assert!(!line.contains("\"outbound\""), "unexpected: {line}"),
            }
        }
        self.r
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
    }
}

/// `hearth bridge --simulate`: messages as stdin lines, what it prints.
struct Sim {
    child: Child,
    stdin: ChildStdin,
    printed: Receiver<Value>,
}

impl Sim {
    fn start(dir: &Path) -> Self {
        let mut child = hearth_with_store(dir, "key", &["bridge", "--simulate", "--idle", "2"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, printed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str::<Value>(&l).unwrap());
            }
        });
        Self {
            child,
            stdin,
            printed,
        }
    }
}

impl Transport for Sim {
    fn send(&mut self, m: Value) {
        self.stdin.write_all(format!("{m}\n").as_bytes()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn outbound(&mut self) -> Value {
        self.printed
            .recv_timeout(Duration::from_secs(120))
            .expect("a message from Hearth")
    }

    fn silence(&mut self, wait: Duration) {
        match self.printed.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            other => panic!("unexpected: {other:?}"),
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `body` against a fresh daemon (configured with `extra`) once per
/// transport, then checks that nothing marked `secret-` was stored.
fn each_transport(extra: &str, body: impl Fn(&mut dyn Transport), after: impl Fn(&Path)) {
    for simulated in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        config(dir.path(), extra);
        let serve = start_serve(dir.path());
        if simulated {
            let mut t = Sim::start(dir.path());
            body(&mut t);
        } else {
            let (s, r) = open(dir.path(), "bridge");
            body(&mut Raw { s, r });
        }
        kill(serve);
        let kept = stored_texts(dir.path());
        assert!(
            !kept.contains("secret-"),
            "held messages were stored (simulated: {simulated}): {kept}"
        );
        after(dir.path());
    }
}

fn store(dir: &Path) -> hearth::store::Store {
    let paths = hearth::paths::Paths {
        data_dir: dir.join("data"),
        key_file: dir.join("key"),
    };
    hearth::store::Store::open(&paths, hearth::store::Create::Never).unwrap()
}

fn stored_texts(dir: &Path) -> String {
    let store = store(dir);
    [OWNER, ANNA, "555000111@lid", GROUP]
        .iter()
        .flat_map(|c| store.history(c, 100).unwrap())
        .map(|t| t.text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The audit log as `action object [actor]` lines, after checking that
/// its chain is intact and that no message text is in it.
fn audit_log(dir: &Path) -> Vec<String> {
    let store = store(dir);
    let records = store.audit_records().unwrap();
    assert!(
        hearth::audit::verify(store.audit_anchor().unwrap(), records.clone()).is_ok(),
        "audit chain broken"
    );
    let lines: Vec<String> = records
        .iter()
        .map(|r| format!("{} {} [{}]", r.action, r.object, r.actor))
        .collect();
    assert!(
        !lines.iter().any(|l| l.contains("secret-")),
        "message text in the audit log: {lines:?}"
    );
    lines
}

fn has(log: &[String], want: &str) -> bool {
    log.iter().any(|l| l.starts_with(want))
}

/// A message the owner's account itself sent (personal mode).
fn mine(id: &str, chat: &str, text: &str) -> Value {
    let mut m = msg(id, chat, OWNER, text);
    m["is_from_me"] = json!(true);
    m
}

#[test]
fn unknown_senders_are_held_until_the_owner_approves_them() {
    each_transport(
        "",
        |t| {
            t.send(msg("a1", ANNA, ANNA, "secret-one: hello Hearth"));
            // The owner is asked, in the owner's chat, without the message text.
            let q = t.outbound();
            assert_eq!(q["chat_id"], OWNER);
            let text = q["text"].as_str().unwrap();
            assert!(
                text.starts_with("+447009001111 wants to talk to Hearth."),
                "{text}"
            );
            assert!(!text.contains("secret-one"), "{text}");
            let code = text.split("/approve ").nth(1).unwrap()[..5].to_string();
            // Asked once: a second message makes no second question, no reply.
            t.send(msg("a2", ANNA, ANNA, "secret-two: are you there?"));
            t.silence(Duration::from_secs(2));

            t.send(msg(
                "o1",
                OWNER,
                OWNER,
                &format!("/approve {}", code.to_lowercase()),
            ));
            let ok = t.outbound();
            assert_eq!(ok["chat_id"], OWNER);
            assert_eq!(
                ok["text"],
                "Approved +447009001111: they can talk to Hearth now."
            );
            t.send(msg("a3", ANNA, ANNA, "Say hello."));
            let reply = t.outbound();
            assert_eq!(
                reply["chat_id"], ANNA,
                "the reply goes to the chat that asked"
            );
            assert_eq!(reply["reply_to"], "a3");

            // The owner can take the log's head to the phone and check it later.
            t.send(msg("o2", OWNER, OWNER, "/audit"));
            let audit = t.outbound()["text"].as_str().unwrap().to_string();
            assert!(audit.starts_with("audit log intact: "), "{audit}");
            let head = audit.split("head ").nth(1).unwrap();
            let head = head.split(['.', '\n']).next().unwrap().to_string();
            t.send(msg("o3", OWNER, OWNER, &format!("/audit {head}")));
            let again = t.outbound()["text"].as_str().unwrap().to_string();
            assert!(again.contains("matches the head you kept"), "{again}");
            t.send(msg("o4", OWNER, OWNER, "/audit 1:00"));
            let bad = t.outbound()["text"].as_str().unwrap().to_string();
            assert!(bad.contains("not a head"), "{bad}");
        },
        |dir| {
            let log = audit_log(dir);
            for want in [
                "sender-asked +447009001111",
                "command /approve [owner@4915112345678@s.whatsapp.net]",
                "sender-approved +447009001111",
            ] {
                assert!(has(&log, want), "no `{want}` in {log:#?}");
            }
        },
    );
}

#[test]
fn denied_senders_are_dropped_and_lids_are_judged_by_the_person() {
    each_transport(
        "",
        |t| {
            // A LID whose digits equal the owner's number is not the owner.
            t.send(msg(
                "l1",
                "4915112345678@lid",
                "4915112345678@lid",
                "/status",
            ));
            let q = t.outbound();
            assert_eq!(q["chat_id"], OWNER);
            let text = q["text"].as_str().unwrap();
            assert!(text.contains("LID 4915112345678"), "{text}");
            let code = text.split("/deny ").nth(1).unwrap()[..5].to_string();
            t.send(msg("o1", OWNER, OWNER, &format!("/deny {code}")));
            assert!(
                t.outbound()["text"]
                    .as_str()
                    .unwrap()
                    .starts_with("Denied LID 4915112345678")
            );
            t.send(msg(
                "l2",
                "4915112345678@lid",
                "4915112345678@lid",
                "secret-three",
            ));
            t.silence(Duration::from_secs(2));

            // The owner writing from a LID, the number alongside: the owner.
            let mut m = msg("o2", "555000111@lid", "555000111@lid", "/help");
            m["sender_alt"] = json!(OWNER);
            t.send(m);
            let help = t.outbound();
            assert_eq!(help["text"], hearth::command::HELP);
            assert_eq!(
                help["chat_id"], OWNER,
                "one chat whichever address was used"
            );
            // Later the LID alone is still the owner (the mapping was learned).
            t.send(msg("o3", "555000111@lid", "555000111@lid", "/new"));
            assert_eq!(t.outbound()["text"], "Fresh conversation started.");
        },
        |dir| {
            let log = audit_log(dir);
            for want in [
                "sender-asked lid:4915112345678",
                "sender-denied lid:4915112345678",
                "message-refused message in 4915112345678@lid: denied",
            ] {
                assert!(has(&log, want), "no `{want}` in {log:#?}");
            }
        },
    );
}

#[test]
fn groups_need_the_allow_list_and_a_mention() {
    each_transport(
        &format!("groups = [\"{GROUP}\"]\nallowed = [\"+447009001111\"]"),
        |t| {
            let group = |id: &str, chat: &str, mention: bool, text: &str| {
                let mut m = msg(id, chat, ANNA, text);
                m["is_group"] = json!(true);
                m["mentions_me"] = json!(mention);
                m
            };
            t.send(group("g1", "120363999@g.us", true, "secret-four"));
            t.send(group("g2", GROUP, false, "secret-five"));
            t.silence(Duration::from_secs(2));
            t.send(group("g3", GROUP, true, "@Hearth say hi"));
            let reply = t.outbound();
            assert_eq!(reply["chat_id"], GROUP);
            assert_eq!(reply["reply_to"], "g3");
        },
        |_| {},
    );
}

#[test]
fn personal_mode_answers_only_the_owners_self_chat() {
    each_transport(
        "mode = \"personal\"\nallowed = [\"+447009001111\"]",
        |t| {
            // The owner writing to Anna, and Anna writing to the owner: not
            // Hearth's business, even though Anna is allowed.
            t.send(mine("p1", ANNA, "secret-six"));
            t.send(msg("p2", ANNA, ANNA, "secret-seven"));
            t.silence(Duration::from_secs(2));
            // The self chat is Hearth's.
            t.send(mine("p3", OWNER, "/help"));
            let help = t.outbound();
            assert_eq!(help["chat_id"], OWNER);
            assert_eq!(help["text"], hearth::command::HELP);
        },
        |_| {},
    );
}

#[test]
fn opted_in_chats_are_kept_searchable_never_answered_and_forgotten_on_removal() {
    each_transport(
        "mode = \"personal\"",
        |t| {
            // Off by default: Anna's chat is neither answered nor kept.
            t.send(msg("m1", ANNA, ANNA, "secret-before the opt-in"));
            t.silence(Duration::from_secs(1));
            t.send(mine("m2", OWNER, "/memory add +44 7009 001111"));
            let added = t.outbound()["text"].as_str().unwrap().to_string();
            assert!(added.contains("+447009001111"), "{added}");
            // Kept (and the owner's own messages there too), never answered.
            t.send(msg(
                "m3",
                ANNA,
                ANNA,
                "The dinner is on Friday at 8, bring salad",
            ));
            t.send(mine("m4", ANNA, "Great, see you there"));
            t.silence(Duration::from_secs(3));
            t.send(mine("m5", OWNER, "/search dinner salad"));
            let found = t.outbound();
            assert_eq!(found["chat_id"], OWNER);
            assert!(found["text"].as_str().unwrap().contains("salad"), "{found}");
            t.send(mine("m6", OWNER, "/memory list"));
            let list = t.outbound()["text"].as_str().unwrap().to_string();
            assert!(list.contains("+447009001111: 2 message(s)"), "{list}");
            t.send(mine("m7", OWNER, "/memory remove +447009001111"));
            let removed = t.outbound()["text"].as_str().unwrap().to_string();
            assert!(removed.contains("2 stored message(s) deleted"), "{removed}");
            t.send(mine("m8", OWNER, "/search dinner salad"));
            let gone = t.outbound()["text"].as_str().unwrap().to_string();
            assert!(!gone.contains("salad"), "{gone}");
        },
        |dir| {
            // Anna's chat is gone from the store (what the owner's own chat
            // showed of it, e.g. the /search reply, stays the owner's).
            assert!(store(dir).history(ANNA, 100).unwrap().is_empty());
        },
    );
}
