//! Hearing voice notes on the agent thread: Whisper is loaded when the
//! first note arrives and dropped after `[voice] unload_after_s` without
//! one; a note's audio (from the store) becomes its message's text,
//! `[voice note, 0:07] what was said`, with the spoken words marked as the
//! sender's own only for a note that was not forwarded; a note that cannot
//! be heard gets a reply saying why.
//!
//! Must not talk to sockets or read the bridge's files; the audio comes
//! only from the store.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::Shared;
use crate::store::{Pending, VoiceNote};
use crate::voice::{AudioError, Transcriber, mm_ss};

/// Notes longer than this get their transcript quoted at the top of the
/// reply, so the owner sees what was heard.
const QUOTE_AFTER_S: f64 = 15.0;

/// What `/status` says of voice notes.
#[derive(Debug, Clone, Default)]
pub struct VoiceStatus {
    pub enabled: bool,
    pub model: String,
    pub installed: bool,
    pub loaded: bool,
    pub heard: u64,
}

/// The agent's ears.
pub struct Ears {
    dir: Option<PathBuf>,
    config: crate::config::Voice,
    model: Option<Transcriber>,
    last_used: Instant,
}

/// What became of a voice note.
pub enum Heard {
    /// The message, its text now the transcript; `quote` to put before the
    /// reply (a long note).
    Text { msg: Pending, quote: Option<String> },
    /// Nothing to answer from: this reply instead.
    Reply(String),
    /// Shutting down, or the store failed: the note stays queued as it was.
    Stopped,
}

impl Ears {
    /// `dir` is the speech model's directory when it is installed.
    pub fn new(dir: Option<PathBuf>, config: crate::config::Voice) -> Self {
        Self {
            dir,
            config,
            model: None,
            last_used: Instant::now(),
        }
    }

    pub fn status(&self, shared: &Shared) {
        let mut s = shared.voice.lock().unwrap_or_else(|p| p.into_inner());
        s.enabled = self.config.enabled;
        s.model = self.config.model.clone();
        s.installed = self.dir.is_some();
        s.loaded = self.model.is_some();
    }

    /// Drops Whisper after the configured quiet time.
    pub fn idle(&mut self, shared: &Shared) {
        if self.model.is_some()
            && self.last_used.elapsed() >= Duration::from_secs(self.config.unload_after_s)
        {
            self.model = None;
            tracing::info!("speech model unloaded after a quiet spell");
            self.status(shared);
        }
    }

    fn model(&mut self, shared: &Shared) -> Result<&Transcriber, String> {
        if self.model.is_none() {
            let dir = self.dir.as_ref().ok_or_else(|| {
                format!(
                    "I can't hear voice notes on this box yet: the speech model {} is not \
                     installed (run scripts/setup.sh). Please type your message.",
                    self.config.model
                )
            })?;
            let t = Transcriber::load(dir).map_err(|e| {
                tracing::error!(error = %e, "the speech model failed to load");
                "I can't hear voice notes right now: the speech model failed to load (see \
                 `hearth doctor`). Please type your message."
                    .to_string()
            })?;
            tracing::info!(
                seconds = t.load_s,
                bytes = t.size_in_bytes(),
                "speech model loaded"
            );
            self.model = Some(t);
            self.status(shared);
        }
        self.last_used = Instant::now();
        self.model.as_ref().ok_or_else(String::new)
    }

