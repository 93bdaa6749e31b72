//! `hearth doctor`: checks an installation against what Hearth promises
//! (private keys and data, verified models, hardened units, a daemon
//! without network, enough disk, a synchronised clock) and says what to do.
//! Every check has a stable id (`key.store.mode`, `units.serve`, …) that
//! scripts and the JSON output can rely on.
//!
//! Reads files, `/proc` and `systemd-analyze`; must not change anything.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// How a check came out. Only `Fail` makes `hearth doctor` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    /// Does not apply here (e.g. no units installed).
    Skip,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub status: Status,
    pub detail: String,
}

fn check(id: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check {
        id,
        status,
        detail: detail.into(),
    }
}

/// Where the installation's parts are.
#[derive(Debug, Clone)]
pub struct Layout {
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub key_file: PathBuf,
    pub bridge_dir: PathBuf,
    pub bridge_key: PathBuf,
    pub models_dir: PathBuf,
    pub socket: PathBuf,
    /// The directory holding `hearth.service` and `hearth-bridge.service`
    /// (`/etc/systemd/system` of the installation root, or the Debian
    /// package's `/usr/lib/systemd/system`).
    pub units_dir: PathBuf,
}

/// Where the Debian package puts the units.
const PACKAGE_UNITS: &str = "usr/lib/systemd/system";
/// Where `scripts/install.sh` (and an administrator's override) puts them.
const LOCAL_UNITS: &str = "etc/systemd/system";

impl Layout {
    /// Whether `root` holds an installation (the Debian package's or
    /// `scripts/install.sh`'s).
    pub fn is_installed(root: &Path) -> bool {
        [LOCAL_UNITS, PACKAGE_UNITS]
            .iter()
            .any(|d| root.join(d).join("hearth.service").exists())
    }

    /// The layout the Debian package or `scripts/install.sh` creates under
    /// `root` (`/` on the box): units in `/etc/systemd/system` when
    /// installed (or overridden) there, else the package's; models where
    /// the model packages put them, else `/var/lib/hearth/models`.
    pub fn installed(root: &Path) -> Self {
        let r = |p: &str| root.join(p);
        let units_dir = if r(LOCAL_UNITS).join("hearth.service").exists()
            || !r(PACKAGE_UNITS).join("hearth.service").exists()
        {
            r(LOCAL_UNITS)
        } else {
            r(PACKAGE_UNITS)
        };
        let packaged_models = root.join(crate::catalog::SYSTEM_MODELS_DIR.trim_start_matches('/'));
        let models_dir = if packaged_models.is_dir() {
            packaged_models
        } else {
            r("var/lib/hearth/models")
        };
        Self {
            config: r("etc/hearth/config.toml"),
            data_dir: r("var/lib/hearth"),
            key_file: r("etc/hearth/store.key"),
            bridge_dir: r("var/lib/hearth-bridge"),
            bridge_key: r("etc/hearth/bridge.key"),
            models_dir,
            socket: r("run/hearth/hearth.sock"),
            units_dir,
        }
    }
}

/// Runs every check; `hash_models` hashes model files (slow on big ones)
/// instead of only comparing sizes.
pub fn run(l: &Layout, hash_models: bool) -> Vec<Check> {
    let mut out = Vec::new();
    let config = crate::config::Config::load(&l.config);
    out.push(match &config {
        Ok(_) if l.config.exists() => {
            check("config.valid", Status::Ok, l.config.display().to_string())
        }
        Ok(_) => check(
            "config.valid",
            Status::Warn,
            format!(
                "{} does not exist; defaults apply (`hearth init` writes one)",
                l.config.display()
            ),
        ),
        Err(e) => check("config.valid", Status::Fail, e.to_string()),
    });
    if let Ok(c) = &config {
        out.push(if c.owner.numbers.is_empty() {
            check(
                "config.owner",
                Status::Warn,
                "no owner number: nobody can give commands over WhatsApp ([owner] numbers)",
            )
        } else {
            check(
                "config.owner",
                Status::Ok,
                format!("{} owner number(s)", c.owner.numbers.len()),
            )
        });
    }
    out.extend(keys(l));
    out.extend(data(l));
    let configured = config.as_ref().ok().and_then(|c| c.model.name.clone());
    out.push(models(&l.models_dir, configured, hash_models));
    out.extend(units(&l.units_dir));
    out.push(disk(&l.data_dir));
    out.push(serve_network(&l.units_dir));
    out.push(bridge(l));
    out.push(time_sync());
    out
}

