//! `hearth bridge --simulate`: inbound messages are JSON lines on stdin
//! (the fields of [`Inbound`]), replies are printed as JSON lines on stdout
//! (the fields of [`Outbound`]), exactly once per reply id. The bridge
//! keeps every message until the daemon acknowledges it and re-sends the
//! unacknowledged ones after reconnecting, so a daemon killed at any moment
//! loses nothing. After stdin ends it waits until every message it sent has
//! a reply, or until `idle` passes without any frame.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::proto::{self, ClientFrame, ClientRole, Inbound, OutId, ServerFrame};

/// How the simulated bridge runs.
pub struct SimulateOptions {
    pub socket: PathBuf,
    /// After stdin ends: give up waiting for replies after this long
    /// without any frame from the daemon.
    pub idle: Duration,
}

/// What the run saw, for the caller's summary.
#[derive(Debug, Default)]
pub struct SimulateReport {
    pub sent: usize,
    pub replies: usize,
    pub reconnects: usize,
    /// Messages that never got a reply.
    pub unanswered: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("stdin line {line}: {reason}")]
    BadInput { line: usize, reason: String },
    #[error("the daemon refused this bridge: {0}")]
    Refused(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Runs until stdin ends and every message is answered (or idle), or until
/// `shutdown`.
pub async fn run(
    opts: SimulateOptions,
    shutdown: CancellationToken,
) -> Result<SimulateReport, SimulateError> {
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
    // Sent but not acknowledged, in order; re-sent after a reconnect.
    let mut unacked: BTreeMap<u64, Inbound> = BTreeMap::new();
    let mut seq = 0u64;
    let mut awaiting: HashSet<(String, String)> = HashSet::new();
    let mut delivered: HashSet<OutId> = HashSet::new();
    let mut stdout = tokio::io::stdout();
    'connect: loop {
        let stream = match connect(&opts.socket, &shutdown).await {
            Some(s) => s,
            None => break,
        };
        let (r, mut w) = stream.into_split();
        let mut frames = FramedRead::new(r, proto::FrameCodec::new());
        w.write_all(
            proto::encode(&ClientFrame::Hello {
                version: proto::VERSION,
                role: ClientRole::Bridge,
            })
            .as_bytes(),
        )
        .await?;
        for m in unacked.values() {
            w.write_all(proto::encode(&ClientFrame::Inbound(Box::new(m.clone()))).as_bytes())
                .await?;
        }
        loop {
            if !stdin_open && awaiting.is_empty() && unacked.is_empty() {
                break 'connect;
            }
            let wait = if stdin_open { Duration::MAX } else { opts.idle };
            tokio::select! {
                _ = shutdown.cancelled() => break 'connect,
                msg = input.recv(), if stdin_open => match msg {
                    None => stdin_open = false,
                    Some(m) => {
                        let m = m?;
                        seq += 1;
                        report.sent += 1;
                        awaiting.insert((m.chat_id.0.clone(), m.message_id.0.clone()));
                        unacked.insert(seq, m.clone());
                        if w.write_all(proto::encode(&ClientFrame::Inbound(Box::new(m))).as_bytes()).await.is_err() {
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
                        match on_frame(&line, &mut unacked, &mut awaiting, &mut delivered, &mut report, &mut stdout, &mut w).await {
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
    report.unanswered = awaiting.len();
    Ok(report)
}

/// Connects, retrying every 100 ms (the daemon may be restarting).
async fn connect(socket: &PathBuf, shutdown: &CancellationToken) -> Option<UnixStream> {
    loop {
        if let Ok(s) = UnixStream::connect(socket).await {
            return Some(s);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

async fn on_frame(
    line: &str,
    unacked: &mut BTreeMap<u64, Inbound>,
    awaiting: &mut HashSet<(String, String)>,
    delivered: &mut HashSet<OutId>,
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
        } => unacked.retain(|_, m| !(m.chat_id == chat_id && m.message_id == message_id)),
        ServerFrame::Outbound(o) => {
            // A reply re-sent after a reconnect is printed once.
            if delivered.insert(o.out_id) {
                if let Some(to) = &o.reply_to {
                    awaiting.remove(&(o.chat_id.0.clone(), to.0.clone()));
                }
                report.replies += 1;
                // What a WhatsApp chat would show: one line per message,
                // long replies cut under the limit.
                for text in super::split_message(&o.text, super::WHATSAPP_MAX_CHARS) {
                    let part = proto::Outbound { text, ..o.clone() };
                    let mut line = serde_json::to_string(&part).unwrap_or_default();
                    line.push('\n');
                    stdout.write_all(line.as_bytes()).await?;
                }
                stdout.flush().await?;
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
    }
    Ok(())
}
