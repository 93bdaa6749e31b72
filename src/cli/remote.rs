//! The terminal as a client of a running `hearth serve`: `hearth status`,
//! and `hearth chat` when a daemon answers on the socket. Blocking socket
//! I/O; the terminal chat is the owner's chat `cli:owner`, so owner
//! commands work in it. While chatting, a listener thread reads the
//! socket, so a reminder is printed when it fires, even while the prompt
//! waits for a line.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use super::Outcome;
use crate::proto::{
    self, ChatId, ClientFrame, ClientRole, Inbound, MessageId, Outbound, SenderId, ServerFrame,
};

/// The owner's terminal chat.
const CHAT: &str = "cli:owner";

/// A connection that said hello as a CLI client.
pub struct Remote {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Remote {
    /// Connects when a daemon listens on `socket`; `None` when none does.
    pub fn connect(socket: &Path) -> anyhow::Result<Option<Self>> {
        let Ok(stream) = UnixStream::connect(socket) else {
            return Ok(None);
        };
        let reader = BufReader::new(stream.try_clone()?);
        let mut r = Self { stream, reader };
        r.send(&ClientFrame::Hello {
            version: proto::VERSION,
            role: ClientRole::Cli,
        })?;
        match r.next()? {
            ServerFrame::Welcome { .. } => Ok(Some(r)),
            ServerFrame::Error { message, .. } => anyhow::bail!("hearth serve refused: {message}"),
            other => anyhow::bail!("hearth serve answered hello with {other:?}"),
        }
    }

    fn send(&mut self, f: &ClientFrame) -> anyhow::Result<()> {
        self.stream
            .write_all(proto::encode(f).as_bytes())
            .context("writing to hearth serve")
    }

    fn next(&mut self) -> anyhow::Result<ServerFrame> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            anyhow::bail!("hearth serve closed the connection");
        }
        Ok(proto::decode(line.trim_end())?)
    }

    /// The owner's message `text` as a frame, and its message id.
    fn inbound(text: &str) -> (ClientFrame, String) {
        let now = crate::clock::now_ms();
        let id = format!("{now}-{}", std::process::id());
        let frame = ClientFrame::Inbound(Box::new(Inbound {
            message_id: MessageId(id.clone()),
            chat_id: ChatId(CHAT.into()),
            sender_id: SenderId("owner".into()),
            sender_alt: None,
            is_group: false,
            mentions_me: false,
            is_from_me: false,
            text: text.to_string(),
            timestamp_ms: now,
            media: None,
            quoted: None,
            forwarded: false,
        }));
        (frame, id)
    }
}

/// The socket's writing side, shared by the prompt (messages) and the
/// listener (delivery confirmations); one whole line per write.
type Writer = Arc<Mutex<UnixStream>>;

fn write_frame(w: &Writer, f: &ClientFrame) -> anyhow::Result<()> {
    let mut stream = w.lock().unwrap_or_else(|p| p.into_inner());
    stream
        .write_all(proto::encode(f).as_bytes())
        .context("writing to hearth serve")
}

/// Reads the socket until it closes: replies go to the prompt through
/// `replies`, messages nobody asked for (reminders) are printed at once.
/// Each is confirmed, so the daemon does not offer it again.
fn listen(
    mut reader: BufReader<UnixStream>,
    w: &Writer,
    replies: &Sender<anyhow::Result<Outbound>>,
) {
    let mut line = String::new();
    loop {
        line.clear();
        let frame = match reader.read_line(&mut line) {
            Ok(0) => Err(anyhow::anyhow!("hearth serve closed the connection")),
            Ok(_) => proto::decode::<ServerFrame>(line.trim_end()).map_err(anyhow::Error::from),
            Err(e) => Err(anyhow::Error::from(e).context("reading from hearth serve")),
        };
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                let _ = replies.send(Err(e));
                return;
            }
        };
        match frame {
            ServerFrame::Outbound(o) => {
                let _ = write_frame(w, &ClientFrame::Sent { out_id: o.out_id });
                if o.reply_to.is_none() {
                    outln_unsolicited(&o.text);
                } else if replies.send(Ok(o)).is_err() {
                    return;
                }
            }
            ServerFrame::Error { message, .. } => {
                let _ = replies.send(Err(anyhow::anyhow!("hearth serve: {message}")));
            }
            _ => {}
        }
    }
}

/// A message from Hearth that is not a reply (a reminder), on its own line.
fn outln_unsolicited(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\n{text}");
    let _ = out.flush();
}

/// `hearth status`: the daemon's state, or exit 1 when none runs.
pub fn status(socket: &Path) -> anyhow::Result<Outcome> {
    let Some(mut r) = Remote::connect(socket)? else {
        outln!(
            "hearth serve is not running (nothing listens on {})",
            socket.display()
        );
        return Ok(Outcome::CheckFailed);
    };
    r.stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    r.send(&ClientFrame::Status {})?;
    loop {
        if let ServerFrame::Status(s) = r.next()? {
            outln!("hearth serve on {}", socket.display());
            outln!("model:           {}", s.model);
            outln!("uptime:          {} s", s.uptime_s);
            outln!("waiting:         {} message(s)", s.queue_depth);
            outln!("unsent replies:  {}", s.unsent_replies);
            outln!(
                "answering:       {}",
                if s.paused { "paused (/resume)" } else { "on" }
            );
            outln!(
                "memory:          {} document(s), {} message(s), {} chunk(s)",
                s.documents,
                s.messages,
                s.chunks
            );
            outln!("reminders:       {} pending", s.reminders);
            outln!(
                "bridge:          {}",
                if s.bridge_connected {
                    "connected"
                } else {
                    "not connected"
                }
            );
            if let Some(link) = s.link {
                outln!("whatsapp:        {}", link.describe());
                if let Some(detail) = &s.link_detail {
                    outln!("                 {detail}");
                }
            }
            outln!(
                "senders:         {} waiting for /approve, {} message(s) dropped by policy",
                s.senders_waiting,
                s.dropped
            );
            if let Some(voice) = &s.voice {
                outln!("voice notes:     {voice}");
            }
            return Ok(Outcome::Ok);
        }
    }
}

/// `hearth chat` through the daemon: one reply per line typed, and
/// reminders whenever they fire.
pub fn chat(r: Remote, socket: &Path) -> anyhow::Result<Outcome> {
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!(
            "hearth chat via hearth serve ({}). /help lists commands, /exit quits.",
            socket.display()
        );
    }
    let Remote { stream, reader } = r;
    let writer: Writer = Arc::new(Mutex::new(stream));
    let (tx, replies) = std::sync::mpsc::channel();
    {
        let writer = writer.clone();
        std::thread::Builder::new()
            .name("hearth-listen".into())
            .spawn(move || listen(reader, &writer, &tx))
            .context("starting the socket listener")?;
    }
    let mut line = String::new();
    loop {
        if !super::read_turn(interactive, &mut line)? {
            break;
        }
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            text => {
                let (frame, id) = Remote::inbound(text);
                write_frame(&writer, &frame)?;
                loop {
                    let o = replies
                        .recv()
                        .map_err(|_| anyhow::anyhow!("hearth serve closed the connection"))??;
                    if o.reply_to.is_some_and(|r| r.0 == id) {
                        outln!("{}", o.text);
                        break;
                    }
                }
            }
        }
    }
    Ok(Outcome::Ok)
}
