//! The inference engine: a GGUF model, its tokenizer and chat template, and
//! generation (prefill, sampling, streaming, stop tokens) over a
//! [`Conversation`]'s KV cache.
//!
//! Owns everything between "text in" and "text out" for one model. It must
//! not touch the network, the store or the filesystem beyond the model file.
//! Calls block the current thread: async callers run them on their own thread.

pub mod attention;
pub mod gguf;
pub mod kv;
pub mod model;
pub mod ops;
pub mod pool;
pub mod quant;
pub mod sampler;
pub mod template;
pub mod tokenizer;

use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

pub use gguf::LoadError;
pub use kv::{KvCache, KvSnapshot};
pub use model::{Arch, ForwardError, Logits, Model};
pub use sampler::{Sampler, SamplerConfig};
pub use template::{ChatTemplate, Message, Role};
pub use tokenizer::{StreamDecoder, TokenId, TokenKind, Tokenizer};

/// Errors while running a loaded model.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("this model has no chat template; use a raw prompt (`--raw`)")]
    NoChatTemplate,
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    #[error("the prompt is {prompt} tokens, but the context holds {ctx} (with room for the reply)")]
    PromptTooLong { prompt: usize, ctx: usize },
    #[error("inference failed: {0}")]
    Forward(#[from] model::ForwardError),
}

/// Texts that end an assistant turn in common chat formats.
const END_OF_TURN_TEXTS: &[&str] = &[
    "<|im_end|>",
    "<end_of_turn>",
    "<|eot_id|>",
    "<|end|>",
    "<|endoftext|>",
    "<|end_of_text|>",
];

/// A loaded model ready to generate.
pub struct Engine {
    model: Model,
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
    stop_tokens: Vec<TokenId>,
    /// Texts of the control and user-defined tokens (for [`Engine::neutralize`]).
    special_texts: Vec<String>,
    file_size: u64,
    n_params: usize,
    quant_label: String,
    load_time: Duration,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model produced an end-of-sequence or end-of-turn token.
    EndOfTurn,
    /// The token budget ran out.
    MaxTokens,
    /// The context is full.
    ContextFull,
    /// The caller asked to stop (e.g. Ctrl-C).
    Cancelled,
}

/// The outcome of one generation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Generation {
    pub text: String,
    pub token_ids: Vec<TokenId>,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens actually run (the rest came from the cache).
    pub prefilled_tokens: usize,
    #[serde(serialize_with = "ser_ms")]
    pub prefill_time: Duration,
    #[serde(serialize_with = "ser_ms")]
    pub decode_time: Duration,
    pub stop: StopReason,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

impl Generation {
    pub fn prefill_tps(&self) -> f64 {
        rate(self.prefilled_tokens, self.prefill_time)
    }

    pub fn decode_tps(&self) -> f64 {
        // The first token comes from the prefill's logits.
        rate(self.token_ids.len().saturating_sub(1), self.decode_time)
    }
}

fn rate(n: usize, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        n as f64 / d.as_secs_f64()
    }
}

/// The token history of one conversation and the KV cache that holds it.
pub struct Conversation {
    cache: KvCache,
    tokens: Vec<TokenId>,
}

impl Conversation {
    pub fn tokens(&self) -> &[TokenId] {
        &self.tokens
    }

    pub fn cache(&self) -> &KvCache {
        &self.cache
    }

    /// Direct access for callers that drive [`Model::forward`] themselves
    /// (benchmarks); the token history is not kept in step.
    pub fn cache_mut(&mut self) -> &mut KvCache {
        &mut self.cache
    }

    pub fn clear(&mut self) {
        self.cache.clear();
        self.tokens.clear();
    }

    /// Keeps only the first `n` tokens.
    pub fn truncate(&mut self, n: usize) {
        self.cache.truncate(n);
        self.tokens.truncate(n);
    }

    pub fn snapshot(&self) -> (KvSnapshot, Vec<TokenId>) {
        (self.cache.snapshot(), self.tokens.clone())
    }

    pub fn restore(&mut self, snap: &(KvSnapshot, Vec<TokenId>)) -> Result<(), kv::KvError> {
        self.cache.restore(&snap.0)?;
        self.tokens = snap.1.clone();
        Ok(())
    }
}

