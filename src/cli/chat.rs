//! `hearth chat` (a streaming REPL) and `hearth ask` (one shot, optionally
//! JSON). Both drive [`crate::llm::Engine`] directly on this thread.

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;

use clap::Args;

use super::{GlobalArgs, ModelArgs, Outcome, load_engine};
use crate::llm::{Chat, Conversation, Engine, Generation, Message, Role, Sampler, SamplerConfig};

/// The system prompt when none is given.
/// Kept as it was: adding "Answer briefly and directly." lifted Qwen2.5's
/// writing tasks from 3/5 to 4/5 in `benches/answers.rs`, but made
/// SmolLM2-135M answer "What is the capital of Germany?" in broken German.
const DEFAULT_SYSTEM: &str =
    "You are Hearth, a helpful assistant that runs offline on its owner's home computer.";

#[derive(Debug, Clone, Args)]
pub struct SamplingArgs {
    /// Sampling temperature; 0 = greedy (always the most likely token).
    /// Default: 0 when answering from your documents (small models copy
    /// facts faithfully only greedily), else 0.2
    #[arg(long, value_name = "T")]
    pub temperature: Option<f32>,
    /// Keep only the K most likely tokens (0 = off)
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Keep the most likely tokens up to this probability mass (1 = off)
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Drop tokens less likely than this fraction of the best one (0 = off)
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Penalty for tokens among the last 64 of the reply so far (1 = off;
    /// the prompt is not penalised, so quoting a document is not either)
    #[arg(long, default_value_t = 1.1)]
    pub repeat_penalty: f32,
    /// Random seed, for reproducible sampling
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Most tokens to generate per reply
    #[arg(short = 'n', long, default_value_t = 512, value_name = "N")]
    pub max_tokens: usize,
}

impl SamplingArgs {
    /// The sampler settings; `from_sources` picks the default temperature.
    fn config(&self, from_sources: bool) -> SamplerConfig {
        let temperature = self
            .temperature
            .unwrap_or(if from_sources { 0.0 } else { 0.2 });
        SamplerConfig {
            temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            // Greedy means greedy: no penalty reshuffling the argmax.
            repeat_penalty: if temperature <= 0.0 {
                1.0
            } else {
                self.repeat_penalty
            },
            repeat_last_n: 64,
            seed: self.seed,
        }
    }
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// System prompt
    #[arg(long, default_value = DEFAULT_SYSTEM)]
    pub system: String,
    /// Print tokens/s after every reply (toggle in the chat with /stats)
    #[arg(long)]
    pub stats: bool,
    /// Do not look in your indexed documents for answers
    #[arg(long)]
    pub no_rag: bool,
    /// Run the model in this process even when `hearth serve` is running
    /// (by default chat talks to the daemon when one answers on its socket)
    #[arg(long)]
    pub local: bool,
}

#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question (or, with --raw, the text to continue)
    pub prompt: String,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// System prompt
    #[arg(long, default_value = DEFAULT_SYSTEM)]
    pub system: String,
    /// Plain completion: no chat template (the only mode for base models)
    #[arg(long)]
    pub raw: bool,
    /// Print one JSON object: text, token_ids, token counts and timings
    #[arg(long)]
    pub json: bool,
    /// Do not look in your indexed documents for the answer
    #[arg(long)]
    pub no_rag: bool,
}

fn print_stats(g: &Generation) {
    eprintln!(
        "[{} prompt tokens ({} computed) at {:.1} t/s, {} generated at {:.1} t/s, stop: {:?}]",
        g.prompt_tokens,
        g.prefilled_tokens,
        g.prefill_tps(),
        g.token_ids.len(),
        g.decode_tps(),
        g.stop
    );
}

