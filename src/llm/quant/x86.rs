//! AVX2 + FMA + F16C dot products for the block types the shipped models
//! use, after ggml's x86 kernels (same lane layout, so the same sums).
//!
//! The public functions are safe wrappers handed out only after
//! [`has_avx2`] said yes; each `unsafe fn` below assumes those features.

use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::formats::*;

pub mod outer;
pub mod unpacked;

/// True when this CPU has AVX2, FMA and F16C (checked once).
pub fn has_avx2() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    })
}

macro_rules! safe {
    ($name:ident, $imp:expr, $w:ty, $a:ty) => {
        pub fn $name(w: &[$w], a: &[$a]) -> f32 {
            debug_assert!(has_avx2());
            // SAFETY: `kernels` hands this function out only when
            // `has_avx2()` is true.
            unsafe { $imp(w, a) }
        }
    };
}

safe!(q4_0, q4_0_avx2, BlockQ4_0, BlockQ8_0);
safe!(q4_1, q4_1_avx2, BlockQ4_1, BlockQ8_1);
safe!(q5_0, q5_0_avx2, BlockQ5_0, BlockQ8_0);
safe!(q8_0, q8_0_avx2, BlockQ8_0, BlockQ8_0);
safe!(q4_k, q4_k_avx2::<false>, BlockQ4K, BlockQ8K);
safe!(q4_k_batched, q4_k_avx2::<true>, BlockQ4K, BlockQ8K);
safe!(q6_k, q6_k_avx2::<false>, BlockQ6K, BlockQ8K);
safe!(q6_k_batched, q6_k_avx2::<true>, BlockQ6K, BlockQ8K);

/// One f16 scale widened. In assembly so that the value enters the vector
/// register through `vmovd`, which zeroes the rest: written with
/// intrinsics, LLVM inserts the 16 bits with `vpinsrw` into whatever
/// register is free, and the merge made every block's scale wait for the
/// previous block's: a loop-carried chain of about 12 cycles per block
/// that bounded the one-scale-per-32 kernels (Qwen2.5 0.5B tg128 on one
/// thread: 17.2 t/s before, 21.1 after, llama.cpp 21.0–21.5).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn h(bits: u16) -> f32 {
    let v: __m128;
    // SAFETY: two register-only instructions the enabled features provide.
    unsafe {
        std::arch::asm!(
            "vmovd {v}, {g:e}",
            "vcvtph2ps {v}, {v}",
            g = in(reg) u32::from(bits),
            v = out(xmm_reg) v,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    _mm_cvtss_f32(v)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_float_8(x: __m256) -> f32 {
    let mut res = _mm256_extractf128_ps::<1>(x);
    res = _mm_add_ps(res, _mm256_castps256_ps128(x));
    res = _mm_add_ps(res, _mm_movehl_ps(res, res));
    res = _mm_add_ss(res, _mm_movehdup_ps(res));
    _mm_cvtss_f32(res)
}

/// 32 nibbles → 32 bytes: low nibbles first, then high nibbles.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bytes_from_nibbles_32(qs: &[u8; 16]) -> __m256i {
    // SAFETY: 16 readable bytes.
    let tmp = unsafe { _mm_loadu_si128(qs.as_ptr() as *const __m128i) };
    let bytes = _mm256_set_m128i(_mm_srli_epi16::<4>(tmp), tmp);
    _mm256_and_si256(_mm256_set1_epi8(0xF), bytes)
}

/// 32 bits → 32 bytes, 0xFF where the bit is set.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn bytes_from_bits_32(qh: &[u8; 4]) -> __m256i {
    let x32 = u32::from_le_bytes(*qh) as i32;
    let shuf = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(x32), shuf);
    let bit_mask = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
    _mm256_cmpeq_epi8(_mm256_or_si256(bytes, bit_mask), _mm256_set1_epi64x(-1))
}

/// Unsigned × signed bytes, summed in fours, as floats.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn mul_sum_us8_pairs_float(ax: __m256i, sy: __m256i) -> __m256 {
    let dot = _mm256_maddubs_epi16(ax, sy);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_set1_epi16(1), dot))
}

