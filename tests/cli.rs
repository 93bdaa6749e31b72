//! The `hearth` binary as a user runs it: `ask --json` and `bench --json`
//! on the real model, exit code 2 with one clear line for a missing,
//! corrupt or unsupported model, and `models pull`/`import` with sha256
//! checks, through a local HTTP server that answers like the Hugging Face
//! hub (`HF_ENDPOINT`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

mod common;
use common::{
    hearth, hearth_with_store, models_dir, registered_docs, require_model, root, run, stderr,
};

/// A manifest with one model `name` whose single file is `file`.
fn manifest(
    dir: &Path,
    name: &str,
    file: &str,
    size: u64,
    sha256: &str,
    hf: Option<&str>,
) -> PathBuf {
    let hf_line = hf
        .map(|repo| format!("hf = {{ repo = \"{repo}\", file = \"{file}\" }}\n"))
        .unwrap_or_default();
    let text = format!(
        "default = \"{name}\"\n[[model]]\nname = \"{name}\"\ndescription = \"test\"\nkind = \"llm\"\narch = \"llama\"\n[[model.files]]\nfile = \"{file}\"\nsize = {size}\nsha256 = \"{sha256}\"\n{hf_line}"
    );
    let p = dir.join("manifest.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn assert_one_line_error(o: &Output, needles: &[&str]) {
    assert_eq!(o.status.code(), Some(2), "exit code; stderr: {}", stderr(o));
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr should mention {n:?}: {err}");
    }
}

