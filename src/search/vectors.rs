//! The in-memory vector index: every chunk embedding as an int8 row with
//! one scale, in one contiguous matrix, scanned in full per query (AVX2
//! when the CPU has it, split across the rayon pool). Exact enough to pick
//! candidates; the caller rescores them with the stored f32 vectors.
//!
//! Owns no SQL: it is filled from the store's embedding iterator.

use rayon::prelude::*;

use crate::store::{Store, StoreError};

/// Rows scored per rayon task.
const ROWS_PER_TASK: usize = 4096;

/// The chunk embeddings as int8 rows with one scale each.
#[derive(Clone)]
pub struct VectorIndex {
    ids: Vec<i64>,
    rows: Vec<i8>,
    scales: Vec<f32>,
    dim: usize,
}

impl VectorIndex {
    /// Every stored embedding of dimension `dim`.
    pub fn load(store: &Store, dim: usize) -> Result<Self, StoreError> {
        let mut ix = Self::empty(dim);
        store.for_each_embedding(0, |id, v| ix.push(id, v))?;
        Ok(ix)
    }

    /// Catches up with the store: appends chunks added since the last
    /// load or refresh, and reloads everything when chunks were deleted
    /// (the count then differs). Cheap when nothing changed.
    pub fn refresh(&mut self, store: &Store) -> Result<(), StoreError> {
        let last = self.ids.last().copied().unwrap_or(0);
        store.for_each_embedding(last, |id, v| self.push(id, v))?;
        if store.chunk_count()? != self.ids.len() as u64 {
            *self = Self::load(store, self.dim)?;
        }
        Ok(())
    }

    fn empty(dim: usize) -> Self {
        Self {
            ids: Vec::new(),
            rows: Vec::new(),
            scales: Vec::new(),
            dim,
        }
    }

    fn push(&mut self, id: i64, v: &[f32]) {
        if v.len() == self.dim {
            let (q, s) = quantize(v);
            self.ids.push(id);
            self.rows.extend_from_slice(&q);
            self.scales.push(s);
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The `n` chunk ids most similar to `query` (approximate, int8).
    pub fn nearest(&self, query: &[f32], n: usize) -> Vec<(i64, f32)> {
        let n = n.min(self.ids.len());
        if n == 0 || query.len() != self.dim {
            return Vec::new();
        }
        let (q, qs) = quantize(query);
        let mut scores = vec![0f32; self.ids.len()];
        scores
            .par_chunks_mut(ROWS_PER_TASK)
            .zip(self.rows.par_chunks(ROWS_PER_TASK * self.dim))
            .zip(self.scales.par_chunks(ROWS_PER_TASK))
            .for_each(|((out, rows), scales)| {
                for ((o, row), &s) in out.iter_mut().zip(rows.chunks_exact(self.dim)).zip(scales) {
                    *o = dot_i8(row, &q) as f32 * s * qs;
                }
            });
        let mut scored: Vec<(i64, f32)> = self.ids.iter().copied().zip(scores).collect();
        scored.select_nth_unstable_by(n - 1, |a, b| b.1.total_cmp(&a.1));
        scored.truncate(n);
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored
    }
}

/// Symmetric int8 quantization of one vector (values in -127..=127).
fn quantize(v: &[f32]) -> (Vec<i8>, f32) {
    let amax = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if amax > 0.0 { amax / 127.0 } else { 1.0 };
    (v.iter().map(|x| (x / scale).round() as i8).collect(), scale)
}

/// Σ a·b over two int8 rows of equal length.
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: the CPU has AVX2 (checked above).
        return unsafe { avx2::dot_i8(a, b) };
    }
    dot_i8_portable(a, b)
}

fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    pub fn available() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| is_x86_feature_detected!("avx2"))
    }

    /// 32 bytes at a time: |a| (unsigned) times b with a's sign, pairs
    /// summed to i16 (|a| ≤ 127 keeps that exact), then to i32.
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len()) / 32 * 32;
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_si256();
        let mut i = 0;
        while i < n {
            // SAFETY: i + 32 ≤ n ≤ both lengths; unaligned loads.
            let (va, vb) = unsafe {
                (
                    _mm256_loadu_si256(a.as_ptr().add(i).cast()),
                    _mm256_loadu_si256(b.as_ptr().add(i).cast()),
                )
            };
            let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(va, va), _mm256_sign_epi8(vb, va));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
            i += 32;
        }
        let s = _mm_add_epi32(
            _mm256_castsi256_si128(acc),
            _mm256_extracti128_si256::<1>(acc),
        );
        let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<1>(s));
        _mm_cvtsi128_si32(s) + super::dot_i8_portable(&a[n..], &b[n..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_nearest_ranks_like_cosine() {
        let mut ix = VectorIndex::empty(2);
        ix.push(1, &[1.0, 0.0]);
        ix.push(2, &[0.6, 0.8]);
        ix.push(3, &[0.0, 1.0]);
        let got: Vec<i64> = ix
            .nearest(&[0.0, 1.0], 3)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(got, vec![3, 2, 1]);
    }

    #[test]
    fn simd_dot_equals_portable_dot() {
        let mut x = 1u32;
        let mut rnd = || {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((x >> 24) as u8 as i8).max(-127)
        };
        for len in [0, 1, 31, 32, 33, 384, 1000] {
            let a: Vec<i8> = (0..len).map(|_| rnd()).collect();
            let b: Vec<i8> = (0..len).map(|_| rnd()).collect();
            assert_eq!(dot_i8(&a, &b), dot_i8_portable(&a, &b), "len {len}");
        }
        // Extremes: every product at its largest magnitude.
        let a = vec![127i8; 384];
        let b = vec![-127i8; 384];
        assert_eq!(dot_i8(&a, &b), -127 * 127 * 384);
    }

    #[test]
    fn many_rows_across_tasks() {
        let mut ix = VectorIndex::empty(4);
        for id in 0..(ROWS_PER_TASK as i64 * 2 + 5) {
            let t = id as f32 / 100.0;
            ix.push(id, &[t.cos(), t.sin(), 0.0, 0.0]);
        }
        let best = ix.nearest(&[1.0, 0.0, 0.0, 0.0], 1);
        // cos(t) is largest at t = 0 and again near 2π·k (id ≈ 628, 1257…):
        // all within int8 rounding of 1.
        assert!(best[0].1 > 0.99, "{best:?}");
    }
}
