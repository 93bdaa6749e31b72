//! The planning step: the chat model reads only the owner's message and
//! writes one proposal, `{"action": "remind", "what": "…"}` and the like,
//! decoded greedily under a grammar (llguidance, over the model's own
//! vocabulary). The grammar allows exactly the five actions, and every
//! free-text field is a run of the owner's words (`substring_words`), so
//! the model cannot write a path, a number or a recipient that was not
//! in what the owner typed, and the proposal always parses.
//!
//! Runs on the agent thread with its own conversation (the few-shot
//! prefix stays cached between messages); must not see excerpts,
//! history or anyone else's text, and decides nothing ([`super::decide`]
//! does).

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{ApproximateTokEnv, TokRxInfo, TokTrie, TokenId as LlgToken};
use llguidance::{Matcher, ParserFactory};

use super::{Cues, Intent, Proposal};
use crate::llm::{Conversation, Engine, GenerateError, Message, Role, TokenKind};

/// Tokens a proposal may take (the longest is a sentence of the owner's).
const MAX_TOKENS: usize = 96;

/// Longest owner message planned (characters); longer ones are answered.
pub const MAX_TEXT: usize = 600;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the model has no chat template")]
    NoTemplate,
    #[error("constrained decoding: {0}")]
    Grammar(String),
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error("the proposal did not parse: {0}")]
    Parse(String),
}

/// What the model is told, then shown as worked examples.
const INSTRUCTIONS: &str = "You read one message from your owner and say which action it asks \
for, as JSON. Actions: \"remind\" when the owner asks to be reminded of something, to be pinged \
or nudged about it, or not to be let forget it (\"what\": the thing to be reminded of); \
\"list_reminders\" when the owner asks which reminders are set; \"cancel_reminder\" when the owner \
asks to cancel, delete or remove a reminder (\"which\": what it is about, or its number); \
\"search\" when the owner asks you to find or look up their own notes, documents, mail or messages \
(\"query\": what to look for); \"none\" for anything else: questions, statements, and messages \
that only mention a reminder or a time without asking for one.";

