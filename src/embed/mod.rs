//! The sentence embedder: all-MiniLM-L6-v2 (BERT), as sentence-transformers
//! runs it: WordPiece tokens truncated at 256 (special tokens included),
//! mean pooling over the tokens, L2 normalisation. Texts are grouped into
//! batches whose tokens are packed without padding ([`bert`]).
//!
//! Owns the embedding model; must not touch the store or the network.

pub(crate) mod bert;

use std::path::{Path, PathBuf};

use tokenizers::{Tokenizer, TruncationParams};

use bert::{Bert, BertConfig};

/// Word pieces per text, special tokens included (sentence-transformers'
/// `max_seq_length` for this model).
pub const MAX_TOKENS: usize = 256;

/// Tokens per forward pass: big enough for efficient matrix products,
/// small enough to keep the activations (~12 KB per token) in cache-sized
/// pieces.
const BATCH_TOKENS: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedder file {path} is missing: run `hearth models pull minilm` or scripts/setup.sh")]
    Missing { path: PathBuf },
    #[error("embedder file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

/// A loaded sentence embedder.
pub struct Embedder {
    model: Bert,
    /// Truncates at [`MAX_TOKENS`], as the model is fed.
    tokenizer: Tokenizer,
    /// The same without truncation, to measure text.
    counter: Tokenizer,
    dim: usize,
}

impl Embedder {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let file = |name: &str| {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(EmbedError::Missing { path: p })
            }
        };
        let (weights, config_path, tok_path) = (
            file("model.safetensors")?,
            file("config.json")?,
            file("tokenizer.json")?,
        );
        let corrupt = |path: &Path, reason: String| EmbedError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let config: BertConfig = std::fs::read_to_string(&config_path)
            .map_err(|e| corrupt(&config_path, e.to_string()))
            .and_then(|s| {
                serde_json::from_str(&s).map_err(|e| corrupt(&config_path, e.to_string()))
            })?;
        let model = Bert::load(&weights, config).map_err(|reason| corrupt(&weights, reason))?;
        let dim = model.hidden_size();
        let mut counter =
            Tokenizer::from_file(&tok_path).map_err(|e| corrupt(&tok_path, e.to_string()))?;
        counter
            .with_truncation(None)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        counter.with_padding(None);
        let mut tokenizer = counter.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(None);
        Ok(Self {
            model,
            tokenizer,
            counter,
            dim,
        })
    }

    /// Vector length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Word-piece ids of `text` as the model sees it (with `[CLS]`/`[SEP]`,
    /// truncated at [`MAX_TOKENS`]).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Word pieces `text` needs without truncation or special tokens (for
    /// sizing chunks).
    pub fn count_tokens(&self, text: &str) -> Result<usize, EmbedError> {
        let enc = self
            .counter
            .encode(text, false)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(enc.len())
    }

    /// Unit-length embeddings of `texts`, in order.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let ids: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| self.token_ids(t.as_ref()))
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        let mut start = 0;
        while start < ids.len() {
            let mut end = start + 1;
            let mut tokens = ids[start].len();
            while end < ids.len() && tokens + ids[end].len() <= BATCH_TOKENS {
                tokens += ids[end].len();
                end += 1;
            }
            let batch: Vec<&[u32]> = ids[start..end].iter().map(|v| &v[..]).collect();
            let hidden = self.model.forward(&batch);
            let mut row = 0;
            for t in &batch {
                out.push(mean_pool(
                    &hidden[row * self.dim..(row + t.len()) * self.dim],
                    self.dim,
                ));
                row += t.len();
            }
            start = end;
        }
        Ok(out)
    }
}

/// The mean of `rows` (`[n, dim]`), scaled to unit length.
fn mean_pool(rows: &[f32], dim: usize) -> Vec<f32> {
    let mut v = vec![0f32; dim];
    let n = (rows.len() / dim).max(1);
    for r in rows.chunks_exact(dim) {
        for (a, b) in v.iter_mut().zip(r) {
            *a += b;
        }
    }
    v.iter_mut().for_each(|a| *a /= n as f32);
    let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|a| *a /= norm);
    v
}
