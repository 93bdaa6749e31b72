//! The element-wise operations of the forward pass on plain f32 rows:
//! RMS norm, rotary embeddings, gated activations (SiLU, GELU) and their
//! tables. Each follows ggml's CPU code closely enough to give the same
//! values (f64 sum in the norm, ggml's angle recurrence for RoPE, its
//! vectorized `expf` for SiLU, its f16 table for GELU): small models
//! amplify ulp-level differences into different greedy tokens.
//!
//! Owns no state beyond lazily built tables; knows nothing of layers.

use std::sync::OnceLock;

use half::f16;

/// `y = x / rms(x) * w`, row by row (`x` and `y` are `[rows, w.len()]`).
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, y: &mut [f32]) {
    let n = w.len();
    for (xr, yr) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
        let sum: f64 = xr.iter().map(|&v| f64::from(v * v)).sum();
        let mean = (sum / n as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((o, &v), &wv) in yr.iter_mut().zip(xr).zip(w) {
            *o = v * scale * wv;
        }
    }
}

/// [`rms_norm`] in place.
pub fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let n = w.len();
    for xr in x.chunks_exact_mut(n) {
        let sum: f64 = xr.iter().map(|&v| f64::from(v * v)).sum();
        let mean = (sum / n as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for (v, &wv) in xr.iter_mut().zip(w) {
            *v = *v * scale * wv;
        }
    }
}

/// `x += y`.
pub fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Which dimensions RoPE rotates together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (llama.cpp's NORM; GGUF llama weights are permuted for it).
    Interleaved,
    /// First half with second half (llama.cpp's NEOX).
    Halves,
}

/// cos/sin tables `[n_ctx][dim / 2]` for one RoPE base, computed once.
pub struct Rope {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
}

impl Rope {
    /// Angles as ggml builds them: `theta = p`, multiplied by
    /// `base^(-2/dim)` once per pair, divided by the pair's frequency
    /// factor (Llama 3 `rope_freqs`) where there is one.
    pub fn new(base: f32, dim: usize, n_ctx: usize, freq_factors: Option<&[f32]>) -> Self {
        let half = dim / 2;
        let theta_scale = base.powf(-2.0 / dim as f32);
        let mut cos = Vec::with_capacity(n_ctx * half);
        let mut sin = Vec::with_capacity(n_ctx * half);
        for p in 0..n_ctx {
            let mut theta = p as f32;
            for i in 0..half {
                let ff = freq_factors.and_then(|f| f.get(i)).copied().unwrap_or(1.0);
                let t = theta / ff;
                cos.push(t.cos());
                sin.push(t.sin());
                theta *= theta_scale;
            }
        }
        Self { cos, sin, half }
    }

