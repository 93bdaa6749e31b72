//! The `hearth` command line: argument definitions (clap), process set-up and
//! dispatch to one module per command family. Commands print for people on
//! stdout/stderr; they hold no engine logic of their own.

/// `println!` that returns an error instead of panicking when stdout is
/// closed (e.g. `hearth models list | head`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?;
    }};
}

mod audit;
mod bench;
mod chat;
mod doctor;
mod firstboot;
mod index;
mod key;
mod models;
mod privacy;
mod remote;
mod search;
mod serve;
mod transcribe;
mod whatsapp;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::catalog::{Catalog, default_models_dir};
use crate::llm::Engine;

/// What a successful command run means for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The command ran, and what it checked is not right (exit 1).
    CheckFailed,
}

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Ok => ExitCode::SUCCESS,
            Outcome::CheckFailed => ExitCode::from(1),
        }
    }
}

/// Hearth: a fully offline assistant that runs on your own box.
///
/// Models run in-process on the CPU; nothing leaves the machine but the
/// WhatsApp messages `hearth bridge` carries. Start with `scripts/setup.sh`
/// (builds and fetches the default models), then `hearth chat`; `hearth
/// serve` + `hearth pair` + `hearth bridge` put it on WhatsApp.
///
/// Exit codes: 0 success, 1 a check failed (`models verify`, `audit verify`,
/// `doctor`, `status`), 2 error.
#[derive(Debug, Parser)]
#[command(
    name = "hearth",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Directory holding model files [default: ./models, else models/ of the
    /// checkout the binary was built in]
    #[arg(long, global = true, env = "HEARTH_MODELS_DIR", value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Model manifest to use instead of MODELS_DIR/manifest.toml
    #[arg(long, global = true, env = "HEARTH_MANIFEST", value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Where Hearth keeps its encrypted database [default:
    /// ~/.local/share/hearth]
    #[arg(long, global = true, env = "HEARTH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The store's key file, kept outside the data directory [default:
    /// ~/.config/hearth/store.key; created on first use]
    #[arg(long, global = true, env = "HEARTH_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Settings file written by `hearth init` [default:
    /// ~/.config/hearth/config.toml]
    #[arg(long, global = true, env = "HEARTH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG
    /// overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Talk to the model in the terminal (streams tokens; /reset, /stats,
    /// /exit)
    Chat(chat::ChatArgs),
    /// Ask one question and print the answer
    ///
    /// Examples:
    ///   hearth ask "What is the capital of Germany?"
    ///   hearth ask --temperature 0 --json "Name three rivers"
    ///   hearth ask --model gemma3 --raw "The capital of France is"
    #[command(verbatim_doc_comment)]
    Ask(chat::AskArgs),
    /// Measure prompt processing and generation speed (llama-bench style)
    ///
    /// `pp512` is one prefill of 512 tokens into an empty cache; `tg128` is
    /// 128 single-token decodes from an empty cache. Each test runs once to
    /// warm up, then 5 times; t/s is the mean ± sample standard deviation.
    ///
    /// Examples:
    ///   hearth bench                      # every installed LLM, all threads
    ///   hearth bench -m smollm2 -t 1,2    # one model, 1 and 2 threads
    ///   hearth bench --json
    #[command(verbatim_doc_comment)]
    Bench(bench::BenchArgs),
    /// List, download, verify and import model files
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Index the folders you allow Hearth to read (no subcommand: sync)
    ///
    /// Examples:
    ///   hearth index add ~/docs     # allow a folder
    ///   hearth index                # index new, changed and deleted files
    ///   hearth index list           # folders, counts, exclusions
    ///   hearth index remove ~/docs  # forget the folder and its index
    #[command(verbatim_doc_comment)]
    Index(index::IndexArgs),
    /// Search your indexed documents (full-text and semantic, fused)
    ///
    /// Examples:
    ///   hearth search "router password"
    ///   hearth search --json -k 3 "dentist appointment"
    ///   printf 'q1\nq2\n' | hearth search --json -
    #[command(verbatim_doc_comment)]
    Search(search::SearchArgs),
    /// Turn voice notes into text on this box (Whisper; nothing leaves it)
    ///
    /// Reads Ogg/Opus (what WhatsApp sends) and WAV, detects the language
    /// unless told, and prints nothing for silence. The model is loaded once
    /// for all files.
    ///
    /// Examples:
    ///   hearth transcribe note.ogg
    ///   hearth transcribe --language de -t 2 a.ogg b.wav
    ///   hearth transcribe --json ~/notes/*.ogg
    #[command(verbatim_doc_comment)]
    Transcribe(transcribe::TranscribeArgs),
    /// Run the daemon: the model and the store behind a Unix socket
    ///
    /// The bridge and `hearth bridge --simulate` talk to it; every message
    /// is stored before it is acknowledged and answered exactly once, even
    /// across crashes. Needs no network. Stop with Ctrl-C or SIGTERM.
    ///
    /// Example:
    ///   hearth serve &
    ///   echo '{"message_id":"1","chat_id":"me","sender_id":"me","text":"Hi","timestamp_ms":0}' \
    ///     | hearth bridge --simulate
    #[command(verbatim_doc_comment)]
    Serve(serve::ServeArgs),
    /// Connect WhatsApp (or, with --simulate, stdin/stdout) to the daemon
    ///
    /// Holds this box's linked-device session (made by `hearth pair`) and
    /// forwards messages to `hearth serve`; never opens Hearth's store.
    /// Messages are kept in the bridge's own encrypted queue until the
    /// daemon has them, so either process may restart at any time.
    Bridge(serve::BridgeArgs),
    /// Link this box to a WhatsApp account (QR code, or --phone for a code)
    ///
    /// Shows a QR code to scan with WhatsApp > Settings > Linked devices,
    /// renewed as WhatsApp rotates it; with --phone +NUMBER, an 8-character
    /// code to type on the phone instead. If WhatsApp asks for a passkey,
    /// it walks you through the browser step (README "Connect WhatsApp").
    /// Needs internet access from this box; fails within seconds without.
    ///
    /// Examples:
    ///   hearth pair
    ///   hearth pair --phone +447700900123
    #[command(verbatim_doc_comment)]
    Pair(whatsapp::PairArgs),
    /// Unlink this box from WhatsApp and wipe its session
    Unpair(whatsapp::UnpairArgs),
    /// Show whether `hearth serve` runs and its state (exit 1 if it does not)
    Status(serve::StatusArgs),
    /// Write a commented config file with every default (owner number,
    /// time zone, model settings)
    ///
    /// Example:
    ///   hearth init --owner +4915112345678
    #[command(verbatim_doc_comment)]
    Init(serve::InitArgs),
    /// Apply the appliance's hearth-setup.toml (owner, time zone, host name,
    /// Wi-Fi, SSH key) from its boot partition
    ///
    /// The Raspberry Pi image runs this at every boot (hearth-setup.service);
    /// it does nothing while the file is unchanged, and removes the Wi-Fi
    /// password from the boot partition once it is stored in /etc.
    ///
    /// Examples:
    ///   hearth firstboot --template > hearth-setup.toml
    ///   sudo hearth firstboot --boot /boot/firmware
    #[command(verbatim_doc_comment)]
    Firstboot(firstboot::FirstbootArgs),
    /// Show and check the tamper-evident audit log
    ///
    /// Every security-relevant action (folders added or removed, files
    /// refused, senders approved or denied, owner commands, reminders
    /// fired, data erased or exported, pairing, keys) is a record chained
    /// to the one before by its sha256.
    ///
    /// Examples:
    ///   hearth audit tail -n 50
    ///   hearth audit verify
    ///   hearth audit verify --head 57:3f2a…   # a head /audit sent you
    #[command(subcommand, verbatim_doc_comment)]
    Audit(audit::AuditCommand),
    /// Check this installation: keys, data, models, units, network, disk, clock
    ///
    /// Each check has a stable id (config.valid, config.owner,
    /// key.store.present, key.store.mode, key.bridge.present,
    /// key.bridge.mode, key.location, data.dir, data.files, socket.mode,
    /// models.hashes, units.serve, units.bridge, disk.space, serve.network,
    /// bridge.state, time.sync) and a status: ok, warn, fail or skip.
    ///
    /// Examples:
    ///   sudo hearth doctor          # the box scripts/install.sh set up
    ///   hearth doctor --json
    ///   hearth doctor --root /tmp/stage --quick
    #[command(verbatim_doc_comment)]
    Doctor(doctor::DoctorArgs),
    /// What is stored, for how long, where the keys are, what the network sees
    Privacy(privacy::PrivacyArgs),
    /// Write everything stored into a zip you can take away
    ///
    /// Messages, the documents index, reminders, sender decisions and the
    /// audit log as JSON, and the media the bridge saved. The zip is not
    /// encrypted (mode 0600); the export itself is audited.
    ///
    /// Example:
    ///   hearth export -o ~/hearth-backup.zip
    #[command(verbatim_doc_comment)]
    Export(privacy::ExportArgs),
    /// Manage the encryption keys (rotate)
    #[command(subcommand)]
    Key(key::KeyCommand),
}

