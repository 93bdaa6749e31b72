//! The agent thread: takes the next queued message (FIFO within a chat,
//! chats served in turn), builds the prompt from the chat's stored history,
//! generates the reply on this thread (never on the async runtime), and
//! records it in the store before anyone is told about it. One generation
//! at a time; a shutdown abandons the generation in progress, leaving its
//! message queued for the next start.
//!
//! While answering is paused (`/pause`), only the owner's commands are
//! taken, in arrival order; everything else waits in the queue.
//!
//! The KV caches of recently active chats are kept (a snapshot of the used
//! part, within [`CACHE_BYTES`], least recently used dropped first), so a
//! chat's next turn
//! prefills only what is new: the prompt is rendered the same way every
//! turn and the engine reuses the longest cached prefix.

use std::collections::{HashMap, VecDeque};
use std::ops::ControlFlow;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::memory::Memory;
use super::requests::Outcome;
use super::{Event, Shared};
use crate::audit::{Action, Actor, Entry};
use crate::command::{self, Command};
use crate::config::Config;
use crate::llm::kv::KvSnapshot;
use crate::llm::{Conversation, Engine, Message, Role, Sampler, SamplerConfig, TokenId};
use crate::store::{Pending, Turn};

/// Stored turns of a chat put into its prompt (fewer when over budget).
const HISTORY_TURNS: usize = 12;

/// Tokens the repeat penalty looks back over (a whole default reply).
const REPEAT_WINDOW: usize = 256;

/// How long the agent sleeps when the queue is empty, at most (it is woken
/// on every new message; this only bounds a missed wake-up).
const IDLE_POLL: Duration = Duration::from_millis(500);

/// How long the agent must have been idle before it prefills the
/// planner's fixed prompt (seconds of work on a Pi).
const WARM_AFTER_IDLE: Duration = Duration::from_secs(10);

/// Memory for the KV caches kept between turns (least recently used chats
/// dropped first). 128 MiB holds ~5,500 tokens of SmolLM2 history, e.g.
/// 20 chats of ~10 exchanges.
const CACHE_BYTES: usize = 128 << 20;

/// The system prompt for a chat on the day it is answered (the date only:
/// the prompt must stay the same all day for the cached prefix to hold).
fn system_prompt(config: &Config, now_ms: i64, excerpts: bool) -> String {
    let date = jiff::Timestamp::from_millisecond(now_ms)
        .map(|t| {
            t.to_zoned_datetime(config.time_zone.zone())
                .strftime("%A %-d %B %Y")
                .to_string()
        })
        .unwrap_or_default();
    let owner = match &config.owner.name {
        Some(name) => format!(" Your owner is {name}."),
        None => String::new(),
    };
    let base = format!(
        "You are Hearth, a helpful assistant that runs offline on its owner's home computer.{owner} \
         Today is {date}. Answer briefly and truthfully; say so when you do not know. \
         When your owner asks in plain words to set, list or cancel a reminder or to search \
         their documents, Hearth does it before you see the message; a request you do see was \
         not carried out, so never say that you set, changed or sent anything."
    );
    if excerpts {
        crate::sources::chat_system_prompt(&base)
    } else {
        base
    }
}

