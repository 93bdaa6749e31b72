//! Hybrid retrieval over the store: full-text (FTS5 BM25) and semantic
//! (cosine over the chunk embeddings) rankings fused by reciprocal rank,
//! reported per document (or chat) with a highlighted snippet.
//!
//! The vectors are loaded once into a contiguous int8 matrix (one scale
//! per row) and scanned; the best candidates are rescored with their f32
//! vectors. Owns no SQL (the store answers) and no model (the embedder
//! does).

use std::collections::HashMap;

use crate::embed::{EmbedError, Embedder};
use crate::store::{Source, Store, StoreError};

/// Candidates taken from each ranking before fusion.
const CANDIDATES: usize = 50;
/// Reciprocal-rank-fusion constant (the usual 60).
const RRF_K: f64 = 60.0;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

/// One ranked result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hit {
    /// The document's absolute path, or `chat:<id>` for messages.
    pub path: String,
    pub score: f64,
    pub snippet: String,
    /// The best chunk's text, whole (for answers with sources).
    #[serde(skip)]
    pub text: String,
    /// Cosine similarity of that chunk to the query (0 when it came from
    /// the full-text ranking alone).
    #[serde(skip)]
    pub cosine: f32,
}

/// The chunk embeddings as int8 rows with one scale each.
pub struct VectorIndex {
    ids: Vec<i64>,
    rows: Vec<i8>,
    scales: Vec<f32>,
    dim: usize,
}

impl VectorIndex {
    pub fn load(store: &Store, dim: usize) -> Result<Self, StoreError> {
        let mut ix = Self {
            ids: Vec::new(),
            rows: Vec::new(),
            scales: Vec::new(),
            dim,
        };
        store.for_each_embedding(|id, v| {
            if v.len() == dim {
                let (q, s) = quantize(v);
                ix.ids.push(id);
                ix.rows.extend_from_slice(&q);
                ix.scales.push(s);
            }
        })?;
        Ok(ix)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The `n` chunk ids most similar to `query` (approximate, int8).
    pub fn nearest(&self, query: &[f32], n: usize) -> Vec<(i64, f32)> {
        let (q, qs) = quantize(query);
        let mut scored: Vec<(i64, f32)> = self
            .rows
            .chunks_exact(self.dim)
            .zip(&self.ids)
            .zip(&self.scales)
            .map(|((row, &id), &s)| {
                let dot: i32 = row.iter().zip(&q).map(|(&a, &b)| a as i32 * b as i32).sum();
                (id, dot as f32 * s * qs)
            })
            .collect();
        let n = n.min(scored.len());
        if n == 0 {
            return Vec::new();
        }
        scored.select_nth_unstable_by(n - 1, |a, b| b.1.total_cmp(&a.1));
        scored.truncate(n);
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored
    }
}

/// Symmetric int8 quantization of one vector.
fn quantize(v: &[f32]) -> (Vec<i8>, f32) {
    let amax = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if amax > 0.0 { amax / 127.0 } else { 1.0 };
    (v.iter().map(|x| (x / scale).round() as i8).collect(), scale)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// An FTS5 expression matching any word of `query` (each quoted, so
/// nothing the user types is FTS syntax).
pub fn fts_expression(query: &str) -> Option<String> {
    let words: Vec<String> = words(query)
        .into_iter()
        .map(|w| format!("\"{}\"", w.replace('"', "")))
        .collect();
    (!words.is_empty()).then(|| words.join(" OR "))
}

fn words(query: &str) -> Vec<String> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Words too common to anchor or mark a snippet.
const STOPWORDS: &[&str] = &[
    "the", "and", "for", "with", "what", "where", "when", "who", "how", "are", "was", "were",
    "this", "that", "from", "into", "has", "have", "you", "your", "der", "die", "das", "und",
];

/// A snippet of `text` around the first query word, words marked `**…**`.
pub fn snippet(text: &str, query: &str, width: usize) -> String {
    let ws: Vec<String> = words(query)
        .into_iter()
        .filter(|w| w.len() > 2 && !STOPWORDS.contains(&w.as_str()))
        .collect();
    let lower = text.to_lowercase();
    let at = ws
        .iter()
        .filter_map(|w| lower.find(w.as_str()))
        .min()
        .unwrap_or(0);
    let mut start = at.saturating_sub(width / 3);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + width).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    let piece = text[start..end]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let marked: Vec<String> = piece
        .split(' ')
        .map(|tok| {
            let bare: String = tok.chars().filter(|c| c.is_alphanumeric()).collect();
            if ws.iter().any(|w| *w == bare.to_lowercase()) {
                format!("**{tok}**")
            } else {
                tok.to_string()
            }
        })
        .collect();
    let mut s = marked.join(" ");
    if start > 0 {
        s.insert(0, '…');
    }
    if end < text.len() {
        s.push('…');
    }
    s
}

/// Search state loaded once and reused across queries.
pub struct Searcher<'a> {
    store: &'a Store,
    embedder: &'a Embedder,
    vectors: VectorIndex,
}

