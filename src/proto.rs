//! The socket protocol between `hearth serve` and its clients (the WhatsApp
//! bridge, `hearth chat`, tests): line-delimited JSON, one frame per line,
//! each a `{"type": …}` object. A client opens with `hello` (protocol
//! version and role); the daemon answers `welcome` or an `error` frame.
//! Unknown versions, unknown frame types, unknown fields and frames over
//! [`MAX_FRAME_BYTES`] are rejected loudly with an `error` frame.
//!
//! This is the only module with serialized wire types. It must not do I/O
//! (its [`FrameCodec`] splits bytes already read into lines).

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// The largest frame, newline excluded, either side accepts.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// The largest voice note a bridge hands to `serve` (3 MiB of Ogg/Opus:
/// over 15 minutes at WhatsApp's bit rates, more than `[voice]
/// max_duration_s` allows by default).
pub const MAX_AUDIO_BYTES: usize = 3 * 1024 * 1024;

/// An `inbound` frame carrying a voice note's audio (base64 in
/// `media.audio_b64`) may be this long; every other frame keeps
/// [`MAX_FRAME_BYTES`].
pub const MAX_AUDIO_FRAME_BYTES: usize = MAX_AUDIO_BYTES / 3 * 4 + MAX_FRAME_BYTES;

/// A chat (a WhatsApp JID, or `cli:…` for a terminal session).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChatId(pub String);

impl ChatId {
    /// Terminal chats (`cli:…`) live on the box; the bridge never sees them.
    pub fn is_local(id: &str) -> bool {
        id.starts_with("cli:")
    }
}

/// A message id, unique within its chat (the transport's id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub String);

/// Who wrote a message (a phone-number JID or LID; mapped by policy).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SenderId(pub String);

/// The daemon's id for a reply; the bridge confirms delivery with it and
/// drops a reply whose id it has already delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OutId(pub i64);

/// What kind of client is speaking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientRole {
    /// The WhatsApp bridge (or its `--simulate` stand-in).
    Bridge,
    /// `hearth chat` / `hearth status` in a terminal, as the owner.
    Cli,
}

/// A message that arrived on the transport.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inbound {
    pub message_id: MessageId,
    pub chat_id: ChatId,
    pub sender_id: SenderId,
    /// The same sender's other address, when the transport knows it (a
    /// phone-number JID for a LID sender, or the LID for a number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_alt: Option<SenderId>,
    #[serde(default)]
    pub is_group: bool,
    #[serde(default)]
    pub mentions_me: bool,
    #[serde(default)]
    pub is_from_me: bool,
    pub text: String,
    /// Milliseconds since the Unix epoch, as the transport reports it.
    pub timestamp_ms: i64,
    /// Media that came with the message, if any (the bridge keeps the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Media>,
    /// The message this one replies to, as the sender's app quoted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted: Option<Quoted>,
    /// Forwarded from elsewhere: untrusted text, never an instruction.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarded: bool,
}

/// What kind of media a message carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// A recorded voice note (push-to-talk audio).
    Voice,
    Audio,
    Image,
    Video,
    Document,
    Sticker,
}

/// Media the bridge received with a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Media {
    pub kind: MediaKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    /// Size in bytes as announced by the sender.
    #[serde(default)]
    pub bytes: u64,
    /// The document's file name, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Where the bridge saved it (under its inbox), when it did; absent
    /// when the file was over the size cap or could not be fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_as: Option<String>,
    /// A voice note's or audio message's bytes (standard base64, at most
    /// [`MAX_AUDIO_BYTES`]), attached by the bridge from its inbox when the
    /// frame is sent: `serve` never reads the bridge's files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_b64: Option<String>,
}

/// The message a reply quotes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quoted {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    /// The quoted text (capped by the bridge).
    #[serde(default)]
    pub text: String,
}

/// The state of the bridge's transport session, as `hearth status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Connecting or reconnecting (with backoff).
    Connecting,
    Connected,
    /// The transport dropped; the bridge is retrying.
    Disconnected,
    /// The phone removed this device (or `hearth unpair`): link again.
    LoggedOut,
    /// WhatsApp suspended the account for a while.
    TemporaryBan,
    /// Another client took over this session.
    StreamReplaced,
    /// WhatsApp refuses this client version: update Hearth.
    ClientOutdated,
    /// No session on this box yet: run `hearth pair`.
    NotLinked,
    /// The simulated transport (stdin/stdout).
    Simulated,
}