pub fn chat(g: &GlobalArgs, a: ChatArgs) -> anyhow::Result<Outcome> {
    if !a.local {
        let socket = g.socket()?;
        if let Some(remote) = super::remote::Remote::connect(&socket)? {
            return super::remote::chat(remote, &socket);
        }
    }
    let (name, engine) = load_engine(g, &a.model)?;
    if !engine.has_chat_template() {
        anyhow::bail!(
            "model `{name}` has no chat template (it is a base model); use `hearth ask --raw --model {name} TEXT`"
        );
    }
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!(
            "hearth chat with `{name}` ({} threads, context {}). /reset clears, /stats toggles speed, /exit quits.",
            crate::process::compute_threads(),
            engine.model().n_ctx()
        );
    }
    let memory = if a.no_rag { None } else { open_memory(g)? };
    let searcher = match &memory {
        Some((store, embedder)) => Some(crate::search::Searcher::new(store, embedder)?),
        None => None,
    };
    if interactive && searcher.is_some() {
        eprintln!("(answers look in your indexed documents; --no-rag turns that off)");
    }
    let system = match &searcher {
        Some(_) => crate::sources::chat_system_prompt(&a.system),
        None => a.system.clone(),
    };
    let mut chat = Chat::new(&engine, Some(system))?;
    let mut sampler = Sampler::new(a.sampling.config(searcher.is_some()));
    let mut show_stats = a.stats;
    let mut line = String::new();
    loop {
        if !super::read_turn(interactive, &mut line)? {
            break;
        }
        let input = line.trim();
        match input {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                chat.reset();
                eprintln!("(conversation cleared)");
                continue;
            }
            "/stats" => {
                show_stats = !show_stats;
                eprintln!("(stats {})", if show_stats { "on" } else { "off" });
                continue;
            }
            _ => {}
        }
        let sources = match &searcher {
            Some(s) => match s.search(input, 3) {
                Ok(hits) => Some(crate::sources::relevant(hits)),
                Err(e) => {
                    eprintln!("error: searching your documents: {e}");
                    None
                }
            },
            None => None,
        };
        let material = sources
            .as_deref()
            .map(|s| crate::sources::turn_material(s, &|t| engine.neutralize(t)));
        let mut out = std::io::stdout();
        let gen_result = chat.send(
            &engine,
            &engine.neutralize(input),
            material.as_deref(),
            a.sampling.max_tokens,
            &mut sampler,
            &mut |piece| {
                let _ = out.write_all(piece.as_bytes());
                let _ = out.flush();
                ControlFlow::Continue(())
            },
        );
        outln!();
        if gen_result.is_ok() {
            print_citations(sources.as_deref().unwrap_or_default())?;
        }
        match gen_result {
            Ok(reply) if show_stats => print_stats(&reply),
            Ok(_) => {}
            // One bad turn (e.g. a message longer than the context) does not
            // end the session.
            Err(e) => eprintln!("error: {e}"),
        }
    }
    Ok(Outcome::Ok)
}

#[derive(serde::Serialize)]
struct AskJson<'a> {
    model: &'a str,
    text: &'a str,
    /// The files the answer's sources came from, in citation order.
    sources: Vec<String>,
    token_ids: &'a [u32],
    prompt_tokens: usize,
    generated_tokens: usize,
    stop: crate::llm::StopReason,
    timings: Timings,
    sampling: &'a SamplerConfig,
}

#[derive(serde::Serialize)]
struct Timings {
    load_ms: f64,
    /// Searching the index for sources (0 without).
    retrieval_ms: f64,
    /// From the question (model loaded) to the first piece of the answer:
    /// retrieval, prompt building, prefill and the first decode step.
    first_token_ms: f64,
    prefill_ms: f64,
    decode_ms: f64,
    prefill_tokens_per_s: f64,
    decode_tokens_per_s: f64,
}

