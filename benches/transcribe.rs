//! Voice-note transcription speed: `hearth transcribe` against
//! faster-whisper (int8 and float32, the same model directory) on the test
//! clips, at 1 and 2 threads, in one sitting, interleaved per thread count.
//!
//!   cargo bench --bench transcribe            (needs faster-whisper==1.2.1)
//!
//! Prints seconds per clip, the real-time factor (compute seconds per second
//! of audio, model load excluded) and, for Hearth, the resident memory with
//! Whisper loaded.

mod common;

use std::process::Command;

use serde_json::Value;

struct Run {
    seconds: f64,
    audio: f64,
    clips: usize,
    rss_mib: Option<f64>,
}

fn clips() -> Vec<String> {
    let dir = common::root().join("tests/voice/clips");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    v.sort();
    v
}

/// Peak resident memory of a finished child, from `/usr/bin/time -f %M`.
fn timed(cmd: &mut Command) -> (String, Option<f64>) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let rss = err
        .lines()
        .rev()
        .find_map(|l| {
            l.trim()
                .strip_prefix("maxrss_kib=")
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|k| k / 1024.0);
    (String::from_utf8(out.stdout).unwrap(), rss)
}

fn hearth(threads: usize, files: &[String]) -> Run {
    let mut c = Command::new("/usr/bin/time");
    c.arg("-f").arg("maxrss_kib=%M").arg(common::binary());
    c.args(["transcribe", "--json", "-t", &threads.to_string()])
        .args(files);
    c.current_dir(common::root());
    collect(&mut c, |v| v["timings"]["total_s"].as_f64().unwrap())
}

fn faster_whisper(compute: &str, threads: usize, files: &[String]) -> Run {
    let model = common::root().join("models/whisper-base");
    let mut c = Command::new("/usr/bin/time");
    c.arg("-f").arg("maxrss_kib=%M").arg("python3");
    c.arg(common::root().join("scripts/voice-reference.py"));
    c.arg(model)
        .args(["--compute", compute, "--threads", &threads.to_string()])
        .args(files);
    collect(&mut c, |v| v["seconds"].as_f64().unwrap())
}

/// Runs `c` and sums its JSON lines: `seconds(line)` of compute, the audio
/// duration, the clips.
fn collect(c: &mut Command, seconds: impl Fn(&Value) -> f64) -> Run {
    let (out, rss_mib) = timed(c);
    let mut r = Run {
        seconds: 0.0,
        audio: 0.0,
        clips: 0,
        rss_mib,
    };
    for l in out.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        r.seconds += seconds(&v);
        r.audio += v["duration_s"].as_f64().unwrap();
        r.clips += 1;
    }
    r
}

fn main() {
    let files = clips();
    println!("| engine | threads | clips | audio s | s/clip | RTF | peak RSS MiB |");
    println!("|---|--:|--:|--:|--:|--:|--:|");
    for threads in [1, 2] {
        let runs = [
            ("hearth (Q8_0)", hearth(threads, &files)),
            (
                "faster-whisper int8",
                faster_whisper("int8", threads, &files),
            ),
            (
                "faster-whisper float32",
                faster_whisper("float32", threads, &files),
            ),
        ];
        for (name, r) in runs {
            println!(
                "| {name} | {threads} | {} | {:.1} | {:.3} | {:.3} | {} |",
                r.clips,
                r.audio,
                r.seconds / r.clips as f64,
                r.seconds / r.audio,
                r.rss_mib
                    .map(|m| format!("{m:.0}"))
                    .unwrap_or_else(|| "-".into()),
            );
        }
    }
}
