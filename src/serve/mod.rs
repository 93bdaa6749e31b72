//! `hearth serve`: the daemon that owns the model and the store. It listens
//! on a Unix socket (mode 0600) and speaks [`crate::proto`] to the bridge
//! and CLI clients; an inbound message is committed to the store before it
//! is acknowledged, and the [`agent`] thread answers the queue. Shutdown is
//! a cancellation token (SIGTERM/SIGINT in the CLI): connections close,
//! a generation in progress is abandoned (its message stays queued), and
//! nothing accepted is lost.
//!
//! Opens no network socket of any kind; must not hold SQL (the store does)
//! or model code (the agent drives the engine).

pub mod agent;
mod commands;
mod gate;
pub mod memory;
mod reminders;
mod requests;
mod retention;
mod systemd;
mod voice;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use anyhow::Context;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::proto::{
    self, ChatId, ClientFrame, ClientRole, ErrorCode, LinkState, MessageId, OutId, Outbound,
    ServerFrame, StatusReport,
};
use crate::store::{Reply, Store, StoreError};

/// What the agent tells connected clients.
#[derive(Debug, Clone)]
pub enum Event {
    Reply(Reply),
    Typing {
        chat_id: String,
        on: bool,
    },
    /// `/forget everything`: bridges shred media saved before this time.
    EraseMedia {
        before_ms: i64,
    },
}

/// State shared by the connections and the agent.
pub struct Shared {
    store: Mutex<Store>,
    events: broadcast::Sender<Event>,
    wake: Mutex<std::sync::mpsc::Sender<()>>,
    started: Instant,
    model: String,
    bridges: AtomicUsize,
    /// Wakes the reminder clock when a reminder is added or cancelled.
    reminders_changed: tokio::sync::Notify,
    /// The owner's time zone (reminders, the date in prompts).
    time_zone: jiff::tz::TimeZone,
    /// Whether the wall clock may date reminders yet (no RTC, no sync).
    clock: crate::timesync::ClockTrust,
    /// The owner's settings (policy, owner numbers).
    config: crate::config::Config,
    /// When the agent last showed signs of life (ms since the epoch), for
    /// the systemd watchdog.
    agent_beat: std::sync::atomic::AtomicI64,
    /// The transport's state as the bridge last reported it.
    link: Mutex<Option<(LinkState, Option<String>)>>,
    keys: KeyPlaces,
    /// What the agent's ears report, for `/status`.
    voice: Mutex<voice::VoiceStatus>,
}

impl Shared {
    /// The store, for one short operation. A poisoned lock (a panic while
    /// holding it) still holds a consistent store: every write is a
    /// transaction.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the store, locked for just that call (a guard taken in
    /// a `match` scrutinee would stay held through the arms).
    pub fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        f(&mut self.store())
    }

    /// Appends an audit record; a failure is logged, never blocks what
    /// was audited.
    pub fn audit(&self, e: crate::audit::Entry) {
        if let Err(err) = self.with_store(|s| s.audit(&e)) {
            tracing::error!(error = %err, action = e.action.as_str(), "audit record not written");
        }
    }

    /// The agent is alive (it calls this between messages and tokens).
    fn beat(&self) {
        self.agent_beat
            .store(crate::clock::now_ms(), Ordering::Relaxed);
    }

    fn wake_agent(&self) {
        let _ = self.wake.lock().map(|w| w.send(()));
    }

    /// The transparency report (`/privacy`).
    pub fn privacy(&self) -> Result<crate::privacy::Report, StoreError> {
        let store = self.store();
        Ok(crate::privacy::Report::new(
            store.holdings()?,
            self.config.retention,
            store.path().parent().unwrap_or(Path::new("")),
            &self.keys.store,
            &self.keys.bridge,
        ))
    }

    pub fn status(&self) -> Result<StatusReport, StoreError> {
        let link = self.link.lock().map(|l| l.clone()).unwrap_or(None);
        let store = self.store();
        let index = store.stats()?;
        Ok(StatusReport {
            model: self.model.clone(),
            uptime_s: self.started.elapsed().as_secs(),
            queue_depth: store.queue_depth()?,
            unsent_replies: store.unsent_count()?,
            bridge_connected: self.bridges.load(Ordering::Relaxed) > 0,
            paused: store.paused()?,
            documents: index.documents,
            messages: index.messages,
            chunks: index.chunks,
            reminders: store.pending_reminder_count()?,
            link: link.as_ref().map(|l| l.0),
            link_detail: link.and_then(|l| l.1),
            senders_waiting: store.open_questions(crate::clock::now_ms(), gate::QUESTIONS)?,
            dropped: store.dropped()?.iter().map(|(_, n)| n).sum(),
            voice: Some({
                let v = self.voice.lock().map(|v| v.clone()).unwrap_or_default();
                let state = match (v.enabled, v.installed, v.loaded) {
                    (false, _, _) => "off".to_string(),
                    (true, false, _) => format!("{} not installed", v.model),
                    (true, true, false) => format!("{} ready (loaded on the first note)", v.model),
                    (true, true, true) => format!("{} loaded", v.model),
                };
                format!(
                    "{state}; {} heard, {} waiting",
                    v.heard,
                    store.voice_notes_waiting()?
                )
            }),
        })
    }
}