pub fn ask(g: &GlobalArgs, a: AskArgs) -> anyhow::Result<Outcome> {
    let (name, engine) = load_engine(g, &a.model)?;
    let asked = std::time::Instant::now();
    let sources = if a.raw || a.no_rag {
        Vec::new()
    } else {
        retrieve(g, &a.prompt)?
    };
    let retrieval = asked.elapsed();
    let prompt = build_prompt(&engine, &name, &a, &sources)?;
    let mut conv: Conversation = engine.new_conversation()?;
    let cfg = a.sampling.config(!sources.is_empty());
    let mut sampler = Sampler::new(cfg.clone());
    let max = a.sampling.max_tokens;
    let stream = !a.json;
    let mut out = std::io::stdout();
    let mut first_piece = None;
    let reply = engine.generate(&mut conv, &prompt, max, &mut sampler, &mut |piece| {
        first_piece.get_or_insert_with(|| asked.elapsed());
        if stream {
            let _ = out.write_all(piece.as_bytes());
            let _ = out.flush();
        }
        ControlFlow::Continue(())
    })?;
    if a.json {
        let j = AskJson {
            model: &name,
            text: &reply.text,
            sources: sources.iter().map(|h| h.path.clone()).collect(),
            token_ids: &reply.token_ids,
            prompt_tokens: reply.prompt_tokens,
            generated_tokens: reply.token_ids.len(),
            stop: reply.stop,
            timings: Timings {
                load_ms: engine.load_time().as_secs_f64() * 1000.0,
                retrieval_ms: retrieval.as_secs_f64() * 1000.0,
                first_token_ms: first_piece.unwrap_or_else(|| asked.elapsed()).as_secs_f64()
                    * 1000.0,
                prefill_ms: reply.prefill_time.as_secs_f64() * 1000.0,
                decode_ms: reply.decode_time.as_secs_f64() * 1000.0,
                prefill_tokens_per_s: reply.prefill_tps(),
                decode_tokens_per_s: reply.decode_tps(),
            },
            sampling: &cfg,
        };
        outln!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        outln!();
        print_citations(&sources)?;
    }
    Ok(Outcome::Ok)
}

/// `[1] ~/path` lines after an answer that used sources.
fn print_citations(sources: &[crate::search::Hit]) -> std::io::Result<()> {
    if !sources.is_empty() {
        outln!();
        for line in crate::sources::citations(sources) {
            outln!("{line}");
        }
    }
    Ok(())
}

/// The store and embedder, when there is an index with something in it
/// (none on a fresh install: then answers do not look for sources).
fn open_memory(
    g: &GlobalArgs,
) -> anyhow::Result<Option<(crate::store::Store, crate::embed::Embedder)>> {
    let paths = g.paths()?;
    if !paths.database().exists() {
        return Ok(None);
    }
    let store = crate::store::Store::open(&paths, crate::store::Create::Never)?;
    if store.stats()?.chunks == 0 {
        return Ok(None);
    }
    Ok(Some((store, super::load_embedder(g)?)))
}

/// Relevant chunks from the owner's index, or none when there is no index
/// or nothing relevant.
fn retrieve(g: &GlobalArgs, question: &str) -> anyhow::Result<Vec<crate::search::Hit>> {
    let Some((store, embedder)) = open_memory(g)? else {
        return Ok(Vec::new());
    };
    let searcher = crate::search::Searcher::new(&store, &embedder)?;
    Ok(crate::sources::relevant(searcher.search(question, 3)?))
}

fn build_prompt(
    engine: &Engine,
    name: &str,
    a: &AskArgs,
    sources: &[crate::search::Hit],
) -> anyhow::Result<Vec<u32>> {
    if a.raw {
        return Ok(engine.tokenize_raw(&a.prompt));
    }
    if !engine.has_chat_template() {
        anyhow::bail!(
            "model `{name}` has no chat template (it is a base model); add --raw to continue text instead"
        );
    }
    let system = if a.no_rag {
        a.system.clone()
    } else {
        crate::sources::system_prompt(&a.system, sources, &|t| engine.neutralize(t))
    };
    let user = if a.no_rag {
        engine.neutralize(&a.prompt)
    } else {
        crate::sources::question(&engine.neutralize(&a.prompt), sources, &|t| {
            engine.neutralize(t)
        })
    };
    let messages = [
        Message::new(Role::System, system),
        Message::new(Role::User, user),
    ];
    Ok(engine.tokenize_chat(&engine.render_chat(&messages, true)?))
}