/// Whether `mode` lets anyone but the owner in.
fn open_to_others(mode: u32) -> bool {
    mode & 0o077 != 0
}

fn mode_of(p: &Path) -> Option<u32> {
    std::fs::metadata(p)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

fn keys(l: &Layout) -> Vec<Check> {
    let mut out = Vec::new();
    let db_exists = l.data_dir.join("hearth.db").exists();
    for (present, mode, file, needed) in [
        (
            "key.store.present",
            "key.store.mode",
            &l.key_file,
            db_exists,
        ),
        (
            "key.bridge.present",
            "key.bridge.mode",
            &l.bridge_key,
            false,
        ),
    ] {
        match mode_of(file) {
            None if needed => out.push(check(
                present,
                Status::Fail,
                format!(
                    "{} is missing but the database exists: restore it",
                    file.display()
                ),
            )),
            None => out.push(check(
                present,
                Status::Warn,
                format!(
                    "{} does not exist yet (created on first use)",
                    file.display()
                ),
            )),
            Some(m) => {
                out.push(check(present, Status::Ok, file.display().to_string()));
                out.push(if open_to_others(m) {
                    check(
                        mode,
                        Status::Fail,
                        format!(
                            "{} is mode {m:o}: others can read it; run `chmod 600 {}`",
                            file.display(),
                            file.display()
                        ),
                    )
                } else {
                    check(mode, Status::Ok, format!("mode {m:o}"))
                });
            }
        }
    }
    out.push(match crate::key::check_apart(&l.key_file, &l.data_dir) {
        Ok(()) => check(
            "key.location",
            Status::Ok,
            "the store key is outside the data directory",
        ),
        Err(e) => check("key.location", Status::Fail, e.to_string()),
    });
    out
}

fn data(l: &Layout) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(match mode_of(&l.data_dir) {
        None => check(
            "data.dir",
            Status::Warn,
            format!("{} does not exist yet", l.data_dir.display()),
        ),
        Some(m) if open_to_others(m) => check(
            "data.dir",
            Status::Fail,
            format!(
                "{} is mode {m:o}; run `chmod 700 {}`",
                l.data_dir.display(),
                l.data_dir.display()
            ),
        ),
        Some(m) => check(
            "data.dir",
            Status::Ok,
            format!("{} mode {m:o}", l.data_dir.display()),
        ),
    });
    for name in ["hearth.db", "hearth.db-wal", "hearth.db-shm"] {
        let p = l.data_dir.join(name);
        if let Some(m) = mode_of(&p)
            && open_to_others(m)
        {
            out.push(check(
                "data.files",
                Status::Fail,
                format!(
                    "{} is mode {m:o}; run `chmod 600 {}`",
                    p.display(),
                    p.display()
                ),
            ));
            return out;
        }
    }
    out.push(check(
        "data.files",
        Status::Ok,
        "database files are private (or not created yet)",
    ));
    out.push(match mode_of(&l.socket) {
        None => check(
            "socket.mode",
            Status::Skip,
            "the daemon is not running (no socket)",
        ),
        Some(m) if m & 0o007 != 0 => check(
            "socket.mode",
            Status::Fail,
            format!(
                "{} is mode {m:o}: any local user could talk to Hearth",
                l.socket.display()
            ),
        ),
        Some(m) => check("socket.mode", Status::Ok, format!("mode {m:o}")),
    });
    out
}

/// The model files' state; fails when the chat model this box uses (the
/// config's, else the one its memory picks) is not installed.
fn models(dir: &Path, configured: Option<String>, hash: bool) -> Check {
    use crate::catalog::{Catalog, FileState};
    let catalog = match Catalog::open(dir.to_path_buf(), None) {
        Ok(c) => c,
        Err(e) => return check("models.hashes", Status::Fail, e.to_string()),
    };
    let mut bad = Vec::new();
    let mut verified = 0;
    let mut missing = Vec::new();
    for m in &catalog.manifest.models {
        for f in &m.files {
            match catalog.check(f, hash) {
                Ok(FileState::Verified | FileState::Present) => verified += 1,
                Ok(FileState::Missing) => missing.push(format!("{} ({})", f.file, m.name)),
                Ok(FileState::WrongSize { .. }) => bad.push(format!("{}: wrong size", f.file)),
                Ok(FileState::Mismatch { .. }) => bad.push(format!("{}: sha256 mismatch", f.file)),
                Err(e) => bad.push(e.to_string()),
            }
        }
    }
    let chat_model = configured.unwrap_or_else(|| catalog.default_chat().name);
    let default_missing = catalog
        .model_path(&chat_model)
        .map(|p| !p.exists())
        .unwrap_or(true);
    if !bad.is_empty() {
        check(
            "models.hashes",
            Status::Fail,
            format!(
                "{}; `hearth models pull` fetches them again",
                bad.join(", ")
            ),
        )
    } else if default_missing {
        check(
            "models.hashes",
            Status::Fail,
            format!(
                "the chat model `{chat_model}` is not installed (`MODELS={chat_model} scripts/setup.sh`)"
            ),
        )
    } else {
        let how = if hash {
            "sha256 verified"
        } else {
            "sizes match"
        };
        let status = if missing.is_empty() {
            Status::Ok
        } else {
            Status::Warn
        };
        let extra = if missing.is_empty() {
            String::new()
        } else {
            format!("; not installed: {}", missing.join(", "))
        };
        check(
            "models.hashes",
            status,
            format!("{verified} file(s) {how}{extra}"),
        )
    }
}

