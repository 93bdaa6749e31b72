//! Carrying out owner commands (parsed by [`crate::command`]) in the
//! daemon: each returns the text of the reply. Runs on the agent thread.
//!
//! Who may command is decided before this (the agent's `owner_command`);
//! must not hold SQL (it calls the store).

use super::Shared;
use super::memory::Memory;
use crate::audit::{Action, Actor, Entry};
use crate::command::{self, Command, Forget, MemoryAction};
use crate::policy::Decision;
use crate::reminder;
use crate::store::{Erase, Pending};

/// Hits `/search` shows.
const SEARCH_HITS: usize = 5;

/// Carries out `cmd`, which arrived as `msg`; returns the reply.
pub fn run(shared: &Shared, memory: Option<&mut Memory>, msg: &Pending, cmd: &Command) -> String {
    tracing::info!(command = cmd.name(), "owner command");
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, command = cmd.name(), "owner command failed");
        format!("Could not {what}: {e}")
    };
    match cmd {
        Command::Help => command::HELP.to_string(),
        Command::Status => match shared.status() {
            Ok(s) => format!(
                "Model {}, up {}, {} message(s) waiting, {} reply(ies) unsent, bridge {}{}.\n\
                 Memory: {} document(s), {} message(s), {} chunk(s). {} reminder(s) pending.\n\
                 Senders: {} waiting for /approve, {} message(s) dropped by policy.\n\
                 Voice notes: {}.{}",
                s.model,
                uptime(s.uptime_s),
                // This command itself is still counted as waiting.
                s.queue_depth.saturating_sub(1),
                s.unsent_replies,
                if s.bridge_connected {
                    "connected"
                } else {
                    "not connected"
                },
                if s.paused { ", answering PAUSED" } else { "" },
                s.documents,
                s.messages,
                s.chunks,
                s.reminders,
                s.senders_waiting,
                s.dropped,
                s.voice.as_deref().unwrap_or("unknown"),
                s.link
                    .map(|l| format!("\nWhatsApp: {}.", l.describe()))
                    .unwrap_or_default(),
            ),
            Err(e) => failed("read the status", &e),
        },
        Command::New => match shared.with_store(|s| s.restart_chat(&msg.chat_id, msg.row)) {
            Ok(()) => "Fresh conversation started.".to_string(),
            Err(e) => failed("start afresh", &e),
        },
        Command::Search(q) if q.is_empty() => "Search for what? e.g. /search wifi password".into(),
        Command::Search(q) => match memory {
            None => {
                "Search is off: the embedding model is not installed (scripts/setup.sh fetches it)."
                    .into()
            }
            Some(m) => match shared.with_store(|s| m.search(s, q, SEARCH_HITS)) {
                Ok(hits) if hits.is_empty() => "Nothing found.".into(),
                Ok(hits) => hits
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        format!(
                            "[{}] {}\n{}",
                            i + 1,
                            crate::sources::display_path(&h.path),
                            h.snippet
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n\n"),
                Err(e) => failed("search", &e),
            },
        },
        Command::Remind(args) => {
            let now_z = match jiff::Timestamp::from_millisecond(crate::clock::now_ms()) {
                Ok(t) => t.to_zoned_datetime(shared.time_zone.clone()),
                Err(e) => return failed("read the clock", &e),
            };
            match reminder::parse(args, &now_z) {
                Ok(r) => set_reminder(shared, &msg.chat_id, &r),
                Err(e) => format!("Not set: {e}"),
            }
        }
        Command::Reminders => match shared.with_store(|s| s.pending_reminders()) {
            Ok(rs) if rs.is_empty() => "No reminders pending.".into(),
            Ok(rs) => rs
                .iter()
                .map(|r| {
                    let due = jiff::Timestamp::from_millisecond(r.due_ms)
                        .map(|t| reminder::describe(t, &shared.time_zone))
                        .unwrap_or_default();
                    format!("{}. {due}: {}", r.id.0, r.text)
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => failed("list reminders", &e),
        },
        Command::Cancel(None) => "Cancel which? /reminders lists them with their numbers.".into(),
        Command::Cancel(Some(id)) => match shared.with_store(|s| s.cancel_reminder(*id)) {
            Ok(true) => {
                shared.reminders_changed.notify_one();
                format!("Reminder {} cancelled.", id.0)
            }
            Ok(false) => format!("No pending reminder {}; /reminders lists them.", id.0),
            Err(e) => failed("cancel", &e),
        },
        Command::Approve(code) | Command::Deny(code) if code.is_empty() => {
            "Which one? Use the code from the message that asked, e.g. /approve K7QX2".into()
        }
        Command::Approve(code) => settle(shared, msg, code, Decision::Approved),
        Command::Deny(code) => settle(shared, msg, code, Decision::Denied),
        Command::Pause => match shared.with_store(|s| s.set_paused(true)) {
            Ok(()) => "Paused: messages are kept but not answered until /resume.".into(),
            Err(e) => failed("pause", &e),
        },
        Command::Resume => match resume(shared) {
            Ok(waiting) => {
                format!("Resumed; answering the {waiting} message(s) that arrived meanwhile.")
            }
            Err(e) => failed("resume", &e),
        },
        Command::Memory(action) => memory_chats(shared, msg, action),
        Command::Audit(head) => audit(shared, head.as_deref()),
        Command::Forget(what) => forget(shared, msg, what),
        Command::Privacy => match shared.privacy() {
            Ok(r) => r.text(),
            Err(e) => failed("read what is stored", &e),
        },
        Command::Unknown(word) => format!("Unknown command /{word}.\n{}", command::HELP),
    }
}

/// Stores reminder `r` for `chat` and says so: the read-back every way of
/// setting a reminder ends with. Refused while the clock is not trusted.
fn set_reminder(shared: &Shared, chat: &str, r: &reminder::Request) -> String {
    if let Err(why) = shared.clock.check() {
        // The time was read off a clock that may jump: the reminder would
        // be dated wrongly.
        return format!(
            "Not set: {why}, so I cannot tell when that is. Try again once the box is online \
             (`hearth doctor` shows the clock)."
        );
    }
    let due = r.due.as_millisecond();
    match shared.with_store(|s| s.add_reminder(chat, &r.what, due)) {
        Ok(id) => {
            shared.reminders_changed.notify_one();
            format!(
                "Reminder {} set for {}: {}",
                id.0,
                reminder::describe(r.due, &shared.time_zone),
                r.what
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "storing a reminder failed");
            format!("Could not store the reminder: {e}")
        }
    }
}

/// Carries out an action the owner asked for in words (validated by
/// [`crate::actions::decide`]) exactly as the slash command it stands for;
/// returns the reply.
pub fn act(
    shared: &Shared,
    memory: Option<&mut Memory>,
    msg: &Pending,
    action: &crate::actions::Action,
) -> String {
    use crate::actions::{Action as Do, Pick, Which, pick};
    match action {
        Do::SetReminder(r) => {
            tracing::info!(command = "remind", "owner request in words");
            set_reminder(shared, &msg.chat_id, r)
        }
        Do::ListReminders => run(shared, memory, msg, &Command::Reminders),
        Do::Search(q) => run(shared, memory, msg, &Command::Search(q.clone())),
        Do::CancelReminder(Which::Number(id)) => {
            run(shared, memory, msg, &Command::Cancel(Some(*id)))
        }
        Do::CancelReminder(which) => {
            let pending = match shared.with_store(|s| s.pending_reminders()) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "reading reminders failed");
                    return format!("Could not read the reminders: {e}");
                }
            };
            let texts: Vec<_> = pending.iter().map(|r| (r.id, r.text.clone())).collect();
            match pick(which, &texts) {
                Pick::One(id) => {
                    let what = texts
                        .iter()
                        .find(|(i, _)| *i == id)
                        .map(|(_, t)| t.as_str())
                        .unwrap_or_default();
                    match shared.with_store(|s| s.cancel_reminder(id)) {
                        Ok(true) => {
                            shared.reminders_changed.notify_one();
                            format!("Reminder {} cancelled: {what}", id.0)
                        }
                        Ok(false) => {
                            format!("No pending reminder {}; /reminders lists them.", id.0)
                        }
                        Err(e) => format!("Could not cancel: {e}"),
                    }
                }
                Pick::NoneMatches if pending.is_empty() => "No reminders pending.".into(),
                Pick::NoneMatches => format!(
                    "No pending reminder is about that; nothing was cancelled. Pending:\n{}",
                    run(shared, None, msg, &Command::Reminders)
                ),
                Pick::Several(ids) => {
                    let lines: Vec<String> = texts
                        .iter()
                        .filter(|(i, _)| ids.contains(i))
                        .map(|(i, t)| format!("{}. {t}", i.0))
                        .collect();
                    format!(
                        "Several reminders match; nothing was cancelled. Which one? (/cancel N)\n{}",
                        lines.join("\n")
                    )
                }
            }
        }
    }
}

