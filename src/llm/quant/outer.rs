//! Prefill of K-quant weights (`Q4_K`, `Q6_K`) as outer products: each
//! weight row widened once per task to signed bytes in element order
//! (`Q6_K`: `q − 32`; `Q4_K`: the nibbles), and eight
//! activation rows interleaved four bytes at a time, so one `vpdpbusd`
//! multiplies four weights of one row by the same four positions of
//! eight activation rows (one row per i32 lane). The 16-value sub-block
//! sums stay integers per lane; the float work is once per 256-value
//! block and weight row for all eight activation rows, where the dot
//! product tiles do it once per block for every row pair.
//!
//! Exactness: `vpdpbusd` wants one unsigned side, so the activations are
//! stored as `q + 128`; `Σ v·(q + 128) = Σ v·q + 128·Σ v`, and
//! `128 · Σ_s scale_s · Σ v` is a constant of the weight block
//! ([`WideQ6K::corr`], [`WideQ4K::corr`]) taken off once. What remains
//! are the exact integers of llama.cpp's batch kernels, fused in their
//! order: `Q6_K` per block as `fma(d_w · sum, d_a, acc)` (its tiled
//! kernel, [`super::dot::q6_k_batched`]), `Q4_K` per 64 values as
//! `fma(sum, d_w · d_a, acc)` and the mins likewise (its repacked
//! kernel, [`super::dot::q4_k_batched`]). The same f32 operations on
//! the same values, so the results equal those kernels bit for bit.
//!
//! Must not know about layers or tokens; the kernels are per instruction
//! set (`x86::outer`).

use std::cell::RefCell;

use bytemuck::{Pod, Zeroable};

use super::super::pool::{Disjoint, Pool};
use super::formats::{BlockQ4K, BlockQ6K, BlockQ8K, QK_K, WeightBlock, h2f};
use super::{DotFn, Job, Tasks, quantize_rows, with_scratch};

/// One `Q6_K` block widened for the outer-product tiles.
#[repr(C, align(32))]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct WideQ6K {
    /// The 256 values, `q − 32`, in element order.
    pub q: [i8; QK_K],
    /// The 16 sub-block scales.
    pub scales: [i32; 16],
    /// `128 · Σ_s scale_s · Σ_{i∈s} q_i`: what the activations' +128
    /// adds to the scaled sum.
    pub corr: i32,
    /// The block's `d`, widened.
    pub d: f32,
    pad: [u32; 6],
}

/// A weight block type's widened form.
pub trait Widen: Pod + Send + Sync {
    type From: WeightBlock<Act = BlockQ8K>;
    /// Widens one block.
    fn widen(x: &Self::From) -> Self;
}

impl Widen for WideQ6K {
    type From = BlockQ6K;
    fn widen(x: &BlockQ6K) -> Self {
        let mut w = Self::zeroed();
        super::dot::q6_k_values(x, &mut w.q);
        let mut corr = 0i32;
        for (s, sub) in w.q.chunks_exact(16).enumerate() {
            let scale = i32::from(x.scales[s]);
            w.scales[s] = scale;
            corr += scale * sub.iter().map(|&v| i32::from(v)).sum::<i32>();
        }
        w.corr = 128 * corr;
        w.d = h2f(x.d);
        w
    }
}

/// One `Q4_K` block widened for the outer-product tiles.
#[repr(C, align(32))]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct WideQ4K {
    /// The 256 nibbles in element order (per 64: low halves, then high).
    pub q: [i8; QK_K],
    /// The eight 32-value sub-blocks' scales and mins.
    pub scales: [i32; 8],
    pub mins: [i32; 8],
    /// Per 64-value group: `128 · Σ_s scale_s · Σ_{i∈s} q_i`.
    pub corr: [i32; 4],
    pub d: f32,
    pub dmin: f32,
    pad: [u32; 2],
}

impl Widen for WideQ4K {
    type From = BlockQ4K;
    fn widen(x: &BlockQ4K) -> Self {
        let mut w = Self::zeroed();
        (w.scales, w.mins) = super::dot::scales_mins_k4(&x.scales);
        for j in 0..QK_K / 64 {
            for l in 0..32 {
                w.q[64 * j + l] = (x.qs[32 * j + l] & 0xF) as i8;
                w.q[64 * j + 32 + l] = (x.qs[32 * j + l] >> 4) as i8;
            }
        }
        for j in 0..QK_K / 64 {
            let sum = |s: usize| {
                w.q[32 * s..32 * s + 32]
                    .iter()
                    .map(|&v| i32::from(v))
                    .sum::<i32>()
            };
            w.corr[j] = 128 * (w.scales[2 * j] * sum(2 * j) + w.scales[2 * j + 1] * sum(2 * j + 1));
        }
        w.d = h2f(x.d);
        w.dmin = h2f(x.dmin);
        w
    }
}