/// The exposure bounds the units must meet (`systemd-analyze security`).
pub const UNIT_BOUNDS: [(&str, &str, f64); 2] = [
    ("units.serve", "hearth.service", 2.0),
    ("units.bridge", "hearth-bridge.service", 4.0),
];

fn units(dir: &Path) -> Vec<Check> {
    UNIT_BOUNDS
        .iter()
        .map(|&(id, unit, bound)| {
            let path = dir.join(unit);
            if !path.exists() {
                return check(id, Status::Skip, format!("{} is not installed", path.display()));
            }
            match exposure(&path) {
                Ok(score) if score <= bound => {
                    check(id, Status::Ok, format!("{unit}: exposure {score:.1} (bound {bound:.1})"))
                }
                Ok(score) => check(
                    id,
                    Status::Fail,
                    format!("{unit}: exposure {score:.1} is over {bound:.1}; reinstall the unit from systemd/"),
                ),
                Err(e) => check(id, Status::Warn, format!("{unit}: cannot score it: {e}")),
            }
        })
        .collect()
}

/// `systemd-analyze security --offline=yes UNIT`'s overall exposure.
pub fn exposure(unit: &Path) -> Result<f64, String> {
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(unit)
        .output()
        .map_err(|e| format!("systemd-analyze: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            let rest = l.split("Overall exposure level for ").nth(1)?;
            rest.split(": ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| {
            format!(
                "no score in its output: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })
}

fn disk(data_dir: &Path) -> Check {
    // The nearest existing ancestor: the data directory may not exist yet.
    let mut dir = data_dir;
    while !dir.exists() {
        match dir.parent() {
            Some(p) => dir = p,
            None => break,
        }
    }
    match free_bytes(dir) {
        Ok(free) => {
            let mib = free >> 20;
            let status = match mib {
                0..256 => Status::Fail,
                256..1024 => Status::Warn,
                _ => Status::Ok,
            };
            check(
                "disk.space",
                status,
                format!("{mib} MiB free on {}'s file system", dir.display()),
            )
        }
        Err(e) => check("disk.space", Status::Warn, format!("cannot tell: {e}")),
    }
}

fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a writable struct.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(s.f_bavail as u64 * s.f_frsize as u64)
}

/// Inodes of the IP sockets (TCP, UDP, raw; v4 and v6) process `pid`
/// holds; empty for a daemon without network. `Err` when `/proc` does not
/// let us look (another user's process without root).
pub fn network_sockets(pid: u32) -> std::io::Result<Vec<String>> {
    let held: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))?
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let mut found = Vec::new();
    for table in [
        "tcp", "tcp6", "udp", "udp6", "raw", "raw6", "udplite", "udplite6",
    ] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            // The inode is the 10th column.
            if let Some(inode) = line.split_whitespace().nth(9)
                && held.iter().any(|h| h == inode)
            {
                found.push(format!("{table}:{inode}"));
            }
        }
    }
    Ok(found)
}

/// Process ids of running `hearth SUBCOMMAND`s (`serve`, `bridge`).
pub fn hearth_pids(subcommand: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let mut args = cmd.split(|b| *b == 0);
        let exe = args.next()?;
        let is_hearth = exe.ends_with(b"/hearth") || exe == b"hearth";
        (is_hearth && args.any(|a| a == subcommand.as_bytes())).then_some(pid)
    })
    .collect()
}

