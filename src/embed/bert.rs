//! The BERT encoder of the sentence embedder, on plain f32 rows: weights
//! read once from safetensors, matrix products on `gemm` (the kernels
//! candle itself uses, with AVX-512 where the CPU has it), and the small
//! element-wise steps (layer norm, GELU, softmax) written out so nothing
//! is allocated per operation. The tokens of a batch are packed without
//! padding for every matrix product; attention runs per text.
//!
//! candle-transformers' `BertModel` computes the same function but spent
//! more than half its time outside the matrix products (allocations, erf,
//! broadcasting), at under half sentence-transformers' speed here.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors};

/// The shape of the encoder (from `config.json`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BertConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub hidden_act: String,
}

fn default_eps() -> f64 {
    1e-12
}

/// `y = x · Wᵀ + b` with `W` stored `[out, in]` as in the checkpoint.
/// An f32 linear layer `y = x · Wᵀ + b` (`W` is `[n_out, n_in]`).
pub(crate) struct Linear {
    w: Vec<f32>,
    b: Vec<f32>,
    n_in: usize,
    n_out: usize,
}

struct Norm {
    w: Vec<f32>,
    b: Vec<f32>,
}

struct Layer {
    /// Query, key and value fused into one `[3 * hidden, hidden]` product.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    ffn_in: Linear,
    ffn_out: Linear,
    ffn_norm: Norm,
}

pub struct Bert {
    cfg: BertConfig,
    word: WordTable,
    position: Vec<f32>,
    token_type: Vec<f32>,
    emb_norm: Norm,
    layers: Vec<Layer>,
    eps: f32,
}

/// The word-embedding table left in the memory-mapped file: a lookup reads
/// one row, so only the pages of tokens actually seen become resident (the
/// table is half the model: 47 MB of all-MiniLM-L6-v2's 91 MB).
struct WordTable {
    map: memmap2::Mmap,
    /// Byte offset of the f32 little-endian `[vocab, hidden]` data.
    start: usize,
    vocab: usize,
    hidden: usize,
}

impl WordTable {
    /// Row `id` added into `out`.
    fn add_row(&self, id: usize, out: &mut [f32]) {
        let bytes = &self.map[self.start + id * self.hidden * 4..][..self.hidden * 4];
        for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            *o += f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
    }
}

