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
//!   path), as two matrix products per head (`gemm`, single-threaded: the
//!   query blocks are what runs in parallel, on the compute pool).
//!
//! Owns no state beyond per-thread scratch buffers that only grow (the
//! tiled path's widened keys, values and scores); must not allocate per key.

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
pub fn attend(q: &[f32], seq: usize, pos: usize, kv: &LayerView, s: &Shape, out: &mut [f32]) {
    debug_assert_eq!(q.len(), s.n_head * seq * s.head_dim);
    debug_assert_eq!(out.len(), q.len());
    if seq >= TILE_QUERIES {
        // Query blocks are independent (each sees keys up to its own
        // positions): run them on the compute pool.
        let pool = super::pool::Pool::global();
        let width = s.n_head * s.head_dim;
        let blocks = seq.div_ceil(TILE_QUERIES);
        let dst = super::pool::Disjoint::new(out);
        pool.run(blocks, &|b| {
            let (t0, t1) = (b * TILE_QUERIES, ((b + 1) * TILE_QUERIES).min(seq));
            // SAFETY: block `b` writes only rows t0..t1 of `out`.
            let rows = unsafe { dst.part(t0 * width..t1 * width) };
            attend_tiled(&q[t0 * width..t1 * width], t1 - t0, pos + t0, kv, s, rows);
        });
    } else {
        attend_rows(q, seq, pos, kv, s, out);
    }
}

/// Largest head dimension the row path keeps on the stack.
const MAX_HEAD_DIM: usize = 512;

/// Multiply-adds below which the row path stays on the calling thread
/// (a pool hand-off costs a few microseconds).
const PARALLEL_WORK: usize = 1 << 16;

/// One query row at a time with an f16 accumulator (see the module doc);
/// heads in parallel on the compute pool when there is enough work.
fn attend_rows(q: &[f32], seq: usize, pos: usize, kv: &LayerView, s: &Shape, out: &mut [f32]) {
    let hd = s.head_dim;
    assert!(hd <= MAX_HEAD_DIM, "head dimension {hd} > {MAX_HEAD_DIM}");
    let keys = pos + seq - s.first_visible(pos + seq - 1);
    let pool = super::pool::Pool::global();
    let dst = super::pool::Disjoint::new(out);
    let batch = Batch { q, seq, pos, kv, s };
    let head = |h: usize| {
        #[cfg(target_arch = "x86_64")]
        if crate::llm::quant::x86::has_avx2() {
            // SAFETY: AVX2, FMA and F16C were detected.
            return unsafe { x86::attend_head(&batch, h, &dst) };
        }
        attend_head::<Portable>(&batch, h, &dst)
    };
    if pool.threads() > 1 && s.n_head * seq * keys * hd >= PARALLEL_WORK {
        pool.run(s.n_head, &head);
    } else {
        (0..s.n_head).for_each(head);
    }
}

/// The queries of a row-path call and what they attend over.
#[derive(Clone, Copy)]
struct Batch<'a> {
    q: &'a [f32],
    seq: usize,
    pos: usize,
    kv: &'a LayerView<'a>,
    s: &'a Shape,
}

/// The f16 vector steps of the row path, in ggml's arithmetic.
trait F16Vec {
    /// `dst = f16(src)`, rounding to nearest.
    fn narrow(src: &[f32], dst: &mut [f16]);
    /// f16·f16 summed in f32 (see [`dot_f16`]).
    fn dot(a: &[f16], b: &[f16]) -> f32;
    /// `acc = f16(acc · s)` (`ggml_vec_scale_f16`).
    fn scale(acc: &mut [f16], s: f32);
    /// `acc = f16(v · s + acc)`, fused (`ggml_vec_mad_f16`).
    fn mad(acc: &mut [f16], v: &[f16], s: f32);
}

/// Plain Rust, any CPU.
struct Portable;

