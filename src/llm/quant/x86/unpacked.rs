//! The unpacked prefill tiles (see [`super::super::unpacked`]) in AVX2 and
//! AVX-512 VNNI builds: `Q4_0` and `Q5_0` rows widened to unsigned bytes
//! once, then two rows × four activation rows per call.

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

#[inline(always)]
unsafe fn pair_body<S: LaneSum>(
    u: [&[Lanes]; 2],
    d: [&[BlockScales]; 2],
    a: [&[BlockQ8_0]; 4],
    s: [&[ActAside]; 4],
) -> [[f32; 4]; 2] {
    // SAFETY: every slice is as long as `u[0]` (checked by the wrapper);
    // `Lanes` and the quants are 32 readable bytes; the caller's CPU has
    // AVX2 and what `S` needs.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 4]; 2];
        for b in 0..u[0].len() {
            let u0 = _mm256_load_si256(u[0].get_unchecked(b).0.as_ptr() as *const __m256i);
            let u1 = _mm256_load_si256(u[1].get_unchecked(b).0.as_ptr() as *const __m256i);
            let d0 = _mm256_set1_ps(d[0].get_unchecked(b)[0]);
            let d1 = _mm256_set1_ps(d[1].get_unchecked(b)[0]);
            for k in 0..4 {
                let y = a[k].get_unchecked(b);
                let x = s[k].get_unchecked(b);
                let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
                let neg = _mm256_loadu_si256(x.neg.as_ptr() as *const __m256i);
                let dy = _mm256_set1_ps(x.d);
                let s0 = _mm256_cvtepi32_ps(S::sum(neg, u0, qy));
                let s1 = _mm256_cvtepi32_ps(S::sum(neg, u1, qy));
                acc[0][k] = _mm256_fmadd_ps(_mm256_mul_ps(d0, dy), s0, acc[0][k]);
                acc[1][k] = _mm256_fmadd_ps(_mm256_mul_ps(d1, dy), s1, acc[1][k]);
            }
        }
        acc.map(|row| row.map(|v| hsum_float_8(v)))
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pair_avx2(
    u: [&[Lanes]; 2],
    d: [&[BlockScales]; 2],
    a: [&[BlockQ8_0]; 4],
    s: [&[ActAside]; 4],
) -> [[f32; 4]; 2] {
    // SAFETY: AVX2 enabled here.
    unsafe { pair_body::<Maddubs>(u, d, a, s) }
}

#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
unsafe fn pair_vnni(
    u: [&[Lanes]; 2],
    d: [&[BlockScales]; 2],
    a: [&[BlockQ8_0]; 4],
    s: [&[ActAside]; 4],
) -> [[f32; 4]; 2] {
    // SAFETY: AVX2 and VNNI enabled here.
    unsafe { pair_body::<Vnni>(u, d, a, s) }
}

fn check_lengths<A>(u: [&[Lanes]; 2], d: [&[BlockScales]; 2], a: [&[A]; 4], s: [&[ActAside]; 4]) {
    let n = u[0].len();
    assert!(
        u[1].len() == n
            && d.iter().all(|r| r.len() == n)
            && a.iter().all(|r| r.len() == n)
            && s.iter().all(|r| r.len() == n),
        "unpacked tile lengths"
    );
}

fn pair(
    u: [&[Lanes]; 2],
    d: [&[BlockScales]; 2],
    a: [&[BlockQ8_0]; 4],
    s: [&[ActAside]; 4],
) -> [[f32; 4]; 2] {
    debug_assert!(has_avx2());
    check_lengths(u, d, a, s);
    // SAFETY: handed out only when `has_avx2()` said yes; lengths checked.
    unsafe { pair_avx2(u, d, a, s) }
}

fn pair_dp(
    u: [&[Lanes]; 2],
    d: [&[BlockScales]; 2],
    a: [&[BlockQ8_0]; 4],
    s: [&[ActAside]; 4],
) -> [[f32; 4]; 2] {
    debug_assert!(has_vnni());
    check_lengths(u, d, a, s);
    // SAFETY: handed out only when `has_vnni()` said yes; lengths checked.
    unsafe { pair_vnni(u, d, a, s) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_q4_0_avx2(w: &[BlockQ4_0], u: &mut [Lanes], d: &mut [BlockScales]) {
    for ((x, u), d) in w.iter().zip(u.iter_mut()).zip(d.iter_mut()) {
        // SAFETY: 16 packed bytes in, 32 aligned bytes out.
        unsafe {
            let q = bytes_from_nibbles_32(&x.qs);
            _mm256_store_si256(u.0.as_mut_ptr() as *mut __m256i, q);
        }
        *d = [h(x.d), 0.0];
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_q5_0_avx2(w: &[BlockQ5_0], u: &mut [Lanes], d: &mut [BlockScales]) {
    for ((x, u), d) in w.iter().zip(u.iter_mut()).zip(d.iter_mut()) {
        // SAFETY: 16 packed bytes in, 32 aligned bytes out.
        unsafe {
            let hi = _mm256_and_si256(bytes_from_bits_32(&x.qh), _mm256_set1_epi8(0x10));
            let q = _mm256_or_si256(bytes_from_nibbles_32(&x.qs), hi);
            _mm256_store_si256(u.0.as_mut_ptr() as *mut __m256i, q);
        }
        *d = [h(x.d), 0.0];
    }
}

/// [`ActAside::new`] in four instructions: byte pairs summed by
/// `vpmaddubsw` against ones, then pairs of pairs times `−offset` by
/// `vpmaddwd` (exact: |Σ| ≤ 4 · 128 · 16).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn aside_avx2(y: &BlockQ8_0, offset: i32) -> ActAside {
    let mut s = ActAside::zeroed();
    // SAFETY: 32 quant bytes in, eight i32 lanes out.
    unsafe {
        let q = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
        let pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
        let neg = _mm256_madd_epi16(pairs, _mm256_set1_epi16(-(offset as i16)));
        _mm256_storeu_si256(s.neg.as_mut_ptr() as *mut __m256i, neg);
    }
    s.d = h(y.d);
    s
}

fn aside(y: &BlockQ8_0, offset: i32) -> ActAside {
    debug_assert!(has_avx2());
    // SAFETY: handed out only when `has_avx2()` said yes.
    unsafe { aside_avx2(y, offset) }
}

fn unpack_q4_0(w: &[BlockQ4_0], u: &mut [Lanes], d: &mut [BlockScales]) {
    assert!(u.len() == w.len() && d.len() == w.len(), "unpack lengths");
    debug_assert!(has_avx2());
    // SAFETY: handed out only when `has_avx2()` said yes.
    unsafe { unpack_q4_0_avx2(w, u, d) }
}

fn unpack_q5_0(w: &[BlockQ5_0], u: &mut [Lanes], d: &mut [BlockScales]) {
    assert!(u.len() == w.len() && d.len() == w.len(), "unpack lengths");
    debug_assert!(has_avx2());
    // SAFETY: handed out only when `has_avx2()` said yes.
    unsafe { unpack_q5_0_avx2(w, u, d) }
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

/// `Q4_1` × `Q8_1`, two unpacked rows × four activation rows: per row
/// pair the float operations of [`super::q4_1_x4`] (the lane sums fused
/// with `d_x·d_y`, the mins added as `m_x·s_y` per block, in block
/// order), so the results equal that tile's bit for bit.
#[inline(always)]
unsafe fn q4_1_pair_body<S: LaneSum>(
    u: [&[Lanes]; 2],
    d: [&[BlockScales]; 2],
    a: [&[BlockQ8_1]; 4],
    s: [&[ActAside]; 4],
) -> [[f32; 4]; 2] {
    // SAFETY: as in `pair_body`.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 4]; 2];
        let mut summs = [[0f32; 4]; 2];
        let zero = _mm256_setzero_si256();
        for b in 0..u[0].len() {
            let u0 = _mm256_load_si256(u[0].get_unchecked(b).0.as_ptr() as *const __m256i);
            let u1 = _mm256_load_si256(u[1].get_unchecked(b).0.as_ptr() as *const __m256i);
            let [dx0, mx0] = *d[0].get_unchecked(b);
            let [dx1, mx1] = *d[1].get_unchecked(b);
            for k in 0..4 {
                let y = a[k].get_unchecked(b);
                let x = s[k].get_unchecked(b);
                let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
                summs[0][k] += mx0 * x.s;
                summs[1][k] += mx1 * x.s;
                let s0 = _mm256_cvtepi32_ps(S::sum(zero, u0, qy));
                let s1 = _mm256_cvtepi32_ps(S::sum(zero, u1, qy));
                acc[0][k] = _mm256_fmadd_ps(_mm256_set1_ps(dx0 * x.d), s0, acc[0][k]);
                acc[1][k] = _mm256_fmadd_ps(_mm256_set1_ps(dx1 * x.d), s1, acc[1][k]);
            }
        }
        std::array::from_fn(|r| std::array::from_fn(|k| hsum_float_8(acc[r][k]) + summs[r][k]))
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1_pair_avx2(
    u: [&[Lanes]; 2],
    d: [&[BlockScales]; 2],
    a: [&[BlockQ8_1]; 4],
    s: [&[ActAside]; 4],
) -> [[f32; 4]; 2] {
    // SAFETY: AVX2 enabled here.
    unsafe { q4_1_pair_body::<Maddubs>(u, d, a, s) }
}

#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
unsafe fn q4_1_pair_vnni(
    u: [&[Lanes]; 2],
    d: [&[BlockScales]; 2],
    a: [&[BlockQ8_1]; 4],
    s: [&[ActAside]; 4],
) -> [[f32; 4]; 2] {
    // SAFETY: AVX2 and VNNI enabled here.
    unsafe { q4_1_pair_body::<Vnni>(u, d, a, s) }
}

fn q4_1_pair(
    u: [&[Lanes]; 2],
    d: [&[BlockScales]; 2],
    a: [&[BlockQ8_1]; 4],
    s: [&[ActAside]; 4],
) -> [[f32; 4]; 2] {
    debug_assert!(has_avx2());
    check_lengths(u, d, a, s);
    // SAFETY: handed out only when `has_avx2()` said yes; lengths checked.
    unsafe { q4_1_pair_avx2(u, d, a, s) }
}

fn q4_1_pair_dp(
    u: [&[Lanes]; 2],
    d: [&[BlockScales]; 2],
    a: [&[BlockQ8_1]; 4],
    s: [&[ActAside]; 4],
) -> [[f32; 4]; 2] {
    debug_assert!(has_vnni());
    check_lengths(u, d, a, s);
    // SAFETY: handed out only when `has_vnni()` said yes; lengths checked.
    unsafe { q4_1_pair_vnni(u, d, a, s) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_q4_1_avx2(w: &[BlockQ4_1], u: &mut [Lanes], d: &mut [BlockScales]) {
    for ((x, u), d) in w.iter().zip(u.iter_mut()).zip(d.iter_mut()) {
        // SAFETY: 16 packed bytes in, 32 aligned bytes out.
        unsafe {
            let q = bytes_from_nibbles_32(&x.qs);
            _mm256_store_si256(u.0.as_mut_ptr() as *mut __m256i, q);
        }
        *d = [h(x.d), h(x.m)];
    }
}

fn unpack_q4_1(w: &[BlockQ4_1], u: &mut [Lanes], d: &mut [BlockScales]) {
    assert!(u.len() == w.len() && d.len() == w.len(), "unpack lengths");
    debug_assert!(has_avx2());
    // SAFETY: handed out only when `has_avx2()` said yes.
    unsafe { unpack_q4_1_avx2(w, u, d) }
}

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
