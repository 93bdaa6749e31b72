//! Voice notes heard on the box: Whisper (the CTranslate2 conversion
//! faster-whisper uses, e.g. `whisper-base`) run in-process on Hearth's
//! kernels. [`audio`] decodes Ogg/Opus and WAV to 16 kHz mono, [`mel`]
//! computes faster-whisper's log-mel features, [`whisper`] is the network,
//! [`decode`] the greedy decoding with language detection and the
//! no-speech check, and [`Transcriber`] ties them to a model directory
//! (`model.bin`, `config.json`, `tokenizer.json`).
//!
//! Owns speech-to-text; must not touch the store, the network or any file
//! but the model's and the audio it is handed.

pub mod audio;
pub mod ct2;
pub mod decode;
pub mod mel;
pub mod whisper;

use std::path::{Path, PathBuf};
use std::time::Instant;

pub use audio::AudioError;
use decode::Specials;
use whisper::{Weights, Whisper};

/// Why a model directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error(
        "speech model file {path} is missing: run `hearth models pull whisper-base` or scripts/setup.sh"
    )]
    Missing { path: PathBuf },
    #[error("speech model file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("unknown language {0:?}: use a Whisper language code such as en, de, fr, or auto")]
    Language(String),
}

/// Audio quieter than this (RMS, −70 dBFS) holds no speech.
const QUIET_RMS: f64 = 3.16e-4;

/// The model files Whisper needs inside its directory.
pub const FILES: [&str; 3] = ["model.bin", "config.json", "tokenizer.json"];

