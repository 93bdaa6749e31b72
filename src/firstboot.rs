//! The appliance's first boot: `hearth-setup.toml` on the boot partition
//! (FAT, editable from any computer after flashing) holds the owner's
//! number, time zone, host name, Wi-Fi network and an optional SSH key.
//! [`plan`] turns it into the files that set the box up; [`apply`] writes
//! them under a root directory, keeps a copy without the Wi-Fi password in
//! `/etc/hearth/setup.toml`, and writes the boot partition's file back
//! without the password. It runs at every boot and does nothing while the
//! file is unchanged since the last time.
//!
//! Pure planning plus plain file writes; must not start services, touch
//! partitions or read the store.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The settings file's name on the boot partition.
pub const SETUP_FILE: &str = "hearth-setup.toml";

/// Where the applied settings (without the password) are kept.
pub const APPLIED: &str = "etc/hearth/setup.toml";

/// `hearth-setup.toml`; every field may be left empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Setup {
    pub owner: OwnerSetup,
    #[serde(rename = "box")]
    pub host: HostSetup,
    pub wifi: WifiSetup,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OwnerSetup {
    /// The owner's WhatsApp number, international form.
    pub number: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostSetup {
    pub hostname: String,
    pub time_zone: String,
    /// One OpenSSH public key line for root's `authorized_keys`.
    pub ssh_key: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WifiSetup {
    pub ssid: String,
    pub password: String,
    /// ISO 3166 country code for the radio's regulatory domain.
    pub country: String,
}

/// Why the settings cannot be applied; nothing is written then.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{file}: {reason}")]
    Invalid { file: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One file the setup writes (relative to the root), with its mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub path: PathBuf,
    pub mode: u32,
    pub contents: Contents,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    Text(String),
    /// A symbolic link to this target.
    Link(PathBuf),
    /// This line appended unless the file already has it.
    Line(String),
}

/// What applying changed, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub written: Vec<PathBuf>,
    /// False when the file was unchanged since the last boot.
    pub changed: bool,
}

/// Parses and checks the settings; the error names the field.
pub fn parse(text: &str, file: &Path) -> Result<Setup, SetupError> {
    let invalid = |reason: String| SetupError::Invalid {
        file: file.to_path_buf(),
        reason,
    };
    let s: Setup = toml::from_str(text).map_err(|e| invalid(e.message().to_string()))?;
    if !s.owner.number.is_empty() {
        crate::config::PhoneNumber::try_from(s.owner.number.clone())
            .map_err(|e| invalid(format!("[owner] number: {e}")))?;
    }
    if !s.host.time_zone.is_empty() && crate::reminder::time_zone(&s.host.time_zone).is_none() {
        return Err(invalid(format!(
            "[box] time_zone {:?} is not an IANA zone (e.g. \"Europe/Berlin\")",
            s.host.time_zone
        )));
    }
    let h = &s.host.hostname;
    if !h.is_empty()
        && (h.len() > 63
            || h.starts_with('-')
            || !h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        return Err(invalid(format!(
            "[box] hostname {h:?}: letters, digits and '-' only, at most 63"
        )));
    }
    let key = s.host.ssh_key.trim();
    if !key.is_empty()
        && (key.contains('\n') || !["ssh-", "ecdsa-", "sk-"].iter().any(|p| key.starts_with(p)))
    {
        return Err(invalid(
            "[box] ssh_key: one public key line, e.g. \"ssh-ed25519 AAAA… you@laptop\"".into(),
        ));
    }
    let w = &s.wifi;
    if !w.ssid.is_empty() && !w.password.is_empty() && !(8..=63).contains(&w.password.len()) {
        return Err(invalid(
            "[wifi] password: WPA passwords have 8 to 63 characters".into(),
        ));
    }
    let country_ok = w.country.len() == 2 && w.country.chars().all(|c| c.is_ascii_uppercase());
    if !w.country.is_empty() && !country_ok {
        return Err(invalid(format!(
            "[wifi] country {:?}: two capital letters, e.g. \"DE\"",
            w.country
        )));
    }
    Ok(s)
}

/// `[name]` of a TOML table header line, else `None`.
fn section_header(line: &str) -> Option<String> {
    let t = line.trim();
    t.starts_with('[')
        .then(|| t.trim_matches(|c| c == '[' || c == ']').trim().to_string())
}

/// The file as it is written back: the same text with the Wi-Fi
/// password's value emptied (and a note where it went).
pub fn without_password(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut section = String::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = section_header(t) {
            section = name;
        }
        let is_password = section == "wifi"
            && t.split('=').next().is_some_and(|k| k.trim() == "password")
            && t.contains('=');
        if is_password {
            let value = t.split_once('=').map(|(_, v)| v.trim()).unwrap_or("");
            if value == "\"\"" || value.is_empty() {
                out.push_str(line);
            } else {
                out.push_str(
                    "# The password was moved to /etc/NetworkManager/system-connections at boot.\n",
                );
                out.push_str("password = \"\"");
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The files that set the box up for `s`; `config` is the current
/// `/etc/hearth/config.toml` text (owner and zone are edited in place).
pub fn plan(s: &Setup, config: &str) -> Vec<Planned> {
    let mut out = Vec::new();
    let text = |path: &str, mode, body: String| Planned {
        path: PathBuf::from(path),
        mode,
        contents: Contents::Text(body),
    };
    if !s.owner.number.is_empty() || !s.host.time_zone.is_empty() {
        out.push(text(
            "etc/hearth/config.toml",
            0o640,
            edit_config(config, &s.owner.number, &s.host.time_zone),
        ));
    }
    if !s.host.time_zone.is_empty() {
        out.push(Planned {
            path: PathBuf::from("etc/localtime"),
            mode: 0o777,
            contents: Contents::Link(PathBuf::from("/usr/share/zoneinfo").join(&s.host.time_zone)),
        });
        out.push(text(
            "etc/timezone",
            0o644,
            format!("{}\n", s.host.time_zone),
        ));
    }
    if !s.host.hostname.is_empty() {
        let h = &s.host.hostname;
        out.push(text("etc/hostname", 0o644, format!("{h}\n")));
        out.push(text(
            "etc/hosts",
            0o644,
            format!(
                "127.0.0.1\tlocalhost\n127.0.1.1\t{h}\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
            ),
        ));
    }
    if !s.host.ssh_key.trim().is_empty() {
        out.push(Planned {
            path: PathBuf::from("root/.ssh/authorized_keys"),
            mode: 0o600,
            contents: Contents::Line(s.host.ssh_key.trim().to_string()),
        });
    }
    let w = &s.wifi;
    if !w.ssid.is_empty() {
        out.push(text(
            "etc/NetworkManager/system-connections/hearth-wifi.nmconnection",
            0o600,
            nm_connection(&w.ssid, &w.password),
        ));
    }
    if !w.country.is_empty() {
        out.push(text(
            "etc/modprobe.d/hearth-wifi-country.conf",
            0o644,
            format!("# Wi-Fi regulatory domain, from hearth-setup.toml.\noptions cfg80211 ieee80211_regdom={}\n", w.country),
        ));
    }
    out
}

/// The config with `[owner] numbers` and `time_zone` set (other lines
/// untouched; a missing line is added where it belongs).
pub fn edit_config(config: &str, number: &str, time_zone: &str) -> String {
    let mut lines: Vec<String> = config.lines().map(str::to_string).collect();
    let mut section = String::new();
    let (mut zone_done, mut owner_done) = (time_zone.is_empty(), number.is_empty());
    let mut owner_header = None;
    for (i, line) in lines.iter_mut().enumerate() {
        let t = line.trim_start().to_string();
        if let Some(name) = section_header(&t) {
            section = name;
            if section == "owner" {
                owner_header = Some(i);
            }
            continue;
        }
        let key = t.split('=').next().map(str::trim).unwrap_or("");
        let assigns = t.contains('=');
        if section.is_empty() && key == "time_zone" && !zone_done && assigns {
            *line = format!("time_zone = {time_zone:?}");
            zone_done = true;
        } else if section == "owner" && key == "numbers" && !owner_done && assigns {
            *line = format!("numbers = [{number:?}]");
            owner_done = true;
        }
    }
    if !owner_done {
        match owner_header {
            Some(i) => lines.insert(i + 1, format!("numbers = [{number:?}]")),
            None => {
                lines.push("[owner]".into());
                lines.push(format!("numbers = [{number:?}]"));
            }
        }
    }
    if !zone_done {
        lines.insert(0, format!("time_zone = {time_zone:?}"));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// A NetworkManager keyfile for a WPA-PSK (or open) network.
fn nm_connection(ssid: &str, password: &str) -> String {
    let security = if password.is_empty() {
        String::new()
    } else {
        format!("\n[wifi-security]\nkey-mgmt=wpa-psk\npsk={password}\n")
    };
    format!(
        "# From hearth-setup.toml at first boot.\n[connection]\nid=hearth-wifi\ntype=wifi\nautoconnect=true\n\n[wifi]\nmode=infrastructure\nssid={ssid}\n{security}\n[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\n"
    )
}

/// Applies `boot/hearth-setup.toml` under `root` (`/` on the box). Nothing
/// is written when the file is unchanged since the last boot, or invalid.
pub fn apply(boot: &Path, root: &Path) -> Result<Applied, SetupError> {
    let file = boot.join(SETUP_FILE);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SetupError::Io { path, source }
    };
    let text = std::fs::read_to_string(&file).map_err(io(&file))?;
    let kept = without_password(&text);
    let applied = root.join(APPLIED);
    if text == kept && std::fs::read_to_string(&applied).is_ok_and(|a| a == kept) {
        return Ok(Applied::default());
    }
    let setup = parse(&text, &file)?;
    let config_path = root.join("etc/hearth/config.toml");
    let config = std::fs::read_to_string(&config_path).unwrap_or_default();
    let mut done = Applied {
        changed: true,
        ..Applied::default()
    };
    for p in plan(&setup, &config) {
        let path = root.join(&p.path);
        write_planned(&path, &p).map_err(io(&path))?;
        done.written.push(p.path);
    }
    write_atomic(&applied, kept.as_bytes(), 0o600).map_err(io(&applied))?;
    if kept != text {
        // The FAT partition: rewritten in place (no rename across a
        // file system that may not keep modes anyway), then synced.
        std::fs::write(&file, kept.as_bytes())
            .and_then(|()| std::fs::File::open(&file)?.sync_all())
            .map_err(io(&file))?;
    }
    Ok(done)
}

fn write_planned(path: &Path, p: &Planned) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match &p.contents {
        Contents::Text(body) => {
            // The config keeps its owner and group (root:hearth).
            let keep = std::fs::metadata(path).ok();
            write_atomic(path, body.as_bytes(), p.mode)?;
            if let Some(m) = keep {
                use std::os::unix::fs::MetadataExt;
                std::os::unix::fs::chown(path, Some(m.uid()), Some(m.gid()))?;
            }
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(p.mode))
        }
        Contents::Link(target) => {
            let _ = std::fs::remove_file(path);
            std::os::unix::fs::symlink(target, path)
        }
        Contents::Line(line) => {
            if let Some(dir) = path.parent() {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
            let old = std::fs::read_to_string(path).unwrap_or_default();
            if old.lines().any(|l| l.trim() == line) {
                return Ok(());
            }
            let mut body = old;
            if !body.is_empty() && !body.ends_with('\n') {
                body.push('\n');
            }
            body.push_str(line);
            body.push('\n');
            write_atomic(path, body.as_bytes(), p.mode)
        }
    }
}

/// Writes a temporary file beside `path`, syncs it and renames it over.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("hearth-new");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The file the image ships on its boot partition: every setting, empty,
/// with what it does.
pub const TEMPLATE: &str = r#"# Hearth first-boot settings. Edit this file on any computer after writing
# the image to the card, then put the card in the Raspberry Pi and power it
# on. The first boot applies it (and again whenever you change it), moves it
# to /etc/hearth/setup.toml and removes the Wi-Fi password from this file.

[owner]
# Your WhatsApp number, international form: only you may give Hearth
# commands. Example: "+4915112345678"
number = ""

[box]
# The box's name on your network (ssh root@NAME.local).
hostname = "hearth"
# Your time zone, for reminders. Example: "Europe/Berlin"
time_zone = "UTC"
# Optional: your SSH public key (the contents of ~/.ssh/id_ed25519.pub), to
# log in as root. There is no password login.
ssh_key = ""

[wifi]
# Leave ssid empty when the box is on Ethernet.
ssid = ""
password = ""
# Two-letter country code for the Wi-Fi radio. Example: "DE"
country = ""
"#;

#[cfg(test)]
mod tests {
    use super::*;

    const FILLED: &str = r#"[owner]
number = "+49 151 1234 5678"

[box]
hostname = "kitchen-box"
time_zone = "Europe/Berlin"
ssh_key = "ssh-ed25519 AAAAC3Nza me@laptop"

[wifi]
ssid = "Home Net"
password = "correct horse battery"
country = "DE"
"#;

    #[test]
    fn the_template_parses_and_sets_nothing_but_the_zone_and_name() {
        let s = parse(TEMPLATE, Path::new("t")).unwrap();
        assert_eq!(s.host.time_zone, "UTC");
        let planned: Vec<PathBuf> = plan(&s, "").into_iter().map(|p| p.path).collect();
        assert!(
            !planned
                .iter()
                .any(|p| p.to_string_lossy().contains("NetworkManager"))
        );
        assert!(!planned.iter().any(|p| p.ends_with("authorized_keys")));
    }

    #[test]
    fn bad_fields_are_named() {
        for (text, field) in [
            ("[owner]\nnumber = \"0151\"\n", "[owner] number"),
            ("[box]\ntime_zone = \"Berlin\"\n", "time_zone"),
            ("[box]\nhostname = \"my box\"\n", "hostname"),
            ("[box]\nssh_key = \"hunter2\"\n", "ssh_key"),
            ("[wifi]\nssid = \"x\"\npassword = \"short\"\n", "password"),
            ("[wifi]\ncountry = \"germany\"\n", "country"),
            ("[wlan]\nssid = \"x\"\n", "wlan"),
        ] {
            let e = parse(text, Path::new("f")).unwrap_err().to_string();
            assert!(e.contains(field), "{text}: {e}");
        }
    }

    #[test]
    fn the_password_leaves_the_boot_file_and_nothing_else_changes() {
        let kept = without_password(FILLED);
        assert!(!kept.contains("correct horse"), "{kept}");
        assert!(kept.contains("password = \"\""));
        assert!(kept.contains("ssid = \"Home Net\""));
        assert_eq!(without_password(&kept), kept, "idempotent");
        assert_eq!(without_password(TEMPLATE), TEMPLATE);
    }

    #[test]
    fn the_config_gets_the_owner_and_zone_in_place() {
        let config = crate::config::template(&crate::config::TemplateFor::system(None));
        let edited = edit_config(&config, "+4915112345678", "Europe/Berlin");
        let c = crate::config::Config::parse(&edited).unwrap();
        assert_eq!(c.time_zone.0, "Europe/Berlin");
        assert!(c.is_owner_number("+4915112345678"));
        assert_eq!(c.storage.data_dir, Some(PathBuf::from("/var/lib/hearth")));
        assert_eq!(edited.lines().count(), config.lines().count());
        assert_eq!(
            edit_config(&edited, "+4915112345678", "Europe/Berlin"),
            edited
        );
    }

    #[test]
    fn applying_writes_the_box_files_once_and_strips_the_boot_file() {
        let dir = tempfile::tempdir().unwrap();
        let (boot, root) = (dir.path().join("boot"), dir.path().join("root"));
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::create_dir_all(root.join("etc/hearth")).unwrap();
        std::fs::write(
            root.join("etc/hearth/config.toml"),
            "time_zone = \"UTC\"\n[owner]\nnumbers = []\n",
        )
        .unwrap();
        std::fs::write(boot.join(SETUP_FILE), FILLED).unwrap();
        let done = apply(&boot, &root).unwrap();
        assert!(done.changed);
        let wifi = root.join("etc/NetworkManager/system-connections/hearth-wifi.nmconnection");
        let nm = std::fs::read_to_string(&wifi).unwrap();
        assert!(nm.contains("ssid=Home Net") && nm.contains("psk=correct horse battery"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&wifi).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_to_string(root.join("etc/hostname")).unwrap(),
            "kitchen-box\n"
        );
        assert_eq!(
            std::fs::read_link(root.join("etc/localtime")).unwrap(),
            PathBuf::from("/usr/share/zoneinfo/Europe/Berlin")
        );
        let keys = std::fs::read_to_string(root.join("root/.ssh/authorized_keys")).unwrap();
        assert_eq!(keys, "ssh-ed25519 AAAAC3Nza me@laptop\n");
        let config = std::fs::read_to_string(root.join("etc/hearth/config.toml")).unwrap();
        assert!(
            config.contains("numbers = [\"+49 151 1234 5678\"]"),
            "{config}"
        );
        for f in [boot.join(SETUP_FILE), root.join(APPLIED)] {
            let t = std::fs::read_to_string(&f).unwrap();
            assert!(!t.contains("correct horse"), "{}: {t}", f.display());
        }
        // The next boot: unchanged, nothing written (the key not doubled).
        assert_eq!(apply(&boot, &root).unwrap(), Applied::default());
        // A new network written onto the card later is applied.
        let again = FILLED
            .replace("Home Net", "Attic")
            .replace("correct horse battery", "another secret");
        std::fs::write(boot.join(SETUP_FILE), again).unwrap();
        assert!(apply(&boot, &root).unwrap().changed);
        assert!(
            std::fs::read_to_string(&wifi)
                .unwrap()
                .contains("ssid=Attic")
        );
        let keys = std::fs::read_to_string(root.join("root/.ssh/authorized_keys")).unwrap();
        assert_eq!(keys.lines().count(), 1);
    }
}