    /// Rotates each `dim`-sized head in `x` (`[heads * dim]`) for position `pos`.
    pub fn apply(&self, x: &mut [f32], pos: usize, style: RopeStyle) {
        let (half, dim) = (self.half, 2 * self.half);
        let cos = &self.cos[pos * half..(pos + 1) * half];
        let sin = &self.sin[pos * half..(pos + 1) * half];
        for head in x.chunks_exact_mut(dim) {
            for i in 0..half {
                let (a, b) = match style {
                    RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                    RopeStyle::Halves => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                // The first product fused with the sum, as GCC compiles
                // ggml's `x0*cos - x1*sin`.
                head[a] = x0.mul_add(cos[i], -(x1 * sin[i]));
                head[b] = x0.mul_add(sin[i], x1 * cos[i]);
            }
        }
    }
}

/// `gate = silu(gate) * up`, element-wise (SwiGLU).
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    let done = if crate::llm::quant::x86::has_avx2() {
        // SAFETY: AVX2/FMA were detected.
        unsafe { x86::swiglu(gate, up) }
    } else {
        0
    };
    #[cfg(target_arch = "aarch64")]
    let done = {
        let n = gate.len() / 4 * 4;
        for (g, &u) in gate.iter_mut().zip(up).take(n) {
            *g = silu_v(*g) * u;
        }
        n
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let done = 0;
    for (g, &u) in gate[done..].iter_mut().zip(&up[done..]) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// ggml's vectorized `expf` (max error 1.5 ulp), one lane at a time, for
/// targets where fused multiply-add is an instruction.
#[cfg(target_arch = "aarch64")]
fn exp_v(x: f32) -> f32 {
    let r = f32::from_bits(0x4b40_0000); // 0x1.8p23
    let z = x.mul_add(f32::from_bits(0x3fb8_aa3b), r); // 0x1.715476p+0
    let n = z - r;
    let b = (-n).mul_add(
        f32::from_bits(0x35bf_be8e),                  // 0x1.7f7d1cp-20
        (-n).mul_add(f32::from_bits(0x3f31_7200), x), // 0x1.62e4p-1
    );
    let e = z.to_bits() << 23;
    let k = f32::from_bits(e.wrapping_add(1f32.to_bits()));
    let c = n.abs() > 126.0;
    let u = b * b;
    let j = f32::from_bits(0x3c07_2010) // 0x1.0e4020p-7
        .mul_add(b, f32::from_bits(0x3d2b_9f17)) // 0x1.573e2ep-5
        .mul_add(
            u,
            f32::from_bits(0x3e2a_af33).mul_add(b, f32::from_bits(0x3eff_fedb)), // 0x1.555e66p-3, 0x1.fffdb6p-2
        )
        .mul_add(u, f32::from_bits(0x3f7f_fff6) * b); // 0x1.ffffecp-1
    if !c {
        return j.mul_add(k, k);
    }
    let g = if n <= 0.0 { 0x8200_0000u32 } else { 0 };
    let s1 = f32::from_bits(g.wrapping_add(0x7f00_0000));
    let s2 = f32::from_bits(e.wrapping_sub(g));
    if n.abs() > 192.0 {
        s1 * s1
    } else {
        s2.mul_add(j, s2) * s1
    }
}

#[cfg(target_arch = "aarch64")]
fn silu_v(x: f32) -> f32 {
    x / (1.0 + exp_v(-x))
}

/// Softmax without the division: `row[i] = e^(row[i] - max)` in place,
/// returning the sum, with ggml's vectorized `expf` (its
/// `ggml_vec_soft_max_f32`). The caller divides whatever is smaller.
pub fn softmax_unscaled(row: &mut [f32]) -> f32 {
    let max = row
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return 0.0;
    }
    #[cfg(target_arch = "x86_64")]
    let (done, mut sum) = if crate::llm::quant::x86::has_avx2() {
        // SAFETY: AVX2/FMA were detected.
        unsafe { x86::exp_sub(row, max) }
    } else {
        (0, 0.0)
    };
    #[cfg(target_arch = "aarch64")]
    let (done, mut sum) = {
        let mut sum = 0f64;
        for x in row.iter_mut() {
            *x = exp_v(*x - max);
            sum += f64::from(*x);
        }
        (row.len(), sum)
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let (done, mut sum) = (0, 0f64);
    for x in &mut row[done..] {
        *x = (*x - max).exp();
        sum += f64::from(*x);
    }
    sum as f32
}

/// `gate = gelu(gate) * up` with GELU (tanh form) read from ggml's table:
/// the input rounded to f16 indexes f16 results.
pub fn geglu(gate: &mut [f32], up: &[f32]) {
    let table = gelu_table();
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        *g = if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x * u
        } else {
            f16::from_bits(table[f16::from_f32(x).to_bits() as usize]).to_f32() * u
        };
    }
}

