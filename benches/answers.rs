//! `cargo bench --bench answers`: what a user gets from each chat model,
//! through the real CLI (`hearth ask --json`, the real models, a real
//! index). The cases are in `benches/answers/cases.toml`, the indexed
//! files in `benches/answers/files/` (facts with close distractors: two
//! passwords, several dates and codes per file):
//! - general: questions with a known short answer, scored by the answer
//!   containing the expected string;
//! - files: questions answered from the index, scored by the answer
//!   containing the fact and, separately, by the fact's file being cited;
//! - writing: short messages, a list, a summary, scored by a length bound,
//!   required words and no template placeholders (`[Your Name]`).
//!
//! Per model: the scores, the median time to first token (question to the
//! first piece of the answer, model loaded; with sources for the file
//! questions) and the median decode speed. Prints a table; `-- --json`
//! prints one JSON object. `-- --models a,b` picks the models [default:
//! smollm2,qwen25coder]; `-- --verbose` prints every answer that failed;
//! `-- --only general|files|writing` runs one kind of case (for tuning).
//! `HEARTH_BIN=target/release/hearth` measures that binary instead of the
//! one built with the harness. Sampling is Hearth's default for each kind of question (greedy with
//! sources, else 0.2 with a fixed seed), so runs repeat.

use std::path::Path;
use std::process::Command;

use serde::Deserialize;

mod common;
use common::{binary, root};
use serde_json::Value;

#[derive(Deserialize)]
struct Cases {
    general: Vec<Fact>,
    file: Vec<Fact>,
    writing: Vec<Writing>,
}

#[derive(Deserialize)]
struct Fact {
    q: String,
    expect: Vec<String>,
    file: Option<String>,
}

#[derive(Deserialize)]
struct Writing {
    q: String,
    min_words: usize,
    max_words: usize,
    require: Vec<String>,
}

fn hearth(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(binary());
    c.args(args)
        .env("HEARTH_DATA_DIR", dir.join("data"))
        .env("HEARTH_KEY_FILE", dir.join("key"))
        .env("HEARTH_CONFIG", dir.join("config.toml"))
        .env("HEARTH_MODELS_DIR", root().join("models"))
        .env_remove("HEARTH_MODEL")
        .env("RUST_LOG", "warn");
    c
}

