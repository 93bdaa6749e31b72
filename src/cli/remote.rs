//! The terminal as a client of a running `hearth serve`: `hearth status`,
//! and `hearth chat` when a daemon answers on the socket. Blocking socket
//! I/O (one request at a time); the terminal chat is the owner's chat
//! `cli:owner`, so owner commands work in it.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use super::Outcome;
use crate::proto::{
    self, ChatId, ClientFrame, ClientRole, Inbound, MessageId, SenderId, ServerFrame,
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

    /// Sends `text` to the owner's chat and waits for its reply.
    pub fn ask(&mut self, text: &str) -> anyhow::Result<String> {
        let now = crate::clock::now_ms();
        let id = format!("{now}-{}", std::process::id());
        self.send(&ClientFrame::Inbound(Inbound {
            message_id: MessageId(id.clone()),
            chat_id: ChatId(CHAT.into()),
            sender_id: SenderId("owner".into()),
            is_group: false,
            mentions_me: false,
            is_from_me: false,
            text: text.to_string(),
            timestamp_ms: now,
            media: None,
        }))?;
        loop {
            match self.next()? {
                ServerFrame::Outbound(o) if o.reply_to.as_ref().is_some_and(|r| r.0 == id) => {
                    self.send(&ClientFrame::Sent { out_id: o.out_id })?;
                    return Ok(o.text);
                }
                ServerFrame::Error { message, .. } => anyhow::bail!("hearth serve: {message}"),
                _ => {}
            }
        }
    }
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
                "bridge:          {}",
                if s.bridge_connected {
                    "connected"
                } else {
                    "not connected"
                }
            );
            return Ok(Outcome::Ok);
        }
    }
}

/// `hearth chat` through the daemon: one reply per line typed.
pub fn chat(mut r: Remote, socket: &Path) -> anyhow::Result<Outcome> {
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!(
            "hearth chat via hearth serve ({}). /help lists commands, /exit quits.",
            socket.display()
        );
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
                let reply = r.ask(text)?;
                outln!("{reply}");
            }
        }
    }
    Ok(Outcome::Ok)
}