/// Signed × signed bytes, summed in fours, as floats.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn mul_sum_i8_pairs_float(x: __m256i, y: __m256i) -> __m256 {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    mul_sum_us8_pairs_float(ax, sy)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load32(p: *const i8) -> __m256i {
    // SAFETY: the caller passes 32 readable bytes.
    unsafe { _mm256_loadu_si256(p as *const __m256i) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_avx2(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(a) {
        let d = _mm256_set1_ps(h(x.d) * h(y.d));
        // SAFETY: each block holds 32 quants.
        let (qx, qy) = unsafe { (load32(x.qs.as_ptr()), load32(y.qs.as_ptr())) };
        acc = _mm256_fmadd_ps(d, mul_sum_i8_pairs_float(qx, qy), acc);
    }
    hsum_float_8(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_0_avx2(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(a) {
        let d = _mm256_set1_ps(h(x.d) * h(y.d));
        // SAFETY: blocks hold 16 packed and 32 plain quants.
        let (qx, qy) = unsafe { (bytes_from_nibbles_32(&x.qs), load32(y.qs.as_ptr())) };
        let qx = _mm256_sub_epi8(qx, _mm256_set1_epi8(8));
        acc = _mm256_fmadd_ps(d, mul_sum_i8_pairs_float(qx, qy), acc);
    }
    hsum_float_8(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1_avx2(w: &[BlockQ4_1], a: &[BlockQ8_1]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0f32;
    for (x, y) in w.iter().zip(a) {
        summs += h(x.m) * h(y.s);
        let d0d1 = _mm256_set1_ps(h(x.d) * h(y.d));
        // SAFETY: blocks hold 16 packed and 32 plain quants.
        let (qx, qy) = unsafe { (bytes_from_nibbles_32(&x.qs), load32(y.qs.as_ptr())) };
        acc = _mm256_fmadd_ps(d0d1, mul_sum_us8_pairs_float(qx, qy), acc);
    }
    hsum_float_8(acc) + summs
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_0_avx2(w: &[BlockQ5_0], a: &[BlockQ8_0]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(a) {
        let d = _mm256_set1_ps(h(x.d) * h(y.d));
        // SAFETY: blocks hold 16 packed and 32 plain quants.
        let (qx, qy) = unsafe { (bytes_from_nibbles_32(&x.qs), load32(y.qs.as_ptr())) };
        let hi = _mm256_andnot_si256(bytes_from_bits_32(&x.qh), _mm256_set1_epi8(0xF0u8 as i8));
        let qx = _mm256_or_si256(qx, hi);
        acc = _mm256_fmadd_ps(d, mul_sum_i8_pairs_float(qx, qy), acc);
    }
    hsum_float_8(acc)
}

/// Byte pairs selecting scale `i` of a `Q4_K` block, for `_mm256_shuffle_epi8`.
const SHUFFLE_K4: [[u8; 32]; 8] = {
    let mut t = [[0u8; 32]; 8];
    let mut i = 0;
    while i < 8 {
        let mut b = 0;
        while b < 32 {
            t[i][b] = (2 * i + b % 2) as u8;
            b += 1;
        }
        i += 1;
    }
    t
};

/// Sums the four i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_i32_4(x: __m128i) -> i32 {
    let s = _mm_add_epi32(x, _mm_unpackhi_epi64(x, x));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<1>(s));
    _mm_cvtsi128_si32(s)
}

/// Sums the eight i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_i32_8(x: __m256i) -> i32 {
    hsum_i32_4(_mm_add_epi32(
        _mm256_castsi256_si128(x),
        _mm256_extracti128_si256::<1>(x),
    ))
}

/// The weight side of a `Q4_K` block, unpacked once however many
/// activation rows it meets: the eight mins (as i16), and per 64-value group
/// its two scales (broadcast to 16-bit pairs) and its low and high nibbles.
struct Q4kWeights {
    mins: __m128i,
    groups: [[__m256i; 4]; 4],
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q4_k_weights(x: &BlockQ4K) -> Q4kWeights {
    const KMASK1: u32 = 0x3f3f_3f3f;
    const KMASK2: u32 = 0x0f0f_0f0f;
    const KMASK3: u32 = 0x0303_0303;
    let m4 = _mm256_set1_epi8(0xF);
    let s = &x.scales;
    let mut utmp = [
        u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        u32::from_le_bytes([s[4], s[5], s[6], s[7]]),
        u32::from_le_bytes([s[8], s[9], s[10], s[11]]),
        0,
    ];
    utmp[3] = ((utmp[2] >> 4) & KMASK2) | (((utmp[1] >> 6) & KMASK3) << 4);
    let uaux = utmp[1] & KMASK1;
    utmp[1] = (utmp[2] & KMASK2) | (((utmp[0] >> 6) & KMASK3) << 4);
    utmp[2] = uaux;
    utmp[0] &= KMASK1;
    let mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32(
        utmp[3] as i32,
        utmp[2] as i32,
        utmp[1] as i32,
        utmp[0] as i32,
    ));
    let sc128 = _mm256_extracti128_si256::<0>(mins_and_scales);
    let scales = _mm256_set_m128i(sc128, sc128);
    let groups = std::array::from_fn(|j| {
        // SAFETY: 32-byte table rows; offsets inside the 128 packed quants.
        let (scale_l, scale_h, q4bits) = unsafe {
            (
                _mm256_shuffle_epi8(scales, load32(SHUFFLE_K4[2 * j].as_ptr() as *const i8)),
                _mm256_shuffle_epi8(scales, load32(SHUFFLE_K4[2 * j + 1].as_ptr() as *const i8)),
                load32(x.qs.as_ptr().add(32 * j) as *const i8),
            )
        };
        let q4l = _mm256_and_si256(q4bits, m4);
        let q4h = _mm256_and_si256(_mm256_srli_epi16::<4>(q4bits), m4);
        [scale_l, scale_h, q4l, q4h]
    });
    Q4kWeights {
        mins: _mm256_extracti128_si256::<1>(mins_and_scales),
        groups,
    }
}

/// One activation block against unpacked `Q4_K` weights: per 64-value
/// group, its mins term and its scaled products (eight i32 lanes).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q4_k_parts(wk: &Q4kWeights, y: &BlockQ8K) -> ([i32; 4], [__m256i; 4]) {
    let mut mins = [0i32; 4];
    // SAFETY: four i32 lanes into four i32s.
    unsafe { _mm_storeu_si128(mins.as_mut_ptr() as *mut __m128i, q4_k_mins(wk, y)) };
    (mins, std::array::from_fn(|j| q4_k_part(wk, y, j)))
}

/// The mins terms of the four 64-value groups (i32 lanes).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q4_k_mins(wk: &Q4kWeights, y: &BlockQ8K) -> __m128i {
    // SAFETY: 16 bsums are 32 bytes.
    let q8sums = unsafe { load32(y.bsums.as_ptr() as *const i8) };
    // Sums of the eight 32-value sub-blocks, times their mins: lane k
    // holds sub-blocks 2k and 2k+1.
    let q8s = _mm_hadd_epi16(
        _mm256_extracti128_si256::<0>(q8sums),
        _mm256_extracti128_si256::<1>(q8sums),
    );
    _mm_madd_epi16(wk.mins, q8s)
}

/// Group `j`'s scaled products (eight i32 lanes that sum to its dot).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q4_k_part(wk: &Q4kWeights, y: &BlockQ8K, j: usize) -> __m256i {
    let [scale_l, scale_h, q4l, q4h] = wk.groups[j];
    // SAFETY: offsets inside the 256 plain quants (`j` < 4).
    let (q8l, q8h) = unsafe {
        (
            load32(y.qs.as_ptr().add(64 * j)),
            load32(y.qs.as_ptr().add(64 * j + 32)),
        )
    };
    let p16l = _mm256_madd_epi16(scale_l, _mm256_maddubs_epi16(q4l, q8l));
    let p16h = _mm256_madd_epi16(scale_h, _mm256_maddubs_epi16(q4h, q8h));
    _mm256_add_epi32(p16l, p16h)
}