/// The loop; returns when `shutdown` is cancelled.
#[allow(clippy::too_many_arguments)]
pub fn run(
    engine: Engine,
    mut memory: Option<Memory>,
    mut ears: super::voice::Ears,
    shared: &Shared,
    config: &Config,
    wake: &Receiver<()>,
    shutdown: &CancellationToken,
    max_tokens: usize,
) {
    // Chat → when it was last served (a counter): the chat served longest
    // ago goes next, so a busy chat cannot starve the others.
    let mut served: HashMap<String, u64> = HashMap::new();
    let mut tick = 0u64;
    // The CLI chat's default temperature, and a repeat penalty over the
    // whole reply: with the default 64-token window SmolLM2 repeated
    // 60-token paragraphs until the reply budget ran out.
    let mut sampler = Sampler::new(SamplerConfig {
        temperature: 0.2,
        repeat_last_n: REPEAT_WINDOW,
        ..SamplerConfig::default()
    });
    let mut conv = match engine.new_conversation() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the agent cannot allocate a conversation");
            return;
        }
    };
    let mut cache = ChatCache::default();
    let mut requests = super::requests::Requests::default();
    // When a message was last taken (or the agent started): the planner
    // is warmed only after a quiet spell, so it never delays a reply to a
    // message that was already on its way.
    let mut last_busy = std::time::Instant::now();
    ears.status(shared);
    let cancelled = || shutdown.is_cancelled();
    while !shutdown.is_cancelled() {
        shared.beat();
        let next = match next_message(shared, config, &served) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "reading the queue failed");
                std::thread::sleep(IDLE_POLL);
                continue;
            }
        };
        let Some(next) = next else {
            // Idle: hear kept chats' voice notes, then make their new
            // messages searchable.
            if ears.hear_kept(shared, &cancelled) {
                continue;
            }
            if memory.as_ref().is_some_and(|m| m.catch_up(shared)) {
                continue;
            }
            ears.idle(shared);
            // Any wake-up (a message, most likely) or a shutdown pauses
            // the warm-up; the loop then looks at the queue again.
            let mut give_way = || {
                shared.beat();
                cancelled() || wake.try_recv().is_ok()
            };
            if last_busy.elapsed() >= WARM_AFTER_IDLE && requests.warm(&engine, &mut give_way) {
                continue;
            }
            let _ = wake.recv_timeout(IDLE_POLL);
            continue;
        };
        last_busy = std::time::Instant::now();
        tick += 1;
        served.insert(next.chat_id.clone(), tick);
        // A voice note is heard first: its transcript becomes its text.
        let mut quote = None;
        let note = shared.store().voice_note(next.row);
        let next = match note {
            Ok(Some(note)) => {
                let _ = shared.events.send(Event::Typing {
                    chat_id: next.chat_id.clone(),
                    on: true,
                });
                match ears.hear(shared, &next, &note, &cancelled) {
                    super::voice::Heard::Text { msg, quote: q } => {
                        quote = q;
                        msg
                    }
                    super::voice::Heard::Reply(text) => {
                        record(shared, &next, &text);
                        continue;
                    }
                    super::voice::Heard::Stopped => break,
                }
            }
            Ok(None) => next,
            Err(e) => {
                tracing::error!(error = %e, "reading a voice note failed");
                next
            }
        };
        let heard = |text: &str| match &quote {
            Some(q) => format!("{q}\n\n{text}"),
            None => text.to_string(),
        };
        if let Some(cmd) = owner_command(config, &next) {
            let text = super::commands::run(shared, memory.as_mut(), &next, &cmd);
            if let Command::Forget(_) = cmd {
                // Cached prompts may hold what was forgotten.
                cache.chats.clear();
                conv.clear();
            }
            shared.audit(Entry::new(
                Actor::Owner(next.chat_id.clone()),
                Action::Command,
                format!("/{}", cmd.name()),
            ));
            record(shared, &next, &text);
            continue;
        }
        if let Outcome::Replied(text) =
            requests.handle(&engine, shared, config, memory.as_mut(), &next)
        {
            let _ = shared.events.send(Event::Typing {
                chat_id: next.chat_id.clone(),
                on: false,
            });
            record(shared, &next, &heard(&text));
            continue;
        }
        let _ = shared.events.send(Event::Typing {
            chat_id: next.chat_id.clone(),
            on: true,
        });
        // Excerpts for the owner's chats only: other people never get the
        // owner's documents.
        let sources = match memory.as_mut() {
            Some(m) if owner_chat(config, &next) => {
                m.recall(&shared.store(), &next.chat_id, &next.text)
            }
            _ => Vec::new(),
        };
        cache.load(&next.chat_id, &mut conv);
        let answer = answer(
            &Turning {
                engine: &engine,
                shared,
                config,
                excerpts: memory.is_some(),
            },
            &next,
            &sources,
            &mut conv,
            &mut sampler,
            shutdown,
            max_tokens,
        );
        cache.save(&next.chat_id, &conv);
        let _ = shared.events.send(Event::Typing {
            chat_id: next.chat_id.clone(),
            on: false,
        });
        let Some(text) = answer else {
            // Shut down mid-generation: the message stays queued.
            break;
        };
        // Searchable from now on; embedded after the reply so the
        // embedder never delays the first token.
        let text = heard(&text);
        if let (Some(out_id), Some(m)) = (record(shared, &next, &text), &memory) {
            m.remember(shared, &next.chat_id, &next.msg_id, &next.text);
            m.remember(shared, &next.chat_id, &format!("out:{out_id}"), &text);
        }
    }
    tracing::info!("agent stopped");
}

