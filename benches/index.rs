//! `cargo bench --bench index`: `hearth index` throughput on a folder of
//! mixed files (Markdown, plain text, HTML; 2–4 paragraphs of ~90 words
//! each) with the real embedder: the first full run (files/s, chunks/s,
//! input MB/s), a second run with nothing changed, and a run after 10% of
//! the files were edited. `HEARTH_BENCH_FILES` sets the file count
//! (default 300). Set `RAYON_NUM_THREADS` to choose the thread count.

use std::time::{Duration, Instant};

use hearth::index::sync::{Quiet, SyncReport, sync};
use hearth::paths::Paths;
use hearth::store::{Create, Store};

mod common;
use common::passages;

fn main() -> anyhow::Result<()> {
    let Some(embedder) = common::embedder()? else {
        return Ok(());
    };
    let files: usize = std::env::var("HEARTH_BENCH_FILES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("docs");
    std::fs::create_dir_all(&root)?;
    let paragraphs = passages(files * 4, 90);
    let write = |i: usize, edit: bool| -> std::io::Result<usize> {
        let n = 2 + i % 3;
        let mut body: Vec<String> = paragraphs[i * 4..i * 4 + n].to_vec();
        if edit {
            body.push("Edited: the meeting moved to Friday.".into());
        }
        let (name, text) = match i % 3 {
            0 => (
                format!("note{i}.md"),
                format!("# Note {i}\n\n{}", body.join("\n\n")),
            ),
            1 => (format!("file{i}.txt"), body.join("\n\n")),
            _ => (
                format!("page{i}.html"),
                format!(
                    "<html><body><h1>Page {i}</h1>{}</body></html>",
                    body.iter()
                        .map(|p| format!("<p>{p}</p>"))
                        .collect::<String>()
                ),
            ),
        };
        std::fs::write(root.join(name), &text)?;
        Ok(text.len())
    };
    let mut bytes = 0;
    for i in 0..files {
        bytes += write(i, false)?;
    }
    let input_mb = bytes as f64 / 1e6;
    let paths = Paths {
        data_dir: tmp.path().join("data"),
        key_file: tmp.path().join("key"),
    };
    let mut store = Store::open(&paths, Create::IfMissing)?;
    store.add_root(&root)?;
    let timed = |store: &mut Store| -> anyhow::Result<(SyncReport, Duration)> {
        let t = Instant::now();
        let r = sync(store, &embedder, &mut Quiet)?;
        Ok((r, t.elapsed()))
    };
    let (first, t1) = timed(&mut store)?;
    let (second, t2) = timed(&mut store)?;
    // mtime granularity: make sure the edits are seen as changes.
    std::thread::sleep(Duration::from_millis(20));
    for i in (0..files).step_by(10) {
        write(i, true)?;
    }
    let (third, t3) = timed(&mut store)?;
    let s = |d: Duration| d.as_secs_f64();
    println!(
        "index: first run {files} files ({input_mb:.2} MB, {} chunks) in {:.1} s: {:.1} files/s, {:.1} chunks/s, {:.3} MB/s; {} threads",
        first.chunks,
        s(t1),
        files as f64 / s(t1),
        first.chunks as f64 / s(t1),
        input_mb / s(t1),
        rayon::current_num_threads()
    );
    println!(
        "index: unchanged re-run {:.2} s ({} unchanged, {:.0} files/s); after editing {} files {:.1} s",
        s(t2),
        second.unchanged,
        files as f64 / s(t2),
        third.updated,
        s(t3)
    );
    anyhow::ensure!(first.added == files && first.failed.is_empty(), "{first:?}");
    anyhow::ensure!(second.unchanged == files, "{second:?}");
    anyhow::ensure!(third.updated == files.div_ceil(10), "{third:?}");
    Ok(())
}
