//! `hearth index`: brings the store in step with the registered roots.
//! Unchanged files (same size and mtime, else same sha256) are skipped;
//! changed ones are re-extracted, re-chunked and re-embedded; files gone
//! from disk leave the store with their chunks and vectors. Each file is
//! written in its own transaction, so an interrupted run leaves a
//! consistent store and the next run picks up where it stopped. One bad
//! file never stops a run.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use super::chunk::{ChunkSize, chunk_text};
use super::extract::{Extracted, Record, extract_in};
use super::scope::{Exclusions, Refusal, open_within};
use crate::audit::{Action, Actor, Entry, Outcome as AuditOutcome};
use crate::embed::Embedder;
use crate::store::{FileState, NewChunk, Store, StoreError};

/// Files larger than this are skipped (counted as failed with a reason).
pub const MAX_FILE_BYTES: u64 = 32 << 20;

/// What a sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    /// Unchanged since the last run.
    pub unchanged: usize,
    /// Binary files without an extractor.
    pub binary: usize,
    /// Excluded or outside their root.
    pub refused: usize,
    pub failed: Vec<(PathBuf, String)>,
    pub chunks: usize,
}

/// Progress callbacks: the number of files found, then one call per file.
pub trait Progress {
    fn start(&mut self, files: usize);
    fn file(&mut self, path: &Path);
    fn finish(&mut self);
}

/// No progress output (tests, scripts).
pub struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _: usize) {}
    fn file(&mut self, _: &Path) {}
    fn finish(&mut self) {}
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Syncs every registered root, calendar and mail times in UTC.
pub fn sync(
    store: &mut Store,
    embedder: &Embedder,
    progress: &mut dyn Progress,
) -> Result<SyncReport, SyncError> {
    sync_in(store, embedder, progress, &jiff::tz::TimeZone::UTC)
}

/// Syncs every registered root; calendar and mail times are written in
/// `zone` (the owner's `time_zone`).
pub fn sync_in(
    store: &mut Store,
    embedder: &Embedder,
    progress: &mut dyn Progress,
    zone: &jiff::tz::TimeZone,
) -> Result<SyncReport, SyncError> {
    let exclusions = Exclusions::new(&store.exclusions()?);
    let mut report = SyncReport::default();
    let roots = store.roots()?;
    // Find the files first, so the progress bar knows its length.
    let mut work = Vec::new();
    for root in &roots {
        let files = walk(&root.path, &exclusions, &mut report);
        work.push((root, files));
    }
    progress.start(work.iter().map(|(_, f)| f.len()).sum());
    let count = |t: &str| embedder.count_tokens(t).unwrap_or(t.len() / 3);
    let how = Reading {
        embedder,
        count: &count,
        exclusions: &exclusions,
        zone,
    };
    for (root, files) in work {
        let known = store.documents_under(root.id)?;
        let mut seen = HashSet::new();
        for path in files {
            progress.file(&path);
            seen.insert(path.clone());
            let previous = known.get(&path);
            match index_file(store, &how, root, &path, previous) {
                Ok(Outcome::Unchanged) => report.unchanged += 1,
                Ok(Outcome::Binary) => {
                    report.binary += 1;
                    if let Some(doc) = previous {
                        store.delete_document(doc.id)?;
                    }
                }
                Ok(Outcome::Indexed(n)) => {
                    report.chunks += n;
                    if previous.is_some() {
                        report.updated += 1;
                    } else {
                        report.added += 1;
                    }
                }
                Err(FileError::Refused(r)) => {
                    tracing::warn!(path = %path.display(), reason = %r, "file refused");
                    report.refused += 1;
                    store.audit(
                        &Entry::new(
                            Actor::Local,
                            Action::FileRefused,
                            format!("{}: {r}", path.display()),
                        )
                        .outcome(AuditOutcome::Refused),
                    )?;
                    if let Some(doc) = previous {
                        store.delete_document(doc.id)?;
                    }
                }
                Err(FileError::Store(e)) => return Err(e.into()),
                Err(FileError::Other(reason)) => {
                    // The run's summary lists it; the log need not repeat it.
                    tracing::debug!(path = %path.display(), %reason, "file not indexed");
                    report.failed.push((path.clone(), reason));
                }
            }
        }
        for (path, doc) in &known {
            if !seen.contains(path) {
                store.delete_document(doc.id)?;
                report.removed += 1;
            }
        }
    }
    progress.finish();
    Ok(report)
}

