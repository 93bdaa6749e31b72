//! The Whisper network (encoder and decoder) on Hearth's kernels, with the
//! weights of a CTranslate2 `WhisperSpec` file: linear layers as `Q8_0`
//! [`QMatrix`]es (or f16, `HEARTH_WHISPER_WEIGHTS=f16`) multiplied on the
//! engine's pool, the two input convolutions as f32 `gemm` products over
//! unfolded frames, pre-norm layers with exact-erf GELU, a self-attention
//! KV cache, cross-attention keys and values computed once per 30 s window,
//! and logits only for the positions asked for.
//!
//! Owns the forward pass; must not know about tokens as text, audio files
//! or decoding strategy.

use rayon::prelude::*;

use super::ct2::{Ct2Error, Ct2File};
use super::mel::{N_MELS, WINDOW_FRAMES};
use crate::embed::bert::{Linear as F32Linear, gelu_erf, head_attention, softmax_unscaled};
use crate::llm::quant::formats::{ActBlock, BlockQ8_0};
use crate::llm::quant::{Bytes, QMatrix, QType};

/// Encoder positions (30 s at 50 frames a second after the stride-2 conv).
pub const AUDIO_CTX: usize = 1500;
const LN_EPS: f32 = 1e-5;

/// How the linear layers' weights are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    Q8_0,
    F16,
}

impl Weights {
    /// `HEARTH_WHISPER_WEIGHTS=f16` keeps the file's precision (twice the
    /// memory and bandwidth); the default is `Q8_0`.
    pub fn from_env() -> Self {
        match std::env::var("HEARTH_WHISPER_WEIGHTS").as_deref() {
            Ok("f16") => Weights::F16,
            _ => Weights::Q8_0,
        }
    }
}

struct Linear {
    w: QMatrix,
    b: Vec<f32>,
}

impl Linear {
    fn new(
        name: &str,
        w: &[f32],
        b: Option<&[f32]>,
        rows: usize,
        cols: usize,
        kind: Weights,
    ) -> Result<Self, Ct2Error> {
        if !cols.is_multiple_of(32) {
            return Err(Ct2Error::Layout {
                name: name.to_string(),
                reason: format!("{cols} columns are not a multiple of 32"),
            });
        }
        let bytes = match kind {
            Weights::Q8_0 => {
                let mut blocks = vec![BlockQ8_0 { d: 0, qs: [0; 32] }; rows * cols / 32];
                BlockQ8_0::quantize(w, &mut blocks);
                Bytes::copy_from(bytemuck::cast_slice(&blocks))
            }
            Weights::F16 => {
                let h: Vec<half::f16> = w.iter().map(|&v| half::f16::from_f32(v)).collect();
                Bytes::copy_from(bytemuck::cast_slice(&h))
            }
        };
        let ty = match kind {
            Weights::Q8_0 => QType::Q8_0,
            Weights::F16 => QType::F16,
        };
        let w = QMatrix::new(ty, rows, cols, bytes).map_err(|e| Ct2Error::Layout {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            w,
            b: b.map(<[f32]>::to_vec).unwrap_or_else(|| vec![0.0; rows]),
        })
    }

    /// `out = x · Wᵀ + b` for the `m` rows of `x`.
    fn forward(&self, x: &[f32], m: usize) -> Vec<f32> {
        let n = self.w.rows();
        let mut out = vec![0f32; m * n];
        self.w.matmul(x, m, &mut out);
        for row in out.chunks_exact_mut(n) {
            for (o, b) in row.iter_mut().zip(&self.b) {
                *o += b;
            }
        }
        out
    }

    fn bytes(&self) -> usize {
        self.w.size_in_bytes() + self.b.len() * 4
    }
}

struct Norm {
    g: Vec<f32>,
    b: Vec<f32>,
}

impl Norm {
    /// LayerNorm of every row of `x` into a new buffer.
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        let d = self.g.len();
        let mut y = x.to_vec();
        y.par_chunks_mut(d * 16).for_each(|rows| {
            for row in rows.chunks_exact_mut(d) {
                let mean = row.iter().sum::<f32>() / d as f32;
                let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
                let inv = 1.0 / (var + LN_EPS).sqrt();
                for ((v, g), b) in row.iter_mut().zip(&self.g).zip(&self.b) {
                    *v = (*v - mean) * inv * g + b;
                }
            }
        });
        y
    }
}

