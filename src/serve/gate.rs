//! The door for transport messages: every inbound message from the bridge
//! is judged by [`crate::policy`] before anything of it is stored. What
//! may be answered is queued (its chat and sender rewritten to the person
//! behind them, so a LID and a number are one chat); an unknown sender
//! makes the owner get one question with a code; everything else is only
//! counted, never stored.
//!
//! Must not hold SQL (the store does) or talk to sockets.

use super::Shared;
use crate::config::Config;
use crate::policy::{self, Identity, Verdict};
use crate::proto::Inbound;
use crate::store::{Asked, QuestionRules, Reply, StoreError};

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
    /// Not stored; if the owner was asked about the sender, the notice.
    Held(Option<Reply>),
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
        return Ok(Admission::Held(None));
    };
    let decided = match &sender {
        Some(who) if config.is_allowed(who) => Some(policy::Decision::Approved),
        Some(who) => store.sender_decision(&who.key())?,
        None => None,
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
    };
    match policy::decide(&facts) {
        Verdict::Answer => {
            let sender_jid = sender
                .as_ref()
                .map(Identity::chat_jid)
                .unwrap_or_else(|| m.sender_id.0.clone());
            // A direct chat is the person: one chat whether they wrote as
            // a LID or a number.
            let chat_id = if facts.is_group || chat.is_group() {
                m.chat_id.0.clone()
            } else {
                chat_person
                    .as_ref()
                    .map(Identity::chat_jid)
                    .unwrap_or_else(|| m.chat_id.0.clone())
            };
            Ok(Admission::Queue {
                chat_id,
                sender: sender_jid,
            })
        }
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
            Ok(Admission::Held(match asked {
                Asked::New(r) => Some(r),
                Asked::AlreadyOpen | Asked::TooMany => None,
            }))
        }
        Verdict::Drop(reason) => {
            tracing::info!(reason = reason.name(), "message dropped by policy");
            store.count_dropped(reason.name())?;
            Ok(Admission::Held(None))
        }
    }
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