impl Bert {
    /// Reads the encoder weights from a sentence-transformers safetensors
    /// file (names with or without a `bert.` prefix).
    pub fn load(weights: &Path, cfg: BertConfig) -> Result<Self, String> {
        if cfg.hidden_act != "gelu" && !cfg.hidden_act.is_empty() {
            return Err(format!(
                "activation `{}` is not supported (gelu)",
                cfg.hidden_act
            ));
        }
        if cfg.num_attention_heads == 0 || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads)
        {
            return Err("hidden size is not a multiple of the head count".into());
        }
        let file = std::fs::File::open(weights).map_err(|e| e.to_string())?;
        // SAFETY: read-only map of a model file that is never written in place.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| e.to_string())?;
        let st = SafeTensors::deserialize(&map).map_err(|e| e.to_string())?;
        let names: HashMap<String, ()> = st
            .names()
            .into_iter()
            .map(|n| (n.to_string(), ()))
            .collect();
        let prefix = if names.contains_key("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>, String> {
            let full = format!("{prefix}{name}");
            let t = st
                .tensor(&full)
                .map_err(|_| format!("tensor `{full}` is missing"))?;
            if t.dtype() != Dtype::F32 {
                return Err(format!("tensor `{full}` is {:?}, expected F32", t.dtype()));
            }
            if t.shape() != shape {
                return Err(format!(
                    "tensor `{full}` has shape {:?}, expected {shape:?}",
                    t.shape()
                ));
            }
            Ok(t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let h = cfg.hidden_size;
        let linear = |name: &str, n_out: usize, n_in: usize| -> Result<Linear, String> {
            Ok(Linear {
                w: get(&format!("{name}.weight"), &[n_out, n_in])?,
                b: get(&format!("{name}.bias"), &[n_out])?,
                n_in,
                n_out,
            })
        };
        let norm = |name: &str| -> Result<Norm, String> {
            Ok(Norm {
                w: get(&format!("{name}.weight"), &[h])?,
                b: get(&format!("{name}.bias"), &[h])?,
            })
        };
        let word = st
            .tensor(&format!("{prefix}embeddings.word_embeddings.weight"))
            .map_err(|_| "tensor `embeddings.word_embeddings.weight` is missing".to_string())?;
        let vocab = word.shape().first().copied().unwrap_or(0);
        if word.dtype() != Dtype::F32 || word.shape() != [vocab, h] {
            return Err(format!(
                "tensor `embeddings.word_embeddings.weight` is {:?} {:?}, expected F32 [vocab, {h}]",
                word.dtype(),
                word.shape()
            ));
        }
        // The tensor's bytes are a slice of the map: keep their offset.
        let start = word.data().as_ptr() as usize - map.as_ptr() as usize;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = |s: &str| format!("encoder.layer.{i}.{s}");
            let (q, k, v) = (
                linear(&p("attention.self.query"), h, h)?,
                linear(&p("attention.self.key"), h, h)?,
                linear(&p("attention.self.value"), h, h)?,
            );
            let qkv = Linear {
                w: [q.w, k.w, v.w].concat(),
                b: [q.b, k.b, v.b].concat(),
                n_in: h,
                n_out: 3 * h,
            };
            layers.push(Layer {
                qkv,
                attn_out: linear(&p("attention.output.dense"), h, h)?,
                attn_norm: norm(&p("attention.output.LayerNorm"))?,
                ffn_in: linear(&p("intermediate.dense"), cfg.intermediate_size, h)?,
                ffn_out: linear(&p("output.dense"), h, cfg.intermediate_size)?,
                ffn_norm: norm(&p("output.LayerNorm"))?,
            });
        }
        let position = get(
            "embeddings.position_embeddings.weight",
            &[cfg.max_position_embeddings, h],
        )?;
        let token_type = get("embeddings.token_type_embeddings.weight", &[2, h])?;
        let emb_norm = norm("embeddings.LayerNorm")?;
        drop(st);
        // The other tensors were copied out; give back the file pages that
        // copying touched, or they would stay resident in this mapping.
        // SAFETY: the map is read-only and private; after DONTNEED a read
        // faults the page back in from the file, so the table stays valid.
        if let Err(e) = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) } {
            tracing::debug!(error = %e, "madvise(DONTNEED) on the embedder's weights failed");
        }
        Ok(Self {
            word: WordTable {
                map,
                start,
                vocab,
                hidden: h,
            },
            position,
            token_type,
            emb_norm,
            layers,
            eps: cfg.layer_norm_eps as f32,
            cfg,
        })
    }

    pub fn hidden_size(&self) -> usize {
        self.cfg.hidden_size
    }

    /// Encodes texts given as token ids; returns the last hidden state of
    /// every token, the texts' tokens one after another (`[Σ len, hidden]`).
    pub fn forward(&self, texts: &[&[u32]]) -> Vec<f32> {
        let h = self.cfg.hidden_size;
        let vocab = self.word.vocab;
        let n: usize = texts.iter().map(|t| t.len()).sum();
        let mut x = vec![0f32; n * h];
        let mut row = 0;
        for t in texts {
            for (pos, &id) in t.iter().enumerate() {
                let id = (id as usize).min(vocab - 1);
                let pos = pos.min(self.cfg.max_position_embeddings - 1);
                let out = &mut x[row * h..(row + 1) * h];
                let (p, ty) = (
                    &self.position[pos * h..(pos + 1) * h],
                    &self.token_type[..h],
                );
                // The sum in the order `word + type + position`, as before
                // the table was mapped: word first, then the rest.
                self.word.add_row(id, out);
                for i in 0..h {
                    out[i] = out[i] + ty[i] + p[i];
                }
                row += 1;
            }
        }
        add_norm(&mut x, &[], &self.emb_norm, self.eps);
        let mut qkv = vec![0f32; n * 3 * h];
        let mut ctx = vec![0f32; n * h];
        let mut tmp = vec![0f32; n * h];
        let mut inter = vec![0f32; n * self.cfg.intermediate_size];
        for layer in &self.layers {
            layer.qkv.forward(&x, &mut qkv);
            self.attention(texts, &qkv, &mut ctx);
            layer.attn_out.forward(&ctx, &mut tmp);
            add_norm(&mut x, &tmp, &layer.attn_norm, self.eps);
            layer.ffn_in.forward(&x, &mut inter);
            inter.par_chunks_mut(1 << 16).for_each(gelu_erf);
            layer.ffn_out.forward(&inter, &mut tmp);
            add_norm(&mut x, &tmp, &layer.ffn_norm, self.eps);
        }
        x
    }

    /// Softmax attention of every text over its own tokens; writes the
    /// per-head contexts into `ctx` (`[Σ len, hidden]`).
    fn attention(&self, texts: &[&[u32]], qkv: &[f32], ctx: &mut [f32]) {
        let h = self.cfg.hidden_size;
        let heads = self.cfg.num_attention_heads;
        let hd = h / heads;
        let scale = 1.0 / (hd as f32).sqrt();
        // (text start row, length) for each text.
        let mut spans = Vec::with_capacity(texts.len());
        let mut start = 0;
        for t in texts {
            spans.push((start, t.len()));
            start += t.len();
        }
        // One task per text: writes only that text's rows of `ctx`.
        let mut parts: Vec<&mut [f32]> = Vec::with_capacity(texts.len());
        let mut rest = ctx;
        for &(_, len) in &spans {
            let (a, b) = rest.split_at_mut(len * h);
            parts.push(a);
            rest = b;
        }
        parts
            .into_par_iter()
            .zip(spans.par_iter())
            .for_each(|(out, &(s, len))| {
                let mut scores = vec![0f32; len * len];
                let rows = &qkv[s * 3 * h..(s + len) * 3 * h];
                for head in 0..heads {
                    head_attention(
                        rows,
                        len,
                        h,
                        head,
                        hd,
                        scale,
                        &mut scores,
                        &mut out[head * hd..],
                        h,
                    );
                }
            });
    }
}

