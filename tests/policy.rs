//! The sender policy through the real daemon and the socket, as the
//! WhatsApp bridge will drive it: deny by default, one question to the
//! owner per unknown sender with `/approve` and `/deny`, LID senders mapped
//! to the person behind them, groups only when allow-listed and
//! mentioned, personal mode confined to the owner's self chat. Nothing
//! from a sender who is not let in is stored, and every reply goes to the
//! chat that asked.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::{Value, json};

mod common;
use common::daemon::{kill, next_of, open, start_serve};

const OWNER: &str = "4915112345678@s.whatsapp.net";
const ANNA: &str = "447009001111@s.whatsapp.net";
const GROUP: &str = "120363000000000001@g.us";

fn config(dir: &std::path::Path, extra: &str) {
    std::fs::write(
        dir.join("config.toml"),
        format!("[owner]\nnumbers = [\"+4915112345678\"]\n[whatsapp]\n{extra}\n"),
    )
    .unwrap();
}

fn send(s: &mut UnixStream, m: Value) {
    s.write_all(format!("{m}\n").as_bytes()).unwrap();
}

fn msg(id: &str, chat: &str, sender: &str, text: &str) -> Value {
    json!({"type":"inbound","message_id":id,"chat_id":chat,"sender_id":sender,
        "text":text,"timestamp_ms":0})
}

/// Acknowledges every outbound frame and returns the next one.
fn outbound(s: &mut UnixStream, r: &mut BufReader<UnixStream>) -> Value {
    let o = next_of(r, "outbound");
    send(s, json!({"type":"sent","out_id":o["out_id"]}));
    o
}

/// Asserts no outbound frame arrives within `wait`.
fn silence(r: &mut BufReader<UnixStream>, wait: Duration) {
    r.get_ref().set_read_timeout(Some(wait)).unwrap();
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => assert!(!line.contains("\"outbound\""), "unexpected: {line}"),
        }
    }
    r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
}

fn stored_texts(dir: &std::path::Path) -> String {
    let paths = hearth::paths::Paths {
        data_dir: dir.join("data"),
        key_file: dir.join("key"),
    };
    let store = hearth::store::Store::open(&paths, hearth::store::Create::Never).unwrap();
    [OWNER, ANNA, "555000111@lid", GROUP]
        .iter()
        .flat_map(|c| store.history(c, 100).unwrap())
        .map(|t| t.text)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn unknown_senders_are_held_until_the_owner_approves_them() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), "");
    let serve = start_serve(dir.path());
    let (mut b, mut r) = open(dir.path(), "bridge");
    send(&mut b, msg("a1", ANNA, ANNA, "secret-one: hello Hearth"));
    assert_eq!(next_of(&mut r, "ack")["message_id"], "a1");
    // The owner is asked, in the owner's chat, without the message text.
    let q = outbound(&mut b, &mut r);
    assert_eq!(q["chat_id"], OWNER);
    let text = q["text"].as_str().unwrap();
    assert!(
        text.starts_with("+447009001111 wants to talk to Hearth."),
        "{text}"
    );
    assert!(!text.contains("secret-one"), "{text}");
    let code = text.split("/approve ").nth(1).unwrap()[..5].to_string();
    // Asked once: a second message makes no second question, no reply.
    send(&mut b, msg("a2", ANNA, ANNA, "secret-two: are you there?"));
    silence(&mut r, Duration::from_secs(2));

    send(
        &mut b,
        msg(
            "o1",
            OWNER,
            OWNER,
            &format!("/approve {}", code.to_lowercase()),
        ),
    );
    let ok = outbound(&mut b, &mut r);
    assert_eq!(ok["chat_id"], OWNER);
    assert_eq!(
        ok["text"],
        "Approved +447009001111: they can talk to Hearth now."
    );
    send(&mut b, msg("a3", ANNA, ANNA, "Say hello."));
    let reply = outbound(&mut b, &mut r);
    assert_eq!(
        reply["chat_id"], ANNA,
        "the reply goes to the chat that asked"
    );
    assert_eq!(reply["reply_to"], "a3");
    kill(serve);
    let kept = stored_texts(dir.path());
    assert!(
        !kept.contains("secret-"),
        "held messages were stored: {kept}"
    );
}

#[test]
fn denied_senders_are_dropped_and_lids_are_judged_by_the_person() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), "");
    let serve = start_serve(dir.path());
    let (mut b, mut r) = open(dir.path(), "bridge");
    // A LID whose digits equal the owner's number is not the owner.
    send(
        &mut b,
        msg("l1", "4915112345678@lid", "4915112345678@lid", "/status"),
    );
    let q = outbound(&mut b, &mut r);
    assert_eq!(q["chat_id"], OWNER);
    let text = q["text"].as_str().unwrap();
    assert!(text.contains("LID 4915112345678"), "{text}");
    let code = text.split("/deny ").nth(1).unwrap()[..5].to_string();
    send(&mut b, msg("o1", OWNER, OWNER, &format!("/deny {code}")));
    assert!(
        outbound(&mut b, &mut r)["text"]
            .as_str()
            .unwrap()
            .starts_with("Denied LID 4915112345678")
    );
    send(
        &mut b,
        msg(
            "l2",
            "4915112345678@lid",
            "4915112345678@lid",
            "secret-three",
        ),
    );
    silence(&mut r, Duration::from_secs(2));

    // The owner writing from a LID, the number alongside: the owner.
    let mut m = msg("o2", "555000111@lid", "555000111@lid", "/help");
    m["sender_alt"] = json!(OWNER);
    send(&mut b, m);
    let help = outbound(&mut b, &mut r);
    assert_eq!(help["text"], hearth::command::HELP);
    assert_eq!(
        help["chat_id"], OWNER,
        "one chat whichever address was used"
    );
    // Later the LID alone is still the owner (the mapping was learned).
    send(&mut b, msg("o3", "555000111@lid", "555000111@lid", "/new"));
    assert_eq!(
        outbound(&mut b, &mut r)["text"],
        "Fresh conversation started."
    );
    kill(serve);
    assert!(!stored_texts(dir.path()).contains("secret-"));
}