/// The message to take next: the head of the chat served longest ago, or
/// while paused the owner's oldest waiting command.
fn next_message(
    shared: &Shared,
    config: &Config,
    served: &HashMap<String, u64>,
) -> Result<Option<Pending>, crate::store::StoreError> {
    let store = shared.store();
    if store.paused()? {
        return Ok(store
            .pending_commands()?
            .into_iter()
            .find(|p| owner_command(config, p).is_some()));
    }
    Ok(store
        .pending_heads()?
        .into_iter()
        .min_by_key(|p| (served.get(&p.chat_id).copied().unwrap_or(0), p.row)))
}

/// Records `text` as the reply to `msg` and hands it out; the reply's
/// outbox id, or `None` when the store failed (the message stays queued).
fn record(shared: &Shared, msg: &Pending, text: &str) -> Option<i64> {
    let text = cap(text);
    let recorded = shared.store().record_reply(msg, text);
    match recorded {
        Ok(reply) => {
            tracing::debug!(out_id = reply.out_id, "reply recorded");
            let out_id = reply.out_id;
            let _ = shared.events.send(Event::Reply(reply));
            Some(out_id)
        }
        Err(e) => {
            tracing::error!(error = %e, "recording a reply failed");
            std::thread::sleep(IDLE_POLL);
            None
        }
    }
}

/// Replies longer than this are cut (an outbound frame must stay under
/// the protocol's 64 KiB; the bridge splits what it sends further).
const MAX_REPLY_BYTES: usize = 48 * 1024;

/// `text` cut to [`MAX_REPLY_BYTES`] at a character boundary.
fn cap(text: &str) -> &str {
    if text.len() <= MAX_REPLY_BYTES {
        return text;
    }
    let mut end = MAX_REPLY_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What a turn is rendered with.
struct Turning<'a> {
    engine: &'a Engine,
    shared: &'a Shared,
    config: &'a Config,
    /// Whether turns may carry excerpts (the system prompt says so).
    excerpts: bool,
}

/// Whether `msg` is in the owner's own chat: a terminal chat, or a direct
/// chat with a configured owner number (the chat id is the sender's id in
/// direct chats; a group never qualifies, its id is the group's).
pub(super) fn owner_chat(config: &Config, msg: &Pending) -> bool {
    crate::proto::ChatId::is_local(&msg.chat_id)
        || (msg.chat_id == msg.sender && config.is_owner_number(&msg.sender))
}

/// The command in `msg`, when the owner wrote it in their own chat.
/// Anyone else's `/…` is plain text.
fn owner_command(config: &Config, msg: &Pending) -> Option<Command> {
    if !owner_chat(config, msg) {
        return None;
    }
    command::parse(&msg.text)
}