/// Where and how to serve.
pub struct ServeOptions {
    pub socket: PathBuf,
    /// Socket mode 0660 instead of 0600: a bridge running as another user
    /// in the daemon's group may connect (the split systemd units).
    pub socket_group: bool,
    pub model_name: String,
    /// Most tokens per reply.
    pub max_reply_tokens: usize,
    /// The owner's settings (who may command).
    pub config: crate::config::Config,
    /// Where the store and bridge keys are, for `/privacy`.
    pub keys: KeyPlaces,
    /// The speech model's directory, when it is installed.
    pub voice_dir: Option<PathBuf>,
}

/// Where the two keys are, as `/privacy` reports them.
#[derive(Debug, Clone, Default)]
pub struct KeyPlaces {
    pub store: PathBuf,
    pub bridge: PathBuf,
}

/// Runs the daemon until `shutdown` is cancelled. Without an embedder
/// (none installed) it answers without memory: no search, no excerpts.
pub async fn run(
    store: Store,
    engine: crate::llm::Engine,
    embedder: Option<crate::embed::Embedder>,
    opts: ServeOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = bind(&opts.socket, opts.socket_group)?;
    let memory = match embedder {
        Some(e) => Some(memory::Memory::load(e, &store).context("loading the search index")?),
        None => None,
    };
    let (events, _) = broadcast::channel(256);
    let (wake_tx, wake_rx) = std::sync::mpsc::channel();
    let shared = Arc::new(Shared {
        store: Mutex::new(store),
        events,
        wake: Mutex::new(wake_tx),
        started: Instant::now(),
        model: opts.model_name.clone(),
        bridges: AtomicUsize::new(0),
        reminders_changed: tokio::sync::Notify::new(),
        time_zone: opts.config.time_zone.zone(),
        clock: crate::timesync::ClockTrust::new(opts.config.clock.clone()),
        agent_beat: std::sync::atomic::AtomicI64::new(crate::clock::now_ms()),
        config: opts.config.clone(),
        link: Mutex::new(None),
        keys: opts.keys.clone(),
        voice: Mutex::new(voice::VoiceStatus::default()),
    });
    let agent = {
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let max = opts.max_reply_tokens;
        let config = opts.config.clone();
        let ears = voice::Ears::new(opts.voice_dir.clone(), opts.config.voice.clone());
        std::thread::Builder::new()
            .name("hearth-agent".into())
            .spawn(move || {
                agent::run(
                    engine, memory, ears, &shared, &config, &wake_rx, &shutdown, max,
                )
            })
            .context("starting the agent thread")?
    };
    let clock = tokio::spawn(reminders::run(shared.clone(), shutdown.clone()));
    let purge = tokio::spawn(retention::run(shared.clone(), shutdown.clone()));
    systemd::ready(&shared, &shutdown);
    tracing::info!(socket = %opts.socket.display(), "serving");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connection(stream, shared, shutdown).await {
                            tracing::debug!(error = %e, "connection ended");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            },
        }
    }
    tracing::info!("shutting down");
    systemd::stopping();
    shared.wake_agent();
    let _ = clock.await;
    let _ = purge.await;
    let _ = tokio::task::spawn_blocking(move || agent.join()).await;
    let _ = std::fs::remove_file(&opts.socket);
    Ok(())
}

/// Binds the socket with mode 0600, replacing a stale socket file (one no
/// daemon answers on) but never a live one.
fn bind(path: &Path, group: bool) -> anyhow::Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another hearth serve is already listening on {}",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing stale socket {}", path.display()))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))?;
    let mode = if group { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("restricting {}", path.display()))?;
    Ok(listener)
}

async fn send(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    frame: &ServerFrame,
) -> std::io::Result<()> {
    w.write_all(proto::encode(frame).as_bytes()).await
}

fn outbound(r: &Reply) -> ServerFrame {
    ServerFrame::Outbound(Outbound {
        out_id: OutId(r.out_id),
        chat_id: ChatId(r.chat_id.clone()),
        text: r.text.clone(),
        reply_to: r.reply_to.clone().map(MessageId),
    })
}