/// `/memory add|list|remove`.
fn memory_chats(shared: &Shared, msg: &Pending, action: &MemoryAction) -> String {
    let owner = || Actor::Owner(msg.chat_id.clone());
    let failed = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "memory command failed");
        format!("Could not change chat memory: {e}")
    };
    match action {
        MemoryAction::Usage => command::MEMORY_USAGE.to_string(),
        MemoryAction::Add(chat) if shared.config.is_owner_number(chat) => {
            "That is your own chat with Hearth; it is always kept.".into()
        }
        MemoryAction::Add(chat) => {
            let now = crate::clock::now_ms();
            match shared.with_store(|s| s.add_memory_chat(chat, now)) {
                Ok(true) => {
                    shared.audit(Entry::new(owner(), Action::ChatKept, chat.clone()));
                    format!(
                        "From now on messages in {} are kept for /search and questions. \
                     Hearth will not answer there. /memory remove {} deletes them.",
                        describe_chat(chat),
                        describe_chat(chat)
                    )
                }
                Ok(false) => format!("{} is already kept.", describe_chat(chat)),
                Err(e) => failed(&e),
            }
        }
        MemoryAction::List => match shared.with_store(|s| s.memory_chats()) {
            Ok(chats) if chats.is_empty() => {
                "No other chats are kept (/memory add CHAT to keep one).".into()
            }
            Ok(chats) => chats
                .iter()
                .map(|c| format!("{}: {} message(s)", describe_chat(&c.chat_id), c.messages))
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => failed(&e),
        },
        MemoryAction::Remove(chat) => match shared.with_store(|s| s.remove_memory_chat(chat)) {
            Ok(Some(n)) => {
                shared.audit(Entry::new(
                    owner(),
                    Action::ChatForgotten,
                    format!("{chat} ({n} message(s))"),
                ));
                format!(
                    "{} is no longer kept; {n} stored message(s) deleted.",
                    describe_chat(chat)
                )
            }
            Ok(None) => format!("{} was not kept.", describe_chat(chat)),
            Err(e) => failed(&e),
        },
    }
}

