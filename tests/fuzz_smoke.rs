//! A short fuzz run in every `cargo test`: each cargo-fuzz target's body
//! (`fuzz/targets.rs`) on its seeds and on a few thousand deterministic
//! mutations of them (bit flips, truncation, splices, random bytes). The
//! long coverage-guided runs are `cargo fuzz run TARGET` (see fuzz/).

#[path = "../fuzz/targets.rs"]
mod targets;

use std::path::PathBuf;

use rand::{Rng, SeedableRng, rngs::StdRng};

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds for {target}");
    out
}

fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut d = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..6) {
        match rng.random_range(0..6) {
            0 if !d.is_empty() => {
                let i = rng.random_range(0..d.len());
                d[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !d.is_empty() => d.truncate(rng.random_range(0..d.len())),
            2 => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                let at = rng.random_range(0..=d.len());
                let from = rng.random_range(0..=other.len());
                d.splice(at..at, other[from..].iter().copied());
            }
            3 => {
                let at = rng.random_range(0..=d.len());
                let junk: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                d.splice(at..at, junk);
            }
            4 if !d.is_empty() => {
                let i = rng.random_range(0..d.len());
                d[i] = *b"{}[]\"\\:,\n0/-~ @<>|"
                    .get(rng.random_range(0..18))
                    .unwrap_or(&b'x');
            }
            _ => {}
        }
    }
    d
}

fn smoke(target: &str, runs: usize, body: fn(&[u8])) {
    let seeds = seeds(target);
    for s in &seeds {
        body(s);
    }
    let mut rng = StdRng::seed_from_u64(0x4845_4152_5448);
    for _ in 0..runs {
        body(&mutate(&mut rng, &seeds));
    }
}

#[test]
fn proto_decoder() {
    smoke("proto", 20_000, targets::proto);
}

#[test]
fn command_parser() {
    smoke("command", 20_000, targets::command);
}

#[test]
fn reminder_times() {
    smoke("when", 20_000, targets::when);
}

#[test]
fn config_loader() {
    smoke("config", 5_000, targets::config);
}

#[test]
fn document_extractors() {
    smoke("extract", 2_000, targets::extract);
}

#[test]
fn voice_note_decoder() {
    smoke("audio", 300, targets::audio);
}