impl LinkState {
    /// What the state means, in a line for `hearth status` and the log.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Connecting => "connecting to WhatsApp",
            Self::Connected => "connected",
            Self::Disconnected => "disconnected; reconnecting with backoff",
            Self::LoggedOut => {
                "logged out (the device was removed on the phone); run `hearth pair` again"
            }
            Self::TemporaryBan => {
                "temporarily banned by WhatsApp; the bridge stopped and waits for the ban to end"
            }
            Self::StreamReplaced => {
                "replaced by another session using the same keys; stop the other copy, then restart the bridge"
            }
            Self::ClientOutdated => "WhatsApp refuses this version; update Hearth",
            Self::NotLinked => "not linked; run `hearth pair`",
            Self::Simulated => "simulated (hearth bridge --simulate)",
        }
    }

    /// Whether the bridge has stopped retrying and needs the owner.
    pub fn needs_owner(self) -> bool {
        matches!(
            self,
            Self::LoggedOut
                | Self::TemporaryBan
                | Self::StreamReplaced
                | Self::ClientOutdated
                | Self::NotLinked
        )
    }
}

/// A message the daemon wants delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outbound {
    pub out_id: OutId,
    pub chat_id: ChatId,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
}

/// The daemon's state, for `/status` and `hearth status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    pub model: String,
    pub uptime_s: u64,
    pub queue_depth: u64,
    pub unsent_replies: u64,
    pub bridge_connected: bool,
    pub paused: bool,
    /// Indexed documents, stored messages and their search chunks.
    #[serde(default)]
    pub documents: u64,
    #[serde(default)]
    pub messages: u64,
    #[serde(default)]
    pub chunks: u64,
    /// Reminders not yet fired.
    #[serde(default)]
    pub reminders: u64,
    /// The transport's state as the bridge last reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_detail: Option<String>,
    /// Unknown senders waiting for the owner's /approve or /deny.
    #[serde(default)]
    pub senders_waiting: u64,
    /// Messages dropped by the sender policy (never stored).
    #[serde(default)]
    pub dropped: u64,
    /// Voice notes: `off`, `not installed`, `ready` (loaded on the first
    /// note) or `loaded`, with notes heard and waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
}

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Hello {
        version: u32,
        role: ClientRole,
    },
    Inbound(Box<Inbound>),
    /// The bridge delivered this reply.
    Sent {
        out_id: OutId,
    },
    Status {},
    /// The bridge's transport changed state (bridge only).
    Link {
        state: LinkState,
        /// What to tell the owner (no message content).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// Something the bridge did for Hearth's audit log (bridge only);
    /// `serve` answers `audited` with the id once it is recorded.
    Audit {
        id: i64,
        action: BridgeAction,
        object: String,
        at_ms: i64,
    },
}

/// What the bridge reports to the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BridgeAction {
    KeyCreated,
    Paired,
    Unpaired,
    MediaErased,
}

impl BridgeAction {
    pub fn as_str(self) -> &'static str {
        match self {
            BridgeAction::KeyCreated => "key_created",
            BridgeAction::Paired => "paired",
            BridgeAction::Unpaired => "unpaired",
            BridgeAction::MediaErased => "media_erased",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::KeyCreated,
            Self::Paired,
            Self::Unpaired,
            Self::MediaErased,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// Frames the daemon sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerFrame {
    Welcome {
        version: u32,
    },
    /// The inbound message is committed to the store; the client may forget it.
    Ack {
        chat_id: ChatId,
        message_id: MessageId,
    },
    Outbound(Outbound),
    Typing {
        chat_id: ChatId,
        on: bool,
    },
    Status(StatusReport),
    /// Something the owner should know (not a reply to a message).
    Notice {
        text: String,
    },
    /// The bridge's audit event `id` is recorded; it may forget it.
    Audited {
        id: i64,
    },
    /// Shred the media saved before this time (`/forget everything`).
    /// Sent on every bridge connection once asked: doing it twice is
    /// harmless.
    EraseMedia {
        before_ms: i64,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Malformed,
    TooLarge,
    UnsupportedVersion,
    /// A frame before `hello`, or a second `hello`.
    OutOfOrder,
    /// The role may not send this frame.
    Forbidden,
    Internal,
}

/// A frame that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("frame of {0} bytes is over the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("protocol version {got} is not supported (this side speaks {VERSION})")]
    UnsupportedVersion { got: u32 },
}

impl ProtoError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtoError::TooLarge(_) => ErrorCode::TooLarge,
            ProtoError::Malformed(_) => ErrorCode::Malformed,
            ProtoError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
        }
    }

    /// The error frame that answers this error.
    pub fn frame(&self) -> ServerFrame {
        ServerFrame::Error {
            code: self.code(),
            message: self.to_string(),
        }
    }
}

