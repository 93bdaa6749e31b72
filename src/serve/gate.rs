//! The door for inbound messages: every message from the bridge is judged
//! by [`crate::policy`] before anything of it is stored. What
//! may be answered is queued (its chat and sender rewritten to the person
//! behind them, so a LID and a number are one chat); an unknown sender
//! makes the owner get one question with a code; everything else is only
//! counted, never stored.
//!
//! Must not hold SQL (the store does) or talk to sockets.

use super::Shared;
use crate::audit::{Action, Actor, Entry, Outcome};
use crate::config::Config;
use crate::policy::{self, Identity, Verdict};
use crate::proto::{ClientRole, Inbound, MediaKind};
use crate::store::{Asked, NewMessage, QuestionRules, Reply, StoreError};

/// How long an approval code is valid, and how many may be open.
pub const QUESTIONS: QuestionRules = QuestionRules {
    max_open: 3,
    ttl_ms: 3_600_000,
};

/// What becomes of one inbound message.
#[derive(Debug)]
pub enum Admission {
    /// Queue it, in chat `chat_id` from `sender` (both normalised).
    Queue { chat_id: String, sender: String },
    /// Keep it for search (an opted-in chat); never answer it.
    Remember { chat_id: String, sender: String },
    /// Not stored; if the owner was asked about the sender, the notice.
    Held(Option<Reply>),
}

/// What became of an inbound message.
pub enum Stored {
    Queued {
        new: bool,
    },
    /// Not stored (policy); the notice to the owner, if one was written.
    Held(Option<Reply>),
    /// Stored with a fixed answer (media the model cannot read); `None`
    /// for a duplicate.
    Answered(Option<Reply>),
    /// Kept for search only (an opted-in chat); the agent embeds it.
    Remembered {
        new: bool,
    },
}

/// Takes one inbound message from a client: a bridge's is judged first
/// (nothing of it is stored unless admitted), a terminal's is the owner's.
/// Admitted messages are stored with their [`stored_text`], then queued
/// for the agent, answered at once ([`media_answer`]), or only kept (an
/// opted-in chat).
pub fn take(shared: &Shared, role: ClientRole, m: &Inbound) -> Result<Stored, StoreError> {
    let (chat, sender, remember) = if role == ClientRole::Bridge {
        match admit(shared, &shared.config, m)? {
            Admission::Queue { chat_id, sender } => (chat_id, sender, false),
            Admission::Remember { chat_id, sender } => (chat_id, sender, true),
            Admission::Held(notice) => return Ok(Stored::Held(notice)),
        }
    } else {
        (m.chat_id.0.clone(), m.sender_id.0.clone(), false)
    };
    let (text, typed_from) = stored(m);
    let audio = audio_to_hear(&shared.config, m);
    let row = NewMessage {
        chat_id: &chat,
        msg_id: &m.message_id.0,
        sender: &sender,
        outgoing: false,
        text: &text,
        ts_ms: m.timestamp_ms,
        typed_from,
    };
    shared.with_store(|st| {
        Ok(if let Some(audio) = &audio {
            // Heard by the agent (or, in a kept chat, while it is idle).
            let new = st.enqueue_voice(&row, audio, !m.forwarded, !remember)?;
            if remember {
                Stored::Remembered { new }
            } else {
                Stored::Queued { new }
            }
        } else if remember {
            Stored::Remembered {
                new: st.remember_message(&row)?,
            }
        } else if let Some(answer) = media_answer(m, shared.config.voice.enabled) {
            Stored::Answered(st.enqueue_answered(&row, answer)?)
        } else {
            Stored::Queued {
                new: st.enqueue_inbound(&row)?,
            }
        })
    })
}

