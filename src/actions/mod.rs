//! The owner's plain-language actions: "remind me in 20 minutes to take
//! the pizza out", "what reminders do I have?", "cancel the pizza
//! reminder", "find my notes about the boiler". Three steps, each unable
//! to do more than the one before allows:
//!
//! 1. [`cues`]: fixed rules say which actions the words could ask for; no
//!    request phrase, no action (and no model call).
//! 2. [`planner`]: the chat model, shown only the owner's message, proposes
//!    one action under a grammar, so its output is always well formed and
//!    its free text is a run of the owner's own words.
//! 3. [`decide`]: code validates the proposal against the cues and reads the
//!    time with [`crate::reminder`]; what fails becomes a question back,
//!    never a guess.
//!
//! Who may act (the owner, in the owner's chats, on text the owner typed)
//! is decided by the caller before any of this runs; this module must not
//! see excerpts, history or other people's text, and carries nothing out.

pub mod cues;
pub mod planner;

use jiff::ZonedDateTime;

use crate::reminder::{self, WhenError, Words};
use crate::store::ReminderId;

pub use cues::Cues;

/// What the planner may propose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Remind,
    ListReminders,
    CancelReminder,
    Search,
    /// An ordinary message: answer it.
    None,
}

/// The planner's proposal: an intent and, for the ones that take it, a run
/// of the owner's words (what to remind of, which reminder, what to find).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub intent: Intent,
    pub words: String,
}

/// Which reminder a cancel request means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    Number(ReminderId),
    /// Words the reminder's text should contain.
    About(Vec<String>),
}

/// A validated action, carried out like the slash command it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    SetReminder(reminder::Request),
    ListReminders,
    CancelReminder(Which),
    Search(String),
}

impl Action {
    /// The slash command this action stands for (audit records name it).
    pub fn command_name(&self) -> &'static str {
        match self {
            Action::SetReminder(_) => "remind",
            Action::ListReminders => "reminders",
            Action::CancelReminder(_) => "cancel",
            Action::Search(_) => "search",
        }
    }
}

/// What becomes of an owner's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Act(Action),
    /// A question back (the proposal could not be validated).
    Ask(String),
    /// Not an action: the model answers it as usual.
    Answer,
}

/// The question when no time could be read.
pub const ASK_WHEN: &str = "When should I remind you? For example \"in 20 minutes\", \"tomorrow at 9\" or \"next Monday at 10\".";

/// The question when no subject is left.
pub const ASK_WHAT: &str = "What should I remind you of?";

/// Validates `proposal` for the owner's message `text` at `now` (the
/// owner's time zone): the intent must be one the words asked for, the
/// time is read from the owner's words, the subject taken from them.
pub fn decide(text: &str, cues: &Cues, proposal: &Proposal, now: &ZonedDateTime) -> Decision {
    let w = Words::new(text);
    match proposal.intent {
        Intent::None => Decision::Answer,
        Intent::Remind => {
            let Some(cue) = cues.remind else {
                return Decision::Answer;
            };
            remind(&w, cue, proposal, now)
        }
        Intent::ListReminders if cues.list => Decision::Act(Action::ListReminders),
        Intent::CancelReminder if cues.cancel => {
            let which = match cues::number(&w) {
                Some(n) => Which::Number(ReminderId(n)),
                None => {
                    let mut k = cues::keywords(&proposal.words);
                    if k.is_empty() {
                        k = cues::keywords(text);
                    }
                    if k.is_empty() {
                        return Decision::Ask(
                            "Cancel which reminder? Say what it is about, or its number.".into(),
                        );
                    }
                    Which::About(k)
                }
            };
            Decision::Act(Action::CancelReminder(which))
        }
        Intent::Search => {
            let Some(cue) = cues.search else {
                return Decision::Answer;
            };
            let q = cues::query(&w, cue).or_else(|| {
                let p = proposal.words.trim();
                (!p.is_empty()).then(|| p.to_string())
            });
            match q {
                Some(q) => Decision::Act(Action::Search(q)),
                None => Decision::Ask("Search for what?".into()),
            }
        }
        // An intent the words did not ask for.
        Intent::ListReminders | Intent::CancelReminder => Decision::Answer,
    }
}

fn remind(w: &Words, cue: (usize, usize), proposal: &Proposal, now: &ZonedDateTime) -> Decision {
    let found = match reminder::find(w, now) {
        Ok(f) => f,
        // "remind me what the wifi password is": a question, not a reminder.
        Err(WhenError::NoTime)
            if w.norm(cue.1).is_some_and(|x| {
                matches!(
                    x,
                    "what" | "where" | "who" | "how" | "which" | "whether" | "if"
                )
            }) =>
        {
            return Decision::Answer;
        }
        Err(WhenError::Past(when)) => {
            return Decision::Ask(format!(
                "{when} has already passed. When should I remind you?"
            ));
        }
        Err(WhenError::TooFar) => {
            return Decision::Ask(
                "That is more than 10 years away. When should I remind you?".into(),
            );
        }
        Err(_) => return Decision::Ask(ASK_WHEN.into()),
    };
    let what = cues::subject(w, cue, (found.start, found.end)).or_else(|| {
        // The planner's words, without the time expression in them.
        let pw = Words::new(&proposal.words);
        let t = reminder::find(&pw, now)
            .map(|f| (f.start, f.end))
            .unwrap_or((0, 0));
        cues::subject(&pw, (0, 0), t)
    });
    match what {
        Some(what) => Decision::Act(Action::SetReminder(reminder::Request {
            due: found.due,
            what,
        })),
        None => Decision::Ask(ASK_WHAT.into()),
    }
}

/// The pending reminder a cancel request means, among `(id, text)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    One(ReminderId),
    NoneMatches,
    /// Several match equally well: their ids.
    Several(Vec<ReminderId>),
}

/// Picks by number, or by the most keywords found in a reminder's text
/// (a keyword matches a word of the text that starts with it, so
/// "pizza" finds "pizzas"); a tie is not a pick.
pub fn pick(which: &Which, pending: &[(ReminderId, String)]) -> Pick {
    match which {
        Which::Number(id) => {
            if pending.iter().any(|(p, _)| p == id) {
                Pick::One(*id)
            } else {
                Pick::NoneMatches
            }
        }
        Which::About(keys) => {
            let score = |text: &str| {
                let words: Vec<String> = Words::new(text).norms().map(str::to_string).collect();
                keys.iter()
                    .filter(|k| {
                        let stem = k.trim_end_matches('s');
                        words
                            .iter()
                            .any(|w| w.starts_with(stem) && !stem.is_empty())
                    })
                    .count()
            };
            let scored: Vec<(ReminderId, usize)> =
                pending.iter().map(|(id, t)| (*id, score(t))).collect();
            let best = scored.iter().map(|(_, s)| *s).max().unwrap_or(0);
            if best == 0 {
                return Pick::NoneMatches;
            }
            let top: Vec<ReminderId> = scored
                .iter()
                .filter(|(_, s)| *s == best)
                .map(|(id, _)| *id)
                .collect();
            match top.as_slice() {
                [one] => Pick::One(*one),
                _ => Pick::Several(top),
            }
        }
    }
}

#[cfg(test)]
mod tests;