/// Options shared by every command that runs a model.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Model to use: a name from `hearth models list` [default: the
    /// config's [model] name, else the largest default this box's memory
    /// fits]
    #[arg(short, long, env = "HEARTH_MODEL")]
    pub model: Option<String>,
    /// Compute threads [default: all cores]
    #[arg(short, long, value_name = "N")]
    pub threads: Option<usize>,
    /// Context length in tokens (clamped to what the model was trained for)
    #[arg(long, default_value_t = 4096, value_name = "TOKENS")]
    pub ctx: usize,
}

/// Process-wide set-up that must happen before any other thread starts:
/// logging and the compute thread count.
pub fn init_process(cli: &Cli) {
    let quiet_transport = matches!(cli.command, Command::Pair(_) | Command::Unpair(_));
    let default = match cli.global.verbose {
        // Linking prints its own progress; the transport's retry chatter
        // would bury the QR code.
        0 if quiet_transport => "warn,whatsapp_rust=off,wacore=off",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let threads = match &cli.command {
        Command::Chat(a) => a.model.threads,
        Command::Ask(a) => a.model.threads,
        Command::Bench(a) => a.single_thread_count(),
        Command::Transcribe(a) => a.threads,
        Command::Serve(a) => a.model.threads.or_else(|| {
            crate::config::Config::load(&cli.global.config_file())
                .ok()
                .and_then(|c| c.model.threads)
        }),
        Command::Models(_)
        | Command::Index(_)
        | Command::Search(_)
        | Command::Bridge(_)
        | Command::Pair(_)
        | Command::Unpair(_)
        | Command::Status(_)
        | Command::Init(_)
        | Command::Firstboot(_)
        | Command::Audit(_)
        | Command::Doctor(_)
        | Command::Privacy(_)
        | Command::Export(_)
        | Command::Key(_) => None,
    };
    if let Some(n) = threads {
        crate::process::set_compute_threads(n);
    }
}

/// True when the error is stdout being closed by its reader: not a failure.
/// Reads one line typed into a chat (after a `> ` prompt on a terminal);
/// false at end of input.
pub(crate) fn read_turn(interactive: bool, line: &mut String) -> std::io::Result<bool> {
    use std::io::{BufRead, Write};
    if interactive {
        eprint!("> ");
        std::io::stderr().flush().ok();
    }
    line.clear();
    Ok(std::io::stdin().lock().read_line(line)? > 0)
}

pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let g = cli.global;
    match cli.command {
        Command::Chat(a) => chat::chat(&g, a),
        Command::Ask(a) => chat::ask(&g, a),
        Command::Bench(a) => bench::bench(&g, a),
        Command::Models(c) => models::run(&g, c),
        Command::Index(a) => index::run(&g, a),
        Command::Search(a) => search::run(&g, a),
        Command::Transcribe(a) => transcribe::run(&g, a),
        Command::Serve(a) => serve::serve(&g, a),
        Command::Bridge(a) => serve::bridge(&g, a),
        Command::Pair(a) => whatsapp::pair(&g, a),
        Command::Unpair(a) => whatsapp::unpair(&g, a),
        Command::Status(a) => match a.socket {
            Some(s) => remote::status(&s),
            None => remote::status(&g.socket()?),
        },
        Command::Init(a) => serve::init(&g, a),
        Command::Firstboot(a) => firstboot::run(&g, a),
        Command::Audit(c) => audit::run(&g, c),
        Command::Doctor(a) => doctor::run(&g, a),
        Command::Privacy(a) => privacy::privacy(&g, a),
        Command::Export(a) => privacy::export(&g, a),
        Command::Key(c) => key::run(&g, c),
    }
}

