//! The owner's settings, in one TOML file (`hearth init` writes it with
//! every default, commented): who the owner is, the time zone, and the
//! daemon's model settings. Unknown keys and wrong types are errors that
//! name the file, the line and the field.
//!
//! Parsing and the template only; must not start anything.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The settings; every field has a default, so an empty file is valid.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub owner: Owner,
    /// IANA time zone for reminders and dates in replies.
    pub time_zone: TimeZone,
    pub model: ModelConfig,
    pub storage: Storage,
    pub whatsapp: WhatsApp,
    pub retention: Retention,
    pub voice: Voice,
    /// When reminders may trust the wall clock (`[clock]`).
    pub clock: crate::timesync::ClockConfig,
}

/// Voice notes (`[voice]`): the speech model, its language, the longest
/// note heard, and how long Whisper stays loaded after a note.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Voice {
    /// Transcribe voice notes at all.
    pub enabled: bool,
    /// The speech model's name in the manifest.
    pub model: String,
    /// A Whisper language code (`en`, `de`, …) or `auto` to detect it.
    pub language: String,
    /// Longer notes are refused with a reply saying so.
    pub max_duration_s: u64,
    /// Whisper is dropped from memory after this many seconds without a note.
    pub unload_after_s: u64,
}

impl Default for Voice {
    fn default() -> Self {
        Self {
            enabled: true,
            model: "whisper-base".into(),
            language: "auto".into(),
            max_duration_s: 600,
            unload_after_s: 300,
        }
    }
}

/// How long each kind of data is kept, in days; 0 keeps it until it is
/// removed by hand. The daemon purges once a day (the bridge its inbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Conversations: messages to and from Hearth, with the replies.
    pub messages_days: u32,
    /// Messages of chats kept with `/memory add`.
    pub memory_days: u32,
    /// Indexed documents whose file was last changed longer ago.
    pub documents_days: u32,
    /// Voice notes, images and documents in the bridge's inbox.
    pub media_days: u32,
    /// Audit records (the chain keeps its anchor).
    pub audit_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            messages_days: 90,
            memory_days: 365,
            documents_days: 0,
            media_days: 30,
            audit_days: 365,
        }
    }
}

impl Retention {
    /// The cut-off (ms since the epoch) for `days` at `now_ms`; `None`
    /// when kept forever.
    pub fn cutoff(days: u32, now_ms: i64) -> Option<i64> {
        (days > 0).then(|| now_ms - i64::from(days) * 86_400_000)
    }
}

/// How Hearth meets people on WhatsApp.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct WhatsApp {
    /// Dedicated number (recommended) or the owner's personal account.
    pub mode: crate::policy::Mode,
    /// People who may talk to Hearth without asking the owner first.
    pub allowed: Vec<PhoneNumber>,
    /// Group chats Hearth answers in, only when @mentioned.
    pub groups: Vec<String>,
    /// The bridge's own directory (session, queues, media inbox).
    pub state_dir: Option<PathBuf>,
    /// The key that encrypts the bridge's session database.
    pub key_file: Option<PathBuf>,
    /// Largest voice note, image or document the bridge saves, in MiB.
    pub media_max_mb: Option<u64>,
}

impl WhatsApp {
    /// The media size cap in bytes (default 16 MiB).
    pub fn media_cap(&self) -> u64 {
        self.media_max_mb.unwrap_or(16).saturating_mul(1 << 20)
    }
}

/// Where the store lives, when not given by flag or environment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// The data directory (database, socket).
    pub data_dir: Option<PathBuf>,
    /// The store's key file (keep it outside the data directory).
    pub key_file: Option<PathBuf>,
    /// The daemon's socket, when not `DATA_DIR/hearth.sock` (the packaged
    /// services share `/run/hearth/hearth.sock`: the bridge may not enter
    /// the data directory).
    pub socket: Option<PathBuf>,
}

/// Who may command Hearth.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Owner {
    /// What Hearth calls the owner.
    pub name: Option<String>,
    /// Phone numbers in international form (`+4915112345678`).
    pub numbers: Vec<PhoneNumber>,
}

/// A phone number, `+` and 7–15 digits (E.164).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// The digits, without the `+`.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let compact: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let digits = compact
            .strip_prefix('+')
            .ok_or_else(|| format!("phone number `{s}` must start with + and the country code"))?;
        if !(7..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "phone number `{s}` must be + and 7 to 15 digits (E.164)"
            ));
        }
        Ok(Self(compact))
    }
}

/// An IANA zone name (`Europe/Berlin`) or `UTC`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TimeZone(pub String);

impl Default for TimeZone {
    fn default() -> Self {
        Self("UTC".into())
    }
}

