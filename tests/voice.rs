//! Voice notes on the real Whisper base model.
//!
//! - `hearth transcribe` against faster-whisper's transcripts of the same
//!   clips (`tests/voice/reference.jsonl`, made by scripts/voice-reference.py
//!   with `beam_size=1, without_timestamps=True, temperature=0`): identical
//!   token ids on at least 90% of the clips, and a word error rate against
//!   the sentences read no worse than faster-whisper's + 1 point; silence
//!   gives no text, the German note is heard as German.
//! - Files that are not voice notes (empty, truncated, another codec,
//!   longer than allowed) are clear errors, not crashes.
//! - Through `hearth serve` and `hearth bridge --simulate` (a voice note
//!   pointing at its file, as the WhatsApp bridge saves it): the owner's
//!   note is answered from its transcript, a stranger's is held unheard,
//!   a kept chat's becomes searchable, and `/forget` removes a transcript.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::daemon::{kill, start_serve_with};
use common::{hearth, hearth_with_store, require_model, root, run, stderr};

fn clips() -> PathBuf {
    root().join("tests/voice/clips")
}

fn require_whisper() {
    require_model("whisper-base/model.bin");
}

/// Lower-case words without punctuation.
fn words(s: &str) -> Vec<String> {
    s.to_lowercase()
        .split(|c: char| c.is_whitespace() || c == '-')
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word-level edit distance.
fn edits(a: &[String], b: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[test]
fn transcripts_match_faster_whisper() {
    require_whisper();
    let reference: HashMap<String, Value> =
        std::fs::read_to_string(root().join("tests/voice/reference.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["file"].as_str().unwrap().to_string(), v)
            })
            .collect();
    let sentences: Vec<String> = std::fs::read_to_string(root().join("tests/voice/sentences.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(clips())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut args = vec![
        "transcribe".to_string(),
        "--json".into(),
        "-t".into(),
        "2".into(),
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(hearth(&args));
    assert!(out.status.success(), "{}", stderr(&out));
    let mut same = 0;
    let (mut n, mut ours, mut theirs, mut total) = (0, 0, 0, 0);
    let mut differ = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let name = Path::new(v["file"].as_str().unwrap())
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let r = &reference[&name];
        n += 1;
        if v["tokens"] == r["tokens"] {
            same += 1;
        } else {
            differ.push(format!(
                "{name}: {} | faster-whisper: {}",
                v["text"], r["text"]
            ));
        }
        if r["text"] != "" {
            assert_eq!(v["language"], r["language"], "{name}");
        }
        // Numbered clips read sentence N: score both against it.
        let index = name
            .trim_end_matches(".ogg")
            .rsplit('-')
            .next()
            .and_then(|d| d.parse::<usize>().ok());
        if let Some(i) = index {
            let truth = words(&sentences[i - 1]);
            ours += edits(&words(v["text"].as_str().unwrap()), &truth);
            theirs += edits(&words(r["text"].as_str().unwrap()), &truth);
            total += truth.len();
        }
    }
    assert_eq!(n, reference.len());
    let (wer_ours, wer_theirs) = (
        100.0 * ours as f64 / total as f64,
        100.0 * theirs as f64 / total as f64,
    );
    eprintln!(
        "identical tokens on {same}/{n} clips; WER {wer_ours:.1}% (faster-whisper {wer_theirs:.1}%)\n{}",
        differ.join("\n")
    );
    assert!(
        same * 10 >= n * 9,
        "only {same}/{n} identical:\n{}",
        differ.join("\n")
    );
    assert!(
        wer_ours <= wer_theirs + 1.0,
        "WER {wer_ours:.1} vs {wer_theirs:.1}"
    );
}

#[test]
fn silence_and_files_that_are_not_voice_notes() {
    require_whisper();
    let dir = tempfile::tempdir().unwrap();
    let wav = |name: &str, seconds: usize| {
        let data = vec![0u8; seconds * 16_000 * 2];
        let mut b = b"RIFF".to_vec();
        b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&16_000u32.to_le_bytes());
        b.extend_from_slice(&32_000u32.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&data);
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    // Five minutes of silence: ten windows, no text (not hallucinated words).
    let silent = wav("silence.wav", 300);
    let out = run(hearth(&["transcribe", "--json", silent.to_str().unwrap()]));
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["text"], "", "{v}");
    assert_eq!(v["windows"], 10, "{v}");
    // Twelve minutes is over the default ten: refused before decoding.
    let long = wav("long.wav", 720);
    let out = run(hearth(&["transcribe", long.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("longer than 600 s"),
        "{}",
        stderr(&out)
    );
    // Empty, truncated, not Opus.
    let note = std::fs::read(clips().join("piper-01.ogg")).unwrap();
    let empty = dir.path().join("empty.ogg");
    std::fs::write(&empty, b"").unwrap();
    let cut = dir.path().join("cut.ogg");
    std::fs::write(&cut, &note[..note.len() / 3]).unwrap();
    // A well-formed Ogg file whose stream is Vorbis, not Opus.
    let vorbis = dir.path().join("vorbis.ogg");
    let mut ogg_bytes = Vec::new();
    {
        let mut w = ogg::writing::PacketWriter::new(std::io::Cursor::new(&mut ogg_bytes));
        let head = b"\x01vorbis\0\0\0\0\x01\x44\xac\0\0".to_vec();
        w.write_packet(head, 7, ogg::writing::PacketWriteEndInfo::EndStream, 0)
            .unwrap();
    }
    std::fs::write(&vorbis, ogg_bytes).unwrap();
    let out = run(hearth(&[
        "transcribe",
        "--json",
        empty.to_str().unwrap(),
        cut.to_str().unwrap(),
        vorbis.to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0]["error"].as_str().unwrap().contains("empty"),
        "{:?}",
        lines[0]
    );
    // A truncated note is either a clear error or its first part.
    assert!(
        lines[1]["error"].is_string() || lines[1]["text"].is_string(),
        "{:?}",
        lines[1]
    );
    assert!(
        lines[2]["error"].as_str().unwrap().contains("not Opus"),
        "{:?}",
        lines[2]
    );
}

const OWNER: &str = "4915112345678@s.whatsapp.net";
const KEPT: &str = "447009001111@s.whatsapp.net";
const STRANGER: &str = "447009002222@s.whatsapp.net";

fn voice(id: &str, chat: &str, clip: &str) -> Value {
    let path = clips().join(clip);
    let bytes = std::fs::metadata(&path).unwrap().len();
    json!({"message_id": id, "chat_id": chat, "sender_id": chat, "text": "",
           "timestamp_ms": 0,
           "media": {"kind": "voice", "mime": "audio/ogg; codecs=opus", "bytes": bytes,
                     "saved_as": path.display().to_string()}})
}

fn text(id: &str, chat: &str, t: &str) -> Value {
    json!({"message_id": id, "chat_id": chat, "sender_id": chat, "text": t, "timestamp_ms": 0})
}

/// Runs `hearth bridge --simulate` over `lines` until it has been idle for
/// `idle` seconds; the replies it printed (chat, text).
fn simulate(dir: &Path, lines: &[Value], idle: &str) -> Vec<(String, String)> {
    let mut c = hearth_with_store(dir, "key", &["bridge", "--simulate", "--idle", idle]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for l in lines {
        stdin.write_all(format!("{l}\n").as_bytes()).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["text"].is_string())
        .map(|v| {
            (
                v["chat_id"].as_str().unwrap_or("").to_string(),
                v["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn voice_notes_through_the_daemon() {
    require_whisper();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "time_zone = \"Europe/Berlin\"\n[owner]\nnumbers = [\"+4915112345678\"]\n",
    )
    .unwrap();
    let serve = start_serve_with(dir.path(), &["-n", "24"]);
    // The owner's note is heard and answered; a stranger's is held and
    // never heard (the owner is asked about the sender instead).
    let replies = simulate(
        dir.path(),
        &[
            voice("v1", OWNER, "piper-11.ogg"),
            voice("v2", STRANGER, "piper-08.ogg"),
            text("m1", OWNER, "/memory add +447009001111"),
        ],
        "30",
    );
    let to_owner: Vec<&String> = replies
        .iter()
        .filter(|r| r.0 == OWNER)
        .map(|r| &r.1)
        .collect();
    assert!(to_owner.len() >= 3, "{replies:?}");
    assert!(
        to_owner
            .iter()
            .any(|t| t.contains("+447009002222") && t.contains("/approve")),
        "{replies:?}"
    );
    assert!(replies.iter().all(|r| r.0 != STRANGER), "{replies:?}");
    // A kept chat's note is only kept, heard while the agent is idle, and
    // becomes searchable.
    let replies = simulate(dir.path(), &[voice("k1", KEPT, "piper-08.ogg")], "3");
    assert!(replies.iter().all(|r| r.0 != KEPT), "{replies:?}");
    let start = Instant::now();
    let found = loop {
        let r = simulate(
            dir.path(),
            &[text(
                &format!("s{}", start.elapsed().as_millis()),
                OWNER,
                "/search apples and eggs",
            )],
            "2",
        );
        let hit = r
            .iter()
            .find(|x| x.0 == OWNER && x.1.contains("447009001111"))
            .cloned();
        if let Some(h) = hit {
            break h.1;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the kept note never became searchable: {r:?}"
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    assert!(
        found.contains("apples") || found.contains("eggs"),
        "{found}"
    );
    // The owner's own note is searchable as what was said...
    let owner_hit = |r: &[(String, String)]| {
        r.iter()
            .any(|x| x.0 == OWNER && x.1.contains("chat:4915112345678@s.whatsapp.net"))
    };
    let r = simulate(
        dir.path(),
        &[text("s2", OWNER, "/search walk in the park")],
        "2",
    );
    assert!(owner_hit(&r), "{r:?}");
    // ...until it is forgotten.
    // (The command goes with the messages it erases, so it has no reply.)
    simulate(dir.path(), &[text("f1", OWNER, "/forget last 20")], "3");
    let r = simulate(
        dir.path(),
        &[text("s3", OWNER, "/search walk in the park")],
        "2",
    );
    assert!(!owner_hit(&r), "{r:?}");
    // The owner's own note may ask for an action in words, carried out as
    // the slash command it stands for.
    let r = simulate(dir.path(), &[voice("v3", OWNER, "piper-12.ogg")], "30");
    assert!(
        r.iter()
            .any(|x| x.0 == OWNER && x.1.to_lowercase().contains("reminder")),
        "{r:?}"
    );
    assert!(
        common::daemon::audit_lines(dir.path())
            .iter()
            .any(|l| l.contains("/reminders")),
        "the list was not carried out as /reminders"
    );
    kill(serve);
}
