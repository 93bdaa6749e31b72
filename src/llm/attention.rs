//! Scaled dot-product attention over the f16 [`KvCache`], with causal and
//! sliding-window masks and grouped-query heads.
//!
//! The numerics follow llama.cpp's CPU flash attention (its default), so
//! that greedy generation tracks llama.cpp's on the same model file:
//! - fewer than [`TILE_QUERIES`] queries (decode, short turns): per query,
//!   the query is rounded to f16, scores are f16·f16 dot products summed in
//!   f32, and an online softmax accumulates the weighted values in an f16
//!   vector (`ggml_compute_forward_flash_attn_ext_f16_one_chunk`);
//! - [`TILE_QUERIES`] or more (prefill): f32 queries against the f16 keys and
//!   values widened to f32, softmax and accumulation in f32 (ggml's tiled
//!   path), as two matrix products on candle.
//!
//! Owns no state; must not allocate per key.

use candle_core::{Device, Result, Tensor};
use half::f16;

use super::kv::LayerView;

/// ggml's query tile: batches with at least this many queries take the
/// tiled (f32) path.
pub const TILE_QUERIES: usize = 64;

/// The shape of one layer's attention.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    /// Multiplies every score (1/sqrt(head_dim) unless the model says so).
    pub scale: f32,
    /// Sliding window: a query at position p sees keys in (p - w, p].
    pub window: Option<usize>,
}

impl Shape {
    /// The first key position a query at `p` may see.
    fn first_visible(&self, p: usize) -> usize {
        match self.window {
            Some(w) => (p + 1).saturating_sub(w),
            None => 0,
        }
    }
}

/// Attention for `seq` queries at positions `pos..pos+seq` whose keys and
/// values are already in `kv` (positions `0..pos+seq`). `q` is token-major,
/// `[seq][n_head][head_dim]`, and so is the result.
/// The result is written to `out` (same shape as `q`); decode allocates
/// nothing.
pub fn attend(
    q: &[f32],
    seq: usize,
    pos: usize,
    kv: &LayerView,
    s: &Shape,
    out: &mut [f32],
) -> Result<()> {
    debug_assert_eq!(q.len(), s.n_head * seq * s.head_dim);
    debug_assert_eq!(out.len(), q.len());
    if seq >= TILE_QUERIES {
        // Query blocks are independent (each sees keys up to its own
        // positions): run them on the compute pool.
        let pool = super::pool::Pool::global();
        let width = s.n_head * s.head_dim;
        let blocks = seq.div_ceil(TILE_QUERIES);
        let dst = super::pool::Disjoint::new(out);
        let failed = std::sync::Mutex::new(None);
        pool.run(blocks, &|b| {
            let (t0, t1) = (b * TILE_QUERIES, ((b + 1) * TILE_QUERIES).min(seq));
            match attend_tiled(&q[t0 * width..t1 * width], t1 - t0, pos + t0, kv, s) {
                // SAFETY: block `b` writes only rows t0..t1 of `out`.
                Ok(rows) => unsafe { dst.part(t0 * width..t1 * width) }.copy_from_slice(&rows),
                Err(e) => *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e),
            }
        });
        if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
    } else {
        attend_rows(q, seq, pos, kv, s, out);
    }
    Ok(())
}

/// Largest head dimension the row path keeps on the stack.
const MAX_HEAD_DIM: usize = 512;