/// `Q4_K` with the numerics of llama.cpp's repacked path (see
/// [`super::dot::Q4kRounding`]; `PER_64` selects its batched rounding).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k_avx2<const PER_64: bool>(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
    let mut acc = 0f32;
    let mut acc_min = 0f32;
    for (x, y) in w.iter().zip(a) {
        let d = h(x.d) * y.d;
        let dmin = h(x.dmin) * y.d;
        let (mins, parts) = q4_k_parts(&q4_k_weights(x), y);
        if PER_64 {
            for (&imin, &part) in mins.iter().zip(&parts) {
                acc = (hsum_i32_8(part) as f32).mul_add(d, acc);
                acc_min = (imin as f32).mul_add(dmin, acc_min);
            }
        } else {
            let sumi = parts
                .iter()
                .fold(_mm256_setzero_si256(), |s, &p| _mm256_add_epi32(s, p));
            acc = (hsum_i32_8(sumi) as f32).mul_add(d, acc);
            acc_min = (mins.iter().sum::<i32>() as f32).mul_add(dmin, acc_min);
        }
    }
    acc - acc_min
}

/// Four rows of [`q4_k_avx2`]`::<true>` (the batched rounding), the rows
/// in the lanes of one vector: each lane does that kernel's float
/// operations in its order (integer sums in any order are exact), and the
/// four groups' horizontal sums are one `vphaddd` tree, not four.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k_x4_avx2(w: &[BlockQ4K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
    let mut acc = _mm_setzero_ps();
    let mut acc_min = _mm_setzero_ps();
    for (b, x) in w.iter().enumerate() {
        let wk = q4_k_weights(x);
        // SAFETY: `b` is inside every row (the wrapper checked).
        let ys = a.map(|r| unsafe { r.get_unchecked(b) });
        let yd = _mm_set_ps(ys[3].d, ys[2].d, ys[1].d, ys[0].d);
        let d = _mm_mul_ps(_mm_set1_ps(h(x.d)), yd);
        let dmin = _mm_mul_ps(_mm_set1_ps(h(x.dmin)), yd);
        // Mins per row (lanes: groups), transposed to per group (lanes: rows).
        let [m0, m1, m2, m3] = ys.map(|y| q4_k_mins(&wk, y));
        let (t0, t1) = (_mm_unpacklo_epi32(m0, m1), _mm_unpacklo_epi32(m2, m3));
        let (t2, t3) = (_mm_unpackhi_epi32(m0, m1), _mm_unpackhi_epi32(m2, m3));
        let mins = [
            _mm_unpacklo_epi64(t0, t1),
            _mm_unpackhi_epi64(t0, t1),
            _mm_unpacklo_epi64(t2, t3),
            _mm_unpackhi_epi64(t2, t3),
        ];
        for (j, &min) in mins.iter().enumerate() {
            let [p0, p1, p2, p3] = ys.map(|y| q4_k_part(&wk, y, j));
            let t = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
            let sums = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256::<1>(t));
            acc = _mm_fmadd_ps(_mm_cvtepi32_ps(sums), d, acc);
            acc_min = _mm_fmadd_ps(_mm_cvtepi32_ps(min), dmin, acc_min);
        }
    }
    let mut out = [0f32; 4];
    // SAFETY: four f32 lanes into four f32s.
    unsafe { _mm_storeu_ps(out.as_mut_ptr(), _mm_sub_ps(acc, acc_min)) };
    out
}

