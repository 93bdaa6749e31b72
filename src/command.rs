//! Owner commands: `/help`, `/status`, `/new`, `/search`, `/remind`,
//! `/reminders`, `/cancel`, `/approve`, `/deny`, `/pause`, `/resume`,
//! `/memory`, `/privacy`, `/forget`, `/audit`. Parsed from the owner's
//! messages before the model sees them (anyone else's `/…` text is just
//! text); an unknown command gets the list, never the model.
//!
//! Pure parsing; the daemon's agent carries the commands out.

use crate::store::ReminderId;

/// A parsed owner command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Status,
    /// Start a fresh conversation: earlier messages leave the prompt.
    New,
    /// Search documents and chats for the words.
    Search(String),
    /// Set a reminder: the text after `/remind` (WHEN WHAT).
    Remind(String),
    /// List pending reminders.
    Reminders,
    /// Cancel a reminder by its number; `None` when no number was given.
    Cancel(Option<ReminderId>),
    /// Let a sender the owner was asked about talk to Hearth (their code).
    Approve(String),
    /// Drop a sender's messages from now on (their code).
    Deny(String),
    /// Stop answering (messages are still stored).
    Pause,
    /// Answer again, starting with what arrived meanwhile.
    Resume,
    /// Opt-in chat memory.
    Memory(MemoryAction),
    /// What is stored, how long, where the keys are, what the network sees.
    Privacy,
    /// Erase what Hearth remembers.
    Forget(Forget),
    /// Check the audit log and send its head; with a head kept earlier
    /// (`SEQ:HASH`), also check that record.
    Audit(Option<String>),
    /// `/something` Hearth does not know.
    Unknown(String),
}

/// `/memory add CHAT`, `/memory list`, `/memory remove CHAT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryAction {
    /// Keep this chat's messages from now on (a chat id, see [`chat_id`]).
    Add(String),
    List,
    /// Stop, and delete what was kept.
    Remove(String),
    /// Missing or unreadable arguments: the usage.
    Usage,
}

/// `/forget …`: what to erase. Times are the owner's local civil times;
/// the daemon places them in the configured time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forget {
    /// The last N messages of this chat (`/forget last 5`).
    Last(usize),
    /// Every chat's messages of the last period (`/forget last 2 hours`).
    Recent(std::time::Duration),
    /// A whole chat; `None` is the chat the command came from.
    Chat(Option<String>),
    /// Every chat's messages between two local times (`/forget from
    /// 2026-11-01 to 2026-11-03 18:00`, `/forget since 2026-11-01`).
    Between {
        from: jiff::civil::DateTime,
        to: Option<jiff::civil::DateTime>,
    },
    /// One indexed file, or a whole indexed folder.
    File(std::path::PathBuf),
    Folder(std::path::PathBuf),
    Everything,
    Usage,
}

/// What `/forget` says when it cannot read its arguments.
pub const FORGET_USAGE: &str = "Usage: /forget last N (messages of this chat), \
/forget last N minutes|hours|days, /forget chat [CHAT], \
/forget from 2026-11-01 [18:00] to 2026-11-03 [09:00], /forget since 2026-11-01, \
/forget file PATH, /forget folder PATH, /forget everything. \
Forgotten messages, replies, reminders and index entries are erased from the disk, not just hidden.";

fn forget(args: &str) -> Forget {
    let (verb, rest) = match args.split_once(char::is_whitespace) {
        Some((v, r)) => (v, r.trim()),
        None => (args, ""),
    };
    match verb.to_ascii_lowercase().as_str() {
        "everything" | "all" if rest.is_empty() => Forget::Everything,
        "last" => {
            let mut words = rest.split_whitespace();
            let n = words.next().and_then(|n| n.parse::<u64>().ok());
            match (n, words.next().map(str::to_ascii_lowercase), words.next()) {
                (Some(n), None, None) if n > 0 => Forget::Last(n as usize),
                (Some(n), Some(unit), None) if n > 0 => {
                    let secs = match unit.trim_end_matches('s') {
                        "minute" | "min" => 60,
                        "hour" | "h" => 3600,
                        "day" | "d" => 86_400,
                        "week" => 7 * 86_400,
                        _ => return Forget::Usage,
                    };
                    Forget::Recent(std::time::Duration::from_secs(n.saturating_mul(secs)))
                }
                _ => Forget::Usage,
            }
        }
        "chat" if rest.is_empty() => Forget::Chat(None),
        "chat" => chat_id(rest).map_or(Forget::Usage, |c| Forget::Chat(Some(c))),
        "since" => civil(rest).map_or(Forget::Usage, |from| Forget::Between { from, to: None }),
        "from" => {
            let lower = rest.to_ascii_lowercase();
            let Some(i) = lower.find(" to ") else {
                return Forget::Usage;
            };
            match (civil(&rest[..i]), civil(&rest[i + 4..])) {
                (Some(from), Some(to)) if from < to => Forget::Between { from, to: Some(to) },
                _ => Forget::Usage,
            }
        }
        "file" if !rest.is_empty() => Forget::File(rest.into()),
        "folder" | "root" if !rest.is_empty() => Forget::Folder(rest.into()),
        _ => Forget::Usage,
    }
}

