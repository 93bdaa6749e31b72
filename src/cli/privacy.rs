//! `hearth privacy` (the transparency report, as `/privacy` gives it) and
//! `hearth export` (a zip of everything stored: JSON, plus the media the
//! bridge saved). Both read the store directly; on a box where nothing is
//! stored yet they say so (exit 0).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::{GlobalArgs, Outcome};
use crate::audit::{Action, Actor, Entry};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct PrivacyArgs {
    /// The report as one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The zip to write (mode 0600; never overwritten)
    /// [default: hearth-export-YYYY-MM-DD.zip here]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Leave out the media the bridge saved
    #[arg(long)]
    pub no_media: bool,
}

pub fn privacy(g: &GlobalArgs, a: PrivacyArgs) -> anyhow::Result<Outcome> {
    let config = crate::config::Config::load(&g.config_file())?;
    let paths = g.paths()?;
    let Some(store) = Store::open_existing(&paths)? else {
        outln!("{}", super::nothing_yet(&paths));
        return Ok(Outcome::Ok);
    };
    let report = crate::privacy::Report::new(
        store.holdings()?,
        config.retention,
        &paths.data_dir,
        &paths.key_file,
        &g.bridge_paths()?.key_file,
    );
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!("{}", report.text());
    }
    Ok(Outcome::Ok)
}

pub fn export(g: &GlobalArgs, a: ExportArgs) -> anyhow::Result<Outcome> {
    let paths = g.paths()?;
    let Some(mut store) = Store::open_existing(&paths)? else {
        outln!("{}; no export written", super::nothing_yet(&paths));
        return Ok(Outcome::Ok);
    };
    let day = crate::clock::utc_minute(crate::clock::now_ms());
    let out = a
        .output
        .unwrap_or_else(|| PathBuf::from(format!("hearth-export-{}.zip", &day[..10])));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&out)
        .with_context(|| {
            format!(
                "creating {} (an existing file is never overwritten)",
                out.display()
            )
        })?;
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o600);
    let mut put = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        zip.start_file(name, opts)?;
        zip.write_all(bytes)?;
        Ok(())
    };
    let messages = store.export_messages()?;
    put("messages.json", &serde_json::to_vec_pretty(&messages)?)?;
    put(
        "documents.json",
        &serde_json::to_vec_pretty(&store.export_documents()?)?,
    )?;
    put(
        "reminders.json",
        &serde_json::to_vec_pretty(&store.export_reminders()?)?,
    )?;
    put(
        "senders.json",
        &serde_json::to_vec_pretty(&store.export_senders()?)?,
    )?;
    let audit: Vec<serde_json::Value> =
        store.audit_records()?.iter().map(|r| r.to_json()).collect();
    put("audit.json", &serde_json::to_vec_pretty(&audit)?)?;
    let media = if a.no_media {
        0
    } else {
        add_media(&mut put, &g.bridge_paths()?.inbox())?
    };
    let chain = store.verify_audit(None)?;
    let manifest = serde_json::json!({
        "format": "hearth-export-1",
        "hearth": env!("CARGO_PKG_VERSION"),
        "created": day,
        "messages": messages.len(),
        "media_files": media,
        "holdings": store.holdings()?,
        "audit": crate::audit::describe(&chain, None),
    });
    put("manifest.json", &serde_json::to_vec_pretty(&manifest)?)?;
    zip.finish().context("finishing the zip")?;
    store.audit(&Entry::new(
        Actor::Local,
        Action::Exported,
        format!(
            "{} ({} message(s), {media} media file(s))",
            out.display(),
            messages.len()
        ),
    ))?;
    eprintln!(
        "wrote {}: {} message(s), {media} media file(s); it holds everything unencrypted, keep it safe",
        out.display(),
        messages.len()
    );
    Ok(Outcome::Ok)
}

/// Copies the bridge's media inbox into `media/`; how many files. An
/// inbox this user cannot read is skipped with a note.
fn add_media(
    put: &mut impl FnMut(&str, &[u8]) -> anyhow::Result<()>,
    inbox: &Path,
) -> anyhow::Result<usize> {
    let entries = match std::fs::read_dir(inbox) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            eprintln!("note: media in {} not exported: {e}", inbox.display());
            return Ok(0);
        }
    };
    let mut n = 0;
    for e in entries {
        let p = e?.path();
        if !p.is_file() {
            continue;
        }
        let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        put(&format!("media/{name}"), &bytes)?;
        n += 1;
    }
    Ok(n)
}
