//! The WhatsApp side of the bridge, on whatsapp-rust 0.7: linking this box
//! as a companion device (`hearth pair`), forgetting it (`hearth unpair`),
//! and the running bridge (`hearth bridge`): decrypted messages are mapped
//! ([`mapping`]) and committed to the bridge's own encrypted queue before
//! WhatsApp is told they arrived (the library's durability hook), then
//! forwarded to `serve` until acknowledged; replies are cut under 4000
//! characters and sent as plain text (no link previews), their ids kept
//! so their echoes are recognised.
//!
//! Holds only the transport session ([`backend`] on `store::session`);
//! must not open the Hearth store, index or model, and decides nothing
//! about who may talk to Hearth (that is `serve`'s gate).

pub mod backend;
pub mod link;
pub mod mapping;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::{Notify, mpsc};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use whatsapp_rust::prelude::*;
use whatsapp_rust::types::durability_hook::InboundMessage;
use whatsapp_rust::{InboundDurabilityHook, Jid};

use self::backend::SessionBackend;
use self::link::{LinkEvent, Linking, Show, Step};
use self::mapping::Me;
use crate::paths::BridgePaths;
use crate::proto::{self, ClientFrame, ClientRole, Inbound, LinkState, Outbound, ServerFrame};
use crate::store::Create;
use crate::store::session::SessionDb;

/// Where WhatsApp's servers are, for the reachability check.
const WHATSAPP_HOST: &str = "web.whatsapp.com:443";
/// How long the reachability check may take.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `hearth pair` waits for the first QR code or pairing code.
const FIRST_CODE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long linking may take overall.
const LINK_TIMEOUT: Duration = Duration::from_secs(600);

/// Fails within seconds, with what to do, when this box cannot open a
/// connection to WhatsApp (no network, no DNS, a firewall). The host can
/// be overridden by `HEARTH_WHATSAPP_HOST` (tests).
pub async fn check_reachable() -> anyhow::Result<()> {
    let host = std::env::var("HEARTH_WHATSAPP_HOST").unwrap_or_else(|_| WHATSAPP_HOST.into());
    check_reachable_at(&host).await
}

async fn check_reachable_at(host: &str) -> anyhow::Result<()> {
    let addrs = match tokio::time::timeout(REACH_TIMEOUT, tokio::net::lookup_host(host)).await {
        Err(_) => anyhow::bail!(link::unreachable_message(&format!(
            "looking up {host} timed out"
        ))),
        Ok(Err(e)) => anyhow::bail!(link::unreachable_message(&format!(
            "cannot look up {host}: {e}"
        ))),
        Ok(Ok(a)) => a.collect::<Vec<_>>(),
    };
    let mut last = String::from("no address");
    for addr in addrs {
        match tokio::time::timeout(REACH_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: timed out"),
        }
    }
    anyhow::bail!(link::unreachable_message(&format!(
        "cannot connect to {host} ({last})"
    )))
}

/// The session database, opened (or created) for the bridge.
fn open_session(paths: &BridgePaths, create: Create) -> anyhow::Result<Arc<SessionDb>> {
    let db = SessionDb::open(&paths.state_dir, &paths.key_file, create).with_context(|| {
        format!(
            "opening the WhatsApp session in {}",
            paths.state_dir.display()
        )
    })?;
    Ok(Arc::new(db))
}

/// The account this box is linked to, if any.
async fn linked_account(backend: &SessionBackend) -> anyhow::Result<Option<Me>> {
    use whatsapp_rust::wacore::store::traits::DeviceStore;
    Ok(backend
        .load()
        .await
        .map_err(|e| anyhow::anyhow!("reading the WhatsApp session: {e}"))?
        .and_then(|d| {
            d.pn.clone().map(|pn| Me {
                pn: Some(pn),
                lid: d.lid.clone(),
            })
        }))
}