#[test]
fn ask_json_answers_berlin_with_documented_fields() {
    require_model("SmolLM2-135M-Instruct.Q4_1.gguf");
    let o = run(hearth(&[
        "ask",
        "--json",
        "--temperature",
        "0",
        "-n",
        "48",
        "What is the capital of Germany?",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    let text = v["text"].as_str().unwrap();
    assert!(text.contains("Berlin"), "answer: {text}");
    let ids = v["token_ids"].as_array().unwrap();
    assert!(!ids.is_empty());
    assert_eq!(v["generated_tokens"].as_u64().unwrap() as usize, ids.len());
    assert!(v["prompt_tokens"].as_u64().unwrap() > 5);
    assert_eq!(v["stop"], "end_of_turn");
    for k in [
        "load_ms",
        "prefill_ms",
        "decode_ms",
        "prefill_tokens_per_s",
        "decode_tokens_per_s",
    ] {
        assert!(
            v["timings"][k].as_f64().is_some(),
            "timings.{k} missing: {v}"
        );
    }
}

#[test]
fn ask_raw_on_base_model_and_chat_refused_without_template() {
    require_model("gemma-3-270m-q4_k_m.gguf");
    let o = run(hearth(&[
        "ask",
        "--model",
        "gemma3",
        "--raw",
        "--temperature",
        "0",
        "-n",
        "4",
        "--json",
        "The capital of France is",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    // llama.cpp's greedy continuation starts " the capital of".
    assert_eq!(v["token_ids"], serde_json::json!([506, 5279, 529, 506]));

    let o = run(hearth(&["ask", "--model", "gemma3", "Hello"]));
    assert_one_line_error(&o, &["no chat template", "--raw"]);
}

#[test]
fn bench_json_has_llama_bench_fields() {
    require_model("SmolLM2-135M-Instruct.Q4_1.gguf");
    let o = run(hearth(&[
        "bench", "-m", "smollm2", "-t", "1", "-p", "32", "-n", "8", "-r", "2", "--json",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let recs = v.as_array().unwrap();
    let tests: Vec<&str> = recs.iter().map(|r| r["test"].as_str().unwrap()).collect();
    assert_eq!(tests, vec!["pp32", "tg8"]);
    for r in recs {
        assert_eq!(r["n_threads"], 1);
        assert_eq!(r["samples_ts"].as_array().unwrap().len(), 2);
        assert!(r["avg_ts"].as_f64().unwrap() > 0.0);
        assert!(r["peak_rss_bytes"].as_u64().unwrap() > 50_000_000);
        assert!(r["model_n_params"].as_u64().unwrap() > 100_000_000);
    }
    // The table form, two thread counts: each runs in its own process.
    let o = run(hearth(&[
        "bench", "-m", "smollm2", "-t", "1,2", "-p", "16", "-n", "4", "-r", "1",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.starts_with("host: "), "{table}");
    assert!(
        table.contains("memory read bandwidth: 1 thread "),
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("| model")), "{table}");
    let pp_rows = table
        .lines()
        .filter(|l| l.split('|').any(|cell| cell.trim() == "pp16"))
        .count();
    assert_eq!(pp_rows, 2, "{table}");

    // A baseline: the records above made 5x faster are a regression (exit
    // 1, marked in the table, named on stderr); made 5x slower are not.
    let dir = tempfile::tempdir().unwrap();
    for (factor, code, mark) in [(5.0, 1, "SLOWER"), (0.2, 0, "x |")] {
        let mut base = recs.clone();
        for r in &mut base {
            r["avg_ts"] = (r["avg_ts"].as_f64().unwrap() * factor).into();
        }
        let path = dir.path().join(format!("base-{code}.json"));
        std::fs::write(&path, serde_json::to_vec(&base).unwrap()).unwrap();
        let o = run(hearth(&[
            "bench",
            "-m",
            "smollm2",
            "-t",
            "1",
            "-p",
            "32",
            "-n",
            "8",
            "-r",
            "1",
            "--baseline",
            path.to_str().unwrap(),
        ]));
        assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
        let table = String::from_utf8_lossy(&o.stdout);
        assert!(
            table.contains("vs baseline") && table.contains(mark),
            "{table}"
        );
        assert_eq!(stderr(&o).contains("regression: smollm2 1t"), code == 1);
    }
}

/// `bench -m FILE.gguf` on each architecture the shipped files cover, by
/// path as a user downloads one: records name the file and the host.
#[test]
fn bench_takes_a_gguf_file_of_each_architecture() {
    for (file, arch) in [
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "llama"),
        ("gemma-3-270m-q4_k_m.gguf", "gemma3"),
        ("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "qwen2"),
    ] {
        require_model(file);
        // Copied outside the models folder: the catalog plays no part.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file);
        std::fs::copy(models_dir().join(file), &path).unwrap();
        let o = run(hearth(&[
            "bench",
            "-m",
            path.to_str().unwrap(),
            "-t",
            "1",
            "-p",
            "16",
            "-n",
            "4",
            "-r",
            "2",
            "--json",
        ]));
        assert!(o.status.success(), "{file}: {}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let recs = v.as_array().unwrap();
        assert_eq!(recs.len(), 2, "{file}");
        for r in recs {
            assert_eq!(r["model"], file);
            assert!(r["model_type"].as_str().unwrap().starts_with(arch), "{r}");
            let (min, median, avg) = (
                r["min_ts"].as_f64().unwrap(),
                r["median_ts"].as_f64().unwrap(),
                r["avg_ts"].as_f64().unwrap(),
            );
            assert!(min > 0.0 && min <= median && min <= avg, "{r}");
            let host = &r["host"];
            assert_eq!(host["threads_used"], 1);
            assert!(!host["cpu"].as_str().unwrap().is_empty());
            assert!(!host["kernels"].as_str().unwrap().is_empty());
            assert!(host["mem_read_gbs"].as_f64().unwrap() > 0.1, "{host}");
            assert!(r["bytes_per_token"].as_u64().unwrap() > 10_000_000);
        }
        assert!(recs[0]["mem_bound_ts"].is_null());
        assert!(recs[1]["mem_bound_ts"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn bench_refuses_a_file_it_cannot_run_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("odd.gguf");
    std::fs::write(&odd, common::tiny_gguf("mamba", 0)).unwrap();
    let text = dir.path().join("notes.gguf");
    std::fs::write(&text, "not a model\n").unwrap();
    let missing = dir.path().join("nowhere.gguf");
    for (path, needles) in [
        (
            &odd,
            vec!["odd.gguf", "not supported", "mamba", "llama, gemma3"],
        ),
        (&text, vec!["notes.gguf", "corrupt"]),
        (&missing, vec!["nowhere.gguf", "does not exist"]),
    ] {
        // One thread count runs in this process, several in children:
        // both refuse before measuring anything.
        for threads in ["1", "1,2"] {
            let o = run(hearth(&[
                "bench",
                "-m",
                path.to_str().unwrap(),
                "-t",
                threads,
            ]));
            assert_one_line_error(&o, &needles);
            assert!(o.stdout.is_empty());
        }
    }
}

#[test]
fn missing_model_names_the_fetch_command() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = hearth(&["ask", "hi"]);
    c.env("HEARTH_MODELS_DIR", dir.path())
        .env("HEARTH_MANIFEST", root().join("models/manifest.toml"));
    let o = run(c);
    assert_one_line_error(&o, &["not installed", "hearth models pull smollm2"]);
}

#[test]
fn corrupt_model_names_the_file() {
    require_model("SmolLM2-135M-Instruct.Q4_1.gguf");
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read(models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    std::fs::write(dir.path().join("broken.gguf"), &full[..full.len() / 2]).unwrap();
    let m = manifest(
        dir.path(),
        "broken",
        "broken.gguf",
        1,
        &"0".repeat(64),
        None,
    );
    let mut c = hearth(&["ask", "hi"]);
    c.env("HEARTH_MODELS_DIR", dir.path())
        .env("HEARTH_MANIFEST", &m);
    assert_one_line_error(&run(c), &["broken.gguf", "corrupt", "truncated"]);

    std::fs::write(dir.path().join("broken.gguf"), b"not a gguf file at all").unwrap();
    let mut c = hearth(&["ask", "hi"]);
    c.env("HEARTH_MODELS_DIR", dir.path())
        .env("HEARTH_MANIFEST", &m);
    assert_one_line_error(&run(c), &["broken.gguf", "corrupt"]);
}

#[test]
fn unsupported_tensor_type_and_architecture_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), "odd", "odd.gguf", 1, &"0".repeat(64), None);
    // ggml type 16 = IQ2_XXS.
    std::fs::write(dir.path().join("odd.gguf"), common::tiny_gguf("llama", 16)).unwrap();
    let mut c = hearth(&["ask", "hi"]);
    c.env("HEARTH_MODELS_DIR", dir.path())
        .env("HEARTH_MANIFEST", &m);
    assert_one_line_error(&run(c), &["odd.gguf", "not supported", "IQ2_XXS"]);

    std::fs::write(dir.path().join("odd.gguf"), common::tiny_gguf("mamba", 0)).unwrap();
    let mut c = hearth(&["ask", "hi"]);
    c.env("HEARTH_MODELS_DIR", dir.path())
        .env("HEARTH_MANIFEST", &m);
    assert_one_line_error(&run(c), &["odd.gguf", "not supported"]);
}

#[test]
fn import_refuses_a_wrong_sha256_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.bin");
    std::fs::write(&src, b"hello model").unwrap();
    let good = sha256_hex(b"hello model");
    let bad = "ab".repeat(32);
    let m = manifest(dir.path(), "t", "t.gguf", 11, &bad, None);
    let mut c = hearth(&["models", "import", "t", src.to_str().unwrap()]);
    c.env("HEARTH_MODELS_DIR", dir.path())
        .env("HEARTH_MANIFEST", &m);
    assert_one_line_error(&run(c), &["t.gguf", &bad, &good]);
    assert!(!dir.path().join("t.gguf").exists());
    assert!(!dir.path().join("t.gguf.partial").exists());

    // Parts are concatenated in order.
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&a, b"hello ").unwrap();
    std::fs::write(&b, b"model").unwrap();
    let m = manifest(dir.path(), "t", "t.gguf", 11, &good, None);
    let mut c = hearth(&[
        "models",
        "import",
        "t",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    c.env("HEARTH_MODELS_DIR", dir.path())
        .env("HEARTH_MANIFEST", &m);
    let o = run(c);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(dir.path().join("t.gguf")).unwrap(),
        b"hello model"
    );
    let mut c = hearth(&["models", "verify"]);
    c.env("HEARTH_MODELS_DIR", dir.path())
        .env("HEARTH_MANIFEST", &m);
    assert_eq!(run(c).status.code(), Some(0));
    std::fs::write(dir.path().join("t.gguf"), b"hello mode!").unwrap();
    let mut c = hearth(&["models", "verify"]);
    c.env("HEARTH_MODELS_DIR", dir.path())
        .env("HEARTH_MANIFEST", &m);
    assert_eq!(run(c).status.code(), Some(1), "a damaged file fails verify");
}

/// How the fake hub answers file downloads.
#[derive(Clone, Copy, PartialEq)]
enum Serve {
    Whole,
    /// Promise the whole file, send half, hang up.
    CutHalfway,
}

/// Serves `body` at `/{repo}/resolve/main/{file}` the way the hub does:
/// `etag`, `x-repo-commit` and `Content-Range` on ranged GETs.
fn fake_hub(body: Vec<u8>, mode: Serve) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(stream) = stream else { break };
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = answer(stream, &body, mode);
        }
    });
    (format!("http://{addr}"), hits)
}

fn answer(mut stream: TcpStream, body: &[u8], mode: Serve) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // `Range: bytes=START-[END]`; hf-hub probes metadata with `bytes=0-0`.
    let mut range: Option<(usize, Option<usize>)> = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some(r) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let (a, b) = r.trim().split_once('-').unwrap_or((r.trim(), ""));
            range = a.parse().ok().map(|a| (a, b.parse().ok()));
        }
    }
    if !request.starts_with("GET /test-org/tiny/resolve/main/tokenizer.json ") {
        return stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
    let total = body.len();
    let (start, end) = match range {
        Some((s, Some(e))) => (s, e + 1),
        Some((s, None)) => (s, total),
        None => (0, total),
    };
    let head = format!(
        "HTTP/1.1 206 Partial Content\r\netag: \"fake-etag\"\r\nx-repo-commit: 0123456789abcdef0123456789abcdef01234567\r\ncontent-range: bytes {start}-{}/{total}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        end - 1,
        end - start
    );
    stream.write_all(head.as_bytes())?;
    let slice = &body[start..end];
    if mode == Serve::CutHalfway && slice.len() > 1 {
        stream.write_all(&slice[..slice.len() / 2])?;
        return stream.shutdown(std::net::Shutdown::Both);
    }
    stream.write_all(slice)
}

fn pull_with(body: &[u8], sha: &str, mode: Serve) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(
        dir.path(),
        "tiny",
        "tokenizer.json",
        body.len() as u64,
        sha,
        Some("test-org/tiny"),
    );
    let (endpoint, _hits) = fake_hub(body.to_vec(), mode);
    let mut c = hearth(&["models", "pull", "tiny"]);
    c.env("HEARTH_MODELS_DIR", dir.path())
        .env("HEARTH_MANIFEST", &m)
        .env("HF_ENDPOINT", &endpoint)
        .env("HF_HOME", dir.path().join("hf-home"));
    (run(c), dir)
}

fn real_file() -> Vec<u8> {
    let p = models_dir().join("all-MiniLM-L6-v2/tokenizer.json");
    let mut v = Vec::new();
    std::fs::File::open(&p)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", p.display()))
        .read_to_end(&mut v)
        .unwrap();
    v
}

#[test]
fn pull_downloads_through_hf_endpoint_and_checks_sha256() {
    let body = real_file();
    let good = sha256_hex(&body);
    let (o, dir) = pull_with(&body, &good, Serve::Whole);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(dir.path().join("tokenizer.json")).unwrap(),
        body
    );

    let bad = "cd".repeat(32);
    let (o, dir) = pull_with(&body, &bad, Serve::Whole);
    assert_one_line_error(&o, &["tokenizer.json", &bad, &good]);
    assert!(!dir.path().join("tokenizer.json").exists());
    assert!(!dir.path().join("tokenizer.json.partial").exists());
}

#[test]
fn interrupted_download_leaves_no_file_under_the_final_name() {
    let body = real_file();
    let (o, dir) = pull_with(&body, &sha256_hex(&body), Serve::CutHalfway);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!dir.path().join("tokenizer.json").exists());
    assert!(!dir.path().join("tokenizer.json.partial").exists());
}

#[test]
fn closed_stdout_is_not_a_crash() {
    // `hearth models list | head -0`: the reader is gone before we write.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = hearth(&["models", "list"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn index_add_sync_list_and_wrong_key() {
    let (dir, _) = registered_docs([("shed.md", "The spare key is under the blue flowerpot.")]);
    let with_store = |args: &[&str], key: &str| run(hearth_with_store(dir.path(), key, args));
    let o = with_store(&["index"], "key");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("1 added"), "{out}");
    let o = with_store(&["index"], "key");
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 unchanged"));
    let o = with_store(&["index", "list"], "key");
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 documents"));
    assert_one_line_error(
        &with_store(&["index", "list"], "other-key"),
        &["key file", "nothing was changed"],
    );
}