/// Bytes selecting scales `2i` (first 8) and `2i + 1` (last 8) of a
/// `Q6_K` block.
const SHUFFLE_Q6: [[u8; 16]; 8] = {
    let mut t = [[0u8; 16]; 8];
    let mut i = 0;
    while i < 8 {
        let mut b = 0;
        while b < 16 {
            t[i][b] = (2 * i + b / 8) as u8;
            b += 1;
        }
        i += 1;
    }
    t
};

/// The weight side of a `Q6_K` block: its scales (i8), and per 32-value
/// group the 6-bit values (unsigned, 0..64) with their scale as i16 lanes.
struct Q6kWeights {
    scales_16: __m256i,
    groups: [[__m256i; 2]; 8],
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q6_k_weights(x: &BlockQ6K) -> Q6kWeights {
    let m3 = _mm256_set1_epi8(3);
    let m15 = _mm256_set1_epi8(15);
    // SAFETY: scales are 16 bytes.
    let scales = unsafe { _mm_loadu_si128(x.scales.as_ptr() as *const __m128i) };
    let mut groups = [[_mm256_setzero_si256(); 2]; 8];
    for j in 0..QK_K / 128 {
        // SAFETY: offsets stay inside ql (128) and qh (64).
        let (q4bits1, q4bits2, q4bits_h) = unsafe {
            (
                load32(x.ql.as_ptr().add(64 * j) as *const i8),
                load32(x.ql.as_ptr().add(64 * j + 32) as *const i8),
                load32(x.qh.as_ptr().add(32 * j) as *const i8),
            )
        };
        let q4h_0 = _mm256_slli_epi16::<4>(_mm256_and_si256(q4bits_h, m3));
        let q4h_1 = _mm256_slli_epi16::<2>(_mm256_and_si256(q4bits_h, _mm256_set1_epi8(12)));
        let q4h_2 = _mm256_and_si256(q4bits_h, _mm256_set1_epi8(48));
        let q4h_3 = _mm256_srli_epi16::<2>(_mm256_and_si256(q4bits_h, _mm256_set1_epi8(-64)));
        let q4 = [
            _mm256_or_si256(_mm256_and_si256(q4bits1, m15), q4h_0),
            _mm256_or_si256(_mm256_and_si256(q4bits2, m15), q4h_1),
            _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16::<4>(q4bits1), m15),
                q4h_2,
            ),
            _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16::<4>(q4bits2), m15),
                q4h_3,
            ),
        ];
        for k in 0..4 {
            // SAFETY: 16-byte shuffle table rows.
            let shuf = unsafe { _mm_loadu_si128(SHUFFLE_Q6[4 * j + k].as_ptr() as *const __m128i) };
            let scale = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, shuf));
            groups[4 * j + k] = [q4[k], scale];
        }
    }
    Q6kWeights {
        scales_16: _mm256_cvtepi8_epi16(scales),
        groups,
    }
}

