//! The owner's requests in words, in the daemon: who may act is decided
//! here, in code, before anything is planned. Only a message in the
//! owner's own chat, and only the part of it the owner typed (never a
//! quote, a forwarded message or media, see
//! [`crate::store::Pending::typed`]), reaches [`crate::actions`]; what it
//! decides is carried out by [`super::commands::act`] and audited as the
//! slash command it stands for. Runs on the agent thread.
//!
//! Must not hand the planner excerpts, history or anyone else's text.

use super::memory::Memory;
use super::{Event, Shared};
use crate::actions::planner::{MAX_TEXT, Planner};
use crate::actions::{self, Decision, cues};
use crate::audit::{Action, Actor, Entry};
use crate::config::Config;
use crate::llm::Engine;
use crate::reminder::Words;
use crate::store::Pending;

/// The planner, built when the first request comes (the token trie over
/// a 150k vocabulary takes a moment); `Some(None)` when the model cannot
/// run one.
#[derive(Default)]
pub struct Requests {
    planner: Option<Option<Planner>>,
    /// The planner's fixed prompt is computed (or there is no planner).
    warmed: bool,
}

/// What a message's words came to.
pub enum Outcome {
    /// Carried out or asked back: the reply.
    Replied(String),
    /// Not a request: answer it as usual.
    Answer,
}

impl Requests {
    /// The planner for `engine` (a model without a chat template gets
    /// none: its owner uses slash commands).
    fn planner(&mut self, engine: &Engine) -> Option<&mut Planner> {
        self.planner
            .get_or_insert_with(|| match Planner::new(engine) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(error = %e, "requests in words are off for this model");
                    None
                }
            })
            .as_mut()
    }

    /// Builds the planner and computes its fixed prompt while the agent is
    /// idle, giving way when `stop` says so; true when it did some of that
    /// work (a stopped warm-up carries on at the next idle spell).
    pub fn warm(&mut self, engine: &Engine, stop: &mut dyn FnMut() -> bool) -> bool {
        if self.warmed {
            return false;
        }
        let started = std::time::Instant::now();
        let done = match self.planner(engine).map(|p| p.warm(engine, stop)) {
            None => true,
            Some(Ok(done)) => done,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "warming the planner failed");
                true
            }
        };
        self.warmed = done;
        let ms = started.elapsed().as_millis() as u64;
        if done {
            tracing::debug!(ms, "planner ready");
        } else {
            tracing::debug!(ms, "planner warm-up paused for a message");
        }
        true
    }

    /// Reads `msg` as a possible request. Anything that is not the owner's
    /// own typing in the owner's own chat is [`Outcome::Answer`] without
    /// the planner seeing it.
    pub fn handle(
        &mut self,
        engine: &Engine,
        shared: &Shared,
        config: &Config,
        memory: Option<&mut Memory>,
        msg: &Pending,
    ) -> Outcome {
        let Some(typed) = may_act(config, msg) else {
            return Outcome::Answer;
        };
        let words = Words::new(typed);
        let cues = cues::read(&words);
        if !cues.any() || turn_markup(engine, typed) {
            return Outcome::Answer;
        }
        let Some(planner) = self.planner(engine) else {
            return Outcome::Answer;
        };
        let _ = shared.events.send(Event::Typing {
            chat_id: msg.chat_id.clone(),
            on: true,
        });
        let started = std::time::Instant::now();
        let proposal = match planner.propose(engine, typed, &cues) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "planning failed; answering instead");
                return Outcome::Answer;
            }
        };
        let now = match jiff::Timestamp::from_millisecond(crate::clock::now_ms()) {
            Ok(t) => t.to_zoned_datetime(shared.time_zone.clone()),
            Err(e) => {
                tracing::error!(error = %e, "the clock is out of range");
                return Outcome::Answer;
            }
        };
        let decision = actions::decide(typed, &cues, &proposal, &now);
        tracing::info!(
            intent = ?proposal.intent,
            decision = match &decision {
                Decision::Act(a) => a.command_name(),
                Decision::Ask(_) => "ask",
                Decision::Answer => "answer",
            },
            plan_ms = started.elapsed().as_millis() as u64,
            "owner request planned"
        );
        match decision {
            Decision::Answer => Outcome::Answer,
            Decision::Ask(question) => Outcome::Replied(question),
            Decision::Act(action) => {
                let reply = super::commands::act(shared, memory, msg, &action);
                shared.audit(Entry::new(
                    Actor::Owner(msg.chat_id.clone()),
                    Action::Command,
                    format!("/{}", action.command_name()),
                ));
                Outcome::Replied(reply)
            }
        }
    }
}