#[test]
fn kill_9_during_index_leaves_a_consistent_store() {
    let (dir, _) = registered_docs((0..200).map(|i| {
        let text = format!(
            "Note {i}. The meeting about topic {i} moved to room {}.\n\n",
            i * 7
        )
        .repeat(6);
        (format!("n{i:03}.md"), text)
    }));
    let cmd = |args: &[&str]| hearth_with_store(dir.path(), "key", args);
    let paths = hearth::paths::Paths {
        data_dir: dir.path().join("data"),
        key_file: dir.path().join("key"),
    };
    let documents = || {
        hearth::store::Store::open(&paths, hearth::store::Create::Never)
            .and_then(|s| s.stats())
            .map(|s| s.documents)
            .unwrap_or(0)
    };
    // Kill twice, each time once the run has written part of the folder.
    for round in 1..=2u64 {
        let before = documents();
        let mut child = cmd(&["index"]).spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while documents() < before + 10 * round {
            assert!(
                child.try_wait().unwrap().is_none(),
                "index finished before it could be killed"
            );
            assert!(
                std::time::Instant::now() < deadline,
                "index made no progress"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let store = hearth::store::Store::open(&paths, hearth::store::Create::Never).unwrap();
        assert!(store.integrity_check().unwrap().is_empty());
        let n = store.stats().unwrap().documents;
        assert!(n < 200, "the kill came mid-run ({n} documents)");
    }
    let o = run(cmd(&["index"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(cmd(&["index", "list"]));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("200 documents"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn search_finds_documents_by_words_and_meaning() {
    let (dir, _) = registered_docs([
        (
            "shed.md",
            "The spare key for the shed is under the blue flowerpot.",
        ),
        ("power.txt", "Mains voltage in the house is 230 volts."),
        (
            "cake.md",
            "Bake the chocolate cake at 180 degrees for 40 minutes.",
        ),
    ]);
    let cmd = |args: &[&str]| hearth_with_store(dir.path(), "key", args);
    assert!(run(cmd(&["index"])).status.success());
    let o = run(cmd(&["search", "--json", "-k", "2", "flowerpot"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["rank"], 1);
    assert_eq!(lines[0]["query"], "flowerpot");
    assert!(lines[0]["path"].as_str().unwrap().ends_with("shed.md"));
    assert!(
        lines[0]["snippet"]
            .as_str()
            .unwrap()
            .contains("**flowerpot")
    );
    assert!(lines[0]["score"].as_f64().unwrap() > 0.0);
    // Meaning without shared words, and several queries from stdin.
    let mut c = cmd(&["search", "--json", "-k", "1", "-"]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"how do I make a dessert\nelectricity supply\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0]["path"].as_str().unwrap().ends_with("cake.md"),
        "{lines:?}"
    );
    assert!(
        lines[1]["path"].as_str().unwrap().ends_with("power.txt"),
        "{lines:?}"
    );
}

#[test]
fn init_writes_the_boxs_time_zone_and_storage_settings_are_used() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let o = hearth(&["init"])
        .env("HEARTH_CONFIG", &config)
        .env("TZ", "Europe/Berlin")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("(time zone Europe/Berlin)"));
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("time_zone = \"Europe/Berlin\""), "{text}");
    assert!(
        text.contains("[storage]") && text.contains("[retention]"),
        "{text}"
    );

    // [storage] places the store when no flag or environment does.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"{}\"\nkey_file = \"{}\"\n",
            elsewhere.join("data").display(),
            elsewhere.join("key").display()
        ),
    )
    .unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let o = hearth(&["index", "add", docs.to_str().unwrap()])
        .env("HEARTH_CONFIG", &config)
        .env_remove("HEARTH_DATA_DIR")
        .env_remove("HEARTH_KEY_FILE")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(elsewhere.join("data/hearth.db").is_file());
    assert!(elsewhere.join("key").is_file());

    // A broken config is an error for every command that reads it.
    std::fs::write(&config, "[storage]\ndata_dri = \"x\"\n").unwrap();
    let o = hearth(&["index", "list"])
        .env("HEARTH_CONFIG", &config)
        .output()
        .unwrap();
    assert_one_line_error(&o, &["config.toml", "data_dri"]);
}

#[test]
fn pull_of_a_mirror_only_model_names_the_command_that_fetches_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), "mirrored", "m.gguf", 11, &"ab".repeat(32), None);
    let mut c = hearth(&["models", "pull", "mirrored"]);
    c.env("HEARTH_MODELS_DIR", dir.path())
        .env("HEARTH_MANIFEST", &m);
    assert_one_line_error(
        &run(c),
        &[
            "m.gguf",
            "no Hugging Face source",
            "MODELS=mirrored scripts/setup.sh",
        ],
    );
    assert!(!dir.path().join("m.gguf").exists());
}
