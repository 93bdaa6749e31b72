//! The bridge's media inbox on disk: retention (files older than
//! `[retention] media_days` are overwritten with zeros, synced, then
//! removed) and wiping it whole. Overwriting is best effort on flash
//! storage (wear levelling may keep old blocks), so the inbox should live
//! on an encrypted file system where that matters; the README says so.

use std::io::{Seek, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Overwrites `path` with zeros, syncs, and removes it.
pub fn shred(path: &Path) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    let len = f.metadata()?.len();
    f.seek(std::io::SeekFrom::Start(0))?;
    let zeros = [0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    drop(f);
    std::fs::remove_file(path)
}

/// Shreds the inbox's regular files last modified longer than `max_age`
/// ago (every file when `max_age` is `None`); returns how many went.
/// A missing inbox is empty.
pub fn sweep(inbox: &Path, max_age: Option<Duration>) -> std::io::Result<usize> {
    sweep_before(inbox, max_age.map(|age| SystemTime::now() - age))
}

/// Shreds the inbox's files last modified before `cutoff` (all of them
/// when `None`).
pub fn sweep_before(inbox: &Path, cutoff: Option<SystemTime>) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(inbox) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut n = 0;
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        if !meta.is_file() {
            continue;
        }
        let old = match cutoff {
            None => true,
            Some(cut) => meta.modified().is_ok_and(|m| m < cut),
        };
        if old {
            shred(&entry.path())?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_files_are_shredded_and_new_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.jpg");
        let new = dir.path().join("new.jpg");
        std::fs::write(&old, b"old picture").unwrap();
        std::fs::write(&new, b"new picture").unwrap();
        let f = std::fs::File::options().write(true).open(&old).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(40 * 86_400))
            .unwrap();
        drop(f);
        let n = sweep(dir.path(), Some(Duration::from_secs(30 * 86_400))).unwrap();
        assert_eq!(n, 1);
        assert!(!old.exists() && new.exists());
        assert_eq!(sweep(dir.path(), None).unwrap(), 1);
        assert!(!new.exists());
        assert_eq!(sweep(&dir.path().join("missing"), None).unwrap(), 0);
    }
}