impl F16Vec for Portable {
    fn narrow(src: &[f32], dst: &mut [f16]) {
        for (d, x) in dst.iter_mut().zip(src) {
            *d = f16::from_f32(*x);
        }
    }
    fn dot(a: &[f16], b: &[f16]) -> f32 {
        dot_f16(a, b)
    }
    fn scale(acc: &mut [f16], s: f32) {
        for a in acc.iter_mut() {
            *a = f16::from_f32(a.to_f32() * s);
        }
    }
    fn mad(acc: &mut [f16], v: &[f16], s: f32) {
        for (a, v) in acc.iter_mut().zip(v) {
            *a = f16::from_f32(v.to_f32().mul_add(s, a.to_f32()));
        }
    }
}

/// Head `h` of every query row, written to its columns of `out`.
#[inline(always)]
fn attend_head<V: F16Vec>(b: &Batch, h: usize, out: &super::pool::Disjoint<'_, f32>) {
    let Batch { q, seq, pos, kv, s } = *b;
    let hd = s.head_dim;
    let kvh = h / (s.n_head / s.n_kv_head);
    let mut q16 = [f16::ZERO; MAX_HEAD_DIM];
    let mut acc = [f16::ZERO; MAX_HEAD_DIM];
    let (q16, acc) = (&mut q16[..hd], &mut acc[..hd]);
    for t in 0..seq {
        let p = pos + t;
        let range = s.first_visible(p)..p + 1;
        let keys = kv.keys(kvh, range.clone());
        let values = kv.values(kvh, range);
        let at = (t * s.n_head + h) * hd;
        V::narrow(&q[at..at + hd], q16);
        acc.fill(f16::ZERO);
        let mut sum = 0f32;
        let mut max = f32::NEG_INFINITY;
        for (krow, vrow) in keys.chunks_exact(hd).zip(values.chunks_exact(hd)) {
            let score = V::dot(q16, krow) * s.scale;
            let mut ms = 1f32;
            let mut vs = 1f32;
            if score > max {
                ms = (max - score).exp();
                max = score;
                V::scale(acc, ms);
            } else {
                vs = (score - max).exp();
            }
            V::mad(acc, vrow, vs);
            // Fused, as GCC compiles ggml's `S = S*ms + vs`.
            sum = sum.mul_add(ms, vs);
        }
        let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
        // SAFETY: row t, head h belongs to this head's task only.
        let o = unsafe { out.part(at..at + hd) };
        for (d, a) in o.iter_mut().zip(acc.iter()) {
            *d = a.to_f32() * inv;
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

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{Batch, F16Vec, Portable};

    /// AVX2 + F16C, eight lanes at a time; the same roundings and sums as
    /// [`Portable`] (whose code takes any remainder).
    struct Avx2;

    impl F16Vec for Avx2 {
        #[inline(always)]
        fn narrow(src: &[f32], dst: &mut [f16]) {
            let n = src.len().min(dst.len()) / 8 * 8;
            for i in (0..n).step_by(8) {
                // SAFETY: i + 8 <= n; the caller enabled F16C.
                unsafe {
                    let x = _mm256_loadu_ps(src.as_ptr().add(i));
                    let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x);
                    _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, h);
                }
            }
            Portable::narrow(&src[n..], &mut dst[n..]);
        }

        #[inline(always)]
        fn dot(a: &[f16], b: &[f16]) -> f32 {
            if !a.len().is_multiple_of(32) || a.len() != b.len() {
                return Portable::dot(a, b);
            }
            // SAFETY: whole steps of 32 inside both slices; the caller
            // enabled AVX2, FMA and F16C.
            unsafe {
                let ld = |p: &[f16], i: usize| {
                    _mm256_cvtph_ps(_mm_loadu_si128(p.as_ptr().add(i) as *const __m128i))
                };
                let mut acc = [_mm256_setzero_ps(); 4];
                for i in (0..a.len()).step_by(32) {
                    for (j, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm256_fmadd_ps(ld(a, i + 8 * j), ld(b, i + 8 * j), *acc);
                    }
                }
                let x0 =
                    _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
                let t = _mm_add_ps(_mm256_castps256_ps128(x0), _mm256_extractf128_ps::<1>(x0));
                let t = _mm_hadd_ps(t, t);
                let t = _mm_hadd_ps(t, t);
                _mm_cvtss_f32(t)
            }
        }

        #[inline(always)]
        fn scale(acc: &mut [f16], s: f32) {
            let n = acc.len() / 8 * 8;
            for i in (0..n).step_by(8) {
                // SAFETY: i + 8 <= n; the caller enabled F16C.
                unsafe {
                    let p = acc.as_mut_ptr().add(i) as *mut __m128i;
                    let x = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(p)), _mm256_set1_ps(s));
                    _mm_storeu_si128(p, _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x));
                }
            }
            Portable::scale(&mut acc[n..], s);
        }

        #[inline(always)]
        fn mad(acc: &mut [f16], v: &[f16], s: f32) {
            let n = acc.len().min(v.len()) / 8 * 8;
            for i in (0..n).step_by(8) {
                // SAFETY: i + 8 <= n; the caller enabled AVX2, FMA, F16C.
                unsafe {
                    let p = acc.as_mut_ptr().add(i) as *mut __m128i;
                    let vv = _mm256_cvtph_ps(_mm_loadu_si128(v.as_ptr().add(i) as *const __m128i));
                    let x =
                        _mm256_fmadd_ps(vv, _mm256_set1_ps(s), _mm256_cvtph_ps(_mm_loadu_si128(p)));
                    _mm_storeu_si128(p, _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x));
                }
            }
            Portable::mad(&mut acc[n..], &v[n..], s);
        }
    }

    /// [`super::attend_head`] with [`Avx2`].
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn attend_head(
        b: &Batch,
        h: usize,
        out: &crate::llm::pool::Disjoint<'_, f32>,
    ) {
        super::attend_head::<Avx2>(b, h, out)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Every vector step is bit-identical to the portable one.
        #[test]
        fn avx2_steps_match_portable() {
            if !crate::llm::quant::x86::has_avx2() {
                return;
            }
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn check(x: &[f32], y: &[f32]) {
                let mut a = vec![f16::ZERO; x.len()];
                let mut b = a.clone();
                Avx2::narrow(x, &mut a);
                Portable::narrow(x, &mut b);
                assert_eq!(a, b, "narrow");
                let mut v = vec![f16::ZERO; y.len()];
                Portable::narrow(y, &mut v);
                assert_eq!(
                    Avx2::dot(&a, &v).to_bits(),
                    Portable::dot(&b, &v).to_bits(),
                    "dot"
                );
                Avx2::scale(&mut a, 0.37);
                Portable::scale(&mut b, 0.37);
                assert_eq!(a, b, "scale");
                Avx2::mad(&mut a, &v, 1.7);
                Portable::mad(&mut b, &v, 1.7);
                assert_eq!(a, b, "mad");
            }
            for n in [64, 256, 40] {
                let x: Vec<f32> = (0..n)
                    .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                    .collect();
                let y: Vec<f32> = (0..n)
                    .map(|i| ((i * 53 % 89) as f32 - 44.0) / 5.0)
                    .collect();
                // SAFETY: AVX2, FMA and F16C were detected.
                unsafe { check(&x, &y) };
            }
        }
    }
}

