//! The owner's commands through a running daemon, as the owner meets
//! them: reminders set in `hearth chat` fire on time (and late ones say
//! so after a restart), `/pause` keeps messages and `/resume` answers
//! them, `/search` finds documents and earlier messages, and the owner's
//! replies quote indexed documents.

use std::io::{BufRead, Write};
use std::time::Duration;

mod common;
use common::daemon::{
    allow_people, chat_client, kill, next_text, open, person, say, start_serve, start_serve_with,
};
use common::{POLICY_DIGITS, hearth_with_store, registered_docs, run, stderr};

#[test]
fn a_reminder_set_in_hearth_chat_fires_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let serve = start_serve(dir.path());
    let (mut chat, mut stdin, lines) = chat_client(dir.path(), &[]);
    let next = || lines.recv_timeout(Duration::from_secs(60)).unwrap();
    stdin.write_all(b"/remind in 3 seconds tea\n").unwrap();
    let (set_at, confirm) = next();
    assert!(confirm.starts_with("Reminder 1 set for "), "{confirm}");
    assert!(confirm.ends_with(" UTC: tea"), "{confirm}");
    stdin.write_all(b"/reminders\n").unwrap();
    assert!(next().1.starts_with("1. "));
    // The prompt is idle; the reminder arrives anyway, on time.
    let (fired_at, text) = loop {
        let (t, l) = next();
        if !l.is_empty() {
            break (t, l);
        }
    };
    assert_eq!(text, "Reminder: tea");
    let after = fired_at - set_at;
    assert!(
        after > Duration::from_millis(2000) && after < Duration::from_millis(5000),
        "fired {after:?} after it was set for 3 s"
    );
    stdin.write_all(b"/reminders\n").unwrap();
    assert_eq!(next().1, "No reminders pending.");
    drop(stdin);
    assert!(chat.wait().unwrap().success());
    kill(serve);
}

#[test]
fn a_reminder_due_while_hearth_was_off_fires_late_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let serve = start_serve(dir.path());
    let (mut cli, mut r) = open(dir.path(), "cli");
    say(&mut cli, "cli:owner", "1", "/remind in 1 minute bins");
    assert!(next_text(&mut r).contains(": bins"));
    say(&mut cli, "cli:owner", "2", "/remind tomorrow 9am stays");
    next_text(&mut r);
    say(&mut cli, "cli:owner", "3", "/cancel 2");
    assert_eq!(next_text(&mut r), "Reminder 2 cancelled.");
    say(&mut cli, "cli:owner", "4", "/cancel 2");
    assert!(next_text(&mut r).starts_with("No pending reminder 2"));
    kill(serve);
    drop((cli, r));
    // The box was off past the reminder's time: move it an hour back.
    let paths = hearth::paths::Paths {
        data_dir: dir.path().join("data"),
        key_file: dir.path().join("key"),
    };
    {
        let mut store = hearth::store::Store::open(&paths, hearth::store::Create::Never).unwrap();
        let r = store.pending_reminders().unwrap();
        assert_eq!(r.len(), 1);
        store.cancel_reminder(r[0].id).unwrap();
        let due = hearth::clock::now_ms() - 3_600_000;
        store.add_reminder("cli:owner", "bins", due).unwrap();
    }
    let serve = start_serve(dir.path());
    // A terminal that connects later still gets it, once.
    std::thread::sleep(Duration::from_millis(500));
    let (mut cli, mut r) = open(dir.path(), "cli");
    let fired = common::daemon::next_of(&mut r, "outbound");
    let text = fired["text"].as_str().unwrap();
    assert!(
        text.starts_with("Reminder (late: it was due ") && text.ends_with("): bins"),
        "{text}"
    );
    // Delivered: the next terminal is not offered it again.
    let sent = serde_json::json!({"type": "sent", "out_id": fired["out_id"]});
    cli.write_all(format!("{sent}\n").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (_again, mut r2) = open(dir.path(), "cli");
    r2.get_ref()
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut line = String::new();
    assert!(r2.read_line(&mut line).is_err(), "delivered twice: {line}");
    kill(serve);
}

/// A Pi boots with its clock behind and jumps when network time arrives:
/// until the clock is synchronised no reminder fires and none is set; after
/// the jump, the reminders that came due meanwhile come as one message.
#[test]
fn reminders_wait_for_a_synchronised_clock_then_come_as_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("timesync/synchronized");
    std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        format!("[clock]\nwait_for_sync = \"always\"\nsync_marker = {marker:?}\n"),
    )
    .unwrap();
    let paths = hearth::paths::Paths {
        data_dir: dir.path().join("data"),
        key_file: dir.path().join("key"),
    };
    let pending = || {
        hearth::store::Store::open(&paths, hearth::store::Create::Never)
            .unwrap()
            .pending_reminder_count()
            .unwrap()
    };
    {
        let mut store =
            hearth::store::Store::open(&paths, hearth::store::Create::IfMissing).unwrap();
        let now = hearth::clock::now_ms();
        store
            .add_reminder("cli:owner", "bins", now - 3_600_000)
            .unwrap();
        store
            .add_reminder("cli:owner", "tea", now - 600_000)
            .unwrap();
    }
    let serve = start_serve(dir.path());
    let (mut cli, mut r) = open(dir.path(), "cli");
    say(&mut cli, "cli:owner", "1", "/remind in 5 minutes call");
    let refused = next_text(&mut r);
    assert!(
        refused.starts_with("Not set: the clock is waiting for network time"),
        "{refused}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(pending(), 2, "fired on an unsynchronised clock");

    std::fs::write(&marker, "").unwrap();
    let text = next_text(&mut r);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("2 reminders came due"), "{text}");
    assert!(lines[1].starts_with("• bins (due "), "{text}");
    assert!(lines[2].starts_with("• tea (due "), "{text}");
    assert_eq!(pending(), 0);
    say(&mut cli, "cli:owner", "2", "/remind in 5 minutes call");
    assert!(next_text(&mut r).starts_with("Reminder 3 set for "));
    kill(serve);
}