/// How `hearth pair` runs.
pub struct PairOptions {
    pub paths: BridgePaths,
    /// Link with a pairing code for this number instead of a QR code.
    pub phone: Option<String>,
    /// Draw the QR code for a light-background terminal.
    pub invert: bool,
}

/// Links this box; returns the linked number.
pub async fn pair(opts: PairOptions, shutdown: CancellationToken) -> anyhow::Result<String> {
    let phone = opts
        .phone
        .as_deref()
        .map(link::pairing_number)
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    check_reachable().await?;
    let db = open_session(&opts.paths, Create::IfMissing)?;
    let backend = SessionBackend::new(db.clone());
    if let Some(me) = linked_account(&backend).await? {
        anyhow::bail!(
            "this box is already linked to {}; run `hearth unpair` first to link another account",
            me.pn.map(|j| format!("+{}", j.user)).unwrap_or_default()
        );
    }
    let (tx, mut events) = mpsc::unbounded_channel::<LinkEvent>();
    let mut builder = Bot::builder()
        .with_backend(backend)
        .skip_history_sync()
        .with_push_name("Hearth")
        .on_event(move |e: Arc<Event>, _client| {
            let tx = tx.clone();
            async move {
                if let Some(le) = LinkEvent::from_event(&e) {
                    let _ = tx.send(le);
                }
            }
        });
    if let Some(number) = &phone {
        builder = builder.with_pair_code(whatsapp_rust::pair_code::PairCodeOptions {
            phone_number: number.clone(),
            ..Default::default()
        });
    }
    let bot = builder
        .build()
        .await
        .map_err(|e| anyhow::anyhow!("starting the WhatsApp client: {e}"))?;
    let client = bot.client();
    let handle = bot.spawn();
    let mut linking = Linking::new(phone.is_some());
    let mut shown_code = false;
    let started = tokio::time::Instant::now();
    let outcome = loop {
        let wait = if shown_code {
            LINK_TIMEOUT.saturating_sub(started.elapsed())
        } else {
            FIRST_CODE_TIMEOUT.saturating_sub(started.elapsed())
        };
        let event = tokio::select! {
            _ = shutdown.cancelled() => break Err(anyhow::anyhow!("linking cancelled")),
            e = tokio::time::timeout(wait, events.recv()) => e,
        };
        let event = match event {
            Err(_) if !shown_code => {
                break Err(anyhow::anyhow!(link::unreachable_message(
                    "no linking code arrived within 30 s"
                )));
            }
            Err(_) => {
                break Err(anyhow::anyhow!(
                    "linking timed out; run `hearth pair` again"
                ));
            }
            Ok(None) => break Err(anyhow::anyhow!("the WhatsApp client stopped")),
            Ok(Some(e)) => e,
        };
        match linking.on(event) {
            Step::Continue(shows) => {
                let mut failed = None;
                for show in shows {
                    shown_code |= matches!(show, Show::Qr { .. } | Show::PairCode { .. });
                    if let Err(e) = present(&show, &client, opts.invert).await {
                        failed = Some(e);
                        break;
                    }
                }
                if let Some(e) = failed {
                    break Err(e);
                }
            }
            Step::Linked { number } => break Ok(number),
            Step::Failed(why) => break Err(anyhow::anyhow!(why)),
        }
    };
    handle.shutdown().await;
    if outcome.is_err() {
        // A half-made device must not look linked next time.
        let _ = db.forget_session();
    }
    outcome
}