/// The reply text, or `None` when shutdown interrupted the generation.
/// A message the model cannot take (too long for the context) gets a
/// short explanation instead, so it is not retried forever.
fn answer(
    turn: &Turning<'_>,
    msg: &Pending,
    sources: &[crate::search::Hit],
    conv: &mut Conversation,
    sampler: &mut Sampler,
    shutdown: &CancellationToken,
    max_tokens: usize,
) -> Option<String> {
    let (engine, shared) = (turn.engine, turn.shared);
    let history = shared
        .store()
        .history(&msg.chat_id, HISTORY_TURNS)
        .unwrap_or_default();
    let ctx = engine.model().n_ctx();
    let budget = max_tokens.min(ctx / 2);
    let mut skip = 0;
    let prompt = loop {
        let messages = messages(turn, &history[skip..], &msg.text, sources);
        let tokens = engine.render_chat(&messages, true).map(|r| {
            // The prompt holds message text: trace level only.
            tracing::trace!(prompt = %r, "prompt rendered");
            engine.tokenize_chat(&r)
        });
        match tokens {
            Ok(t) if t.len() + budget <= ctx => break t,
            Ok(_) if skip < history.len() => skip += 2.min(history.len() - skip),
            Ok(_) => return Some("Sorry, that message is too long for me to read.".into()),
            Err(e) => {
                tracing::error!(error = %e, "rendering the prompt failed");
                return Some("Sorry, something went wrong on my side.".into());
            }
        }
    };
    let mut interrupted = false;
    let result = engine.generate(
        conv,
        &prompt,
        budget.min(ctx - prompt.len()),
        sampler,
        &mut |_| {
            shared.beat();
            if shutdown.is_cancelled() {
                interrupted = true;
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    if interrupted {
        return None;
    }
    if let Ok(g) = &result {
        tracing::info!(
            prompt_tokens = g.prompt_tokens,
            prefilled_tokens = g.prefilled_tokens,
            prefill_ms = g.prefill_time.as_secs_f64() * 1000.0,
            generated_tokens = g.token_ids.len(),
            decode_ms = g.decode_time.as_secs_f64() * 1000.0,
            "reply generated"
        );
    }
    match result {
        Ok(g) if super::requests::forged_read_back(&g.text) => {
            tracing::info!("a reply imitating a read-back was replaced");
            Some(super::requests::NOT_DONE.to_string())
        }
        Ok(g) if !g.text.trim().is_empty() => Some(g.text.trim().to_string()),
        Ok(_) => Some("…".into()),
        Err(e) => {
            tracing::error!(error = %e, "generation failed");
            Some("Sorry, something went wrong on my side.".into())
        }
    }
}

/// System prompt, stored turns, then the new message (after this turn's
/// excerpts, when there are any); every stored text is neutralised so no
/// message can open a new turn of its own. The stored history holds bare
/// messages, so the rendering of past turns, and with it the cached
/// prefix, stays the same from turn to turn.
fn messages(
    turn: &Turning<'_>,
    history: &[Turn],
    text: &str,
    sources: &[crate::search::Hit],
) -> Vec<Message> {
    let engine = turn.engine;
    let mut m = vec![Message::new(
        Role::System,
        system_prompt(turn.config, crate::clock::now_ms(), turn.excerpts),
    )];
    for t in history {
        let role = if t.outgoing {
            Role::Assistant
        } else {
            Role::User
        };
        m.push(Message::new(role, engine.neutralize(&t.text)));
    }
    let neutralize = |t: &str| engine.neutralize(t);
    let material = if sources.is_empty() {
        String::new()
    } else {
        crate::sources::turn_material(sources, &neutralize)
    };
    m.push(Message::new(
        Role::User,
        format!("{material}{}", engine.neutralize(text)),
    ));
    m
}

/// The KV caches of the most recently answered chats.
#[derive(Default)]
struct ChatCache {
    /// Most recent last.
    chats: VecDeque<(String, (KvSnapshot, Vec<TokenId>))>,
}

impl ChatCache {
    /// Puts `chat`'s cache into `conv`. A chat not cached keeps what
    /// `conv` holds (the last chat answered): every chat's prompt starts
    /// with the same system prompt, and the engine reuses the longest
    /// common token prefix, so only the chat's own turns are prefilled.
    fn load(&mut self, chat: &str, conv: &mut Conversation) {
        let Some((_, snap)) = self.chats.iter().find(|(c, _)| c == chat) else {
            return;
        };
        if conv.restore(snap).is_err() {
            conv.clear();
        }
    }

    /// Keeps `conv` as `chat`'s cache, dropping the least recently used
    /// chats while the total is over [`CACHE_BYTES`].
    fn save(&mut self, chat: &str, conv: &Conversation) {
        self.chats.retain(|(c, _)| c != chat);
        self.chats.push_back((chat.to_string(), conv.snapshot()));
        let size = |c: &VecDeque<(String, (KvSnapshot, Vec<TokenId>))>| -> usize {
            c.iter().map(|(_, (s, _))| s.size_in_bytes()).sum()
        };
        while self.chats.len() > 1 && size(&self.chats) > CACHE_BYTES {
            self.chats.pop_front();
        }
    }
}
