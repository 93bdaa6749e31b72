//! The daemon's memory: the embedder and an in-memory vector index kept
//! across turns. Stored messages get their embeddings here so `/search`
//! and later answers find them; owner chats' replies get excerpts from
//! documents and other chats.
//!
//! Runs on the agent thread only (the embedder and the model never run
//! at once); must not hold SQL (it calls the store).

use super::Shared;
use crate::embed::Embedder;
use crate::index::chunk::{ChunkSize, chunk_text};
use crate::search::{Hit, SearchError, Searcher, VectorIndex};
use crate::store::{NewChunk, Store};

/// Excerpts considered for a reply.
const RECALL_HITS: usize = 3;
/// Kept-chat messages embedded per idle turn of the agent.
const CATCH_UP_BATCH: usize = 16;

pub struct Memory {
    embedder: Embedder,
    vectors: VectorIndex,
}

impl Memory {
    pub fn load(embedder: Embedder, store: &Store) -> Result<Self, SearchError> {
        let vectors = VectorIndex::load(store, embedder.dim())?;
        tracing::info!(vectors = vectors.len(), "memory loaded");
        Ok(Self { embedder, vectors })
    }

    /// Makes a stored message searchable (its chunks and embeddings; the
    /// store is locked only to write them).
    pub fn remember(&self, shared: &Shared, chat_id: &str, msg_id: &str, text: &str) -> bool {
        let count = |t: &str| self.embedder.count_tokens(t).unwrap_or(t.len() / 3);
        let pieces = chunk_text(text, ChunkSize::default(), &count);
        if pieces.is_empty() {
            return false;
        }
        let chunks = match self.embedder.embed(&pieces) {
            Ok(vs) => pieces
                .into_iter()
                .zip(vs)
                .map(|(text, embedding)| NewChunk { text, embedding })
                .collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!(error = %e, "embedding a message failed; it is stored but not searchable");
                return false;
            }
        };
        match shared.store().index_message(chat_id, msg_id, &chunks) {
            Ok(added) => added,
            Err(e) => {
                tracing::warn!(error = %e, "storing a message's embeddings failed");
                false
            }
        }
    }

    /// Embeds messages of opted-in chats that are not searchable yet (a
    /// few per call, between replies); true when it made any searchable.
    pub fn catch_up(&self, shared: &Shared) -> bool {
        let todo = match shared.with_store(|s| s.unembedded_memory(CATCH_UP_BATCH)) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "reading chat memory failed");
                return false;
            }
        };
        let mut progressed = false;
        for (chat, id, text) in todo {
            progressed |= self.remember(shared, &chat, &id, &text);
        }
        progressed
    }

    /// The best `k` hits for `query` over documents and chats.
    pub fn search(
        &mut self,
        store: &Store,
        query: &str,
        k: usize,
    ) -> Result<Vec<Hit>, SearchError> {
        self.vectors.refresh(store)?;
        Searcher::with_index(store, &self.embedder, &self.vectors).search(query, k)
    }

    /// Excerpts worth giving the model for a message in `chat`: relevant
    /// documents and other chats (this chat's own past is in the prompt
    /// already). Empty on any error: a reply without excerpts beats none.
    pub fn recall(&mut self, store: &Store, chat: &str, query: &str) -> Vec<Hit> {
        match self.search(store, query, RECALL_HITS + 1) {
            Ok(hits) => crate::sources::relevant(hits)
                .into_iter()
                .filter(|h| h.chat.as_deref() != Some(chat))
                .take(RECALL_HITS)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "searching memory failed");
                Vec::new()
            }
        }
    }
}