impl TryFrom<String> for TimeZone {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        if crate::reminder::time_zone(&s).is_some() {
            Ok(Self(s))
        } else {
            Err(format!(
                "time zone `{s}` is not an IANA name this box knows, like `Europe/Berlin` (or `UTC`)"
            ))
        }
    }
}

impl TimeZone {
    /// The zone's rules (validated when the config was read).
    pub fn zone(&self) -> jiff::tz::TimeZone {
        crate::reminder::time_zone(&self.0).unwrap_or(jiff::tz::TimeZone::UTC)
    }
}

/// The daemon's model settings (command-line flags override them).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// A name from the model manifest; none means the manifest's default.
    pub name: Option<String>,
    /// Compute threads; none means all cores.
    pub threads: Option<usize>,
    /// Context length in tokens.
    pub context: usize,
    /// Most tokens per reply.
    pub max_reply_tokens: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            name: None,
            threads: None,
            context: 4096,
            max_reply_tokens: 256,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} already exists; pass --force to overwrite it")]
    Exists { path: PathBuf },
}

impl Storage {
    /// `path` with a leading `~/` put under `$HOME`.
    pub fn expand(path: &Path) -> PathBuf {
        match (path.strip_prefix("~"), std::env::var_os("HOME")) {
            (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
            _ => path.to_path_buf(),
        }
    }
}

impl Config {
    /// Reads `path`; a missing file is the defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).map_err(|reason| ConfigError::Invalid {
                path: path.to_path_buf(),
                reason,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses TOML text; the error names the line and the field.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e: toml::de::Error| match e.span() {
            Some(span) => {
                let at = span.start.min(text.len());
                let line = text[..at].matches('\n').count() + 1;
                let source = text.lines().nth(line - 1).unwrap_or("").trim();
                format!("line {line} (`{source}`): {}", e.message())
            }
            None => e.message().to_string(),
        })
    }

    /// Whether `sender` (a number or a WhatsApp JID like
    /// `4915112345678@s.whatsapp.net`) is one of the owner's numbers.
    pub fn is_owner_number(&self, sender: &str) -> bool {
        // A bare `+49…`, or a phone-number address; never a LID, whose
        // digits are not a phone number even when they look like one.
        let digits = match crate::policy::Jid::parse(sender) {
            Some(j) if j.is_phone() => j.user,
            Some(_) => return false,
            None => sender.trim_start_matches('+'),
        };
        self.has_number(&self.owner.numbers, digits)
    }

    /// Whether `who` is one of the owner's numbers.
    pub fn is_owner(&self, who: &crate::policy::Identity) -> bool {
        matches!(who, crate::policy::Identity::Phone(d) if self.has_number(&self.owner.numbers, d))
    }

    /// Whether the config lets `who` talk to Hearth without asking.
    pub fn is_allowed(&self, who: &crate::policy::Identity) -> bool {
        matches!(who, crate::policy::Identity::Phone(d) if self.has_number(&self.whatsapp.allowed, d))
    }

    fn has_number(&self, list: &[PhoneNumber], digits: &str) -> bool {
        !digits.is_empty() && list.iter().any(|n| n.digits() == digits)
    }

    /// The owner's WhatsApp chat (their first number), where notices go.
    pub fn owner_chat(&self) -> Option<String> {
        self.owner
            .numbers
            .first()
            .map(|n| format!("{}@s.whatsapp.net", n.digits()))
    }
}

/// The chat model `hearth init` writes, and why (a comment above it).
#[derive(Debug, Clone, Copy)]
pub struct ModelChoice<'a> {
    pub name: &'a str,
    pub why: &'a str,
}

/// What `hearth init` writes a config for.
#[derive(Debug, Clone, Copy)]
pub struct TemplateFor<'a> {
    pub owner: Option<&'a PhoneNumber>,
    pub time_zone: &'a str,
    /// `None` leaves the model unset: chosen at each start from the models
    /// installed and the box's memory (the packaged config).
    pub model: Option<ModelChoice<'a>>,
    /// The packaged services' places (`/var/lib/hearth`, `/etc/hearth`,
    /// `/var/lib/hearth-bridge`) instead of this user's.
    pub system: bool,
}

impl<'a> TemplateFor<'a> {
    /// The packaged services' config (`hearth init --system`,
    /// `systemd/config.toml`): time zone UTC until the first boot sets
    /// one, no model name.
    pub fn system(owner: Option<&'a PhoneNumber>) -> Self {
        Self {
            owner,
            time_zone: "UTC",
            model: None,
            system: true,
        }
    }
}

