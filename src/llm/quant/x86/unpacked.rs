//! The unpacked prefill tiles (see [`super::super::unpacked`]) in AVX2 and
//! AVX-512 VNNI builds: `Q4_0`, `Q5_0` and `Q4_1` rows widened to unsigned
//! bytes once, then two rows × four activation rows per call, the eight
//! scale products of each block computed four to an instruction ahead of
//! the integer sums.

use std::arch::x86_64::*;

use bytemuck::Zeroable;

use super::super::formats::*;
use super::super::unpacked::{ActAside, BlockScales, Lanes, Unpacked};
use super::{bytes_from_bits_32, bytes_from_nibbles_32, h, has_avx2, has_vnni, hsum_float_8};

/// `neg + Σ u·y` per four-byte lane (unsigned `u`, signed `y`): exact, as
/// `u ≤ 31` keeps `vpmaddubsw`'s pairs far from saturating.
trait LaneSum {
    /// # Safety
    /// The CPU must have the implementation's instructions.
    unsafe fn sum(neg: __m256i, u: __m256i, y: __m256i) -> __m256i;
}

struct Maddubs;

impl LaneSum for Maddubs {
    #[inline(always)]
    unsafe fn sum(neg: __m256i, u: __m256i, y: __m256i) -> __m256i {
        // SAFETY: the caller's CPU has AVX2.
        unsafe {
            let pairs = _mm256_maddubs_epi16(u, y);
            _mm256_add_epi32(neg, _mm256_madd_epi16(_mm256_set1_epi16(1), pairs))
        }
    }
}

struct Vnni;

impl LaneSum for Vnni {
    #[inline(always)]
    unsafe fn sum(neg: __m256i, u: __m256i, y: __m256i) -> __m256i {
        // SAFETY: the caller's CPU has AVX-512 VNNI and VL.
        unsafe { _mm256_dpbusd_epi32(neg, u, y) }
    }
}

/// Blocks whose scale products a tile computes ahead of their sums.
const CHUNK: usize = 16;

/// The scale products `d_x · d_y` of blocks `b0..b1` for both weight rows
/// (`[block][row · 4 + act]`): two four-wide multiplies per block where a
/// multiply per row and activation row would otherwise sit between every
/// integer sum and its fused multiply-add. The same f32 products, so the
/// results do not change.
#[inline(always)]
unsafe fn scale_products(
    d: [&[BlockScales]; 2],
    s: &[ActAside],
    b0: usize,
    b1: usize,
    p: &mut [[f32; 8]; CHUNK],
) {
    // SAFETY: `b1 - b0 <= CHUNK` and `b1` is within every slice (the
    // caller's loop); the caller's CPU has AVX2.
    unsafe {
        for b in b0..b1 {
            let dy = _mm_load_ps(s.get_unchecked(b).d.as_ptr());
            let out = p.get_unchecked_mut(b - b0).as_mut_ptr();
            _mm_storeu_ps(out, _mm_mul_ps(_mm_set1_ps(d[0].get_unchecked(b)[0]), dy));
            _mm_storeu_ps(
                out.add(4),
                _mm_mul_ps(_mm_set1_ps(d[1].get_unchecked(b)[0]), dy),
            );
        }
    }
}

/// An activation block's 32 quants.
trait Quants {
    fn qs(&self) -> &[i8; 32];
}

impl Quants for BlockQ8_0 {
    #[inline(always)]
    fn qs(&self) -> &[i8; 32] {
        &self.qs
    }
}

impl Quants for BlockQ8_1 {
    #[inline(always)]
    fn qs(&self) -> &[i8; 32] {
        &self.qs
    }
}

