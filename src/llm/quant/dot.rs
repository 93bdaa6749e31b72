//! Portable dot products between one row of weight blocks and one row of
//! activation blocks, one function per weight type, written after ggml's
//! generic C so that the integer sums are identical and the compiler can
//! vectorize the inner loops. These are the reference the SIMD kernels are
//! tested against, and the path on CPUs without them.

use half::{bf16, f16};

use super::formats::*;

pub fn f32_f32(w: &[f32], a: &[f32]) -> f32 {
    // Eight partial sums: vectorizes, and rounds like a SIMD sum would.
    let mut acc = [0f32; 8];
    let chunks = w.len() / 8 * 8;
    for (wc, ac) in w[..chunks].chunks_exact(8).zip(a[..chunks].chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += wc[l] * ac[l];
        }
    }
    let tail: f32 = w[chunks..]
        .iter()
        .zip(&a[chunks..])
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

pub fn f16_f16(w: &[f16], a: &[f16]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = w.len() / 8 * 8;
    for (wc, ac) in w[..chunks].chunks_exact(8).zip(a[..chunks].chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += wc[l].to_f32() * ac[l].to_f32();
        }
    }
    let tail: f32 = w[chunks..]
        .iter()
        .zip(&a[chunks..])
        .map(|(x, y)| x.to_f32() * y.to_f32())
        .sum();
    acc.iter().sum::<f32>() + tail
}

pub fn bf16_bf16(w: &[bf16], a: &[bf16]) -> f32 {
    w.iter().zip(a).map(|(x, y)| x.to_f32() * y.to_f32()).sum()
}

pub fn q4_0(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in w.iter().zip(a) {
        let mut sumi = 0i32;
        for j in 0..16 {
            let v0 = (x.qs[j] & 0xF) as i32 - 8;
            let v1 = (x.qs[j] >> 4) as i32 - 8;
            sumi += v0 * y.qs[j] as i32 + v1 * y.qs[j + 16] as i32;
        }
        sumf += sumi as f32 * (h2f(x.d) * h2f(y.d));
    }
    sumf
}

pub fn q4_1(w: &[BlockQ4_1], a: &[BlockQ8_1]) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in w.iter().zip(a) {
        let mut sumi = 0i32;
        for j in 0..16 {
            let v0 = (x.qs[j] & 0xF) as i32;
            let v1 = (x.qs[j] >> 4) as i32;
            sumi += v0 * y.qs[j] as i32 + v1 * y.qs[j + 16] as i32;
        }
        sumf += (h2f(x.d) * h2f(y.d)) * sumi as f32 + h2f(x.m) * h2f(y.s);
    }
    sumf
}

/// The 32 signed 5-bit values of a `Q5_0` block.
#[inline(always)]
fn q5_0_values(x: &BlockQ5_0) -> [i8; 32] {
    let qh = u32::from_le_bytes(x.qh);
    let mut v = [0i8; 32];
    for j in 0..16 {
        let h0 = (((qh >> j) << 4) & 0x10) as u8;
        let h1 = ((qh >> (j + 12)) & 0x10) as u8;
        v[j] = ((x.qs[j] & 0xF) | h0) as i8 - 16;
        v[j + 16] = ((x.qs[j] >> 4) | h1) as i8 - 16;
    }
    v
}

pub fn q5_0(w: &[BlockQ5_0], a: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in w.iter().zip(a) {
        let v = q5_0_values(x);
        let sumi: i32 = v
            .iter()
            .zip(&y.qs)
            .map(|(&p, &q)| p as i32 * q as i32)
            .sum();
        sumf += (h2f(x.d) * h2f(y.d)) * sumi as f32;
    }
    sumf
}

pub fn q5_1(w: &[BlockQ5_1], a: &[BlockQ8_1]) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in w.iter().zip(a) {
        let qh = u32::from_le_bytes(x.qh);
        let mut sumi = 0i32;
        for j in 0..16 {
            let h0 = (((qh >> j) << 4) & 0x10) as i32;
            let h1 = ((qh >> (j + 12)) & 0x10) as i32;
            let v0 = (x.qs[j] & 0xF) as i32 | h0;
            let v1 = (x.qs[j] >> 4) as i32 | h1;
            sumi += v0 * y.qs[j] as i32 + v1 * y.qs[j + 16] as i32;
        }
        sumf += (h2f(x.d) * h2f(y.d)) * sumi as f32 + h2f(x.m) * h2f(y.s);
    }
    sumf
}

pub fn q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in w.iter().zip(a) {
        let sumi: i32 =
            x.qs.iter()
                .zip(&y.qs)
                .map(|(&p, &q)| p as i32 * q as i32)
                .sum();
        sumf += sumi as f32 * (h2f(x.d) * h2f(y.d));
    }
    sumf
}

