//! Reading a CTranslate2 `model.bin` (binary version 6, as faster-whisper's
//! conversions ship): the spec name, named variables with their shapes and
//! types, and aliases. Data offsets in the file are not aligned, so every
//! variable is copied out (f16 widened to f32) rather than mapped.
//!
//! Owns the file format only; must not know what the variables mean.

use std::collections::HashMap;

use half::f16;

/// Why a `model.bin` cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Ct2Error {
    #[error("the file ends inside {0}")]
    Truncated(&'static str),
    #[error("binary version {0} is not supported (expected 6)")]
    Version(u32),
    #[error("spec {0} is not a Whisper model")]
    Spec(String),
    #[error("variable {name}: data type {dtype} is not supported")]
    DType { name: String, dtype: u8 },
    #[error("variable {0} is missing")]
    Missing(String),
    #[error("variable {name}: {reason}")]
    Layout { name: String, reason: String },
    #[error("variable {name} has shape {found:?}, expected {expected:?}")]
    Shape {
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
}

/// One stored variable, widened to f32 (scalars too).
pub struct Variable {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The variables of a model file by name (aliases resolved).
pub struct Ct2File {
    pub spec: String,
    vars: HashMap<String, Variable>,
    aliases: HashMap<String, String>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Ct2Error> {
        let end = self.at.checked_add(n).ok_or(Ct2Error::Truncated(what))?;
        let s = self
            .bytes
            .get(self.at..end)
            .ok_or(Ct2Error::Truncated(what))?;
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, Ct2Error> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, Ct2Error> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, Ct2Error> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A length-prefixed, NUL-terminated string.
    fn string(&mut self, what: &'static str) -> Result<String, Ct2Error> {
        let n = self.u16(what)? as usize;
        let b = self.take(n, what)?;
        let b = b.strip_suffix(&[0]).unwrap_or(b);
        Ok(String::from_utf8_lossy(b).into_owned())
    }
}

/// CTranslate2's `DataType` numbering.
fn widen(name: &str, dtype: u8, raw: &[u8]) -> Result<Vec<f32>, Ct2Error> {
    Ok(match dtype {
        0 => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        1 => raw.iter().map(|&b| b as i8 as f32).collect(),
        2 => raw
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32)
            .collect(),
        3 => raw
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
            .collect(),
        4 => raw
            .chunks_exact(2)
            .map(|b| f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect(),
        5 => raw
            .chunks_exact(2)
            .map(|b| half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect(),
        _ => {
            return Err(Ct2Error::DType {
                name: name.to_string(),
                dtype,
            });
        }
    })
}

impl Ct2File {
    /// Parses the whole file (`bytes` is its contents).
    pub fn parse(bytes: &[u8]) -> Result<Self, Ct2Error> {
        let mut r = Reader { bytes, at: 0 };
        let version = r.u32("the version")?;
        if version != 6 {
            return Err(Ct2Error::Version(version));
        }
        let spec = r.string("the spec name")?;
        if spec != "WhisperSpec" {
            return Err(Ct2Error::Spec(spec));
        }
        let _revision = r.u32("the spec revision")?;
        let count = r.u32("the variable count")? as usize;
        let mut vars = HashMap::with_capacity(count.min(4096));
        for _ in 0..count {
            let name = r.string("a variable name")?;
            let rank = r.u8("a rank")? as usize;
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(r.u32("a dimension")? as usize);
            }
            let dtype = r.u8("a data type")?;
            let len = r.u32("a data size")? as usize;
            let raw = r.take(len, "variable data")?;
            let data = widen(&name, dtype, raw)?;
            vars.insert(name, Variable { shape, data });
        }
        let mut aliases = HashMap::new();
        let n = r.u32("the alias count")?;
        for _ in 0..n {
            let alias = r.string("an alias")?;
            let target = r.string("an alias target")?;
            aliases.insert(alias, target);
        }
        Ok(Self {
            spec,
            vars,
            aliases,
        })
    }

    fn resolve<'s>(&'s self, name: &'s str) -> &'s str {
        self.aliases.get(name).map(String::as_str).unwrap_or(name)
    }

    /// A variable, which must have `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&[f32], Ct2Error> {
        let v = self
            .vars
            .get(self.resolve(name))
            .ok_or_else(|| Ct2Error::Missing(name.to_string()))?;
        if v.shape != shape {
            return Err(Ct2Error::Shape {
                name: name.to_string(),
                found: v.shape.clone(),
                expected: shape.to_vec(),
            });
        }
        Ok(&v.data)
    }

    /// Whether a variable (or alias) of that name exists.
    pub fn has(&self, name: &str) -> bool {
        self.vars.contains_key(self.resolve(name))
    }

    /// A variable's shape, if it exists.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.vars
            .get(self.resolve(name))
            .map(|v| v.shape.as_slice())
    }

    /// A scalar flag or count (`decoder/num_heads`), if stored.
    pub fn scalar(&self, name: &str) -> Option<f32> {
        let v = self.vars.get(self.resolve(name))?;
        (v.shape.is_empty() && v.data.len() == 1).then(|| v.data[0])
    }

    /// Takes a variable's data out of the file (large matrices, to avoid a copy).
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, Ct2Error> {
        self.get(name, shape)?;
        let key = self.resolve(name).to_string();
        if self.aliases.values().any(|t| *t == key) && !self.aliases.contains_key(name) {
            // Still needed by an alias: copy.
            return Ok(self.vars[&key].data.clone());
        }
        Ok(self.vars.remove(&key).map(|v| v.data).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    fn file() -> Vec<u8> {
        let mut b = 6u32.to_le_bytes().to_vec();
        string(&mut b, "WhisperSpec");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        string(&mut b, "a/weight");
        b.push(2);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.push(4);
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&f16::from_f32(1.5).to_bits().to_le_bytes());
        b.extend_from_slice(&f16::from_f32(-2.0).to_bits().to_le_bytes());
        string(&mut b, "heads");
        b.push(0);
        b.push(2);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&8i16.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        string(&mut b, "b/weight");
        string(&mut b, "a/weight");
        b
    }

    #[test]
    fn reads_variables_scalars_and_aliases() {
        let mut f = Ct2File::parse(&file()).unwrap();
        assert_eq!(f.get("a/weight", &[1, 2]).unwrap(), &[1.5, -2.0]);
        assert_eq!(f.get("b/weight", &[1, 2]).unwrap(), &[1.5, -2.0]);
        assert_eq!(f.scalar("heads"), Some(8.0));
        assert!(matches!(
            f.get("a/weight", &[2, 1]),
            Err(Ct2Error::Shape { .. })
        ));
        assert!(matches!(f.get("c", &[1]), Err(Ct2Error::Missing(_))));
        // Taking the aliased variable leaves the alias readable.
        assert_eq!(f.take("a/weight", &[1, 2]).unwrap(), vec![1.5, -2.0]);
        assert_eq!(f.get("b/weight", &[1, 2]).unwrap(), &[1.5, -2.0]);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = file();
        for n in 0..bytes.len() {
            assert!(Ct2File::parse(&bytes[..n]).is_err(), "{n}");
        }
        let mut wrong = bytes.clone();
        wrong[0] = 5;
        assert!(matches!(Ct2File::parse(&wrong), Err(Ct2Error::Version(5))));
    }
}