/// One activation block against unpacked `Q6_K` weights: the block's
/// scaled products in eight i32 lanes (the 6-bit offset of 32 removed).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q6_k_sum(wk: &Q6kWeights, y: &BlockQ8K) -> __m256i {
    // SAFETY: bsums are 32 bytes.
    let q8sums = unsafe { load32(y.bsums.as_ptr() as *const i8) };
    let q8sclsub = _mm256_slli_epi32::<5>(_mm256_madd_epi16(q8sums, wk.scales_16));
    let mut sumi = _mm256_setzero_si256();
    for j in 0..QK_K / 128 {
        let mut p = [_mm256_setzero_si256(); 4];
        for (k, p) in p.iter_mut().enumerate() {
            let [q4, scale] = wk.groups[4 * j + k];
            // SAFETY: offsets inside the 256 plain quants.
            let q8 = unsafe { load32(y.qs.as_ptr().add(128 * j + 32 * k)) };
            *p = _mm256_madd_epi16(scale, _mm256_maddubs_epi16(q4, q8));
        }
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p[0], p[1]));
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p[2], p[3]));
    }
    _mm256_sub_epi32(sumi, q8sclsub)
}

/// `Q6_K`: ggml's AVX2 dot product, or (`TILED`) the rounding of its tiled
/// kernel for batches (see [`super::dot::q6_k_batched`]).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k_avx2<const TILED: bool>(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    let mut tiled = 0f32;
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(a) {
        let sumi = q6_k_sum(&q6_k_weights(x), y);
        if TILED {
            tiled = (h(x.d) * hsum_i32_8(sumi) as f32).mul_add(y.d, tiled);
        } else {
            let d = y.d * h(x.d);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
    }
    if TILED { tiled } else { hsum_float_8(acc) }
}

/// Four rows of [`q6_k_avx2`]`::<true>` (the tiled rounding).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k_x4_avx2(w: &[BlockQ6K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
    let mut acc = [0f32; 4];
    for (b, x) in w.iter().enumerate() {
        let wk = q6_k_weights(x);
        let hd = h(x.d);
        for i in 0..4 {
            // SAFETY: `b` is inside every row (the wrapper checked).
            let y = unsafe { a[i].get_unchecked(b) };
            let sumi = q6_k_sum(&wk, y);
            acc[i] = (hd * hsum_i32_8(sumi) as f32).mul_add(y.d, acc[i]);
        }
    }
    acc
}

