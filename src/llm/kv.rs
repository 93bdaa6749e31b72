//! The key/value cache: per layer one preallocated f16 buffer for keys and
//! one for values, laid out `[n_kv_head][capacity][head_dim]` so each head's
//! rows are contiguous, written in place. Truncation is O(1) (entries below
//! the position never change when appending); snapshots copy only the used
//! part. f16 is what llama.cpp stores by default: half the memory of f32,
//! and the attention kernels read it in place. Pages beyond the positions
//! written are never touched, so they are not resident.

use half::f16;

struct LayerCache {
    k: Vec<f16>,
    v: Vec<f16>,
}

/// Per-conversation attention state.
pub struct KvCache {
    layers: Vec<LayerCache>,
    n_kv_head: usize,
    head_dim: usize,
    len: usize,
    capacity: usize,
}

/// A copy of the first `len` positions of a cache.
pub struct KvSnapshot {
    /// Per layer: keys then values, each `[n_kv_head][len][head_dim]`.
    layers: Vec<(Vec<f16>, Vec<f16>)>,
    len: usize,
}

impl KvSnapshot {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held by the snapshot.
    pub fn size_in_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|(k, v)| (k.len() + v.len()) * std::mem::size_of::<f16>())
            .sum()
    }
}

/// Why a write into the cache was refused.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("context full: {needed} positions needed, capacity {capacity}")]
    Full { needed: usize, capacity: usize },
    #[error("snapshot does not fit this cache")]
    SnapshotMismatch,
}

/// One layer's keys and values, read-only, as the attention kernels see
/// them.
pub struct LayerView<'a> {
    k: &'a [f16],
    v: &'a [f16],
    capacity: usize,
    head_dim: usize,
}

impl<'a> LayerView<'a> {
    /// Keys of `head` at positions `range`, row after row.
    pub fn keys(&self, head: usize, range: std::ops::Range<usize>) -> &'a [f16] {
        let base = head * self.capacity * self.head_dim;
        &self.k[base + range.start * self.head_dim..base + range.end * self.head_dim]
    }

    /// Values of `head` at positions `range`, row after row.
    pub fn values(&self, head: usize, range: std::ops::Range<usize>) -> &'a [f16] {
        let base = head * self.capacity * self.head_dim;
        &self.v[base + range.start * self.head_dim..base + range.end * self.head_dim]
    }
}

/// `n` zeros that take memory only where written: the allocator hands out
/// fresh zero pages for a zeroed request, and the kernel backs each page
/// only when it is first touched. A cache sized for the whole context
/// (94 MB for SmolLM2 at 4096 tokens) then costs resident memory only for
/// the positions it holds. (`vec![f16::ZERO; n]` would write every page.)
fn untouched_zeros(n: usize) -> Vec<f16> {
    let mut zeros = std::mem::ManuallyDrop::new(vec![0u16; n]);
    // SAFETY: `f16` is `repr(transparent)` over `u16` (same size and
    // alignment, every bit pattern valid), and the allocation moves from
    // the forgotten Vec to the new one.
    unsafe {
        Vec::from_raw_parts(
            zeros.as_mut_ptr().cast::<f16>(),
            zeros.len(),
            zeros.capacity(),
        )
    }
}

impl KvCache {
    pub fn new(n_layer: usize, n_kv_head: usize, head_dim: usize, capacity: usize) -> Self {
        let n = n_kv_head * capacity * head_dim;
        let layers = (0..n_layer)
            .map(|_| LayerCache {
                k: untouched_zeros(n),
                v: untouched_zeros(n),
            })
            .collect();
        Self {
            layers,
            n_kv_head,
            head_dim,
            len: 0,
            capacity,
        }
    }

    /// Positions filled so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes allocated for keys and values.
    pub fn size_in_bytes(&self) -> usize {
        self.layers.len() * 2 * self.n_kv_head * self.capacity * self.head_dim * 2
    }

