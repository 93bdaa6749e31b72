//! `hearth serve` (the daemon) and `hearth bridge` (its transport side):
//! argument definitions, the tokio runtime and signal handling. The work
//! is in [`crate::serve`] and [`crate::bridge`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{GlobalArgs, ModelArgs, Outcome, load_engine};
use crate::store::{Create, Store};

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The Unix socket to listen on [default: the config's [storage] socket,
    /// else DATA_DIR/hearth.sock]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Let the socket's group connect (mode 0660, not 0600): for a bridge
    /// running as another user in this group, as systemd/hearth-bridge.service does
    #[arg(long)]
    pub socket_group: bool,
    /// Most tokens per reply [default: the config's max_reply_tokens, 256]
    #[arg(short = 'n', long, value_name = "N")]
    pub max_tokens: Option<usize>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Your phone number in international form (+ and country code)
    #[arg(long, value_name = "+NUMBER")]
    pub owner: Option<String>,
    /// The chat model to write [default: the largest default this box's
    /// memory fits; see `hearth models default`]
    #[arg(short, long, value_name = "NAME")]
    pub model: Option<String>,
    /// Overwrite an existing config file
    #[arg(long)]
    pub force: bool,
    /// Write the config for the packaged services (the Debian package's
    /// /etc/hearth/config.toml): their data, key and session places, time
    /// zone UTC, and no model name (each start picks the largest installed
    /// default this box's memory fits)
    #[arg(long, conflicts_with = "model")]
    pub system: bool,
}

#[derive(Debug, Args)]
pub struct BridgeArgs {
    /// Replace WhatsApp with stdin/stdout: inbound messages as JSON lines
    /// in ({"message_id","chat_id","sender_id","text","timestamp_ms"}),
    /// replies as JSON lines out ({"out_id","chat_id","text","reply_to",
    /// "sent_id"}); a reply over WhatsApp's 4000 characters is several
    /// lines with one out_id, cut at paragraph boundaries. Messages wait in
    /// the bridge's own queue until the daemon has them, as on WhatsApp
    #[arg(long)]
    pub simulate: bool,
    /// The daemon's socket [default: the config's [storage] socket, else
    /// DATA_DIR/hearth.sock]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// After stdin ends, stop waiting for replies after this many seconds
    /// without a frame from the daemon
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub idle: u64,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The daemon's socket [default: the config's [storage] socket, else
    /// DATA_DIR/hearth.sock]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// A runtime for the socket side; the model runs on its own thread.
pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Cancels `token` on SIGTERM or SIGINT.
pub(super) fn cancel_on_signals(token: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        token.cancel();
    });
    Ok(())
}

pub fn init(g: &GlobalArgs, a: InitArgs) -> anyhow::Result<Outcome> {
    let path = g.config_file();
    let owner = a
        .owner
        .map(crate::config::PhoneNumber::try_from)
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    if a.system {
        let t = crate::config::TemplateFor::system(owner.as_ref());
        crate::config::write_template(&path, &t, a.force)?;
        outln!("wrote {} (for the packaged services)", path.display());
        return Ok(Outcome::Ok);
    }
    let zone = crate::config::system_time_zone();
    let catalog = super::open_catalog(g)?;
    let chosen = match a.model {
        Some(name) => {
            catalog.manifest.get_llm(&name)?;
            crate::catalog::DefaultChoice {
                why: format!("`{name}`, given with --model"),
                name,
            }
        }
        None => catalog.default_chat(),
    };
    let t = crate::config::TemplateFor {
        owner: owner.as_ref(),
        time_zone: &zone,
        model: Some(crate::config::ModelChoice {
            name: &chosen.name,
            why: &chosen.why,
        }),
        system: false,
    };
    crate::config::write_template(&path, &t, a.force)?;
    outln!("wrote {} (time zone {zone})", path.display());
    outln!("chat model: {} ({})", chosen.name, chosen.why);
    if catalog.model_path(&chosen.name).is_err() {
        outln!(
            "fetch the model with `MODELS=\"{} minilm\" scripts/setup.sh --no-build`",
            chosen.name
        );
    }
    if owner.is_none() {
        outln!("add your phone number under [owner] before linking WhatsApp");
    }
    Ok(Outcome::Ok)
}

