//! The 256-bit key that encrypts the store: generated once from the OS's
//! random source into a key file of mode 0600, read back on every start,
//! and refused when the file is readable by others or malformed.
//!
//! Owns key files; must not know what the key encrypts.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A 256-bit secret. Debug output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, as written to key files and handed to SQLCipher.
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }

    fn from_hex(s: &str) -> Option<Self> {
        let bytes = crate::hex::decode(s.trim())?;
        Some(Self(bytes.try_into().ok()?))
    }
}

/// Why a key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path} does not exist")]
    Missing { path: PathBuf },
    #[error(
        "key file {path} can be read by other users (mode {mode:o}); run `chmod 600 {path}` \
         (or set {ALLOW_INSECURE_KEY}=1 to accept it)"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error(
        "key file {key} is inside the data directory {dir}: whoever copies the data gets the key too; \
         keep it elsewhere (--key-file, [storage] key_file) or set {ALLOW_INSECURE_KEY}=1"
    )]
    InDataDir { key: PathBuf, dir: PathBuf },
    #[error("key file {path} does not hold a key (expected 64 hex digits)")]
    Malformed { path: PathBuf },
    #[error("key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no random numbers from the operating system: {0}")]
    Random(String),
}

/// The environment variable that accepts a key file others can read or
/// one kept inside the data directory (with a warning).
pub const ALLOW_INSECURE_KEY: &str = "HEARTH_ALLOW_INSECURE_KEY";

fn insecure_allowed() -> bool {
    std::env::var_os(ALLOW_INSECURE_KEY).is_some_and(|v| v == "1")
}

/// Refuses a key file inside `data_dir` (unless explicitly allowed).
pub fn check_apart(key: &Path, data_dir: &Path) -> Result<(), KeyError> {
    let abs = |p: &Path| {
        fs::canonicalize(p).unwrap_or_else(|_| {
            // Not there yet: its parent's real path and its name.
            match (
                p.parent().and_then(|d| fs::canonicalize(d).ok()),
                p.file_name(),
            ) {
                (Some(d), Some(n)) => d.join(n),
                _ => p.to_path_buf(),
            }
        })
    };
    if abs(key).starts_with(abs(data_dir)) {
        if insecure_allowed() {
            tracing::warn!(key = %key.display(), "key file inside the data directory (allowed by {ALLOW_INSECURE_KEY})");
            return Ok(());
        }
        return Err(KeyError::InDataDir {
            key: key.to_path_buf(),
            dir: data_dir.to_path_buf(),
        });
    }
    Ok(())
}

/// Reads the key in `path`, refusing a file others can read.
pub fn read(path: &Path) -> Result<Key, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::Missing {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io(e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    let creds = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let open = mode & too_open_bits(path, creds.as_deref());
    if open != 0 && insecure_allowed() {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "key file readable by others (allowed by {ALLOW_INSECURE_KEY})");
    } else if open != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = fs::read_to_string(path).map_err(io)?;
    Key::from_hex(&text).ok_or_else(|| KeyError::Malformed {
        path: path.to_path_buf(),
    })
}

/// The mode bits that make a key file too open. A systemd credential
/// (`$CREDENTIALS_DIRECTORY/…`) comes as mode 0440 in a directory only the
/// unit's user can enter, mounted only in the unit's namespace: there the
/// group bit is systemd's, and only "others" counts.
fn too_open_bits(path: &Path, credentials: Option<&Path>) -> u32 {
    match credentials {
        Some(dir) if path.parent() == Some(dir) => 0o007,
        _ => 0o077,
    }
}

/// Where a rotation keeps the new key until the database uses it
/// (`store.key.new` beside `store.key`).
pub fn pending(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    path.with_file_name(name)
}

/// Replaces `path` with the pending key (atomic rename, then the
/// directory synced): the last step of a rotation.
pub fn commit_pending(path: &Path) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    fs::rename(pending(path), path).map_err(io)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

/// Writes a new key to `path` (mode 0600, its directory 0700 when created),
/// failing if the file already exists so a key is never overwritten.
pub fn create(path: &Path) -> Result<Key, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    let key = Key::generate()?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(format!("{}\n", key.to_hex()).as_bytes())
        .map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_systemd_credential_may_be_group_readable_nothing_else() {
        use super::too_open_bits;
        let creds = std::path::Path::new("/run/credentials/hearth.service");
        let key = creds.join("store.key");
        assert_eq!(0o440 & too_open_bits(&key, Some(creds)), 0);
        assert_ne!(0o444 & too_open_bits(&key, Some(creds)), 0);
        assert_ne!(0o440 & too_open_bits(&key, None), 0);
        let elsewhere = std::path::Path::new("/etc/hearth/store.key");
        assert_ne!(0o440 & too_open_bits(elsewhere, Some(creds)), 0);
    }

    use super::*;

    #[test]
    fn create_then_read_round_trips_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/store.key");
        let k = create(&path).unwrap();
        assert_eq!(read(&path).unwrap(), k);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(create(&path), Err(KeyError::Io { .. })));
        assert_eq!(format!("{k:?}"), "Key(..)");
    }

    #[test]
    fn refuses_open_malformed_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        assert!(matches!(read(&path), Err(KeyError::Missing { .. })));
        fs::write(&path, "not hex").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(read(&path), Err(KeyError::Malformed { .. })));
        fs::write(&path, "ab".repeat(32)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read(&path),
            Err(KeyError::TooOpen { mode: 0o644, .. })
        ));
    }
}
