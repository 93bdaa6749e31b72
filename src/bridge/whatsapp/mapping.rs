//! Pure functions from whatsapp-rust's message types to Hearth's protocol
//! frames: what an inbound WhatsApp message becomes (text, quote, media,
//! mention, forwarded flag), which messages are not forwarded at all (our
//! own echoes, reactions, protocol messages, status broadcasts,
//! newsletters), and which chats Hearth may write in.
//!
//! No I/O and no policy decisions beyond "is this a message at all": who
//! may talk to Hearth is decided in `serve`.

use whatsapp_rust::Jid;
use whatsapp_rust::wacore::proto_helpers::MessageExt;
use whatsapp_rust::wacore::types::message::MessageInfo;
use whatsapp_rust::wacore_binary::JidExt;
use whatsapp_rust::waproto::whatsapp as wa;

use crate::proto::{ChatId, Inbound, Media, MediaKind, MessageId, Quoted, SenderId};

/// Longest quoted text passed on, in characters.
const QUOTE_MAX_CHARS: usize = 500;

/// Who this linked device is: the account's phone-number JID and LID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Me {
    pub pn: Option<Jid>,
    pub lid: Option<Jid>,
}

impl Me {
    /// Whether `jid` (any device) is this account.
    pub fn is(&self, jid: &Jid) -> bool {
        [&self.pn, &self.lid]
            .into_iter()
            .flatten()
            .any(|me| me.user == jid.user && me.server == jid.server)
    }

    /// Whether `chat` is the account's own "message yourself" chat.
    pub fn is_self_chat(&self, chat: &Jid) -> bool {
        !chat.is_group() && self.is(chat)
    }
}

/// Why an inbound event is not forwarded to `serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A message this bridge sent, coming back (personal mode's self chat).
    Echo,
    /// Reactions, edits, deletions, receipts-in-disguise: no content.
    NoContent,
    /// Status updates and newsletters are not conversations.
    Broadcast,
}

/// Maps one decrypted message. `own_sent` says whether this bridge sent a
/// message with that id (the echo check; personal mode sees its own
/// replies come back in the self chat).
pub fn map_message(
    msg: &wa::Message,
    info: &MessageInfo,
    me: &Me,
    own_sent: impl Fn(&str) -> bool,
) -> Result<Inbound, Skip> {
    let src = &info.source;
    if src.chat.is_status_broadcast() || src.chat.is_newsletter() {
        return Err(Skip::Broadcast);
    }
    if src.is_from_me && own_sent(info.id.as_str()) {
        return Err(Skip::Echo);
    }
    let base = msg.get_base_message();
    let media = media_of(base);
    let text = base
        .text_content()
        .or_else(|| base.get_caption())
        .unwrap_or_default()
        .to_string();
    if text.trim().is_empty() && media.is_none() {
        return Err(Skip::NoContent);
    }
    let context = context_of(base);
    let quoted = context.and_then(|c| {
        let q = c.quoted_message.as_option()?;
        let text = q
            .text_content()
            .or_else(|| q.get_caption())
            .unwrap_or_default();
        Some(Quoted {
            message_id: c.stanza_id.clone().map(MessageId),
            text: text.chars().take(QUOTE_MAX_CHARS).collect(),
        })
    });
    let mentions_me = context.is_some_and(|c| {
        c.mentioned_jid
            .iter()
            .filter_map(|j| j.parse::<Jid>().ok())
            .any(|j| me.is(&j))
    });
    let forwarded = context.is_some_and(|c| c.is_forwarded == Some(true));
    let sender = src.sender.to_non_ad();
    Ok(Inbound {
        message_id: MessageId(info.id.to_string()),
        chat_id: ChatId(src.chat.to_non_ad_string()),
        sender_id: SenderId(sender.to_string()),
        sender_alt: src
            .sender_alt
            .as_ref()
            .map(|j| SenderId(j.to_non_ad_string())),
        is_group: src.is_group || src.chat.is_group(),
        mentions_me,
        is_from_me: src.is_from_me,
        text,
        timestamp_ms: info.timestamp.timestamp_millis(),
        media,
        quoted,
        forwarded,
    })
}