#[test]
fn groups_need_the_allow_list_and_a_mention() {
    let dir = tempfile::tempdir().unwrap();
    config(
        dir.path(),
        &format!("groups = [\"{GROUP}\"]\nallowed = [\"+447009001111\"]"),
    );
    let serve = start_serve(dir.path());
    let (mut b, mut r) = open(dir.path(), "bridge");
    let group = |id: &str, chat: &str, mention: bool, text: &str| {
        let mut m = msg(id, chat, ANNA, text);
        m["is_group"] = json!(true);
        m["mentions_me"] = json!(mention);
        m
    };
    send(&mut b, group("g1", "120363999@g.us", true, "secret-four"));
    send(&mut b, group("g2", GROUP, false, "secret-five"));
    silence(&mut r, Duration::from_secs(2));
    send(&mut b, group("g3", GROUP, true, "@Hearth say hi"));
    let reply = outbound(&mut b, &mut r);
    assert_eq!(reply["chat_id"], GROUP);
    assert_eq!(reply["reply_to"], "g3");
    kill(serve);
    assert!(!stored_texts(dir.path()).contains("secret-"));
}

#[test]
fn personal_mode_answers_only_the_owners_self_chat() {
    let dir = tempfile::tempdir().unwrap();
    config(
        dir.path(),
        "mode = \"personal\"\nallowed = [\"+447009001111\"]",
    );
    let serve = start_serve(dir.path());
    let (mut b, mut r) = open(dir.path(), "bridge");
    let mine = |id: &str, chat: &str, text: &str| {
        let mut m = msg(id, chat, OWNER, text);
        m["is_from_me"] = json!(true);
        m
    };
    // The owner writing to Anna, and Anna writing to the owner: not
    // Hearth's business, even though Anna is allowed.
    send(&mut b, mine("p1", ANNA, "secret-six"));
    send(&mut b, msg("p2", ANNA, ANNA, "secret-seven"));
    silence(&mut r, Duration::from_secs(2));
    // The self chat is Hearth's.
    send(&mut b, mine("p3", OWNER, "/help"));
    let help = outbound(&mut b, &mut r);
    assert_eq!(help["chat_id"], OWNER);
    assert_eq!(help["text"], hearth::command::HELP);
    kill(serve);
    assert!(!stored_texts(dir.path()).contains("secret-"));
}

#[test]
fn opted_in_chats_are_kept_searchable_never_answered_and_forgotten_on_removal() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), "mode = \"personal\"");
    let serve = start_serve(dir.path());
    let (mut b, mut r) = open(dir.path(), "bridge");
    let mine = |id: &str, chat: &str, text: &str| {
        let mut m = msg(id, chat, OWNER, text);
        m["is_from_me"] = json!(true);
        m
    };
    // Off by default: Anna's chat is neither answered nor kept.
    send(&mut b, msg("m1", ANNA, ANNA, "secret-before the opt-in"));
    silence(&mut r, Duration::from_secs(1));
    send(&mut b, mine("m2", OWNER, "/memory add +44 7009 001111"));
    let added = outbound(&mut b, &mut r)["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(added.contains("+447009001111"), "{added}");
    // Kept (and the owner's own messages there too), never answered.
    send(
        &mut b,
        msg(
            "m3",
            ANNA,
            ANNA,
            "The dinner is on Friday at 8, bring salad",
        ),
    );
    send(&mut b, mine("m4", ANNA, "Great, see you there"));
    silence(&mut r, Duration::from_secs(3));
    send(&mut b, mine("m5", OWNER, "/search dinner salad"));
    let found = outbound(&mut b, &mut r);
    assert_eq!(found["chat_id"], OWNER);
    assert!(found["text"].as_str().unwrap().contains("salad"), "{found}");
    send(&mut b, mine("m6", OWNER, "/memory list"));
    let list = outbound(&mut b, &mut r)["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(list.contains("+447009001111: 2 message(s)"), "{list}");
    send(&mut b, mine("m7", OWNER, "/memory remove +447009001111"));
    let removed = outbound(&mut b, &mut r)["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(removed.contains("2 stored message(s) deleted"), "{removed}");
    send(&mut b, mine("m8", OWNER, "/search dinner salad"));
    let gone = outbound(&mut b, &mut r)["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!gone.contains("salad"), "{gone}");
    kill(serve);
    // Anna's chat is gone from the store (what the owner's own chat
    // showed of it, e.g. the /search reply, stays the owner's).
    let paths = hearth::paths::Paths {
        data_dir: dir.path().join("data"),
        key_file: dir.path().join("key"),
    };
    let store = hearth::store::Store::open(&paths, hearth::store::Create::Never).unwrap();
    assert!(store.history(ANNA, 100).unwrap().is_empty());
    assert!(!stored_texts(dir.path()).contains("secret-"));
}