/// Shows one linking step in the terminal (and runs the passkey hand-off).
async fn present(show: &Show, client: &Arc<Client>, invert: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match show {
        Show::Qr { payload, valid_for } => {
            let qr = link::render_qr(payload, invert).map_err(|e| anyhow::anyhow!(e))?;
            // Clear the screen so a rotated code replaces the last one.
            write!(out, "\x1b[2J\x1b[H")?;
            writeln!(
                out,
                "Scan with WhatsApp on the phone of the account Hearth will use:\n\
                 Settings > Linked devices > Link a device (valid {} s, renewed automatically).\n\
                 Cannot scan? Ctrl-C, then `hearth pair --phone +NUMBER` for a code to type.\n",
                valid_for.as_secs()
            )?;
            writeln!(out, "{qr}")?;
        }
        Show::PairCode { code, valid_for } => {
            writeln!(
                out,
                "\nOn the phone: WhatsApp > Settings > Linked devices > Link a device >\n\
                 \"Link with phone number instead\", then type this code (valid {} s):\n\n    {}\n",
                valid_for.as_secs(),
                link::format_pair_code(code)
            )?;
        }
        Show::Info(text) => writeln!(out, "{text}")?,
        Show::Passkey { options_json } => {
            writeln!(
                out,
                "\nWhatsApp asks for your passkey to link this box. Hearth cannot use it itself;\n\
                 your browser can. On a computer:\n\
                 1. open https://web.whatsapp.com in Chrome, Edge, Firefox or Safari (no need to log in),\n\
                 2. open the developer console (F12, tab \"Console\") and paste this one line:\n\n{}\n\n\
                 3. choose your phone or password manager when the browser asks, confirm with your\n\
                    fingerprint or screen lock, and copy the one line of JSON the console prints.\n\
                 Paste it here and press Enter (within 5 minutes):",
                link::passkey_console_snippet(options_json)
            )?;
            drop(out);
            let line = read_line().await?;
            let assertion = link::parse_assertion(&line).map_err(|e| anyhow::anyhow!(e))?;
            client
                .send_passkey_response(assertion)
                .await
                .map_err(|e| anyhow::anyhow!("sending the passkey response: {e}"))?;
        }
        Show::ConfirmCode(code) => {
            writeln!(
                out,
                "Does your phone show the code {code}? Type yes and press Enter to finish linking:"
            )?;
            drop(out);
            let line = read_line().await?;
            if !line.trim().eq_ignore_ascii_case("yes") {
                anyhow::bail!("linking stopped: the codes did not match");
            }
            client
                .send_passkey_confirmation()
                .await
                .map_err(|e| anyhow::anyhow!("confirming the link: {e}"))?;
        }
    }
    Ok(())
}

/// One line typed by the owner, read off the async threads.
async fn read_line() -> anyhow::Result<String> {
    Ok(tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        std::io::stdin().read_line(&mut s).map(|_| s)
    })
    .await??)
}

/// What `hearth unpair` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Unpaired {
    /// Logged out at WhatsApp and wiped here.
    LoggedOut(String),
    /// Wiped here; WhatsApp could not be told (remove the device on the
    /// phone too).
    WipedOffline(String),
    NotLinked,
}

/// Logs this box out of WhatsApp (when reachable) and wipes the session.
pub async fn unpair(paths: &BridgePaths) -> anyhow::Result<Unpaired> {
    if !SessionDb::file(&paths.state_dir).exists() {
        return Ok(Unpaired::NotLinked);
    }
    let db = open_session(paths, Create::Never)?;
    let backend = SessionBackend::new(db.clone());
    let Some(me) = linked_account(&backend).await? else {
        db.forget_session()?;
        return Ok(Unpaired::NotLinked);
    };
    let number = me
        .pn
        .as_ref()
        .map(|j| format!("+{}", j.user))
        .unwrap_or_default();
    let told = match check_reachable().await {
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell WhatsApp about the unlink");
            false
        }
        Ok(()) => {
            let bot = Bot::builder()
                .with_backend(backend)
                .skip_history_sync()
                .build()
                .await
                .map_err(|e| anyhow::anyhow!("starting the WhatsApp client: {e}"))?;
            let client = bot.client();
            let handle = bot.spawn();
            let ok = client
                .wait_for_connected(Duration::from_secs(20))
                .await
                .is_ok();
            if ok {
                client.logout().await;
            }
            handle.shutdown().await;
            ok
        }
    };
    db.forget_session()?;
    Ok(if told {
        Unpaired::LoggedOut(number)
    } else {
        Unpaired::WipedOffline(number)
    })
}