/// The file `hearth init` writes: every setting with its default, commented.
pub fn template(t: &TemplateFor) -> String {
    let time_zone = t.time_zone;
    let model_line = match t.model {
        Some(m) => format!(
            "# `hearth init` chose: {}.\nname = \"{}\"",
            m.why.replace('\n', " "),
            m.name
        ),
        None => "# name = \"qwen25coder\"".to_string(),
    };
    let numbers = match t.owner {
        Some(n) => format!("numbers = [\"{}\"]", n.0),
        None => "numbers = []            # e.g. [\"+4915112345678\"]".to_string(),
    };
    let (bridge_places, storage_places) = if t.system {
        (
            "state_dir = \"/var/lib/hearth-bridge\"\nkey_file = \"/etc/hearth/bridge.key\"",
            "data_dir = \"/var/lib/hearth\"\nkey_file = \"/etc/hearth/store.key\"\nsocket = \"/run/hearth/hearth.sock\"",
        )
    } else {
        (
            "# state_dir = \"~/.local/state/hearth-bridge\"\n# key_file = \"~/.config/hearth/bridge.key\"",
            "# data_dir = \"~/.local/share/hearth\"\n# key_file = \"~/.config/hearth/store.key\"\n# socket = \"~/.local/share/hearth/hearth.sock\"",
        )
    };
    format!(
        r#"# Hearth configuration. Every setting shows its default; `hearth init`
# wrote this file. Invalid settings stop `hearth serve` with the line and
# the field that is wrong.

# IANA time zone for reminders and the date in replies (e.g. "Europe/Berlin");
# `hearth init` writes this box's zone.
time_zone = "{time_zone}"

[owner]
# What Hearth calls you (optional).
# name = "Alex"
# Your phone number(s), international form. Only these may give commands
# over WhatsApp; everyone else is denied until you approve them.
{numbers}

[model]
# The chat model: a name from `hearth models list` (also one you added with
# `hearth models add`); unset = the largest default this box's memory fits
# among those installed.
{model_line}
# Compute threads; unset = all cores.
# threads = 2
# Context length in tokens.
context = 4096
# Most tokens per reply.
max_reply_tokens = 256

[whatsapp]
# "dedicated": Hearth has its own WhatsApp number and you message it
# (recommended). "personal": Hearth is linked to your own account and talks
# only in your "message yourself" chat.
mode = "dedicated"
# People who may talk to Hearth without asking you first, e.g.
# ["+4915199999999"]. Anyone else is held until you /approve them.
allowed = []
# Group chats Hearth may answer in, only when @mentioned, e.g.
# ["120363012345678901@g.us"]. None by default (and whatsapp-rust 0.7.0
# mishandles some group messages; see README "Connect WhatsApp").
groups = []
# The bridge's own directory (WhatsApp session, queues, media inbox) and
# the key that encrypts its session; both apart from the data directory.
# HEARTH_BRIDGE_DIR and HEARTH_BRIDGE_KEY_FILE override them.
{bridge_places}
# Largest voice note, image or document the bridge saves, in MiB.
# media_max_mb = 16

[storage]
# The data directory (encrypted database), the store's key file (outside
# it) and the daemon's socket (in it unless set). --data-dir, --key-file,
# --socket, HEARTH_DATA_DIR and HEARTH_KEY_FILE override them.
{storage_places}

[retention]
# Days each kind of data is kept (0 = until you remove it); the daemon
# purges once a day and erases for good, like /forget.
# Conversations with Hearth (messages and replies).
messages_days = 90
# Messages of chats you keep with /memory add.
memory_days = 365
# Indexed documents whose file was last changed longer ago (0 = all).
documents_days = 0
# Voice notes, images and documents the bridge saved.
media_days = 30
# Audit records.
audit_days = 365

[voice]
# Voice notes are transcribed on this box (Whisper, nothing leaves it) and
# answered like text; false answers them with a note that they are not heard.
enabled = true
# The speech model (`hearth models list`); scripts/setup.sh fetches it.
model = "whisper-base"
# A language code (en, de, fr, es, ...) or auto to detect it per note.
language = "auto"
# Longer notes are refused with a reply saying so.
max_duration_s = 600
# Seconds without a voice note before Whisper is dropped from memory.
unload_after_s = 300

[clock]
# Reminders fire, and new ones are accepted, only on a clock Hearth can
# trust: one that reads 2026 or later and, when waiting applies, has been
# set by network time (systemd-timesyncd). "auto" waits on a box without a
# real-time clock (a Raspberry Pi) that runs systemd-timesyncd; "always"
# and "never" decide for it.
wait_for_sync = "auto"
# The file time sync writes once the clock is set.
# sync_marker = "/run/systemd/timesync/synchronized"
"#
    )
}

