//! Shared by the benches: deterministic English-like text, so runs on
//! different machines (and before/after a change) see the same input.
// Each bench uses only some of these.
#![allow(dead_code)]

use std::path::PathBuf;

use hearth::embed::Embedder;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary under test: `HEARTH_BIN` (e.g. a release build, when this
/// harness is built in another profile), else the one cargo built with it.
#[cfg(feature = "app")]
pub fn binary() -> PathBuf {
    std::env::var_os("HEARTH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_hearth")))
}

/// The shipped embedder, or `None` (with a note) when it is not installed.
pub fn embedder() -> anyhow::Result<Option<Embedder>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    if !dir.join("model.safetensors").is_file() {
        println!("embedder not installed (run scripts/setup.sh); nothing measured");
        return Ok(None);
    }
    Ok(Some(Embedder::load(&dir)?))
}

/// The words of [`passages`] (order matters: scripts/bench-embed-reference.py
/// regenerates the same texts from this list).
pub const VOCAB: &[&str] = &[
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

/// Deterministic English-like passages of `words` words.
pub fn passages(n: usize, words: usize) -> Vec<String> {
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
