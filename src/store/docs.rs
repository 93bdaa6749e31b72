//! Rows of the document index: registered roots and exclusions, documents
//! with the size/mtime/hash that make re-indexing incremental, their chunks
//! with embeddings, full-text queries, and chat messages as searchable
//! sources.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};
use crate::clock::now_ms;

/// A registered root directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RootId(pub i64);

/// An indexed document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DocId(pub i64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootRow {
    pub id: RootId,
    pub path: PathBuf,
    pub added_at_ms: i64,
}

/// What the indexer needs to know to skip an unchanged file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub size: u64,
    pub mtime_ns: i64,
    pub sha256: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRow {
    pub id: DocId,
    pub path: PathBuf,
    pub state: FileState,
}

/// A chunk to store: its text and its embedding.
#[derive(Debug, Clone)]
pub struct NewChunk {
    pub text: String,
    pub embedding: Vec<f32>,
}

/// A chat message to store.
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    pub chat_id: &'a str,
    pub msg_id: &'a str,
    pub sender: &'a str,
    pub outgoing: bool,
    pub text: &'a str,
    pub ts_ms: i64,
    /// Where, in `text`, the words the sender typed themselves begin
    /// (after a quote given as context): `None` when no part of the text is
    /// the sender's own typing (forwarded, media, Hearth's replies). Only
    /// such words may ever ask for an action.
    pub typed_from: Option<usize>,
}

/// A chunk with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRow {
    pub chunk_id: i64,
    pub text: String,
    pub source: Source,
}

/// What a chunk belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    Document { id: DocId, path: PathBuf },
    Message { chat_id: String, ts_ms: i64 },
}

/// A full-text match: the chunk and its BM25 score (lower is better, as
/// SQLite reports it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkHit {
    pub chunk_id: i64,
    pub bm25: f64,
}

/// Counts for `hearth index list` and status reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    pub roots: u64,
    pub documents: u64,
    pub chunks: u64,
    pub messages: u64,
}

/// One document as listed by [`Store::documents`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocSummary {
    pub path: PathBuf,
    pub chunks: u64,
}

pub(super) fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Embeddings are stored as little-endian f32.
/// Adds `chunks` to message row `message` (inside the caller's transaction).
fn insert_message_chunks(
    tx: &rusqlite::Transaction<'_>,
    message: i64,
    chunks: &[NewChunk],
) -> Result<(), StoreError> {
    let mut st = tx.prepare_cached(
        "INSERT INTO chunks (message_id, ord, text, embedding) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (i, c) in chunks.iter().enumerate() {
        st.execute(params![
            message,
            i as i64,
            c.text,
            vector_blob(&c.embedding)
        ])?;
    }
    Ok(())
}

fn vector_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn blob_vector(b: &[u8]) -> Vec<f32> {
    let mut v = Vec::with_capacity(b.len() / 4);
    blob_vector_into(b, &mut v);
    v
}

/// Decodes an embedding blob into `out` (cleared first), reusing its memory.
fn blob_vector_into(b: &[u8], out: &mut Vec<f32>) {
    out.clear();
    out.extend(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
    );
}