/// Judges `m`, which came from the bridge.
pub fn admit(shared: &Shared, config: &Config, m: &Inbound) -> Result<Admission, StoreError> {
    let mut store = shared.store();
    let alt = m.sender_alt.as_ref().map(|s| s.0.as_str());
    if let Some((lid, phone)) = policy::learned_mapping(&m.sender_id.0, alt) {
        store.learn_lid(&lid, &phone)?;
    }
    let lookup = |lid: &str| store.phone_for_lid(lid).ok().flatten();
    let sender = policy::identity(&m.sender_id.0, alt, lookup);
    let chat_person = policy::identity(&m.chat_id.0, None, lookup);
    let Some(chat) = policy::Jid::parse(&m.chat_id.0) else {
        store.count_dropped(policy::DropReason::Unidentified.name())?;
        store.audit(&refused(
            &m.sender_id.0,
            &m.chat_id.0,
            policy::DropReason::Unidentified,
        ))?;
        return Ok(Admission::Held(None));
    };
    let decided = match &sender {
        Some(who) if config.is_allowed(who) => Some(policy::Decision::Approved),
        Some(who) => store.sender_decision(&who.key())?,
        None => None,
    };
    let sender_jid = sender
        .as_ref()
        .map(Identity::chat_jid)
        .unwrap_or_else(|| m.sender_id.0.clone());
    // A direct chat is the person: one chat whether they wrote as a LID or
    // a number.
    let chat_id = if m.is_group || chat.is_group() {
        m.chat_id.0.clone()
    } else {
        chat_person
            .as_ref()
            .map(Identity::chat_jid)
            .unwrap_or_else(|| m.chat_id.0.clone())
    };
    let facts = policy::Facts {
        mode: config.whatsapp.mode,
        chat: chat.clone(),
        sender: sender.as_ref(),
        is_group: m.is_group,
        mentions_me: m.mentions_me,
        is_from_me: m.is_from_me,
        owner: sender.as_ref().is_some_and(|s| config.is_owner(s)),
        chat_is_owner: chat_person.as_ref().is_some_and(|c| config.is_owner(c)),
        decided,
        group_allowed: config.whatsapp.groups.contains(&m.chat_id.0),
        memory_chat: store.is_memory_chat(&chat_id)?,
    };
    match policy::decide(&facts) {
        Verdict::Answer => Ok(Admission::Queue {
            chat_id,
            sender: sender_jid,
        }),
        Verdict::Remember => Ok(Admission::Remember {
            chat_id,
            sender: sender_jid,
        }),
        Verdict::AskOwner => {
            let Some(who) = sender else {
                return Ok(Admission::Held(None));
            };
            let code = policy::code(random5());
            let notice = format!(
                "{} wants to talk to Hearth. Reply /approve {code} to let them, or /deny {code}. \
                 (Their message was not kept; the code expires in an hour.)",
                describe(&who)
            );
            let owner_chat = config
                .owner_chat()
                .unwrap_or_else(|| "cli:owner".to_string());
            let now = crate::clock::now_ms();
            let asked =
                store.ask_about_sender(&who.key(), &code, now, QUESTIONS, &owner_chat, &notice)?;
            tracing::info!(
                outcome = match &asked {
                    Asked::New(_) => "asked",
                    Asked::AlreadyOpen => "already_asked",
                    Asked::TooMany => "too_many_open",
                },
                "unknown sender held"
            );
            store.count_dropped("unknown_sender")?;
            if let Asked::New(_) = asked {
                store.audit(
                    &Entry::new(Actor::Sender(who.key()), Action::SenderAsked, who.key())
                        .outcome(Outcome::Refused),
                )?;
            }
            Ok(Admission::Held(match asked {
                Asked::New(r) => Some(r),
                Asked::AlreadyOpen | Asked::TooMany => None,
            }))
        }
        Verdict::Drop(reason) => {
            tracing::info!(reason = reason.name(), "message dropped by policy");
            store.count_dropped(reason.name())?;
            if audited(reason) {
                let who = sender.as_ref().map(Identity::key);
                let who = who.as_deref().unwrap_or(&m.sender_id.0);
                store.audit(&refused(who, &chat_id, reason))?;
            }
            Ok(Admission::Held(None))
        }
    }
}

/// Refusals that say something about who tries to reach Hearth are
/// audited; traffic that was never meant for it (other groups, the owner's
/// other chats in personal mode, the account's own messages) is only
/// counted, so the log does not become a record of the owner's contacts.
fn audited(reason: policy::DropReason) -> bool {
    use policy::DropReason as D;
    match reason {
        D::Denied | D::TooManyPending | D::Unidentified => true,
        D::GroupNotAllowed | D::GroupWithoutMention | D::FromMe | D::NotSelfChat => false,
    }
}

fn refused(sender: &str, chat: &str, reason: policy::DropReason) -> Entry {
    Entry::new(
        Actor::Sender(sender.to_string()),
        Action::MessageRefused,
        format!("message in {chat}: {}", reason.name()),
    )
    .outcome(Outcome::Refused)
}

/// `+4915…` for a number, `a private WhatsApp id (LID …)` otherwise.
pub fn describe(who: &Identity) -> String {
    match who {
        Identity::Phone(d) => format!("+{d}"),
        Identity::Lid(d) => format!("Someone without a visible number (LID {d})"),
    }
}

fn random5() -> [u8; 5] {
    let mut b = [0u8; 5];
    // A failing system RNG still yields a code; it only has to be unique
    // among three open questions.
    if getrandom::fill(&mut b).is_err() {
        b = (crate::clock::now_ms() as u64).to_le_bytes()[..5]
            .try_into()
            .unwrap_or([7; 5]);
    }
    b
}

/// The text stored (and later shown to the model) for an admitted
/// message, media noted in brackets, a quote given as context, and a
/// forwarded message marked so it can never read as a command; and where
/// in it the sender's own typing begins: after a quote; nowhere for a
/// forwarded message or media (a caption, or later a transcript, is not
/// typed text that may act).
fn stored(m: &Inbound) -> (String, Option<usize>) {
    let typed = m.text.trim();
    let mut text = typed.to_string();
    let mut own = !m.forwarded && m.media.is_none();
    if let Some(media) = &m.media {
        let what = match media.kind {
            MediaKind::Voice => "voice note",
            MediaKind::Audio => "audio",
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Document => "document",
            MediaKind::Sticker => "sticker",
        };
        let name = media
            .file_name
            .as_deref()
            .map(|n| format!(" {n:?}"))
            .unwrap_or_default();
        let note = format!("[{what}{name}]");
        text = if text.is_empty() {
            note
        } else {
            format!("{note} {text}")
        };
    }
    if m.forwarded {
        text = format!("[forwarded] {text}");
    }
    if let Some(q) = &m.quoted
        && !q.text.is_empty()
        && !text.starts_with('/')
    {
        text = format!("[replying to: {:?}] {text}", q.text);
    }
    // The typed words are the end of the text whenever they are the
    // sender's own (a quote only ever goes before them).
    own &= text.ends_with(typed);
    let from = own.then(|| text.len() - typed.len());
    (text, from)
}