impl<'a> Searcher<'a> {
    pub fn new(store: &'a Store, embedder: &'a Embedder) -> Result<Self, SearchError> {
        let vectors = VectorIndex::load(store, embedder.dim())?;
        Ok(Self {
            store,
            embedder,
            vectors,
        })
    }

    /// The `k` best documents or chats for `query`.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, SearchError> {
        let mut fused: HashMap<i64, f64> = HashMap::new();
        let mut cosines: HashMap<i64, f32> = HashMap::new();
        if let Some(expr) = fts_expression(query) {
            for (rank, h) in self.store.fts_search(&expr, CANDIDATES)?.iter().enumerate() {
                *fused.entry(h.chunk_id).or_default() += 1.0 / (RRF_K + rank as f64 + 1.0);
            }
        }
        if !self.vectors.is_empty() {
            let q = self.embedder.embed(&[query])?.pop().unwrap_or_default();
            let mut cands: Vec<(i64, f32)> = Vec::new();
            for (id, _) in self.vectors.nearest(&q, CANDIDATES) {
                if let Some(v) = self.store.embedding(id)? {
                    cands.push((id, dot(&v, &q)));
                }
            }
            cands.sort_by(|a, b| b.1.total_cmp(&a.1));
            cosines.extend(cands.iter().copied());
            for (rank, (id, _)) in cands.iter().enumerate() {
                *fused.entry(*id).or_default() += 1.0 / (RRF_K + rank as f64 + 1.0);
            }
        }
        let mut chunks: Vec<(i64, f64)> = fused.into_iter().collect();
        chunks.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        // Best chunk per document (or chat).
        let mut hits: Vec<Hit> = Vec::new();
        let mut seen: HashMap<String, ()> = HashMap::new();
        for (id, score) in chunks {
            let Some(row) = self.store.chunk(id)? else {
                continue;
            };
            let path = match &row.source {
                Source::Document { path, .. } => path.display().to_string(),
                Source::Message { chat_id, .. } => format!("chat:{chat_id}"),
            };
            if seen.insert(path.clone(), ()).is_some() {
                continue;
            }
            hits.push(Hit {
                path,
                score,
                snippet: snippet(&row.text, query, 160),
                text: row.text,
                cosine: cosines.get(&id).copied().unwrap_or(0.0),
            });
            if hits.len() == k {
                break;
            }
        }
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_expressions_quote_every_word() {
        assert_eq!(
            fts_expression("router password?").unwrap(),
            "\"router\" OR \"password\""
        );
        assert_eq!(
            fts_expression("NEAR(\"a\" b)").unwrap(),
            "\"near\" OR \"a\" OR \"b\""
        );
        assert!(fts_expression(" ?! ").is_none());
    }

    #[test]
    fn snippets_mark_query_words() {
        let s = snippet(
            "The spare key is under the blue flowerpot by the door.",
            "where is the flowerpot",
            200,
        );
        assert_eq!(
            s,
            "The spare key is under the blue **flowerpot** by the door."
        );
    }

    #[test]
    fn int8_nearest_ranks_like_cosine() {
        let ix = VectorIndex {
            ids: vec![1, 2, 3],
            rows: [
                quantize(&[1.0, 0.0]).0,
                quantize(&[0.6, 0.8]).0,
                quantize(&[0.0, 1.0]).0,
            ]
            .concat(),
            scales: vec![
                quantize(&[1.0, 0.0]).1,
                quantize(&[0.6, 0.8]).1,
                quantize(&[0.0, 1.0]).1,
            ],
            dim: 2,
        };
        let got: Vec<i64> = ix
            .nearest(&[0.0, 1.0], 3)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(got, vec![3, 2, 1]);
    }
}