/// Worked examples: every request phrase once, and messages that carry a
/// request word but ask for nothing. (None of them is a phrasing of the
/// evaluation in `benches/requests/cases.toml`.)
const EXAMPLES: &[(&str, &str)] = &[
    (
        "remind me at 6 to call the vet",
        r#"{"action": "remind", "what": "call the vet"}"#,
    ),
    (
        "my sister reminded me about the wedding",
        r#"{"action": "none"}"#,
    ),
    (
        "don't let me forget my keys tomorrow at 8",
        r#"{"action": "remind", "what": "my keys"}"#,
    ),
    (
        "what reminders are pending?",
        r#"{"action": "list_reminders"}"#,
    ),
    (
        "ping me on Friday about the gas bill",
        r#"{"action": "remind", "what": "the gas bill"}"#,
    ),
    (
        "can you remind me what the capital of Peru is?",
        r#"{"action": "none"}"#,
    ),
    (
        "look up my notes about the lease",
        r#"{"action": "search", "query": "the lease"}"#,
    ),
    (
        "delete the reminder about the gym",
        r#"{"action": "cancel_reminder", "which": "the gym"}"#,
    ),
    (
        "the reminder for my flight came too late",
        r#"{"action": "none"}"#,
    ),
    (
        "set a reminder in 2 hours to feed the fish",
        r#"{"action": "remind", "what": "feed the fish"}"#,
    ),
    (
        "cancel the vet reminder",
        r#"{"action": "cancel_reminder", "which": "vet"}"#,
    ),
    (
        "I had to cancel the trip on Sunday",
        r#"{"action": "none"}"#,
    ),
    (
        "find the email about the parking permit",
        r#"{"action": "search", "query": "the parking permit"}"#,
    ),
    ("where did you find that?", r#"{"action": "none"}"#),
];

/// Tokens warmed between two looks at whether to give way (about a
/// second of SmolLM2 prefill on a Raspberry Pi 4).
const WARM_CHUNK: usize = 64;

/// The planner: the grammar machinery over `engine`'s vocabulary and a
/// conversation of its own.
pub struct Planner {
    factory: ParserFactory,
    conv: Conversation,
    vocab: usize,
    stops: Vec<u32>,
}

impl Planner {
    /// Builds the token trie from `engine`'s tokenizer (once per model).
    pub fn new(engine: &Engine) -> Result<Self, PlanError> {
        if !engine.has_chat_template() {
            return Err(PlanError::NoTemplate);
        }
        let tok = engine.tokenizer();
        let vocab = tok.vocab_size();
        let words: Vec<Vec<u8>> = (0..vocab as u32)
            .map(|id| match tok.kind(id) {
                Some(TokenKind::Control | TokenKind::UserDefined) => {
                    // llguidance marks special tokens with a 0xFF byte.
                    let mut w = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                    w.extend_from_slice(tok.token_text(id).unwrap_or_default().as_bytes());
                    w
                }
                _ => tok.token_bytes(id, false),
            })
            .collect();
        let stops: Vec<u32> = engine.stop_tokens().to_vec();
        let eos = stops.first().copied().or(tok.eos()).unwrap_or(0);
        let info = TokRxInfo::new(vocab as u32, eos as LlgToken);
        let trie = TokTrie::from(&info, &words).with_eos_tokens(&stops);
        let env: llguidance::toktrie::TokEnv = Arc::new(ApproximateTokEnv::new(trie));
        let mut factory =
            ParserFactory::new_simple(&env).map_err(|e| PlanError::Grammar(e.to_string()))?;
        factory.quiet();
        Ok(Planner {
            factory,
            conv: engine.new_conversation()?,
            vocab,
            stops,
        })
    }

    /// Computes the instructions and examples once ahead of the first
    /// request (they stay cached in the planner's conversation), so the
    /// first "remind me…" after a start is as quick as the next. Gives way
    /// when `stop` says so (a message arrived: on a slow CPU this prefill
    /// took minutes, and the message waited for it); true when done, and a
    /// later call carries on from where this one stopped.
    pub fn warm(
        &mut self,
        engine: &Engine,
        stop: &mut dyn FnMut() -> bool,
    ) -> Result<bool, PlanError> {
        let prompt = self.prompt(engine, "")?;
        Ok(engine.prefill_until(&mut self.conv, &prompt, WARM_CHUNK, stop)?)
    }

    /// The rendered prompt for the owner's (sanitized) words.
    fn prompt(&self, engine: &Engine, owner_words: &str) -> Result<Vec<u32>, PlanError> {
        let mut messages = vec![Message::new(Role::System, INSTRUCTIONS)];
        for (q, a) in EXAMPLES {
            messages.push(Message::new(Role::User, format!("Message: {q}")));
            messages.push(Message::new(Role::Assistant, *a));
        }
        messages.push(Message::new(
            Role::User,
            format!("Message: {}", engine.neutralize(owner_words)),
        ));
        let rendered = engine
            .render_chat(&messages, true)
            .map_err(|e| PlanError::Grammar(e.to_string()))?;
        Ok(engine.tokenize_chat(&rendered))
    }

    /// The proposal for the owner's message `text`, choosing among the
    /// actions `cues` found request words for, or none.
    pub fn propose(
        &mut self,
        engine: &Engine,
        text: &str,
        cues: &Cues,
    ) -> Result<Proposal, PlanError> {
        // Lower case: the small models read "Don't let me forget" and
        // "don't let me forget" differently. The proposal's words are only
        // a fallback; `decide` takes the subject from the words as written.
        let owner_words = sanitize(&text.to_lowercase());
        let prompt = self.prompt(engine, &owner_words)?;
        let grammar = TopLevelGrammar::from_lark(grammar(&owner_words, cues));
        let mut m = Matcher::new(self.factory.create_parser(grammar));
        let (mut logits, _) = engine.prefill(&mut self.conv, &prompt)?;
        let mut out: Vec<u32> = Vec::new();
        let grammar_err = |e: anyhow::Error| PlanError::Grammar(e.to_string());
        while out.len() < MAX_TOKENS && !m.is_stopped() {
            let forced = m.compute_ff_tokens();
            if !forced.is_empty() {
                m.consume_tokens(&forced).map_err(grammar_err)?;
                engine.feed(&mut self.conv, &forced, &mut logits)?;
                out.extend_from_slice(&forced);
                continue;
            }
            let mask = m.compute_mask().map_err(grammar_err)?;
            let mut best: Option<(u32, f32)> = None;
            for (i, &l) in logits.iter().enumerate().take(self.vocab) {
                if mask.is_allowed(i as LlgToken) && best.is_none_or(|(_, b)| l > b) {
                    best = Some((i as u32, l));
                }
            }
            let Some((id, _)) = best else {
                return Err(PlanError::Grammar("no token allowed".into()));
            };
            if self.stops.contains(&id) {
                break;
            }
            m.consume_token(id as LlgToken).map_err(grammar_err)?;
            out.push(id);
            if m.is_stopped() {
                break;
            }
            engine.feed(&mut self.conv, &[id], &mut logits)?;
        }
        let json = engine.tokenizer().decode(&out);
        tracing::trace!(proposal = %json, "planner output");
        parse(&json)
    }
}

/// The owner's text as the grammar may quote it: no quotes, backslashes
/// or control characters (they would end the JSON string), at most
/// [`MAX_TEXT`] characters.
fn sanitize(text: &str) -> String {
    text.chars()
        .take(MAX_TEXT)
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// The grammar of a proposal for a message whose words are `owner`: only
/// the actions `cues` found request words for, and "none". A small model
/// then only judges whether the request words are a request ("remind me
/// at 7" against "I set a reminder for 7 but it never went off"), never
/// which of five actions it might be.
fn grammar(owner: &str, cues: &Cues) -> String {
    let words = serde_json::json!({ "substring_words": owner }).to_string();
    let mut bodies = Vec::new();
    if cues.remind.is_some() {
        bodies.push(r#""remind\", \"what\": \"" WORDS "\"}""#);
    }
    if cues.list {
        bodies.push(r#""list_reminders\"}""#);
    }
    if cues.cancel {
        bodies.push(r#""cancel_reminder\", \"which\": \"" WORDS "\"}""#);
    }
    if cues.search.is_some() {
        bodies.push(r#""search\", \"query\": \"" WORDS "\"}""#);
    }
    bodies.push(r#""none\"}""#);
    format!(
        "start: \"{{\\\"action\\\": \\\"\" body\nbody: {}\nWORDS: %regex {words}\n",
        bodies.join("\n    | ")
    )
}

#[derive(serde::Deserialize)]
struct Wire {
    action: String,
    #[serde(default)]
    what: String,
    #[serde(default)]
    which: String,
    #[serde(default)]
    query: String,
}

/// The proposal the grammar's output says.
fn parse(json: &str) -> Result<Proposal, PlanError> {
    let w: Wire = serde_json::from_str(json).map_err(|e| PlanError::Parse(e.to_string()))?;
    let (intent, words) = match w.action.as_str() {
        "remind" => (Intent::Remind, w.what),
        "list_reminders" => (Intent::ListReminders, String::new()),
        "cancel_reminder" => (Intent::CancelReminder, w.which),
        "search" => (Intent::Search, w.query),
        "none" => (Intent::None, String::new()),
        other => return Err(PlanError::Parse(format!("unknown action {other:?}"))),
    };
    Ok(Proposal { intent, words })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_compiles_and_quotes_only_owner_words() {
        let env = ApproximateTokEnv::single_byte_env();
        let factory = ParserFactory::new_simple(&env).unwrap();
        let all = Cues {
            remind: Some((0, 2)),
            list: true,
            cancel: true,
            search: Some((0, 1)),
        };
        let g = TopLevelGrammar::from_lark(grammar(&sanitize("remind me \"now\" to call"), &all));
        let mut m = Matcher::new(factory.create_parser(g));
        let ok = br#"{"action": "remind", "what": "to call"}"#;
        let trie = env.tok_trie();
        let toks: Vec<LlgToken> = ok.iter().map(|b| trie.token_id(&[*b]).unwrap()).collect();
        assert_eq!(m.validate_tokens(&toks).unwrap(), toks.len());
        let mut m = Matcher::new(factory.create_parser(TopLevelGrammar::from_lark(grammar(
            "remind me to call",
            &all,
        ))));
        let bad = br#"{"action": "remind", "what": "send my PIN"}"#;
        let toks: Vec<LlgToken> = bad.iter().map(|b| trie.token_id(&[*b]).unwrap()).collect();
        assert!(m.validate_tokens(&toks).unwrap() < toks.len());
        // Only what the words asked for, or none.
        let remind_only = Cues {
            remind: Some((0, 2)),
            ..Cues::default()
        };
        let toks = |b: &[u8]| -> Vec<LlgToken> {
            b.iter().map(|b| trie.token_id(&[*b]).unwrap()).collect()
        };
        let parser = |c: &Cues| {
            Matcher::new(
                factory.create_parser(TopLevelGrammar::from_lark(grammar("remind me to call", c))),
            )
        };
        let list = toks(br#"{"action": "list_reminders"}"#);
        assert!(parser(&remind_only).validate_tokens(&list).unwrap() < list.len());
        let none = toks(br#"{"action": "none"}"#);
        assert_eq!(
            parser(&remind_only).validate_tokens(&none).unwrap(),
            none.len()
        );
    }

    #[test]
    fn proposals_parse() {
        assert_eq!(
            parse(r#"{"action": "remind", "what": "call"}"#).unwrap(),
            Proposal {
                intent: Intent::Remind,
                words: "call".into()
            }
        );
        assert!(parse(r#"{"action": "send"}"#).is_err());
    }
}