    /// Hears `note` (the audio of `msg`), stores the transcript in place of
    /// the note's placeholder and deletes the audio.
    pub fn hear(
        &mut self,
        shared: &Shared,
        msg: &Pending,
        note: &VoiceNote,
        cancel: &dyn Fn() -> bool,
    ) -> Heard {
        let max_s = self.config.max_duration_s;
        let language = self.config.language.clone();
        let samples = match crate::voice::audio::decode(&note.audio, max_s) {
            Ok(s) => s,
            Err(e) => {
                let reply = match e {
                    AudioError::TooLong { max_s } => format!(
                        "That voice note is longer than {} (the most I listen to); please send \
                         a shorter one or type it.",
                        mm_ss(max_s as f64)
                    ),
                    other => format!(
                        "I couldn't play that voice note ({other}); please send it again or type it."
                    ),
                };
                self.settle(shared, msg, note, "not heard", None);
                return Heard::Reply(reply);
            }
        };
        let model = match self.model(shared) {
            Ok(m) => m,
            Err(reply) => {
                self.settle(shared, msg, note, "not heard", None);
                return Heard::Reply(reply);
            }
        };
        let lang = model.language(Some(&language)).unwrap_or(None);
        let t = model.transcribe(&samples, lang, cancel);
        self.last_used = Instant::now();
        let duration = t.duration_s;
        if cancel() {
            // Shutting down: the note stays as it was, heard after the restart.
            return Heard::Stopped;
        }
        tracing::info!(
            duration_s = duration,
            encode_s = t.encode_s,
            decode_s = t.decode_s,
            language = %t.language,
            "voice note heard"
        );
        {
            let mut s = shared.voice.lock().unwrap_or_else(|p| p.into_inner());
            s.heard += 1;
        }
        if t.text.is_empty() {
            self.settle(shared, msg, note, "no speech heard", None);
            return Heard::Reply(
                "I heard no speech in that voice note. Please try again or type your message."
                    .to_string(),
            );
        }
        let label = mm_ss(duration);
        let updated = self.settle(shared, msg, note, &label, Some(&t.text));
        let quote = (duration > QUOTE_AFTER_S).then(|| quote(&t.text));
        match updated {
            Some(msg) => Heard::Text { msg, quote },
            None => Heard::Stopped,
        }
    }

    /// Hears the oldest waiting note of a kept chat (while idle); true when
    /// there was one.
    pub fn hear_kept(&mut self, shared: &Shared, cancel: &dyn Fn() -> bool) -> bool {
        if !self.config.enabled {
            return false;
        }
        let note = match shared.store().next_kept_voice_note() {
            Ok(Some(n)) => n,
            _ => return false,
        };
        let msg = Pending {
            row: note.row,
            chat_id: note.chat_id.clone(),
            msg_id: note.msg_id.clone(),
            sender: String::new(),
            text: note.text.clone(),
            ts_ms: 0,
            typed_from: None,
        };
        let _ = self.hear(shared, &msg, &note, cancel);
        true
    }

    /// Writes the note's new text (`[voice note, LABEL] heard`) and drops
    /// its audio; the updated message, or `None` if the store failed.
    fn settle(
        &self,
        shared: &Shared,
        msg: &Pending,
        note: &VoiceNote,
        label: &str,
        heard: Option<&str>,
    ) -> Option<Pending> {
        let marker = "[voice note]";
        let head = format!("[voice note, {label}]");
        let (text, from) = match msg.text.find(marker) {
            Some(at) => {
                let before = &msg.text[..at];
                let after = &msg.text[at + marker.len()..];
                match heard {
                    Some(h) => {
                        let t = format!("{before}{head} {h}{after}");
                        (t, Some(before.len() + head.len() + 1))
                    }
                    None => (format!("{before}{head}{after}"), None),
                }
            }
            None => (msg.text.clone(), None),
        };
        // Only the sender's own note speaks for them; a forwarded one is
        // someone else's words.
        let from = from.filter(|_| note.own);
        match shared.store().set_transcript(note.row, &text, from) {
            Ok(()) => Some(Pending {
                text,
                typed_from: from,
                ..msg.clone()
            }),
            Err(e) => {
                tracing::error!(error = %e, "storing a transcript failed");
                None
            }
        }
    }
}

/// The first words of a transcript, for the top of a reply.
fn quote(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let cut = words.len() > 25;
    let mut q = words[..words.len().min(25)].join(" ");
    if cut {
        q.push('…');
    }
    format!("(I heard: “{q}”)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_and_quotes() {
        assert_eq!(mm_ss(7.4), "0:07");
        assert_eq!(mm_ss(720.0), "12:00");
        let long = "word ".repeat(40);
        assert!(quote(&long).ends_with("…”)"));
        assert_eq!(quote("call mum"), "(I heard: “call mum”)");
    }
}
