//! `hearth pair`, `hearth unpair` and `hearth bridge` on WhatsApp: the
//! command-line side of [`crate::bridge::whatsapp`] (arguments, messages,
//! exit codes). The bridge's paths come from `[whatsapp]` in the config.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{GlobalArgs, Outcome};
use crate::bridge::whatsapp::{self, PairOptions, RunOptions, Unpaired};

#[derive(Debug, Args)]
pub struct PairArgs {
    /// Link with an 8-character code typed on the phone instead of a QR
    /// code; the number of the WhatsApp account Hearth will use, with
    /// country code (e.g. +44 7700 900123)
    #[arg(long, value_name = "+NUMBER")]
    pub phone: Option<String>,
    /// Draw the QR code for a terminal with a light background
    #[arg(long)]
    pub invert: bool,
    /// Exit 0 at once when this box is already linked (the appliance's
    /// console pairing service runs this at every boot)
    #[arg(long)]
    pub if_unlinked: bool,
}

#[derive(Debug, Args)]
pub struct UnpairArgs {}

/// `hearth pair`.
pub fn pair(g: &GlobalArgs, a: PairArgs) -> anyhow::Result<Outcome> {
    let paths = g.bridge_paths()?;
    let rt = super::serve::runtime()?;
    if a.if_unlinked
        && let Some(n) = rt.block_on(whatsapp::linked_number(&paths))?
    {
        outln!("This box is already linked to WhatsApp as {n}; nothing to do.");
        return Ok(Outcome::Ok);
    }
    let _lock = pairing_lock(&paths.state_dir)?;
    let number = rt.block_on(async {
        let shutdown = CancellationToken::new();
        super::serve::cancel_on_signals(shutdown.clone())?;
        whatsapp::pair(
            PairOptions {
                paths: paths.clone(),
                phone: a.phone,
                invert: a.invert,
            },
            shutdown,
        )
        .await
    })?;
    give_to_owner(&paths.state_dir)?;
    outln!(
        "Linked to WhatsApp as {number}. The session is encrypted in {}.",
        paths.state_dir.display()
    );
    outln!(
        "Start the bridge with `hearth bridge` (or its systemd unit); `hearth status` shows the link."
    );
    Ok(Outcome::Ok)
}

/// One `hearth pair` at a time per session: the appliance's console shows a
/// QR code (`hearth-pair.service`) while the owner may ask for a code over
/// SSH. Held until dropped.
fn pairing_lock(state_dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let path = state_dir.join("pair.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        anyhow::bail!(
            "another `hearth pair` is running for {} (on the appliance's console: stop it with `sudo systemctl stop hearth-pair`)",
            state_dir.display()
        );
    }
    Ok(f)
}

/// Run as root (`sudo hearth pair` on the appliance), the session files
/// just written belong to root; they are given to the state directory's
/// owner (user hearth-bridge), who runs the bridge.
fn give_to_owner(state_dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let dir =
        std::fs::metadata(state_dir).with_context(|| format!("reading {}", state_dir.display()))?;
    if dir.uid() == 0 {
        return Ok(());
    }
    for entry in walkdir::WalkDir::new(state_dir) {
        let entry = entry.with_context(|| format!("walking {}", state_dir.display()))?;
        std::os::unix::fs::lchown(entry.path(), Some(dir.uid()), Some(dir.gid()))
            .with_context(|| format!("giving {} to uid {}", entry.path().display(), dir.uid()))?;
    }
    Ok(())
}

/// `hearth unpair`.
pub fn unpair(g: &GlobalArgs, _a: UnpairArgs) -> anyhow::Result<Outcome> {
    let paths = g.bridge_paths()?;
    let rt = super::serve::runtime()?;
    match rt.block_on(whatsapp::unpair(&paths))? {
        Unpaired::LoggedOut(n) => {
            outln!("Logged {n} out of WhatsApp and wiped this box's session.")
        }
        Unpaired::WipedOffline(n) => {
            outln!("Wiped this box's session for {n}, but WhatsApp could not be reached:");
            outln!("remove \"Hearth\" under Settings > Linked devices on the phone as well.");
        }
        Unpaired::NotLinked => outln!("This box is not linked to WhatsApp; nothing to do."),
    }
    Ok(Outcome::Ok)
}

/// `hearth bridge` (not simulated).
pub fn bridge(g: &GlobalArgs, socket: Option<PathBuf>) -> anyhow::Result<Outcome> {
    let config = crate::config::Config::load(&g.config_file())?;
    let paths = g.bridge_paths()?;
    let socket = match socket {
        Some(s) => s,
        None => g.socket()?,
    };
    let rt = super::serve::runtime()?;
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        super::serve::cancel_on_signals(shutdown.clone())?;
        eprintln!(
            "hearth bridge: WhatsApp session in {}, daemon on {} (Ctrl-C stops)",
            paths.state_dir.display(),
            socket.display()
        );
        whatsapp::run(
            RunOptions {
                paths,
                socket,
                personal: config.whatsapp.mode == crate::policy::Mode::Personal,
                media_cap: config.whatsapp.media_cap(),
                media_keep: (config.retention.media_days > 0).then(|| {
                    std::time::Duration::from_secs(u64::from(config.retention.media_days) * 86_400)
                }),
                media_from: config
                    .owner
                    .numbers
                    .iter()
                    .chain(&config.whatsapp.allowed)
                    .map(|n| n.digits().to_string())
                    .collect(),
            },
            shutdown,
        )
        .await
    })?;
    Ok(Outcome::Ok)
}
