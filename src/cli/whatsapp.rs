//! `hearth pair`, `hearth unpair` and `hearth bridge` on WhatsApp: the
//! command-line side of [`crate::bridge::whatsapp`] (arguments, messages,
//! exit codes). The bridge's paths come from `[whatsapp]` in the config.

use std::path::PathBuf;

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
}

#[derive(Debug, Args)]
pub struct UnpairArgs {}

/// `hearth pair`.
pub fn pair(g: &GlobalArgs, a: PairArgs) -> anyhow::Result<Outcome> {
    let paths = g.bridge_paths()?;
    let rt = super::serve::runtime()?;
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
    outln!(
        "Linked to WhatsApp as {number}. The session is encrypted in {}.",
        paths.state_dir.display()
    );
    outln!(
        "Start the bridge with `hearth bridge` (or its systemd unit); `hearth status` shows the link."
    );
    Ok(Outcome::Ok)
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
        None => g.paths()?.socket(),
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
