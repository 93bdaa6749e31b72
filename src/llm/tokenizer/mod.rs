//! Tokenizers built from GGUF metadata, matching llama.cpp token for token.
//!
//! Two families: byte-level BPE (`tokenizer.ggml.model = gpt2`, pre-tokenizer
//! chosen from `tokenizer.ggml.pre`) in [`bpe`], and SentencePiece with scores
//! and byte fallback (`llama`, used by Llama 1/2 and Gemma) in [`spm`]. This
//! module owns the vocabulary, special-token partitioning and decoding; it
//! must not know about models or chat templates.

mod bpe;
mod spm;

use std::collections::HashMap;

use candle_core::quantized::gguf_file;

/// How llama.cpp classifies a vocabulary entry (`tokenizer.ggml.token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenKind {
    fn from_gguf(v: i32) -> Self {
        match v {
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Normal,
        }
    }
}

/// A token id in the model's vocabulary.
pub type TokenId = u32;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("GGUF metadata key `{0}` is missing or has the wrong type")]
    Metadata(String),
    #[error("unsupported tokenizer model `{0}` (supported: gpt2, llama)")]
    UnsupportedModel(String),
    #[error("unsupported BPE pre-tokenizer `{0}`")]
    UnsupportedPre(String),
    #[error("invalid pre-tokenizer regex: {0}")]
    Regex(String),
}

enum Algorithm {
    Bpe(bpe::Bpe),
    Spm(spm::Spm),
}

/// A vocabulary plus the algorithm that maps text onto it.
pub struct Tokenizer {
    tokens: Vec<String>,
    kinds: Vec<TokenKind>,
    scores: Vec<f32>,
    token_to_id: HashMap<String, TokenId>,
    /// Control, user-defined and unknown tokens, longest text first: the order
    /// in which llama.cpp splits them out of raw text.
    specials: Vec<TokenId>,
    bos: Option<TokenId>,
    eos: Option<TokenId>,
    add_bos: bool,
    algorithm: Algorithm,
}

fn meta<'a>(md: &'a HashMap<String, gguf_file::Value>, key: &str) -> Option<&'a gguf_file::Value> {
    md.get(key)
}

fn meta_u32(md: &HashMap<String, gguf_file::Value>, key: &str) -> Option<u32> {
    meta(md, key).and_then(|v| {
        v.to_u32()
            .ok()
            .or_else(|| v.to_i32().ok().map(|x| x as u32))
    })
}

fn meta_bool(md: &HashMap<String, gguf_file::Value>, key: &str) -> Option<bool> {
    meta(md, key).and_then(|v| v.to_bool().ok())
}

fn meta_strings(
    md: &HashMap<String, gguf_file::Value>,
    key: &str,
) -> Result<Vec<String>, TokenizerError> {
    let arr = meta(md, key)
        .and_then(|v| v.to_vec().ok())
        .ok_or_else(|| TokenizerError::Metadata(key.to_string()))?;
    arr.iter()
        .map(|v| {
            v.to_string()
                .cloned()
                .map_err(|_| TokenizerError::Metadata(key.to_string()))
        })
        .collect()
}

/// Where a piece of input text stands after special tokens were split out.
enum Fragment<'a> {
    Text(&'a str),
    Token(TokenId),
}