impl Engine {
    /// Loads a GGUF file; `n_ctx` sizes the context (clamped to the model's).
    pub fn load(path: &Path, n_ctx: usize) -> Result<Self, LoadError> {
        let start = Instant::now();
        let mut file = gguf::GgufFile::open(path)?;
        Model::check(&file)?;
        let tokenizer = Tokenizer::from_gguf(file.metadata()).map_err(|e| match e {
            tokenizer::TokenizerError::UnsupportedModel(_)
            | tokenizer::TokenizerError::UnsupportedPre(_) => file.unsupported(e.to_string()),
            _ => LoadError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            },
        })?;
        let model = Model::load(&mut file, n_ctx)?;
        let template = match file.get("tokenizer.chat_template") {
            Some(v) => {
                let src = v.to_string().map_err(|e| LoadError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("tokenizer.chat_template: {}", gguf::candle_message(&e)),
                })?;
                let text = |id: Option<TokenId>| {
                    id.and_then(|i| tokenizer.token_text(i))
                        .unwrap_or("")
                        .to_string()
                };
                Some(
                    ChatTemplate::new(src, &text(tokenizer.bos()), &text(tokenizer.eos()))
                        .map_err(|e| file.unsupported(e.to_string()))?,
                )
            }
            None => None,
        };
        let stop_tokens = stop_tokens(&tokenizer, template.as_ref());
        let special_texts = (0..tokenizer.vocab_size() as TokenId)
            .filter(|&id| {
                matches!(
                    tokenizer.kind(id),
                    Some(TokenKind::Control) | Some(TokenKind::UserDefined)
                )
            })
            .filter_map(|id| tokenizer.token_text(id))
            .filter(|t| t.chars().count() >= 2)
            .map(str::to_string)
            .collect();
        let file_size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let n_params = file.n_params();
        // The file's declared type names it, as in llama-bench; else the
        // most common quantized tensor type.
        let quant_label = file
            .opt_usize("general.file_type")
            .and_then(gguf::file_type_name)
            .map(str::to_string)
            .or_else(|| {
                file.dtype_counts()
                    .into_iter()
                    .map(|(t, _)| format!("{t:?}"))
                    .find(|t| t != "F32")
            })
            .unwrap_or_else(|| "F32".into());
        tracing::debug!(
            path = %path.display(),
            arch = model.hp.arch.name(),
            n_ctx = model.n_ctx(),
            ?stop_tokens,
            "model loaded"
        );
        Ok(Self {
            model,
            tokenizer,
            template,
            stop_tokens,
            special_texts,
            file_size,
            n_params,
            quant_label,
            load_time: start.elapsed(),
        })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    pub fn n_params(&self) -> usize {
        self.n_params
    }

    /// The dominant weight type, e.g. `Q4_1`.
    pub fn quant_label(&self) -> &str {
        &self.quant_label
    }

    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    pub fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    pub fn stop_tokens(&self) -> &[TokenId] {
        &self.stop_tokens
    }

    pub fn new_conversation(&self) -> Result<Conversation, GenerateError> {
        Ok(Conversation {
            cache: self.model.new_cache(),
            tokens: Vec::new(),
        })
    }

    /// Renders messages with the model's chat template.
    pub fn render_chat(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, GenerateError> {
        let t = self
            .template
            .as_ref()
            .ok_or(GenerateError::NoChatTemplate)?;
        Ok(t.render(messages, add_generation_prompt)?)
    }

    /// Tokenizes a rendered chat: special tokens parsed, BOS added only when
    /// the vocabulary wants it and the template did not already write it.
    pub fn tokenize_chat(&self, rendered: &str) -> Vec<TokenId> {
        let bos_text = self
            .tokenizer
            .bos()
            .and_then(|b| self.tokenizer.token_text(b))
            .unwrap_or("");
        let add_bos = bos_text.is_empty() || !rendered.starts_with(bos_text);
        self.tokenizer.encode(rendered, add_bos, true)
    }

    /// `text` with every special-token string of this vocabulary broken
    /// by an invisible word joiner, so untrusted text (a file, a message)
    /// placed in a chat prompt cannot open or close a turn.
    pub fn neutralize(&self, text: &str) -> String {
        let mut out = text.to_string();
        for t in &self.special_texts {
            if out.contains(t.as_str()) {
                let mut chars = t.chars();
                let first = chars.next().unwrap_or_default();
                out = out.replace(t.as_str(), &format!("{first}\u{2060}{}", chars.as_str()));
            }
        }
        out
    }

    /// Tokenizes a raw completion prompt (BOS as the vocabulary says,
    /// special-token text kept as text).
    pub fn tokenize_raw(&self, prompt: &str) -> Vec<TokenId> {
        self.tokenizer.encode(prompt, true, false)
    }

    /// Brings `conv` to exactly `tokens`, reusing the longest common prefix
    /// already in its cache, and returns the logits after the last token.
    pub fn prefill(
        &self,
        conv: &mut Conversation,
        tokens: &[TokenId],
    ) -> Result<(Vec<f32>, usize), GenerateError> {
        if tokens.is_empty() {
            return Err(GenerateError::PromptTooLong {
                prompt: 0,
                ctx: self.model.n_ctx(),
            });
        }
        let common = conv
            .tokens
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count()
            .min(conv.cache.len())
            // At least one token must run to produce logits.
            .min(tokens.len() - 1);
        conv.truncate(common);
        let fresh = &tokens[common..];
        let logits = self.model.forward(fresh, &mut conv.cache, Logits::Last)?;
        conv.tokens.extend_from_slice(fresh);
        Ok((logits, fresh.len()))
    }

    /// [`Self::prefill`] in pieces of `chunk` tokens, asking `stop` before
    /// each: work that may be abandoned (warming a cache while idle) and
    /// must not hold up what comes next. Stopped, `conv` keeps the pieces
    /// done, so a later prefill of the same tokens starts where this one
    /// left off; returns whether it finished.
    pub fn prefill_until(
        &self,
        conv: &mut Conversation,
        tokens: &[TokenId],
        chunk: usize,
        stop: &mut dyn FnMut() -> bool,
    ) -> Result<bool, GenerateError> {
        let chunk = chunk.max(1);
        let mut end = conv
            .tokens
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count()
            .min(conv.cache.len());
        while end < tokens.len() {
            if stop() {
                return Ok(false);
            }
            end = (end + chunk).min(tokens.len());
            self.prefill(conv, &tokens[..end])?;
        }
        Ok(true)
    }

    /// Appends `ids` to `conv` (one forward pass over them) and leaves the
    /// logits after the last in `logits`: the step a caller that picks
    /// its own tokens (constrained decoding) takes after each choice.
    pub fn feed(
        &self,
        conv: &mut Conversation,
        ids: &[TokenId],
        logits: &mut Vec<f32>,
    ) -> Result<(), GenerateError> {
        let ctx = self.model.n_ctx();
        if ids.is_empty() || conv.cache.len() + ids.len() > ctx {
            return Err(GenerateError::PromptTooLong {
                prompt: conv.cache.len() + ids.len(),
                ctx,
            });
        }
        self.model
            .forward_into(ids, &mut conv.cache, Logits::Last, logits)?;
        conv.tokens.extend_from_slice(ids);
        Ok(())
    }

    /// Generates after `prompt` in `conv`. `on_text` receives each complete
    /// piece of text as it is decoded and may stop generation early.
    pub fn generate(
        &self,
        conv: &mut Conversation,
        prompt: &[TokenId],
        max_tokens: usize,
        sampler: &mut Sampler,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, GenerateError> {
        let ctx = self.model.n_ctx();
        if prompt.len() >= ctx {
            return Err(GenerateError::PromptTooLong {
                prompt: prompt.len(),
                ctx,
            });
        }
        let t0 = Instant::now();
        let (mut logits, prefilled) = self.prefill(conv, prompt)?;
        let prefill_time = t0.elapsed();
        let t1 = Instant::now();
        let mut decoder = StreamDecoder::new(&self.tokenizer);
        let mut text = String::new();
        let mut ids = Vec::new();
        let mut stop = StopReason::MaxTokens;
        while ids.len() < max_tokens {
            // The repeat penalty looks at this reply only: over the
            // conversation it also hit the prompt, so the tokens of a
            // document's policy number were penalised exactly when the
            // answer had to quote them (SmolLM2 wrote "95421" for
            // "KX-88231" with the excerpt right above the question).
            let id = sampler.sample(&mut logits, &ids);
            if self.stop_tokens.contains(&id) {
                stop = StopReason::EndOfTurn;
                break;
            }
            ids.push(id);
            let piece = decoder.push(id);
            text.push_str(&piece);
            if !piece.is_empty() && on_text(&piece).is_break() {
                stop = StopReason::Cancelled;
                break;
            }
            if ids.len() == max_tokens {
                break;
            }
            if conv.cache.len() >= ctx {
                stop = StopReason::ContextFull;
                break;
            }
            self.model
                .forward_into(&[id], &mut conv.cache, Logits::Last, &mut logits)?;
            conv.tokens.push(id);
        }
        let tail = decoder.finish();
        if !tail.is_empty() {
            text.push_str(&tail);
            let _ = on_text(&tail);
        }
        Ok(Generation {
            text,
            token_ids: ids,
            prompt_tokens: prompt.len(),
            prefilled_tokens: prefilled,
            prefill_time,
            decode_time: t1.elapsed(),
            stop,
        })
    }
}

/// EOS plus the end-of-turn tokens the template writes after a message.
fn stop_tokens(tok: &Tokenizer, template: Option<&ChatTemplate>) -> Vec<TokenId> {
    let mut stops: Vec<TokenId> = tok.eos().into_iter().collect();
    let is_special = |id: TokenId| {
        matches!(
            tok.kind(id),
            Some(TokenKind::Control) | Some(TokenKind::UserDefined)
        )
    };
    // What the template writes right after an assistant message's content.
    if let Some(t) = template {
        const PROBE: &str = "\u{1}hearth-probe\u{1}";
        let msgs = [
            Message::new(Role::User, "hi"),
            Message::new(Role::Assistant, PROBE),
        ];
        if let Ok(r) = t.render(&msgs, false)
            && let Some(after) = r.split(PROBE).nth(1)
        {
            let ids = tok.encode(after, false, true);
            if let Some(&first) = ids.first()
                && is_special(first)
            {
                stops.push(first);
            }
        }
    }
    for text in END_OF_TURN_TEXTS {
        if let Some(id) = tok.token_id(text)
            && is_special(id)
        {
            stops.push(id);
        }
    }
    stops.sort_unstable();
    stops.dedup();
    stops
}

/// A multi-turn chat over one conversation: keeps the messages, re-renders
/// the template each turn and lets [`Engine::prefill`] reuse the cached
/// prefix, so only the new turn is computed. When the context would
/// overflow, the oldest turns are dropped (the system prompt stays).
pub struct Chat {
    system: Option<String>,
    turns: Vec<Message>,
    conv: Conversation,
}

impl Chat {
    pub fn new(engine: &Engine, system: Option<String>) -> Result<Self, GenerateError> {
        Ok(Self {
            system,
            turns: Vec::new(),
            conv: engine.new_conversation()?,
        })
    }

    pub fn reset(&mut self) {
        self.turns.clear();
        self.conv.clear();
    }

    pub fn turns(&self) -> &[Message] {
        &self.turns
    }

    fn messages(&self) -> Vec<Message> {
        let mut m: Vec<Message> = self
            .system
            .iter()
            .map(|s| Message::new(Role::System, s.clone()))
            .collect();
        m.extend(self.turns.iter().cloned());
        m
    }

    /// Adds a user message, generates the reply and records it.
    /// `material` (retrieved excerpts) is sent ahead of the user's words in
    /// this turn only: the history keeps the bare message, so old excerpts
    /// do not crowd the context (the next turn re-reads from this message).
    pub fn send(
        &mut self,
        engine: &Engine,
        user: &str,
        material: Option<&str>,
        max_tokens: usize,
        sampler: &mut Sampler,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, GenerateError> {
        let sent = format!("{}{user}", material.unwrap_or_default());
        self.turns.push(Message::new(Role::User, sent));
        let ctx = engine.model().n_ctx();
        let budget = max_tokens.min(ctx / 2);
        let prompt = loop {
            let rendered = engine.render_chat(&self.messages(), true)?;
            let prompt = engine.tokenize_chat(&rendered);
            if prompt.len() + budget <= ctx || self.turns.len() <= 1 {
                break prompt;
            }
            // Drop the oldest exchange (user + assistant) and try again.
            let drop = self.turns.len().min(2).min(self.turns.len() - 1);
            self.turns.drain(..drop);
        };
        if prompt.len() + budget > ctx {
            self.turns.pop();
            return Err(GenerateError::PromptTooLong {
                prompt: prompt.len(),
                ctx,
            });
        }
        let g = engine.generate(
            &mut self.conv,
            &prompt,
            max_tokens.min(ctx - prompt.len()),
            sampler,
            on_text,
        );
        let g = match g {
            Ok(g) => g,
            Err(e) => {
                self.turns.pop();
                return Err(e);
            }
        };
        if let Some(last) = self.turns.last_mut() {
            *last = Message::new(Role::User, user);
        }
        self.turns
            .push(Message::new(Role::Assistant, g.text.trim()));
        Ok(g)
    }
}
