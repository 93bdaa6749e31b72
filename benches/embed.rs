//! `cargo bench --bench embed`: sentence-embedding throughput of the
//! shipped all-MiniLM-L6-v2 on passages of about 150 word pieces (the size
//! the indexer's chunks have), in passages per second. Compare with
//! `scripts/bench-embed-reference.py` (sentence-transformers, same texts,
//! same threads). Set `RAYON_NUM_THREADS` to choose the thread count.

use std::time::Instant;

mod common;
use common::passages;

fn main() -> anyhow::Result<()> {
    let Some(embedder) = common::embedder()? else {
        return Ok(());
    };
    let texts = passages(256, 130);
    let tokens: usize = texts
        .iter()
        .map(|t| embedder.token_ids(t).map(|v| v.len()).unwrap_or(0))
        .sum();
    embedder.embed(&texts[..32])?; // warm-up
    let mut rates = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        embedder.embed(&texts)?;
        rates.push(texts.len() as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    println!(
        "embed: {} passages, {:.0} word pieces on average, {} threads: {:.1} passages/s (median of 3; min {:.1}, max {:.1})",
        texts.len(),
        tokens as f64 / texts.len() as f64,
        rayon::current_num_threads(),
        rates[1],
        rates[0],
        rates[2]
    );
    Ok(())
}