enum Outcome {
    Unchanged,
    Binary,
    Indexed(usize),
}

enum FileError {
    Refused(Refusal),
    Store(StoreError),
    Other(String),
}

impl From<StoreError> for FileError {
    fn from(e: StoreError) -> Self {
        FileError::Store(e)
    }
}

/// How files are read in one sync.
struct Reading<'a> {
    embedder: &'a Embedder,
    count: &'a dyn Fn(&str) -> usize,
    exclusions: &'a Exclusions,
    zone: &'a jiff::tz::TimeZone,
}

fn index_file(
    store: &mut Store,
    how: &Reading<'_>,
    root: &crate::store::RootRow,
    path: &Path,
    previous: Option<&crate::store::DocumentRow>,
) -> Result<Outcome, FileError> {
    let Reading {
        embedder,
        count,
        exclusions,
        zone,
    } = *how;
    let (mut file, _real) =
        open_within(&root.path, path, exclusions).map_err(FileError::Refused)?;
    let meta = file
        .metadata()
        .map_err(|e| FileError::Other(e.to_string()))?;
    let size = meta.len();
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    if let Some(doc) = previous
        && doc.state.size == size
        && doc.state.mtime_ns == mtime_ns
    {
        return Ok(Outcome::Unchanged);
    }
    if size > MAX_FILE_BYTES {
        return Err(FileError::Other(format!(
            "{size} bytes is over the {MAX_FILE_BYTES}-byte limit"
        )));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.read_to_end(&mut bytes)
        .map_err(|e| FileError::Other(e.to_string()))?;
    let sha256: [u8; 32] = Sha256::digest(&bytes).into();
    let state = FileState {
        size,
        mtime_ns,
        sha256,
    };
    if let Some(doc) = previous
        && doc.state.sha256 == sha256
    {
        store.touch_document(doc.id, &state)?;
        return Ok(Outcome::Unchanged);
    }
    let (kind, pieces) = match extract_in(path, &bytes, zone) {
        Extracted::Text { kind, text } => (kind, chunk_text(&text, ChunkSize::default(), count)),
        Extracted::Records { kind, records } => (kind, record_chunks(&records, count)),
        Extracted::Binary => return Ok(Outcome::Binary),
        Extracted::Failed(e) => return Err(FileError::Other(e.to_string())),
    };
    let vectors = embedder
        .embed(&pieces)
        .map_err(|e| FileError::Other(e.to_string()))?;
    let chunks: Vec<NewChunk> = pieces
        .into_iter()
        .zip(vectors)
        .map(|(text, embedding)| NewChunk { text, embedding })
        .collect();
    store.replace_document(root.id, path, &state, kind, &chunks)?;
    Ok(Outcome::Indexed(chunks.len()))
}

/// The chunks of calendar events or mail messages: each record on its own
/// (never two events in one chunk), its head repeated on every chunk of a
/// long body so each says what it belongs to.
fn record_chunks(records: &[Record], count: &dyn Fn(&str) -> usize) -> Vec<String> {
    let size = ChunkSize::default();
    let mut out = Vec::new();
    for r in records {
        if r.body.is_empty() {
            out.push(r.head.clone());
            continue;
        }
        let room = ChunkSize {
            target: size
                .target
                .saturating_sub(count(&r.head))
                .max(size.target / 2),
            ..size
        };
        for piece in chunk_text(&r.body, room, count) {
            out.push(format!("{}\n{piece}", r.head));
        }
    }
    out
}

/// Regular files (and links to them) under `root`, skipping excluded
/// directories without entering them. Unreadable entries are reported.
fn walk(root: &Path, exclusions: &Exclusions, report: &mut SyncReport) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let rel = e.path().strip_prefix(root).unwrap_or(e.path());
            e.depth() == 0 || exclusions.matching(rel).is_none()
        });
    for entry in walker {
        match entry {
            Ok(e) if e.file_type().is_file() || e.file_type().is_symlink() => {
                // A link to a directory is not followed.
                if e.file_type().is_symlink() && e.path().is_dir() {
                    continue;
                }
                files.push(e.into_path());
            }
            Ok(_) => {}
            Err(e) => report.failed.push((
                e.path().map(Path::to_path_buf).unwrap_or_default(),
                e.to_string(),
            )),
        }
    }
    files
}
