//! Where Hearth keeps things on disk: the data directory (database, inbox,
//! sockets) and the key file, which by default lives outside the data
//! directory so a copy of one is not a copy of both.
//!
//! Resolution order for each: the command-line flag, the environment
//! (`HEARTH_DATA_DIR`, `HEARTH_KEY_FILE`), for key files a systemd
//! credential (`$CREDENTIALS_DIRECTORY/store.key`, `bridge.key`: the
//! service's copy of a key only root may read), the config file's
//! `[storage]` (the caller passes those in), the XDG base directories, then
//! `~/.local/share/hearth` and `~/.config/hearth/store.key`.

use std::path::{Path, PathBuf};

/// An XDG base directory: `$VAR` when set to an absolute path, else
/// `~/fallback`.
fn xdg(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(fallback)))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The locations one Hearth instance uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub data_dir: PathBuf,
    pub key_file: PathBuf,
}

impl Paths {
    /// Resolves the defaults for whatever was not given.
    pub fn resolve(data_dir: Option<PathBuf>, key_file: Option<PathBuf>) -> Self {
        Self {
            data_dir: data_dir
                .unwrap_or_else(|| xdg("XDG_DATA_HOME", ".local/share").join("hearth")),
            key_file: key_file
                .or_else(|| credential("store.key"))
                .unwrap_or_else(|| xdg("XDG_CONFIG_HOME", ".config").join("hearth/store.key")),
        }
    }

    /// The config file's default place: `$XDG_CONFIG_HOME/hearth/config.toml`
    /// (`~/.config/hearth/config.toml`), else, when that does not exist,
    /// the installed box's [`SYSTEM_CONFIG`] if it does (so `sudo hearth
    /// privacy` on the appliance reads the services' settings).
    pub fn default_config() -> PathBuf {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let user = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| home.map(|h| h.join(".config")))
            .unwrap_or_else(|| PathBuf::from("."))
            .join("hearth/config.toml");
        config_between(user, Path::new(SYSTEM_CONFIG))
    }

    /// The daemon's Unix socket (mode 0600).
    pub fn socket(&self) -> PathBuf {
        self.data_dir.join("hearth.sock")
    }

    /// The encrypted database.
    pub fn database(&self) -> PathBuf {
        self.data_dir.join("hearth.db")
    }

    /// Whether `path` lies inside the data directory (a key there would
    /// travel with every copy of the data).
    pub fn is_in_data_dir(&self, path: &Path) -> bool {
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        abs(path).starts_with(abs(&self.data_dir))
    }
}

/// Where the bridge keeps its WhatsApp session and queues: its own state
/// directory and key file, apart from the data directory so the bridge
/// can run with no access to the store (and `serve` with none to the
/// session).
///
/// Resolution order: the environment (`HEARTH_BRIDGE_DIR`,
/// `HEARTH_BRIDGE_KEY_FILE`), for the key a systemd credential, the config
/// file's `[whatsapp]` (passed in),
/// then `$XDG_STATE_HOME/hearth-bridge` (`~/.local/state/hearth-bridge`) and
/// `~/.config/hearth/bridge.key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePaths {
    pub state_dir: PathBuf,
    pub key_file: PathBuf,
}

impl BridgePaths {
    pub fn resolve(state_dir: Option<PathBuf>, key_file: Option<PathBuf>) -> Self {
        let env = |var: &str| std::env::var_os(var).map(PathBuf::from);
        Self {
            state_dir: env("HEARTH_BRIDGE_DIR")
                .or(state_dir)
                .unwrap_or_else(|| xdg("XDG_STATE_HOME", ".local/state").join("hearth-bridge")),
            key_file: env("HEARTH_BRIDGE_KEY_FILE")
                .or_else(|| credential("bridge.key"))
                .or(key_file)
                .unwrap_or_else(|| xdg("XDG_CONFIG_HOME", ".config").join("hearth/bridge.key")),
        }
    }

    /// Received media (voice notes, images, documents), mode 0700.
    pub fn inbox(&self) -> PathBuf {
        self.state_dir.join("inbox")
    }
}

/// The config the Debian package installs for the services.
pub const SYSTEM_CONFIG: &str = "/etc/hearth/config.toml";

/// The user's config when it exists, else the system's when that does.
fn config_between(user: PathBuf, system: &Path) -> PathBuf {
    if !user.exists() && system.exists() {
        system.to_path_buf()
    } else {
        user
    }
}

/// A systemd credential (`LoadCredential=NAME:…`,
/// `LoadCredentialEncrypted=`): `$CREDENTIALS_DIRECTORY/NAME` when the
/// service manager passed one.
pub fn credential(name: &str) -> Option<PathBuf> {
    credential_in(std::env::var_os("CREDENTIALS_DIRECTORY"), name)
}

fn credential_in(dir: Option<std::ffi::OsString>, name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(dir?).join(name);
    path.is_file().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_systemd_credential_is_found_only_when_passed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("store.key"), "k").unwrap();
        let d = Some(dir.path().as_os_str().to_owned());
        assert_eq!(
            credential_in(d.clone(), "store.key"),
            Some(dir.path().join("store.key"))
        );
        assert_eq!(credential_in(d, "bridge.key"), None);
        assert_eq!(credential_in(None, "store.key"), None);
    }

    #[test]
    fn the_system_config_serves_when_the_user_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let (user, system) = (dir.path().join("user.toml"), dir.path().join("etc.toml"));
        assert_eq!(config_between(user.clone(), &system), user);
        std::fs::write(&system, "").unwrap();
        assert_eq!(config_between(user.clone(), &system), system);
        std::fs::write(&user, "").unwrap();
        assert_eq!(config_between(user.clone(), &system), user);
    }

    #[test]
    fn flags_win_and_the_key_stays_outside_the_data_dir() {
        let p = Paths::resolve(Some("/d".into()), Some("/k/key".into()));
        assert_eq!(p.database(), PathBuf::from("/d/hearth.db"));
        assert_eq!(p.key_file, PathBuf::from("/k/key"));
        let d = Paths::resolve(None, None);
        assert!(!d.is_in_data_dir(&d.key_file));
        assert!(d.is_in_data_dir(&d.database()));
    }
}