/// `/forget …`: erases for good, audited with the scope (never content).
fn forget(shared: &Shared, msg: &Pending, what: &Forget) -> String {
    let owner = Actor::Owner(msg.chat_id.clone());
    let now = crate::clock::now_ms();
    let local_ms = |t: jiff::civil::DateTime| {
        t.to_zoned_datetime(shared.time_zone.clone())
            .map(|z| z.timestamp().as_millisecond())
    };
    let erase = match what {
        Forget::Usage => return command::FORGET_USAGE.to_string(),
        Forget::Last(n) => Erase::Last {
            chat: msg.chat_id.clone(),
            n: *n,
        },
        Forget::Recent(d) => Erase::Range {
            from_ms: now.saturating_sub(d.as_millis().min(i64::MAX as u128) as i64),
            to_ms: i64::MAX,
        },
        Forget::Chat(chat) => Erase::Chat(chat.clone().unwrap_or_else(|| msg.chat_id.clone())),
        Forget::Between { from, to } => {
            let from_ms = match local_ms(*from) {
                Ok(t) => t,
                Err(e) => return format!("Not forgotten: {e}"),
            };
            let to_ms = match to.map(local_ms).transpose() {
                Ok(t) => t.unwrap_or(i64::MAX),
                Err(e) => return format!("Not forgotten: {e}"),
            };
            Erase::Range { from_ms, to_ms }
        }
        Forget::File(path) => {
            return match shared.with_store(|s| s.forget_document(path, owner)) {
                Ok(true) => format!(
                    "Forgot {} (its text, index entries and vectors). It is indexed again by the \
                     next `hearth index` unless you move it out of the folder or exclude it.",
                    path.display()
                ),
                Ok(false) => format!(
                    "{} is not indexed (give the full path as /search shows it).",
                    path.display()
                ),
                Err(e) => format!("Could not forget it: {e}"),
            };
        }
        Forget::Folder(path) => {
            return match shared.with_store(|s| s.forget_root(path, owner)) {
                Ok(true) => format!(
                    "Forgot the folder {} and everything indexed from it; Hearth no longer reads it.",
                    path.display()
                ),
                Ok(false) => format!("{} is not an indexed folder.", path.display()),
                Err(e) => format!("Could not forget it: {e}"),
            };
        }
        Forget::Everything => Erase::Everything,
    };
    match shared.with_store(|s| s.erase(&erase, msg.row, owner)) {
        Ok(e) => {
            // A forgotten reminder must not fire.
            shared.reminders_changed.notify_one();
            if erase == Erase::Everything
                && let Ok(Some(before_ms)) = shared.with_store(|s| s.media_erase_before())
            {
                let _ = shared.events.send(super::Event::EraseMedia { before_ms });
            }
            format!(
                "Forgotten and erased from the disk: {} message(s), {} reply(ies), {} reminder(s), {} document(s).",
                e.messages, e.replies, e.reminders, e.documents
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "erasing failed");
            format!("Could not forget: {e}")
        }
    }
}