fn run_ok(mut c: Command) -> anyhow::Result<String> {
    let o = c.output()?;
    if !o.status.success() {
        anyhow::bail!("{:?} failed: {}", c, String::from_utf8_lossy(&o.stderr));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// One answer: its text, the files cited, and timings.
struct Answer {
    text: String,
    sources: Vec<String>,
    first_token_ms: f64,
    decode_tps: f64,
    generated: u64,
}

fn ask(dir: &Path, model: &str, q: &str, max_tokens: &str) -> anyhow::Result<Answer> {
    let out = run_ok(hearth(
        dir,
        &["ask", "--json", "-m", model, "-n", max_tokens, q],
    ))?;
    let v: Value = serde_json::from_str(&out)?;
    Ok(Answer {
        text: v["text"].as_str().unwrap_or_default().to_string(),
        sources: v["sources"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        first_token_ms: v["timings"]["first_token_ms"].as_f64().unwrap_or(0.0),
        decode_tps: v["timings"]["decode_tokens_per_s"].as_f64().unwrap_or(0.0),
        generated: v["generated_tokens"].as_u64().unwrap_or(0),
    })
}

fn contains_any(text: &str, expect: &[String]) -> bool {
    let t = text.to_lowercase();
    expect.iter().any(|e| t.contains(&e.to_lowercase()))
}

/// A template placeholder a model copied from its training data:
/// `[Your Name]`, `[Neighbour's name]`, `[Date]`, `<Your Name>`.
fn has_placeholder(text: &str) -> bool {
    for (open, close) in [('[', ']'), ('<', '>')] {
        let mut rest = text;
        while let Some(i) = rest.find(open) {
            let after = &rest[i + 1..];
            let Some(j) = after.find(close) else { break };
            let inner = &after[..j];
            if inner.len() >= 3
                && inner.chars().next().is_some_and(|c| c.is_alphabetic())
                && inner
                    .chars()
                    .all(|c| c.is_alphabetic() || matches!(c, ' ' | '\'' | '-' | '/'))
            {
                return true;
            }
            rest = &after[j..];
        }
    }
    false
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[derive(serde::Serialize)]
struct Score {
    model: String,
    general: (usize, usize),
    file_answer: (usize, usize),
    file_cited: (usize, usize),
    /// The fact in the answer and its file cited.
    file_both: (usize, usize),
    writing: (usize, usize),
    ttft_ms_median: f64,
    ttft_ms_median_with_sources: f64,
    decode_tps_median: f64,
    failures: Vec<String>,
}

fn evaluate(dir: &Path, model: &str, cases: &Cases) -> anyhow::Result<Score> {
    let mut s = Score {
        model: model.to_string(),
        general: (0, cases.general.len()),
        file_answer: (0, cases.file.len()),
        file_cited: (0, cases.file.len()),
        file_both: (0, cases.file.len()),
        writing: (0, cases.writing.len()),
        ttft_ms_median: 0.0,
        ttft_ms_median_with_sources: 0.0,
        decode_tps_median: 0.0,
        failures: Vec::new(),
    };
    let (mut ttft, mut ttft_src, mut tps) = (Vec::new(), Vec::new(), Vec::new());
    let mut note = |a: &Answer, with_sources: bool| {
        ttft.push(a.first_token_ms);
        if with_sources {
            ttft_src.push(a.first_token_ms);
        }
        if a.generated >= 4 {
            tps.push(a.decode_tps);
        }
    };
    for c in &cases.general {
        let a = ask(dir, model, &c.q, "48")?;
        note(&a, !a.sources.is_empty());
        if contains_any(&a.text, &c.expect) {
            s.general.0 += 1;
        } else {
            s.failures.push(format!("general: {} -> {:?}", c.q, a.text));
        }
    }
    for c in &cases.file {
        let a = ask(dir, model, &c.q, "64")?;
        note(&a, !a.sources.is_empty());
        let answered = contains_any(&a.text, &c.expect);
        let file = c.file.as_deref().unwrap_or_default();
        let cited = a.sources.iter().any(|p| p.ends_with(&format!("/{file}")));
        s.file_answer.0 += usize::from(answered);
        s.file_cited.0 += usize::from(cited);
        s.file_both.0 += usize::from(answered && cited);
        if !(answered && cited) {
            s.failures.push(format!(
                "file ({}{}): {} -> {:?}",
                if answered { "" } else { "answer" },
                if cited { "" } else { " citation" },
                c.q,
                a.text
            ));
        }
    }
    for c in &cases.writing {
        let a = ask(dir, model, &c.q, "200")?;
        note(&a, !a.sources.is_empty());
        let words = a.text.split_whitespace().count();
        let lower = a.text.to_lowercase();
        let mut why = Vec::new();
        if words < c.min_words || words > c.max_words {
            why.push(format!("{words} words"));
        }
        for r in &c.require {
            if !lower.contains(&r.to_lowercase()) {
                why.push(format!("no `{r}`"));
            }
        }
        if has_placeholder(&a.text) {
            why.push("placeholder".to_string());
        }
        if why.is_empty() {
            s.writing.0 += 1;
        } else {
            s.failures.push(format!(
                "writing ({}): {} -> {:?}",
                why.join(", "),
                c.q,
                a.text
            ));
        }
    }
    s.ttft_ms_median = median(ttft);
    s.ttft_ms_median_with_sources = median(ttft_src);
    s.decode_tps_median = median(tps);
    Ok(s)
}

fn pct((a, n): (usize, usize)) -> String {
    format!("{a}/{n} ({:.0}%)", 100.0 * a as f64 / n.max(1) as f64)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let verbose = args.iter().any(|a| a == "--verbose");
    let models: Vec<String> = args
        .iter()
        .position(|a| a == "--models")
        .and_then(|i| args.get(i + 1))
        .map(|m| m.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| vec!["smollm2".into(), "qwen25coder".into()]);
    let here = root().join("benches/answers");
    let mut cases: Cases = toml::from_str(&std::fs::read_to_string(here.join("cases.toml"))?)?;
    if let Some(only) = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
    {
        match only.as_str() {
            "general" => (cases.file.clear(), cases.writing.clear()),
            "files" => (cases.general.clear(), cases.writing.clear()),
            "writing" => (cases.general.clear(), cases.file.clear()),
            other => anyhow::bail!("--only {other}: expected general, files or writing"),
        };
    }

    let dir = tempfile::tempdir()?;
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs)?;
    for e in std::fs::read_dir(here.join("files"))? {
        let e = e?;
        std::fs::copy(e.path(), docs.join(e.file_name()))?;
    }
    run_ok(hearth(
        dir.path(),
        &["index", "add", docs.to_str().unwrap_or_default()],
    ))?;
    run_ok(hearth(dir.path(), &["index"]))?;

    let mut scores = Vec::new();
    for m in &models {
        eprintln!(
            "answers: {m} ({} cases)",
            cases.general.len() + cases.file.len() + cases.writing.len()
        );
        scores.push(evaluate(dir.path(), m, &cases)?);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&scores)?);
        return Ok(());
    }
    println!(
        "| model | general | file: answer | file: cited | file: both | writing | TTFT median | TTFT with sources | decode t/s |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    for s in &scores {
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.0} ms | {:.0} ms | {:.1} |",
            s.model,
            pct(s.general),
            pct(s.file_answer),
            pct(s.file_cited),
            pct(s.file_both),
            pct(s.writing),
            s.ttft_ms_median,
            s.ttft_ms_median_with_sources,
            s.decode_tps_median
        );
    }
    if verbose {
        for s in &scores {
            for f in &s.failures {
                println!("{}: {f}", s.model);
            }
        }
    }
    Ok(())
}
