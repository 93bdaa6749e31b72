//! `cargo bench --bench serve`: the daemon through the path a WhatsApp
//! message takes (`hearth serve` + `hearth bridge --simulate`, real model):
//! - burst: 200 messages from 20 chats at once: wall time, replies/s, the
//!   daemon's peak resident memory, every message answered once and in
//!   order within its chat;
//! - turns: five turns of one chat: prompt tokens prefilled and prefill
//!   time (time to first token) of turn 1 against turn 5, which reuses the
//!   chat's cached prefix.
//!
//! `HEARTH_BENCH_MESSAGES` / `HEARTH_BENCH_CHATS` change the burst size.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn hearth(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hearth"));
    c.args(args)
        .env("HEARTH_DATA_DIR", dir.join("data"))
        .env("HEARTH_KEY_FILE", dir.join("key"))
        .env("HEARTH_CONFIG", dir.join("config.toml"))
        .env("HEARTH_BRIDGE_DIR", dir.join("bridge"))
        .env("HEARTH_BRIDGE_KEY_FILE", dir.join("bridge.key"))
        .env(
            "HEARTH_MODELS_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
        )
        .env("NO_COLOR", "1");
    c
}

/// A WhatsApp direct chat (and its sender) for bench person `n`.
fn person(n: usize) -> String {
    format!("44700900{n:04}@s.whatsapp.net")
}

/// Starts serve with a config that lets the bench's people talk to it.
fn start(dir: &Path, log: &Path) -> anyhow::Result<Child> {
    let numbers: Vec<String> = (0..1000).map(|i| format!("\"+44700900{i:04}\"")).collect();
    std::fs::write(
        dir.join("config.toml"),
        format!("[whatsapp]\nallowed = [{}]\n", numbers.join(", ")),
    )?;
    let child = hearth(dir, &["serve", "-n", "16"])
        .env("RUST_LOG", "hearth=info")
        .stderr(std::fs::File::create(log)?)
        .spawn()?;
    let t = Instant::now();
    while std::os::unix::net::UnixStream::connect(dir.join("data/hearth.sock")).is_err() {
        anyhow::ensure!(t.elapsed() < Duration::from_secs(60), "serve did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// Peak resident memory of a live process, in MiB.
fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Sends `input` through the simulated bridge; returns its stdout lines.
fn through_bridge(dir: &Path, input: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut b = hearth(dir, &["bridge", "--simulate", "--idle", "120"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    b.stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdin"))?
        .write_all(input.as_bytes())?;
    let out = b.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "bridge failed");
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

fn message(chat: usize, id: usize, text: &str) -> String {
    format!(
        "{{\"message_id\":\"{id}\",\"chat_id\":\"{jid}\",\"sender_id\":\"{jid}\",\"text\":\"{text}\",\"timestamp_ms\":{id}}}\n",
        jid = person(chat)
    )
}

/// `prefilled_tokens` and `prefill_ms` of every "reply generated" log line.
fn prefills(log: &Path) -> anyhow::Result<Vec<(f64, f64)>> {
    let text = std::fs::read_to_string(log)?;
    let field = |line: &str, name: &str| -> Option<f64> {
        let at = line.find(&format!("{name}="))? + name.len() + 1;
        line[at..].split_whitespace().next()?.parse().ok()
    };
    Ok(text
        .lines()
        .filter(|l| l.contains("reply generated"))
        .filter_map(|l| Some((field(l, "prefilled_tokens")?, field(l, "prefill_ms")?)))
        .collect())
}

fn main() -> anyhow::Result<()> {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    if !models.join("SmolLM2-135M-Instruct.Q4_1.gguf").is_file() {
        println!("model not installed (run scripts/setup.sh); nothing measured");
        return Ok(());
    }
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (n, chats) = (
        env("HEARTH_BENCH_MESSAGES", 200),
        env("HEARTH_BENCH_CHATS", 20),
    );

    // Burst.
    let tmp = tempfile::tempdir()?;
    let log = tmp.path().join("serve.log");
    let mut serve = start(tmp.path(), &log)?;
    let input: String = (0..n)
        .map(|i| {
            message(
                i % chats,
                i,
                &format!("Give me one word for the number {i}."),
            )
        })
        .collect();
    let t = Instant::now();
    let replies = through_bridge(tmp.path(), &input)?;
    let wall = t.elapsed().as_secs_f64();
    let rss = peak_rss_mb(serve.id());
    serve.kill()?;
    serve.wait()?;
    anyhow::ensure!(
        replies.len() == n,
        "{} replies for {n} messages",
        replies.len()
    );
    let mut last = vec![-1i64; chats];
    for r in &replies {
        let chat: usize = r["chat_id"].as_str().unwrap_or("")[8..12].parse()?;
        let id: i64 = r["reply_to"].as_str().unwrap_or("").parse()?;
        anyhow::ensure!(id > last[chat], "chat {chat} answered out of order");
        last[chat] = id;
    }
    // The bound the engine issue sets: resident memory at most 1.3x the
    // files of the default model and the embedder.
    let files_mb = [
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "all-MiniLM-L6-v2/model.safetensors",
        "all-MiniLM-L6-v2/tokenizer.json",
        "all-MiniLM-L6-v2/config.json",
    ]
    .iter()
    .filter_map(|f| std::fs::metadata(models.join(f)).ok())
    .map(|m| m.len() as f64 / (1024.0 * 1024.0))
    .sum::<f64>();
    println!(
        "serve burst: {n} messages from {chats} chats answered in {wall:.1} s = {:.2} replies/s; serve peak RSS {rss:.0} MiB = {:.2}x the model and embedder files ({files_mb:.0} MiB; bound 1.3x)",
        n as f64 / wall,
        rss / files_mb
    );

    // Turns of one chat.
    let tmp = tempfile::tempdir()?;
    let log = tmp.path().join("serve.log");
    let mut serve = start(tmp.path(), &log)?;
    let topics = ["cats", "rivers", "bread", "trains", "stars"];
    for (i, topic) in topics.iter().enumerate() {
        // One message at a time, as a person types.
        through_bridge(
            tmp.path(),
            &message(0, i, &format!("Tell me about {topic}.")),
        )?;
    }
    serve.kill()?;
    serve.wait()?;
    let p = prefills(&log)?;
    anyhow::ensure!(p.len() == topics.len(), "{p:?}");
    let (first, fifth) = (p[0], p[topics.len() - 1]);
    println!(
        "serve turns: turn 1 prefilled {:.0} tokens in {:.0} ms, turn 5 prefilled {:.0} tokens in {:.0} ms: time to first token ratio {:.2}",
        first.0,
        first.1,
        fifth.0,
        fifth.1,
        fifth.1 / first.1
    );
    Ok(())
}