/// `/audit [SEQ:HASH]`: the chain's state and the head to keep.
fn audit(shared: &Shared, head: Option<&str>) -> String {
    let kept = match head.map(|h| (h, crate::audit::parse_head(h))) {
        None => None,
        Some((_, Some(k))) => Some(k),
        Some((h, None)) => {
            return format!(
                "{h:?} is not a head: send /audit SEQ:HASH as an earlier /audit gave it."
            );
        }
    };
    match shared.with_store(|s| s.verify_audit(kept)) {
        Ok(result) => {
            let mut text = crate::audit::describe(&result, kept);
            if result.is_ok() && kept.is_none() {
                text.push_str(
                    ".\nKeep this message: if the log on the box is ever rewritten, \
                     /audit with this head (or `hearth audit verify --head …`) will say so.",
                );
            }
            text
        }
        Err(e) => {
            tracing::error!(error = %e, "audit check failed");
            format!("Could not read the audit log: {e}")
        }
    }
}

/// `+447009001111` for a person's chat, the id for a group.
fn describe_chat(chat: &str) -> String {
    match chat.strip_suffix("@s.whatsapp.net") {
        Some(digits) => format!("+{digits}"),
        None => chat.to_string(),
    }
}

/// `/approve` and `/deny`.
fn settle(shared: &Shared, msg: &Pending, code: &str, decision: Decision) -> String {
    let now = crate::clock::now_ms();
    let ttl = super::gate::QUESTIONS.ttl_ms;
    match shared.with_store(|s| s.settle_sender(code, decision, now, ttl)) {
        Ok(Some(who)) => {
            tracing::info!(decision = ?decision, "sender decided");
            shared.audit(Entry::new(
                Actor::Owner(msg.chat_id.clone()),
                match decision {
                    Decision::Approved => Action::SenderApproved,
                    Decision::Denied => Action::SenderDenied,
                },
                who.clone(),
            ));
            let who = who.replace("lid:", "LID ");
            match decision {
                Decision::Approved => format!("Approved {who}: they can talk to Hearth now."),
                Decision::Denied => format!("Denied {who}: their messages are dropped unread."),
            }
        }
        Ok(None) => format!("No open request with code {code} (codes expire after an hour)."),
        Err(e) => {
            tracing::error!(error = %e, "settling a sender failed");
            format!("Could not decide: {e}")
        }
    }
}

/// Unpauses; returns how many messages wait (besides the `/resume`).
/// One lock for both: a guard held in a `match` scrutinee lives through
/// the arms, so the arms must not lock again.
fn resume(shared: &Shared) -> Result<u64, crate::store::StoreError> {
    let mut store = shared.store();
    store.set_paused(false)?;
    Ok(store.queue_depth()?.saturating_sub(1))
}

/// `3 d 4 h`, `2 h 5 min`, `40 s`.
fn uptime(s: u64) -> String {
    let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}
