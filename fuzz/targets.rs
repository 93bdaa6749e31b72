//! The bodies of Hearth's fuzz targets, shared by the cargo-fuzz binaries
//! in `fuzz_targets/` (libFuzzer, coverage-guided) and the smoke test in
//! `tests/fuzz_smoke.rs` (every `cargo test`). Each takes arbitrary bytes
//! and must neither panic nor hang; results are checked where a property
//! is cheap to state.

// Each fuzz binary uses one of these.
#![allow(dead_code)]

use std::path::Path;

/// The socket protocol: the line codec over arbitrary byte streams, then
/// each line decoded as a client and a server frame; whatever decodes
/// re-encodes to one line that decodes to the same frame.
pub fn proto(data: &[u8]) {
    use hearth::proto::{self, ClientFrame, FrameCodec, ServerFrame};
    use tokio_util::bytes::BytesMut;
    use tokio_util::codec::Decoder;
    let mut codec = FrameCodec::new();
    // Feed in two pieces, as a socket might deliver them.
    let cut = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let mut buf = BytesMut::from(&data[..cut]);
    let mut lines = Vec::new();
    let mut pull = |buf: &mut BytesMut, eof: bool| loop {
        let item = if eof {
            codec.decode_eof(buf)
        } else {
            codec.decode(buf)
        };
        match item {
            Ok(Some(Ok(line))) => lines.push(line),
            Ok(Some(Err(_))) => {}
            Ok(None) | Err(_) => break,
        }
    };
    pull(&mut buf, false);
    buf.extend_from_slice(&data[cut..]);
    pull(&mut buf, false);
    pull(&mut buf, true);
    for line in lines {
        assert!(line.len() <= proto::MAX_FRAME_BYTES);
        if let Ok(f) = proto::decode::<ClientFrame>(&line) {
            let again = proto::encode(&f);
            assert_eq!(again.matches('\n').count(), 1, "one frame, one line");
            let back: ClientFrame =
                proto::decode(again.trim_end()).expect("re-encoded frame decodes");
            assert_eq!(proto::encode(&back), again);
            let _ = proto::check_hello(&f);
        }
        let _ = proto::decode::<ServerFrame>(&line);
    }
}

/// Owner commands and their chat arguments.
pub fn command(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(cmd) = hearth::command::parse(text) {
        let _ = cmd.name();
    }
    let _ = hearth::command::chat_id(text);
    let _ = hearth::audit::parse_head(text);
}

/// `/remind`'s WHEN in a fixed "now" and zone; a due time is in the future.
pub fn when(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(tz) = hearth::reminder::time_zone("Europe/Berlin") else {
        return;
    };
    let Ok(now) = jiff::Timestamp::from_second(1_795_000_000) else {
        return;
    };
    let now = now.to_zoned_datetime(tz.clone());
    if let Ok(r) = hearth::reminder::parse(text, &now) {
        assert!(r.due > now.timestamp(), "{text:?} is due in the past");
        let _ = hearth::reminder::describe(r.due, &tz);
    }
}

/// The config file.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = hearth::config::Config::parse(text);
    }
}

/// Document extractors: the first byte picks the kind, the rest is the file.
pub fn extract(data: &[u8]) {
    let Some((kind, bytes)) = data.split_first() else {
        return;
    };
    let name = match kind % 9 {
        0 => "f.html",
        1 => "f.pdf",
        2 => "f.odt",
        3 => "f.docx",
        4 => "f.md",
        5 => "f.ics",
        6 => "f.eml",
        7 => "f.mbox",
        _ => "f.txt",
    };
    let _ = hearth::index::extract::extract(Path::new(name), bytes);
}

/// Voice-note decoding (Ogg/Opus, WAV): any bytes give samples or an
/// error, never a panic; at most 30 s are decoded so a run stays fast.
pub fn audio(data: &[u8]) {
    if let Ok(samples) = hearth::voice::audio::decode(data, 30) {
        assert!(samples.len() <= 31 * 16_000);
        assert!(samples.iter().all(|s| s.is_finite()));
    }
}
