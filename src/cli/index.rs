//! `hearth index`: register the folders Hearth may read, list them, and
//! sync them into the encrypted store (with a progress bar and a summary).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::{GlobalArgs, Outcome, load_embedder};
use crate::audit::{Action, Actor, Entry};
use crate::index::scope::DEFAULT_EXCLUSIONS;
use crate::index::sync::{Progress, sync_in};
use crate::store::{Create, Store};

#[derive(Debug, Args)]
pub struct IndexArgs {
    #[command(subcommand)]
    pub command: Option<IndexCommand>,
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Let Hearth read a folder (then run `hearth index` to index it)
    Add { dir: PathBuf },
    /// Stop reading a folder and forget everything indexed from it
    Remove { dir: PathBuf },
    /// Show the registered folders, counts and exclusions
    List,
    /// Never index files or folders whose name matches PATTERN (`*`, `?`)
    Exclude { pattern: String },
    /// Remove a pattern added with `exclude` (the defaults stay)
    Include { pattern: String },
}

/// An audit entry for something done at the terminal.
fn local(action: Action, object: impl std::fmt::Display) -> Entry {
    Entry::new(Actor::Local, action, object.to_string())
}

pub(crate) fn open_store(g: &GlobalArgs) -> anyhow::Result<Store> {
    Ok(Store::open(&g.paths()?, Create::IfMissing)?)
}

pub fn run(g: &GlobalArgs, a: IndexArgs) -> anyhow::Result<Outcome> {
    let mut store = open_store(g)?;
    match a.command {
        None => run_sync(g, &mut store),
        Some(IndexCommand::Add { dir }) => {
            let real = canonical_dir(&dir)?;
            let (_, new) = store.add_root(&real)?;
            if new {
                store.audit(&local(Action::RootAdded, real.display()))?;
                eprintln!("added {}; run `hearth index` to index it", real.display());
            } else {
                eprintln!("{} is already registered", real.display());
            }
            Ok(Outcome::Ok)
        }
        Some(IndexCommand::Remove { dir }) => {
            let real = std::fs::canonicalize(&dir).unwrap_or(dir.clone());
            if store.forget_root(&real, Actor::Local)? || store.forget_root(&dir, Actor::Local)? {
                eprintln!("removed {} and everything indexed from it", real.display());
                Ok(Outcome::Ok)
            } else {
                anyhow::bail!(
                    "{} is not a registered folder (see `hearth index list`)",
                    dir.display()
                )
            }
        }
        Some(IndexCommand::List) => {
            let stats = store.stats()?;
            let roots = store.roots()?;
            if roots.is_empty() {
                outln!("no folders registered; add one with `hearth index add DIR`");
            }
            for r in roots {
                outln!("{}", r.path.display());
            }
            outln!(
                "{} documents, {} chunks, {} messages",
                stats.documents,
                stats.chunks,
                stats.messages
            );
            outln!("excluded by default: {}", DEFAULT_EXCLUSIONS.join(" "));
            let own = store.exclusions()?;
            if !own.is_empty() {
                outln!("excluded by you: {}", own.join(" "));
            }
            Ok(Outcome::Ok)
        }
        Some(IndexCommand::Exclude { pattern }) => {
            if store.add_exclusion(&pattern)? {
                store.audit(&local(Action::ExclusionAdded, &pattern))?;
            }
            eprintln!("excluding `{pattern}` from the next `hearth index` on");
            Ok(Outcome::Ok)
        }
        Some(IndexCommand::Include { pattern }) => {
            if !store.remove_exclusion(&pattern)? {
                anyhow::bail!("`{pattern}` is not one of your exclusions");
            }
            store.audit(&local(Action::ExclusionRemoved, &pattern))?;
            Ok(Outcome::Ok)
        }
    }
}

fn canonical_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    let real = std::fs::canonicalize(dir).with_context(|| format!("{}", dir.display()))?;
    if !real.is_dir() {
        anyhow::bail!("{} is not a folder", real.display());
    }
    Ok(real)
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn start(&mut self, files: usize) {
        self.0.set_length(files as u64);
    }
    fn file(&mut self, _: &Path) {
        self.0.inc(1);
    }
    fn finish(&mut self) {
        self.0.finish_and_clear();
    }
}

fn run_sync(g: &GlobalArgs, store: &mut Store) -> anyhow::Result<Outcome> {
    if store.roots()?.is_empty() {
        anyhow::bail!("no folders registered; add one with `hearth index add DIR`");
    }
    let embedder = load_embedder(g)?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} files  {rate}  {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key(
                "rate",
                |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.1} files/s", s.per_sec());
                },
            ),
    );
    let start = Instant::now();
    let config = crate::config::Config::load(&g.config_file())?;
    let report = sync_in(store, &embedder, &mut Bar(bar), &config.time_zone.zone())?;
    let retention = config.retention;
    if let Some(before) =
        crate::config::Retention::cutoff(retention.documents_days, crate::clock::now_ms())
    {
        let n = store.purge_documents(before, Actor::Local)?;
        if n > 0 {
            eprintln!(
                "{n} document(s) last changed over {} days ago left the index ([retention] documents_days)",
                retention.documents_days
            );
        }
    }
    store.checkpoint()?;
    let secs = start.elapsed().as_secs_f64();
    let files = report.added
        + report.updated
        + report.unchanged
        + report.binary
        + report.refused
        + report.failed.len();
    outln!(
        "indexed {files} files in {secs:.1} s ({:.1} files/s): {} added, {} updated, {} removed, {} unchanged, {} binary skipped, {} refused, {} failed ({} chunks written)",
        files as f64 / secs.max(1e-9),
        report.added,
        report.updated,
        report.removed,
        report.unchanged,
        report.binary,
        report.refused,
        report.failed.len(),
        report.chunks
    );
    for (path, reason) in &report.failed {
        eprintln!("  failed: {}: {reason}", path.display());
    }
    Ok(Outcome::Ok)
}