/// Parses one line (without its newline) as a frame of type `T`.
pub fn decode<T: for<'de> Deserialize<'de>>(line: &str) -> Result<T, ProtoError> {
    if line.len() > MAX_FRAME_BYTES {
        return Err(ProtoError::TooLarge(line.len()));
    }
    serde_json::from_str(line).map_err(|e| ProtoError::Malformed(e.to_string()))
}

/// Parses a client's line: [`decode`], except that an `inbound` frame
/// carrying audio may be up to [`MAX_AUDIO_FRAME_BYTES`] long.
pub fn decode_client(line: &str) -> Result<ClientFrame, ProtoError> {
    if line.len() <= MAX_FRAME_BYTES {
        return decode(line);
    }
    if line.len() > MAX_AUDIO_FRAME_BYTES {
        return Err(ProtoError::TooLarge(line.len()));
    }
    // Over the normal limit, only a well-formed inbound frame with audio
    // passes; anything else is "too large", as it always was.
    let frame: ClientFrame =
        serde_json::from_str(line).map_err(|_| ProtoError::TooLarge(line.len()))?;
    match &frame {
        ClientFrame::Inbound(m)
            if m.media.as_ref().is_some_and(|x| x.audio_b64.is_some())
                && line.len()
                    - m.media
                        .as_ref()
                        .and_then(|x| x.audio_b64.as_ref())
                        .map_or(0, String::len)
                    <= MAX_FRAME_BYTES =>
        {
            Ok(frame)
        }
        _ => Err(ProtoError::TooLarge(line.len())),
    }
}