/// How the bridge runs.
pub struct RunOptions {
    pub paths: BridgePaths,
    pub socket: PathBuf,
    /// Personal mode: write only in the owner's "message yourself" chat.
    pub personal: bool,
    /// Largest media file saved, in bytes.
    pub media_cap: u64,
    /// Numbers (digits) whose media may be saved: the owner's and the
    /// allow-listed.
    pub media_from: Vec<String>,
}

/// What the WhatsApp side tells the forwarder.
#[derive(Debug)]
enum Up {
    Link(LinkState, Option<String>),
}

/// Commits inbound messages to the bridge's queue before WhatsApp hears
/// they arrived (so a crash redelivers them), then wakes the forwarder.
struct QueueHook {
    db: Arc<SessionDb>,
    me: Me,
    inbox: PathBuf,
    media_cap: u64,
    media_from: Vec<String>,
    wake: Arc<Notify>,
}

#[whatsapp_rust::async_trait]
impl InboundDurabilityHook for QueueHook {
    async fn on_messages(
        &self,
        client: Arc<Client>,
        batch: &[InboundMessage],
    ) -> anyhow::Result<()> {
        for m in batch {
            let db = self.db.clone();
            let id = m.info.id.to_string();
            let own = tokio::task::spawn_blocking(move || db.is_own(&id)).await??;
            let mut inbound = match mapping::map_message(&m.message, &m.info, &self.me, |_| own) {
                Ok(i) => i,
                Err(skip) => {
                    tracing::debug!(?skip, "inbound event not forwarded");
                    continue;
                }
            };
            let trusted = mapping::media_trusted(&inbound, &self.media_from);
            if let Some(media) = inbound.media.as_mut()
                && trusted
                && mapping::keeps(media, self.media_cap)
            {
                match save_media(
                    &client,
                    &m.message,
                    &inbound.message_id.0,
                    media,
                    &self.inbox,
                )
                .await
                {
                    Ok(path) => media.saved_as = Some(path),
                    Err(e) => tracing::warn!(error = %e, "media not saved"),
                }
            }
            let frame = serde_json::to_string(&inbound)?;
            let db = self.db.clone();
            let (chat, id) = (inbound.chat_id.0.clone(), inbound.message_id.0.clone());
            tokio::task::spawn_blocking(move || db.queue_inbound(&chat, &id, &frame)).await??;
        }
        self.wake.notify_one();
        Ok(())
    }
}

/// Downloads a message's media into the inbox (mode 0600); returns the
/// saved path.
async fn save_media(
    client: &Arc<Client>,
    msg: &whatsapp_rust::waproto::whatsapp::Message,
    message_id: &str,
    media: &proto::Media,
    inbox: &std::path::Path,
) -> anyhow::Result<String> {
    use whatsapp_rust::wacore::proto_helpers::MessageExt;
    let base = msg.get_base_message();
    let bytes = if let Some(a) = base.audio_message.as_option() {
        client.download(a).await?
    } else if let Some(i) = base.image_message.as_option() {
        client.download(i).await?
    } else if let Some(d) = base.document_message.as_option() {
        client.download(d).await?
    } else {
        anyhow::bail!("no downloadable media");
    };
    let path = inbox.join(mapping::inbox_name(message_id, media));
    let p = path.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if let Some(dir) = p.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&p)?;
        f.write_all(&bytes)?;
        f.sync_all()
    })
    .await??;
    Ok(path.display().to_string())
}