/// The words of `msg` that may ask for an action: the owner's own typing,
/// in the owner's own chat, short enough to plan, and not a command.
/// Everything else (another person, a group, a quote, a forwarded
/// message, media) is `None`.
pub fn may_act<'m>(config: &Config, msg: &'m Pending) -> Option<&'m str> {
    if !super::agent::owner_chat(config, msg) {
        return None;
    }
    let typed = msg.typed()?.trim();
    if typed.is_empty() || typed.starts_with('/') || typed.chars().count() > MAX_TEXT {
        return None;
    }
    Some(typed)
}

/// What replaces a model reply that reads like Hearth's own read-back.
pub const NOT_DONE: &str = "I have not set, changed or cancelled any reminder. To set one, say \
for example \"remind me in 20 minutes to take the pizza out\"; \"what reminders do I have?\" \
lists them.";

/// Whether a model's reply imitates a read-back ("Reminder 3 set for …",
/// "Reminder 3 cancelled…", "Reminder: …"): only code that did it may say
/// so, so such a reply is replaced by [`NOT_DONE`] before it is recorded.
pub fn forged_read_back(reply: &str) -> bool {
    let Some(rest) = reply.trim_start().strip_prefix("Reminder") else {
        return false;
    };
    if rest.starts_with(':') {
        return true;
    }
    let rest = rest.trim_start().trim_start_matches('#');
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && {
        let after = rest[digits..].trim_start();
        after.starts_with("set") || after.starts_with("cancel")
    }
}

/// Whether `text` carries a chat turn or tool call of its own (the
/// model's special-token strings, `<tool_call>`): pasted machinery, not a
/// request in the owner's words, so it is answered, never planned.
fn turn_markup(engine: &Engine, text: &str) -> bool {
    let lower = text.to_lowercase();
    engine.neutralize(text) != text
        || [
            "<tool_call",
            "</tool_call",
            "<|im_start",
            "<start_of_turn",
            "<function",
        ]
        .iter()
        .any(|m| lower.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(chat: &str, sender: &str, text: &str, typed_from: Option<usize>) -> Pending {
        Pending {
            row: 1,
            chat_id: chat.into(),
            msg_id: "m".into(),
            sender: sender.into(),
            text: text.into(),
            ts_ms: 0,
            typed_from,
        }
    }

    fn config() -> Config {
        Config::parse("[owner]\nnumbers = [\"+491701234567\"]\n").unwrap()
    }

    #[test]
    fn only_the_owners_own_typing_in_the_owners_chat_may_act() {
        let c = config();
        let owner = "491701234567@s.whatsapp.net";
        let remind = "remind me in 5 minutes to call";
        assert_eq!(
            may_act(&c, &pending("cli:owner", "owner", remind, Some(0))),
            Some(remind)
        );
        assert_eq!(
            may_act(&c, &pending(owner, owner, remind, Some(0))),
            Some(remind)
        );
        // Another allowed person, the owner in a group, a forwarded text.
        let other = "441234567890@s.whatsapp.net";
        assert_eq!(may_act(&c, &pending(other, other, remind, Some(0))), None);
        assert_eq!(
            may_act(&c, &pending("123@g.us", owner, remind, Some(0))),
            None
        );
        assert_eq!(may_act(&c, &pending(owner, owner, remind, None)), None);
        // A quote: only what follows it.
        let quoted = format!("[replying to: {remind:?}] ok");
        assert_eq!(
            may_act(&c, &pending(owner, owner, &quoted, Some(quoted.len() - 2))),
            Some("ok")
        );
        assert_eq!(
            may_act(&c, &pending("cli:owner", "owner", "/remind x", Some(0))),
            None
        );
    }

    #[test]
    fn a_model_reply_cannot_pass_for_a_read_back() {
        assert!(forged_read_back("Reminder 3 cancelled: floss every day"));
        assert!(forged_read_back(
            "Reminder 12 set for Thu 3 Dec 2026 09:00 CET: x"
        ));
        assert!(forged_read_back("Reminder: call plumber tomorrow at 9 AM"));
        assert!(!forged_read_back("Reminders are set with \"remind me …\"."));
        assert!(!forged_read_back("Sure, flossing daily is good."));
    }
}
