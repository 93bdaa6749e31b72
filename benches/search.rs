//! `cargo bench --bench search`: hybrid search latency (query embedding +
//! FTS5 + int8 vector scan + rescoring + fusion) at 10k and 100k chunks,
//! p50/p95 over 50 queries, and the encrypted database's size per 1k
//! chunks. Chunks are synthetic 30-word texts with random unit vectors (the
//! embedder would take half an hour to fill 100k); queries are real.
//!
//! Two corpora per size:
//! - `zipf`: words drawn from a 20,000-word vocabulary with Zipf's law
//!   (as in natural text), 3 of the 30 words topic words, so each query
//!   word is in ~8% of the chunks (a two-word query matches ~15%): still
//!   pessimistic for a personal corpus.
//! - `dense`: 60% of the words are topic words (38 of them), so each query
//!   word is in ~38% of the chunks: as common as a word can be and still
//!   be scored (words in over half the chunks are left out of the
//!   full-text query), the full-text index's worst case.
//!
//! `HEARTH_BENCH_CHUNKS=10000,100000` chooses the sizes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hearth::paths::Paths;
use hearth::search::Searcher;
use hearth::store::{Create, FileState, NewChunk, Store};

mod common;
use common::VOCAB;

fn main() -> anyhow::Result<()> {
    let Some(embedder) = common::embedder()? else {
        return Ok(());
    };
    let sizes: Vec<usize> = std::env::var("HEARTH_BENCH_CHUNKS")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    // Topic words: the generator's vocabulary without the short function
    // words.
    let words: Vec<&str> = VOCAB.iter().copied().filter(|w| w.len() > 3).collect();
    for (n, corpus) in sizes
        .iter()
        .flat_map(|&n| [(n, Corpus::Zipf), (n, Corpus::Dense)])
    {
        let tmp = tempfile::tempdir()?;
        let paths = Paths {
            data_dir: tmp.path().join("data"),
            key_file: tmp.path().join("key"),
        };
        let mut store = Store::open(&paths, Create::IfMissing)?;
        let (root, _) = store.add_root(Path::new("/bench"))?;
        let mut x = 7u64;
        let mut rnd = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u32
        };
        let t = Instant::now();
        for d in 0..n / 100 {
            let chunks: Vec<NewChunk> = (0..100)
                .map(|_| {
                    let text = (0..30)
                        .map(|i| match corpus {
                            Corpus::Dense if rnd() % 5 < 3 => {
                                words[rnd() as usize % words.len()].to_string()
                            }
                            Corpus::Dense => format!("w{}", zipf(rnd())),
                            Corpus::Zipf if i % 10 == 0 => {
                                words[rnd() as usize % words.len()].to_string()
                            }
                            Corpus::Zipf => format!("w{}", zipf(rnd())),
                        })
                        .collect::<Vec<_>>()
                        .join(" ");
                    let mut v: Vec<f32> = (0..384)
                        .map(|_| rnd() as f32 / u32::MAX as f32 - 0.5)
                        .collect();
                    let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
                    v.iter_mut().for_each(|a| *a /= norm);
                    NewChunk { text, embedding: v }
                })
                .collect();
            let state = FileState {
                size: 1,
                mtime_ns: 1,
                sha256: [0; 32],
            };
            store.replace_document(
                root,
                &PathBuf::from(format!("/bench/{d}.txt")),
                &state,
                "text",
                &chunks,
            )?;
        }
        store.checkpoint()?;
        let fill = t.elapsed().as_secs_f64();
        let bytes = std::fs::metadata(paths.database())?.len();
        let t = Instant::now();
        let searcher = Searcher::new(&store, &embedder)?;
        let load = t.elapsed().as_secs_f64();
        let queries = [
            "router password",
            "when is the doctor appointment",
            "garden budget",
            "printer backup network",
            "birthday present",
        ];
        let mut lat = Vec::new();
        for i in 0..50 {
            let t = Instant::now();
            searcher.search(queries[i % queries.len()], 5)?;
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        lat.sort_by(|a, b| a.total_cmp(b));
        println!(
            "search: {n} chunks ({corpus:?}): p50 {:.1} ms, p95 {:.1} ms; index load {load:.2} s; fill {fill:.1} s; database {:.2} MB per 1k chunks",
            lat[lat.len() / 2],
            lat[lat.len() * 95 / 100],
            bytes as f64 / 1e6 / (n as f64 / 1000.0)
        );
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Corpus {
    Zipf,
    Dense,
}

/// A word rank in 0..20,000 with probability ∝ 1/(rank+1), from a uniform
/// u32 (inverse of the continuous approximation H(r) ≈ ln r).
fn zipf(u: u32) -> u32 {
    const VOCAB: f64 = 20_000.0;
    let x = u as f64 / u32::MAX as f64;
    ((VOCAB + 1.0).powf(x) - 1.0).floor().min(VOCAB - 1.0) as u32
}
