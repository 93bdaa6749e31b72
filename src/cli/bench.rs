//! `hearth bench`: llama-bench-style throughput of catalog models or any
//! GGUF file (`-m NAME|FILE.gguf`). One (model, threads) pair runs in this
//! process; several pairs each run in a child process, because candle and
//! the compute pool fix their thread counts once per process. Every record
//! carries the host it ran on ([`crate::bench::host`]) so figures from two
//! boards can be compared.

use std::time::Instant;

use anyhow::Context;
use clap::Args;
use rand::{Rng, SeedableRng};

use super::{GlobalArgs, ModelArgs, Outcome, load_engine, open_catalog, parse_list};
use crate::bench::Stats;
use crate::bench::host::Host;
use crate::catalog::{FileState, ModelKind};
use crate::llm::{Engine, Logits};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Models, comma-separated: names from `hearth models list` or paths
    /// to GGUF files (llama, gemma3, qwen2, qwen3) [default: every
    /// installed language model]
    #[arg(short, long, value_name = "NAME|FILE.gguf[,…]")]
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
    /// Skip the memory-bandwidth measurement (about a second per thread
    /// count; without it tg rows show no share of the memory bound)
    #[arg(long)]
    pub no_bandwidth: bool,
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
    #[serde(default)]
    pub min_ts: f64,
    #[serde(default)]
    pub median_ts: f64,
    pub samples_ts: Vec<f64>,
    /// Resident memory after the test, bytes.
    pub rss_bytes: u64,
    /// Peak resident memory of the process so far, bytes.
    pub peak_rss_bytes: u64,
    /// Weight bytes one decode step reads.
    #[serde(default)]
    pub bytes_per_token: u64,
    /// Decode speed if weights streamed at the measured read bandwidth
    /// (tg tests, when bandwidth was measured).
    #[serde(default)]
    pub mem_bound_ts: Option<f64>,
    /// Where it ran (absent in files from before it was recorded).
    #[serde(default)]
    pub host: Option<Host>,
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
                anyhow::bail!(
                    "no language model is installed; run `scripts/setup.sh` first, or name a file with `-m FILE.gguf`"
                );
            }
            v
        }
    };
    // A file no child could run is refused here, in one line, before any
    // child starts.
    for m in &models {
        if let Some(path) = model_file(m) {
            let file = crate::llm::gguf::GgufFile::open(path)?;
            crate::llm::model::Model::check(&file)?;
        }
    }
    let threads: Vec<Option<usize>> = match &a.threads {
        Some(t) => parse_list(t)?.into_iter().map(Some).collect(),
        None => vec![None],
    };
    let n_prompt = parse_list(&a.n_prompt)?;
    let n_gen = parse_list(&a.n_gen)?;

    let mut records = Vec::new();
    if models.len() == 1 && threads.len() == 1 {
        records = run_in_process(
            g,
            &models[0],
            threads[0],
            &n_prompt,
            &n_gen,
            a.repetitions,
            !a.no_bandwidth,
        )?;
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
    if a.no_bandwidth {
        cmd.arg("--no-bandwidth");
    }
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
        // The child printed its own one-line reason on stderr.
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
    measure_bandwidth: bool,
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
    let (name, engine) = match model_file(model) {
        Some(path) => {
            let engine = Engine::load(path, args.ctx)?;
            let name = path
                .file_name()
                .map_or_else(|| model.to_string(), |n| n.to_string_lossy().into_owned());
            (name, engine)
        }
        None => load_engine(g, &args)?,
    };
    let host = Host::describe(measure_bandwidth);
    let bytes_per_token = engine.model().bytes_per_token() as u64;
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
        let stats = Stats::of(&samples);
        let (rss, peak) = crate::process::resident_memory().unwrap_or((0, 0));
        let mem_bound_ts = host
            .mem_read_gbs
            .filter(|_| tg > 0 && bytes_per_token > 0)
            .map(|gbs| gbs * 1e9 / bytes_per_token as f64);
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
            avg_ts: stats.mean,
            stddev_ts: stats.sd,
            min_ts: stats.min,
            median_ts: stats.median,
            samples_ts: samples,
            rss_bytes: rss,
            peak_rss_bytes: peak,
            bytes_per_token,
            mem_bound_ts,
            host: Some(host.clone()),
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

/// `arg` as a GGUF file to benchmark, when it names one (a path, or a
/// name ending in `.gguf`), rather than a catalog model.
fn model_file(arg: &str) -> Option<&std::path::Path> {
    let p = std::path::Path::new(arg);
    (arg.contains('/') || arg.ends_with(".gguf") || p.is_file()).then_some(p)
}

fn print_table(records: &[BenchRecord], baseline: Option<&[BenchRecord]>) -> anyhow::Result<()> {
    for line in host_lines(records) {
        outln!("{line}");
    }
    let (head, rule) = match baseline {
        Some(_) => (" vs baseline |", " ----------: |"),
        None => ("", ""),
    };
    outln!(
        "| model                        |       size |     params | kernels      | threads |  test |                  t/s |     min |  median | % bound |   rss MiB |{head}"
    );
    outln!(
        "| ---------------------------- | ---------: | ---------: | ------------ | ------: | ----: | -------------------: | ------: | ------: | ------: | --------: |{rule}"
    );
    for r in records {
        let cmp = match baseline.map(|b| versus(r, b)) {
            None => String::new(),
            Some(None) => format!(" {:>11} |", "-"),
            Some(Some(x)) if x < REGRESSION => format!(" {:>11} |", format!("{x:.2}x SLOWER")),
            Some(Some(x)) => format!(" {:>11} |", format!("{x:.2}x")),
        };
        let bound = r
            .mem_bound_ts
            .filter(|b| *b > 0.0)
            .map_or("-".to_string(), |b| format!("{:.0}%", 100.0 * r.avg_ts / b));
        let kernels = r.host.as_ref().map_or("-", |h| h.kernels.as_str());
        outln!(
            "| {:<28} | {:>6.2} MiB | {:>8.2} M | {:<12} | {:>7} | {:>5} | {:>20} | {:>7.2} | {:>7.2} | {:>7} | {:>9.1} |{cmp}",
            r.model_type,
            r.model_size as f64 / (1024.0 * 1024.0),
            r.model_n_params as f64 / 1e6,
            kernels,
            r.n_threads,
            r.test,
            format!("{:.2} ± {:.2}", r.avg_ts, r.stddev_ts),
            r.min_ts,
            r.median_ts,
            bound,
            r.peak_rss_bytes as f64 / (1024.0 * 1024.0),
        );
    }
    Ok(())
}

/// The lines above the table: the host once, and the read bandwidth
/// measured at each thread count ("% bound" divides tg by the speed that
/// bandwidth allows).
fn host_lines(records: &[BenchRecord]) -> Vec<String> {
    let Some(first) = records.iter().find_map(|r| r.host.as_ref()) else {
        return Vec::new();
    };
    let summary = first.summary();
    let mut bw: Vec<(usize, f64)> = Vec::new();
    for h in records.iter().filter_map(|r| r.host.as_ref()) {
        if let Some(g) = h.mem_read_gbs
            && !bw.iter().any(|(t, _)| *t == h.threads_used)
        {
            bw.push((h.threads_used, g));
        }
    }
    let mut lines = vec![format!("host: {summary}")];
    if !bw.is_empty() {
        let parts: Vec<String> = bw
            .iter()
            .map(|(t, g)| format!("{t} thread{} {g:.1} GB/s", if *t == 1 { "" } else { "s" }))
            .collect();
        lines.push(format!("memory read bandwidth: {}", parts.join(", ")));
    }
    lines.push(String::new());
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_told_from_names() {
        assert!(model_file("models/x.gguf").is_some());
        assert!(model_file("/tmp/some-model").is_some());
        assert!(model_file("mine.gguf").is_some());
        assert!(model_file("qwen25coder").is_none());
    }

    #[test]
    fn old_json_still_reads_as_a_baseline() {
        let old = r#"[{"model":"smollm2","model_type":"llama 135M Q4_1","model_size":1,"model_n_params":2,
            "n_threads":2,"test":"pp512","n_prompt":512,"n_gen":0,"avg_ts":100.0,"stddev_ts":1.0,
            "samples_ts":[100.0],"rss_bytes":1,"peak_rss_bytes":1}]"#;
        let v: Vec<BenchRecord> = serde_json::from_str(old).unwrap();
        assert!(v[0].host.is_none() && v[0].mem_bound_ts.is_none());
    }
}
