//! The transparency report behind `/privacy` and `hearth privacy`: what is
//! stored (counts per kind), the indexed folders, how long each kind is
//! kept, where the keys are, and what the network can see. Pure: callers
//! bring the store's counts and the settings.

use serde::Serialize;

use crate::config::Retention;
use crate::store::Holdings;

/// What leaves the box, in plain words (fixed by the design, not
/// measured: `hearth doctor` checks the daemon holds no IP socket).
pub const NETWORK: &str = "hearth serve has no network at all (model, memory and \
answers stay on this box). Only hearth bridge talks to the internet, to WhatsApp's servers: \
they see that this box is a linked device of your account, its IP address, when messages \
are sent and received and how big they are, and the numbers involved; message contents are \
end-to-end encrypted between the phones and this box. Nothing else is sent anywhere: no \
telemetry, no cloud model, no update checks. Models are downloaded only when you run \
scripts/setup.sh or hearth models pull.";

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub stored: Holdings,
    pub retention: RetentionDays,
    pub store_key: String,
    pub bridge_key: String,
    pub data_dir: String,
    pub network: &'static str,
}

/// `[retention]` as days (0 = kept until removed).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RetentionDays {
    pub messages_days: u32,
    pub memory_days: u32,
    pub documents_days: u32,
    pub media_days: u32,
    pub audit_days: u32,
}

impl From<Retention> for RetentionDays {
    fn from(r: Retention) -> Self {
        Self {
            messages_days: r.messages_days,
            memory_days: r.memory_days,
            documents_days: r.documents_days,
            media_days: r.media_days,
            audit_days: r.audit_days,
        }
    }
}

fn days(d: u32) -> String {
    if d == 0 {
        "until you remove them".into()
    } else {
        format!("{d} days")
    }
}

impl Report {
    /// The report on `stored`, under `retention`, for a data directory and
    /// the two key files.
    pub fn new(
        stored: Holdings,
        retention: Retention,
        data_dir: &std::path::Path,
        store_key: &std::path::Path,
        bridge_key: &std::path::Path,
    ) -> Self {
        Self {
            stored,
            retention: retention.into(),
            store_key: key_place(store_key),
            bridge_key: key_place(bridge_key),
            data_dir: data_dir.display().to_string(),
            network: NETWORK,
        }
    }

    /// The report for people (the same text in the terminal and the chat).
    pub fn text(&self) -> String {
        let s = &self.stored;
        let r = &self.retention;
        let roots = if s.roots.is_empty() {
            "none".to_string()
        } else {
            s.roots.join(", ")
        };
        let oldest = s
            .oldest_message_ms
            .map(|t| format!(" (oldest from {})", crate::clock::utc_minute(t)))
            .unwrap_or_default();
        format!(
            "Stored on this box, encrypted ({}):\n\
             - {} message(s) in conversations with Hearth{oldest}, kept {}\n\
             - {} message(s) of {} chat(s) you keep with /memory, kept {}\n\
             - {} document(s) in {} search chunk(s) from these folders: {roots}; documents {}\n\
             - {} reminder(s) pending, {} done\n\
             - {} sender(s) approved, {} denied\n\
             - {} audit record(s), kept {}\n\
             - media the bridge saved: kept {}\n\
             - voice notes: heard on this box by Whisper (no audio leaves it); the audio is \
             kept, encrypted, only until it is transcribed ({} waiting), then erased; the \
             transcript is the message's text and is kept like it\n\
             Keys: store {}, bridge {}.\n\
             Network: {}\n\
             /forget erases any of it for good; hearth export takes a copy.",
            self.data_dir,
            s.conversation_messages,
            days(r.messages_days),
            s.kept_chat_messages,
            s.kept_chats,
            days(r.memory_days),
            s.documents,
            s.chunks,
            if r.documents_days == 0 {
                "kept while the file exists".to_string()
            } else {
                format!("changed within {} days", r.documents_days)
            },
            s.reminders_pending,
            s.reminders_done,
            s.senders_approved,
            s.senders_denied,
            s.audit_records,
            days(r.audit_days),
            days(r.media_days),
            s.voice_notes_waiting,
            self.store_key,
            self.bridge_key,
            self.network,
        )
    }
}

/// Where a key is, as the report says it.
fn key_place(path: &std::path::Path) -> String {
    let from_credentials = std::env::var_os("CREDENTIALS_DIRECTORY")
        .is_some_and(|d| path.starts_with(std::path::Path::new(&d)));
    if from_credentials {
        format!("{} (a systemd credential)", path.display())
    } else {
        format!("{} (a 0600 file)", path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_every_kind_and_the_network() {
        let r = Report::new(
            Holdings {
                conversation_messages: 12,
                roots: vec!["/home/me/docs".into()],
                ..Holdings::default()
            },
            Retention::default(),
            std::path::Path::new("/var/lib/hearth"),
            std::path::Path::new("/etc/hearth/store.key"),
            std::path::Path::new("/etc/hearth/bridge.key"),
        );
        let t = r.text();
        for want in [
            "12 message(s) in conversations with Hearth, kept 90 days",
            "/home/me/docs",
            "audit record(s), kept 365 days",
            "media the bridge saved: kept 30 days",
            "hearth serve has no network at all",
        ] {
            assert!(t.contains(want), "{want} missing from {t}");
        }
    }
}