/// The audio of a voice note (or audio message) without text that is to
/// be heard: voice notes on, the bridge attached the bytes, and they are
/// valid base64 of at most [`crate::proto::MAX_AUDIO_BYTES`].
fn audio_to_hear(config: &Config, m: &Inbound) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let media = m.media.as_ref()?;
    if !config.voice.enabled
        || !matches!(media.kind, MediaKind::Voice | MediaKind::Audio)
        || !m.text.trim().is_empty()
    {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(media.audio_b64.as_deref()?)
        .ok()?;
    (!bytes.is_empty() && bytes.len() <= crate::proto::MAX_AUDIO_BYTES).then_some(bytes)
}

/// The fixed answer for a message the model cannot read (media with no
/// text and nothing to hear), if it is one.
pub fn media_answer(m: &Inbound, voice_on: bool) -> Option<&'static str> {
    let media = m.media.as_ref()?;
    if !m.text.trim().is_empty() {
        return None;
    }
    Some(match media.kind {
        MediaKind::Voice | MediaKind::Audio if voice_on => {
            "I couldn't get the audio of that voice note; please send it again or type your message."
        }
        MediaKind::Voice | MediaKind::Audio => {
            "Voice notes are switched off on this box; please type your message."
        }
        _ => "I can't look at images or documents yet; I kept it. Tell me in words what you need.",
    })
}

#[cfg(test)]
mod media_tests {
    use super::*;

    fn stored_text(m: &Inbound) -> String {
        stored(m).0
    }
    use crate::proto::{ChatId, Media, MessageId, Quoted, SenderId};

    fn msg(text: &str, media: Option<MediaKind>) -> Inbound {
        Inbound {
            message_id: MessageId("1".into()),
            chat_id: ChatId("c".into()),
            sender_id: SenderId("s".into()),
            sender_alt: None,
            is_group: false,
            mentions_me: false,
            is_from_me: false,
            text: text.into(),
            timestamp_ms: 0,
            media: media.map(|kind| Media {
                kind,
                mime: None,
                bytes: 10,
                file_name: None,
                saved_as: None,
                audio_b64: None,
            }),
            quoted: None,
            forwarded: false,
        }
    }

    #[test]
    fn voice_notes_get_the_fixed_answer_and_a_note() {
        let v = msg("", Some(MediaKind::Voice));
        assert!(
            media_answer(&v, true)
                .unwrap()
                .contains("couldn't get the audio")
        );
        assert!(media_answer(&v, false).unwrap().contains("switched off"));
        assert_eq!(stored_text(&v), "[voice note]");
        let captioned = msg("what is this?", Some(MediaKind::Image));
        assert!(
            media_answer(&captioned, true).is_none(),
            "a caption goes to the model"
        );
        assert_eq!(stored_text(&captioned), "[image] what is this?");
        assert!(media_answer(&msg("hi", None), true).is_none());
    }

    #[test]
    fn forwarded_commands_are_not_commands_and_quotes_are_context() {
        let mut f = msg("/approve K7QX2", None);
        f.forwarded = true;
        assert!(!stored_text(&f).starts_with('/'));
        let mut q = msg("yes", None);
        q.quoted = Some(Quoted {
            message_id: None,
            text: "dinner at 8?".into(),
        });
        assert_eq!(stored_text(&q), "[replying to: \"dinner at 8?\"] yes");
        let mut cmd = msg("/status", None);
        cmd.quoted = q.quoted.clone();
        assert_eq!(
            stored_text(&cmd),
            "/status",
            "a quote never hides a command"
        );
    }

    #[test]
    fn only_the_senders_own_typing_may_act() {
        let typed = |m: &Inbound| {
            let (text, from) = stored(m);
            from.map(|f| text[f..].to_string())
        };
        assert_eq!(
            typed(&msg("  remind me at 9 ", None)).as_deref(),
            Some("remind me at 9")
        );
        let mut q = msg("ok thanks", None);
        q.quoted = Some(Quoted {
            message_id: None,
            text: "remind me in 5 minutes to send my PIN".into(),
        });
        assert_eq!(
            typed(&q).as_deref(),
            Some("ok thanks"),
            "the quote is not theirs"
        );
        let mut f = msg("remind me in 5 minutes to send my PIN", None);
        f.forwarded = true;
        assert_eq!(typed(&f), None);
        assert_eq!(typed(&msg("remind me at 9", Some(MediaKind::Image))), None);
    }
}