/// `2026-11-01` (its start) or `2026-11-01 18:00`.
fn civil(s: &str) -> Option<jiff::civil::DateTime> {
    // jiff reads the date part of a longer string as a date too, so the
    // time is split off first.
    let (date, time) = s.trim().split_once([' ', 'T']).unwrap_or((s.trim(), ""));
    let date = date.parse::<jiff::civil::Date>().ok()?;
    let time = match time.trim() {
        "" => jiff::civil::Time::midnight(),
        t => t.parse::<jiff::civil::Time>().ok()?,
    };
    Some(date.to_datetime(time))
}

/// What `/memory` says when it cannot read its arguments.
pub const MEMORY_USAGE: &str = "Usage: /memory add CHAT, /memory list, /memory remove CHAT. \
CHAT is a phone number with country code (+447700900123) or a group id (…@g.us). \
Messages of a chat you add are kept for /search and questions; Hearth never answers there. \
Removing a chat deletes what was kept.";

/// The chat id a `/memory` argument names: a phone number (with country
/// code, spaces allowed) becomes its WhatsApp chat, a JID stays itself.
pub fn chat_id(arg: &str) -> Option<String> {
    let arg = arg.trim();
    if arg.contains('@') {
        return crate::policy::Jid::parse(arg).map(|_| arg.to_string());
    }
    let digits: String = arg
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    let digits = digits.strip_prefix('+')?;
    (digits.len() >= 8 && digits.len() <= 15 && digits.chars().all(|c| c.is_ascii_digit()))
        .then(|| format!("{digits}@s.whatsapp.net"))
}

impl Command {
    /// The command's name, for the audit log (never its arguments).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Help => "help",
            Command::Status => "status",
            Command::New => "new",
            Command::Search(_) => "search",
            Command::Remind(_) => "remind",
            Command::Reminders => "reminders",
            Command::Cancel(_) => "cancel",
            Command::Approve(_) => "approve",
            Command::Deny(_) => "deny",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Memory(_) => "memory",
            Command::Audit(_) => "audit",
            Command::Forget(_) => "forget",
            Command::Privacy => "privacy",
            Command::Unknown(_) => "unknown",
        }
    }
}

/// What `/help` says.
pub const HELP: &str = "Commands:
/help: this list
/status: model, uptime, queue, index
/new: start a fresh conversation
/search WORDS: search your documents and chats
/remind WHEN WHAT: e.g. /remind in 10 minutes call Anna, /remind tomorrow 9am bins, /remind 2026-12-24 18:00 presents
/reminders: pending reminders
/cancel N: cancel reminder N
/approve CODE, /deny CODE: let someone who wrote talk to Hearth, or not
/pause, /resume: stop and restart answering (messages are kept and answered on resume)
/memory add CHAT, /memory list, /memory remove CHAT: keep another chat's messages for search (never answered there)
/privacy: what is stored, for how long, where the keys are, what the network sees
/forget last N | chat [CHAT] | from DATE to DATE | file PATH | folder PATH | everything: erase it for good
/audit: check the audit log and get its head to keep; /audit SEQ:HASH checks a head you kept

Or just say it, in your own words (not in a forwarded or quoted message):
\"remind me in 20 minutes to take the pizza out\", \"don't let me forget to pay the bill tomorrow at noon\",
\"what reminders do I have?\", \"cancel the reminder about the pizza\", \"find my notes about the boiler\".
The reply says exactly what was set; when the time is unclear you are asked.
Voice notes work too: they are heard on this box (nothing is sent out) and answered like typed text;
your own voice notes may ask for the same things, a forwarded one never acts.";

/// The command in `text`, if it is one (starts with `/`).
pub fn parse(text: &str) -> Option<Command> {
    let rest = text.trim().strip_prefix('/')?;
    let (word, args) = match rest.split_once(char::is_whitespace) {
        Some((w, a)) => (w, a.trim()),
        None => (rest, ""),
    };
    Some(match word.to_ascii_lowercase().as_str() {
        "help" | "start" => Command::Help,
        "status" => Command::Status,
        "new" | "reset" => Command::New,
        "search" | "find" => Command::Search(args.to_string()),
        "remind" | "reminder" => Command::Remind(args.to_string()),
        "reminders" => Command::Reminders,
        "cancel" => Command::Cancel(args.trim_start_matches('#').parse().ok().map(ReminderId)),
        "approve" => Command::Approve(args.to_ascii_uppercase()),
        "deny" => Command::Deny(args.to_ascii_uppercase()),
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        "memory" => Command::Memory(memory_action(args)),
        "forget" | "erase" => Command::Forget(forget(args)),
        "privacy" => Command::Privacy,
        "audit" => Command::Audit((!args.is_empty()).then(|| args.to_string())),
        _ => Command::Unknown(word.chars().take(32).collect()),
    })
}

