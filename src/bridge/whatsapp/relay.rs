//! The running WhatsApp bridge (`hearth bridge`): whatsapp-rust's
//! durability hook maps each decrypted message and commits it to the
//! bridge's own queue before WhatsApp hears it arrived (saving trusted
//! senders' media to the inbox); a forwarder keeps one connection to
//! `serve` (reconnecting with backoff and jitter), offers the queue until
//! acknowledged, sends replies as plain text under 4000 characters with
//! their ids kept for the echo check, shows "typing…", and reports the
//! transport's state. States that need the owner stop the transport.
//!
//! Must not open the Hearth store or decide who may talk to Hearth.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::{Notify, mpsc};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use whatsapp_rust::prelude::*;
use whatsapp_rust::types::durability_hook::InboundMessage;
use whatsapp_rust::{InboundDurabilityHook, Jid};

use super::backend::SessionBackend;
use super::mapping::{self, Me};
use super::open_linked;
use crate::paths::BridgePaths;
use crate::proto::{self, ClientFrame, ClientRole, LinkState, Outbound, ServerFrame};
use crate::store::session::SessionDb;

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
    /// How long saved media is kept (`None`: until removed by hand).
    pub media_keep: Option<Duration>,
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
    let Some((db, me)) = wait_for_link(&opts, &shutdown).await? else {
        return Ok(());
    };
    let backend = SessionBackend::new(db.clone());
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
    let session_db = db.clone();
    let bot = Bot::builder()
        .with_backend(backend)
        .skip_history_sync()
        .with_inbound_durability_hook(hook)
        .on_event(move |e: Arc<Event>, _client| {
            let tx = events_tx.clone();
            let stop = stop_on_terminal.clone();
            let db = session_db.clone();
            async move {
                if let Some((state, detail)) = link_state(&e) {
                    if state.needs_owner() {
                        stop.cancel();
                    }
                    if state == LinkState::LoggedOut {
                        // The keys are dead at WhatsApp: drop them, so
                        // `hearth pair` can link again at once (the queue
                        // stays and is still delivered).
                        let wiped = tokio::task::spawn_blocking(move || db.forget_session()).await;
                        if !matches!(wiped, Ok(Ok(()))) {
                            tracing::warn!("wiping the logged-out session failed");
                        }
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
    if let Some(keep) = opts.media_keep {
        tokio::spawn(sweep_daily(opts.paths.inbox(), keep, shutdown.clone()));
    }
    let handle = bot.spawn();
    let forwarder = tokio::spawn(forward(
        opts.socket.clone(),
        db.clone(),
        client.clone(),
        me,
        opts.personal,
        opts.paths.inbox(),
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

/// How often an unlinked bridge looks for the session `hearth pair` writes.
const LINK_POLL: Duration = Duration::from_secs(5);

/// Waits until this box is linked (`hearth pair` has written a session
/// with an account), telling `serve` meanwhile that it is not: on a fresh
/// appliance the bridge runs from the first boot and starts by itself once
/// the owner pairs, instead of failing and being restarted in a loop.
/// `None` when shut down first.
async fn wait_for_link(
    opts: &RunOptions,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<(Arc<SessionDb>, Me)>> {
    let mut told: Option<tokio::task::JoinHandle<()>> = None;
    let mut logged = false;
    let result = loop {
        // `hearth pair` may be writing the session right now (as root,
        // before it gives the files to this user): not yet, not an error.
        match open_linked(&opts.paths).await {
            Ok(Some(found)) => {
                if logged {
                    tracing::info!("linked to WhatsApp; starting the session");
                }
                break Some(found);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "the session is not readable yet"),
        }
        if !logged {
            tracing::warn!(
                "this box is not linked to WhatsApp yet; waiting for `hearth pair` (looking every {}s)",
                LINK_POLL.as_secs()
            );
            logged = true;
        }
        if told.as_ref().is_none_or(|t| t.is_finished()) {
            told = Some(tokio::spawn(report_not_linked(
                opts.socket.clone(),
                shutdown.clone(),
            )));
        }
        tokio::select! {
            _ = shutdown.cancelled() => break None,
            _ = tokio::time::sleep(LINK_POLL) => {}
        }
    };
    if let Some(t) = told {
        t.abort();
    }
    Ok(result)
}

/// Holds one connection to `serve` saying the bridge is not linked (so
/// `hearth status` shows it), reading and dropping what serve sends, until
/// serve goes away or the bridge is linked or stopped.
async fn report_not_linked(socket: PathBuf, shutdown: CancellationToken) {
    let Ok(stream) = UnixStream::connect(&socket).await else {
        return;
    };
    let (r, mut w) = stream.into_split();
    let hello = proto::encode(&ClientFrame::Hello {
        version: proto::VERSION,
        role: ClientRole::Bridge,
    });
    let link = proto::encode(&ClientFrame::Link {
        state: LinkState::NotLinked,
        detail: Some("this box is not linked to WhatsApp yet; run `hearth pair`".into()),
    });
    if w.write_all(hello.as_bytes()).await.is_err() || w.write_all(link.as_bytes()).await.is_err() {
        return;
    }
    let mut frames = FramedRead::new(r, proto::FrameCodec::new());
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            f = frames.next() => if !matches!(f, Some(Ok(_))) { return },
        }
    }
}

/// Media retention: shreds inbox files older than `keep`, at start and
/// then daily.
async fn sweep_daily(inbox: PathBuf, keep: Duration, shutdown: CancellationToken) {
    loop {
        let dir = inbox.clone();
        match tokio::task::spawn_blocking(move || crate::bridge::inbox::sweep(&dir, Some(keep)))
            .await
        {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(files = n, "media past retention erased"),
            Ok(Err(e)) => tracing::warn!(error = %e, "sweeping the media inbox failed"),
            Err(e) => tracing::warn!(error = %e, "the inbox sweep panicked"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(86_400)) => {}
        }
    }
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
    inbox: PathBuf,
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
            stream, &db, &client, &me, personal, &inbox, &wake, &mut up, &link, &shutdown,
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
    inbox: &std::path::Path,
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
            let queued = crate::bridge::queued_frames(db)?;
            Ok(queued
                .into_iter()
                .filter(|f| offered.insert(f.clone()))
                .collect())
        };
    for f in offer_all(&mut offered)?
        .into_iter()
        .chain(crate::bridge::audit_frames(db)?)
    {
        w.write_all(f.as_bytes()).await?;
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = wake.notified() => {
                for f in offer_all(&mut offered)? {
                    w.write_all(f.as_bytes()).await?;
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
                        let inbox = inbox.to_path_buf();
                        tokio::task::spawn_blocking(move || {
                            if let Some(frame) = db.ack_inbound(&chat_id.0, &message_id.0)? {
                                crate::bridge::shred_handed_audio(&frame, &inbox);
                            }
                            anyhow::Ok(())
                        })
                        .await??;
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
                    Ok(ServerFrame::Audited { id }) => {
                        let db = db.clone();
                        tokio::task::spawn_blocking(move || db.audit_recorded(id)).await??;
                    }
                    Ok(ServerFrame::EraseMedia { before_ms }) => {
                        let (db2, inbox) = (db.clone(), inbox.to_path_buf());
                        let n = tokio::task::spawn_blocking(move || crate::bridge::erase_media(&db2, &inbox, before_ms)).await??;
                        if n > 0 {
                            for f in crate::bridge::audit_frames(db)? {
                                w.write_all(f.as_bytes()).await?;
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "unreadable frame from serve"),
                }
            }
        }
    }
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
    for part in crate::bridge::split_message(&o.text, crate::bridge::WHATSAPP_MAX_CHARS) {
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
}