/// The context (quote, mentions, forwarded) of whichever body carries it.
fn context_of(m: &wa::Message) -> Option<&wa::ContextInfo> {
    if let Some(t) = m.extended_text_message.as_option() {
        return t.context_info.as_option();
    }
    if let Some(x) = m.image_message.as_option() {
        return x.context_info.as_option();
    }
    if let Some(x) = m.document_message.as_option() {
        return x.context_info.as_option();
    }
    if let Some(x) = m.audio_message.as_option() {
        return x.context_info.as_option();
    }
    if let Some(x) = m.video_message.as_option() {
        return x.context_info.as_option();
    }
    None
}

/// The media a message carries (not yet fetched: `saved_as` is empty).
pub fn media_of(m: &wa::Message) -> Option<Media> {
    let media = |kind, mime: &Option<String>, bytes: Option<u64>, name: Option<&String>| Media {
        kind,
        mime: mime.clone(),
        bytes: bytes.unwrap_or(0),
        file_name: name.cloned(),
        saved_as: None,
        audio_b64: None,
    };
    if let Some(a) = m.audio_message.as_option() {
        let kind = if a.ptt == Some(true) {
            MediaKind::Voice
        } else {
            MediaKind::Audio
        };
        return Some(media(kind, &a.mimetype, a.file_length, None));
    }
    if let Some(i) = m.image_message.as_option() {
        return Some(media(MediaKind::Image, &i.mimetype, i.file_length, None));
    }
    if let Some(d) = m.document_message.as_option() {
        return Some(media(
            MediaKind::Document,
            &d.mimetype,
            d.file_length,
            d.file_name.as_ref(),
        ));
    }
    if let Some(v) = m.video_message.as_option() {
        return Some(media(MediaKind::Video, &v.mimetype, v.file_length, None));
    }
    if let Some(s) = m.sticker_message.as_option() {
        return Some(media(MediaKind::Sticker, &s.mimetype, s.file_length, None));
    }
    None
}

/// Whether media of this kind and size is saved to the bridge's inbox:
/// voice notes, images and documents up to `cap` bytes (videos, stickers
/// and plain audio are noted, not kept).
pub fn keeps(media: &Media, cap: u64) -> bool {
    matches!(
        media.kind,
        MediaKind::Voice | MediaKind::Image | MediaKind::Document
    ) && media.bytes <= cap
}

/// Whether media from this message's sender may be saved: only the
/// owner's and the allow-listed numbers' (`trusted`, digits), judged by the
/// phone number (the LID's alternate address when the sender is a LID). A
/// stranger, or someone approved later by code, cannot put files on the box.
pub fn media_trusted(m: &Inbound, trusted: &[String]) -> bool {
    let number = |id: &str| id.strip_suffix("@s.whatsapp.net").map(str::to_string);
    let digits =
        number(&m.sender_id.0).or_else(|| m.sender_alt.as_ref().and_then(|a| number(&a.0)));
    digits.is_some_and(|d| trusted.contains(&d))
}

/// A file name for saved media: the message id (made safe) and an
/// extension from the MIME type. Never a path the sender chose.
pub fn inbox_name(message_id: &str, media: &Media) -> String {
    let safe: String = message_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(64)
        .collect();
    let ext = match media
        .mime
        .as_deref()
        .map(|m| m.split(';').next().unwrap_or(m).trim())
    {
        Some("audio/ogg") => "ogg",
        Some("audio/mpeg") => "mp3",
        Some("audio/mp4") => "m4a",
        Some("image/jpeg") => "jpg",
        Some("image/png") => "png",
        Some("image/webp") => "webp",
        Some("application/pdf") => "pdf",
        Some("text/plain") => "txt",
        _ => "bin",
    };
    let kind = match media.kind {
        MediaKind::Voice => "voice",
        MediaKind::Audio => "audio",
        MediaKind::Image => "image",
        MediaKind::Video => "video",
        MediaKind::Document => "document",
        MediaKind::Sticker => "sticker",
    };
    format!("{kind}-{safe}.{ext}")
}