/// One query row at a time with an f16 accumulator (see the module doc).
fn attend_rows(q: &[f32], seq: usize, pos: usize, kv: &LayerView, s: &Shape, out: &mut [f32]) {
    let hd = s.head_dim;
    assert!(hd <= MAX_HEAD_DIM, "head dimension {hd} > {MAX_HEAD_DIM}");
    let n_rep = s.n_head / s.n_kv_head;
    let mut q16 = [f16::ZERO; MAX_HEAD_DIM];
    let mut acc = [f16::ZERO; MAX_HEAD_DIM];
    let (q16, acc) = (&mut q16[..hd], &mut acc[..hd]);
    for h in 0..s.n_head {
        let kvh = h / n_rep;
        for t in 0..seq {
            let p = pos + t;
            let range = s.first_visible(p)..p + 1;
            let keys = kv.keys(kvh, range.clone());
            let values = kv.values(kvh, range);
            let qrow = &q[(t * s.n_head + h) * hd..(t * s.n_head + h + 1) * hd];
            for (d, x) in q16.iter_mut().zip(qrow) {
                *d = f16::from_f32(*x);
            }
            acc.fill(f16::ZERO);
            let mut sum = 0f32;
            let mut max = f32::NEG_INFINITY;
            for (krow, vrow) in keys.chunks_exact(hd).zip(values.chunks_exact(hd)) {
                let score = dot_f16(q16, krow) * s.scale;
                let mut ms = 1f32;
                let mut vs = 1f32;
                if score > max {
                    ms = (max - score).exp();
                    max = score;
                    for a in acc.iter_mut() {
                        *a = f16::from_f32(a.to_f32() * ms);
                    }
                } else {
                    vs = (score - max).exp();
                }
                for (a, v) in acc.iter_mut().zip(vrow) {
                    *a = f16::from_f32(v.to_f32().mul_add(vs, a.to_f32()));
                }
                // Fused, as GCC compiles ggml's `S = S*ms + vs`.
                sum = sum.mul_add(ms, vs);
            }
            let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
            let o = &mut out[(t * s.n_head + h) * hd..(t * s.n_head + h + 1) * hd];
            for (d, a) in o.iter_mut().zip(acc.iter()) {
                *d = a.to_f32() * inv;
            }
        }
    }
}

