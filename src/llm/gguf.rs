//! Opening GGUF files: header parsing with clear errors, typed metadata
//! access, and reading tensors once into memory. Owns the mapping from
//! candle's low-level errors to [`LoadError`]s a user can act on.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};

use super::quant::{Bytes, QMatrix, QType};

/// Why a model file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("model file {path} does not exist")]
    NotFound { path: PathBuf },
    #[error("model file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("model file {path} is not supported: {what}")]
    Unsupported { path: PathBuf, what: String },
    #[error("reading model file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// candle's message without the backtrace it appends when `RUST_BACKTRACE`
/// is set: errors reach the user as one line.
pub fn candle_message(e: &candle_core::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// ggml's names for tensor types candle cannot run (IQ quants and others).
fn ggml_type_name(id: u32) -> &'static str {
    match id {
        4 => "Q4_2",
        5 => "Q4_3",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => "unknown",
    }
}

/// llama.cpp's name for a `general.file_type` (`llama_ftype`).
pub fn file_type_name(ftype: usize) -> Option<&'static str> {
    Some(match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K - Medium",
        11 => "Q3_K - Small",
        12 => "Q3_K - Medium",
        13 => "Q3_K - Large",
        14 => "Q4_K - Small",
        15 => "Q4_K - Medium",
        16 => "Q5_K - Small",
        17 => "Q5_K - Medium",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}

/// An open GGUF file: parsed header, a reader for small tensors, and a
/// read-only memory map that weight matrices borrow from.
pub struct GgufFile {
    pub path: PathBuf,
    pub content: gguf_file::Content,
    reader: BufReader<File>,
    map: Arc<memmap2::Mmap>,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let file = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LoadError::NotFound {
                path: path.to_path_buf(),
            },
            _ => LoadError::Io {
                path: path.to_path_buf(),
                source: e,
            },
        })?;
        let mut reader = BufReader::new(file);
        let content = gguf_file::Content::read(&mut reader).map_err(|e| {
            let msg = candle_message(&e);
            if let Some(id) = msg
                .strip_prefix("unknown dtype for tensor ")
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                LoadError::Unsupported {
                    path: path.to_path_buf(),
                    what: format!(
                        "tensor type {} (ggml type {id}); use a file quantized as Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, K-quants, F16 or F32",
                        ggml_type_name(id)
                    ),
                }
            } else {
                LoadError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("cannot parse the GGUF header ({msg})"),
                }
            }
        })?;
        // SAFETY: the file is opened read-only and Hearth never writes
        // model files while they are in use (imports go to a new name and
        // are renamed into place).
        let map = unsafe { memmap2::Mmap::map(reader.get_ref()) }.map_err(|e| LoadError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let this = Self {
            path: path.to_path_buf(),
            content,
            reader,
            map: Arc::new(map),
        };
        this.check_length()?;
        Ok(this)
    }

    /// A truncated download is caught here, before any tensor is read.
    fn check_length(&self) -> Result<(), LoadError> {
        let len = self
            .reader
            .get_ref()
            .metadata()
            .map_err(|e| LoadError::Io {
                path: self.path.clone(),
                source: e,
            })?
            .len();
        let needed = self
            .content
            .tensor_infos
            .values()
            .map(|i| {
                let bytes =
                    i.shape.elem_count() / i.ggml_dtype.block_size() * i.ggml_dtype.type_size();
                self.content.tensor_data_offset + i.offset + bytes as u64
            })
            .max()
            .unwrap_or(0);
        if len < needed {
            return Err(self.corrupt(format!(
                "file is truncated: tensor data needs {needed} bytes, the file has {len}"
            )));
        }
        Ok(())
    }

    pub fn metadata(&self) -> &HashMap<String, gguf_file::Value> {
        &self.content.metadata
    }

    fn corrupt(&self, reason: impl Into<String>) -> LoadError {
        LoadError::Corrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    pub fn unsupported(&self, what: impl Into<String>) -> LoadError {
        LoadError::Unsupported {
            path: self.path.clone(),
            what: what.into(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&gguf_file::Value> {
        self.content.metadata.get(key)
    }

    pub fn string(&self, key: &str) -> Result<String, LoadError> {
        self.get(key)
            .and_then(|v| v.to_string().ok().cloned())
            .ok_or_else(|| self.corrupt(format!("metadata key `{key}` is missing")))
    }

    pub fn usize(&self, key: &str) -> Result<usize, LoadError> {
        self.opt_usize(key)
            .ok_or_else(|| self.corrupt(format!("metadata key `{key}` is missing")))
    }

    pub fn opt_usize(&self, key: &str) -> Option<usize> {
        let v = self.get(key)?;
        v.to_u64()
            .ok()
            .map(|x| x as usize)
            .or_else(|| v.to_i32().ok().map(|x| x as usize))
            .or_else(|| v.to_i64().ok().map(|x| x as usize))
    }

    pub fn opt_f32(&self, key: &str) -> Option<f32> {
        let v = self.get(key)?;
        v.to_f32()
            .ok()
            .or_else(|| v.to_f64().ok().map(|x| x as f32))
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// Reads one tensor into memory, refusing shapes that do not match.
    pub fn tensor(&mut self, name: &str, device: &Device) -> Result<QTensor, LoadError> {
        if !self.has_tensor(name) {
            return Err(self.corrupt(format!("tensor `{name}` is missing")));
        }
        self.content
            .tensor(&mut self.reader, name, device)
            .map_err(|e| LoadError::Corrupt {
                path: self.path.clone(),
                reason: format!("tensor `{name}`: {}", candle_message(&e)),
            })
    }

    /// A 2-D weight matrix kept in its block format, borrowed from the
    /// memory map (nothing is copied or widened).
    pub fn matrix(&self, name: &str) -> Result<QMatrix, LoadError> {
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| self.corrupt(format!("tensor `{name}` is missing")))?;
        let ty = QType::from_candle(info.ggml_dtype).ok_or_else(|| {
            self.unsupported(format!(
                "tensor `{name}` has type {:?}, which is not a weight type",
                info.ggml_dtype
            ))
        })?;
        let (rows, cols) = match info.shape.dims() {
            [cols] => (1, *cols),
            [rows, cols] => (*rows, *cols),
            dims => {
                return Err(self.corrupt(format!(
                    "tensor `{name}` has shape {dims:?}, expected a matrix"
                )));
            }
        };
        let start = (self.content.tensor_data_offset + info.offset) as usize;
        let len = rows * cols / ty.block_elems() * ty.block_bytes();
        let bytes = Bytes::new(self.map.clone(), start..start + len);
        QMatrix::new(ty, rows, cols, bytes)
            .map_err(|e| self.corrupt(format!("tensor `{name}`: {e}")))
    }

    /// Types of all tensors, for reports.
    pub fn dtype_counts(&self) -> Vec<(GgmlDType, usize)> {
        let mut counts: HashMap<String, (GgmlDType, usize)> = HashMap::new();
        for info in self.content.tensor_infos.values() {
            counts
                .entry(format!("{:?}", info.ggml_dtype))
                .or_insert((info.ggml_dtype, 0))
                .1 += 1;
        }
        let mut v: Vec<_> = counts.into_values().collect();
        v.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        v
    }

    /// Total parameter count over all tensors.
    pub fn n_params(&self) -> usize {
        self.content
            .tensor_infos
            .values()
            .map(|i| i.shape.elem_count())
            .sum()
    }
}