/// One frame as a line, newline included.
pub fn encode<T: Serialize>(frame: &T) -> String {
    // Serializing these types cannot fail: no maps with non-string keys,
    // no custom serializers.
    let mut s = serde_json::to_string(frame).unwrap_or_else(|e| {
        format!(r#"{{"type":"error","code":"internal","message":"encode: {e}"}}"#)
    });
    s.push('\n');
    s
}

/// Splits a byte stream into frame lines of at most [`MAX_FRAME_BYTES`].
/// An oversized line is skipped up to its newline and reported as
/// `Err(TooLarge)`, and reading goes on (a plain `LinesCodec` error would
/// end the stream, and with it the connection).
pub struct FrameCodec(tokio_util::codec::LinesCodec);

impl FrameCodec {
    pub fn new() -> Self {
        Self(tokio_util::codec::LinesCodec::new_with_max_length(
            MAX_FRAME_BYTES,
        ))
    }

    /// For `serve`'s side of a connection: lines up to
    /// [`MAX_AUDIO_FRAME_BYTES`] (checked per frame by [`decode_client`]).
    pub fn for_clients() -> Self {
        Self(tokio_util::codec::LinesCodec::new_with_max_length(
            MAX_AUDIO_FRAME_BYTES,
        ))
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl tokio_util::codec::Decoder for FrameCodec {
    type Item = Result<String, ProtoError>;
    type Error = std::io::Error;

    fn decode(
        &mut self,
        buf: &mut tokio_util::bytes::BytesMut,
    ) -> Result<Option<Self::Item>, Self::Error> {
        lift(self.0.decode(buf))
    }

    fn decode_eof(
        &mut self,
        buf: &mut tokio_util::bytes::BytesMut,
    ) -> Result<Option<Self::Item>, Self::Error> {
        lift(self.0.decode_eof(buf))
    }
}

/// A line-length error becomes an item; I/O errors stay errors.
fn lift(
    r: Result<Option<String>, tokio_util::codec::LinesCodecError>,
) -> Result<Option<Result<String, ProtoError>>, std::io::Error> {
    use tokio_util::codec::LinesCodecError;
    match r {
        Ok(line) => Ok(line.map(Ok)),
        Err(LinesCodecError::MaxLineLengthExceeded) => {
            Ok(Some(Err(ProtoError::TooLarge(MAX_FRAME_BYTES + 1))))
        }
        Err(LinesCodecError::Io(e)) => Err(e),
    }
}

/// Checks a client's opening frame.
pub fn check_hello(frame: &ClientFrame) -> Result<ClientRole, ProtoError> {
    match frame {
        ClientFrame::Hello { version, role } if *version == VERSION => Ok(*role),
        ClientFrame::Hello { version, .. } => Err(ProtoError::UnsupportedVersion { got: *version }),
        _ => Err(ProtoError::Malformed(
            "the first frame must be hello".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_round_trips_with_defaults() {
        let line = r#"{"type":"inbound","message_id":"m1","chat_id":"c1","sender_id":"s1","text":"hi","timestamp_ms":5}"#;
        let f: ClientFrame = decode(line).unwrap();
        let ClientFrame::Inbound(m) = &f else {
            panic!("{f:?}")
        };
        assert!(!m.is_group && !m.mentions_me && !m.is_from_me && m.media.is_none());
        assert_eq!(m.chat_id, ChatId("c1".into()));
        let again: ClientFrame = decode(encode(&f).trim_end()).unwrap();
        assert_eq!(again, f);
    }

    #[test]
    fn unknown_types_fields_and_versions_are_refused() {
        assert!(matches!(
            decode::<ClientFrame>(r#"{"type":"launch_missiles"}"#),
            Err(ProtoError::Malformed(_))
        ));
        assert!(matches!(
            decode::<ClientFrame>(r#"{"type":"status","extra":1}"#),
            Err(ProtoError::Malformed(_))
        ));
        assert!(matches!(
            decode::<ClientFrame>("not json"),
            Err(ProtoError::Malformed(_))
        ));
        let hello: ClientFrame =
            decode(r#"{"type":"hello","version":99,"role":"bridge"}"#).unwrap();
        assert_eq!(
            check_hello(&hello),
            Err(ProtoError::UnsupportedVersion { got: 99 })
        );
        let hello: ClientFrame = decode(r#"{"type":"hello","version":1,"role":"cli"}"#).unwrap();
        assert_eq!(check_hello(&hello), Ok(ClientRole::Cli));
        assert!(check_hello(&ClientFrame::Status {}).is_err());
    }

    #[test]
    fn oversized_frames_are_refused_before_parsing() {
        let big = format!(
            r#"{{"type":"notice","text":"{}"}}"#,
            "x".repeat(MAX_FRAME_BYTES)
        );
        assert!(matches!(
            decode::<ServerFrame>(&big),
            Err(ProtoError::TooLarge(_))
        ));
    }

    #[test]
    fn only_an_inbound_frame_with_audio_may_be_longer() {
        let audio = "A".repeat(200 * 1024);
        let inbound = format!(
            r#"{{"type":"inbound","message_id":"1","chat_id":"c","sender_id":"c","text":"","timestamp_ms":0,"media":{{"kind":"voice","bytes":1,"audio_b64":"{audio}"}}}}"#
        );
        assert!(matches!(
            decode_client(&inbound),
            Ok(ClientFrame::Inbound(_))
        ));
        // The same size in the text, or not JSON at all: too large.
        let text = inbound.replace(r#""text":"""#, &format!(r#""text":"{audio}""#));
        assert!(matches!(decode_client(&text), Err(ProtoError::TooLarge(_))));
        let junk = "x".repeat(70 * 1024);
        assert!(matches!(decode_client(&junk), Err(ProtoError::TooLarge(_))));
        let huge = "A".repeat(MAX_AUDIO_FRAME_BYTES + 1);
        assert!(matches!(decode_client(&huge), Err(ProtoError::TooLarge(_))));
    }

    #[test]
    fn codec_skips_an_oversized_line_and_goes_on() {
        use tokio_util::codec::Decoder;
        let mut c = FrameCodec::new();
        let mut buf = tokio_util::bytes::BytesMut::new();
        buf.extend_from_slice(&vec![b'x'; MAX_FRAME_BYTES + 10]);
        buf.extend_from_slice(b"\n{\"type\":\"status\"}\n");
        assert!(matches!(
            c.decode(&mut buf).unwrap(),
            Some(Err(ProtoError::TooLarge(_)))
        ));
        assert_eq!(
            c.decode(&mut buf).unwrap(),
            Some(Ok("{\"type\":\"status\"}".to_string()))
        );
    }

    #[test]
    fn server_frames_are_tagged_snake_case() {
        let f = ServerFrame::Error {
            code: ErrorCode::UnsupportedVersion,
            message: "x".into(),
        };
        assert_eq!(
            encode(&f),
            "{\"type\":\"error\",\"code\":\"unsupported_version\",\"message\":\"x\"}\n"
        );
        let o = ServerFrame::Outbound(Outbound {
            out_id: OutId(7),
            chat_id: ChatId("c".into()),
            text: "hi".into(),
            reply_to: None,
        });
        assert_eq!(
            encode(&o),
            "{\"type\":\"outbound\",\"out_id\":7,\"chat_id\":\"c\",\"text\":\"hi\"}\n"
        );
    }
}