/// This box's time zone by its IANA name (from `TZ` or `/etc/localtime`),
/// or `UTC` when it has none Hearth can name.
pub fn system_time_zone() -> String {
    jiff::tz::TimeZone::try_system()
        .ok()
        .and_then(|tz| tz.iana_name().map(str::to_string))
        .filter(|name| crate::reminder::time_zone(name).is_some())
        .unwrap_or_else(|| "UTC".to_string())
}

/// Writes the template to `path` (mode 0600), refusing to overwrite unless
/// `force`.
pub fn write_template(path: &Path, t: &TemplateFor, force: bool) -> Result<(), ConfigError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() && !force {
        return Err(ConfigError::Exists {
            path: path.to_path_buf(),
        });
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(template(t).as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHOICE: ModelChoice = ModelChoice {
        name: "smollm2",
        why: "this box has 0.9 GiB of memory (`qwen25coder` needs 1.5 GiB), so `smollm2`",
    };

    fn template(owner: Option<&PhoneNumber>, time_zone: &str, model: ModelChoice) -> String {
        super::template(&TemplateFor {
            owner,
            time_zone,
            model: Some(model),
            system: false,
        })
    }

    /// The Debian package's conffile is this template, byte for byte.
    #[test]
    fn the_packaged_config_is_the_system_template() {
        let shipped = include_str!("../systemd/config.toml");
        let want = super::template(&TemplateFor::system(None));
        assert!(
            shipped == want,
            "systemd/config.toml is stale: run `hearth --config systemd/config.toml init --system --force`"
        );
    }

    #[test]
    fn the_system_template_names_the_service_places_and_no_model() {
        let c = Config::parse(&super::template(&TemplateFor::system(None))).unwrap();
        assert_eq!(c.model, ModelConfig::default());
        assert_eq!(c.storage.data_dir, Some(PathBuf::from("/var/lib/hearth")));
        assert_eq!(
            c.storage.key_file,
            Some(PathBuf::from("/etc/hearth/store.key"))
        );
        assert_eq!(
            c.storage.socket,
            Some(PathBuf::from("/run/hearth/hearth.sock"))
        );
        assert_eq!(
            c.whatsapp.state_dir,
            Some(PathBuf::from("/var/lib/hearth-bridge"))
        );
        assert_eq!(
            c.whatsapp.key_file,
            Some(PathBuf::from("/etc/hearth/bridge.key"))
        );
    }

    #[test]
    fn the_template_parses_to_the_defaults() {
        assert_eq!(
            Config::parse(&template(None, "UTC", CHOICE)).unwrap().model,
            ModelConfig {
                name: Some("smollm2".into()),
                ..ModelConfig::default()
            }
        );
        assert_eq!(
            Config {
                model: ModelConfig::default(),
                ..Config::parse(&template(None, "UTC", CHOICE)).unwrap()
            },
            Config::default()
        );
        let n = PhoneNumber::try_from("+49 151 1234-5678".to_string()).unwrap();
        let c = Config::parse(&template(Some(&n), "Europe/Berlin", CHOICE)).unwrap();
        assert_eq!(c.time_zone.0, "Europe/Berlin");
        assert_eq!(c.owner.numbers, vec![n]);
        assert!(c.is_owner_number("4915112345678@s.whatsapp.net"));
        assert!(c.is_owner_number("+4915112345678"));
        assert!(!c.is_owner_number("4915112345679@s.whatsapp.net"));
        assert!(!c.is_owner_number("@lid"));
        // A LID with the owner's digits is not the owner.
        assert!(!c.is_owner_number("4915112345678@lid"));
    }

    #[test]
    fn errors_name_the_field() {
        let e = Config::parse("[model]\ncontex = 5\n").unwrap_err();
        assert!(e.contains("contex"), "{e}");
        let e = Config::parse("[owner]\nnumbers = [\"0151 123\"]\n").unwrap_err();
        assert!(e.contains("must start with +"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let e = Config::parse("time_zone = \"Berlin time\"\n").unwrap_err();
        assert!(e.contains("IANA"), "{e}");
        let e = Config::parse("time_zone = \"Mars/Olympus_Mons\"\n").unwrap_err();
        assert!(e.contains("Mars/Olympus_Mons"), "{e}");
        let c = Config::parse("time_zone = \"Europe/Berlin\"\n").unwrap();
        assert_eq!(c.time_zone.zone().iana_name(), Some("Europe/Berlin"));
        let e = Config::parse("[model]\ncontext = \"big\"\n").unwrap_err();
        assert!(e.contains("context") || e.contains("integer"), "{e}");
    }
}
