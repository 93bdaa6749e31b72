//! `cargo bench --bench embed`: sentence-embedding throughput of the
//! shipped all-MiniLM-L6-v2 on passages of about 150 word pieces (the size
//! the indexer's chunks have), in passages per second. Compare with
//! `scripts/bench-embed-reference.py` (sentence-transformers, same texts,
//! same threads). Set `RAYON_NUM_THREADS` to choose the thread count.

use std::path::PathBuf;
use std::time::Instant;

use hearth::embed::Embedder;

/// Deterministic English-like passages of `words` words.
pub fn passages(n: usize, words: usize) -> Vec<String> {
    const VOCAB: &[&str] = &[
        "the",
        "router",
        "password",
        "garden",
        "invoice",
        "meeting",
        "Thursday",
        "kitchen",
        "battery",
        "holiday",
        "receipt",
        "doctor",
        "train",
        "station",
        "recipe",
        "flour",
        "backup",
        "server",
        "printer",
        "school",
        "weather",
        "budget",
        "insurance",
        "car",
        "appointment",
        "birthday",
        "present",
        "project",
        "deadline",
        "network",
        "photo",
        "album",
        "and",
        "of",
        "to",
        "in",
        "is",
        "was",
        "for",
        "with",
        "on",
        "at",
        "by",
        "reminder",
        "electricity",
        "water",
        "contract",
        "landlord",
        "warranty",
        "phone",
    ];
    let mut x = 12345u64;
    (0..n)
        .map(|_| {
            (0..words)
                .map(|i| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let w = VOCAB[(x >> 33) as usize % VOCAB.len()];
                    if i % 12 == 11 {
                        format!("{w}.")
                    } else {
                        w.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    if !dir.join("model.safetensors").is_file() {
        println!("embedder not installed (run scripts/setup.sh); nothing measured");
        return Ok(());
    }
    let embedder = Embedder::load(&dir)?;
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