impl Store {
    /// Registers `path` (absolute, resolved) as a root; returns its id and
    /// whether it is new.
    pub fn add_root(&self, path: &Path) -> Result<(RootId, bool), StoreError> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO roots (path, added_at) VALUES (?1, ?2)",
            params![path_text(path), now_ms()],
        )?;
        let id = self.conn.query_row(
            "SELECT id FROM roots WHERE path = ?1",
            [path_text(path)],
            |r| r.get(0),
        )?;
        Ok((RootId(id), n == 1))
    }

    /// Unregisters a root and deletes every document, chunk and vector
    /// under it. Returns false when it was not registered.
    pub fn remove_root(&mut self, path: &Path) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute("DELETE FROM roots WHERE path = ?1", [path_text(path)])?;
        tx.commit()?;
        Ok(n == 1)
    }

    pub fn roots(&self) -> Result<Vec<RootRow>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT id, path, added_at FROM roots ORDER BY path")?;
        let rows = st
            .query_map([], |r| {
                Ok(RootRow {
                    id: RootId(r.get(0)?),
                    path: PathBuf::from(r.get::<_, String>(1)?),
                    added_at_ms: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Adds an exclusion pattern; false when it was already there.
    pub fn add_exclusion(&self, pattern: &str) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO exclusions (pattern, added_at) VALUES (?1, ?2)",
            params![pattern, now_ms()],
        )?;
        Ok(n == 1)
    }

    pub fn remove_exclusion(&self, pattern: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM exclusions WHERE pattern = ?1", [pattern])?;
        Ok(n == 1)
    }

    pub fn exclusions(&self) -> Result<Vec<String>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT pattern FROM exclusions ORDER BY pattern")?;
        let rows = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The documents indexed under `root`, by path.
    pub fn documents_under(
        &self,
        root: RootId,
    ) -> Result<HashMap<PathBuf, DocumentRow>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT id, path, size, mtime_ns, sha256 FROM documents WHERE root_id = ?1")?;
        let rows = st
            .query_map([root.0], |r| {
                let sha: Vec<u8> = r.get(4)?;
                let mut sha256 = [0u8; 32];
                if sha.len() == 32 {
                    sha256.copy_from_slice(&sha);
                }
                Ok(DocumentRow {
                    id: DocId(r.get(0)?),
                    path: PathBuf::from(r.get::<_, String>(1)?),
                    state: FileState {
                        size: r.get::<_, i64>(2)? as u64,
                        mtime_ns: r.get(3)?,
                        sha256,
                    },
                })
            })?
            .map(|row| row.map(|d| (d.path.clone(), d)))
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Stores a document and its chunks in one transaction, replacing any
    /// earlier version at the same path (its chunks, full-text entries and
    /// vectors go with it). Returns the new chunks' ids.
    pub fn replace_document(
        &mut self,
        root: RootId,
        path: &Path,
        state: &FileState,
        kind: &str,
        chunks: &[NewChunk],
    ) -> Result<Vec<i64>, StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM documents WHERE path = ?1", [path_text(path)])?;
        tx.execute(
            "INSERT INTO documents (root_id, path, size, mtime_ns, sha256, kind, indexed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                root.0,
                path_text(path),
                state.size as i64,
                state.mtime_ns,
                &state.sha256[..],
                kind,
                now_ms()
            ],
        )?;
        let doc = tx.last_insert_rowid();
        let mut ids = Vec::with_capacity(chunks.len());
        {
            let mut st = tx.prepare(
                "INSERT INTO chunks (doc_id, ord, text, embedding) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (i, c) in chunks.iter().enumerate() {
                st.execute(params![doc, i as i64, c.text, vector_blob(&c.embedding)])?;
                ids.push(tx.last_insert_rowid());
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Records a new size/mtime for a document whose content did not change.
    pub fn touch_document(&self, id: DocId, state: &FileState) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE documents SET size = ?2, mtime_ns = ?3 WHERE id = ?1",
            params![id.0, state.size as i64, state.mtime_ns],
        )?;
        Ok(())
    }

    /// Deletes a document with its chunks, full-text entries and vectors.
    pub fn delete_document(&self, id: DocId) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM documents WHERE id = ?1", [id.0])?;
        Ok(())
    }

    /// Documents with their chunk counts, by path.
    pub fn documents(&self) -> Result<Vec<DocSummary>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT d.path, count(c.id) FROM documents d LEFT JOIN chunks c ON c.doc_id = d.id
             GROUP BY d.id ORDER BY d.path",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(DocSummary {
                    path: PathBuf::from(r.get::<_, String>(0)?),
                    chunks: r.get::<_, i64>(1)? as u64,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Stores a chat message and its chunks (for search). A message seen
    /// before (same chat and message id) is left as it is; returns its row
    /// id and whether it was new.
    pub fn insert_message(
        &mut self,
        m: &NewMessage<'_>,
        chunks: &[NewChunk],
    ) -> Result<(i64, bool), StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO messages (chat_id, msg_id, sender, outgoing, text, ts_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![m.chat_id, m.msg_id, m.sender, m.outgoing, m.text, m.ts_ms],
        )?;
        let id: i64 = tx.query_row(
            "SELECT id FROM messages WHERE chat_id = ?1 AND msg_id = ?2",
            params![m.chat_id, m.msg_id],
            |r| r.get(0),
        )?;
        if n == 1 {
            insert_message_chunks(&tx, id, chunks)?;
        }
        tx.commit()?;
        Ok((id, n == 1))
    }

    /// Adds search chunks to a stored message (by chat and message id),
    /// unless it has some already. False when there is no such message.
    pub fn index_message(
        &mut self,
        chat_id: &str,
        msg_id: &str,
        chunks: &[NewChunk],
    ) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let id: Option<i64> = tx
            .query_row(
                "SELECT id FROM messages WHERE chat_id = ?1 AND msg_id = ?2
                 AND NOT EXISTS (SELECT 1 FROM chunks WHERE message_id = messages.id)",
                params![chat_id, msg_id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = id else {
            return Ok(false);
        };
        insert_message_chunks(&tx, id, chunks)?;
        tx.commit()?;
        Ok(true)
    }

    /// How many chunks the full-text index holds, and in how many of them
    /// each of `terms` (lower-case words) occurs.
    pub fn term_frequencies(&self, terms: &[String]) -> Result<(u64, Vec<u64>), StoreError> {
        self.conn.execute_batch(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunks_vocab
             USING fts5vocab(main, chunks_fts, row);",
        )?;
        let total = self.chunk_count()?;
        let mut st = self
            .conn
            .prepare_cached("SELECT doc FROM temp.chunks_vocab WHERE term = ?1")?;
        let mut counts = Vec::with_capacity(terms.len());
        for t in terms {
            let n: Option<i64> = st.query_row([t], |r| r.get(0)).optional()?;
            counts.push(n.unwrap_or(0) as u64);
        }
        Ok((total, counts))
    }

    /// Full-text matches for an FTS5 query expression, best first.
    pub fn fts_search(&self, expr: &str, limit: usize) -> Result<Vec<ChunkHit>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ?1
             ORDER BY bm25(chunks_fts) LIMIT ?2",
        )?;
        let rows = st
            .query_map(params![expr, limit as i64], |r| {
                Ok(ChunkHit {
                    chunk_id: r.get(0)?,
                    bm25: r.get(1)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The text and source of one chunk.
    pub fn chunk(&self, chunk_id: i64) -> Result<Option<ChunkRow>, StoreError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT c.text, c.doc_id, d.path, m.chat_id, m.ts_ms FROM chunks c
                 LEFT JOIN documents d ON d.id = c.doc_id
                 LEFT JOIN messages m ON m.id = c.message_id
                 WHERE c.id = ?1",
            )?
            .query_row([chunk_id], |r| {
                let source = match r.get::<_, Option<i64>>(1)? {
                    Some(doc) => Source::Document {
                        id: DocId(doc),
                        path: PathBuf::from(r.get::<_, String>(2)?),
                    },
                    None => Source::Message {
                        chat_id: r.get(3)?,
                        ts_ms: r.get(4)?,
                    },
                };
                Ok(ChunkRow {
                    chunk_id,
                    text: r.get(0)?,
                    source,
                })
            })
            .optional()?;
        Ok(row)
    }

    /// The stored embedding of one chunk.
    pub fn embedding(&self, chunk_id: i64) -> Result<Option<Vec<f32>>, StoreError> {
        let v = self
            .conn
            .prepare_cached("SELECT embedding FROM chunks WHERE id = ?1")?
            .query_row([chunk_id], |r| r.get::<_, Vec<u8>>(0))
            .optional()?;
        Ok(v.map(|b| blob_vector(&b)))
    }

    /// Calls `f` with the id and embedding of every chunk after chunk id
    /// `after`, in id order.
    pub fn for_each_embedding(
        &self,
        after: i64,
        mut f: impl FnMut(i64, &[f32]),
    ) -> Result<(), StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, embedding FROM chunks WHERE id > ?1 ORDER BY id")?;
        let mut rows = st.query([after])?;
        let mut buf = Vec::new();
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let blob = r.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            blob_vector_into(blob, &mut buf);
            f(id, &buf);
        }
        Ok(())
    }

    /// How many chunks (documents' and messages') are stored.
    pub fn chunk_count(&self) -> Result<u64, StoreError> {
        self.count("SELECT count(*) FROM chunks")
    }

    pub fn stats(&self) -> Result<IndexStats, StoreError> {
        Ok(IndexStats {
            roots: self.count("SELECT count(*) FROM roots")?,
            documents: self.count("SELECT count(*) FROM documents")?,
            chunks: self.chunk_count()?,
            messages: self.count("SELECT count(*) FROM messages")?,
        })
    }
}