/// Eight activation rows' block `b`, interleaved: bytes `4g..4g + 4` of
/// row `j` (as `q + 128`) at `codes[32g + 4j..]`, the rows' scales, and
/// their sums per 32 values (`bs[k][j]`, for the `Q4_K` mins).
#[repr(C, align(32))]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct ActX8 {
    pub codes: [u8; QK_K * 8],
    pub d: [f32; 8],
    pub bs: [[i32; 8]; QK_K / 32],
}

impl ActX8 {
    /// Block `b` of eight activation rows.
    pub fn new(rows: [&[BlockQ8K]; 8], b: usize) -> Self {
        let mut x = Self::zeroed();
        for (j, row) in rows.iter().enumerate() {
            let y = &row[b];
            x.d[j] = y.d;
            for (k, bs) in x.bs.iter_mut().enumerate() {
                bs[j] = i32::from(y.bsums[2 * k]) + i32::from(y.bsums[2 * k + 1]);
            }
            for (g, four) in y.qs.chunks_exact(4).enumerate() {
                for (e, &q) in four.iter().enumerate() {
                    x.codes[32 * g + 4 * j + e] = (q as u8) ^ 0x80;
                }
            }
        }
        x
    }
}

/// Four widened weight rows against eight interleaved activation rows:
/// `[weight row][activation row]`.
pub type OuterFn<V> = fn([&[V]; 4], &[ActX8]) -> [[f32; 8]; 4];

/// [`OuterFn`] in plain Rust, the statement of what the SIMD tiles
/// compute (and their test oracle).
pub fn q6_k_outer_portable(w: [&[WideQ6K]; 4], a: &[ActX8]) -> [[f32; 8]; 4] {
    let mut acc = [[0f32; 8]; 4];
    for (t, row) in w.iter().enumerate() {
        for (x, y) in row.iter().zip(a) {
            for (j, acc) in acc[t].iter_mut().enumerate() {
                let mut s1 = 0i32;
                for s in 0..16 {
                    let mut raw = 0i32;
                    for i in 16 * s..16 * s + 16 {
                        let (g, e) = (i / 4, i % 4);
                        raw += i32::from(x.q[i]) * i32::from(y.codes[32 * g + 4 * j + e]);
                    }
                    s1 += x.scales[s] * raw;
                }
                *acc = (x.d * (s1 - x.corr) as f32).mul_add(y.d[j], *acc);
            }
        }
    }
    acc
}

/// `job` (K-quant matrices, eight activation rows or more) through
/// `tile`: the first `m − m % 8` rows as outer products, the others row by
/// row, through `batched` below `n_batched` and `single` from there (the
/// split llama.cpp's rounding makes: see `Batching`).
pub(super) fn run<V: Widen>(
    job: Job<'_, '_>,
    tile: OuterFn<V>,
    batched: DotFn<V::From>,
    single: DotFn<V::From>,
    n_batched: usize,
) {
    let Job { mats, x, m, outs } = job;
    let cols = mats[0].cols;
    let per_row = cols / QK_K;
    let n8 = m - m % 8;
    let pool = Pool::global();
    let tasks = Tasks::<V::From>::new(mats, outs, m, pool.threads(), 4);
    with_scratch::<BlockQ8K, _>(m * per_row, |acts| {
        quantize_rows::<BlockQ8K>(x, cols, acts, per_row, pool);
        let acts: &[BlockQ8K] = acts;
        let act = |i: usize| &acts[i * per_row..(i + 1) * per_row];
        let groups = n8 / 8;
        with_interleaved(groups * per_row, |x8| {
            let out = Disjoint::new(x8);
            pool.run(groups, &|g| {
                // SAFETY: group `g`'s blocks are written by this task only.
                let mine = unsafe { out.part(g * per_row..(g + 1) * per_row) };
                let rows: [&[BlockQ8K]; 8] = std::array::from_fn(|j| act(8 * g + j));
                for (b, v) in mine.iter_mut().enumerate() {
                    *v = ActX8::new(rows, b);
                }
            });
            let x8: &[ActX8] = x8;
            let task = |t: usize| {
                let Some((part, mine)) = tasks.get(t) else {
                    return;
                };
                let (rows, out) = (part.rows, &part.out);
                let row = |r: usize| &part.weights[r * per_row..(r + 1) * per_row];
                with_wide::<V, _>(mine.len() * per_row, |wide| {
                    for (k, r) in mine.clone().enumerate() {
                        let to = &mut wide[k * per_row..(k + 1) * per_row];
                        for (v, b) in to.iter_mut().zip(row(r)) {
                            *v = V::widen(b);
                        }
                    }
                    let wide: &[V] = wide;
                    let last = mine.len() - 1;
                    let wrow = |k: usize| &wide[k.min(last) * per_row..(k.min(last) + 1) * per_row];
                    for g in 0..groups {
                        let ys = &x8[g * per_row..(g + 1) * per_row];
                        for k0 in (0..mine.len()).step_by(4) {
                            let got = tile(std::array::from_fn(|t| wrow(k0 + t)), ys);
                            for (t, vals) in got.iter().enumerate().take(mine.len() - k0) {
                                for (j, &v) in vals.iter().enumerate() {
                                    // SAFETY: each (row, act) is written by
                                    // exactly one task; `out` outlives it.
                                    unsafe {
                                        out.write((8 * g + j) * rows + mine.start + k0 + t, v)
                                    };
                                }
                            }
                        }
                    }
                });
                for r in mine.clone() {
                    for i in n8..m {
                        let dot = if i < n_batched { batched } else { single };
                        // SAFETY: as above.
                        unsafe { out.write(i * rows + r, dot(row(r), act(i))) };
                    }
                }
            };
            pool.run(tasks.count, &task);
        });
    });
}