struct EncoderLayer {
    attn_norm: Norm,
    qkv: Linear,
    out: Linear,
    ffn_norm: Norm,
    fc1: Linear,
    fc2: Linear,
}

struct DecoderLayer {
    self_norm: Norm,
    self_qkv: Linear,
    self_out: Linear,
    cross_norm: Norm,
    cross_q: Linear,
    cross_kv: Linear,
    cross_out: Linear,
    ffn_norm: Norm,
    fc1: Linear,
    fc2: Linear,
}

/// Hyperparameters read off the file.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub d: usize,
    pub heads: usize,
    pub enc_layers: usize,
    pub dec_layers: usize,
    pub vocab: usize,
    pub text_ctx: usize,
    pub ffn: usize,
}

pub struct Whisper {
    pub dims: Dims,
    /// The two convolutions as linear layers over unfolded frames
    /// (`[d, in·3]`, the stored `(in, k)` order).
    conv1: F32Linear,
    conv2: F32Linear,
    enc_pos: Vec<f32>,
    enc: Vec<EncoderLayer>,
    enc_norm: Norm,
    embed: QMatrix,
    dec_pos: Vec<f32>,
    dec: Vec<DecoderLayer>,
    dec_norm: Norm,
}

/// What one window's decoding carries between steps: the self-attention
/// cache and the window's cross-attention keys and values.
pub struct DecoderState {
    /// Per layer, `[text_ctx, d]` keys and values.
    self_k: Vec<Vec<f32>>,
    self_v: Vec<Vec<f32>>,
    /// Per layer, `[AUDIO_CTX, d]`.
    cross_k: Vec<Vec<f32>>,
    cross_v: Vec<Vec<f32>>,
    pub len: usize,
}

fn count_layers(f: &Ct2File, prefix: &str) -> usize {
    (0..)
        .take_while(|i| f.has(&format!("{prefix}/layer_{i}/ffn/linear_0/weight")))
        .count()
}

