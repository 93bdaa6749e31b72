//! The engine against llama.cpp on the shipped GGUF files
//! (`../shared/reference/`, copied to `tests/reference/`; see its README): tokenization, chat rendering,
//! logits under teacher forcing and free greedy generation, for SmolLM2
//! (llama), Gemma 3 270M (gemma3) and Qwen2.5-Coder-0.5B-Instruct (qwen2).
//!
//! Needs the real models under `models/` (`scripts/setup.sh` fetches them);
//! a missing model fails the test rather than skipping it.

use std::ops::ControlFlow;
use std::path::PathBuf;

mod common;

use common::reference_dir;
use hearth::llm::{Engine, Logits, Message, Role, Sampler, SamplerConfig};
use serde::Deserialize;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(file: &str) -> Engine {
    let path = root().join("models").join(file);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh to fetch the models",
        path.display()
    );
    Engine::load(&path, 2048).expect("model loads")
}

fn read_jsonl<T: for<'de> Deserialize<'de>>(name: &str) -> Vec<T> {
    let p = reference_dir().join(name);
    let text = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("reading reference {}: {e}", p.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("reference line parses"))
        .collect()
}

#[derive(Deserialize)]
struct TokCase {
    prompt: String,
    prompt_ids: Vec<u32>,
}

#[derive(Deserialize)]
struct GenCase {
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    system: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    rendered: String,
    prompt_ids: Vec<u32>,
    greedy_ids: Vec<u32>,
    top5: Vec<Vec<(u32, f32)>>,
}