fn memory_action(args: &str) -> MemoryAction {
    let (verb, rest) = match args.split_once(char::is_whitespace) {
        Some((v, r)) => (v, r.trim()),
        None => (args, ""),
    };
    let chat = || chat_id(rest);
    match verb.to_ascii_lowercase().as_str() {
        "list" | "" => MemoryAction::List,
        "add" => chat().map_or(MemoryAction::Usage, MemoryAction::Add),
        "remove" | "forget" => chat().map_or(MemoryAction::Usage, MemoryAction::Remove),
        _ => MemoryAction::Usage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forget_reads_counts_periods_chats_dates_and_paths() {
        let f = |s: &str| match parse(s) {
            Some(Command::Forget(f)) => f,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(f("/forget last 5"), Forget::Last(5));
        assert_eq!(
            f("/forget last 2 hours"),
            Forget::Recent(std::time::Duration::from_secs(7200))
        );
        assert_eq!(f("/forget chat"), Forget::Chat(None));
        assert_eq!(
            f("/forget chat +44 7009 001111"),
            Forget::Chat(Some("447009001111@s.whatsapp.net".into()))
        );
        assert_eq!(f("/forget everything"), Forget::Everything);
        assert_eq!(
            f("/forget from 2026-11-01 to 2026-11-03 18:00"),
            Forget::Between {
                from: jiff::civil::date(2026, 11, 1).at(0, 0, 0, 0),
                to: Some(jiff::civil::date(2026, 11, 3).at(18, 0, 0, 0)),
            }
        );
        assert_eq!(
            f("/forget since 2026-11-01 07:30"),
            Forget::Between {
                from: jiff::civil::date(2026, 11, 1).at(7, 30, 0, 0),
                to: None,
            }
        );
        assert_eq!(
            f("/forget file /home/me/docs/bank.txt"),
            Forget::File("/home/me/docs/bank.txt".into())
        );
        for bad in [
            "/forget",
            "/forget last",
            "/forget last 0",
            "/forget last 3 fortnights",
            "/forget everything please",
            "/forget from 2026-11-03 to 2026-11-01",
            "/forget since yesterday",
            "/forget chat nobody",
            "/forget file",
        ] {
            assert_eq!(f(bad), Forget::Usage, "{bad}");
        }
    }

    #[test]
    fn memory_commands_name_chats_by_number_or_id() {
        assert_eq!(
            parse("/memory add +44 7009 001111"),
            Some(Command::Memory(MemoryAction::Add(
                "447009001111@s.whatsapp.net".into()
            )))
        );
        assert_eq!(
            parse("/memory remove 120363000000000001@g.us"),
            Some(Command::Memory(MemoryAction::Remove(
                "120363000000000001@g.us".into()
            )))
        );
        assert_eq!(parse("/memory"), Some(Command::Memory(MemoryAction::List)));
        assert_eq!(
            parse("/memory list"),
            Some(Command::Memory(MemoryAction::List))
        );
        for bad in [
            "/memory add",
            "/memory add anna",
            "/memory add 07009001111",
            "/memory eat",
        ] {
            assert_eq!(
                parse(bad),
                Some(Command::Memory(MemoryAction::Usage)),
                "{bad}"
            );
        }
    }

    #[test]
    fn commands_and_non_commands() {
        assert_eq!(parse("/help"), Some(Command::Help));
        assert_eq!(parse("  /STATUS now"), Some(Command::Status));
        assert_eq!(parse("/new"), Some(Command::New));
        assert_eq!(parse("/rm -rf"), Some(Command::Unknown("rm".into())));
        assert_eq!(parse("/"), Some(Command::Unknown(String::new())));
        assert_eq!(parse("hello /help"), None);
        assert_eq!(parse("what is 3/4?"), None);
    }

    #[test]
    fn arguments() {
        assert_eq!(
            parse("/remind  in 10 minutes tea "),
            Some(Command::Remind("in 10 minutes tea".into()))
        );
        assert_eq!(
            parse("/search wifi password"),
            Some(Command::Search("wifi password".into()))
        );
        assert_eq!(
            parse("/cancel 3"),
            Some(Command::Cancel(Some(ReminderId(3))))
        );
        assert_eq!(
            parse("/cancel #3"),
            Some(Command::Cancel(Some(ReminderId(3))))
        );
        assert_eq!(parse("/cancel"), Some(Command::Cancel(None)));
        assert_eq!(parse("/cancel x"), Some(Command::Cancel(None)));
        assert_eq!(parse("/reminders"), Some(Command::Reminders));
        assert_eq!(parse("/pause"), Some(Command::Pause));
        assert_eq!(
            parse("/approve k7qx2"),
            Some(Command::Approve("K7QX2".into()))
        );
        assert_eq!(parse("/deny K7QX2"), Some(Command::Deny("K7QX2".into())));
        assert_eq!(parse("/resume"), Some(Command::Resume));
    }
}
