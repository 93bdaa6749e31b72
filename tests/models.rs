//! Which chat model a box uses, and the owner's own models: the default
//! follows the box's memory (Qwen2.5 0.5B here, SmolLM2 on a 1 GB board),
//! `hearth init` writes the choice with its reason, the config and
//! `--model` override it, and `hearth models add` registers a GGUF file
//! (checked by loading it) in `local.toml`, after which its name works
//! like a shipped one, as the default too. Runs the real binary.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::{hearth, models_dir, on_this_box, require_model, root, run, stderr};

const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

fn ok(o: Output) -> String {
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn with_config(mut c: Command, config: &Path) -> Command {
    c.env("HEARTH_CONFIG", config);
    c
}

/// The `model` field of `hearth ask --json`.
fn model_of(o: Output) -> String {
    let v: Value = serde_json::from_str(&ok(o)).unwrap();
    v["model"].as_str().unwrap().to_string()
}

#[test]
fn the_default_chat_model_follows_the_box_and_the_config_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    // This machine has far more than 1.5 GiB: Qwen.
    let here = ok(run(on_this_box(with_config(
        hearth(&["models", "default"]),
        &config,
    ))));
    assert_eq!(here.trim(), "qwen25coder");
    // A 1 GB Raspberry Pi 4 keeps SmolLM2.
    let mut pi = with_config(hearth(&["models", "default"]), &config);
    pi.env("HEARTH_BOARD_MEMORY_MIB", "908");
    assert_eq!(ok(run(pi)).trim(), "smollm2");

    // `hearth init` writes the choice and the reason into the config.
    ok(run(on_this_box(with_config(hearth(&["init"]), &config))));
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("name = \"qwen25coder\""), "{text}");
    assert!(text.contains("`qwen25coder` needs 1.5 GiB"), "{text}");
    let mut small = with_config(hearth(&["init", "--force"]), &config);
    small.env("HEARTH_BOARD_MEMORY_MIB", "908");
    ok(run(small));
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("name = \"smollm2\""), "{text}");
    assert!(text.contains("0.9 GiB of memory"), "{text}");

    // The config's model is what `ask` uses, on any board; --model wins.
    require_model(SMOLLM2);
    let ask = |extra: &[&str]| {
        let mut args = vec!["ask", "--no-rag", "--json", "-n", "2"];
        args.extend_from_slice(extra);
        args.push("Hi");
        on_this_box(with_config(hearth(&args), &config))
    };
    assert_eq!(model_of(run(ask(&[]))), "smollm2");
    assert_eq!(
        model_of(run(ask(&["--model", "gemma3", "--raw"]))),
        "gemma3"
    );
    // `init --model` writes the one given, checked against the manifest.
    ok(run(with_config(
        hearth(&["init", "--force", "--model", "gemma3"]),
        &config,
    )));
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("name = \"gemma3\"")
    );
    let o = run(with_config(
        hearth(&["init", "--force", "--model", "minilm"]),
        &config,
    ));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn without_a_config_this_box_chats_on_qwen() {
    require_model(QWEN);
    let dir = tempfile::tempdir().unwrap();
    let c = on_this_box(with_config(
        hearth(&[
            "ask",
            "--no-rag",
            "--json",
            "--temperature",
            "0",
            "-n",
            "12",
            "What is the capital of Germany? Answer in one word.",
        ]),
        &dir.path().join("none.toml"),
    ));
    let v: Value = serde_json::from_str(&ok(run(c))).unwrap();
    assert_eq!(v["model"], "qwen25coder");
    assert!(v["text"].as_str().unwrap().contains("Berlin"), "{v}");
}

fn in_models(dir: &Path, args: &[&str]) -> Command {
    let mut c = hearth(args);
    c.env("HEARTH_MODELS_DIR", dir)
        .env("HEARTH_MANIFEST", root().join("models/manifest.toml"))
        .env("HEARTH_CONFIG", dir.join("config.toml"));
    c
}

#[test]
fn an_added_model_works_like_a_shipped_one() {
    require_model(SMOLLM2);
    let dir = tempfile::tempdir().unwrap();
    let file = models_dir().join(SMOLLM2);
    let o = run(in_models(
        dir.path(),
        &["models", "add", file.to_str().unwrap(), "--name", "mine"],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("llama"), "{}", stderr(&o));
    // Recorded beside the shipped manifest, with the file's real sha256.
    let local = std::fs::read_to_string(dir.path().join("local.toml")).unwrap();
    assert!(local.contains("name = \"mine\""), "{local}");
    assert!(
        local.contains("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
        "{local}"
    );
    assert!(local.contains(file.to_str().unwrap()), "{local}");

    let list = ok(run(in_models(dir.path(), &["models", "list"])));
    let line = list.lines().find(|l| l.starts_with("mine ")).unwrap();
    assert!(
        line.contains("installed") && line.contains("(added)"),
        "{list}"
    );
    ok(run(in_models(dir.path(), &["models", "verify", "mine"])));
    let ask = |extra: &[&str]| {
        let mut args = vec!["ask", "--no-rag", "--json", "-n", "2"];
        args.extend_from_slice(extra);
        args.push("Hi");
        run(in_models(dir.path(), &args))
    };
    assert_eq!(model_of(ask(&["-m", "mine"])), "mine");
    // As the configured default.
    std::fs::write(dir.path().join("config.toml"), "[model]\nname = \"mine\"\n").unwrap();
    assert_eq!(model_of(ask(&[])), "mine");

    // A name is taken once; shipped names cannot be reused or removed.
    let again = run(in_models(
        dir.path(),
        &["models", "add", file.to_str().unwrap(), "--name", "smollm2"],
    ));
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    let o = run(in_models(dir.path(), &["models", "remove", "smollm2"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    ok(run(in_models(dir.path(), &["models", "remove", "mine"])));
    assert!(file.is_file(), "remove leaves the file alone");
    let o = ask(&["-m", "mine"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn an_unsupported_file_is_refused_with_one_line_naming_what() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u8>, &[&str]); 3] = [
        (
            "mamba.gguf",
            common::tiny_gguf("mamba", 0),
            &["not supported", "mamba"],
        ),
        // ggml type 16 = IQ2_XXS.
        (
            "iq2.gguf",
            common::tiny_gguf("llama", 16),
            &["not supported", "IQ2_XXS"],
        ),
        (
            "notes.gguf",
            b"just some text".to_vec(),
            &["notes.gguf", "GGUF"],
        ),
    ];
    for (name, bytes, needles) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let o = run(in_models(
            dir.path(),
            &["models", "add", p.to_str().unwrap()],
        ));
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.trim().lines().count(), 1, "{name}: {err}");
        for n in needles {
            assert!(err.contains(n), "{name}: {err}");
        }
    }
    assert!(!dir.path().join("local.toml").exists(), "nothing recorded");
}