/// Two unpacked rows × four activation rows: per block, each lane's
/// corrected integer sum fused with `d_x·d_y` into its row's accumulator
/// (ggml's order); with `MINS` (`Q4_1`), `m_x·s_y` summed per block too
/// and added after the lanes.
#[inline(always)]
unsafe fn pair_body<S: LaneSum, A: Quants, const MINS: bool>(
    u: [&[Lanes]; 2],
    d: [&[BlockScales]; 2],
    a: [&[A]; 4],
    s: &[ActAside],
) -> [[f32; 4]; 2] {
    // SAFETY: every slice is as long as `u[0]` (checked by the wrapper);
    // `Lanes` and the quants are 32 readable bytes; the caller's CPU has
    // AVX2 and what `S` needs.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 4]; 2];
        let mut mins = [_mm_setzero_ps(); 2];
        let mut p = [[0f32; 8]; CHUNK];
        let n = u[0].len();
        for b0 in (0..n).step_by(CHUNK) {
            let b1 = (b0 + CHUNK).min(n);
            scale_products(d, s, b0, b1, &mut p);
            for b in b0..b1 {
                let u0 = _mm256_load_si256(u[0].get_unchecked(b).0.as_ptr() as *const __m256i);
                let u1 = _mm256_load_si256(u[1].get_unchecked(b).0.as_ptr() as *const __m256i);
                let x = s.get_unchecked(b);
                if MINS {
                    let sy = _mm_load_ps(x.s.as_ptr());
                    for (r, m) in mins.iter_mut().enumerate() {
                        let mx = _mm_set1_ps(d[r].get_unchecked(b)[1]);
                        *m = _mm_add_ps(*m, _mm_mul_ps(mx, sy));
                    }
                }
                let pb = p.get_unchecked(b - b0);
                for k in 0..4 {
                    let qy = a[k].get_unchecked(b).qs();
                    let qy = _mm256_loadu_si256(qy.as_ptr() as *const __m256i);
                    let neg = _mm256_load_si256(x.neg[k].as_ptr() as *const __m256i);
                    let s0 = _mm256_cvtepi32_ps(S::sum(neg, u0, qy));
                    let s1 = _mm256_cvtepi32_ps(S::sum(neg, u1, qy));
                    acc[0][k] = _mm256_fmadd_ps(_mm256_broadcast_ss(&pb[k]), s0, acc[0][k]);
                    acc[1][k] = _mm256_fmadd_ps(_mm256_broadcast_ss(&pb[4 + k]), s1, acc[1][k]);
                }
            }
        }
        let sums = acc.map(|row| row.map(|v| hsum_float_8(v)));
        if !MINS {
            return sums;
        }
        let mut m = [[0f32; 4]; 2];
        _mm_storeu_ps(m[0].as_mut_ptr(), mins[0]);
        _mm_storeu_ps(m[1].as_mut_ptr(), mins[1]);
        std::array::from_fn(|r| std::array::from_fn(|k| sums[r][k] + m[r][k]))
    }
}

fn check_lengths<A>(u: [&[Lanes]; 2], d: [&[BlockScales]; 2], a: [&[A]; 4], s: &[ActAside]) {
    let n = u[0].len();
    assert!(
        u[1].len() == n
            && d.iter().all(|r| r.len() == n)
            && a.iter().all(|r| r.len() == n)
            && s.len() == n,
        "unpacked tile lengths"
    );
}

/// [`pair_body`] for one activation type (and `MINS`) in its two builds
/// (AVX2 `vpmaddubsw`, AVX-512 VNNI `vpdpbusd`) as the checked functions
/// [`Unpacked::pair`] holds.
macro_rules! pair_kernels {
    ($act:ty, $mins:literal, $avx2:ident, $vnni:ident) => {
        pair_kernels!(@one $avx2, $act, $mins, Maddubs, has_avx2, "avx2,fma,f16c");
        pair_kernels!(@one $vnni, $act, $mins, Vnni, has_vnni, "avx2,fma,f16c,avx512vnni,avx512vl");
    };
    (@one $name:ident, $act:ty, $mins:literal, $sum:ty, $has:ident, $features:literal) => {
        fn $name(
            u: [&[Lanes]; 2],
            d: [&[BlockScales]; 2],
            a: [&[$act]; 4],
            s: &[ActAside],
        ) -> [[f32; 4]; 2] {
            #[target_feature(enable = $features)]
            unsafe fn imp(
                u: [&[Lanes]; 2],
                d: [&[BlockScales]; 2],
                a: [&[$act]; 4],
                s: &[ActAside],
            ) -> [[f32; 4]; 2] {
                // SAFETY: the features `$sum` needs are enabled here.
                unsafe { pair_body::<$sum, $act, $mins>(u, d, a, s) }
            }
            debug_assert!($has());
            check_lengths(u, d, a, s);
            // SAFETY: handed out only when `$has()` said yes; lengths checked.
            unsafe { imp(u, d, a, s) }
        }
    };
}

// `Q4_0` and `Q5_0` × `Q8_0` (the offset in the asides' `neg`).
pair_kernels!(BlockQ8_0, false, pair, pair_dp);