/// `Σ scale(group) · Σ a·q8` over a super-block whose values are unpacked
/// into `a`, with one scale per `group` elements, accumulated in eight lanes
/// like ggml's generic K-quant code.
#[inline(always)]
fn scaled_lanes(a: &[i8; QK_K], q8: &[i8; QK_K], scales: &[i32], group: usize) -> [i32; 8] {
    let mut aux32 = [0i32; 8];
    for (g, &scale) in scales.iter().enumerate() {
        for c in 0..group / 8 {
            let base = g * group + c * 8;
            for l in 0..8 {
                aux32[l] += scale * (q8[base + l] as i32 * a[base + l] as i32);
            }
        }
    }
    aux32
}

#[inline(always)]
fn add_lanes(sums: &mut [f32; 8], d: f32, aux32: &[i32; 8]) {
    for l in 0..8 {
        sums[l] += d * aux32[l] as f32;
    }
}

pub fn q2_k(w: &[BlockQ2K], a: &[BlockQ8K]) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in w.iter().zip(a) {
        let summs: i32 = y
            .bsums
            .iter()
            .zip(&x.scales)
            .map(|(&b, &sc)| b as i32 * (sc >> 4) as i32)
            .sum();
        let dall = y.d * h2f(x.d);
        let dmin = y.d * h2f(x.dmin);
        let mut isum = 0i32;
        let mut is = 0;
        for k in 0..QK_K / 128 {
            let q2 = &x.qs[32 * k..32 * k + 32];
            for (j, shift) in [0, 2, 4, 6].into_iter().enumerate() {
                let q8 = &y.qs[128 * k + 32 * j..128 * k + 32 * j + 32];
                for half in 0..2 {
                    let d = (x.scales[is] & 0xF) as i32;
                    is += 1;
                    let isuml: i32 = (16 * half..16 * half + 16)
                        .map(|l| q8[l] as i32 * ((q2[l] >> shift) & 3) as i32)
                        .sum();
                    isum += d * isuml;
                }
            }
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

pub fn q3_k(w: &[BlockQ3K], a: &[BlockQ8K]) -> f32 {
    let mut sums = [0f32; 8];
    let mut vals = [0i8; QK_K];
    for (x, y) in w.iter().zip(a) {
        let mut m = 1u8;
        for n in 0..QK_K / 128 {
            let q3 = &x.qs[32 * n..32 * n + 32];
            for (j, shift) in [0, 2, 4, 6].into_iter().enumerate() {
                let out = &mut vals[128 * n + 32 * j..128 * n + 32 * j + 32];
                for l in 0..32 {
                    let low = ((q3[l] >> shift) & 3) as i8;
                    out[l] = low - if x.hmask[l] & m != 0 { 0 } else { 4 };
                }
                m <<= 1;
            }
        }
        let raw = q3k_scales(&x.scales);
        let scales: [i32; 16] = std::array::from_fn(|i| raw[i] as i32);
        let aux32 = scaled_lanes(&vals, &y.qs, &scales, 16);
        add_lanes(&mut sums, h2f(x.d) * y.d, &aux32);
    }
    sums.iter().sum()
}

/// Unpacked scales and mins of a `Q4_K`/`Q5_K` block.
#[inline(always)]
pub(super) fn scales_mins_k4(raw: &[u8; 12]) -> ([i32; 8], [i32; 8]) {
    let mut scales = [0i32; 8];
    let mut mins = [0i32; 8];
    for j in 0..8 {
        let (s, m) = scale_min_k4(j, raw);
        scales[j] = s as i32;
        mins[j] = m as i32;
    }
    (scales, mins)
}

/// How llama.cpp's repacked `Q4_K` path (`q4_K_8x8`, used for every `Q4_K`
/// matrix on AVX2) rounds: its matrix-vector kernel accumulates once per
/// 256-value super-block, its matrix-matrix kernel (batches of four rows)
/// once per 64 values. The integer sums are the same either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Q4kRounding {
    PerSuperBlock,
    Per64,
}

/// `Q4_K` with the numerics of llama.cpp's repacked CPU path: exact integer
/// sums of scaled products and of mins, each accumulated with a fused
/// multiply-add (see [`Q4kRounding`]), subtracted at the end.
pub fn q4_k_with(w: &[BlockQ4K], a: &[BlockQ8K], rounding: Q4kRounding) -> f32 {
    q4_k_by(w, a, rounding, |q4, q8| {
        let lo: i32 = (0..32).map(|l| (q4[l] & 0xF) as i32 * q8[l] as i32).sum();
        let hi: i32 = (0..32)
            .map(|l| (q4[l] >> 4) as i32 * q8[32 + l] as i32)
            .sum();
        (lo, hi)
    })
}

/// [`q4_k_with`] with the integer sums of each 64-value group (32 packed
/// bytes against 64 activations: low nibbles, high nibbles) computed by
/// `sums`, so SIMD versions share the float order.
#[inline(always)]
pub(super) fn q4_k_by(
    w: &[BlockQ4K],
    a: &[BlockQ8K],
    rounding: Q4kRounding,
    sums: impl Fn(&[u8], &[i8]) -> (i32, i32),
) -> f32 {
    let mut acc = 0f32;
    let mut acc_min = 0f32;
    for (x, y) in w.iter().zip(a) {
        let (scales, mins) = scales_mins_k4(&x.scales);
        let (d, dmin) = (h2f(x.d) * y.d, h2f(x.dmin) * y.d);
        let mut isum = 0i32;
        let mut imin = 0i32;
        for j in 0..QK_K / 64 {
            let (lo, hi) = sums(&x.qs[32 * j..32 * j + 32], &y.qs[64 * j..64 * j + 64]);
            let bs = |k: usize| y.bsums[2 * k] as i32 + y.bsums[2 * k + 1] as i32;
            let s = scales[2 * j] * lo + scales[2 * j + 1] * hi;
            let m = mins[2 * j] * bs(2 * j) + mins[2 * j + 1] * bs(2 * j + 1);
            match rounding {
                Q4kRounding::Per64 => {
                    acc = (s as f32).mul_add(d, acc);
                    acc_min = (m as f32).mul_add(dmin, acc_min);
                }
                Q4kRounding::PerSuperBlock => {
                    isum += s;
                    imin += m;
                }
            }
        }
        if rounding == Q4kRounding::PerSuperBlock {
            acc = (isum as f32).mul_add(d, acc);
            acc_min = (imin as f32).mul_add(dmin, acc_min);
        }
    }
    acc - acc_min
}

pub fn q4_k(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
    q4_k_with(w, a, Q4kRounding::PerSuperBlock)
}

pub fn q4_k_batched(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
    q4_k_with(w, a, Q4kRounding::Per64)
}

pub fn q5_k(w: &[BlockQ5K], a: &[BlockQ8K]) -> f32 {
    let mut sums = [0f32; 8];
    let mut sumf = 0f32;
    let mut vals = [0i8; QK_K];
    for (x, y) in w.iter().zip(a) {
        for j in 0..QK_K / 64 {
            let q4 = &x.qs[32 * j..32 * j + 32];
            let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
            for l in 0..32 {
                let h1 = if x.qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if x.qh[l] & u2 != 0 { 16 } else { 0 };
                vals[64 * j + l] = ((q4[l] & 0xF) + h1) as i8;
                vals[64 * j + 32 + l] = ((q4[l] >> 4) + h2) as i8;
            }
        }
        let (scales, mins) = scales_mins_k4(&x.scales);
        let sumi: i32 = (0..16).map(|j| y.bsums[j] as i32 * mins[j / 2]).sum();
        let aux32 = scaled_lanes(&vals, &y.qs, &scales, 32);
        add_lanes(&mut sums, h2f(x.d) * y.d, &aux32);
        sumf -= h2f(x.dmin) * y.d * sumi as f32;
    }
    sumf + sums.iter().sum::<f32>()
}

/// The 256 signed 6-bit values of a `Q6_K` block.
#[inline(always)]
pub(super) fn q6_k_values(x: &BlockQ6K, vals: &mut [i8; QK_K]) {
    for n in 0..QK_K / 128 {
        let ql = &x.ql[64 * n..64 * n + 64];
        let qh = &x.qh[32 * n..32 * n + 32];
        let v = &mut vals[128 * n..128 * n + 128];
        for l in 0..32 {
            v[l] = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
            v[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            v[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            v[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
        }
    }
}

pub fn q6_k(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    let mut sums = [0f32; 8];
    let mut vals = [0i8; QK_K];
    for (x, y) in w.iter().zip(a) {
        q6_k_values(x, &mut vals);
        let scales: [i32; 16] = std::array::from_fn(|i| x.scales[i] as i32);
        let aux32 = scaled_lanes(&vals, &y.qs, &scales, 16);
        add_lanes(&mut sums, h2f(x.d) * y.d, &aux32);
    }
    sums.iter().sum()
}

/// `Q6_K` with the numerics of llama.cpp's tiled K-quant kernel, which it
/// uses for batches of eight rows or more: per super-block the exact integer
/// sum, scaled by the weight's `d`, then fused into the total with the
/// activation's `d`.
pub fn q6_k_batched(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    let mut acc = 0f32;
    let mut vals = [0i8; QK_K];
    for (x, y) in w.iter().zip(a) {
        q6_k_values(x, &mut vals);
        let s1: i32 = vals
            .chunks_exact(16)
            .zip(y.qs.chunks_exact(16))
            .zip(&x.scales)
            .map(|((v, q), &sc)| {
                sc as i32
                    * v.iter()
                        .zip(q)
                        .map(|(&p, &q)| p as i32 * q as i32)
                        .sum::<i32>()
            })
            .sum();
        acc = (h2f(x.d) * s1 as f32).mul_add(y.d, acc);
    }
    acc
}