impl GlobalArgs {
    /// The config file this run reads (`--config`, `HEARTH_CONFIG`, default).
    pub fn config_file(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(crate::paths::Paths::default_config)
    }

    /// The data directory and key file this run uses: flags and
    /// environment first, then the config file's `[storage]`, then the
    /// defaults. An invalid config file is an error here too.
    pub fn paths(&self) -> anyhow::Result<crate::paths::Paths> {
        let storage = crate::config::Config::load(&self.config_file())?.storage;
        Ok(self.paths_with(storage))
    }

    /// [`Self::paths`] from an already loaded `[storage]`.
    fn paths_with(&self, storage: crate::config::Storage) -> crate::paths::Paths {
        let from_config = |p: Option<PathBuf>| p.map(|p| crate::config::Storage::expand(&p));
        crate::paths::Paths::resolve(
            self.data_dir
                .clone()
                .or_else(|| from_config(storage.data_dir)),
            // A key systemd handed this process (the service) wins over
            // the config's path, which names the root-only original.
            self.key_file
                .clone()
                .or_else(|| crate::paths::credential("store.key"))
                .or_else(|| from_config(storage.key_file)),
        )
    }
}

impl GlobalArgs {
    /// The daemon's socket: the config's `[storage] socket`, else
    /// `DATA_DIR/hearth.sock` (a `--socket` flag wins where a command has one).
    pub fn socket(&self) -> anyhow::Result<PathBuf> {
        let storage = crate::config::Config::load(&self.config_file())?.storage;
        match &storage.socket {
            Some(s) if self.data_dir.is_none() => Ok(crate::config::Storage::expand(s)),
            _ => Ok(self.paths_with(storage).socket()),
        }
    }

