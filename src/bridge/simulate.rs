//! `hearth bridge --simulate`: inbound messages are JSON lines on stdin
//! (the fields of [`Inbound`]), replies are printed as JSON lines on stdout
//! (the fields of [`Outbound`] plus `sent_id`, the id the "transport" gave
//! the message), exactly once per reply id.
//!
//! It keeps the real bridge's promises with the real bridge's queue (the
//! encrypted `session.db` in the bridge state directory): a message read
//! from stdin is committed there before it is offered to the daemon and
//! forgotten only when the daemon acknowledges it, so either process may be
//! killed at any moment and the next run delivers what was left; reply ids
//! already printed are remembered, so a reply offered again is confirmed
//! but not printed twice; a line marked `is_from_me` whose id is one this
//! bridge printed is its own echo and is dropped, as on WhatsApp.
//!
//! After stdin ends it waits until every message it was given (in this run
//! or an earlier, killed one) has a reply, or until `idle` passes without
//! any frame.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::paths::BridgePaths;
use crate::proto::{self, ClientFrame, ClientRole, Inbound, LinkState, ServerFrame};
use crate::store::session::SessionDb;
use crate::store::{Create, StoreError};

/// Messages given on stdin and not yet answered (kept across runs).
const AWAITING: &str = "simulate_awaiting";

/// How the simulated bridge runs.
pub struct SimulateOptions {
    pub socket: PathBuf,
    /// After stdin ends: give up waiting for replies after this long
    /// without any frame from the daemon.
    pub idle: Duration,
    /// The bridge's state directory and key (its queue lives there).
    pub paths: BridgePaths,
}

/// What the run saw, for the caller's summary.
#[derive(Debug, Default)]
pub struct SimulateReport {
    pub sent: usize,
    pub replies: usize,
    pub reconnects: usize,
    /// Own echoes dropped.
    pub echoes: usize,
    /// Messages that never got a reply.
    pub unanswered: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("stdin line {line}: {reason}")]
    BadInput { line: usize, reason: String },
    #[error("the daemon refused this bridge: {0}")]
    Refused(String),
    #[error("the bridge queue: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One printed message: a reply (or part of one) as a chat would show it.
#[derive(Serialize)]
struct Printed<'a> {
    out_id: proto::OutId,
    chat_id: &'a proto::ChatId,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<&'a proto::MessageId>,
    /// The transport id of this message (what its echo would carry).
    sent_id: String,
}

/// Runs until stdin ends and every message is answered (or idle), or until
/// `shutdown`.
pub async fn run(
    opts: SimulateOptions,
    shutdown: CancellationToken,
) -> Result<SimulateReport, SimulateError> {
    let db = Arc::new(SessionDb::open(
        &opts.paths.state_dir,
        &opts.paths.key_file,
        Create::IfMissing,
    )?);
    let mut report = SimulateReport::default();
    // Read all of stdin in its own task; messages arrive on a channel.
    let (tx, mut input) = tokio::sync::mpsc::channel::<Result<Inbound, SimulateError>>(64);
    tokio::spawn(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut n = 0;
        while let Ok(Some(line)) = lines.next_line().await {
            n += 1;
            if line.trim().is_empty() {
                continue;
            }
            let parsed =
                serde_json::from_str::<Inbound>(&line).map_err(|e| SimulateError::BadInput {
                    line: n,
                    reason: e.to_string(),
                });
            if tx.send(parsed).await.is_err() {
                break;
            }
        }
    });
    let mut stdin_open = true;
    let mut stdout = tokio::io::stdout();
    let mut attempt = 0u32;
    'connect: loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            s = UnixStream::connect(&opts.socket) => s,
        };
        let stream = match stream {
            Ok(s) => {
                attempt = 0;
                s
            }
            Err(_) => {
                // The daemon is down: keep taking messages (into the
                // queue) while waiting to retry.
                let delay = super::whatsapp::serve_backoff(attempt, rand::random::<f64>());
                attempt += 1;
                let retry = tokio::time::sleep(delay);
                tokio::pin!(retry);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break 'connect,
                        _ = &mut retry => continue 'connect,
                        msg = input.recv(), if stdin_open => match msg {
                            None => stdin_open = false,
                            Some(m) => {
                                take(&db, m?, &mut report)?;
                            }
                        },
                    }
                }
            }
        };
        let (r, mut w) = stream.into_split();
        let mut frames = FramedRead::new(r, proto::FrameCodec::new());
        let hello = [
            ClientFrame::Hello {
                version: proto::VERSION,
                role: ClientRole::Bridge,
            },
            ClientFrame::Link {
                state: LinkState::Simulated,
                detail: None,
            },
        ];
        // Whatever was not acknowledged, this run's or a killed one's.
        let resend = super::queued_frames(&db)?
            .into_iter()
            .chain(super::audit_frames(&db)?);
        let greeting = hello.iter().map(proto::encode).chain(resend);
        for frame in greeting {
            // A daemon killed right after it accepted: connect again (this
            // used to end the bridge with "Broken pipe").
            if w.write_all(frame.as_bytes()).await.is_err() {
                report.reconnects += 1;
                continue 'connect;
            }
        }
        loop {
            if !stdin_open && db.kv_scan(AWAITING)?.is_empty() && db.queued_inbound_count()? == 0 {
                break 'connect;
            }
            let wait = if stdin_open { Duration::MAX } else { opts.idle };
            tokio::select! {
                _ = shutdown.cancelled() => break 'connect,
                msg = input.recv(), if stdin_open => match msg {
                    None => stdin_open = false,
                    Some(m) => {
                        let Some(mut m) = take(&db, m?, &mut report)? else {
                            continue;
                        };
                        super::attach_audio(&mut m);
                        let frame = proto::encode(&ClientFrame::Inbound(Box::new(m)));
                        if w.write_all(frame.as_bytes()).await.is_err() {
                            report.reconnects += 1;
                            continue 'connect;
                        }
                    }
                },
                // While stdin is open the wait is unbounded; after, `idle`.
                frame = tokio::time::timeout(wait, frames.next()) => match frame {
                    Err(_) => break 'connect,
                    Ok(frame) => {
                        let Some(Ok(read)) = frame else {
                            report.reconnects += 1;
                            continue 'connect;
                        };
                        let Ok(line) = read else {
                            tracing::warn!("oversized frame from the daemon skipped");
                            continue;
                        };
                        match on_frame(&line, &db, &opts.paths, &mut report, &mut stdout, &mut w).await {
                            Err(SimulateError::Io(_)) => {
                                report.reconnects += 1;
                                continue 'connect;
                            }
                            other => other?,
                        }
                    }
                },
            }
        }
    }
    report.unanswered = db.kv_scan(AWAITING)?.len();
    if !shutdown.is_cancelled() {
        // Reported once; a later run does not wait for them again (a held
        // sender's message never gets a reply).
        db.kv_clear(AWAITING)?;
    }
    Ok(report)
}

