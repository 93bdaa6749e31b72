//! `hearth bench`: llama-bench-style throughput. One (model, threads) pair
//! runs in this process; several pairs each run in a child process, because
//! candle fixes its thread pools once per process.

use std::time::Instant;

use anyhow::Context;
use clap::Args;
use rand::{Rng, SeedableRng};

use super::{GlobalArgs, ModelArgs, Outcome, load_engine, open_catalog, parse_list};
use crate::catalog::{FileState, ModelKind};
use crate::llm::{Engine, Logits};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Models, comma-separated [default: every installed language model]
    #[arg(short, long, value_name = "NAMES")]
    pub model: Option<String>,
    /// Thread counts, comma-separated [default: all cores]
    #[arg(short, long, value_name = "N[,N…]")]
    pub threads: Option<String>,
    /// Prompt sizes to prefill (pp tests), comma-separated; 0 skips
    #[arg(short = 'p', long, default_value = "512")]
    pub n_prompt: String,
    /// Tokens to generate (tg tests), comma-separated; 0 skips
    #[arg(short = 'n', long, default_value = "128")]
    pub n_gen: String,
    /// Measured repetitions per test (after one warm-up)
    #[arg(short, long, default_value_t = 5)]
    pub repetitions: usize,
    /// Print JSON records instead of a table
    #[arg(long)]
    pub json: bool,
    /// Compare with an earlier `--json` run: adds each test's ratio to it
    /// and exits 1 when any is more than 10% slower
    #[arg(long, value_name = "FILE.json")]
    pub baseline: Option<std::path::PathBuf>,
}

/// Slower than this fraction of the baseline counts as a regression.
const REGRESSION: f64 = 0.90;

impl BenchArgs {
    /// The thread count to set up front, when exactly one is asked for.
    pub fn single_thread_count(&self) -> Option<usize> {
        let list = parse_list(self.threads.as_deref()?).ok()?;
        (list.len() == 1).then(|| list[0])
    }
}

/// One measured test, in llama-bench's terms.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BenchRecord {
    pub model: String,
    pub model_type: String,
    pub model_size: u64,
    pub model_n_params: usize,
    pub n_threads: usize,
    pub test: String,
    pub n_prompt: usize,
    pub n_gen: usize,
    pub avg_ts: f64,
    pub stddev_ts: f64,
    pub samples_ts: Vec<f64>,
    /// Resident memory after the test, bytes.
    pub rss_bytes: u64,
    /// Peak resident memory of the process so far, bytes.
    pub peak_rss_bytes: u64,
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let mean = xs.iter().sum::<f64>() / n;
    let sd = if xs.len() > 1 {
        (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, sd)
}

pub fn bench(g: &GlobalArgs, a: BenchArgs) -> anyhow::Result<Outcome> {
    let models: Vec<String> = match &a.model {
        Some(m) => m.split(',').map(|s| s.trim().to_string()).collect(),
        None => {
            let catalog = open_catalog(g)?;
            let mut v = Vec::new();
            for m in catalog
                .manifest
                .models
                .iter()
                .filter(|m| m.kind == ModelKind::Llm)
            {
                if m.files
                    .iter()
                    .all(|f| matches!(catalog.check(f, false), Ok(FileState::Present)))
                {
                    v.push(m.name.clone());
                }
            }
            if v.is_empty() {
                anyhow::bail!("no language model is installed; run `scripts/setup.sh` first");
            }
            v
        }
    };
    let threads: Vec<Option<usize>> = match &a.threads {
        Some(t) => parse_list(t)?.into_iter().map(Some).collect(),
        None => vec![None],
    };
    let n_prompt = parse_list(&a.n_prompt)?;
    let n_gen = parse_list(&a.n_gen)?;

    let mut records = Vec::new();
    if models.len() == 1 && threads.len() == 1 {
        records = run_in_process(g, &models[0], threads[0], &n_prompt, &n_gen, a.repetitions)?;
    } else {
        for m in &models {
            for t in &threads {
                records.extend(run_child(g, &a, m, *t)?);
            }
        }
    }
    let baseline: Vec<BenchRecord> = match &a.baseline {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading the baseline {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| {
                format!("{} is not the output of `hearth bench --json`", p.display())
            })?
        }
        None => Vec::new(),
    };
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&records)?);
    } else {
        print_table(&records, a.baseline.as_ref().map(|_| baseline.as_slice()))?;
    }
    let regressed: Vec<String> = records
        .iter()
        .filter_map(|r| {
            let ratio = versus(r, &baseline)?;
            (ratio < REGRESSION)
                .then(|| format!("{} {}t {} at {ratio:.2}x", r.model, r.n_threads, r.test))
        })
        .collect();
    if !regressed.is_empty() {
        eprintln!(
            "regression: {} (more than {:.0}% slower than the baseline)",
            regressed.join(", "),
            (1.0 - REGRESSION) * 100.0
        );
        return Ok(Outcome::CheckFailed);
    }
    Ok(Outcome::Ok)
}

/// This record's speed over the baseline's for the same model, threads and
/// test (`None` when the baseline has no such test).
fn versus(r: &BenchRecord, baseline: &[BenchRecord]) -> Option<f64> {
    baseline
        .iter()
        .find(|b| b.model == r.model && b.n_threads == r.n_threads && b.test == r.test)
        .filter(|b| b.avg_ts > 0.0)
        .map(|b| r.avg_ts / b.avg_ts)
}