/// One head of unmasked softmax attention over `n` packed rows of
/// `qkv` (`[n, 3·width]`, Q|K|V): `out` gets the head's `n × hd` context,
/// row `i` at `out[i·out_stride..]`. `scores` is `n × n` scratch.
#[allow(clippy::too_many_arguments)]
pub(crate) fn head_attention(
    qkv: &[f32],
    n: usize,
    width: usize,
    head: usize,
    hd: usize,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
    out_stride: usize,
) {
    assert!(qkv.len() >= n * 3 * width && scores.len() >= n * n);
    assert!(n == 0 || out.len() >= (n - 1) * out_stride + hd);
    let q = qkv[head * hd..].as_ptr();
    let k = qkv[width + head * hd..].as_ptr();
    let v = qkv[2 * width + head * hd..].as_ptr();
    // scores = Q · Kᵀ · scale (Q and K are strided views of qkv).
    // SAFETY: every index stays inside `qkv` (n rows of 3·width) and
    // `scores` (n × n), both checked above.
    unsafe {
        gemm::gemm(
            n,
            n,
            hd,
            scores.as_mut_ptr(),
            1,
            n as isize,
            false,
            q,
            1,
            3 * width as isize,
            k,
            3 * width as isize,
            1,
            0.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    let inv: Vec<f32> = scores[..n * n]
        .chunks_exact_mut(n)
        .map(softmax_unscaled)
        .collect();
    // context = P · V, into `out` with its row stride.
    // SAFETY: as above; `out` holds n rows of `out_stride` (checked).
    unsafe {
        gemm::gemm(
            n,
            hd,
            n,
            out.as_mut_ptr(),
            1,
            out_stride as isize,
            false,
            scores.as_ptr(),
            1,
            n as isize,
            v,
            1,
            3 * width as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    // Normalise the n × hd context, not the n × n probabilities.
    for (i, s) in inv.iter().enumerate() {
        out[i * out_stride..i * out_stride + hd]
            .iter_mut()
            .for_each(|x| *x *= s);
    }
}

impl Linear {
    /// A layer from its `[n_out, n_in]` weight and `n_out` biases.
    pub(crate) fn new(w: Vec<f32>, b: Vec<f32>, n_in: usize, n_out: usize) -> Self {
        assert_eq!((w.len(), b.len()), (n_in * n_out, n_out));
        Self { w, b, n_in, n_out }
    }

    pub(crate) fn weights(&self) -> usize {
        self.w.len()
    }

    /// `out = x · Wᵀ + b` for the rows of `x` (`gemm` on rayon's pool for
    /// batches).
    pub(crate) fn forward(&self, x: &[f32], out: &mut [f32]) {
        let m = x.len() / self.n_in;
        if m <= SMALL_BATCH_ROWS {
            return self.forward_rows(x, out);
        }
        for row in out.chunks_exact_mut(self.n_out) {
            row.copy_from_slice(&self.b);
        }
        let threads = rayon::current_num_threads();
        let par = if threads > 1 && m * self.n_out * self.n_in > 1 << 18 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: dst is m × n_out row-major, lhs m × n_in row-major, rhs is
        // W read as its transpose (n_in × n_out with column stride n_in);
        // all three slices have exactly those sizes.
        unsafe {
            gemm::gemm(
                m,
                self.n_out,
                self.n_in,
                out.as_mut_ptr(),
                1,
                self.n_out as isize,
                true,
                x.as_ptr(),
                1,
                self.n_in as isize,
                self.w.as_ptr(),
                self.n_in as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                par,
            );
        }
    }

    /// Few input rows (a search query): one pass over the weights, each
    /// output a dot product of two contiguous rows, outputs split across
    /// threads. `gemm` would repack the whole weight matrix on every call,
    /// which costs more than the product itself at this size.
    fn forward_rows(&self, x: &[f32], out: &mut [f32]) {
        let n_in = self.n_in;
        let cols_per_task = 64;
        let tasks = self.n_out.div_ceil(cols_per_task);
        // Column-block-major scratch so each task writes one contiguous run.
        let m = x.len() / n_in;
        let mut blocks = vec![0f32; tasks * cols_per_task * m];
        blocks
            .par_chunks_mut(cols_per_task * m)
            .enumerate()
            .for_each(|(t, block)| {
                let first = t * cols_per_task;
                let last = (first + cols_per_task).min(self.n_out);
                for (j, col) in (first..last).enumerate() {
                    let w = &self.w[col * n_in..(col + 1) * n_in];
                    for (r, xr) in x.chunks_exact(n_in).enumerate() {
                        block[j * m + r] = dot(xr, w) + self.b[col];
                    }
                }
            });
        for (r, row) in out.chunks_exact_mut(self.n_out).enumerate() {
            for (col, o) in row.iter_mut().enumerate() {
                let (t, j) = (col / cols_per_task, col % cols_per_task);
                *o = blocks[(t * cols_per_task + j) * m + r];
            }
        }
    }
}

/// Inputs with at most this many rows take [`Linear::forward_rows`].
const SMALL_BATCH_ROWS: usize = 16;

/// Dot product with eight independent accumulators, so it vectorizes.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let n = a.len() / 8 * 8;
    for (ca, cb) in a[..n].chunks_exact(8).zip(b[..n].chunks_exact(8)) {
        for i in 0..8 {
            acc[i] = ca[i].mul_add(cb[i], acc[i]);
        }
    }
    let tail: f32 = a[n..].iter().zip(&b[n..]).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// Softmax without the final division: exponentiates `row` in place and
/// returns 1 / Σ (the caller scales the smaller P·V product instead). The
/// loops are split so each one vectorizes.
pub(crate) fn softmax_unscaled(row: &mut [f32]) -> f32 {
    // Lane-wise comparisons, not f32::max (whose NaN rule keeps the loop
    // scalar).
    let mut lanes = [f32::NEG_INFINITY; 16];
    let n16 = row.len() / 16 * 16;
    for c in row[..n16].chunks_exact(16) {
        for l in 0..16 {
            lanes[l] = if c[l] > lanes[l] { c[l] } else { lanes[l] };
        }
    }
    let max = lanes
        .iter()
        .chain(&row[n16..])
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    for x in row.iter_mut() {
        *x = fast_exp(*x - max);
    }
    let mut acc = [0f32; 8];
    let n = row.len() / 8 * 8;
    for c in row[..n].chunks_exact(8) {
        for l in 0..8 {
            acc[l] += c[l];
        }
    }
    let sum = acc.iter().sum::<f32>() + row[n..].iter().sum::<f32>();
    1.0 / sum
}

/// `x = LayerNorm(x + y)` row by row (`y` empty: just the norm), rows split
/// across the pool.
fn add_norm(x: &mut [f32], y: &[f32], norm: &Norm, eps: f32) {
    let h = norm.w.len();
    x.par_chunks_mut(h * 64)
        .enumerate()
        .for_each(|(block, rows)| {
            for (r, row) in rows.chunks_exact_mut(h).enumerate() {
                if !y.is_empty() {
                    let start = (block * 64 + r) * h;
                    for (a, b) in row.iter_mut().zip(&y[start..start + h]) {
                        *a += b;
                    }
                }
                let mean = sum_lanes(row.iter().copied()) / h as f32;
                let var = sum_lanes(row.iter().map(|v| (v - mean) * (v - mean))) / h as f32;
                let inv = 1.0 / (var + eps).sqrt();
                for ((v, w), b) in row.iter_mut().zip(&norm.w).zip(&norm.b) {
                    *v = (*v - mean) * inv * w + b;
                }
            }
        });
}

/// A sum in 16 independent lanes, so it vectorizes.
fn sum_lanes(xs: impl Iterator<Item = f32>) -> f32 {
    let mut lanes = [0f32; 16];
    for (i, x) in xs.enumerate() {
        lanes[i % 16] += x;
    }
    lanes.iter().sum()
}

/// GELU with the exact erf form BERT uses.
pub(crate) fn gelu_erf(xs: &mut [f32]) {
    for x in xs {
        *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// erf to within 1.5e-7 (Abramowitz & Stegun 7.1.26).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    (1.0 - poly * fast_exp(-z * z)).copysign(x)
}

/// `e^x` for `x <= 0` (softmax after subtracting the maximum, erf), to a
/// few parts in 10⁷: `2^(x·log2 e)` split into the nearest integer and a
/// fraction in [-½, ½], the fraction by its Taylor series to degree 7.
#[inline(always)]
fn fast_exp(x: f32) -> f32 {
    // Branch-free so loops over it vectorize; e^-87 is 1.6e-38, near zero.
    // Only comparisons, adds and bit operations, so loops over it
    // vectorize (f32::max's NaN rule, round() and `as i32` do not):
    // adding 1.5·2²³ rounds to an integer (ties to even) and leaves that
    // integer in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let t = if x < -87.0 { -87.0 } else { x } * std::f32::consts::LOG2_E;
    let v = t + MAGIC;
    let i = v - MAGIC;
    let f = t - i;
    let n = v.to_bits().wrapping_sub(MAGIC.to_bits());
    const C: [f32; 7] = [
        std::f32::consts::LN_2,
        0.240_226_5,
        0.055_504_11,
        0.009_618_129,
        0.001_333_355_8,
        0.000_154_035_3,
        0.000_015_252_73,
    ];
    let p = C[0] + f * (C[1] + f * (C[2] + f * (C[3] + f * (C[4] + f * (C[5] + f * C[6])))));
    f32::from_bits(n.wrapping_add(127) << 23) * (1.0 + f * p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_and_exp_are_accurate() {
        for i in -400..400 {
            let x = i as f32 / 100.0;
            let want = libm_erf(f64::from(x));
            assert!((f64::from(erf(x)) - want).abs() < 5e-7, "erf({x})");
            if x <= 0.0 {
                let e = f64::from(x).exp();
                assert!(
                    (f64::from(fast_exp(x)) - e).abs() <= 3e-7 * e.max(1e-30),
                    "exp({x})"
                );
            }
        }
    }

    /// erf by its series/continued fraction in f64, for the test only.
    fn libm_erf(x: f64) -> f64 {
        // Abramowitz–Stegun 7.1.5 series converges well on |x| < 4.
        let mut sum = 0.0;
        let mut term = x;
        let mut n = 0.0;
        while term.abs() > 1e-17 || n < 5.0 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
            if n > 200.0 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }
}