impl Whisper {
    /// Builds the network from a parsed `model.bin`.
    pub fn from_file(mut f: Ct2File, kind: Weights) -> Result<Self, Ct2Error> {
        let heads = f.scalar("encoder/num_heads").unwrap_or(8.0) as usize;
        let shape = |name: &str| -> Result<Vec<usize>, Ct2Error> {
            f.shape(name)
                .map(<[usize]>::to_vec)
                .ok_or_else(|| Ct2Error::Missing(name.to_string()))
        };
        let (vocab, d) = match shape("decoder/embeddings/weight")?[..] {
            [v, d] => (v, d),
            ref other => {
                return Err(Ct2Error::Layout {
                    name: "decoder/embeddings/weight".into(),
                    reason: format!("shape {other:?}"),
                });
            }
        };
        let text_ctx = shape("decoder/position_encodings/encodings")?[0];
        let ffn = shape("encoder/layer_0/ffn/linear_0/weight")?[0];
        if heads == 0 || !d.is_multiple_of(heads) {
            return Err(Ct2Error::Layout {
                name: "encoder/num_heads".into(),
                reason: format!("{heads} heads for width {d}"),
            });
        }
        let enc_layers = count_layers(&f, "encoder");
        let dec_layers = count_layers(&f, "decoder");
        let dims = Dims {
            d,
            heads,
            enc_layers,
            dec_layers,
            vocab,
            text_ctx,
            ffn,
        };
        let norm = |f: &Ct2File, p: &str| -> Result<Norm, Ct2Error> {
            Ok(Norm {
                g: f.get(&format!("{p}/gamma"), &[d])?.to_vec(),
                b: f.get(&format!("{p}/beta"), &[d])?.to_vec(),
            })
        };
        let linear = |f: &Ct2File, p: &str, rows: usize, cols: usize| -> Result<Linear, Ct2Error> {
            let w = f.get(&format!("{p}/weight"), &[rows, cols])?;
            let b = f.get(&format!("{p}/bias"), &[rows]).ok();
            Linear::new(p, w, b, rows, cols, kind)
        };
        let mut enc = Vec::with_capacity(enc_layers);
        for i in 0..enc_layers {
            let p = format!("encoder/layer_{i}");
            enc.push(EncoderLayer {
                attn_norm: norm(&f, &format!("{p}/self_attention/layer_norm"))?,
                qkv: linear(&f, &format!("{p}/self_attention/linear_0"), 3 * d, d)?,
                out: linear(&f, &format!("{p}/self_attention/linear_1"), d, d)?,
                ffn_norm: norm(&f, &format!("{p}/ffn/layer_norm"))?,
                fc1: linear(&f, &format!("{p}/ffn/linear_0"), ffn, d)?,
                fc2: linear(&f, &format!("{p}/ffn/linear_1"), d, ffn)?,
            });
        }
        let mut dec = Vec::with_capacity(dec_layers);
        for i in 0..dec_layers {
            let p = format!("decoder/layer_{i}");
            dec.push(DecoderLayer {
                self_norm: norm(&f, &format!("{p}/self_attention/layer_norm"))?,
                self_qkv: linear(&f, &format!("{p}/self_attention/linear_0"), 3 * d, d)?,
                self_out: linear(&f, &format!("{p}/self_attention/linear_1"), d, d)?,
                cross_norm: norm(&f, &format!("{p}/attention/layer_norm"))?,
                cross_q: linear(&f, &format!("{p}/attention/linear_0"), d, d)?,
                cross_kv: linear(&f, &format!("{p}/attention/linear_1"), 2 * d, d)?,
                cross_out: linear(&f, &format!("{p}/attention/linear_2"), d, d)?,
                ffn_norm: norm(&f, &format!("{p}/ffn/layer_norm"))?,
                fc1: linear(&f, &format!("{p}/ffn/linear_0"), ffn, d)?,
                fc2: linear(&f, &format!("{p}/ffn/linear_1"), d, ffn)?,
            });
        }
        let embed = Linear::new(
            "decoder/embeddings/weight",
            f.get("decoder/embeddings/weight", &[vocab, d])?,
            None,
            vocab,
            d,
            kind,
        )?
        .w;
        Ok(Self {
            dims,
            conv1: F32Linear::new(
                f.take("encoder/conv1/weight", &[d, N_MELS, 3])?,
                f.take("encoder/conv1/bias", &[d])?,
                N_MELS * 3,
                d,
            ),
            conv2: F32Linear::new(
                f.take("encoder/conv2/weight", &[d, d, 3])?,
                f.take("encoder/conv2/bias", &[d])?,
                d * 3,
                d,
            ),
            enc_pos: f.take("encoder/position_encodings/encodings", &[AUDIO_CTX, d])?,
            enc_norm: norm(&f, "encoder/layer_norm")?,
            dec_pos: f.take("decoder/position_encodings/encodings", &[text_ctx, d])?,
            dec_norm: norm(&f, "decoder/layer_norm")?,
            enc,
            dec,
            embed,
        })
    }

    /// Bytes of weights held.
    pub fn size_in_bytes(&self) -> usize {
        let mut n = 4
            * (self.conv1.weights()
                + self.conv2.weights()
                + self.enc_pos.len()
                + self.dec_pos.len());
        n += self.embed.size_in_bytes();
        for l in &self.enc {
            n += l.qkv.bytes() + l.out.bytes() + l.fc1.bytes() + l.fc2.bytes();
        }
        for l in &self.dec {
            n += l.self_qkv.bytes() + l.self_out.bytes() + l.cross_q.bytes();
            n += l.cross_kv.bytes() + l.cross_out.bytes() + l.fc1.bytes() + l.fc2.bytes();
        }
        n
    }

