//! `hearth ask` and `hearth chat` answering from indexed files, on the real
//! SmolLM2 (a 1 GiB board's default), Qwen2.5 (this box's default) and
//! MiniLM: the fact that exists only in a file is in the answer, the file
//! is cited, `--no-rag` and unrelated questions cite nothing. Greedy by
//! default with sources, so the answers are repeatable.

use std::io::Write;
use std::process::{Output, Stdio};

mod common;
use common::{POLICY_DIGITS, hearth_with_store, indexed_docs, on_this_box, run, stderr};

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "stderr: {}", stderr(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The `[n] path` lines at the end of an answer.
fn citations(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with('[') && l.contains("] /"))
        .map(str::to_string)
        .collect()
}

#[test]
fn ask_answers_from_the_file_and_cites_it() {
    let dir = indexed_docs();
    let ask = |args: &[&str]| stdout(&run(hearth_with_store(dir.path(), "key", args)));

    let out = ask(&["ask", "What is my car insurance policy number?"]);
    assert!(out.contains(POLICY_DIGITS), "{out}");
    let cites = citations(&out);
    assert!(
        cites
            .first()
            .is_some_and(|c| c.starts_with("[1] ") && c.ends_with("car.txt")),
        "{out}"
    );

    let out = ask(&["ask", "--no-rag", "What is my car insurance policy number?"]);
    assert!(!out.contains(POLICY_DIGITS), "{out}");
    assert!(citations(&out).is_empty(), "{out}");

    // Nothing in the files is about this: no sources, no citation.
    let out = ask(&["ask", "-n", "16", "What is the capital of Germany?"]);
    assert!(citations(&out).is_empty(), "{out}");
}

#[test]
fn this_boxs_default_model_answers_from_the_files() {
    common::require_model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    let dir = indexed_docs();
    let ask = |q: &str| {
        let c = on_this_box(hearth_with_store(
            dir.path(),
            "key",
            &["ask", "--json", "-n", "48", q],
        ));
        let v: serde_json::Value = serde_json::from_str(&stdout(&run(c))).unwrap();
        assert_eq!(v["model"], "qwen25coder", "{v}");
        v
    };
    let v = ask("What is my car insurance policy number?");
    assert!(v["text"].as_str().unwrap().contains(POLICY_DIGITS), "{v}");
    assert!(
        v["sources"][0].as_str().unwrap().ends_with("car.txt"),
        "{v}"
    );
    assert!(
        v["timings"]["first_token_ms"].as_f64().unwrap() > 0.0,
        "{v}"
    );
    let v = ask("Who serviced the boiler?");
    assert!(v["text"].as_str().unwrap().contains("Kestrel"), "{v}");
    assert!(
        v["sources"][0].as_str().unwrap().ends_with("boiler.html"),
        "{v}"
    );
}

#[test]
fn chat_answers_each_turn_from_the_files() {
    let dir = indexed_docs();
    let mut c = hearth_with_store(dir.path(), "key", &["chat", "-n", "48"]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Who serviced the boiler?\nWhat is my car insurance policy number?\n")
        .unwrap();
    let out = stdout(&child.wait_with_output().unwrap());
    assert!(out.contains("Kestrel"), "{out}");
    assert!(out.contains(POLICY_DIGITS), "{out}");
    let cites = citations(&out);
    assert!(cites.iter().any(|c| c.ends_with("boiler.html")), "{out}");
    assert!(cites.iter().any(|c| c.ends_with("car.txt")), "{out}");
}
