//! The outer-product `Q6_K` prefill tile (see [`super::super::outer`]) for
//! AVX-512 VNNI CPUs (256-bit `vpdpbusd`, so the AVX2 registers and the
//! 32 of AVX-512VL): four weight rows × eight activation rows per call.

use std::arch::x86_64::*;

use super::super::formats::QK_K;
use super::super::outer::{ActX8, WideQ6K};
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