#[test]
fn pause_keeps_messages_and_resume_answers_them() {
    let dir = tempfile::tempdir().unwrap();
    allow_people(dir.path(), 1, "");
    let serve = start_serve(dir.path());
    let (mut cli, mut r) = open(dir.path(), "cli");
    say(&mut cli, "cli:owner", "1", "/pause");
    assert!(next_text(&mut r).starts_with("Paused"));
    let (mut bridge, mut b) = open(dir.path(), "bridge");
    say(&mut bridge, &person(0), "f1", "Hello there");
    assert_eq!(hearth::proto::VERSION, 1);
    // Stored (acknowledged) but not answered.
    assert_eq!(common::daemon::next_of(&mut b, "ack")["message_id"], "f1");
    say(&mut cli, "cli:owner", "2", "Are you there?");
    // The owner's commands still work, even queued behind a message.
    say(&mut cli, "cli:owner", "3", "/status");
    let status = next_text(&mut r);
    assert!(status.contains("answering PAUSED"), "{status}");
    // f1 and "Are you there?" (the /status itself is not counted).
    assert!(status.contains("2 message(s) waiting"), "{status}");
    b.get_ref()
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut line = String::new();
    assert!(
        b.read_line(&mut line).is_err(),
        "answered while paused: {line}"
    );
    // A restart keeps the pause.
    kill(serve);
    let serve = start_serve(dir.path());
    let (mut cli, mut r) = open(dir.path(), "cli");
    let (_bridge, mut b) = open(dir.path(), "bridge");
    say(&mut cli, "cli:owner", "4", "/resume");
    assert!(next_text(&mut r).starts_with("Resumed; answering the 2 message(s)"));
    assert_eq!(
        common::daemon::next_of(&mut b, "outbound")["reply_to"],
        "f1"
    );
    let reply = common::daemon::next_of(&mut r, "outbound");
    assert_eq!(reply["reply_to"], "2");
    kill(serve);
}

#[test]
fn search_finds_documents_and_earlier_messages() {
    let (dir, _) = registered_docs([(
        "garden.md",
        "The spare house key is under the blue flowerpot by the back door.",
    )]);
    let sync = run(hearth_with_store(dir.path(), "key", &["index"]));
    assert!(sync.status.success(), "{}", stderr(&sync));
    allow_people(dir.path(), 1, "");
    let serve = start_serve(dir.path());
    let (mut cli, mut r) = open(dir.path(), "cli");
    say(&mut cli, "cli:owner", "1", "/search flowerpot");
    let found = next_text(&mut r);
    assert!(
        found.starts_with("[1] ") && found.contains("garden.md"),
        "{found}"
    );
    assert!(found.contains("**flowerpot**"), "{found}");
    // A message becomes searchable once it is answered.
    say(
        &mut cli,
        "cli:owner",
        "2",
        "Note: my gym locker code is 4711.",
    );
    next_text(&mut r);
    say(&mut cli, "cli:owner", "3", "/search gym locker code");
    let found = next_text(&mut r);
    assert!(found.contains("chat:cli:owner at "), "{found}");
    say(&mut cli, "cli:owner", "4", "/search");
    assert!(next_text(&mut r).starts_with("Search for what?"));
    // A stranger's words are not the owner's commands, and not searchable
    // through them either: their "/search" is just a message.
    let (mut bridge, mut b) = open(dir.path(), "bridge");
    say(&mut bridge, &person(0), "5", "/search flowerpot");
    let reply = next_text(&mut b);
    assert!(!reply.contains("garden.md"), "{reply}");
    kill(serve);
}

#[test]
fn the_owners_replies_quote_indexed_documents_and_strangers_get_none() {
    let dir = common::indexed_docs();
    allow_people(dir.path(), 1, "");
    let serve = start_serve_with(dir.path(), &["-n", "40"]);
    let question = "What is my car insurance policy number?";
    let (mut cli, mut r) = open(dir.path(), "cli");
    say(&mut cli, "cli:owner", "1", question);
    let answer = next_text(&mut r);
    assert!(answer.contains(POLICY_DIGITS), "{answer}");
    let (mut bridge, mut b) = open(dir.path(), "bridge");
    say(&mut bridge, &person(0), "2", question);
    let answer = next_text(&mut b);
    assert!(!answer.contains(POLICY_DIGITS), "{answer}");
    kill(serve);
}
