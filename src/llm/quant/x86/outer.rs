//! The outer-product `Q4_K` and `Q6_K` prefill tiles (see [`super::super::outer`]) for
//! AVX-512 VNNI CPUs (256-bit `vpdpbusd`, so the AVX2 registers and the
//! 32 of AVX-512VL): four weight rows × eight activation rows per call.

use std::arch::x86_64::*;

use super::super::formats::QK_K;
use super::super::outer::{ActX8, WideQ4K, WideQ6K};
use super::has_vnni;

/// The 16-value sub-blocks of a 256-value block.
const SUBS: usize = QK_K / 16;

#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
unsafe fn q6_k_outer_vnni(w: [&[WideQ6K]; 4], a: &[ActX8]) -> [[f32; 8]; 4] {
    // SAFETY: every row is as long as `a` (the wrapper checked); `codes`
    // and `d` are aligned to 32; weight groups are read unaligned.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        for (b, y) in a.iter().enumerate() {
            let x = w.map(|r| r.get_unchecked(b));
            let mut s1 = [_mm256_setzero_si256(); 4];
            for s in 0..SUBS {
                let mut raw = [_mm256_setzero_si256(); 4];
                for g in 4 * s..4 * s + 4 {
                    let codes = _mm256_load_si256(y.codes.as_ptr().add(32 * g) as *const __m256i);
                    for t in 0..4 {
                        let four = (x[t].q.as_ptr().add(4 * g) as *const i32).read_unaligned();
                        raw[t] = _mm256_dpbusd_epi32(raw[t], codes, _mm256_set1_epi32(four));
                    }
                }
                for t in 0..4 {
                    let scale = _mm256_set1_epi32(x[t].scales[s]);
                    s1[t] = _mm256_add_epi32(s1[t], _mm256_mullo_epi32(raw[t], scale));
                }
            }
            let yd = _mm256_load_ps(y.d.as_ptr());
            for t in 0..4 {
                let sum = _mm256_sub_epi32(s1[t], _mm256_set1_epi32(x[t].corr));
                let scaled = _mm256_mul_ps(_mm256_set1_ps(x[t].d), _mm256_cvtepi32_ps(sum));
                acc[t] = _mm256_fmadd_ps(scaled, yd, acc[t]);
            }
        }
        acc.map(|v| {
            let mut out = [0f32; 8];
            _mm256_storeu_ps(out.as_mut_ptr(), v);
            out
        })
    }
}

/// Four widened rows × eight interleaved activation rows (VNNI CPUs only).
pub fn q6_k_outer(w: [&[WideQ6K]; 4], a: &[ActX8]) -> [[f32; 8]; 4] {
    assert!(w.iter().all(|r| r.len() == a.len()), "outer tile lengths");
    debug_assert!(has_vnni());
    // SAFETY: handed out only when `has_vnni()` said yes; lengths checked.
    unsafe { q6_k_outer_vnni(w, a) }
}

#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
unsafe fn q4_k_outer_vnni(w: [&[WideQ4K]; 4], a: &[ActX8]) -> [[f32; 8]; 4] {
    // SAFETY: as in `q6_k_outer_vnni`.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut acc_min = [_mm256_setzero_ps(); 4];
        for (b, y) in a.iter().enumerate() {
            let x = w.map(|r| r.get_unchecked(b));
            let yd = _mm256_load_ps(y.d.as_ptr());
            let d = x.map(|x| _mm256_mul_ps(_mm256_set1_ps(x.d), yd));
            let dmin = x.map(|x| _mm256_mul_ps(_mm256_set1_ps(x.dmin), yd));
            for j in 0..QK_K / 64 {
                // Sub-blocks 2j (low nibbles) and 2j + 1 (high), 32 values each.
                let mut raw = [[_mm256_setzero_si256(); 2]; 4];
                for (h, g0) in [(0, 16 * j), (1, 16 * j + 8)] {
                    for g in g0..g0 + 8 {
                        let codes =
                            _mm256_load_si256(y.codes.as_ptr().add(32 * g) as *const __m256i);
                        for t in 0..4 {
                            let four = (x[t].q.as_ptr().add(4 * g) as *const i32).read_unaligned();
                            raw[t][h] =
                                _mm256_dpbusd_epi32(raw[t][h], codes, _mm256_set1_epi32(four));
                        }
                    }
                }
                let bs_lo = _mm256_load_si256(y.bs[2 * j].as_ptr() as *const __m256i);
                let bs_hi = _mm256_load_si256(y.bs[2 * j + 1].as_ptr() as *const __m256i);
                for t in 0..4 {
                    let sc = |k: usize| _mm256_set1_epi32(x[t].scales[k]);
                    let mn = |k: usize| _mm256_set1_epi32(x[t].mins[k]);
                    let s = _mm256_add_epi32(
                        _mm256_mullo_epi32(raw[t][0], sc(2 * j)),
                        _mm256_mullo_epi32(raw[t][1], sc(2 * j + 1)),
                    );
                    let s = _mm256_sub_epi32(s, _mm256_set1_epi32(x[t].corr[j]));
                    let m = _mm256_add_epi32(
                        _mm256_mullo_epi32(bs_lo, mn(2 * j)),
                        _mm256_mullo_epi32(bs_hi, mn(2 * j + 1)),
                    );
                    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d[t], acc[t]);
                    acc_min[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), dmin[t], acc_min[t]);
                }
            }
        }
        std::array::from_fn(|t| {
            let mut out = [0f32; 8];
            _mm256_storeu_ps(out.as_mut_ptr(), _mm256_sub_ps(acc[t], acc_min[t]));
            out
        })
    }
}

/// Four widened rows × eight interleaved activation rows (VNNI CPUs only).
pub fn q4_k_outer(w: [&[WideQ4K]; 4], a: &[ActX8]) -> [[f32; 8]; 4] {
    assert!(w.iter().all(|r| r.len() == a.len()), "outer tile lengths");
    debug_assert!(has_vnni());
    // SAFETY: handed out only when `has_vnni()` said yes; lengths checked.
    unsafe { q4_k_outer_vnni(w, a) }
}