/// f16·f16 summed in f32, in the order of ggml's AVX2 `ggml_vec_dot_f16`:
/// four 8-lane fused multiply-add accumulators over steps of 32, reduced
/// pairwise, the remainder added in f64.
fn dot_f16(a: &[f16], b: &[f16]) -> f32 {
    let np = a.len() / 32 * 32;
    let mut acc = [[0f32; 8]; 4];
    for i in (0..np).step_by(32) {
        for (j, lanes) in acc.iter_mut().enumerate() {
            for (l, s) in lanes.iter_mut().enumerate() {
                let k = i + 8 * j + l;
                *s = a[k].to_f32().mul_add(b[k].to_f32(), *s);
            }
        }
    }
    let mut x0 = [0f32; 8];
    for l in 0..8 {
        x0[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    }
    let t: [f32; 4] = std::array::from_fn(|l| x0[l] + x0[l + 4]);
    let mut sum = f64::from((t[0] + t[1]) + (t[2] + t[3]));
    for k in np..a.len() {
        sum += f64::from(a[k].to_f32() * b[k].to_f32());
    }
    sum as f32
}

/// All queries at once in f32: two matrix products per key/value head.
fn attend_tiled(q: &[f32], seq: usize, pos: usize, kv: &LayerView, s: &Shape) -> Result<Vec<f32>> {
    let dev = Device::Cpu;
    let hd = s.head_dim;
    let n_rep = s.n_head / s.n_kv_head;
    let start = s.first_visible(pos);
    let end = pos + seq;
    let klen = end - start;
    let widen = |rows: &[f16], out: &mut Vec<f32>| out.extend(rows.iter().map(|x| x.to_f32()));
    let mut k = Vec::with_capacity(s.n_kv_head * klen * hd);
    let mut v = Vec::with_capacity(s.n_kv_head * klen * hd);
    for h in 0..s.n_kv_head {
        widen(kv.keys(h, start..end), &mut k);
        widen(kv.values(h, start..end), &mut v);
    }
    let k = Tensor::from_vec(k, (s.n_kv_head, klen, hd), &dev)?;
    let v = Tensor::from_vec(v, (s.n_kv_head, klen, hd), &dev)?;
    // Heads first; query heads sharing a key/value head are adjacent, so
    // fold them into rows.
    let q = Tensor::from_slice(q, (seq, s.n_head, hd), &dev)?
        .transpose(0, 1)?
        .contiguous()?
        .reshape((s.n_kv_head, n_rep * seq, hd))?;
    let att = (q.matmul(&k.t()?)? * f64::from(s.scale))?;
    let att = match mask(pos, seq, start, klen, s.window) {
        Some(m) => {
            let m = Tensor::from_vec(m, (seq, klen), &dev)?;
            att.reshape((s.n_kv_head, n_rep, seq, klen))?
                .broadcast_add(&m)?
                .reshape((s.n_kv_head, n_rep * seq, klen))?
        }
        None => att,
    };
    let att = candle_nn::ops::softmax_last_dim(&att)?;
    let out = att
        .matmul(&v)? // [n_kv, n_rep*seq, hd] = [n_head, seq, hd]
        .reshape((s.n_head, seq, hd))?
        .transpose(0, 1)?
        .contiguous()?;
    out.flatten_all()?.to_vec1()
}

/// Additive mask `[seq, klen]` (0 or -inf) for queries at `pos..pos+seq`
/// over keys at `start..start+klen`; `None` when every key is visible.
fn mask(
    pos: usize,
    seq: usize,
    start: usize,
    klen: usize,
    window: Option<usize>,
) -> Option<Vec<f32>> {
    let visible = |i: usize, j: usize| j <= i && window.is_none_or(|w| i - j < w);
    let all_visible = (0..seq).all(|qi| {
        let i = pos + qi;
        visible(i, start) && visible(i, start + klen - 1)
    });
    if all_visible {
        return None;
    }
    let mut m = Vec::with_capacity(seq * klen);
    for qi in 0..seq {
        let i = pos + qi;
        for kj in 0..klen {
            m.push(if visible(i, start + kj) {
                0.0
            } else {
                f32::NEG_INFINITY
            });
        }
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::kv::KvCache;

    #[test]
    fn decode_step_needs_no_mask() {
        assert!(mask(10, 1, 0, 11, None).is_none());
        assert!(mask(10, 1, 5, 6, Some(6)).is_none());
    }

    #[test]
    fn causal_and_window_masks() {
        let m = mask(0, 3, 0, 3, None).unwrap();
        let inf = f32::NEG_INFINITY;
        assert_eq!(m, vec![0., inf, inf, 0., 0., inf, 0., 0., 0.]);
        // Window of 2: position 2 no longer sees key 0.
        let m = mask(0, 3, 0, 3, Some(2)).unwrap();
        assert_eq!(m, vec![0., inf, inf, 0., 0., inf, inf, 0., 0.]);
    }

    /// Plain f64 softmax attention over f16-rounded inputs.
    fn reference(q: &[f32], k: &[f32], v: &[f32], seq: usize, s: &Shape) -> Vec<f32> {
        let hd = s.head_dim;
        let n_rep = s.n_head / s.n_kv_head;
        let r = |x: f32| f64::from(f16::from_f32(x).to_f32());
        let mut out = vec![0f32; seq * s.n_head * hd];
        for h in 0..s.n_head {
            let kvh = h / n_rep;
            for t in 0..seq {
                let first = s.first_visible(t);
                let scores: Vec<f64> = (first..=t)
                    .map(|j| {
                        (0..hd)
                            .map(|d| {
                                f64::from(q[(t * s.n_head + h) * hd + d])
                                    * r(k[(j * s.n_kv_head + kvh) * hd + d])
                            })
                            .sum::<f64>()
                            * f64::from(s.scale)
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
                let z: f64 = w.iter().sum();
                for d in 0..hd {
                    let acc: f64 = (first..=t)
                        .zip(&w)
                        .map(|(j, w)| w * r(v[(j * s.n_kv_head + kvh) * hd + d]))
                        .sum();
                    out[(t * s.n_head + h) * hd + d] = (acc / z) as f32;
                }
            }
        }
        out
    }

    fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn both_paths_match_plain_attention() {
        for window in [None, Some(5)] {
            for seq in [3, TILE_QUERIES + 6] {
                let s = Shape {
                    n_head: 4,
                    n_kv_head: 2,
                    head_dim: 32,
                    scale: 1.0 / 32f32.sqrt(),
                    window,
                };
                let q = pseudo_random(s.n_head * seq * s.head_dim, 1);
                let k = pseudo_random(s.n_kv_head * seq * s.head_dim, 2);
                let v = pseudo_random(s.n_kv_head * seq * s.head_dim, 3);
                let mut cache = KvCache::new(1, s.n_kv_head, s.head_dim, 128);
                cache.write(0, &k, &v, seq).unwrap();
                cache.advance(seq);
                let mut got = vec![f32::NAN; q.len()];
                attend(&q, seq, 0, &cache.layer(0), &s, &mut got).unwrap();
                let want = reference(&q, &k, &v, seq, &s);
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                // The row path rounds the query and its accumulator to f16.
                assert!(
                    worst < 5e-3,
                    "seq {seq} window {window:?}: max error {worst}"
                );
            }
        }
    }
}