/// Takes one message from stdin: drops it if it is this bridge's own echo,
/// else commits it to the queue (and the list awaiting a reply) and
/// returns it for sending.
fn take(
    db: &SessionDb,
    m: Inbound,
    report: &mut SimulateReport,
) -> Result<Option<Inbound>, SimulateError> {
    if m.is_from_me && db.is_own(&m.message_id.0)? {
        report.echoes += 1;
        return Ok(None);
    }
    report.sent += 1;
    let json = serde_json::to_string(&m).map_err(std::io::Error::other)?;
    db.kv_put(AWAITING, &m.message_id.0, &[], 0)?;
    db.queue_inbound(&m.chat_id.0, &m.message_id.0, &json)?;
    Ok(Some(m))
}

async fn on_frame(
    line: &str,
    db: &SessionDb,
    paths: &BridgePaths,
    report: &mut SimulateReport,
    stdout: &mut tokio::io::Stdout,
    w: &mut tokio::net::unix::OwnedWriteHalf,
) -> Result<(), SimulateError> {
    let frame = match proto::decode::<ServerFrame>(line) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable frame from the daemon");
            return Ok(());
        }
    };
    match frame {
        ServerFrame::Ack {
            chat_id,
            message_id,
        } => {
            if let Some(frame) = db.ack_inbound(&chat_id.0, &message_id.0)? {
                super::shred_handed_audio(&frame, &paths.inbox());
            }
        }
        ServerFrame::Outbound(o) => {
            let out_id = o.out_id.0 as u64;
            // A reply offered again (after a reconnect or a restart) is
            // confirmed, not printed twice.
            if !db.was_delivered(out_id)? {
                // What a WhatsApp chat would show: one line per message,
                // long replies cut under the limit.
                let parts = super::split_message(&o.text, super::WHATSAPP_MAX_CHARS);
                for (i, text) in parts.iter().enumerate() {
                    let sent_id = format!("sim-{}-{i}", o.out_id.0);
                    let printed = Printed {
                        out_id: o.out_id,
                        chat_id: &o.chat_id,
                        text,
                        reply_to: o.reply_to.as_ref(),
                        sent_id: sent_id.clone(),
                    };
                    let mut line =
                        serde_json::to_string(&printed).map_err(std::io::Error::other)?;
                    line.push('\n');
                    stdout.write_all(line.as_bytes()).await?;
                    db.remember_own(&sent_id)?;
                }
                stdout.flush().await?;
                db.mark_delivered(out_id)?;
                report.replies += 1;
            }
            // Answered, now or by an earlier run (which may have died
            // before noting it).
            if let Some(to) = &o.reply_to {
                db.kv_delete(AWAITING, &[to.0.as_str()])?;
            }
            w.write_all(proto::encode(&ClientFrame::Sent { out_id: o.out_id }).as_bytes())
                .await?;
        }
        ServerFrame::Error {
            code: proto::ErrorCode::UnsupportedVersion,
            message,
        } => {
            return Err(SimulateError::Refused(message));
        }
        ServerFrame::Error { message, .. } => tracing::warn!(%message, "daemon error"),
        ServerFrame::Welcome { .. } | ServerFrame::Typing { .. } | ServerFrame::Status(_) => {}
        ServerFrame::Notice { text } => tracing::info!(len = text.len(), "owner notice"),
        ServerFrame::Audited { id } => db.audit_recorded(id)?,
        ServerFrame::EraseMedia { before_ms } => {
            if super::erase_media(db, &paths.inbox(), before_ms)
                .map_err(|e| SimulateError::Io(std::io::Error::other(e.to_string())))?
                > 0
            {
                for f in super::audit_frames(db)? {
                    w.write_all(f.as_bytes()).await?;
                }
            }
        }
    }
    Ok(())
}