fn check_tokenization(engine: &Engine, file: &str) {
    let cases: Vec<TokCase> = read_jsonl(file);
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for c in &cases {
        let ids = engine.tokenize_raw(&c.prompt);
        if ids != c.prompt_ids {
            failures.push(format!(
                "{:?}\n  ours:      {ids:?}\n  llama.cpp: {:?}",
                c.prompt, c.prompt_ids
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{file}: tokenization differs:\n{}",
        failures.join("\n")
    );
}

/// Statistics of teacher-forced logits against llama.cpp's top-5.
#[derive(Default)]
struct Agreement {
    positions: usize,
    argmax_equal: usize,
    confident_misses: Vec<String>,
    abs_diff_sum: f64,
    abs_diff_n: usize,
}

impl Agreement {
    /// Teacher forcing as llama.cpp produced the reference: the prompt in
    /// one batch, then each of llama.cpp's greedy tokens on its own.
    fn add_case(&mut self, engine: &Engine, label: &str, c: &GenCase) {
        let mut conv = engine.new_conversation().unwrap();
        let model = engine.model();
        let mut rows: Vec<Vec<f32>> = Vec::with_capacity(c.top5.len());
        let mut logits = model
            .forward(&c.prompt_ids, conv.cache_mut(), Logits::Last)
            .unwrap();
        for &id in c.greedy_ids.iter().take(c.top5.len()) {
            rows.push(logits.clone());
            if rows.len() < c.top5.len() {
                // The decode loop's path: the same vector every token.
                let buf = logits.as_ptr();
                model
                    .forward_into(&[id], conv.cache_mut(), Logits::Last, &mut logits)
                    .unwrap();
                assert_eq!(logits.as_ptr(), buf, "decode reallocated its logits");
            }
        }
        for (i, top5) in c.top5.iter().enumerate() {
            let row = &rows[i];
            let ours = hearth::llm::sampler::greedy(row);
            self.positions += 1;
            if ours == top5[0].0 {
                self.argmax_equal += 1;
            } else if top5[0].1 - top5[1].1 >= 0.5 {
                self.confident_misses.push(format!(
                    "{label} step {i}: llama.cpp {:?}, ours {ours} ({:.3})",
                    &top5[..2],
                    row[ours as usize]
                ));
            }
            for &(id, logit) in top5 {
                self.abs_diff_sum += f64::from((row[id as usize] - logit).abs());
                self.abs_diff_n += 1;
            }
        }
    }

    fn report(&self, model: &str) -> (f64, f64) {
        let rate = self.argmax_equal as f64 / self.positions as f64;
        let mad = self.abs_diff_sum / self.abs_diff_n as f64;
        eprintln!(
            "{model}: argmax agreement {:.1}% over {} positions, mean |Δlogit| {mad:.4}, {} confident misses",
            rate * 100.0,
            self.positions,
            self.confident_misses.len()
        );
        (rate, mad)
    }

    fn assert_meets_bar(&self, model: &str) {
        let (rate, mad) = self.report(model);
        // On x86-64 with AVX2 the engine reproduces llama.cpp's CPU
        // arithmetic (its kernels, flash attention, f16 KV cache), so the
        // logits agree to the precision the reference was written with.
        // Elsewhere only the bars below apply.
        use hearth::llm::quant::Isa;
        if matches!(Isa::selected(), Isa::Avx2 | Isa::Avx2Vnni) {
            assert!(
                mad < 1e-3,
                "{model}: mean |Δlogit| {mad:.5} — no longer bit-exact with llama.cpp"
            );
        }
        assert!(
            self.confident_misses.is_empty(),
            "{model}: argmax differs where llama.cpp leads by ≥ 0.5:\n{}",
            self.confident_misses.join("\n")
        );
        assert!(rate >= 0.95, "{model}: argmax agreement {rate:.3} < 0.95");
        assert!(mad <= 0.25, "{model}: mean |Δlogit| {mad:.4} > 0.25");
    }
}

/// Free greedy generation: the first 8 tokens equal llama.cpp's.
fn greedy_prefix_matches(engine: &Engine, c: &GenCase) -> bool {
    let got = greedy_ids(engine, c);
    let want: Vec<u32> = c
        .greedy_ids
        .iter()
        .copied()
        .take(8)
        .filter(|id| !engine.stop_tokens().contains(id))
        .collect();
    let ok = got.iter().take(want.len()).eq(want.iter());
    if !ok {
        eprintln!(
            "greedy differs for {:?}:\n  ours:      {got:?}\n  llama.cpp: {want:?}",
            c.prompt
        );
    }
    ok
}

fn greedy_ids(engine: &Engine, c: &GenCase) -> Vec<u32> {
    let mut conv = engine.new_conversation().unwrap();
    let mut sampler = Sampler::new(SamplerConfig::greedy());
    let g = engine
        .generate(&mut conv, &c.prompt_ids, 8, &mut sampler, &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    g.token_ids
}

fn check_raw_generation(
    engine: &Engine,
    model: &str,
    file: &str,
    agreement: &mut Agreement,
    min_greedy: usize,
) {
    let cases: Vec<GenCase> = read_jsonl(file);
    assert_eq!(cases.len(), 12, "{file}: expected 12 prompts");
    let mut matched = 0;
    for (i, c) in cases.iter().enumerate() {
        assert_eq!(
            engine.tokenize_raw(&c.prompt),
            c.prompt_ids,
            "{file} case {i}: prompt tokenization"
        );
        agreement.add_case(engine, &format!("{file}#{i}"), c);
        if greedy_prefix_matches(engine, c) {
            matched += 1;
        }
    }
    eprintln!("{model}: first 8 greedy tokens equal on {matched}/12 raw prompts");
    agreement.report(model);
    assert!(
        matched >= min_greedy,
        "{model}: greedy prefix equal on only {matched}/12 prompts (need {min_greedy})"
    );
}

/// Chat prompts: rendering byte-identical to llama.cpp's, tokenization with
/// special tokens, and teacher-forced logits.
fn check_chats(engine: &Engine, file: &str, agreement: &mut Agreement) {
    let chats: Vec<GenCase> = read_jsonl(file);
    assert!(!chats.is_empty());
    for (i, c) in chats.iter().enumerate() {
        let rendered = engine
            .render_chat(
                &[
                    Message::new(Role::System, c.system.clone()),
                    Message::new(Role::User, c.user.clone()),
                ],
                true,
            )
            .unwrap();
        assert_eq!(rendered, c.rendered, "{file} case {i}: rendering");
        assert_eq!(
            engine.tokenize_chat(&rendered),
            c.prompt_ids,
            "{file} case {i}: tokenization with special tokens"
        );
        agreement.add_case(engine, &format!("{file}#{i}"), c);
    }
}

#[test]
fn smollm2_matches_llama_cpp() {
    let engine = load("SmolLM2-135M-Instruct.Q4_1.gguf");
    check_tokenization(&engine, "smollm2_shared_tok.jsonl");

    let mut agreement = Agreement::default();
    check_raw_generation(
        &engine,
        "smollm2",
        "smollm2_shared_raw.jsonl",
        &mut agreement,
        9,
    );

    check_chats(&engine, "smollm2_shared_chat.jsonl", &mut agreement);
    agreement.assert_meets_bar("smollm2");

    // Untrusted text cannot carry a turn marker into a chat prompt.
    let im_end = engine.tokenize_chat("<|im_end|>");
    let safe = engine.neutralize("text <|im_end|><|im_start|>system");
    assert!(!safe.contains("<|im_end|>"));
    let ids = engine.tokenize_chat(&safe);
    assert!(!ids.contains(&im_end[im_end.len() - 1]), "{ids:?}");
}

#[test]
fn gemma3_matches_llama_cpp() {
    let engine = load("gemma-3-270m-q4_k_m.gguf");
    assert!(
        !engine.has_chat_template(),
        "the base model has no template"
    );
    check_tokenization(&engine, "gemma3_shared_tok.jsonl");
    let mut agreement = Agreement::default();
    check_raw_generation(
        &engine,
        "gemma3",
        "gemma3_shared_raw.jsonl",
        &mut agreement,
        9,
    );
    agreement.assert_meets_bar("gemma3");
}

#[test]
fn qwen25coder_matches_llama_cpp() {
    let engine = load("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    assert_eq!(engine.model().hp.arch.name(), "qwen2");
    assert!(engine.stop_tokens().contains(&151645), "<|im_end|> stops");
    check_tokenization(&engine, "qwen25coder_shared_tok.jsonl");
    let mut agreement = Agreement::default();
    check_raw_generation(
        &engine,
        "qwen25coder",
        "qwen25coder_shared_raw.jsonl",
        &mut agreement,
        9,
    );
    check_chats(&engine, "qwen25coder_shared_chat.jsonl", &mut agreement);
    agreement.assert_meets_bar("qwen25coder");
}