fn serve_network(units_dir: &Path) -> Check {
    let unit = units_dir.join("hearth.service");
    if let Ok(text) = std::fs::read_to_string(&unit)
        && !text.lines().any(|l| l.trim() == "PrivateNetwork=yes")
    {
        return check(
            "serve.network",
            Status::Fail,
            format!("{} does not set PrivateNetwork=yes", unit.display()),
        );
    }
    let pids = hearth_pids("serve");
    if pids.is_empty() {
        return check(
            "serve.network",
            if unit.exists() {
                Status::Ok
            } else {
                Status::Skip
            },
            "no hearth serve running; the unit gives it no network",
        );
    }
    let mut notes = Vec::new();
    for pid in pids {
        match network_sockets(pid) {
            Ok(s) if s.is_empty() => notes.push(format!("pid {pid}: no IP sockets")),
            Ok(s) => {
                return check(
                    "serve.network",
                    Status::Fail,
                    format!("hearth serve (pid {pid}) holds network sockets {s:?}"),
                );
            }
            Err(e) => notes.push(format!("pid {pid}: cannot look ({e}; run as root)")),
        }
    }
    check("serve.network", Status::Ok, notes.join("; "))
}

fn bridge(l: &Layout) -> Check {
    let db = crate::store::session::SessionDb::file(&l.bridge_dir);
    match (mode_of(&l.bridge_dir), mode_of(&db)) {
        (None, _) => check(
            "bridge.state",
            Status::Warn,
            format!(
                "{} does not exist: WhatsApp is not linked (`hearth pair`)",
                l.bridge_dir.display()
            ),
        ),
        (Some(m), _) if open_to_others(m) => check(
            "bridge.state",
            Status::Fail,
            format!(
                "{} is mode {m:o}; run `chmod 700 {}`",
                l.bridge_dir.display(),
                l.bridge_dir.display()
            ),
        ),
        (Some(_), None) => check(
            "bridge.state",
            Status::Warn,
            "no WhatsApp session: run `hearth pair`",
        ),
        (Some(_), Some(m)) if open_to_others(m) => check(
            "bridge.state",
            Status::Fail,
            format!(
                "{} is mode {m:o}; run `chmod 600 {}`",
                db.display(),
                db.display()
            ),
        ),
        (Some(_), Some(_)) => check("bridge.state", Status::Ok, "session present, private"),
    }
}

fn time_sync() -> Check {
    let now = crate::clock::now_ms();
    // 2025-01-01: a box whose clock reads earlier has never synced.
    if now < 1_735_689_600_000 {
        return check(
            "time.sync",
            Status::Fail,
            format!(
                "the clock reads {}: reminders will fire at wrong times; enable NTP",
                crate::clock::utc_minute(now)
            ),
        );
    }
    let synced = std::process::Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "yes");
    match synced {
        Some(true) => check("time.sync", Status::Ok, "NTP synchronised"),
        Some(false) => check(
            "time.sync",
            Status::Warn,
            "the clock is not NTP-synchronised (timedatectl set-ntp true)",
        ),
        None if Path::new(crate::timesync::TIMESYNCD_MARKER).exists() => {
            check("time.sync", Status::Ok, "systemd-timesyncd synchronised")
        }
        None => check(
            "time.sync",
            Status::Warn,
            format!(
                "cannot tell whether the clock is synchronised (it reads {})",
                crate::clock::utc_minute(now)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_holds_no_network_socket_and_modes_are_judged() {
        assert_eq!(
            network_sockets(std::process::id()).unwrap(),
            Vec::<String>::new()
        );
        assert!(open_to_others(0o644) && open_to_others(0o640) && !open_to_others(0o600));
        let l = Layout::installed(Path::new("/nonexistent-root"));
        assert!(l.units_dir.ends_with("etc/systemd/system"));
        assert_eq!(units(&l.units_dir)[0].status, Status::Skip);
    }

    #[test]
    fn the_debian_package_layout_is_found() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        assert!(!Layout::is_installed(r));
        std::fs::create_dir_all(r.join("usr/lib/systemd/system")).unwrap();
        std::fs::write(r.join("usr/lib/systemd/system/hearth.service"), "").unwrap();
        std::fs::create_dir_all(r.join("usr/share/hearth/models")).unwrap();
        assert!(Layout::is_installed(r));
        let l = Layout::installed(r);
        assert_eq!(l.units_dir, r.join("usr/lib/systemd/system"));
        assert_eq!(l.models_dir, r.join("usr/share/hearth/models"));
        // An administrator's copy in /etc wins, as systemd's own order.
        std::fs::create_dir_all(r.join("etc/systemd/system")).unwrap();
        std::fs::write(r.join("etc/systemd/system/hearth.service"), "").unwrap();
        assert_eq!(Layout::installed(r).units_dir, r.join("etc/systemd/system"));
    }
}