/// Four activation rows against one weight row: each result equals the
/// single-row kernel's bit for bit (its own accumulator, same order), but
/// the weight block is loaded, unpacked and converted once for all four,
/// and the four independent sums keep the multiply-add units busy.
macro_rules! tile4 {
    ($name:ident, $imp:ident, $w:ty, $a:ty) => {
        tile4!($name, $imp, $w, $a, has_avx2);
    };
    ($name:ident, $imp:ident, $w:ty, $a:ty, $has:ident) => {
        pub fn $name(w: &[$w], a: [&[$a]; 4]) -> [f32; 4] {
            debug_assert!($has());
            for r in &a {
                assert_eq!(r.len(), w.len(), "activation row length");
            }
            // SAFETY: `Isa::available` (the only way to these functions)
            // lists a kernel set only when `$has()` said yes; lengths
            // checked above.
            unsafe { $imp(w, a) }
        }
    };
}

/// Two weight rows against four activation rows (`[row][act]`), each
/// result equal to the four-row tile's bit for bit.
macro_rules! pair {
    ($name:ident, $imp:ident, $w:ty, $a:ty, $has:ident) => {
        pub fn $name(w0: &[$w], w1: &[$w], a: [&[$a]; 4]) -> [[f32; 4]; 2] {
            debug_assert!($has());
            assert_eq!(w0.len(), w1.len(), "weight row length");
            for r in &a {
                assert_eq!(r.len(), w0.len(), "activation row length");
            }
            // SAFETY: as for `tile4!`; lengths checked above.
            unsafe { $imp(w0, w1, a) }
        }
    };
}

pair!(q4_0_x2x4, q4_0_x2x4_avx2, BlockQ4_0, BlockQ8_0, has_avx2);
pair!(q5_0_x2x4, q5_0_x2x4_avx2, BlockQ5_0, BlockQ8_0, has_avx2);
pair!(q8_0_x2x4, q8_0_x2x4_avx2, BlockQ8_0, BlockQ8_0, has_avx2);

tile4!(q4_0_x4, q4_0_x4_avx2, BlockQ4_0, BlockQ8_0);
tile4!(q4_1_x4, q4_1_x4_avx2, BlockQ4_1, BlockQ8_1);
tile4!(q5_0_x4, q5_0_x4_avx2, BlockQ5_0, BlockQ8_0);
tile4!(q8_0_x4, q8_0_x4_avx2, BlockQ8_0, BlockQ8_0);
tile4!(q4_k_x4, q4_k_x4_avx2, BlockQ4K, BlockQ8K);
tile4!(q6_k_x4, q6_k_x4_avx2, BlockQ6K, BlockQ8K);

/// The VNNI tiles, handed out only when [`has_vnni`] said yes.
pub mod vnni {
    use super::*;

    tile4!(q4_0_x4, q4_0_x4_vnni, BlockQ4_0, BlockQ8_0, has_vnni);
    tile4!(q4_1_x4, q4_1_x4_vnni, BlockQ4_1, BlockQ8_1, has_vnni);
    tile4!(q5_0_x4, q5_0_x4_vnni, BlockQ5_0, BlockQ8_0, has_vnni);
    tile4!(q8_0_x4, q8_0_x4_vnni, BlockQ8_0, BlockQ8_0, has_vnni);
    pair!(q4_0_x2x4, q4_0_x2x4_vnni, BlockQ4_0, BlockQ8_0, has_vnni);
    pair!(q5_0_x2x4, q5_0_x2x4_vnni, BlockQ5_0, BlockQ8_0, has_vnni);
    pair!(q8_0_x2x4, q8_0_x2x4_vnni, BlockQ8_0, BlockQ8_0, has_vnni);
}

/// Unsigned × signed bytes summed in fours, as floats: `vpmaddubsw` +
/// `vpmaddwd` (AVX2), or one `vpdpbusd` (AVX-512 VNNI). The sums are equal:
/// the pairs `vpmaddubsw` adds never saturate on these types' ranges
/// (at most 2 · 128 · 127 < 32767).
trait Us8Sum {
    /// # Safety
    /// The CPU must have the implementation's instructions.
    unsafe fn sum(ax: __m256i, sy: __m256i) -> __m256;
}

struct Maddubs;

impl Us8Sum for Maddubs {
    #[inline(always)]
    unsafe fn sum(ax: __m256i, sy: __m256i) -> __m256 {
        // SAFETY: the caller's CPU has AVX2.
        unsafe { mul_sum_us8_pairs_float(ax, sy) }
    }
}

struct Vnni;

