//! The embedder against sentence-transformers on the shipped
//! all-MiniLM-L6-v2 files (`../shared/reference/minilm_shared_embeddings.jsonl`,
//! copied to `tests/reference/`): identical word-piece ids and cosine
//! similarity ≥ 0.999 for every text, embedded one by one and as a batch.
//!
//! Needs the real model under `models/` (`scripts/setup.sh` fetches it); a
//! missing model fails the test rather than skipping it.

use std::path::PathBuf;

mod common;

use hearth::embed::Embedder;
use serde::Deserialize;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn reference_file() -> PathBuf {
    common::reference_dir().join("minilm_shared_embeddings.jsonl")
}

#[derive(Deserialize)]
struct Case {
    text: String,
    input_ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn minilm_matches_sentence_transformers() {
    let dir = root().join("models/all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} is missing: run scripts/setup.sh to fetch the models",
        dir.display()
    );
    let embedder = Embedder::load(&dir).expect("embedder loads");
    let text = std::fs::read_to_string(reference_file()).expect("reference file");
    let cases: Vec<Case> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("reference line parses"))
        .collect();
    assert!(cases.len() >= 10);
    let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    let batched = embedder.embed(&texts).unwrap();
    let mut worst = 1.0f64;
    for (c, batch_vec) in cases.iter().zip(&batched) {
        assert_eq!(
            embedder.token_ids(&c.text).unwrap(),
            c.input_ids,
            "ids for {:?}",
            c.text
        );
        let single = embedder.embed(&[c.text.as_str()]).unwrap().remove(0);
        for v in [&single, batch_vec] {
            assert_eq!(v.len(), 384);
            let cos = cosine(v, &c.embedding);
            worst = worst.min(cos);
            assert!(cos >= 0.999, "cosine {cos:.5} for {:?}", c.text);
        }
    }
    eprintln!("minilm: {} texts, worst cosine {worst:.6}", cases.len());
}

#[test]
fn long_texts_are_truncated_at_256_word_pieces() {
    let dir = root().join("models/all-MiniLM-L6-v2");
    let embedder = Embedder::load(&dir).expect("embedder loads");
    let long = "word ".repeat(1000);
    let ids = embedder.token_ids(&long).unwrap();
    assert_eq!(ids.len(), 256);
    assert_eq!((ids[0], ids[255]), (101, 102), "[CLS] … [SEP]");
    assert_eq!(embedder.count_tokens(&long).unwrap(), 1000);
}