    /// The bridge's state directory and key file (environment, then the
    /// config's `[whatsapp]`, then the defaults).
    pub fn bridge_paths(&self) -> anyhow::Result<crate::paths::BridgePaths> {
        let wa = crate::config::Config::load(&self.config_file())?.whatsapp;
        let expand = |p: Option<PathBuf>| p.map(|p| crate::config::Storage::expand(&p));
        Ok(crate::paths::BridgePaths::resolve(
            expand(wa.state_dir),
            expand(wa.key_file),
        ))
    }
}

/// What `hearth audit`, `privacy` and `export` say on a fresh box.
pub(crate) fn nothing_yet(paths: &crate::paths::Paths) -> String {
    format!(
        "Nothing is stored yet: {} does not exist (`hearth serve` creates it when the first message arrives).",
        paths.database().display()
    )
}

/// The sentence embedder from the manifest's `minilm` model.
pub(crate) fn load_embedder(g: &GlobalArgs) -> anyhow::Result<crate::embed::Embedder> {
    let catalog = open_catalog(g)?;
    let model = catalog.model_path("minilm")?;
    let dir = model.parent().unwrap_or(std::path::Path::new("."));
    Ok(crate::embed::Embedder::load(dir)?)
}

pub(crate) fn open_catalog(g: &GlobalArgs) -> anyhow::Result<Catalog> {
    let dir = g.models_dir.clone().unwrap_or_else(default_models_dir);
    Ok(Catalog::open(dir, g.manifest.as_deref())?)
}

/// The chat model a run uses: `--model` (or `HEARTH_MODEL`), else the
/// config's `[model] name`, else the one this box's memory picks from the
/// manifest's defaults.
pub(crate) fn chosen_model(
    g: &GlobalArgs,
    m: &ModelArgs,
    catalog: &Catalog,
) -> anyhow::Result<String> {
    if let Some(name) = &m.model {
        return Ok(name.clone());
    }
    let config = crate::config::Config::load(&g.config_file())?;
    Ok(match config.model.name {
        Some(name) => name,
        None => catalog.default_chat().name,
    })
}

/// Resolves the model (see [`chosen_model`]) and loads it, with errors
/// that say what to do.
pub(crate) fn load_engine(g: &GlobalArgs, m: &ModelArgs) -> anyhow::Result<(String, Engine)> {
    let catalog = open_catalog(g)?;
    let name = chosen_model(g, m, &catalog)?;
    catalog.manifest.get_llm(&name)?;
    let path = catalog.model_path(&name)?;
    let engine = Engine::load(&path, m.ctx)?;
    tracing::info!(model = %name, load_ms = engine.load_time().as_millis() as u64, "model ready");
    Ok((name, engine))
}

/// Parses "1,2,4" into numbers.
pub(crate) fn parse_list(s: &str) -> anyhow::Result<Vec<usize>> {
    s.split(',')
        .map(|p| {
            p.trim()
                .parse::<usize>()
                .with_context(|| format!("`{p}` is not a whole number"))
        })
        .collect()
}