fn run_child(
    g: &GlobalArgs,
    a: &BenchArgs,
    model: &str,
    threads: Option<usize>,
) -> anyhow::Result<Vec<BenchRecord>> {
    let exe = std::env::current_exe().context("locating the hearth binary")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("bench")
        .args(["--model", model])
        .args(["-p", &a.n_prompt, "-n", &a.n_gen])
        .args(["-r", &a.repetitions.to_string()])
        .arg("--json");
    if let Some(t) = threads {
        cmd.args(["--threads", &t.to_string()]);
    }
    if let Some(d) = &g.models_dir {
        cmd.arg("--models-dir").arg(d);
    }
    if let Some(m) = &g.manifest {
        cmd.arg("--manifest").arg(m);
    }
    eprintln!(
        "benchmarking {model} with {} threads…",
        threads.map_or("all".to_string(), |t| t.to_string())
    );
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running the benchmark child process")?;
    if !out.status.success() {
        anyhow::bail!("benchmark of `{model}` failed ({})", out.status);
    }
    serde_json::from_slice(&out.stdout).context("reading the benchmark child's results")
}

fn run_in_process(
    g: &GlobalArgs,
    model: &str,
    threads: Option<usize>,
    n_prompt: &[usize],
    n_gen: &[usize],
    reps: usize,
) -> anyhow::Result<Vec<BenchRecord>> {
    if let Some(t) = threads
        && t != crate::process::compute_threads()
    {
        anyhow::bail!("internal: thread count {t} was not set up before start");
    }
    let needed = n_prompt.iter().chain(n_gen).copied().max().unwrap_or(0) + 1;
    let args = ModelArgs {
        model: Some(model.to_string()),
        threads,
        ctx: needed.max(512),
    };
    let (name, engine) = load_engine(g, &args)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1234);
    let vocab = engine.model().hp.vocab_size as u32;
    let mut records = Vec::new();
    let tests = n_prompt
        .iter()
        .filter(|&&n| n > 0)
        .map(|&n| (n, 0))
        .chain(n_gen.iter().filter(|&&n| n > 0).map(|&n| (0, n)));
    for (pp, tg) in tests {
        let mut samples = Vec::with_capacity(reps);
        for rep in 0..=reps {
            let ids: Vec<u32> = (0..pp.max(tg))
                .map(|_| rng.random_range(0..vocab))
                .collect();
            let secs = time_test(&engine, &ids, pp > 0)?;
            if rep > 0 {
                samples.push(ids.len() as f64 / secs);
            }
        }
        let (avg, sd) = mean_sd(&samples);
        let (rss, peak) = crate::process::resident_memory().unwrap_or((0, 0));
        records.push(BenchRecord {
            model: name.clone(),
            model_type: describe(&engine),
            model_size: engine.model().weight_bytes() as u64,
            model_n_params: engine.n_params(),
            n_threads: crate::process::compute_threads(),
            test: if pp > 0 {
                format!("pp{pp}")
            } else {
                format!("tg{tg}")
            },
            n_prompt: pp,
            n_gen: tg,
            avg_ts: avg,
            stddev_ts: sd,
            samples_ts: samples,
            rss_bytes: rss,
            peak_rss_bytes: peak,
        });
    }
    Ok(records)
}

/// Seconds for one test from an empty cache: one prefill of all `ids`, or
/// one decode per id.
fn time_test(engine: &Engine, ids: &[u32], prefill: bool) -> anyhow::Result<f64> {
    let mut conv = engine.new_conversation()?;
    let model = engine.model();
    let cache = conv.cache_mut();
    let mut logits = Vec::new();
    let start = Instant::now();
    if prefill {
        model.forward_into(ids, cache, Logits::Last, &mut logits)?;
    } else {
        for &id in ids {
            model.forward_into(&[id], cache, Logits::Last, &mut logits)?;
        }
    }
    Ok(start.elapsed().as_secs_f64())
}

fn describe(engine: &Engine) -> String {
    let m = engine.model();
    let params = engine.n_params() as f64;
    let size = if params >= 1e9 {
        format!("{:.1}B", params / 1e9)
    } else {
        format!("{:.0}M", params / 1e6)
    };
    format!("{} {size} {}", m.hp.arch.name(), engine.quant_label())
}

fn print_table(records: &[BenchRecord], baseline: Option<&[BenchRecord]>) -> anyhow::Result<()> {
    let (head, rule) = match baseline {
        Some(_) => (" vs baseline |", " ----------: |"),
        None => ("", ""),
    };
    outln!(
        "| model                        |       size |     params | backend | threads |  test |                  t/s |   rss MiB |{head}"
    );
    outln!(
        "| ---------------------------- | ---------: | ---------: | ------- | ------: | ----: | -------------------: | --------: |{rule}"
    );
    for r in records {
        let cmp = match baseline.map(|b| versus(r, b)) {
            None => String::new(),
            Some(None) => format!(" {:>11} |", "-"),
            Some(Some(x)) if x < REGRESSION => format!(" {:>11} |", format!("{x:.2}x SLOWER")),
            Some(Some(x)) => format!(" {:>11} |", format!("{x:.2}x")),
        };
        outln!(
            "| {:<28} | {:>6.2} MiB | {:>8.2} M | CPU     | {:>7} | {:>5} | {:>20} | {:>9.1} |{cmp}",
            r.model_type,
            r.model_size as f64 / (1024.0 * 1024.0),
            r.model_n_params as f64 / 1e6,
            r.n_threads,
            r.test,
            format!("{:.2} ± {:.2}", r.avg_ts, r.stddev_ts),
            r.peak_rss_bytes as f64 / (1024.0 * 1024.0),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_standard_deviation() {
        let (m, sd) = mean_sd(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert!((m - 5.0).abs() < 1e-12);
        assert!((sd - 2.138_089_935).abs() < 1e-6);
    }
}
