//! Prefill over weights unpacked once per task: the legacy types whose
//! values are an unsigned byte minus a fixed offset (`Q4_0`: nibble − 8,
//! `Q5_0`: five bits − 16) or plus a per-block min (`Q4_1`: d·nibble + m)
//! are widened to those unsigned bytes and their f32 scales once, then
//! every activation row meets them with one unsigned × signed
//! multiply-add, corrected by the row's precomputed `−offset · Σy` per
//! four-value lane ([`ActAside`]; `Q4_1` adds `m·s` per block instead).
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

use super::formats::{BlockQ8_0, BlockQ8_1, WeightBlock, h2f};

/// One weight block's 32 values as unsigned bytes (value + offset).
#[repr(C, align(32))]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct Lanes(pub [u8; 32]);

/// What the unpacked tiles read of a group of four activation rows at one
/// block besides their quants: per row, minus the weight type's offset
/// times the sum of each four-value lane; the four blocks' scales widened
/// to f32 side by side (so a tile multiplies them by a weight scale in one
/// instruction); and (`Q8_1`) their `s`.
#[repr(C, align(32))]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct ActAside {
    pub neg: [[i32; 8]; 4],
    pub d: [f32; 4],
    pub s: [f32; 4],
}

impl ActAside {
    /// The aside of `y` (one block of each of four rows) for weights
    /// stored as `value + offset`.
    pub fn new(y: [&BlockQ8_0; 4], offset: i32) -> Self {
        let mut neg = [[0i32; 8]; 4];
        for (lanes, y) in neg.iter_mut().zip(y) {
            for (lane, q) in lanes.iter_mut().zip(y.qs.chunks_exact(4)) {
                *lane = -offset * q.iter().map(|&v| i32::from(v)).sum::<i32>();
            }
        }
        Self {
            neg,
            d: y.map(|y| h2f(y.d)),
            s: [0.0; 4],
        }
    }

    /// The aside of four `Q8_1` blocks (weights with no offset: `Q4_1`).
    pub fn of_q8_1(y: [&BlockQ8_1; 4], _offset: i32) -> Self {
        Self {
            neg: [[0; 8]; 4],
            d: y.map(|y| h2f(y.d)),
            s: y.map(|y| h2f(y.s)),
        }
    }
}

/// A weight block's scales widened: `d`, and `m` (`Q4_1`; 0 otherwise).
pub type BlockScales = [f32; 2];

/// Two unpacked weight rows (bytes and scales) against four activation
/// rows and their asides (one per block), `[row][act]`.
pub type UnpackedPairFn<A> =
    fn([&[Lanes]; 2], [&[BlockScales]; 2], [&[A]; 4], &[ActAside]) -> [[f32; 4]; 2];

/// A weight type's unpacked prefill kernels on one instruction set.
pub struct Unpacked<W: WeightBlock> {
    /// A row of blocks into its bytes and scales.
    pub unpack: fn(&[W], &mut [Lanes], &mut [BlockScales]),
    /// This type's offset (what [`ActAside::new`] is given).
    pub offset: i32,
    /// The aside of one block of four activation rows for that offset.
    pub aside: fn([&W::Act; 4], i32) -> ActAside,
    pub pair: UnpackedPairFn<W::Act>,
}

impl<W: WeightBlock> Clone for Unpacked<W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<W: WeightBlock> Copy for Unpacked<W> {}
