//! The bridge side of the socket: a client that holds a transport session
//! and forwards messages to `hearth serve`. [`whatsapp`] is the real
//! transport (whatsapp-rust, linked-device session on this box);
//! [`simulate`] replaces it with stdin/stdout (tests, benchmarks, trying
//! Hearth without a phone). Here too: how a long reply is cut to the
//! transport's message limit.
//!
//! Must not open the store, the index or a model: the bridge only maps
//! transport messages to protocol frames and back.

pub mod inbox;
pub mod simulate;
pub mod whatsapp;

/// The inbound messages waiting in the bridge's queue (stored as their
/// JSON), as protocol frames, oldest first. One that cannot be read is
/// skipped with a warning: offering it again would never help.
pub fn queued_frames(
    db: &crate::store::session::SessionDb,
) -> Result<Vec<String>, crate::store::StoreError> {
    Ok(db
        .queued_inbound()?
        .into_iter()
        .filter_map(
            |stored| match serde_json::from_str::<crate::proto::Inbound>(&stored) {
                Ok(mut m) => {
                    attach_audio(&mut m);
                    Some(crate::proto::encode(&crate::proto::ClientFrame::Inbound(
                        Box::new(m),
                    )))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "an unreadable queued message skipped");
                    None
                }
            },
        )
        .collect())
}