/// A row of blocks into unsigned bytes (`$lanes` of block `$x`) and
/// scales, as the checked function [`Unpacked::unpack`] holds.
macro_rules! unpack_kernel {
    ($name:ident, $w:ty, |$x:ident| $lanes:expr, $scales:expr) => {
        fn $name(w: &[$w], u: &mut [Lanes], d: &mut [BlockScales]) {
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn imp(w: &[$w], u: &mut [Lanes], d: &mut [BlockScales]) {
                for (($x, u), d) in w.iter().zip(u.iter_mut()).zip(d.iter_mut()) {
                    // SAFETY: the block's packed bytes in, 32 aligned bytes out.
                    unsafe { _mm256_store_si256(u.0.as_mut_ptr() as *mut __m256i, $lanes) };
                    *d = $scales;
                }
            }
            assert!(u.len() == w.len() && d.len() == w.len(), "unpack lengths");
            debug_assert!(has_avx2());
            // SAFETY: handed out only when `has_avx2()` said yes.
            unsafe { imp(w, u, d) }
        }
    };
}

unpack_kernel!(
    unpack_q4_0,
    BlockQ4_0,
    |x| bytes_from_nibbles_32(&x.qs),
    [h(x.d), 0.0]
);
unpack_kernel!(
    unpack_q5_0,
    BlockQ5_0,
    |x| _mm256_or_si256(
        bytes_from_nibbles_32(&x.qs),
        _mm256_and_si256(bytes_from_bits_32(&x.qh), _mm256_set1_epi8(0x10))
    ),
    [h(x.d), 0.0]
);
unpack_kernel!(
    unpack_q4_1,
    BlockQ4_1,
    |x| bytes_from_nibbles_32(&x.qs),
    [h(x.d), h(x.m)]
);

/// [`ActAside::new`] in four instructions a row: byte pairs summed by
/// `vpmaddubsw` against ones, then pairs of pairs times `−offset` by
/// `vpmaddwd` (exact: |Σ| ≤ 4 · 128 · 16).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn aside_avx2(y: [&BlockQ8_0; 4], offset: i32) -> ActAside {
    let mut s = ActAside::zeroed();
    for (k, y) in y.iter().enumerate() {
        // SAFETY: 32 quant bytes in, eight i32 lanes out.
        unsafe {
            let q = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            let pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
            let neg = _mm256_madd_epi16(pairs, _mm256_set1_epi16(-(offset as i16)));
            _mm256_store_si256(s.neg[k].as_mut_ptr() as *mut __m256i, neg);
        }
        s.d[k] = h(y.d);
    }
    s
}

fn aside(y: [&BlockQ8_0; 4], offset: i32) -> ActAside {
    debug_assert!(has_avx2());
    // SAFETY: handed out only when `has_avx2()` said yes.
    unsafe { aside_avx2(y, offset) }
}

/// `Q4_0` (nibble − 8), with VNNI's `vpdpbusd` when `vnni`.
pub fn q4_0(vnni: bool) -> Unpacked<BlockQ4_0> {
    Unpacked {
        unpack: unpack_q4_0,
        offset: 8,
        aside,
        pair: if vnni { pair_dp } else { pair },
    }
}

/// `Q5_0` (five bits − 16), with VNNI's `vpdpbusd` when `vnni`.
pub fn q5_0(vnni: bool) -> Unpacked<BlockQ5_0> {
    Unpacked {
        unpack: unpack_q5_0,
        offset: 16,
        aside,
        pair: if vnni { pair_dp } else { pair },
    }
}

// `Q4_1` × `Q8_1`: per row pair the float operations of
// [`super::q4_1_x4`] (the lane sums fused with `d_x·d_y`, the mins added
// as `m_x·s_y` per block, in block order, four activation rows per
// instruction), so the results equal that tile's bit for bit.
pair_kernels!(BlockQ8_1, true, q4_1_pair, q4_1_pair_dp);

/// `Q4_1` (nibble, no offset; the min through `Q8_1`'s `s`), with VNNI's
/// `vpdpbusd` when `vnni`.
pub fn q4_1(vnni: bool) -> Unpacked<BlockQ4_1> {
    Unpacked {
        unpack: unpack_q4_1,
        offset: 0,
        aside: ActAside::of_q8_1,
        pair: if vnni { q4_1_pair_dp } else { q4_1_pair },
    }
}