/// A note's length as people read it: `0:07`, `12:00`.
pub fn mm_ss(seconds: f64) -> String {
    let s = seconds.round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// A transcript of one note.
#[derive(Debug, Clone)]
pub struct Transcript {
    pub text: String,
    /// The language code heard (or the one asked for).
    pub language: String,
    /// Text token ids, for comparison with faster-whisper.
    pub tokens: Vec<u32>,
    pub duration_s: f64,
    /// Seconds spent on features, the encoder and the decoder.
    pub mel_s: f64,
    pub encode_s: f64,
    pub decode_s: f64,
    /// 30 s windows heard, and how many of them were silence.
    pub windows: usize,
    pub silent_windows: usize,
}

/// A loaded speech model.
pub struct Transcriber {
    model: Whisper,
    tokenizer: tokenizers::Tokenizer,
    specials: Specials,
    pub load_s: f64,
}

#[derive(serde::Deserialize)]
struct Config {
    lang_ids: Vec<u32>,
    suppress_ids: Vec<u32>,
    suppress_ids_begin: Vec<u32>,
}

impl Transcriber {
    /// Loads `dir/model.bin` (weights quantized to `Q8_0` unless
    /// `HEARTH_WHISPER_WEIGHTS=f16`), its config and tokenizer.
    pub fn load(dir: &Path) -> Result<Self, VoiceError> {
        let t0 = Instant::now();
        let read = |name: &str| -> Result<Vec<u8>, VoiceError> {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => VoiceError::Missing { path: path.clone() },
                _ => VoiceError::Corrupt {
                    path: path.clone(),
                    reason: e.to_string(),
                },
            })
        };
        let corrupt = |name: &str, reason: String| VoiceError::Corrupt {
            path: dir.join(name),
            reason,
        };
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| corrupt("config.json", e.to_string()))?;
        let tokenizer = tokenizers::Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| corrupt("tokenizer.json", e.to_string()))?;
        let id = |t: &str| {
            tokenizer
                .token_to_id(t)
                .ok_or_else(|| corrupt("tokenizer.json", format!("no token {t}")))
        };
        let mut languages = Vec::with_capacity(config.lang_ids.len());
        for &l in &config.lang_ids {
            let tok = tokenizer
                .id_to_token(l)
                .ok_or_else(|| corrupt("config.json", format!("language id {l} is not a token")))?;
            let code = tok
                .trim_start_matches("<|")
                .trim_end_matches("|>")
                .to_string();
            languages.push((l, code));
        }
        if languages.is_empty() {
            return Err(corrupt("config.json", "no language ids".into()));
        }
        let specials = Specials {
            eot: id("<|endoftext|>")?,
            sot: id("<|startoftranscript|>")?,
            sot_prev: id("<|startofprev|>")?,
            transcribe: id("<|transcribe|>")?,
            no_speech: id("<|nocaptions|>").or_else(|_| id("<|nospeech|>"))?,
            no_timestamps: id("<|notimestamps|>")?,
            languages,
            suppress: config.suppress_ids,
            suppress_begin: config.suppress_ids_begin,
        };
        let bytes = read("model.bin")?;
        let file = ct2::Ct2File::parse(&bytes).map_err(|e| corrupt("model.bin", e.to_string()))?;
        drop(bytes);
        let model = Whisper::from_file(file, Weights::from_env())
            .map_err(|e| corrupt("model.bin", e.to_string()))?;
        let vocab = model.dims.vocab as u32;
        let all = [specials.eot, specials.sot, specials.no_speech]
            .into_iter()
            .chain(specials.suppress.iter().copied())
            .chain(specials.suppress_begin.iter().copied())
            .chain(specials.languages.iter().map(|l| l.0));
        if all.into_iter().any(|t| t >= vocab) {
            return Err(corrupt(
                "config.json",
                "a token id is outside the vocabulary".into(),
            ));
        }
        Ok(Self {
            model,
            tokenizer,
            specials,
            load_s: t0.elapsed().as_secs_f64(),
        })
    }

    /// Bytes of weights held in memory.
    pub fn size_in_bytes(&self) -> usize {
        self.model.size_in_bytes()
    }

    /// Which language index `language` names (`None` or `auto`: detect).
    pub fn language(&self, language: Option<&str>) -> Result<Option<usize>, VoiceError> {
        match language {
            None | Some("auto") | Some("") => Ok(None),
            Some(code) => self
                .specials
                .languages
                .iter()
                .position(|l| l.1 == code)
                .map(Some)
                .ok_or_else(|| VoiceError::Language(code.to_string())),
        }
    }

    /// Transcribes 16 kHz mono `samples`. `cancel` is polled between
    /// tokens; a cancelled transcript holds what was heard so far.
    pub fn transcribe(
        &self,
        samples: &[f32],
        language: Option<usize>,
        cancel: &dyn Fn() -> bool,
    ) -> Transcript {
        let t0 = Instant::now();
        let mel = mel::log_mel(samples);
        let mel_s = t0.elapsed().as_secs_f64();
        // Which 30 s windows are digital silence (RMS under −70 dBFS).
        let quiet: Vec<bool> = samples
            .chunks(mel::WINDOW_FRAMES * mel::HOP)
            .map(|w| {
                let energy: f64 = w.iter().map(|&s| (s as f64) * (s as f64)).sum();
                (energy / w.len() as f64).sqrt() < QUIET_RMS
            })
            .collect();
        let decoded = decode::run(&self.model, &self.specials, &mel, language, &quiet, cancel);
        // Each window's text is decoded on its own, as faster-whisper's
        // segments are, then joined; the ids are the text tokens only.
        let mut tokens = Vec::new();
        let mut joined = String::new();
        for w in decoded.windows.iter().filter(|w| !w.skipped) {
            let ids: Vec<u32> = w
                .tokens
                .iter()
                .copied()
                .filter(|&t| t < self.specials.eot)
                .collect();
            joined.push_str(&self.tokenizer.decode(&ids, true).unwrap_or_default());
            tokens.extend(ids);
        }
        Transcript {
            text: joined.trim().to_string(),
            language: decoded.language,
            tokens,
            duration_s: samples.len() as f64 / audio::RATE as f64,
            mel_s,
            encode_s: decoded.encode_s,
            decode_s: decoded.decode_s,
            windows: decoded.windows.len(),
            silent_windows: decoded.windows.iter().filter(|w| w.skipped).count(),
        }
    }
}