impl Us8Sum for Vnni {
    #[inline(always)]
    unsafe fn sum(ax: __m256i, sy: __m256i) -> __m256 {
        // SAFETY: the caller's CPU has AVX-512 VNNI and VL.
        unsafe { _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy)) }
    }
}

/// True when this CPU has AVX-512 VNNI with 256-bit forms (checked once).
pub fn has_vnni() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        has_avx2() && is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl")
    })
}

/// Signed weight bytes `qx` against four rows' blocks with scales
/// `dx · d(y)`, as [`mul_sum_i8_pairs_float`] does for one row.
#[inline(always)]
unsafe fn signed_x4<S: Us8Sum>(acc: &mut [__m256; 4], qx: __m256i, dx: f32, ys: [&BlockQ8_0; 4]) {
    // SAFETY: the caller's CPU has what `S` needs and AVX2; each block
    // holds 32 quants.
    unsafe {
        let ax = _mm256_sign_epi8(qx, qx);
        for (acc, y) in acc.iter_mut().zip(ys) {
            let d = _mm256_set1_ps(dx * h(y.d));
            let qy = load32(y.qs.as_ptr());
            let sy = _mm256_sign_epi8(qy, qx);
            *acc = _mm256_fmadd_ps(d, S::sum(ax, sy), *acc);
        }
    }
}