/// Puts a voice note's saved audio into its frame (`media.audio_b64`), so
/// `serve` hears it without reading the bridge's inbox. A file that is
/// gone (shredded by `media_days`) or over [`crate::proto::MAX_AUDIO_BYTES`]
/// is left out; `serve` then says it could not hear the note.
pub fn attach_audio(m: &mut crate::proto::Inbound) {
    use crate::proto::MediaKind;
    use base64::Engine as _;
    let Some(media) = m.media.as_mut() else {
        return;
    };
    if !matches!(media.kind, MediaKind::Voice | MediaKind::Audio) || media.audio_b64.is_some() {
        return;
    }
    let Some(path) = media.saved_as.as_deref() else {
        return;
    };
    let path = std::path::Path::new(path);
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() <= crate::proto::MAX_AUDIO_BYTES as u64 => {
            match std::fs::read(path) {
                Ok(bytes) => {
                    media.audio_b64 = Some(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
                Err(e) => tracing::warn!(error = %e, "a saved voice note could not be read"),
            }
        }
        Ok(meta) => tracing::warn!(bytes = meta.len(), "a voice note too large to hand over"),
        Err(e) => tracing::warn!(error = %e, "a saved voice note is gone"),
    }
}

/// After `serve` acknowledged `frame` (an inbound message as queued): a
/// voice note it was handed in full is shredded from the inbox, since
/// `serve` now holds the audio (encrypted) until it is heard. Files outside
/// the inbox (a simulated message pointing at any file) are never touched.
pub fn shred_handed_audio(frame: &str, inbox: &std::path::Path) {
    use crate::proto::MediaKind;
    let Ok(m) = serde_json::from_str::<crate::proto::Inbound>(frame) else {
        return;
    };
    let Some(media) = &m.media else { return };
    if !matches!(media.kind, MediaKind::Voice | MediaKind::Audio) {
        return;
    }
    let Some(path) = media.saved_as.as_deref().map(std::path::Path::new) else {
        return;
    };
    let inside = match (
        path.parent().map(std::fs::canonicalize),
        std::fs::canonicalize(inbox),
    ) {
        (Some(Ok(dir)), Ok(inbox)) => dir == inbox,
        _ => false,
    };
    if inside && let Err(e) = inbox::shred(path) {
        tracing::warn!(error = %e, "a handed-over voice note could not be shredded");
    }
}

/// The bridge's events waiting for Hearth's audit log, as `audit` frames.
pub fn audit_frames(
    db: &crate::store::session::SessionDb,
) -> Result<Vec<String>, crate::store::StoreError> {
    use crate::proto::{BridgeAction, ClientFrame};
    Ok(db
        .queued_audit()?
        .into_iter()
        .filter_map(|(id, action, object, at_ms)| {
            let action = BridgeAction::parse(&action)?;
            Some(crate::proto::encode(&ClientFrame::Audit {
                id,
                action,
                object,
                at_ms,
            }))
        })
        .collect())
}

/// `/forget everything` reached the bridge: shreds the media saved before
/// `before_ms` and queues an audit event when any went. Returns how many.
pub fn erase_media(
    db: &crate::store::session::SessionDb,
    inbox: &std::path::Path,
    before_ms: i64,
) -> anyhow::Result<usize> {
    let cutoff = std::time::UNIX_EPOCH + std::time::Duration::from_millis(before_ms.max(0) as u64);
    let n = inbox::sweep_before(inbox, Some(cutoff))?;
    if n > 0 {
        tracing::info!(files = n, "saved media erased (forget everything)");
        db.queue_audit(
            crate::proto::BridgeAction::MediaErased.as_str(),
            &format!("{n} media file(s)"),
        )?;
    }
    Ok(n)
}

/// The longest WhatsApp message Hearth sends, in characters.
pub const WHATSAPP_MAX_CHARS: usize = 4000;

/// Separators a reply is cut at, best first: paragraphs, lines,
/// sentences, words.
const CUTS: [&str; 4] = ["\n\n", "\n", ". ", " "];

/// `text` in parts of at most `limit` characters, cut at paragraph
/// boundaries when it can be, else at line, sentence or word boundaries,
/// and only as a last resort inside a word. Short text is one part.
pub fn split_message(text: &str, limit: usize) -> Vec<String> {
    let text = text.trim();
    let limit = limit.max(1);
    if text.chars().count() <= limit {
        return vec![text.to_string()];
    }
    pack(text, limit, 0)
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Splits at `CUTS[level]` and packs the pieces greedily; pieces still too
/// long go down a level.
fn pack(text: &str, limit: usize, level: usize) -> Vec<String> {
    let Some(sep) = CUTS.get(level) else {
        let chars: Vec<char> = text.chars().collect();
        return chars.chunks(limit).map(|c| c.iter().collect()).collect();
    };
    // A sentence keeps its full stop: cut after ". ", not before.
    let keep = if *sep == ". " { "." } else { "" };
    let glue = &sep[keep.len()..];
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    let pieces: Vec<&str> = text.split(sep).collect();
    let last = pieces.len() - 1;
    for (i, piece) in pieces.into_iter().enumerate() {
        let piece = if i < last && !keep.is_empty() {
            format!("{piece}{keep}")
        } else {
            piece.to_string()
        };
        let n = piece.chars().count();
        if n > limit {
            if !cur.is_empty() {
                parts.push(std::mem::take(&mut cur));
            }
            parts.extend(pack(&piece, limit, level + 1));
            continue;
        }
        let joined = cur.chars().count() + glue.chars().count() + n;
        if cur.is_empty() {
            cur = piece;
        } else if joined <= limit {
            cur.push_str(glue);
            cur.push_str(&piece);
        } else {
            parts.push(std::mem::replace(&mut cur, piece));
        }
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handed_voice_notes_are_shredded_from_the_inbox_only() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        std::fs::create_dir(&inbox).unwrap();
        let inside = inbox.join("note.ogg");
        let outside = dir.path().join("mine.ogg");
        for p in [&inside, &outside] {
            std::fs::write(p, b"OggS audio").unwrap();
        }
        let frame = |p: &std::path::Path| {
            serde_json::json!({"message_id":"1","chat_id":"c","sender_id":"c","text":"",
                "timestamp_ms":0,"media":{"kind":"voice","bytes":10,"saved_as":p}})
            .to_string()
        };
        let mut m: crate::proto::Inbound = serde_json::from_str(&frame(&inside)).unwrap();
        attach_audio(&mut m);
        assert!(m.media.unwrap().audio_b64.is_some());
        shred_handed_audio(&frame(&outside), &inbox);
        assert!(
            outside.exists(),
            "a file outside the inbox is not the bridge's to shred"
        );
        shred_handed_audio(&frame(&inside), &inbox);
        assert!(!inside.exists());
    }

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(split_message(" hello \n", 4000), ["hello"]);
    }

    #[test]
    fn long_text_is_cut_at_paragraphs_first() {
        let para = |c: char| c.to_string().repeat(1500);
        let text = format!("{}\n\n{}\n\n{}", para('a'), para('b'), para('c'));
        let parts = split_message(&text, 4000);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], format!("{}\n\n{}", para('a'), para('b')));
        assert_eq!(parts[1], para('c'));
    }

    #[test]
    fn a_long_paragraph_is_cut_at_sentences_then_words_then_anywhere() {
        let sentence = "word ".repeat(10) + "end.";
        let text = vec![sentence.clone(); 200].join(" ");
        let parts = split_message(&text, 500);
        assert!(parts.iter().all(|p| p.chars().count() <= 500));
        assert!(parts.iter().all(|p| p.ends_with("end.")), "{parts:?}");
        assert_eq!(parts.join(" "), text);

        let words = "abcdefghij ".repeat(100);
        let parts = split_message(&words, 25);
        assert!(parts.iter().all(|p| p.chars().count() <= 25));
        assert_eq!(parts[0], "abcdefghij abcdefghij");

        let blob = "é".repeat(9000);
        let parts = split_message(&blob, 4000);
        assert_eq!(
            parts.iter().map(|p| p.chars().count()).collect::<Vec<_>>(),
            [4000, 4000, 1000]
        );
    }
}
