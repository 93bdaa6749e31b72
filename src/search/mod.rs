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
use crate::store::{ChunkHit, Source, Store, StoreError};

mod vectors;

pub use vectors::VectorIndex;

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
    /// The chat a message hit is from.
    #[serde(skip)]
    pub chat: Option<String>,
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
    "this", "that", "from", "into", "has", "have", "you", "your", "der", "die", "das", "und", "a",
    "an", "is", "of", "to", "in", "on", "at", "it", "be", "do", "does", "did", "my", "me", "i",
    "or", "as", "by", "we", "can", "which", "will", "there", "their", "they", "about", "not",
    "but", "all", "our", "its", "ist", "ein", "eine", "zu", "im",
];

/// A word in more chunks than this (and in more than half of them) is left
/// out of the full-text query; below it, scoring it costs nothing worth
/// saving and a match still says something in a small collection.
const COMMON_WORD_MIN_CHUNKS: u64 = 1000;

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

/// The words worth a full-text lookup, given how many of `total` chunks
/// hold each (`counts`, in the order of `words`): present at all, and not
/// in more than half of a large collection.
fn distinctive(words: Vec<String>, total: u64, counts: &[u64]) -> Vec<String> {
    words
        .into_iter()
        .zip(counts)
        .filter(|&(_, &n)| n > 0 && (n * 2 <= total || n <= COMMON_WORD_MIN_CHUNKS))
        .map(|(w, _)| w)
        .collect()
}

/// Search state loaded once and reused across queries.
pub struct Searcher<'a> {
    store: &'a Store,
    embedder: &'a Embedder,
    vectors: std::borrow::Cow<'a, VectorIndex>,
}

impl<'a> Searcher<'a> {
    pub fn new(store: &'a Store, embedder: &'a Embedder) -> Result<Self, SearchError> {
        let vectors = VectorIndex::load(store, embedder.dim())?;
        Ok(Self {
            store,
            embedder,
            vectors: std::borrow::Cow::Owned(vectors),
        })
    }

    /// A searcher over a vector index the caller keeps (and refreshes)
    /// across searches, as the daemon does.
    pub fn with_index(store: &'a Store, embedder: &'a Embedder, vectors: &'a VectorIndex) -> Self {
        Self {
            store,
            embedder,
            vectors: std::borrow::Cow::Borrowed(vectors),
        }
    }

    /// The `k` best documents or chats for `query`. The semantic side
    /// (embedding the query, scanning the vectors) runs on its own thread
    /// while this one asks the full-text index.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, SearchError> {
        let (embedder, vectors) = (self.embedder, &*self.vectors);
        let (fts, nearest) = std::thread::scope(|scope| {
            let semantic = scope.spawn(move || -> Result<_, EmbedError> {
                if vectors.is_empty() {
                    return Ok(None);
                }
                let q = embedder.embed(&[query])?.pop().unwrap_or_default();
                let nearest = vectors.nearest(&q, CANDIDATES);
                Ok(Some((q, nearest)))
            });
            let fts = self.full_text(query);
            let nearest = match semantic.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            (fts, nearest)
        });
        let mut fused: HashMap<i64, f64> = HashMap::new();
        let mut cosines: HashMap<i64, f32> = HashMap::new();
        for (rank, h) in fts?.iter().enumerate() {
            *fused.entry(h.chunk_id).or_default() += 1.0 / (RRF_K + rank as f64 + 1.0);
        }
        if let Some((q, nearest)) = nearest? {
            let mut cands: Vec<(i64, f32)> = Vec::new();
            for (id, _) in nearest {
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
            // One hit per document or chat; a chat is labelled with the
            // time of its best message.
            let (key, path, chat) = match &row.source {
                Source::Document { path, .. } => {
                    let p = path.display().to_string();
                    (p.clone(), p, None)
                }
                Source::Message { chat_id, ts_ms } => (
                    format!("chat:{chat_id}"),
                    format!("chat:{chat_id} at {}", crate::clock::utc_minute(*ts_ms)),
                    Some(chat_id.clone()),
                ),
            };
            if seen.insert(key, ()).is_some() {
                continue;
            }
            hits.push(Hit {
                path,
                score,
                snippet: snippet(&row.text, query, 160),
                text: row.text,
                cosine: cosines.get(&id).copied().unwrap_or(0.0),
                chat,
            });
            if hits.len() == k {
                break;
            }
        }
        Ok(hits)
    }

    /// The full-text ranking over the query's words that can tell chunks
    /// apart. Stopwords are dropped, and so is any word found in more than
    /// half of the chunks of a large collection: FTS5's BM25 gives such a word an IDF of
    /// ~0 (`log((N − n + ½)/(n + ½)) ≤ 0` is clamped to 1e-6), so it only
    /// costs time (every chunk holding it is scored) and adds rank noise.
    fn full_text(&self, query: &str) -> Result<Vec<ChunkHit>, StoreError> {
        let ws: Vec<String> = words(query)
            .into_iter()
            .filter(|w| !STOPWORDS.contains(&w.as_str()))
            .collect();
        if ws.is_empty() {
            return Ok(Vec::new());
        }
        let (total, counts) = self.store.term_frequencies(&ws)?;
        match fts_expression(&distinctive(ws, total, &counts).join(" ")) {
            Some(expr) => self.store.fts_search(&expr, CANDIDATES),
            None => Ok(Vec::new()),
        }
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
    fn common_words_leave_large_collections_only() {
        let ws = || vec!["router".to_string(), "the".into(), "zebra".into()];
        // Small collection: a word in every chunk still counts.
        assert_eq!(distinctive(ws(), 10, &[10, 3, 0]), ["router", "the"]);
        // Large: a word in over half the chunks has BM25 IDF ~0.
        assert_eq!(
            distinctive(ws(), 100_000, &[40_000, 73_000, 5]),
            ["router", "zebra"]
        );
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
}