/// Runs the bridge until `shutdown`.
pub async fn run(opts: RunOptions, shutdown: CancellationToken) -> anyhow::Result<()> {
    if !SessionDb::file(&opts.paths.state_dir).exists() {
        anyhow::bail!("this box is not linked to WhatsApp yet; run `hearth pair` first");
    }
    let db = open_session(&opts.paths, Create::Never)?;
    let backend = SessionBackend::new(db.clone());
    let Some(me) = linked_account(&backend).await? else {
        anyhow::bail!("this box is not linked to WhatsApp yet; run `hearth pair` first");
    };
    let wake = Arc::new(Notify::new());
    let (up_tx, up_rx) = mpsc::unbounded_channel::<Up>();
    let hook = QueueHook {
        db: db.clone(),
        me: me.clone(),
        inbox: opts.paths.inbox(),
        media_cap: opts.media_cap,
        media_from: opts.media_from.clone(),
        wake: wake.clone(),
    };
    let stop_wa = CancellationToken::new();
    let events_tx = up_tx.clone();
    let stop_on_terminal = stop_wa.clone();
    let bot = Bot::builder()
        .with_backend(backend)
        .skip_history_sync()
        .with_inbound_durability_hook(hook)
        .on_event(move |e: Arc<Event>, _client| {
            let tx = events_tx.clone();
            let stop = stop_on_terminal.clone();
            async move {
                if let Some((state, detail)) = link_state(&e) {
                    if state.needs_owner() {
                        stop.cancel();
                    }
                    let _ = tx.send(Up::Link(state, detail));
                }
            }
        })
        .build()
        .await
        .map_err(|e| anyhow::anyhow!("starting the WhatsApp client: {e}"))?;
    let client = bot.client();
    let _ = up_tx.send(Up::Link(LinkState::Connecting, None));
    let handle = bot.spawn();
    let forwarder = tokio::spawn(forward(
        opts.socket.clone(),
        db.clone(),
        client.clone(),
        me,
        opts.personal,
        wake,
        up_rx,
        shutdown.clone(),
    ));
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = stop_wa.cancelled() => {
            // A state that needs the owner: no silent reconnect loop. The
            // forwarder keeps delivering what is queued and reports the
            // state until the bridge is stopped.
            tracing::warn!("WhatsApp session stopped; waiting for the owner (see `hearth status`)");
            shutdown.cancelled().await;
        }
    }
    handle.shutdown().await;
    let _ = forwarder.await;
    Ok(())
}

/// The bridge-visible state behind a transport event.
fn link_state(e: &Event) -> Option<(LinkState, Option<String>)> {
    Some(match e {
        Event::Connected(_) => (LinkState::Connected, None),
        Event::Disconnected(_) => (LinkState::Disconnected, None),
        Event::LoggedOut(l) => (
            LinkState::LoggedOut,
            Some(format!(
                "WhatsApp logged this box out ({:?}); run `hearth pair` to link it again",
                l.reason
            )),
        ),
        Event::TemporaryBan(b) => (
            LinkState::TemporaryBan,
            Some(format!(
                "WhatsApp banned this account for {} min ({:?}); restart the bridge after it ends",
                b.expire.num_minutes(),
                b.code
            )),
        ),
        Event::StreamReplaced(_) => (
            LinkState::StreamReplaced,
            Some("another client took over this WhatsApp session (a second bridge with the same keys?); stop it, then restart the bridge".into()),
        ),
        Event::ClientOutdated(_) => (
            LinkState::ClientOutdated,
            Some("WhatsApp refuses this client version; update Hearth".into()),
        ),
        _ => return None,
    })
}

/// Delay before reconnecting to `serve` after `attempt` failures: doubling
/// from 100 ms to 5 s, with ±20 % jitter so restarts do not synchronise.
pub fn serve_backoff(attempt: u32, jitter: f64) -> Duration {
    let base = 100f64 * 2f64.powi(attempt.min(6) as i32);
    let ms = base.min(5000.0) * (1.0 + 0.2 * (jitter.clamp(0.0, 1.0) * 2.0 - 1.0));
    Duration::from_millis(ms as u64)
}