impl Tokenizer {
    /// Builds the tokenizer described by a GGUF file's `tokenizer.ggml.*` keys.
    pub fn from_gguf(md: &HashMap<String, gguf_file::Value>) -> Result<Self, TokenizerError> {
        let model = meta(md, "tokenizer.ggml.model")
            .and_then(|v| v.to_string().ok())
            .ok_or_else(|| TokenizerError::Metadata("tokenizer.ggml.model".into()))?
            .clone();
        let tokens = meta_strings(md, "tokenizer.ggml.tokens")?;
        let n = tokens.len();
        let kinds: Vec<TokenKind> = match meta(md, "tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .map_err(|_| TokenizerError::Metadata("tokenizer.ggml.token_type".into()))?
                .iter()
                .map(|t| TokenKind::from_gguf(t.to_i32().unwrap_or(1)))
                .collect(),
            None => vec![TokenKind::Normal; n],
        };
        let scores: Vec<f32> = match meta(md, "tokenizer.ggml.scores") {
            Some(v) => v
                .to_vec()
                .map_err(|_| TokenizerError::Metadata("tokenizer.ggml.scores".into()))?
                .iter()
                .map(|s| s.to_f32().unwrap_or(0.0))
                .collect(),
            None => vec![0.0; n],
        };
        if kinds.len() != n || scores.len() != n {
            return Err(TokenizerError::Metadata(
                "tokenizer.ggml.token_type/scores length".into(),
            ));
        }
        let mut token_to_id = HashMap::with_capacity(n);
        for (i, t) in tokens.iter().enumerate() {
            token_to_id.entry(t.clone()).or_insert(i as TokenId);
        }
        let mut specials: Vec<TokenId> = (0..n as TokenId)
            .filter(|&i| {
                matches!(
                    kinds[i as usize],
                    TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown
                ) && !tokens[i as usize].is_empty()
            })
            .collect();
        specials.sort_by(|&a, &b| {
            tokens[b as usize]
                .len()
                .cmp(&tokens[a as usize].len())
                .then(a.cmp(&b))
        });

        let algorithm = match model.as_str() {
            "gpt2" => {
                let merges = meta_strings(md, "tokenizer.ggml.merges")?;
                let pre = meta(md, "tokenizer.ggml.pre")
                    .and_then(|v| v.to_string().ok())
                    .map(String::as_str)
                    .unwrap_or("default");
                Algorithm::Bpe(bpe::Bpe::new(&merges, pre)?)
            }
            "llama" => {
                let add_space_prefix =
                    meta_bool(md, "tokenizer.ggml.add_space_prefix").unwrap_or(true);
                Algorithm::Spm(spm::Spm::new(&token_to_id, add_space_prefix))
            }
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };
        let default_add_bos = matches!(algorithm, Algorithm::Spm(_));
        Ok(Self {
            bos: meta_u32(md, "tokenizer.ggml.bos_token_id"),
            eos: meta_u32(md, "tokenizer.ggml.eos_token_id"),
            add_bos: meta_bool(md, "tokenizer.ggml.add_bos_token").unwrap_or(default_add_bos),
            tokens,
            kinds,
            scores,
            token_to_id,
            specials,
            algorithm,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn bos(&self) -> Option<TokenId> {
        self.bos
    }

    pub fn eos(&self) -> Option<TokenId> {
        self.eos
    }

    /// Whether `encode(.., add_special = true)` prepends BOS.
    pub fn adds_bos(&self) -> bool {
        self.add_bos
    }

    pub fn kind(&self, id: TokenId) -> Option<TokenKind> {
        self.kinds.get(id as usize).copied()
    }

    pub fn token_text(&self, id: TokenId) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    pub fn token_id(&self, text: &str) -> Option<TokenId> {
        self.token_to_id.get(text).copied()
    }

    /// Tokenizes `text`. `add_special` prepends BOS when the vocabulary asks
    /// for it; `parse_special` lets control-token text (e.g. `<|im_start|>`)
    /// become that token. User-defined tokens are always split out, as in
    /// llama.cpp.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<TokenId> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special
            && self.add_bos
            && let Some(bos) = self.bos
        {
            out.push(bos);
        }
        let fragments = self.partition(text, parse_special);
        let mut prev_special = true;
        for fragment in fragments {
            match fragment {
                Fragment::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Fragment::Text(t) => {
                    match &self.algorithm {
                        Algorithm::Bpe(b) => b.encode(t, &self.token_to_id, &mut out),
                        Algorithm::Spm(s) => {
                            s.encode(t, prev_special, &self.token_to_id, &self.scores, &mut out)
                        }
                    }
                    prev_special = false;
                }
            }
        }
        out
    }

    /// Splits special-token text out of `text`, longest token first.
    fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let mut fragments = vec![Fragment::Text(text)];
        for &id in &self.specials {
            let kind = self.kinds[id as usize];
            if !parse_special && matches!(kind, TokenKind::Control | TokenKind::Unknown) {
                continue;
            }
            let needle = self.tokens[id as usize].as_str();
            if !fragments
                .iter()
                .any(|f| matches!(f, Fragment::Text(t) if t.contains(needle)))
            {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for f in fragments {
                match f {
                    Fragment::Text(mut t) => {
                        while let Some(pos) = t.find(needle) {
                            if pos > 0 {
                                next.push(Fragment::Text(&t[..pos]));
                            }
                            next.push(Fragment::Token(id));
                            t = &t[pos + needle.len()..];
                        }
                        if !t.is_empty() {
                            next.push(Fragment::Text(t));
                        }
                    }
                    tok => next.push(tok),
                }
            }
            fragments = next;
        }
        fragments
    }

    /// The bytes a token stands for when decoded. Control tokens decode to
    /// nothing unless `special` is set.
    pub fn token_bytes(&self, id: TokenId, special: bool) -> Vec<u8> {
        let Some(text) = self.tokens.get(id as usize) else {
            return Vec::new();
        };
        match self.kinds[id as usize] {
            TokenKind::Control | TokenKind::Unknown | TokenKind::Unused => {
                if special {
                    text.as_bytes().to_vec()
                } else {
                    Vec::new()
                }
            }
            TokenKind::UserDefined => text.as_bytes().to_vec(),
            TokenKind::Byte | TokenKind::Normal => match &self.algorithm {
                Algorithm::Bpe(_) => bpe::decode_piece(text),
                Algorithm::Spm(_) => spm::decode_piece(text),
            },
        }
    }

    /// Decodes ids to text (lossy for invalid UTF-8), skipping control tokens.
    pub fn decode(&self, ids: &[TokenId]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| self.token_bytes(id, false))
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Turns a stream of token ids into text without ever splitting a UTF-8
/// character: bytes of an incomplete character wait for the next token.
pub struct StreamDecoder<'t> {
    tokenizer: &'t Tokenizer,
    pending: Vec<u8>,
}

impl<'t> StreamDecoder<'t> {
    pub fn new(tokenizer: &'t Tokenizer) -> Self {
        Self {
            tokenizer,
            pending: Vec::new(),
        }
    }

    /// Feeds one token; returns the text that is now complete.
    pub fn push(&mut self, id: TokenId) -> String {
        self.pending
            .extend_from_slice(&self.tokenizer.token_bytes(id, false));
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) => match e.error_len() {
                // Invalid bytes (not just incomplete): emit them replaced.
                Some(_) => self.pending.len(),
                None => e.valid_up_to(),
            },
        };
        let rest = self.pending.split_off(valid);
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending = rest;
        out
    }

    /// Whatever bytes are still held, replaced if invalid.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}
