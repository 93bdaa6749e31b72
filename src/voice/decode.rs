//! Turning a note's features into text the way faster-whisper 1.2 does with
//! `beam_size=1, without_timestamps=True, temperature=0`: 30 s windows
//! (`seek` advancing by the window), language detection on the first window
//! (the language tokens' logits after `<|startoftranscript|>`), the prompt
//! `[<|startofprev|> previous text tokens]* <|sot|> <|lang|> <|transcribe|>
//! <|notimestamps|>`, greedy decoding with the config's suppress lists (and
//! the blank/EOT ban on the first step), and the no-speech check: a window
//! whose `<|nospeech|>` probability is over 0.6 and whose average log
//! probability is at most −1 gives no text. One addition: a window whose
//! audio is below −70 dBFS (digital silence, in which Whisper base hears
//! "you") is skipped without running the model.
//!
//! Owns the decoding strategy; must not read files or know audio formats.

use super::mel::{Mel, WINDOW_FRAMES};
use super::whisper::{DecoderState, Whisper};

/// faster-whisper's defaults.
const NO_SPEECH_THRESHOLD: f32 = 0.6;
const LOG_PROB_THRESHOLD: f32 = -1.0;

/// Token ids the decoder needs (read from the tokenizer, not assumed).
#[derive(Debug, Clone)]
pub struct Specials {
    pub eot: u32,
    pub sot: u32,
    pub sot_prev: u32,
    pub transcribe: u32,
    pub no_speech: u32,
    pub no_timestamps: u32,
    /// Language tokens and their codes (`en`, `de`, …), in the config's order.
    pub languages: Vec<(u32, String)>,
    pub suppress: Vec<u32>,
    pub suppress_begin: Vec<u32>,
}

/// What one window gave.
#[derive(Debug, Clone, Default)]
pub struct WindowResult {
    pub tokens: Vec<u32>,
    pub no_speech_prob: f32,
    pub avg_logprob: f32,
    pub skipped: bool,
}

/// The decoded note.
#[derive(Debug, Clone, Default)]
pub struct Decoded {
    /// Text tokens of the windows kept, in order.
    pub tokens: Vec<u32>,
    /// Per window, its tokens (empty when skipped as no speech).
    pub windows: Vec<WindowResult>,
    pub language: String,
    pub encode_s: f64,
    pub decode_s: f64,
}

/// `log softmax(logits)[id]`, in f64 (suppressed logits are −∞ and add 0).
fn log_prob(logits: &[f32], id: usize) -> f32 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let sum: f64 = logits.iter().map(|&x| ((x - max) as f64).exp()).sum();
    ((logits[id] - max) as f64 - sum.ln()) as f32
}

/// The language whose token scores highest after `<|startoftranscript|>`.
fn best_language(sp: &Specials, sot_logits: &[f32]) -> usize {
    sp.languages
        .iter()
        .enumerate()
        .max_by(|a, b| sot_logits[a.1.0 as usize].total_cmp(&sot_logits[b.1.0 as usize]))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

/// Greedy decoding of one window from a state that holds the whole
/// prompt; `logits` are those after its last token and `sot_logits` those
/// after `<|startoftranscript|>`.
fn greedy(
    model: &Whisper,
    sp: &Specials,
    state: &mut DecoderState,
    mut logits: Vec<f32>,
    sot_logits: &[f32],
    cancel: &dyn Fn() -> bool,
) -> WindowResult {
    let no_speech_prob = log_prob(sot_logits, sp.no_speech as usize).exp();
    let mut tokens = Vec::new();
    let mut sum_logprob = 0f32;
    let ctx = model.dims.text_ctx;
    loop {
        for &t in &sp.suppress {
            logits[t as usize] = f32::NEG_INFINITY;
        }
        if tokens.is_empty() {
            for &t in &sp.suppress_begin {
                logits[t as usize] = f32::NEG_INFINITY;
            }
        }
        let next = crate::llm::sampler::greedy(&logits);
        sum_logprob += log_prob(&logits, next as usize);
        if next == sp.eot || state.len >= ctx || cancel() {
            break;
        }
        tokens.push(next);
        logits = model.decode(state, &[next], &[0]).remove(0);
    }
    let avg_logprob = sum_logprob / (tokens.len() + 1) as f32;
    let skipped = no_speech_prob > NO_SPEECH_THRESHOLD && avg_logprob <= LOG_PROB_THRESHOLD;
    WindowResult {
        tokens,
        no_speech_prob,
        avg_logprob,
        skipped,
    }
}

/// Decodes every window of `mel`. `language` is a code from
/// [`Specials::languages`] or `None` to detect it on the first window.
/// `cancel` is polled between tokens (a shutdown).
pub fn run(
    model: &Whisper,
    sp: &Specials,
    mel: &Mel,
    language: Option<usize>,
    quiet: &[bool],
    cancel: &dyn Fn() -> bool,
) -> Decoded {
    let content = mel.content_frames();
    let mut out = Decoded::default();
    let mut lang = language;
    let mut seek = 0;
    let half_ctx = model.dims.text_ctx / 2;
    while seek < content && !cancel() {
        let len = (content - seek).min(WINDOW_FRAMES);
        if quiet.get(seek / WINDOW_FRAMES).copied().unwrap_or(false) {
            // Digital silence: Whisper would hear "you" in it (faster-whisper
            // does); nothing was said, so nothing is decoded.
            out.windows.push(WindowResult {
                no_speech_prob: 1.0,
                skipped: true,
                ..WindowResult::default()
            });
            seek += len;
            continue;
        }
        let window = mel.window(seek, len);
        let t0 = std::time::Instant::now();
        let enc = model.encode(&window);
        out.encode_s += t0.elapsed().as_secs_f64();
        let t1 = std::time::Instant::now();
        let mut state = model.start(&enc);
        let previous: &[u32] = &out.tokens[out.tokens.len().saturating_sub(half_ctx - 1)..];
        let mut prompt = Vec::new();
        if !previous.is_empty() {
            prompt.push(sp.sot_prev);
            prompt.extend_from_slice(previous);
        }
        let sot_at = prompt.len();
        prompt.push(sp.sot);
        // The logits after SOT give the language (when not set) and the
        // no-speech probability; the rest of the prompt depends on the first.
        let sot_logits = model.decode(&mut state, &prompt, &[sot_at]).remove(0);
        let code = sp.languages[*lang.get_or_insert_with(|| best_language(sp, &sot_logits))].0;
        let logits = model
            .decode(&mut state, &[code, sp.transcribe, sp.no_timestamps], &[2])
            .remove(0);
        let result = greedy(model, sp, &mut state, logits, &sot_logits, cancel);
        out.decode_s += t1.elapsed().as_secs_f64();
        if !result.skipped {
            out.tokens.extend_from_slice(&result.tokens);
        }
        out.windows.push(result);
        seek += len;
    }
    out.language = sp.languages[lang.unwrap_or(0)].1.clone();
    out
}