/// Connects to `serve` (retrying with backoff) and shuttles frames: queued
/// inbound messages up, replies down to WhatsApp.
#[allow(clippy::too_many_arguments)]
async fn forward(
    socket: PathBuf,
    db: Arc<SessionDb>,
    client: Arc<Client>,
    me: Me,
    personal: bool,
    wake: Arc<Notify>,
    mut up: mpsc::UnboundedReceiver<Up>,
    shutdown: CancellationToken,
) {
    let link: Mutex<(LinkState, Option<String>)> = Mutex::new((LinkState::Connecting, None));
    let mut attempt = 0u32;
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            s = UnixStream::connect(&socket) => s,
        };
        let stream = match stream {
            Ok(s) => {
                attempt = 0;
                s
            }
            Err(e) => {
                let delay = serve_backoff(attempt, rand::random::<f64>());
                attempt += 1;
                tracing::debug!(error = %e, ?delay, "serve not reachable; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => continue,
                }
            }
        };
        let result = session(
            stream, &db, &client, &me, personal, &wake, &mut up, &link, &shutdown,
        )
        .await;
        if shutdown.is_cancelled() {
            return;
        }
        if let Err(e) = result {
            tracing::info!(error = %e, "connection to serve lost; reconnecting");
        }
    }
}

/// One connection to `serve`.
#[allow(clippy::too_many_arguments)]
async fn session(
    stream: UnixStream,
    db: &Arc<SessionDb>,
    client: &Arc<Client>,
    me: &Me,
    personal: bool,
    wake: &Notify,
    up: &mut mpsc::UnboundedReceiver<Up>,
    link: &Mutex<(LinkState, Option<String>)>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut frames = FramedRead::new(r, proto::FrameCodec::new());
    let send = |f: ClientFrame| proto::encode(&f);
    w.write_all(
        send(ClientFrame::Hello {
            version: proto::VERSION,
            role: ClientRole::Bridge,
        })
        .as_bytes(),
    )
    .await?;
    let (state, detail) = link
        .lock()
        .map(|l| l.clone())
        .unwrap_or((LinkState::Connecting, None));
    w.write_all(send(ClientFrame::Link { state, detail }).as_bytes())
        .await?;
    // A reply could not be sent (WhatsApp down): serve still has it.
    let mut undelivered = false;
    // Everything not yet acknowledged, oldest first (serve ignores
    // duplicates).
    let mut offered = std::collections::HashSet::new();
    let offer_all =
        |offered: &mut std::collections::HashSet<String>| -> anyhow::Result<Vec<String>> {
            let queued = db.queued_inbound()?;
            Ok(queued
                .into_iter()
                .filter(|f| offered.insert(f.clone()))
                .collect())
        };
    for f in offer_all(&mut offered)? {
        w.write_all(inbound_frame(&f)?.as_bytes()).await?;
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = wake.notified() => {
                for f in offer_all(&mut offered)? {
                    w.write_all(inbound_frame(&f)?.as_bytes()).await?;
                }
            }
            u = up.recv() => match u {
                None => return Ok(()),
                Some(Up::Link(state, detail)) => {
                    if let Ok(mut l) = link.lock() {
                        *l = (state, detail.clone());
                    }
                    w.write_all(send(ClientFrame::Link { state, detail }).as_bytes()).await?;
                    if state == LinkState::Connected && undelivered {
                        // WhatsApp is back: reconnect so serve offers
                        // the replies that could not be sent again.
                        anyhow::bail!("WhatsApp reconnected; fetching unsent replies");
                    }
                }
            },
            line = frames.next() => {
                let Some(line) = line else { anyhow::bail!("serve closed the connection") };
                let Ok(line) = line? else {
                    tracing::warn!("oversized frame from serve skipped");
                    continue;
                };
                match proto::decode::<ServerFrame>(&line) {
                    Ok(ServerFrame::Ack { chat_id, message_id }) => {
                        let db = db.clone();
                        tokio::task::spawn_blocking(move || db.ack_inbound(&chat_id.0, &message_id.0)).await??;
                    }
                    Ok(ServerFrame::Outbound(o)) => {
                        if deliver(db, client, me, personal, &o).await? {
                            w.write_all(send(ClientFrame::Sent { out_id: o.out_id }).as_bytes()).await?;
                        } else {
                            undelivered = true;
                        }
                    }
                    Ok(ServerFrame::Typing { chat_id, on }) => {
                        if let Ok(jid) = chat_id.0.parse::<Jid>()
                            && mapping::may_write(&jid, me, personal)
                        {
                            let cs = client.chatstate();
                            let r = if on { cs.send_composing(&jid).await } else { cs.send_paused(&jid).await };
                            if let Err(e) = r {
                                tracing::debug!(error = %e, "typing indicator not sent");
                            }
                        }
                    }
                    Ok(ServerFrame::Error { code: proto::ErrorCode::UnsupportedVersion, message }) => {
                        anyhow::bail!("serve refused this bridge: {message}");
                    }
                    Ok(ServerFrame::Error { message, .. }) => tracing::warn!(%message, "serve error"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "unreadable frame from serve"),
                }
            }
        }
    }
}