thread_local! {
    static INTERLEAVED: RefCell<Vec<ActX8>> = const { RefCell::new(Vec::new()) };
    static WIDE: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's buffer of `n` interleaved activation blocks.
fn with_interleaved<R>(n: usize, f: impl FnOnce(&mut [ActX8]) -> R) -> R {
    INTERLEAVED.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < n {
            buf.resize(n, ActX8::zeroed());
        }
        f(&mut buf[..n])
    })
}

/// 32 aligned bytes: the backing of the widened-weights buffer, whatever
/// the type (every widened block is a whole number of lines).
#[repr(C, align(32))]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Line([u8; 32]);

/// Runs `f` on this thread's buffer of `n` widened weight blocks.
fn with_wide<V: Widen, R>(n: usize, f: impl FnOnce(&mut [V]) -> R) -> R {
    const { assert!(std::mem::size_of::<V>().is_multiple_of(32) && std::mem::align_of::<V>() <= 32) };
    WIDE.with(|cell| {
        let mut buf = cell.borrow_mut();
        let lines = n * std::mem::size_of::<V>() / 32;
        if buf.len() < lines {
            buf.resize(lines, Line([0; 32]));
        }
        f(bytemuck::cast_slice_mut(&mut buf[..lines]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::quant::dot;

    #[test]
    fn the_portable_outer_tile_equals_the_batched_dot_bit_for_bit() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let blocks = 3;
        let w: Vec<Vec<BlockQ6K>> = (0..4)
            .map(|_| {
                (0..blocks)
                    .map(|_| {
                        let mut b = BlockQ6K::zeroed();
                        let bytes: &mut [u8] = bytemuck::bytes_of_mut(&mut b);
                        bytes.iter_mut().for_each(|v| *v = next() as u8);
                        b.d = half::f16::from_f32(0.01 + (next() % 100) as f32 * 1e-4).to_bits();
                        b
                    })
                    .collect()
            })
            .collect();
        let acts: Vec<Vec<BlockQ8K>> = (0..8)
            .map(|_| {
                let x: Vec<f32> = (0..blocks * QK_K)
                    .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
                    .collect();
                let mut a = vec![BlockQ8K::zeroed(); blocks];
                <BlockQ8K as crate::llm::quant::formats::ActBlock>::quantize(&x, &mut a);
                a
            })
            .collect();
        let wide: Vec<Vec<WideQ6K>> = w
            .iter()
            .map(|r| r.iter().map(WideQ6K::widen).collect())
            .collect();
        let rows: [&[BlockQ8K]; 8] = std::array::from_fn(|j| acts[j].as_slice());
        let x8: Vec<ActX8> = (0..blocks).map(|b| ActX8::new(rows, b)).collect();
        let got = q6_k_outer_portable(std::array::from_fn(|t| wide[t].as_slice()), &x8);
        for t in 0..4 {
            for j in 0..8 {
                let want = dot::q6_k_batched(&w[t], &acts[j]);
                assert_eq!(got[t][j].to_bits(), want.to_bits(), "row {t} act {j}");
            }
        }
    }
}
