//! The Whisper forward pass on this CPU's kernels against faster-whisper's
//! token ids, engine only (no `app` feature): what `scripts/test-arm.sh`
//! runs under qemu for the aarch64 kernel sets. `tests/voice.rs` checks
//! every clip through `hearth transcribe`.

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn short_clips_give_faster_whispers_tokens() {
    let dir = root().join("models/whisper-base");
    assert!(
        dir.join("model.bin").is_file(),
        "models/whisper-base is missing: run MODELS=whisper-base scripts/setup.sh"
    );
    let model = hearth::voice::Transcriber::load(&dir).unwrap();
    let reference = std::fs::read_to_string(root().join("tests/voice/reference.jsonl")).unwrap();
    for clip in ["piper-09.ogg", "espeak-02.ogg"] {
        let expected: serde_json::Value = reference
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["file"] == clip)
            .unwrap();
        let bytes = std::fs::read(root().join("tests/voice/clips").join(clip)).unwrap();
        let samples = hearth::voice::audio::decode(&bytes, 600).unwrap();
        let t = model.transcribe(&samples, None, &|| false);
        let want: Vec<u32> = expected["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            t.tokens, want,
            "{clip}: {:?} vs {}",
            t.text, expected["text"]
        );
        assert_eq!(t.language, expected["language"].as_str().unwrap());
    }
}