/// A queued inbound message (stored as its JSON) as a protocol frame.
fn inbound_frame(stored: &str) -> anyhow::Result<String> {
    let m: Inbound = serde_json::from_str(stored).context("a queued message is unreadable")?;
    Ok(proto::encode(&ClientFrame::Inbound(Box::new(m))))
}

/// Sends one reply over WhatsApp. `Ok(true)`: delivered now or before
/// (tell serve `sent`); `Ok(false)`: not now (serve offers it again on the
/// next connection). A chat Hearth may not write in is refused for good.
async fn deliver(
    db: &Arc<SessionDb>,
    client: &Arc<Client>,
    me: &Me,
    personal: bool,
    o: &Outbound,
) -> anyhow::Result<bool> {
    let out_id = o.out_id.0 as u64;
    let d = db.clone();
    if tokio::task::spawn_blocking(move || d.was_delivered(out_id)).await?? {
        return Ok(true);
    }
    let Ok(jid) = o.chat_id.0.parse::<Jid>() else {
        tracing::warn!("reply for an unreadable chat id dropped");
        return Ok(true);
    };
    if !mapping::may_write(&jid, me, personal) {
        tracing::warn!("personal mode: refused to write outside the owner's own chat");
        return Ok(true);
    }
    for part in super::split_message(&o.text, super::WHATSAPP_MAX_CHARS) {
        match client.send_text(jid.clone(), part).await {
            Ok(sent) => {
                let d = db.clone();
                tokio::task::spawn_blocking(move || d.remember_own(&sent.message_id)).await??;
            }
            Err(e) => {
                tracing::warn!(error = %e, "reply not sent; it stays queued in serve");
                return Ok(false);
            }
        }
    }
    let d = db.clone();
    tokio::task::spawn_blocking(move || d.mark_delivered(out_id)).await??;
    let _ = client.chatstate().send_paused(&jid).await;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_backoff_grows_caps_and_jitters() {
        assert_eq!(serve_backoff(0, 0.5), Duration::from_millis(100));
        assert_eq!(serve_backoff(3, 0.5), Duration::from_millis(800));
        assert_eq!(serve_backoff(20, 0.5), Duration::from_millis(5000));
        assert_eq!(serve_backoff(20, 0.0), Duration::from_millis(4000));
        assert_eq!(serve_backoff(20, 1.0), Duration::from_millis(6000));
    }

    #[tokio::test]
    async fn an_unreachable_host_fails_within_seconds_with_advice() {
        // A port nothing listens on: refused at once.
        let started = std::time::Instant::now();
        let err = check_reachable_at("127.0.0.1:9")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            started.elapsed() < Duration::from_secs(11),
            "{:?}",
            started.elapsed()
        );
        assert!(err.contains("cannot reach WhatsApp"), "{err}");
        assert!(err.contains("port 443"), "{err}");
    }
}
