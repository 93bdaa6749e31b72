//! ggml's block formats as Rust types: the weight blocks a GGUF file holds
//! (`Q4_0` … `Q6_K`), the activation blocks the kernels quantize inputs to
//! (`Q8_0`, `Q8_1`, `Q8_K`), dequantization, and activation quantization
//! that rounds exactly as ggml's x86 code does (so the integer dot products
//! see the same numbers llama.cpp's do).
//!
//! Every block is plain old data: a weight matrix is a `&[Block]` cast from
//! the memory-mapped file without copying.

use bytemuck::{Pod, Zeroable};
use half::f16;

/// Elements per K-quant super-block.
pub const QK_K: usize = 256;

#[inline(always)]
pub(crate) fn h2f(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

#[inline(always)]
fn f2h(x: f32) -> u16 {
    f16::from_f32(x).to_bits()
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct BlockQ4_0 {
    pub d: u16,
    pub qs: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct BlockQ4_1 {
    pub d: u16,
    pub m: u16,
    pub qs: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct BlockQ5_0 {
    pub d: u16,
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct BlockQ5_1 {
    pub d: u16,
    pub m: u16,
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct BlockQ8_0 {
    pub d: u16,
    pub qs: [i8; 32],
}

/// Activation block for `Q4_1`/`Q5_1`: like `Q8_0` plus `s = d * sum(qs)`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct BlockQ8_1 {
    pub d: u16,
    pub s: u16,
    pub qs: [i8; 32],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct BlockQ2K {
    pub scales: [u8; 16],
    pub qs: [u8; 64],
    pub d: u16,
    pub dmin: u16,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct BlockQ3K {
    pub hmask: [u8; 32],
    pub qs: [u8; 64],
    pub scales: [u8; 12],
    pub d: u16,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct BlockQ4K {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; 12],
    pub qs: [u8; 128],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct BlockQ5K {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; 12],
    pub qh: [u8; 32],
    pub qs: [u8; 128],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct BlockQ6K {
    pub ql: [u8; 128],
    pub qh: [u8; 64],
    pub scales: [i8; 16],
    pub d: u16,
}

/// Activation block for the K-quants.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    /// Sums of `qs` in groups of 16.
    pub bsums: [i16; 16],
}

/// A block of weights: its size, how to widen it to f32, and which
/// activation block its dot product pairs with.
pub trait WeightBlock: Pod + Send + Sync {
    /// Elements per block.
    const N: usize;
    type Act: ActBlock;
    /// Writes the block's `N` values.
    fn dequantize(&self, out: &mut [f32]);
}

/// A block of quantized activations.
pub trait ActBlock: Pod + Send + Sync {
    const N: usize;
    /// Quantizes `x` (a multiple of `N` long) into `out`.
    fn quantize(x: &[f32], out: &mut [Self]);
}

/// Plain f32 "blocks" of one element, for F32 weights.
impl WeightBlock for f32 {
    const N: usize = 1;
    type Act = f32;
    fn dequantize(&self, out: &mut [f32]) {
        out[0] = *self;
    }
}

impl ActBlock for f32 {
    const N: usize = 1;
    fn quantize(x: &[f32], out: &mut [Self]) {
        out.copy_from_slice(x);
    }
}

/// F16 weights pair with f16 activations, as in ggml.
impl WeightBlock for f16 {
    const N: usize = 1;
    type Act = f16;
    fn dequantize(&self, out: &mut [f32]) {
        out[0] = self.to_f32();
    }
}

impl ActBlock for f16 {
    const N: usize = 1;
    fn quantize(x: &[f32], out: &mut [Self]) {
        for (o, v) in out.iter_mut().zip(x) {
            *o = f16::from_f32(*v);
        }
    }
}

/// BF16 weights pair with bf16 activations, as in ggml.
impl WeightBlock for half::bf16 {
    const N: usize = 1;
    type Act = half::bf16;
    fn dequantize(&self, out: &mut [f32]) {
        out[0] = self.to_f32();
    }
}

impl ActBlock for half::bf16 {
    const N: usize = 1;
    fn quantize(x: &[f32], out: &mut [Self]) {
        for (o, v) in out.iter_mut().zip(x) {
            *o = half::bf16::from_f32(*v);
        }
    }
}

impl WeightBlock for BlockQ4_0 {
    const N: usize = 32;
    type Act = BlockQ8_0;
    fn dequantize(&self, out: &mut [f32]) {
        let d = h2f(self.d);
        for j in 0..16 {
            out[j] = ((self.qs[j] & 0xF) as i32 - 8) as f32 * d;
            out[j + 16] = ((self.qs[j] >> 4) as i32 - 8) as f32 * d;
        }
    }
}

impl WeightBlock for BlockQ4_1 {
    const N: usize = 32;
    type Act = BlockQ8_1;
    fn dequantize(&self, out: &mut [f32]) {
        let (d, m) = (h2f(self.d), h2f(self.m));
        for j in 0..16 {
            out[j] = (self.qs[j] & 0xF) as f32 * d + m;
            out[j + 16] = (self.qs[j] >> 4) as f32 * d + m;
        }
    }
}

impl WeightBlock for BlockQ5_0 {
    const N: usize = 32;
    type Act = BlockQ8_0;
    fn dequantize(&self, out: &mut [f32]) {
        let d = h2f(self.d);
        let qh = u32::from_le_bytes(self.qh);
        for j in 0..16 {
            let h0 = ((qh >> j) << 4) & 0x10;
            let h1 = (qh >> (j + 12)) & 0x10;
            out[j] = (((self.qs[j] & 0xF) as u32 | h0) as i32 - 16) as f32 * d;
            out[j + 16] = (((self.qs[j] >> 4) as u32 | h1) as i32 - 16) as f32 * d;
        }
    }
}

impl WeightBlock for BlockQ5_1 {
    const N: usize = 32;
    type Act = BlockQ8_1;
    fn dequantize(&self, out: &mut [f32]) {
        let (d, m) = (h2f(self.d), h2f(self.m));
        let qh = u32::from_le_bytes(self.qh);
        for j in 0..16 {
            let h0 = ((qh >> j) << 4) & 0x10;
            let h1 = (qh >> (j + 12)) & 0x10;
            out[j] = ((self.qs[j] & 0xF) as u32 | h0) as f32 * d + m;
            out[j + 16] = ((self.qs[j] >> 4) as u32 | h1) as f32 * d + m;
        }
    }
}

impl WeightBlock for BlockQ8_0 {
    const N: usize = 32;
    type Act = BlockQ8_0;
    fn dequantize(&self, out: &mut [f32]) {
        let d = h2f(self.d);
        for (o, q) in out.iter_mut().zip(&self.qs) {
            *o = *q as f32 * d;
        }
    }
}

impl WeightBlock for BlockQ2K {
    const N: usize = QK_K;
    type Act = BlockQ8K;
    fn dequantize(&self, out: &mut [f32]) {
        let (d, min) = (h2f(self.d), h2f(self.dmin));
        let mut is = 0;
        let mut y = 0;
        for n in 0..QK_K / 128 {
            let q = &self.qs[n * 32..n * 32 + 32];
            for shift in [0, 2, 4, 6] {
                for half in 0..2 {
                    let sc = self.scales[is];
                    is += 1;
                    let dl = d * (sc & 0xF) as f32;
                    let ml = min * (sc >> 4) as f32;
                    for l in 0..16 {
                        out[y] = dl * ((q[l + 16 * half] >> shift) & 3) as f32 - ml;
                        y += 1;
                    }
                }
            }
        }
    }
}

/// The 16 six-bit scales of a `Q3_K` block, as signed values.
pub(crate) fn q3k_scales(raw: &[u8; 12]) -> [i8; 16] {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let mut aux = [0u32; 4];
    for (i, a) in aux.iter_mut().take(3).enumerate() {
        *a = u32::from_le_bytes([raw[4 * i], raw[4 * i + 1], raw[4 * i + 2], raw[4 * i + 3]]);
    }
    let tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4);
    aux[3] = ((aux[1] >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4);
    aux[0] = (aux[0] & KMASK2) | ((tmp & KMASK1) << 4);
    aux[1] = (aux[1] & KMASK2) | (((tmp >> 2) & KMASK1) << 4);
    let mut out = [0i8; 16];
    for (i, a) in aux.iter().enumerate() {
        for (b, byte) in a.to_le_bytes().iter().enumerate() {
            out[4 * i + b] = *byte as i8 - 32;
        }
    }
    out
}

impl WeightBlock for BlockQ3K {
    const N: usize = QK_K;
    type Act = BlockQ8K;
    fn dequantize(&self, out: &mut [f32]) {
        let d = h2f(self.d);
        let scales = q3k_scales(&self.scales);
        let mut is = 0;
        let mut y = 0;
        let mut m = 1u8;
        for n in 0..QK_K / 128 {
            let q = &self.qs[n * 32..n * 32 + 32];
            for shift in [0, 2, 4, 6] {
                for half in 0..2 {
                    let dl = d * scales[is] as f32;
                    is += 1;
                    for l in 0..16 {
                        let i = l + 16 * half;
                        let low = ((q[i] >> shift) & 3) as i32;
                        let high = if self.hmask[i] & m != 0 { 0 } else { 4 };
                        out[y] = dl * (low - high) as f32;
                        y += 1;
                    }
                }
                m <<= 1;
            }
        }
    }
}

/// Scale and min of sub-block `j` (of 8) from the packed 12 bytes of a
/// `Q4_K`/`Q5_K` block.
#[inline(always)]
pub(crate) fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

impl WeightBlock for BlockQ4K {
    const N: usize = QK_K;
    type Act = BlockQ8K;
    fn dequantize(&self, out: &mut [f32]) {
        let (d, min) = (h2f(self.d), h2f(self.dmin));
        for j in 0..QK_K / 64 {
            let (sc1, m1) = scale_min_k4(2 * j, &self.scales);
            let (sc2, m2) = scale_min_k4(2 * j + 1, &self.scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            let q = &self.qs[32 * j..32 * j + 32];
            for l in 0..32 {
                out[64 * j + l] = d1 * (q[l] & 0xF) as f32 - m1;
                out[64 * j + 32 + l] = d2 * (q[l] >> 4) as f32 - m2;
            }
        }
    }
}

impl WeightBlock for BlockQ5K {
    const N: usize = QK_K;
    type Act = BlockQ8K;
    fn dequantize(&self, out: &mut [f32]) {
        let (d, min) = (h2f(self.d), h2f(self.dmin));
        for j in 0..QK_K / 64 {
            let (sc1, m1) = scale_min_k4(2 * j, &self.scales);
            let (sc2, m2) = scale_min_k4(2 * j + 1, &self.scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
            let q = &self.qs[32 * j..32 * j + 32];
            for l in 0..32 {
                let h1 = if self.qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if self.qh[l] & u2 != 0 { 16 } else { 0 };
                out[64 * j + l] = d1 * ((q[l] & 0xF) + h1) as f32 - m1;
                out[64 * j + 32 + l] = d2 * ((q[l] >> 4) + h2) as f32 - m2;
            }
        }
    }
}

impl WeightBlock for BlockQ6K {
    const N: usize = QK_K;
    type Act = BlockQ8K;
    fn dequantize(&self, out: &mut [f32]) {
        let d = h2f(self.d);
        for n in 0..QK_K / 128 {
            let ql = &self.ql[64 * n..64 * n + 64];
            let qh = &self.qh[32 * n..32 * n + 32];
            let sc = &self.scales[8 * n..8 * n + 8];
            let y = &mut out[128 * n..128 * n + 128];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                y[l] = d * sc[is] as f32 * q1 as f32;
                y[l + 32] = d * sc[is + 2] as f32 * q2 as f32;
                y[l + 64] = d * sc[is + 4] as f32 * q3 as f32;
                y[l + 96] = d * sc[is + 6] as f32 * q4 as f32;
            }
        }
    }
}

/// `max|x| / 127` and its inverse as ggml's x86 code computes them.
#[inline(always)]
fn q8_scale(x: &[f32]) -> (f32, f32) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    (d, id)
}

impl ActBlock for BlockQ8_0 {
    const N: usize = 32;
    fn quantize(x: &[f32], out: &mut [Self]) {
        for (b, x) in out.iter_mut().zip(x.chunks_exact(32)) {
            let (d, id) = q8_scale(x);
            b.d = f2h(d);
            for (q, v) in b.qs.iter_mut().zip(x) {
                *q = (v * id).round_ties_even() as i8;
            }
        }
    }
}

impl ActBlock for BlockQ8_1 {
    const N: usize = 32;
    fn quantize(x: &[f32], out: &mut [Self]) {
        for (b, x) in out.iter_mut().zip(x.chunks_exact(32)) {
            let (d, id) = q8_scale(x);
            b.d = f2h(d);
            let mut sum = 0i32;
            for (q, v) in b.qs.iter_mut().zip(x) {
                *q = (v * id).round_ties_even() as i8;
                sum += *q as i32;
            }
            // ggml scales the integer sum by the unrounded d.
            b.s = f2h(d * sum as f32);
        }
    }
}

impl ActBlock for BlockQ8K {
    const N: usize = QK_K;
    fn quantize(x: &[f32], out: &mut [Self]) {
        for (b, x) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
            // The element of largest magnitude, the first one on ties.
            let mut max = 0f32;
            let mut amax = 0f32;
            for &v in x {
                if v.abs() > amax {
                    amax = v.abs();
                    max = v;
                }
            }
            if amax == 0.0 {
                *b = Self::zeroed();
                continue;
            }
            let iscale = -127.0 / max;
            for (q, v) in b.qs.iter_mut().zip(x) {
                *q = ((iscale * v).round_ties_even() as i32).min(127) as i8;
            }
            for (j, s) in b.bsums.iter_mut().enumerate() {
                *s = b.qs[16 * j..16 * j + 16].iter().map(|&q| q as i16).sum();
            }
            b.d = 1.0 / iscale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_match_ggml() {
        use std::mem::size_of;
        assert_eq!(size_of::<BlockQ4_0>(), 18);
        assert_eq!(size_of::<BlockQ4_1>(), 20);
        assert_eq!(size_of::<BlockQ5_0>(), 22);
        assert_eq!(size_of::<BlockQ5_1>(), 24);
        assert_eq!(size_of::<BlockQ8_0>(), 34);
        assert_eq!(size_of::<BlockQ8_1>(), 36);
        assert_eq!(size_of::<BlockQ2K>(), 84);
        assert_eq!(size_of::<BlockQ3K>(), 110);
        assert_eq!(size_of::<BlockQ4K>(), 144);
        assert_eq!(size_of::<BlockQ5K>(), 176);
        assert_eq!(size_of::<BlockQ6K>(), 210);
        assert_eq!(size_of::<BlockQ8K>(), 292);
    }

    #[test]
    fn q8_rounds_half_to_even_and_keeps_sums() {
        // amax 127 makes id exactly 1, so x * id is x itself.
        let mut x = [0f32; 32];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -3.5;
        x[3] = 0.5;
        let mut b = [BlockQ8_1::zeroed()];
        BlockQ8_1::quantize(&x, &mut b);
        assert_eq!(&b[0].qs[..4], &[127, 2, -4, 0]);
        assert_eq!(h2f(b[0].d), 1.0);
        assert_eq!(h2f(b[0].s), 125.0);
    }

    #[test]
    fn q8k_uses_the_signed_maximum() {
        let mut x = vec![0.5f32; QK_K];
        x[7] = -2.0;
        let mut b = [BlockQ8K::zeroed()];
        BlockQ8K::quantize(&x, &mut b);
        assert_eq!(b[0].qs[7], -127);
        assert_eq!(b[0].qs[0], 32); // 0.5 * 127 / 2 = 31.75
        assert!((b[0].d * -127.0 - -2.0).abs() < 1e-6);
        assert_eq!(b[0].bsums[0], 15 * 32 - 127);
    }
}