/// One client: `hello`, then frames both ways until either side closes.
async fn connection(
    stream: UnixStream,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut lines = FramedRead::new(r, proto::FrameCodec::for_clients());
    let role = loop {
        let Some(line) = lines.next().await else {
            return Ok(());
        };
        let hello = line?
            .and_then(|l| proto::decode::<ClientFrame>(&l))
            .and_then(|f| proto::check_hello(&f));
        match hello {
            Ok(role) => break role,
            // A wrong version ends the conversation; anything else may be
            // followed by a proper hello.
            Err(e @ proto::ProtoError::UnsupportedVersion { .. }) => {
                send(&mut w, &e.frame()).await?;
                return Ok(());
            }
            Err(e) => send(&mut w, &e.frame()).await?,
        }
    };
    send(
        &mut w,
        &ServerFrame::Welcome {
            version: proto::VERSION,
        },
    )
    .await?;
    let mut events = shared.events.subscribe();
    let _bridge = (role == ClientRole::Bridge).then(|| BridgeGuard::new(&shared));
    resend_unsent(&shared, role, &mut w).await?;
    if role == ClientRole::Bridge {
        // A /forget everything the bridge may have missed (idempotent).
        let s = shared.clone();
        if let Some(before_ms) =
            tokio::task::spawn_blocking(move || s.store().media_erase_before()).await??
        {
            send(&mut w, &ServerFrame::EraseMedia { before_ms }).await?;
        }
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            line = lines.next() => {
                let frame = match line {
                    None => return Ok(()),
                    Some(l) => l?.and_then(|l| proto::decode_client(&l)),
                };
                match frame {
                    Ok(f) => {
                        for reply in handle(&shared, role, f).await? {
                            send(&mut w, &reply).await?;
                        }
                    }
                    Err(e) => send(&mut w, &e.frame()).await?,
                }
            }
            event = events.recv() => match event {
                Ok(Event::Reply(r)) if hears(role, &r.chat_id) => {
                    send(&mut w, &outbound(&r)).await?;
                }
                Ok(Event::Typing { chat_id, on }) if hears(role, &chat_id) => {
                    send(&mut w, &ServerFrame::Typing { chat_id: ChatId(chat_id), on }).await?;
                }
                Ok(Event::EraseMedia { before_ms }) if role == ClientRole::Bridge => {
                    send(&mut w, &ServerFrame::EraseMedia { before_ms }).await?;
                }
                Ok(_) => {}
                // Missed events: the outbox still has every unsent reply.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    resend_unsent(&shared, role, &mut w).await?;
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        }
    }
}

/// Whether a client hears about `chat_id`: the bridge every transport
/// chat, a CLI client the terminal chats (it picks out the replies to its
/// own messages, and shows reminders).
fn hears(role: ClientRole, chat_id: &str) -> bool {
    match role {
        ClientRole::Bridge => !ChatId::is_local(chat_id),
        ClientRole::Cli => ChatId::is_local(chat_id),
    }
}

/// What a client that (re)connected or missed events has not confirmed:
/// for the bridge every unsent reply in a transport chat, for a CLI client
/// the reminders that fired in a terminal chat while no terminal was
/// connected (replies to a terminal that went away are not its business).
/// Clients drop ids they have already delivered.
async fn resend_unsent(
    shared: &Arc<Shared>,
    role: ClientRole,
    w: &mut tokio::net::unix::OwnedWriteHalf,
) -> anyhow::Result<()> {
    let unsent = shared.store().unsent_replies()?;
    let due = |r: &&Reply| {
        hears(role, &r.chat_id) && (role == ClientRole::Bridge || r.reply_to.is_none())
    };
    for r in unsent.iter().filter(due) {
        send(w, &outbound(r)).await?;
    }
    Ok(())
}

/// Counts connected bridges for `/status`.
struct BridgeGuard(Arc<Shared>);

