//! Putting model files in place: from the Hugging Face hub (hf-hub, which
//! honours `HF_ENDPOINT`) or from local files (`hearth models import`, used by
//! the setup script's package-mirror fallback). Every byte is hashed on the
//! way into a `.partial` file beside the destination; only a file whose size
//! and sha256 match the manifest is renamed to its final name, so an
//! interrupted or bad download never leaves a file under that name.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use super::{Catalog, CatalogError, ModelFile};

/// Where hub downloads are staged (inside the models directory, so the
/// final rename never crosses file systems).
const HUB_STAGING: &str = ".hf-staging";

fn bar(len: u64, label: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{msg:30!} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(label.to_string());
    pb
}

/// Adapts an indicatif bar to hf-hub's progress callbacks.
struct HubProgress(ProgressBar);

impl hf_hub::api::Progress for HubProgress {
    fn init(&mut self, size: usize, _filename: &str) {
        self.0.set_length(size as u64);
    }
    fn update(&mut self, size: usize) {
        self.0.inc(size as u64);
    }
    fn finish(&mut self) {
        self.0.finish_and_clear();
    }
}

/// The hub endpoint and credentials come from the environment, exactly as
/// for the Python client (`HF_ENDPOINT`, `HF_TOKEN`, `HF_HOME`).
pub struct HubSource;

/// Installs files into a [`Catalog`]'s directory.
pub struct Installer<'c> {
    catalog: &'c Catalog,
    progress: bool,
}

impl<'c> Installer<'c> {
    pub fn new(catalog: &'c Catalog, progress: bool) -> Self {
        Self { catalog, progress }
    }

    /// Concatenates `parts` (in order) into `file`'s place, verified.
    pub fn install_from_files(
        &self,
        file: &ModelFile,
        parts: &[PathBuf],
    ) -> Result<PathBuf, CatalogError> {
        let mut readers = Vec::with_capacity(parts.len());
        for p in parts {
            readers.push(
                File::open(p)
                    .map_err(|e| CatalogError::io(format!("opening {}", p.display()), e))?,
            );
        }
        let chain = readers
            .into_iter()
            .fold(Box::new(std::io::empty()) as Box<dyn Read>, |acc, r| {
                Box::new(acc.chain(r))
            });
        self.install_stream(file, chain, "importing")
    }

    /// Downloads `file` from its Hugging Face source and installs it.
    pub fn install_from_hub(
        &self,
        file: &ModelFile,
        _hub: &HubSource,
    ) -> Result<PathBuf, CatalogError> {
        let hf = file.hf.as_ref().ok_or_else(|| CatalogError::Hub {
            file: file.file.clone(),
            reason: "the manifest names no Hugging Face source for it".into(),
        })?;
        let hub_err = |e: hf_hub::api::sync::ApiError| CatalogError::Hub {
            file: file.file.clone(),
            reason: e.to_string(),
        };
        let staging = self.catalog.dir.join(HUB_STAGING);
        let api = hf_hub::api::sync::ApiBuilder::from_env()
            .with_cache_dir(staging.clone())
            .with_progress(false)
            .build()
            .map_err(hub_err)?;
        let repo = match &hf.revision {
            Some(rev) => {
                hf_hub::Repo::with_revision(hf.repo.clone(), hf_hub::RepoType::Model, rev.clone())
            }
            None => hf_hub::Repo::model(hf.repo.clone()),
        };
        let pb = bar(file.size, &hf.file, self.progress);
        let downloaded = api
            .repo(repo)
            .download_with_progress(&hf.file, HubProgress(pb))
            .map_err(hub_err);
        let result = downloaded.and_then(|p| self.install_from_files(file, &[p]));
        // The staged copy is only a means: drop it whatever happened.
        let _ = std::fs::remove_dir_all(&staging);
        result
    }

    /// Streams `src` into `<dest>.partial`, hashing as it goes, then renames
    /// it into place if size and sha256 match.
    fn install_stream(
        &self,
        file: &ModelFile,
        mut src: impl Read,
        verb: &str,
    ) -> Result<PathBuf, CatalogError> {
        let dest = self.catalog.path_of(file);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| CatalogError::io(format!("creating {}", parent.display()), e))?;
        }
        let partial = partial_path(&dest);
        let result = (|| {
            let out = File::create(&partial)
                .map_err(|e| CatalogError::io(format!("creating {}", partial.display()), e))?;
            let mut out = BufWriter::with_capacity(1 << 20, out);
            let pb = bar(file.size, &format!("{verb} {}", file.file), self.progress);
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0u64;
            loop {
                let n = src.read(&mut buf).map_err(|e| {
                    CatalogError::io(format!("reading source for {}", file.file), e)
                })?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])
                    .map_err(|e| CatalogError::io(format!("writing {}", partial.display()), e))?;
                total += n as u64;
                pb.inc(n as u64);
            }
            pb.finish_and_clear();
            let out = out.into_inner().map_err(|e| {
                CatalogError::io(format!("writing {}", partial.display()), e.into_error())
            })?;
            out.sync_all()
                .map_err(|e| CatalogError::io(format!("syncing {}", partial.display()), e))?;
            let actual = crate::hex::encode(&hasher.finalize());
            if !actual.eq_ignore_ascii_case(&file.sha256) {
                return Err(CatalogError::HashMismatch {
                    file: file.file.clone(),
                    expected: file.sha256.clone(),
                    actual,
                });
            }
            if total != file.size {
                return Err(CatalogError::SizeMismatch {
                    file: file.file.clone(),
                    expected: file.size,
                    actual: total,
                });
            }
            std::fs::rename(&partial, &dest)
                .map_err(|e| CatalogError::io(format!("moving into {}", dest.display()), e))?;
            sync_dir(&dest);
            Ok(dest.clone())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

/// Makes a rename durable (best effort: not every file system supports it).
fn sync_dir(p: &Path) {
    if let Some(parent) = p.parent()
        && let Ok(d) = File::open(parent)
    {
        let _ = d.sync_all();
    }
}

/// Lowercase hex sha256 of a file, with a progress bar when `progress`.
pub fn hash_with_progress(p: &Path, progress: bool) -> Result<String, CatalogError> {
    let f = File::open(p).map_err(|e| CatalogError::io(format!("opening {}", p.display()), e))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let pb = bar(len, "sha256", progress);
    let mut r = pb.wrap_read(std::io::BufReader::with_capacity(1 << 20, f));
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
    pb.finish_and_clear();
    Ok(crate::hex::encode(&h.finalize()))
}
