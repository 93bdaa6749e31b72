//! The key/value cache: one preallocated `[1, n_kv_head, n_ctx, head_dim]`
//! pair per layer, written in place. Truncation is O(1) (entries below the
//! position never change when appending); snapshots copy only the used part.

use candle_core::{DType, Device, Result, Tensor};

struct LayerCache {
    k: Tensor,
    v: Tensor,
}

/// Per-conversation attention state.
pub struct KvCache {
    layers: Vec<LayerCache>,
    len: usize,
    capacity: usize,
}

/// A copy of the first `len` positions of a cache.
pub struct KvSnapshot {
    layers: Vec<(Tensor, Tensor)>,
    len: usize,
}

impl KvSnapshot {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl KvCache {
    pub fn new(
        n_layer: usize,
        n_kv_head: usize,
        head_dim: usize,
        capacity: usize,
        device: &Device,
    ) -> Result<Self> {
        let layers = (0..n_layer)
            .map(|_| {
                Ok(LayerCache {
                    k: Tensor::zeros((1, n_kv_head, capacity, head_dim), DType::F32, device)?,
                    v: Tensor::zeros((1, n_kv_head, capacity, head_dim), DType::F32, device)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            layers,
            len: 0,
            capacity,
        })
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

    /// Forgets everything from position `n` on.
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Writes `k`/`v` (`[1, n_kv_head, seq, head_dim]`) for `layer` at the
    /// current position and returns the filled keys and values from `start`.
    /// The position advances once per forward, through [`KvCache::advance`].
    pub fn append(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
        start: usize,
    ) -> Result<(Tensor, Tensor)> {
        let seq = k.dim(2)?;
        let end = self.len + seq;
        if end > self.capacity {
            candle_core::bail!(
                "context full: {end} positions needed, capacity {}",
                self.capacity
            );
        }
        let c = &self.layers[layer];
        c.k.slice_set(&k.contiguous()?, 2, self.len)?;
        c.v.slice_set(&v.contiguous()?, 2, self.len)?;
        Ok((
            c.k.narrow(2, start, end - start)?,
            c.v.narrow(2, start, end - start)?,
        ))
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }

    pub fn snapshot(&self) -> Result<KvSnapshot> {
        let layers = self
            .layers
            .iter()
            .map(|c| {
                Ok((
                    c.k.narrow(2, 0, self.len)?.copy()?,
                    c.v.narrow(2, 0, self.len)?.copy()?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(KvSnapshot {
            layers,
            len: self.len,
        })
    }

    pub fn restore(&mut self, snap: &KvSnapshot) -> Result<()> {
        if snap.layers.len() != self.layers.len() || snap.len > self.capacity {
            candle_core::bail!("snapshot does not fit this cache");
        }
        for (c, (k, v)) in self.layers.iter().zip(&snap.layers) {
            if snap.len > 0 {
                c.k.slice_set(k, 2, 0)?;
                c.v.slice_set(v, 2, 0)?;
            }
        }
        self.len = snap.len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_truncate_snapshot_restore() -> Result<()> {
        let dev = Device::Cpu;
        let mut cache = KvCache::new(1, 1, 2, 8, &dev)?;
        let a = Tensor::new(&[[[[1f32, 2.], [3., 4.]]]], &dev)?;
        let (k, _) = cache.append(0, &a, &a, 0)?;
        cache.advance(2);
        assert_eq!(k.dims(), &[1, 1, 2, 2]);
        let snap = cache.snapshot()?;
        let b = Tensor::new(&[[[[9f32, 9.]]]], &dev)?;
        cache.append(0, &b, &b, 0)?;
        cache.advance(1);
        assert_eq!(cache.len(), 3);
        cache.truncate(1);
        assert_eq!(cache.len(), 1);
        cache.restore(&snap)?;
        let (k, _) = cache.append(0, &b, &b, 0)?;
        let got: Vec<f32> = k.flatten_all()?.to_vec1()?;
        assert_eq!(got, vec![1., 2., 3., 4., 9., 9.]);
        Ok(())
    }
}