/// Per-thread buffers of the tiled path: keys and values widened to f32,
/// one head's scores, and the inverse softmax sums.
#[derive(Default)]
struct TileScratch {
    k: Vec<f32>,
    v: Vec<f32>,
    scores: Vec<f32>,
    inv: Vec<f32>,
}

thread_local! {
    static TILE: std::cell::RefCell<TileScratch> = std::cell::RefCell::default();
}

/// All `seq` queries of a block at once in f32 (ggml's tiled path): per
/// query head, scores = Q·Kᵀ and out = P·V as two matrix products on the
/// calling thread, the masked softmax between them.
fn attend_tiled(q: &[f32], seq: usize, pos: usize, kv: &LayerView, s: &Shape, out: &mut [f32]) {
    let hd = s.head_dim;
    let width = s.n_head * hd;
    assert!(q.len() == seq * width && out.len() == seq * width);
    let n_rep = s.n_head / s.n_kv_head;
    let start = s.first_visible(pos);
    let end = pos + seq;
    let klen = end - start;
    TILE.with(|t| {
        let mut t = t.borrow_mut();
        let TileScratch { k, v, scores, inv } = &mut *t;
        scores.resize(seq * klen, 0.0);
        inv.resize(seq, 0.0);
        for kvh in 0..s.n_kv_head {
            k.clear();
            k.extend(kv.keys(kvh, start..end).iter().map(|x| x.to_f32()));
            v.clear();
            v.extend(kv.values(kvh, start..end).iter().map(|x| x.to_f32()));
            for h in kvh * n_rep..(kvh + 1) * n_rep {
                // scores[i][j] = scale · q[i]·k[j]; q rows are `width` apart.
                // SAFETY: `q` holds seq rows of `width` with this head's
                // `hd` columns at h·hd; `k` is klen × hd; `scores` is
                // seq × klen.
                unsafe {
                    gemm::gemm(
                        seq,
                        klen,
                        hd,
                        scores.as_mut_ptr(),
                        1,
                        klen as isize,
                        false,
                        q[h * hd..].as_ptr(),
                        1,
                        width as isize,
                        k.as_ptr(),
                        hd as isize,
                        1,
                        0.0,
                        s.scale,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                for (i, (row, inv)) in scores
                    .chunks_exact_mut(klen)
                    .zip(inv.iter_mut())
                    .enumerate()
                {
                    let p = pos + i;
                    let (lo, hi) = (s.first_visible(p) - start, p - start + 1);
                    row[..lo].fill(0.0);
                    row[hi..].fill(0.0);
                    let sum = super::ops::softmax_unscaled(&mut row[lo..hi]);
                    *inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
                }
                // out[i][h] = Σ_j p[i][j] · v[j].
                // SAFETY: `scores` is seq × klen, `v` klen × hd, and `out`
                // seq rows of `width` with this head's columns at h·hd.
                unsafe {
                    gemm::gemm(
                        seq,
                        hd,
                        klen,
                        out[h * hd..].as_mut_ptr(),
                        1,
                        width as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        klen as isize,
                        v.as_ptr(),
                        1,
                        hd as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                for (row, &inv) in out.chunks_exact_mut(width).zip(inv.iter()) {
                    row[h * hd..(h + 1) * hd].iter_mut().for_each(|x| *x *= inv);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::kv::KvCache;

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
            // `past` positions already in the cache before the batch.
            for (past, seq) in [(0, 3), (0, TILE_QUERIES + 6), (7, 2 * TILE_QUERIES + 1)] {
                let s = Shape {
                    n_head: 4,
                    n_kv_head: 2,
                    head_dim: 32,
                    scale: 1.0 / 32f32.sqrt(),
                    window,
                };
                let total = past + seq;
                let width = s.n_head * s.head_dim;
                let q = pseudo_random(total * width, 1);
                let k = pseudo_random(s.n_kv_head * total * s.head_dim, 2);
                let v = pseudo_random(s.n_kv_head * total * s.head_dim, 3);
                let mut cache = KvCache::new(1, s.n_kv_head, s.head_dim, 256);
                cache.write(0, &k, &v, total).unwrap();
                cache.advance(total);
                let mut got = vec![f32::NAN; seq * width];
                attend(&q[past * width..], seq, past, &cache.layer(0), &s, &mut got);
                let want = reference(&q, &k, &v, total, &s);
                let worst = got
                    .iter()
                    .zip(&want[past * width..])
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                // The row path rounds the query and its accumulator to f16.
                assert!(
                    worst < 5e-3,
                    "past {past} seq {seq} window {window:?}: max error {worst}"
                );
            }
        }
    }
}