/// Audits the daemon's start, and a config that changed since the last.
fn audit_start(store: &mut Store, config: &std::path::Path) -> anyhow::Result<()> {
    use sha2::{Digest, Sha256};
    // A missing config file (defaults) has a fingerprint too.
    let bytes = std::fs::read(config).unwrap_or_default();
    let fingerprint = crate::hex::encode(&Sha256::digest(&bytes));
    store.config_seen(&config.display().to_string(), &fingerprint)?;
    store.audit(&crate::audit::Entry::new(
        crate::audit::Actor::Serve,
        crate::audit::Action::ServeStarted,
        format!("hearth {}", env!("CARGO_PKG_VERSION")),
    ))?;
    Ok(())
}

pub fn serve(g: &GlobalArgs, a: ServeArgs) -> anyhow::Result<Outcome> {
    let config = crate::config::Config::load(&g.config_file())?;
    let paths = g.paths()?;
    let socket = match a.socket {
        Some(s) => s,
        None => g.socket()?,
    };
    let mut store = Store::open(&paths, Create::IfMissing)?;
    audit_start(&mut store, &g.config_file())?;
    let (name, engine) = load_engine(g, &a.model)?;
    let embedder = match super::load_embedder(g) {
        Ok(e) => Some(e),
        Err(e) => {
            eprintln!(
                "warning: serving without memory (no /search, no excerpts in replies): {e:#}"
            );
            None
        }
    };
    let voice_dir = if config.voice.enabled {
        match super::open_catalog(g).and_then(|c| Ok(c.model_path(&config.voice.model)?)) {
            Ok(p) => p.parent().map(std::path::Path::to_path_buf),
            Err(e) => {
                eprintln!(
                    "warning: voice notes will be answered with a note that they cannot be heard: {e:#}"
                );
                None
            }
        }
    } else {
        None
    };
    let rt = runtime()?;
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        cancel_on_signals(shutdown.clone())?;
        eprintln!(
            "hearth serve: model `{name}`, listening on {} (Ctrl-C stops)",
            socket.display()
        );
        crate::serve::run(
            store,
            engine,
            embedder,
            crate::serve::ServeOptions {
                socket,
                socket_group: a.socket_group,
                keys: crate::serve::KeyPlaces {
                    store: paths.key_file.clone(),
                    bridge: g.bridge_paths()?.key_file,
                },
                model_name: name,
                voice_dir,
                max_reply_tokens: a.max_tokens.unwrap_or(config.model.max_reply_tokens),
                config,
            },
            shutdown,
        )
        .await
    })?;
    Ok(Outcome::Ok)
}

pub fn bridge(g: &GlobalArgs, a: BridgeArgs) -> anyhow::Result<Outcome> {
    if !a.simulate {
        return super::whatsapp::bridge(g, a.socket);
    }
    let socket = match a.socket {
        Some(s) => s,
        None => g.socket()?,
    };
    let rt = runtime()?;
    let report = rt.block_on(async {
        let shutdown = CancellationToken::new();
        cancel_on_signals(shutdown.clone())?;
        let opts = crate::bridge::simulate::SimulateOptions {
            socket,
            idle: Duration::from_secs(a.idle),
            paths: g.bridge_paths()?,
        };
        anyhow::Ok(crate::bridge::simulate::run(opts, shutdown).await?)
    })?;
    eprintln!(
        "bridge: {} sent, {} replies, {} reconnects, {} own echoes dropped, {} unanswered",
        report.sent, report.replies, report.reconnects, report.echoes, report.unanswered
    );
    Ok(if report.unanswered == 0 {
        Outcome::Ok
    } else {
        Outcome::CheckFailed
    })
}