    /// The encoder over one window of features (`[N_MELS, WINDOW_FRAMES]`,
    /// mel-major): `[AUDIO_CTX, d]`.
    pub fn encode(&self, mel: &[f32]) -> Vec<f32> {
        let d = self.dims.d;
        // conv1 (k=3, pad 1): unfold to [frames, mels·3] in the weight's
        // (in, k) order.
        let t1 = WINDOW_FRAMES;
        let k1 = N_MELS * 3;
        let mut cols = vec![0f32; t1 * k1];
        cols.par_chunks_mut(k1).enumerate().for_each(|(t, row)| {
            for c in 0..N_MELS {
                for k in 0..3 {
                    let s = t as isize + k as isize - 1;
                    if (0..t1 as isize).contains(&s) {
                        row[c * 3 + k] = mel[c * t1 + s as usize];
                    }
                }
            }
        });
        let mut y1 = vec![0f32; t1 * d];
        self.conv1.forward(&cols, &mut y1);
        y1.par_chunks_mut(d).for_each(gelu_erf);
        // conv2 (k=3, stride 2, pad 1).
        let t2 = AUDIO_CTX;
        let k2 = d * 3;
        let mut cols = vec![0f32; t2 * k2];
        cols.par_chunks_mut(k2).enumerate().for_each(|(t, row)| {
            for k in 0..3 {
                let s = 2 * t as isize + k as isize - 1;
                if (0..t1 as isize).contains(&s) {
                    let src = &y1[s as usize * d..(s as usize + 1) * d];
                    for c in 0..d {
                        row[c * 3 + k] = src[c];
                    }
                }
            }
        });
        let mut x = vec![0f32; t2 * d];
        self.conv2.forward(&cols, &mut x);
        drop(cols);
        x.par_chunks_mut(d)
            .zip(self.enc_pos.par_chunks(d))
            .for_each(|(row, pos)| {
                gelu_erf(row);
                row.iter_mut().zip(pos).for_each(|(v, p)| *v += p);
            });
        for layer in &self.enc {
            let h = layer.attn_norm.apply(&x);
            let qkv = layer.qkv.forward(&h, t2);
            let ctx = self.full_attention(&qkv, t2);
            let o = layer.out.forward(&ctx, t2);
            add(&mut x, &o);
            let h = layer.ffn_norm.apply(&x);
            let mut f = layer.fc1.forward(&h, t2);
            f.par_chunks_mut(self.dims.ffn).for_each(gelu_erf);
            let o = layer.fc2.forward(&f, t2);
            add(&mut x, &o);
        }
        self.enc_norm.apply(&x)
    }

    /// Unmasked multi-head attention of `n` rows over themselves (`qkv` is
    /// `[n, 3d]`, Q|K|V), heads in parallel.
    fn full_attention(&self, qkv: &[f32], n: usize) -> Vec<f32> {
        let d = self.dims.d;
        let heads = self.dims.heads;
        let hd = d / heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let per_head: Vec<Vec<f32>> = (0..heads)
            .into_par_iter()
            .map(|h| {
                let mut scores = vec![0f32; n * n];
                let mut ctx = vec![0f32; n * hd];
                head_attention(qkv, n, d, h, hd, scale, &mut scores, &mut ctx, hd);
                ctx
            })
            .collect();
        let mut out = vec![0f32; n * d];
        for (h, ctx) in per_head.iter().enumerate() {
            for (row, c) in out.chunks_exact_mut(d).zip(ctx.chunks_exact(hd)) {
                row[h * hd..(h + 1) * hd].copy_from_slice(c);
            }
        }
        out
    }

    /// A fresh decoder state for the window whose encoder output is `enc`.
    pub fn start(&self, enc: &[f32]) -> DecoderState {
        let d = self.dims.d;
        let mut cross_k = Vec::with_capacity(self.dec.len());
        let mut cross_v = Vec::with_capacity(self.dec.len());
        for layer in &self.dec {
            let kv = layer.cross_kv.forward(enc, AUDIO_CTX);
            let mut k = vec![0f32; AUDIO_CTX * d];
            let mut v = vec![0f32; AUDIO_CTX * d];
            for ((src, k), v) in kv
                .chunks_exact(2 * d)
                .zip(k.chunks_exact_mut(d))
                .zip(v.chunks_exact_mut(d))
            {
                k.copy_from_slice(&src[..d]);
                v.copy_from_slice(&src[d..]);
            }
            cross_k.push(k);
            cross_v.push(v);
        }
        let ctx = self.dims.text_ctx * d;
        DecoderState {
            self_k: (0..self.dec.len()).map(|_| vec![0f32; ctx]).collect(),
            self_v: (0..self.dec.len()).map(|_| vec![0f32; ctx]).collect(),
            cross_k,
            cross_v,
            len: 0,
        }
    }