fn gelu_table() -> &'static [u16] {
    static TABLE: OnceLock<Vec<u16>> = OnceLock::new();
    TABLE.get_or_init(|| {
        const SQRT_2_OVER_PI: f32 = 0.797_884_6;
        const COEF_A: f32 = 0.044_715;
        (0..=u16::MAX)
            .map(|bits| {
                let x = f16::from_bits(bits).to_f32();
                // `1 + a*x*x` fused, as GCC compiles ggml_gelu_f32.
                let inner = (COEF_A * x).mul_add(x, 1.0);
                let y = 0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * inner).tanh());
                f16::from_f32(y).to_bits()
            })
            .collect()
    })
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// SwiGLU over whole groups of 8; returns how many elements it did.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn swiglu(gate: &mut [f32], up: &[f32]) -> usize {
        let n = gate.len().min(up.len()) / 8 * 8;
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= both lengths.
            unsafe {
                let x = _mm256_loadu_ps(gate.as_ptr().add(i));
                let u = _mm256_loadu_ps(up.as_ptr().add(i));
                _mm256_storeu_ps(gate.as_mut_ptr().add(i), _mm256_mul_ps(silu(x), u));
            }
        }
        n
    }

    /// `x = e^(x - max)` over whole groups of 8, returning how many it did
    /// and their sum (accumulated in f64, as ggml does).
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_sub(row: &mut [f32], max: f32) -> (usize, f64) {
        let n = row.len() / 8 * 8;
        let m = _mm256_set1_ps(max);
        let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= row.len().
            unsafe {
                let p = row.as_mut_ptr().add(i);
                let e = expf(_mm256_sub_ps(_mm256_loadu_ps(p), m));
                _mm256_storeu_ps(p, e);
                lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
                hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(e)));
            }
        }
        let s = _mm256_add_pd(lo, hi);
        let s = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd::<1>(s));
        (n, _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s))))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn silu(x: __m256) -> __m256 {
        let neg = _mm256_sub_ps(_mm256_setzero_ps(), x);
        _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0), expf(neg)))
    }

    /// ggml's `ggml_v_expf` (AVX2).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn expf(x: __m256) -> __m256 {
        let ps = |bits: u32| _mm256_set1_ps(f32::from_bits(bits));
        let r = ps(0x4b40_0000);
        let z = _mm256_fmadd_ps(x, ps(0x3fb8_aa3b), r);
        let n = _mm256_sub_ps(z, r);
        let b = _mm256_fnmadd_ps(n, ps(0x35bf_be8e), _mm256_fnmadd_ps(n, ps(0x3f31_7200), x));
        let e = _mm256_slli_epi32::<23>(_mm256_castps_si256(z));
        let k = _mm256_castsi256_ps(_mm256_add_epi32(
            e,
            _mm256_castps_si256(_mm256_set1_ps(1.0)),
        ));
        let abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
        let c = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(126.0)));
        let u = _mm256_mul_ps(b, b);
        let j = _mm256_fmadd_ps(
            _mm256_fmadd_ps(
                _mm256_fmadd_ps(ps(0x3c07_2010), b, ps(0x3d2b_9f17)),
                u,
                _mm256_fmadd_ps(ps(0x3e2a_af33), b, ps(0x3eff_fedb)),
            ),
            u,
            _mm256_mul_ps(ps(0x3f7f_fff6), b),
        );
        if _mm256_movemask_ps(_mm256_castsi256_ps(c)) == 0 {
            return _mm256_fmadd_ps(j, k, k);
        }
        let g = _mm256_and_si256(
            _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(n, _mm256_setzero_ps())),
            _mm256_set1_epi32(0x8200_0000u32 as i32),
        );
        let s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f00_0000)));
        let s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
        let d = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(192.0)));
        _mm256_or_ps(
            _mm256_and_ps(_mm256_castsi256_ps(d), _mm256_mul_ps(s1, s1)),
            _mm256_andnot_ps(
                _mm256_castsi256_ps(d),
                _mm256_or_ps(
                    _mm256_and_ps(
                        _mm256_castsi256_ps(c),
                        _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1),
                    ),
                    _mm256_andnot_ps(_mm256_castsi256_ps(c), _mm256_fmadd_ps(k, j, k)),
                ),
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_normalizes_and_scales() {
        let x = [3.0f32, 4.0, 0.0, 0.0];
        let w = [1.0f32, 2.0];
        let mut y = [0f32; 4];
        rms_norm(&x, &w, 1e-6, &mut y);
        // rms of (3, 4) is sqrt(12.5); a zero row stays zero.
        let r = 12.5f32.sqrt();
        assert!((y[0] - 3.0 / r).abs() < 1e-6 && (y[1] - 8.0 / r).abs() < 1e-6);
        assert_eq!(&y[2..], &[0.0, 0.0]);
        let mut z = x;
        rms_norm_inplace(&mut z, &w, 1e-6);
        assert_eq!(z, y);
    }

    #[test]
    fn rope_rotates_pairs_by_position() {
        let rope = Rope::new(10_000.0, 4, 8, None);
        let mut x = [1.0f32, 0.0, 1.0, 0.0];
        rope.apply(&mut x, 0, RopeStyle::Interleaved);
        assert_eq!(x, [1.0, 0.0, 1.0, 0.0]);
        rope.apply(&mut x, 1, RopeStyle::Interleaved);
        // The first pair turns by 1 radian.
        assert!((x[0] - 1f32.cos()).abs() < 1e-6 && (x[1] - 1f32.sin()).abs() < 1e-6);
        let mut y = [1.0f32, 1.0, 0.0, 0.0];
        rope.apply(&mut y, 1, RopeStyle::Halves);
        assert!((y[2] - 1f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn activations_match_their_formulas() {
        let xs: Vec<f32> = (-60..60).map(|i| i as f32 * 0.25).collect();
        let mut g = xs.clone();
        swiglu(&mut g, &vec![2.0; xs.len()]);
        for (x, y) in xs.iter().zip(&g) {
            let want = 2.0 * x / (1.0 + (-x).exp());
            assert!(
                (y - want).abs() <= 1e-5 * want.abs().max(1.0),
                "silu({x}) = {y}, want {want}"
            );
        }
        let mut g = xs.clone();
        geglu(&mut g, &vec![1.0; xs.len()]);
        for (x, y) in xs.iter().zip(&g) {
            let want = 0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh());
            assert!(
                (y - want).abs() <= 2e-3 * want.abs().max(1.0),
                "gelu({x}) = {y}, want {want}"
            );
        }
    }
}