/// A four-row tile for a type whose blocks unpack to 32 signed bytes and
/// one f16 scale `d` (`Q4_0`, `Q5_0`, `Q8_0`), in an AVX2 and a VNNI build.
macro_rules! signed_tile {
    ($avx2:ident, $vnni:ident, $w:ty, |$x:ident| $unpack:expr) => {
        #[inline(always)]
        unsafe fn body<S: Us8Sum>(w: &[$w], a: [&[BlockQ8_0]; 4]) -> [f32; 4] {
            // SAFETY: whole blocks are read; `b` is inside every activation
            // row (the wrapper checked the lengths); the caller's CPU has
            // AVX2 and what `S` needs.
            unsafe {
                let mut acc = [_mm256_setzero_ps(); 4];
                for (b, $x) in w.iter().enumerate() {
                    let qx = $unpack;
                    let ys = a.map(|r| r.get_unchecked(b));
                    signed_x4::<S>(&mut acc, qx, h($x.d), ys);
                }
                [
                    hsum_float_8(acc[0]),
                    hsum_float_8(acc[1]),
                    hsum_float_8(acc[2]),
                    hsum_float_8(acc[3]),
                ]
            }
        }

        /// Two weight rows: each activation block is loaded and its
        /// scale widened once for both; every sum keeps `body`'s order.
        #[inline(always)]
        unsafe fn pair_body<S: Us8Sum>(
            w0: &[$w],
            w1: &[$w],
            a: [&[BlockQ8_0]; 4],
        ) -> [[f32; 4]; 2] {
            // SAFETY: as in `body`; `w1` is as long as `w0` (checked by
            // the wrapper).
            unsafe {
                let mut acc = [[_mm256_setzero_ps(); 4]; 2];
                for (b, $x) in w0.iter().enumerate() {
                    let q0 = $unpack;
                    let d0 = h($x.d);
                    // `$unpack` names its block `$x`: rebind it to row 1's.
                    let $x = w1.get_unchecked(b);
                    let q1 = $unpack;
                    let d1 = h($x.d);
                    let (a0, a1) = (_mm256_sign_epi8(q0, q0), _mm256_sign_epi8(q1, q1));
                    for (k, r) in a.iter().enumerate() {
                        let y = r.get_unchecked(b);
                        let dy = h(y.d);
                        let qy = load32(y.qs.as_ptr());
                        let s0 = S::sum(a0, _mm256_sign_epi8(qy, q0));
                        let s1 = S::sum(a1, _mm256_sign_epi8(qy, q1));
                        acc[0][k] = _mm256_fmadd_ps(_mm256_set1_ps(d0 * dy), s0, acc[0][k]);
                        acc[1][k] = _mm256_fmadd_ps(_mm256_set1_ps(d1 * dy), s1, acc[1][k]);
                    }
                }
                acc.map(|row| row.map(|v| hsum_float_8(v)))
            }
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        pub(super) unsafe fn $avx2(w: &[$w], a: [&[BlockQ8_0]; 4]) -> [f32; 4] {
            // SAFETY: AVX2 enabled here.
            unsafe { body::<Maddubs>(w, a) }
        }

        #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
        pub(super) unsafe fn $vnni(w: &[$w], a: [&[BlockQ8_0]; 4]) -> [f32; 4] {
            // SAFETY: AVX2 and VNNI enabled here.
            unsafe { body::<Vnni>(w, a) }
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        pub(super) unsafe fn pair_avx2(
            w0: &[$w],
            w1: &[$w],
            a: [&[BlockQ8_0]; 4],
        ) -> [[f32; 4]; 2] {
            // SAFETY: AVX2 enabled here.
            unsafe { pair_body::<Maddubs>(w0, w1, a) }
        }

        #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
        pub(super) unsafe fn pair_vnni(
            w0: &[$w],
            w1: &[$w],
            a: [&[BlockQ8_0]; 4],
        ) -> [[f32; 4]; 2] {
            // SAFETY: AVX2 and VNNI enabled here.
            unsafe { pair_body::<Vnni>(w0, w1, a) }
        }
    };
}

mod q4_0_tile {
    use super::*;
    signed_tile!(tile_avx2, tile_vnni, BlockQ4_0, |x| _mm256_sub_epi8(
        bytes_from_nibbles_32(&x.qs),
        _mm256_set1_epi8(8)
    ));
}
mod q5_0_tile {
    use super::*;
    signed_tile!(tile_avx2, tile_vnni, BlockQ5_0, |x| _mm256_or_si256(
        bytes_from_nibbles_32(&x.qs),
        _mm256_andnot_si256(bytes_from_bits_32(&x.qh), _mm256_set1_epi8(0xF0u8 as i8))
    ));
}
mod q8_0_tile {
    use super::*;
    signed_tile!(tile_avx2, tile_vnni, BlockQ8_0, |x| load32(x.qs.as_ptr()));
}
use q4_0_tile::{pair_avx2 as q4_0_x2x4_avx2, pair_vnni as q4_0_x2x4_vnni};
use q4_0_tile::{tile_avx2 as q4_0_x4_avx2, tile_vnni as q4_0_x4_vnni};
use q5_0_tile::{pair_avx2 as q5_0_x2x4_avx2, pair_vnni as q5_0_x2x4_vnni};
use q5_0_tile::{tile_avx2 as q5_0_x4_avx2, tile_vnni as q5_0_x4_vnni};
use q8_0_tile::{pair_avx2 as q8_0_x2x4_avx2, pair_vnni as q8_0_x2x4_vnni};
use q8_0_tile::{tile_avx2 as q8_0_x4_avx2, tile_vnni as q8_0_x4_vnni};

#[inline(always)]
unsafe fn q4_1_x4_with<S: Us8Sum>(w: &[BlockQ4_1], a: [&[BlockQ8_1]; 4]) -> [f32; 4] {
    // SAFETY: as in `signed_tile!`.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut summs = [0f32; 4];
        for (b, x) in w.iter().enumerate() {
            let (dx, mx) = (h(x.d), h(x.m));
            let qx = bytes_from_nibbles_32(&x.qs);
            for i in 0..4 {
                let y = a[i].get_unchecked(b);
                summs[i] += mx * h(y.s);
                let d = _mm256_set1_ps(dx * h(y.d));
                let qy = load32(y.qs.as_ptr());
                acc[i] = _mm256_fmadd_ps(d, S::sum(qx, qy), acc[i]);
            }
        }
        [
            hsum_float_8(acc[0]) + summs[0],
            hsum_float_8(acc[1]) + summs[1],
            hsum_float_8(acc[2]) + summs[2],
            hsum_float_8(acc[3]) + summs[3],
        ]
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1_x4_avx2(w: &[BlockQ4_1], a: [&[BlockQ8_1]; 4]) -> [f32; 4] {
    // SAFETY: AVX2 enabled here.
    unsafe { q4_1_x4_with::<Maddubs>(w, a) }
}

#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
unsafe fn q4_1_x4_vnni(w: &[BlockQ4_1], a: [&[BlockQ8_1]; 4]) -> [f32; 4] {
    // SAFETY: AVX2 and VNNI enabled here.
    unsafe { q4_1_x4_with::<Vnni>(w, a) }
}