    /// Runs `tokens` at the next positions of `state` and returns the
    /// logits (`[vocab]` each) of the new positions listed in `want`
    /// (indices into `tokens`).
    pub fn decode(
        &self,
        state: &mut DecoderState,
        tokens: &[u32],
        want: &[usize],
    ) -> Vec<Vec<f32>> {
        let d = self.dims.d;
        let m = tokens.len();
        let p0 = state.len;
        assert!(p0 + m <= self.dims.text_ctx, "decoder context overflow");
        let mut x = vec![0f32; m * d];
        for (i, (row, &t)) in x.chunks_exact_mut(d).zip(tokens).enumerate() {
            self.embed.dequantize_row(t as usize, row);
            let pos = &self.dec_pos[(p0 + i) * d..(p0 + i + 1) * d];
            row.iter_mut().zip(pos).for_each(|(v, p)| *v += p);
        }
        for (l, layer) in self.dec.iter().enumerate() {
            let h = layer.self_norm.apply(&x);
            let qkv = layer.self_qkv.forward(&h, m);
            let mut q = vec![0f32; m * d];
            for (i, row) in qkv.chunks_exact(3 * d).enumerate() {
                q[i * d..(i + 1) * d].copy_from_slice(&row[..d]);
                let at = (p0 + i) * d;
                state.self_k[l][at..at + d].copy_from_slice(&row[d..2 * d]);
                state.self_v[l][at..at + d].copy_from_slice(&row[2 * d..]);
            }
            let ctx = self.row_attention(&q, &state.self_k[l], &state.self_v[l], |i| p0 + i + 1);
            let o = layer.self_out.forward(&ctx, m);
            add(&mut x, &o);
            let h = layer.cross_norm.apply(&x);
            let q = layer.cross_q.forward(&h, m);
            let ctx = self.row_attention(&q, &state.cross_k[l], &state.cross_v[l], |_| AUDIO_CTX);
            let o = layer.cross_out.forward(&ctx, m);
            add(&mut x, &o);
            let h = layer.ffn_norm.apply(&x);
            let mut f = layer.fc1.forward(&h, m);
            f.par_chunks_mut(self.dims.ffn).for_each(gelu_erf);
            let o = layer.fc2.forward(&f, m);
            add(&mut x, &o);
        }
        state.len += m;
        let mut rows = Vec::with_capacity(want.len() * d);
        for &i in want {
            rows.extend_from_slice(&x[i * d..(i + 1) * d]);
        }
        let rows = self.dec_norm.apply(&rows);
        let vocab = self.dims.vocab;
        let mut logits = vec![0f32; want.len() * vocab];
        self.embed.matmul(&rows, want.len(), &mut logits);
        logits.chunks_exact(vocab).map(<[f32]>::to_vec).collect()
    }

    /// Attention of each row of `q` (`[m, d]`) over the first `len(i)` rows
    /// of `k`/`v` (`[*, d]`), heads and rows in parallel.
    fn row_attention(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        len: impl Fn(usize) -> usize + Sync,
    ) -> Vec<f32> {
        let d = self.dims.d;
        let heads = self.dims.heads;
        let hd = d / heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let m = q.len() / d;
        let mut out = vec![0f32; m * d];
        out.par_chunks_mut(hd).enumerate().for_each(|(j, o)| {
            let (i, h) = (j / heads, j % heads);
            let n = len(i);
            let qh = &q[i * d + h * hd..i * d + (h + 1) * hd];
            let mut s: Vec<f32> = (0..n)
                .map(|t| dot(qh, &k[t * d + h * hd..t * d + (h + 1) * hd]) * scale)
                .collect();
            let inv = softmax_unscaled(&mut s);
            for (t, &p) in s.iter().enumerate() {
                let vr = &v[t * d + h * hd..t * d + (h + 1) * hd];
                for (a, b) in o.iter_mut().zip(vr) {
                    *a += p * b;
                }
            }
            o.iter_mut().for_each(|a| *a *= inv);
        });
        out
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    x.par_chunks_mut(4096)
        .zip(y.par_chunks(4096))
        .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    acc.iter().sum()
}
