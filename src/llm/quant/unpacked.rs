//! Prefill over weights unpacked once per task: the legacy types whose
//! values are an unsigned byte minus a fixed offset (`Q4_0`: nibble − 8,
//! `Q5_0`: five bits − 16) are widened to those unsigned bytes and an f32
//! scale once, then every activation row meets them with one
//! unsigned × signed multiply-add, corrected by the row's precomputed
//! `−offset · Σy` per four-value lane ([`ActAside`]).
//!
//! The corrected lane is the same integer the packed tiles compute with
//! ggml's sign trick (`Σ q·y` over the same four values), and the scale
//! product and the fused multiply-add are the same f32 operations in the
//! same order, so the results equal the packed tiles' bit for bit (and
//! through them llama.cpp's). What changes is the work: the packed tiles
//! unpack each weight block once per four activation rows and apply the
//! sign trick to every pair; here both happen once.
//!
//! Must not know about layers or tokens; the kernels themselves are per
//! instruction set (`x86::unpacked`).

use bytemuck::{Pod, Zeroable};

use super::formats::{BlockQ8_0, WeightBlock, h2f};

/// One weight block's 32 values as unsigned bytes (value + offset).
#[repr(C, align(32))]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct Lanes(pub [u8; 32]);

/// What the unpacked tiles read of a `Q8_0` activation block besides its
/// quants: minus the weight type's offset times the sum of each four-value
/// lane, and the block's scale widened to f32.
#[repr(C, align(16))]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct ActAside {
    pub neg: [i32; 8],
    pub d: f32,
    pad: [f32; 3],
}

impl ActAside {
    /// The aside of `y` for weights stored as `value + offset`.
    pub fn new(y: &BlockQ8_0, offset: i32) -> Self {
        let mut neg = [0i32; 8];
        for (lane, q) in neg.iter_mut().zip(y.qs.chunks_exact(4)) {
            *lane = -offset * q.iter().map(|&v| i32::from(v)).sum::<i32>();
        }
        Self {
            neg,
            d: h2f(y.d),
            pad: [0.0; 3],
        }
    }
}

/// Two unpacked weight rows (bytes and scales) against four activation
/// rows and their asides, `[row][act]`.
pub type UnpackedPairFn<A> =
    fn([&[Lanes]; 2], [&[f32]; 2], [&[A]; 4], [&[ActAside]; 4]) -> [[f32; 4]; 2];

/// A weight type's unpacked prefill kernels on one instruction set.
pub struct Unpacked<W: WeightBlock> {
    /// A row of blocks into its bytes and scales.
    pub unpack: fn(&[W], &mut [Lanes], &mut [f32]),
    /// This type's offset (what [`ActAside::new`] is given).
    pub offset: i32,
    /// An activation block's aside for that offset.
    pub aside: fn(&W::Act, i32) -> ActAside,
    pub pair: UnpackedPairFn<W::Act>,
}

impl<W: WeightBlock> Clone for Unpacked<W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<W: WeightBlock> Copy for Unpacked<W> {}
