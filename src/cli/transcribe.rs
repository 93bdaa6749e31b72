//! `hearth transcribe FILE…`: voice notes (Ogg/Opus, WAV) to text on this
//! box, the model loaded once for all files; `--json` prints one object per
//! file and line.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{GlobalArgs, Outcome, open_catalog};
use crate::voice::Transcriber;

#[derive(Debug, Args)]
pub struct TranscribeArgs {
    /// Voice notes to transcribe: Ogg/Opus (WhatsApp's format) or WAV
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// One JSON object per file and line: file, text, language, duration_s,
    /// tokens, timings (seconds) and the real-time factor
    #[arg(long)]
    pub json: bool,
    /// Language code (en, de, fr, …) or auto to detect it [default: the
    /// config's [voice] language, else auto]
    #[arg(long, value_name = "CODE")]
    pub language: Option<String>,
    /// Compute threads [default: all cores]
    #[arg(short, long, value_name = "N")]
    pub threads: Option<usize>,
    /// Refuse notes longer than this [default: the config's [voice]
    /// max_duration_s, 600]
    #[arg(long, value_name = "SECONDS")]
    pub max_duration: Option<u64>,
    /// Speech model from the manifest [default: the config's [voice] model,
    /// whisper-base]
    #[arg(short, long, value_name = "NAME")]
    pub model: Option<String>,
}

pub fn run(g: &GlobalArgs, a: TranscribeArgs) -> anyhow::Result<Outcome> {
    let voice = crate::config::Config::load(&g.config_file())
        .map(|c| c.voice)
        .unwrap_or_default();
    let name = a.model.clone().unwrap_or(voice.model.clone());
    let catalog = open_catalog(g)?;
    let main = catalog
        .model_path(&name)
        .with_context(|| format!("the speech model {name} is not installed: run `hearth models pull {name}` or scripts/setup.sh"))?;
    let dir = main.parent().unwrap_or(std::path::Path::new("."));
    let interactive = std::io::stderr().is_terminal();
    if interactive {
        eprintln!("loading {name}…");
    }
    let model = Transcriber::load(dir)?;
    let language = a.language.clone().unwrap_or(voice.language.clone());
    let lang = model.language(Some(&language))?;
    let max_s = a.max_duration.unwrap_or(voice.max_duration_s);
    let mut failed = 0usize;
    let several = a.files.len() > 1;
    for file in &a.files {
        let t0 = std::time::Instant::now();
        let heard = std::fs::read(file)
            .with_context(|| format!("cannot read {}", file.display()))
            .and_then(|bytes| {
                crate::voice::audio::decode(&bytes, max_s)
                    .with_context(|| format!("{} cannot be transcribed", file.display()))
            });
        let samples = match heard {
            Ok(s) => s,
            Err(e) => {
                failed += 1;
                if a.json {
                    let v = serde_json::json!({"file": file, "error": format!("{e:#}")});
                    outln!("{v}");
                } else {
                    eprintln!("error: {e:#}");
                }
                continue;
            }
        };
        let audio_s = t0.elapsed().as_secs_f64();
        if interactive && !a.json {
            eprintln!(
                "transcribing {} ({})…",
                file.display(),
                crate::voice::mm_ss(samples.len() as f64 / crate::voice::audio::RATE as f64)
            );
        }
        let t = model.transcribe(&samples, lang, &|| false);
        let total = t0.elapsed().as_secs_f64();
        if a.json {
            let v = serde_json::json!({
                "file": file,
                "text": t.text,
                "language": t.language,
                "duration_s": t.duration_s,
                "tokens": t.tokens,
                "windows": t.windows,
                "silent_windows": t.silent_windows,
                "timings": {
                    "load_s": model.load_s,
                    "audio_s": audio_s,
                    "mel_s": t.mel_s,
                    "encode_s": t.encode_s,
                    "decode_s": t.decode_s,
                    "total_s": total,
                },
                "rtf": if t.duration_s > 0.0 { total / t.duration_s } else { 0.0 },
            });
            outln!("{v}");
        } else if several {
            outln!("{}: {}", file.display(), t.text);
        } else {
            outln!("{}", t.text);
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} file(s) could not be transcribed (see above): give Ogg/Opus or WAV voice notes",
            a.files.len()
        );
    }
    Ok(Outcome::Ok)
}