    /// Forgets everything from position `n` on.
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Writes `seq` positions of keys and values for `layer` at the current
    /// position, rounding to f16. `k` and `v` are token-major,
    /// `[seq][n_kv_head][head_dim]`. The position advances once per
    /// forward, through [`KvCache::advance`].
    pub fn write(&mut self, layer: usize, k: &[f32], v: &[f32], seq: usize) -> Result<(), KvError> {
        let end = self.len + seq;
        if end > self.capacity {
            return Err(KvError::Full {
                needed: end,
                capacity: self.capacity,
            });
        }
        let hd = self.head_dim;
        debug_assert_eq!(k.len(), self.n_kv_head * seq * hd);
        let c = &mut self.layers[layer];
        for t in 0..seq {
            for h in 0..self.n_kv_head {
                let dst = (h * self.capacity + self.len + t) * hd;
                let src = (t * self.n_kv_head + h) * hd;
                for i in 0..hd {
                    c.k[dst + i] = f16::from_f32(k[src + i]);
                    c.v[dst + i] = f16::from_f32(v[src + i]);
                }
            }
        }
        Ok(())
    }

    /// The keys and values of `layer`, for reading.
    pub fn layer(&self, layer: usize) -> LayerView<'_> {
        let c = &self.layers[layer];
        LayerView {
            k: &c.k,
            v: &c.v,
            capacity: self.capacity,
            head_dim: self.head_dim,
        }
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }

    pub fn snapshot(&self) -> KvSnapshot {
        let (hd, len) = (self.head_dim, self.len);
        let part = |buf: &[f16]| -> Vec<f16> {
            (0..self.n_kv_head)
                .flat_map(|h| {
                    let base = h * self.capacity * hd;
                    buf[base..base + len * hd].iter().copied()
                })
                .collect()
        };
        KvSnapshot {
            layers: self
                .layers
                .iter()
                .map(|c| (part(&c.k), part(&c.v)))
                .collect(),
            len,
        }
    }

    pub fn restore(&mut self, snap: &KvSnapshot) -> Result<(), KvError> {
        if snap.layers.len() != self.layers.len() || snap.len > self.capacity {
            return Err(KvError::SnapshotMismatch);
        }
        let (hd, len) = (self.head_dim, snap.len);
        for (c, (k, v)) in self.layers.iter_mut().zip(&snap.layers) {
            for h in 0..self.n_kv_head {
                let dst = h * self.capacity * hd..(h * self.capacity + len) * hd;
                let src = h * len * hd..(h + 1) * len * hd;
                c.k[dst.clone()].copy_from_slice(&k[src.clone()]);
                c.v[dst].copy_from_slice(&v[src]);
            }
        }
        self.len = len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(c: &KvCache, head: usize) -> Vec<f32> {
        c.layer(0)
            .keys(head, 0..c.len())
            .iter()
            .map(|x| x.to_f32())
            .collect()
    }

    #[test]
    fn write_truncate_snapshot_restore() {
        // Two heads, head_dim 2.
        let mut cache = KvCache::new(1, 2, 2, 8);
        // [seq][head][hd]: head 0 rows (1,2),(3,4); head 1 rows (5,6),(7,8).
        let a = [1f32, 2., 5., 6., 3., 4., 7., 8.];
        cache.write(0, &a, &a, 2).unwrap();
        cache.advance(2);
        assert_eq!(keys(&cache, 0), vec![1., 2., 3., 4.]);
        assert_eq!(keys(&cache, 1), vec![5., 6., 7., 8.]);
        let snap = cache.snapshot();
        assert_eq!(snap.len(), 2);
        let b = [9f32, 9., 10., 10.];
        cache.write(0, &b, &b, 1).unwrap();
        cache.advance(1);
        assert_eq!(keys(&cache, 1), vec![5., 6., 7., 8., 10., 10.]);
        cache.truncate(1);
        assert_eq!(cache.len(), 1);
        cache.restore(&snap).unwrap();
        assert_eq!(cache.len(), 2);
        assert_eq!(keys(&cache, 1), vec![5., 6., 7., 8.]);
        assert_eq!(
            cache.layer(0).values(0, 1..2),
            &[f16::from_f32(3.), f16::from_f32(4.)]
        );
    }

    #[test]
    fn refuses_to_overflow() {
        let mut cache = KvCache::new(1, 1, 2, 2);
        let a = [0f32; 6];
        assert!(matches!(
            cache.write(0, &a, &a, 3),
            Err(KvError::Full { needed: 3, .. })
        ));
    }
}