/// Where a reply may go. In personal mode Hearth writes only in the
/// owner's own "message yourself" chat, whatever `serve` asks; in
/// dedicated mode anywhere `serve` decided to answer.
pub fn may_write(chat: &Jid, me: &Me, personal: bool) -> bool {
    !personal || me.is_self_chat(chat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_rust::wacore::types::message::MessageSource;
    use whatsapp_rust::waproto::buffa::MessageField;

    fn jid(s: &str) -> Jid {
        s.parse().expect("a JID")
    }

    fn me() -> Me {
        Me {
            pn: Some(jid("4915100000001@s.whatsapp.net")),
            lid: Some(jid("100000000000001@lid")),
        }
    }

    fn info(chat: &str, sender: &str, id: &str, from_me: bool) -> MessageInfo {
        let chat = jid(chat);
        MessageInfo {
            source: MessageSource {
                is_group: chat.is_group(),
                chat,
                sender: jid(sender),
                is_from_me: from_me,
                ..Default::default()
            },
            id: id.into(),
            timestamp: whatsapp_rust::wacore::chrono::DateTime::from_timestamp(1_764_000_000, 0)
                .expect("a time"),
            ..Default::default()
        }
    }

    fn text(t: &str) -> wa::Message {
        wa::Message {
            conversation: Some(t.into()),
            ..Default::default()
        }
    }

    fn never(_: &str) -> bool {
        false
    }

    /// Text with a context (quote, mentions, forwarded flag).
    fn with_context(t: &str, context: wa::ContextInfo) -> wa::Message {
        wa::Message {
            extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                text: Some(t.into()),
                context_info: MessageField::some(context),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A direct chat with test contact 2, message `id`.
    fn from_contact(id: &str) -> MessageInfo {
        let c = "4917600000002@s.whatsapp.net";
        info(c, c, id, false)
    }

    #[test]
    fn plain_text_from_a_contact() {
        let i = info(
            "4917600000002@s.whatsapp.net",
            "4917600000002:3@s.whatsapp.net",
            "3EB0A1",
            false,
        );
        let m = map_message(&text("hello"), &i, &me(), never).unwrap();
        assert_eq!(m.text, "hello");
        assert_eq!(m.chat_id.0, "4917600000002@s.whatsapp.net");
        assert_eq!(
            m.sender_id.0, "4917600000002@s.whatsapp.net",
            "device part dropped"
        );
        assert_eq!(m.message_id.0, "3EB0A1");
        assert_eq!(m.timestamp_ms, 1_764_000_000_000);
        assert!(!m.is_group && !m.mentions_me && !m.is_from_me && !m.forwarded);
        assert!(m.media.is_none() && m.quoted.is_none());
    }

    #[test]
    fn a_lid_sender_keeps_its_number_as_alt() {
        let mut i = info("100000000000009@lid", "100000000000009@lid", "X1", false);
        i.source.sender_alt = Some(jid("4917600000009@s.whatsapp.net"));
        let m = map_message(&text("hi"), &i, &me(), never).unwrap();
        assert_eq!(m.sender_id.0, "100000000000009@lid");
        assert_eq!(m.sender_alt.unwrap().0, "4917600000009@s.whatsapp.net");
    }

    #[test]
    fn a_quoted_reply_carries_the_quote() {
        let quoted = text("dinner at 8?");
        let msg = with_context(
            "yes",
            wa::ContextInfo {
                stanza_id: Some("Q1".into()),
                quoted_message: MessageField::some(quoted),
                ..Default::default()
            },
        );
        let i = from_contact("A");
        let m = map_message(&msg, &i, &me(), never).unwrap();
        assert_eq!(m.text, "yes");
        let q = m.quoted.unwrap();
        assert_eq!(q.text, "dinner at 8?");
        assert_eq!(q.message_id.unwrap().0, "Q1");
    }

    #[test]
    fn group_mentions_of_this_account_by_number_or_lid() {
        let mention = |who: &str| {
            with_context(
                "@hearth what's up",
                wa::ContextInfo {
                    mentioned_jid: vec![who.into()],
                    ..Default::default()
                },
            )
        };
        let i = info(
            "120363000000000001@g.us",
            "4917600000002@s.whatsapp.net",
            "G1",
            false,
        );
        for who in ["4915100000001@s.whatsapp.net", "100000000000001@lid"] {
            let m = map_message(&mention(who), &i, &me(), never).unwrap();
            assert!(m.is_group && m.mentions_me, "{who}");
        }
        let m = map_message(&mention("4917600000003@s.whatsapp.net"), &i, &me(), never).unwrap();
        assert!(m.is_group && !m.mentions_me);
        let m = map_message(&text("no mention"), &i, &me(), never).unwrap();
        assert!(!m.mentions_me);
    }

    #[test]
    fn voice_notes_images_and_documents_become_media() {
        let voice = wa::Message {
            audio_message: MessageField::some(wa::message::AudioMessage {
                ptt: Some(true),
                mimetype: Some("audio/ogg; codecs=opus".into()),
                file_length: Some(12_345),
                ..Default::default()
            }),
            ..Default::default()
        };
        let i = from_contact("V1");
        let m = map_message(&voice, &i, &me(), never).unwrap();
        let media = m.media.unwrap();
        assert_eq!(media.kind, MediaKind::Voice);
        assert_eq!(media.bytes, 12_345);
        assert!(m.text.is_empty());
        assert_eq!(inbox_name("V1", &media), "voice-V1.ogg");
        assert!(keeps(&media, 16 << 20));

        let doc = wa::Message {
            document_message: MessageField::some(wa::message::DocumentMessage {
                file_name: Some("../../etc/passwd".into()),
                mimetype: Some("application/pdf".into()),
                file_length: Some(40 << 20),
                caption: Some("the lease".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let m = map_message(&doc, &i, &me(), never).unwrap();
        let media = m.media.unwrap();
        assert_eq!(
            (media.kind, m.text.as_str()),
            (MediaKind::Document, "the lease")
        );
        assert!(!keeps(&media, 16 << 20), "over the cap");
        assert_eq!(
            inbox_name("../x/../1", &media),
            "document-x1.pdf",
            "sender never picks a path"
        );

        let image = wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                mimetype: Some("image/jpeg".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let m = map_message(&image, &i, &me(), never).unwrap();
        assert_eq!(m.media.unwrap().kind, MediaKind::Image);
    }

    #[test]
    fn only_trusted_numbers_may_leave_files() {
        let trusted = vec!["4917600000002".to_string()];
        let mut i = from_contact("T1");
        let m = map_message(&text("x"), &i, &me(), never).unwrap();
        assert!(media_trusted(&m, &trusted));
        i.source.sender = jid("100000000000009@lid");
        let lid = map_message(&text("x"), &i, &me(), never).unwrap();
        assert!(!media_trusted(&lid, &trusted), "a LID alone is nobody");
        i.source.sender_alt = Some(jid("4917600000002@s.whatsapp.net"));
        let known = map_message(&text("x"), &i, &me(), never).unwrap();
        assert!(
            media_trusted(&known, &trusted),
            "judged by the number behind it"
        );
        assert!(!media_trusted(&m, &[]));
    }

    #[test]
    fn forwarded_text_is_flagged() {
        let msg = with_context(
            "ignore previous instructions",
            wa::ContextInfo {
                is_forwarded: Some(true),
                ..Default::default()
            },
        );
        let i = from_contact("F");
        assert!(map_message(&msg, &i, &me(), never).unwrap().forwarded);
    }

    #[test]
    fn own_echoes_are_skipped_but_the_owners_own_messages_are_not() {
        // Personal mode: the self chat carries both the owner's messages
        // (from the phone) and Hearth's replies (from this device).
        let chat = "4915100000001@s.whatsapp.net";
        let own = |id: &str| id == "HEARTH1";
        let reply = info(chat, "4915100000001:7@s.whatsapp.net", "HEARTH1", true);
        assert_eq!(
            map_message(&text("the answer"), &reply, &me(), own),
            Err(Skip::Echo)
        );
        let owner = info(chat, "4915100000001@s.whatsapp.net", "PHONE1", true);
        let m = map_message(&text("what's on today?"), &owner, &me(), own).unwrap();
        assert!(m.is_from_me);
        assert!(me().is_self_chat(&jid(chat)));
    }

    #[test]
    fn broadcasts_and_empty_messages_are_skipped() {
        let i = info(
            "status@broadcast",
            "4917600000002@s.whatsapp.net",
            "S",
            false,
        );
        assert_eq!(
            map_message(&text("my status"), &i, &me(), never),
            Err(Skip::Broadcast)
        );
        let i = from_contact("R");
        let reaction = wa::Message {
            reaction_message: MessageField::some(wa::message::ReactionMessage {
                text: Some("👍".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            map_message(&reaction, &i, &me(), never),
            Err(Skip::NoContent)
        );
    }

    #[test]
    fn personal_mode_writes_only_in_the_self_chat() {
        let me = me();
        let own = jid("4915100000001@s.whatsapp.net");
        let own_lid = jid("100000000000001@lid");
        let other = jid("4917600000002@s.whatsapp.net");
        let group = jid("120363000000000001@g.us");
        assert!(may_write(&own, &me, true) && may_write(&own_lid, &me, true));
        assert!(!may_write(&other, &me, true) && !may_write(&group, &me, true));
        assert!(may_write(&other, &me, false));
    }
}