impl BridgeGuard {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.bridges.fetch_add(1, Ordering::Relaxed);
        Self(shared.clone())
    }
}

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        // The last bridge gone: its link state is no longer known.
        if self.0.bridges.fetch_sub(1, Ordering::Relaxed) == 1 {
            *self.0.link.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

/// The daemon's answer to one frame after `hello`.
async fn handle(
    shared: &Arc<Shared>,
    role: ClientRole,
    frame: ClientFrame,
) -> anyhow::Result<Vec<ServerFrame>> {
    let error = |code, message: &str| ServerFrame::Error {
        code,
        message: message.to_string(),
    };
    Ok(match frame {
        ClientFrame::Hello { .. } => vec![error(ErrorCode::OutOfOrder, "hello was already said")],
        // Terminal chats are the owner's: only a CLI client may write in
        // them, and a CLI client writes nowhere else.
        ClientFrame::Inbound(m) if ChatId::is_local(&m.chat_id.0) != (role == ClientRole::Cli) => {
            vec![error(
                ErrorCode::Forbidden,
                "cli: chats are for terminal clients only, and terminal clients only write in them",
            )]
        }
        ClientFrame::Inbound(m) => {
            let s = shared.clone();
            let (chat_id, message_id) = (m.chat_id.clone(), m.message_id.clone());
            // Policy first (transport messages only: the terminal is the
            // owner), then the commit; SQLite commits (fsync) off the
            // async threads.
            let stored = tokio::task::spawn_blocking(move || gate::take(&s, role, &m)).await?;
            match stored {
                Ok(outcome) => {
                    match outcome {
                        gate::Stored::Queued { new: true }
                        | gate::Stored::Remembered { new: true } => shared.wake_agent(),
                        gate::Stored::Held(Some(notice)) | gate::Stored::Answered(Some(notice)) => {
                            let _ = shared.events.send(Event::Reply(notice));
                        }
                        _ => {}
                    }
                    // Held messages are acknowledged too: the bridge must
                    // not offer them again.
                    vec![ServerFrame::Ack {
                        chat_id,
                        message_id,
                    }]
                }
                Err(e) => {
                    tracing::error!(error = %e, "storing an inbound message failed");
                    vec![error(
                        ErrorCode::Internal,
                        "could not store the message; re-send it",
                    )]
                }
            }
        }
        ClientFrame::Sent { out_id } => {
            let s = shared.clone();
            tokio::task::spawn_blocking(move || s.store().mark_sent(out_id.0)).await??;
            Vec::new()
        }
        ClientFrame::Status {} => vec![ServerFrame::Status(shared.status()?)],
        ClientFrame::Link { .. } if role != ClientRole::Bridge => {
            vec![error(
                ErrorCode::Forbidden,
                "only the bridge reports its link",
            )]
        }
        ClientFrame::Link { state, detail } => {
            link_changed(shared, state, detail).await?;
            Vec::new()
        }
        ClientFrame::Audit { .. } if role != ClientRole::Bridge => {
            vec![error(
                ErrorCode::Forbidden,
                "only the bridge reports audit events",
            )]
        }
        ClientFrame::Audit {
            id, action, object, ..
        } => {
            use crate::audit::{Action, Actor, Entry};
            let action = match action {
                proto::BridgeAction::KeyCreated => Action::KeyCreated,
                proto::BridgeAction::Paired => Action::Paired,
                proto::BridgeAction::Unpaired => Action::Unpaired,
                proto::BridgeAction::MediaErased => Action::Erased,
            };
            let s = shared.clone();
            tokio::task::spawn_blocking(move || {
                s.with_store(|st| st.audit(&Entry::new(Actor::Bridge, action, object)))
            })
            .await??;
            vec![ServerFrame::Audited { id }]
        }
    })
}

/// Records the bridge's transport state. A state that needs the owner
/// (logged out, banned, replaced, outdated) is logged as a warning and
/// written to the owner's chat once per change (it reaches the phone when
/// the link works again); "not linked" is only logged. `hearth status`
/// shows each at once.
async fn link_changed(
    shared: &Arc<Shared>,
    state: LinkState,
    detail: Option<String>,
) -> anyhow::Result<()> {
    let before = {
        let mut link = shared.link.lock().unwrap_or_else(|p| p.into_inner());
        link.replace((state, detail.clone())).map(|l| l.0)
    };
    if before == Some(state) {
        return Ok(());
    }
    if !state.needs_owner() {
        tracing::info!(?state, "bridge link");
        return Ok(());
    }
    if state == LinkState::NotLinked {
        // Nothing can reach the owner's phone before the box is linked,
        // and a note saying "not linked" would arrive just after it is.
        tracing::warn!("the bridge is not linked to WhatsApp yet (`hearth pair`)");
        return Ok(());
    }
    let text = format!(
        "WhatsApp link: {}",
        detail.unwrap_or_else(|| format!("{state:?}"))
    );
    tracing::warn!(?state, %text, "bridge link needs the owner");
    let chat = shared
        .config
        .owner_chat()
        .unwrap_or_else(|| "cli:owner".to_string());
    let s = shared.clone();
    let notice =
        tokio::task::spawn_blocking(move || s.with_store(|st| st.notify(&chat, &text))).await??;
    let _ = shared.events.send(Event::Reply(notice));
    Ok(())
}
