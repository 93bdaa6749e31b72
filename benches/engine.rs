//! `cargo bench`: prefill and decode throughput of the engine on the shipped
//! models (the same measurement as `hearth bench`, smaller sizes so it runs
//! in seconds). Models missing from `models/` are reported and skipped: a
//! benchmark measures, it does not gate.

use std::path::PathBuf;
use std::time::Instant;

use hearth::llm::{Engine, Logits};

const MODELS: &[(&str, &str)] = &[
    ("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    ("gemma3", "gemma-3-270m-q4_k_m.gguf"),
];

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    println!("| model   |  test |      t/s |");
    println!("| ------- | ----: | -------: |");
    for (name, file) in MODELS {
        let path = dir.join(file);
        if !path.is_file() {
            eprintln!(
                "{name}: {} missing (scripts/setup.sh fetches it)",
                path.display()
            );
            continue;
        }
        let engine = Engine::load(&path, 1024)?;
        let vocab = engine.model().hp.vocab_size as u32;
        let ids: Vec<u32> = (0..128u32).map(|i| (i * 7919) % vocab).collect();
        for (test, prefill, n) in [("pp128", true, 128usize), ("tg32", false, 32)] {
            let mut best = 0f64;
            for _ in 0..3 {
                let mut conv = engine.new_conversation()?;
                let start = Instant::now();
                if prefill {
                    engine
                        .model()
                        .forward(&ids[..n], conv.cache_mut(), Logits::Last)?;
                } else {
                    for &id in &ids[..n] {
                        engine
                            .model()
                            .forward(&[id], conv.cache_mut(), Logits::Last)?;
                    }
                }
                best = best.max(n as f64 / start.elapsed().as_secs_f64());
            }
            println!("| {name:<7} | {test:>5} | {best:>8.1} |");
        }
    }
    Ok(())
}
