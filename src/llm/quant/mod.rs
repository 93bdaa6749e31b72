//! Hearth's own quantized matrix kernels: a weight matrix kept in its GGUF
//! block format (memory-mapped, never widened to f32), multiplied by f32
//! activations that are quantized once per call to the block type ggml
//! pairs with it (`Q8_0`, `Q8_1` or `Q8_K`), so the integer arithmetic is
//! llama.cpp's.
//!
//! Kernels: portable Rust for every type ([`dot`]); for the types the
//! shipped models use, AVX2 (+ VNNI prefill tiles) in `x86` and NEON (+
//! `sdot`) in `arm`, chosen at run time ([`Isa`]). Rows of the output are
//! split across the compute threads ([`super::pool`]); batches go through
//! four-row tiles that unpack each weight block once per four activation
//! rows, so prefill streams the weights once per chunk, not once per token.
//! Batches of eight rows or more go through wider layouts made per task:
//! [`unpacked`] (`Q4_0`, `Q4_1`, `Q5_0`) and, on VNNI CPUs, [`outer`] (`Q4_K`,
//! `Q6_K`), each bit-identical to the kernels it replaces. The dispatch
//! tables are in `kernels`.
//!
//! Must not know about layers or tokens.

#[cfg(target_arch = "aarch64")]
pub mod arm;
pub mod dot;
pub mod formats;
pub mod outer;
pub mod unpacked;
#[cfg(target_arch = "x86_64")]
pub mod x86;

use std::cell::RefCell;
use std::ops::Range;
use std::sync::Arc;

use half::{bf16, f16};

use super::pool::Disjoint;
use formats::*;
use unpacked::{ActAside, BlockScales, Lanes, Unpacked};

/// The weight types Hearth runs natively (ggml's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
}

impl QType {
    /// The block types of the shipped models (the ones with SIMD kernels).
    pub const SHIPPED: [QType; 6] = [
        QType::Q4_0,
        QType::Q4_1,
        QType::Q5_0,
        QType::Q8_0,
        QType::Q4K,
        QType::Q6K,
    ];

    /// The type of a tensor as candle's GGUF reader names it (`None` for
    /// the activation-only types).
    pub fn from_candle(t: candle_core::quantized::GgmlDType) -> Option<Self> {
        use candle_core::quantized::GgmlDType as G;
        Some(match t {
            G::F32 => Self::F32,
            G::F16 => Self::F16,
            G::BF16 => Self::BF16,
            G::Q4_0 => Self::Q4_0,
            G::Q4_1 => Self::Q4_1,
            G::Q5_0 => Self::Q5_0,
            G::Q5_1 => Self::Q5_1,
            G::Q8_0 => Self::Q8_0,
            G::Q2K => Self::Q2K,
            G::Q3K => Self::Q3K,
            G::Q4K => Self::Q4K,
            G::Q5K => Self::Q5K,
            G::Q6K => Self::Q6K,
            G::Q8_1 | G::Q8K => return None,
        })
    }

    /// Elements per block.
    pub fn block_elems(self) -> usize {
        match self {
            Self::F32 | Self::F16 | Self::BF16 => 1,
            Self::Q4_0 | Self::Q4_1 | Self::Q5_0 | Self::Q5_1 | Self::Q8_0 => 32,
            Self::Q2K | Self::Q3K | Self::Q4K | Self::Q5K | Self::Q6K => QK_K,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        use std::mem::size_of;
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
            Self::Q4_0 => size_of::<BlockQ4_0>(),
            Self::Q4_1 => size_of::<BlockQ4_1>(),
            Self::Q5_0 => size_of::<BlockQ5_0>(),
            Self::Q5_1 => size_of::<BlockQ5_1>(),
            Self::Q8_0 => size_of::<BlockQ8_0>(),
            Self::Q2K => size_of::<BlockQ2K>(),
            Self::Q3K => size_of::<BlockQ3K>(),
            Self::Q4K => size_of::<BlockQ4K>(),
            Self::Q5K => size_of::<BlockQ5K>(),
            Self::Q6K => size_of::<BlockQ6K>(),
        }
    }

    /// Byte offsets of a block's f16 scale fields (`d`, `m`/`dmin`).
    pub fn scale_offsets(self) -> &'static [usize] {
        match self {
            Self::F32 | Self::F16 | Self::BF16 => &[],
            Self::Q4_0 | Self::Q5_0 | Self::Q8_0 => &[0],
            Self::Q4_1 | Self::Q5_1 | Self::Q4K | Self::Q5K => &[0, 2],
            Self::Q2K => &[80, 82],
            Self::Q3K => &[108],
            Self::Q6K => &[208],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::Q4_0 => "Q4_0",
            Self::Q4_1 => "Q4_1",
            Self::Q5_0 => "Q5_0",
            Self::Q5_1 => "Q5_1",
            Self::Q8_0 => "Q8_0",
            Self::Q2K => "Q2_K",
            Self::Q3K => "Q3_K",
            Self::Q4K => "Q4_K",
            Self::Q5K => "Q5_K",
            Self::Q6K => "Q6_K",
        }
    }
}

/// A set of kernels for one instruction set. [`QMatrix::matmul`] uses
/// [`Isa::selected`]; tests and benchmarks run every [`Isa::available`] one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust, any CPU.
    Portable,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// AVX2 plus AVX-512 VNNI (`vpdpbusd`) for the prefill tiles.
    Avx2Vnni,
    /// aarch64 NEON (ARMv8.0: Raspberry Pi 3/4).
    Neon,
    /// aarch64 NEON with the ARMv8.2 `sdot` instruction (Raspberry Pi 5).
    NeonDotprod,
    /// `sdot` plus ARMv8.6 `smmla` (i8mm) two-row prefill tiles.
    NeonI8mm,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx2Vnni => "avx2-vnni",
            Isa::Neon => "neon",
            Isa::NeonDotprod => "neon-dotprod",
            Isa::NeonI8mm => "neon-i8mm",
        }
    }

    /// Every path this CPU can run, slowest first (checked at run time).
    pub fn available() -> &'static [Isa] {
        static AVAILABLE: std::sync::OnceLock<Vec<Isa>> = std::sync::OnceLock::new();
        AVAILABLE.get_or_init(Isa::detect)
    }

    fn detect() -> Vec<Isa> {
        let mut v = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        if x86::has_avx2() {
            v.push(Isa::Avx2);
        }
        #[cfg(target_arch = "x86_64")]
        if x86::has_vnni() {
            v.push(Isa::Avx2Vnni);
        }
        #[cfg(target_arch = "aarch64")]
        {
            // NEON is part of the aarch64 baseline.
            v.push(Isa::Neon);
            if std::arch::is_aarch64_feature_detected!("dotprod") {
                v.push(Isa::NeonDotprod);
                if std::arch::is_aarch64_feature_detected!("i8mm") {
                    v.push(Isa::NeonI8mm);
                }
            }
        }
        v
    }

    /// The path the model runs on: the fastest available, or the one
    /// `HEARTH_KERNELS` names (`portable`, `avx2`, `avx2-vnni`, `neon`,
    /// `neon-dotprod`, `neon-i8mm`)
    /// when this CPU has it.
    pub fn selected() -> Isa {
        static SELECTED: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *SELECTED.get_or_init(|| {
            let available = Isa::available();
            let best = *available.last().unwrap_or(&Isa::Portable);
            match std::env::var("HEARTH_KERNELS") {
                Ok(name) => match available.iter().find(|i| i.name() == name) {
                    Some(&isa) => isa,
                    None => {
                        tracing::warn!(asked = %name, using = best.name(), "HEARTH_KERNELS names no kernel set this CPU runs");
                        best
                    }
                },
                Err(_) => best,
            }
        })
    }
}

/// Bytes shared with their owner (a memory map, or an aligned buffer).
#[derive(Clone)]
pub struct Bytes {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    range: Range<usize>,
}

impl Bytes {
    pub fn new(owner: Arc<dyn AsRef<[u8]> + Send + Sync>, range: Range<usize>) -> Self {
        Self { owner, range }
    }

    /// Copies `data` into an 8-byte aligned buffer of its own.
    pub fn copy_from(data: &[u8]) -> Self {
        let mut words = vec![0u64; data.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..data.len()].copy_from_slice(data);
        let len = data.len();
        Self {
            owner: Arc::new(Aligned(words, len)),
            range: 0..len,
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.owner.as_ref().as_ref()[self.range.clone()]
    }
}

struct Aligned(Vec<u64>, usize);

impl AsRef<[u8]> for Aligned {
    fn as_ref(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.0)[..self.1]
    }
}

/// A dot product of one row of weight blocks with one row of activations.
pub type DotFn<W> = fn(&[W], &[<W as WeightBlock>::Act]) -> f32;

/// One row of weight blocks with four rows of activations.
pub type TileFn<W> = fn(&[W], [&[<W as WeightBlock>::Act]; 4]) -> [f32; 4];

/// Two rows of weight blocks with four rows of activations (`[row][act]`).
pub type PairFn<W> = fn(&[W], &[W], [&[<W as WeightBlock>::Act]; 4]) -> [[f32; 4]; 2];

/// Activation rows multiplied per pass over a task's weight rows (a
/// multiple of 4, the tile height). Eight rows of quants and unpacked
/// asides (74 bytes a block) stay in a 32 KiB L1 up to 3,500 columns while
/// the weight rows stream past them; sixteen spilled to L2 from 900
/// columns (Qwen2.5 0.5B's 896: 4% slower prefill tiles).
const ACT_BLOCK: usize = 8;

/// Why a weight matrix cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum QError {
    #[error("{cols} columns are not a multiple of the {ty} block ({block} values)")]
    Shape {
        ty: &'static str,
        cols: usize,
        block: usize,
    },
    #[error("expected {expected} bytes of {ty} data, found {found}")]
    Size {
        ty: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("{ty} data is not aligned for its blocks")]
    Alignment { ty: &'static str },
}

/// A `[rows, cols]` weight matrix in a ggml block format (row-major: each
/// row is `cols / block_elems` blocks).
#[derive(Clone)]
pub struct QMatrix {
    ty: QType,
    rows: usize,
    cols: usize,
    data: Bytes,
}

impl QMatrix {
    pub fn new(ty: QType, rows: usize, cols: usize, data: Bytes) -> Result<Self, QError> {
        let block = ty.block_elems();
        if !cols.is_multiple_of(block) {
            return Err(QError::Shape {
                ty: ty.name(),
                cols,
                block,
            });
        }
        let expected = rows * cols / block * ty.block_bytes();
        let found = data.as_slice().len();
        if found != expected {
            return Err(QError::Size {
                ty: ty.name(),
                expected,
                found,
            });
        }
        let align = match ty {
            QType::F32 => 4,
            _ => 2,
        };
        if !(data.as_slice().as_ptr() as usize).is_multiple_of(align) {
            return Err(QError::Alignment { ty: ty.name() });
        }
        Ok(Self {
            ty,
            rows,
            cols,
            data,
        })
    }

    pub fn qtype(&self) -> QType {
        self.ty
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn size_in_bytes(&self) -> usize {
        self.data.as_slice().len()
    }

    fn blocks<W: WeightBlock>(&self) -> &[W] {
        // `new` checked size and alignment.
        bytemuck::cast_slice(self.data.as_slice())
    }

    /// `out[i][r] = Σ_c x[i][c] · self[r][c]` for `m` rows of `x`
    /// (`x` is `[m, cols]`, `out` is `[m, rows]`).
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        self.matmul_on(Isa::selected(), x, m, out)
    }

    /// [`Self::matmul`] with the kernels of `isa` (which this CPU must run:
    /// one of [`Isa::available`]).
    pub fn matmul_on(&self, isa: Isa, x: &[f32], m: usize, out: &mut [f32]) {
        Self::matmul_many_on(isa, &[self], x, m, &mut [out]);
    }

    /// Several matrices of one type and width times the same `x`, as one
    /// job: the activations are quantized once and the threads meet once
    /// (fused Q/K/V and gate/up projections). `outs[k]` is `[m, mats[k].rows]`.
    /// Matrices of different types or widths are multiplied one by one.
    pub fn matmul_many(mats: &[&QMatrix], x: &[f32], m: usize, outs: &mut [&mut [f32]]) {
        Self::matmul_many_on(Isa::selected(), mats, x, m, outs)
    }

    fn matmul_many_on(isa: Isa, mats: &[&QMatrix], x: &[f32], m: usize, outs: &mut [&mut [f32]]) {
        assert!(
            Isa::available().contains(&isa),
            "{} kernels on this CPU",
            isa.name()
        );
        assert!(!mats.is_empty() && mats.len() == outs.len() && mats.len() <= MAX_PARTS);
        let first = mats[0];
        if mats
            .iter()
            .any(|w| w.ty != first.ty || w.cols != first.cols)
        {
            for (w, out) in mats.iter().zip(outs.iter_mut()) {
                Self::matmul_many_on(isa, &[w], x, m, &mut [&mut **out]);
            }
            return;
        }
        assert_eq!(x.len(), m * first.cols, "activation shape");
        for (w, out) in mats.iter().zip(outs.iter()) {
            assert_eq!(out.len(), m * w.rows, "output shape");
        }
        let job = Job { mats, x, m, outs };
        match first.ty {
            QType::F32 => job.run::<f32>(dot::f32_f32, None, None),
            QType::F16 => job.run::<f16>(dot::f16_f16, None, None),
            QType::BF16 => job.run::<bf16>(dot::bf16_bf16, None, None),
            QType::Q4_0 => job.run_unpacked::<BlockQ4_0>(
                kernels::q4_0(isa),
                kernels::q4_0_x4(isa),
                kernels::q4_0_x2x4(isa),
                kernels::q4_0_unpacked(isa),
            ),
            QType::Q4_1 => job.run_unpacked::<BlockQ4_1>(
                kernels::q4_1(isa),
                kernels::q4_1_x4(isa),
                kernels::q4_1_x2x4(isa),
                kernels::q4_1_unpacked(isa),
            ),
            QType::Q5_0 => job.run_unpacked::<BlockQ5_0>(
                kernels::q5_0(isa),
                kernels::q5_0_x4(isa),
                kernels::q5_0_x2x4(isa),
                kernels::q5_0_unpacked(isa),
            ),
            QType::Q5_1 => job.run::<BlockQ5_1>(dot::q5_1, None, None),
            QType::Q8_0 => job.run::<BlockQ8_0>(
                kernels::q8_0(isa),
                kernels::q8_0_x4(isa),
                kernels::q8_0_x2x4(isa),
            ),
            QType::Q2K => job.run::<BlockQ2K>(dot::q2_k, None, None),
            QType::Q3K => job.run::<BlockQ3K>(dot::q3_k, None, None),
            QType::Q4K => match kernels::q4_k_outer(isa).filter(|_| m >= 8) {
                Some(tile) => outer::run(
                    job,
                    tile,
                    kernels::q4_k_batched(isa),
                    kernels::q4_k(isa),
                    Batching::GroupsOf4.batched_rows(m),
                ),
                None => job.run_split::<BlockQ4K>(
                    kernels::q4_k(isa),
                    kernels::q4_k_batched(isa),
                    kernels::q4_k_x4(isa),
                    None,
                    None,
                    Batching::GroupsOf4,
                ),
            },
            QType::Q5K => job.run::<BlockQ5K>(dot::q5_k, None, None),
            QType::Q6K => match kernels::q6_k_outer(isa).filter(|_| m >= 8) {
                Some(tile) => {
                    let batched = kernels::q6_k_batched(isa);
                    outer::run(job, tile, batched, batched, m)
                }
                None => job.run_split::<BlockQ6K>(
                    kernels::q6_k(isa),
                    kernels::q6_k_batched(isa),
                    kernels::q6_k_x4(isa),
                    None,
                    None,
                    Batching::AtLeast8,
                ),
            },
        }
    }

    /// Row `r` widened to f32 (an embedding lookup).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        assert!(r < self.rows && out.len() == self.cols);
        match self.ty {
            QType::F32 => self.row_to_f32::<f32>(r, out),
            QType::F16 => self.row_to_f32::<f16>(r, out),
            QType::BF16 => self.row_to_f32::<bf16>(r, out),
            QType::Q4_0 => self.row_to_f32::<BlockQ4_0>(r, out),
            QType::Q4_1 => self.row_to_f32::<BlockQ4_1>(r, out),
            QType::Q5_0 => self.row_to_f32::<BlockQ5_0>(r, out),
            QType::Q5_1 => self.row_to_f32::<BlockQ5_1>(r, out),
            QType::Q8_0 => self.row_to_f32::<BlockQ8_0>(r, out),
            QType::Q2K => self.row_to_f32::<BlockQ2K>(r, out),
            QType::Q3K => self.row_to_f32::<BlockQ3K>(r, out),
            QType::Q4K => self.row_to_f32::<BlockQ4K>(r, out),
            QType::Q5K => self.row_to_f32::<BlockQ5K>(r, out),
            QType::Q6K => self.row_to_f32::<BlockQ6K>(r, out),
        }
    }

    fn row_to_f32<W: WeightBlock>(&self, r: usize, out: &mut [f32]) {
        let per_row = self.cols / W::N;
        let row = &self.blocks::<W>()[r * per_row..(r + 1) * per_row];
        for (b, o) in row.iter().zip(out.chunks_exact_mut(W::N)) {
            b.dequantize(o);
        }
    }
}

/// Most matrices one [`QMatrix::matmul_many`] call fuses (Q, K, V).
const MAX_PARTS: usize = 3;

/// One fused product: matrices sharing the input `x` (`[m, cols]`).
struct Job<'a, 'o> {
    mats: &'a [&'a QMatrix],
    x: &'a [f32],
    m: usize,
    outs: &'a mut [&'o mut [f32]],
}

impl Job<'_, '_> {
    fn run<W: WeightBlock>(self, dot: DotFn<W>, tile: Option<TileFn<W>>, pair: Option<PairFn<W>>) {
        self.run_unpacked::<W>(dot, tile, pair, None)
    }

    /// [`Self::run`] with unpacked prefill tiles when the path has them.
    fn run_unpacked<W: WeightBlock>(
        self,
        dot: DotFn<W>,
        tile: Option<TileFn<W>>,
        pair: Option<PairFn<W>>,
        unpacked: Option<Unpacked<W>>,
    ) {
        self.run_split::<W>(dot, dot, tile, pair, unpacked, Batching::GroupsOf4)
    }

    /// Like [`Self::run`], with `batched` for the activation rows that
    /// llama.cpp sends through a matrix-matrix kernel (see [`Batching`])
    /// and `single` for the rest; `tile`, when the path has one, computes
    /// four batched rows at once with `batched`'s results, and `pair`
    /// (with `tile`) two weight rows at once; `unpacked`, for a batch of
    /// [`UNPACK_FROM`] rows or more, does what `pair` does over weights
    /// unpacked once per task (the same sums: see [`unpacked`]).
    fn run_split<W: WeightBlock>(
        self,
        single: DotFn<W>,
        batched: DotFn<W>,
        tile: Option<TileFn<W>>,
        pair: Option<PairFn<W>>,
        unpacked: Option<Unpacked<W>>,
        batching: Batching,
    ) {
        let Job { mats, x, m, outs } = self;
        let cols = mats[0].cols;
        let n_batched = batching.batched_rows(m);
        let per_row = cols / W::N;
        let acts_per_row = cols / <W::Act as ActBlock>::N;
        let pool = super::pool::Pool::global();
        let tasks = Tasks::<W>::new(mats, outs, m, pool.threads(), 1);
        let n_tiled = if tile.is_some() {
            n_batched - n_batched % 4
        } else {
            0
        };
        let unpacked = unpacked.filter(|_| tile.is_some() && n_tiled >= UNPACK_FROM);
        // One aside per block of each group of four tiled activation rows.
        let n_asides = if unpacked.is_some() {
            n_tiled / 4 * acts_per_row
        } else {
            0
        };
        with_scratch::<W::Act, _>(m * acts_per_row, |acts| {
            quantize_rows::<W::Act>(x, cols, acts, acts_per_row, pool);
            let acts: &[W::Act] = acts;
            with_asides(n_asides, |asides| {
                if let Some(u) = &unpacked {
                    aside_rows(
                        u,
                        &acts[..n_tiled * acts_per_row],
                        asides,
                        acts_per_row,
                        pool,
                    );
                }
                let asides: &[ActAside] = asides;
                let act = |i: usize| &acts[i * acts_per_row..(i + 1) * acts_per_row];
                // The asides of activation rows `i..i + 4` (`i` a multiple of 4).
                let aside = |i: usize| &asides[i / 4 * acts_per_row..(i / 4 + 1) * acts_per_row];
                let task = |t: usize| {
                    let Some((part, mine)) = tasks.get(t) else {
                        return;
                    };
                    let (weights, rows, out) = (part.weights, part.rows, &part.out);
                    let row = |r: usize| &weights[r * per_row..(r + 1) * per_row];
                    match &unpacked {
                        Some(u) => with_unpacked(mine.len() * per_row, |lanes, scales| {
                            for (k, r) in mine.clone().enumerate() {
                                let at = k * per_row..(k + 1) * per_row;
                                (u.unpack)(row(r), &mut lanes[at.clone()], &mut scales[at]);
                            }
                            let (lanes, scales): (&[Lanes], &[BlockScales]) = (lanes, scales);
                            let urow = |r: usize| {
                                let at = (r - mine.start) * per_row..(r - mine.start + 1) * per_row;
                                (&lanes[at.clone()], &scales[at])
                            };
                            let pair_at = |r: usize, i: usize| {
                                let ((u0, d0), (u1, d1)) = (urow(r), urow(r + 1));
                                let a4 = [act(i), act(i + 1), act(i + 2), act(i + 3)];
                                debug_assert_eq!(i % 4, 0);
                                (u.pair)([u0, u1], [d0, d1], a4, aside(i))
                            };
                            rows_of_task(
                                &mine,
                                m,
                                n_batched,
                                n_tiled,
                                &row,
                                &act,
                                single,
                                batched,
                                tile,
                                Some(&pair_at),
                                out,
                                rows,
                            );
                        }),
                        None => {
                            let packed = pair.map(|pair| {
                                move |r: usize, i: usize| {
                                    pair(
                                        row(r),
                                        row(r + 1),
                                        [act(i), act(i + 1), act(i + 2), act(i + 3)],
                                    )
                                }
                            });
                            let packed = packed
                                .as_ref()
                                .map(|f| f as &dyn Fn(usize, usize) -> [[f32; 4]; 2]);
                            rows_of_task(
                                &mine, m, n_batched, n_tiled, &row, &act, single, batched, tile,
                                packed, out, rows,
                            );
                        }
                    }
                };
                pool.run(tasks.count, &task);
            });
        });
    }
}

/// One task's weight rows `mine` against every activation row: pairs of
/// rows through `pair` (rows `r`, `r + 1` × activation rows `i..i + 4`),
/// a last odd row through `tile`, the rest through the dot products.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn rows_of_task<'w, W: WeightBlock>(
    mine: &Range<usize>,
    m: usize,
    n_batched: usize,
    n_tiled: usize,
    row: &dyn Fn(usize) -> &'w [W],
    act: &dyn Fn(usize) -> &'w [W::Act],
    single: DotFn<W>,
    batched: DotFn<W>,
    tile: Option<TileFn<W>>,
    pair: Option<&dyn Fn(usize, usize) -> [[f32; 4]; 2]>,
    out: &Disjoint<'_, f32>,
    rows: usize,
) {
    // SAFETY (every `out.write` below): each (i, r) is written by exactly
    // one task, and `out` outlives the loop.
    let rest = |r: usize, from: usize, to: usize| {
        for i in from..to {
            let dot = if i < n_batched { batched } else { single };
            // SAFETY: see above.
            unsafe { out.write(i * rows + r, dot(row(r), act(i))) };
        }
    };
    // Activation rows in blocks that stay in cache while this task's
    // weight rows pass over them.
    for a0 in (0..m).step_by(ACT_BLOCK) {
        let a1 = (a0 + ACT_BLOCK).min(m);
        let mut r = mine.start;
        while r < mine.end {
            if a0 == 0 {
                prefetch_row(row((r + PREFETCH_ROWS).min(rows - 1)));
            }
            let acts4 = |i: usize| [act(i), act(i + 1), act(i + 2), act(i + 3)];
            if let (Some(pair), true) = (pair, r + 1 < mine.end && n_tiled > a0) {
                if a0 == 0 {
                    prefetch_row(row((r + 1 + PREFETCH_ROWS).min(rows - 1)));
                }
                let mut i = a0;
                while i + 4 <= a1.min(n_tiled) {
                    let got = pair(r, i);
                    for (dr, vals) in got.into_iter().enumerate() {
                        for (k, v) in vals.into_iter().enumerate() {
                            // SAFETY: see above.
                            unsafe { out.write((i + k) * rows + r + dr, v) };
                        }
                    }
                    i += 4;
                }
                rest(r, i, a1);
                rest(r + 1, i, a1);
                r += 2;
                continue;
            }
            let mut i = a0;
            if let Some(tile) = tile {
                while i + 4 <= a1.min(n_tiled) {
                    let got = tile(row(r), acts4(i));
                    for (k, v) in got.into_iter().enumerate() {
                        // SAFETY: see above.
                        unsafe { out.write((i + k) * rows + r, v) };
                    }
                    i += 4;
                }
            }
            rest(r, i, a1);
            r += 1;
        }
    }
}

/// Batches this long or longer take the unpacked tiles (shorter ones do
/// not repay unpacking the weights).
const UNPACK_FROM: usize = 8;

/// One matrix of a [`Job`]: its rows in tasks of `chunk`, numbered from
/// `first_task`, writing `[m, rows]` at `out`.
struct Part<'a, W> {
    weights: &'a [W],
    rows: usize,
    chunk: usize,
    first_task: usize,
    out: Disjoint<'a, f32>,
}

/// A job's matrices cut into tasks of rows, the task numbers running on
/// across matrices (so one pool run covers the fused Q/K/V or gate/up).
struct Tasks<'a, W> {
    parts: [Option<Part<'a, W>>; MAX_PARTS],
    count: usize,
}

impl<'a, W: WeightBlock> Tasks<'a, W> {
    /// Tasks of [`chunk_rows`] rows, rounded up to a multiple of `align`
    /// (the weight rows a tile takes at once).
    fn new(
        mats: &[&'a QMatrix],
        outs: &'a mut [&mut [f32]],
        m: usize,
        threads: usize,
        align: usize,
    ) -> Self {
        let mut parts: [Option<Part<'a, W>>; MAX_PARTS] = [None, None, None];
        let mut count = 0;
        for (k, (w, out)) in mats.iter().zip(outs.iter_mut()).enumerate() {
            let chunk = chunk_rows(w.rows, m, threads).next_multiple_of(align);
            parts[k] = Some(Part {
                weights: w.blocks::<W>(),
                rows: w.rows,
                chunk,
                first_task: count,
                out: Disjoint::new(out),
            });
            count += w.rows.div_ceil(chunk);
        }
        Self { parts, count }
    }

    /// Task `t`'s matrix and its rows of it.
    fn get(&self, t: usize) -> Option<(&Part<'a, W>, Range<usize>)> {
        let part = self
            .parts
            .iter()
            .flatten()
            .take_while(|p| p.first_task <= t)
            .last()?;
        let c = t - part.first_task;
        Some((part, c * part.chunk..((c + 1) * part.chunk).min(part.rows)))
    }
}

/// Quantizes the `[m, cols]` rows of `x` into `acts`, split across the pool
/// when there are enough rows to pay for it (prefill).
fn quantize_rows<A: ActBlock>(
    x: &[f32],
    cols: usize,
    acts: &mut [A],
    acts_per_row: usize,
    pool: &super::pool::Pool,
) {
    let m = x.len() / cols;
    if m < 16 || pool.threads() <= 1 {
        for (xr, ar) in x
            .chunks_exact(cols)
            .zip(acts.chunks_exact_mut(acts_per_row))
        {
            A::quantize(xr, ar);
        }
        return;
    }
    let out = Disjoint::new(acts);
    let per_task = 8;
    pool.run(m.div_ceil(per_task), &|t| {
        for i in t * per_task..((t + 1) * per_task).min(m) {
            // SAFETY: row `i` of `acts` is written by this task only.
            let ar = unsafe { out.part(i * acts_per_row..(i + 1) * acts_per_row) };
            A::quantize(&x[i * cols..(i + 1) * cols], ar);
        }
    });
}

/// The asides of the unpacked tiles' activation rows (`acts`, a whole
/// number of groups of four rows), two groups per task on the pool
/// (serial on the caller they cost a prefill 5% at one thread, more at
/// two).
fn aside_rows<W: WeightBlock>(
    u: &Unpacked<W>,
    acts: &[W::Act],
    asides: &mut [ActAside],
    acts_per_row: usize,
    pool: &super::pool::Pool,
) {
    let groups_per_task = 2;
    let groups = asides.len() / acts_per_row;
    let out = Disjoint::new(asides);
    let task = |t: usize| {
        for g in t * groups_per_task..((t + 1) * groups_per_task).min(groups) {
            // SAFETY: group `g`'s asides are written by this task only.
            let mine = unsafe { out.part(g * acts_per_row..(g + 1) * acts_per_row) };
            let row = |k: usize| &acts[(4 * g + k) * acts_per_row..(4 * g + k + 1) * acts_per_row];
            let rows = [row(0), row(1), row(2), row(3)];
            for (b, s) in mine.iter_mut().enumerate() {
                *s = (u.aside)(rows.map(|r| &r[b]), u.offset);
            }
        }
    };
    pool.run(groups.div_ceil(groups_per_task), &task);
}

/// Which activation rows of a batch llama.cpp's CPU backend multiplies with
/// a matrix-matrix kernel (whose rounding differs from its dot products).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Batching {
    /// Repacked weights: groups of four rows, the last `m % 4` one by one.
    GroupsOf4,
    /// The tiled K-quant kernel: every row, once there are eight or more.
    AtLeast8,
}

impl Batching {
    fn batched_rows(self, m: usize) -> usize {
        match self {
            Batching::GroupsOf4 if m > 3 => m - m % 4,
            Batching::AtLeast8 if m >= 8 => m,
            _ => 0,
        }
    }
}

/// Rows per parallel task: enough tasks to balance the threads, each big
/// enough that scheduling costs little next to its dot products.
fn chunk_rows(rows: usize, m: usize, threads: usize) -> usize {
    let tasks = threads * 8;
    // At least ~16k multiply-adds' worth of rows per task for single rows.
    let min_rows = (64 / m.max(1)).max(1);
    rows.div_ceil(tasks).max(min_rows)
}

/// How many weight rows ahead the matrix loop asks the CPU to fetch. The
/// hardware prefetcher does not follow row-by-row dot products far enough:
/// fetching four rows ahead made single-thread decode 1.6x faster.
const PREFETCH_ROWS: usize = 4;

/// Hints the CPU to bring `row` into cache.
#[inline(always)]
fn prefetch_row<W: WeightBlock>(row: &[W]) {
    #[cfg(target_arch = "x86_64")]
    {
        let bytes: &[u8] = bytemuck::cast_slice(row);
        for off in (0..bytes.len()).step_by(64) {
            // SAFETY: a prefetch hint on an address inside `row`; it never
            // faults and reads nothing.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    bytes.as_ptr().add(off) as *const i8,
                )
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

thread_local! {
    static SCRATCH: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a zeroed per-thread buffer of `n` blocks, reused across
/// calls so the decode loop does not allocate.
fn with_scratch<A: ActBlock, R>(n: usize, f: impl FnOnce(&mut [A]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        let words = (n * std::mem::size_of::<A>()).div_ceil(8);
        if buf.len() < words {
            buf.resize(words, 0);
        }
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf[..words]);
        let blocks: &mut [A] = bytemuck::cast_slice_mut(&mut bytes[..n * std::mem::size_of::<A>()]);
        blocks.fill(A::zeroed());
        f(blocks)
    })
}

thread_local! {
    static ASIDES: RefCell<Vec<ActAside>> = const { RefCell::new(Vec::new()) };
    static UNPACKED: RefCell<(Vec<Lanes>, Vec<BlockScales>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` on a per-thread buffer of `n` activation asides.
fn with_asides<R>(n: usize, f: impl FnOnce(&mut [ActAside]) -> R) -> R {
    ASIDES.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < n {
            buf.resize(n, <ActAside as bytemuck::Zeroable>::zeroed());
        }
        f(&mut buf[..n])
    })
}

/// Runs `f` on per-thread buffers for `n` unpacked weight blocks.
fn with_unpacked<R>(n: usize, f: impl FnOnce(&mut [Lanes], &mut [BlockScales]) -> R) -> R {
    UNPACKED.with(|cell| {
        let mut buf = cell.borrow_mut();
        let (lanes, scales) = &mut *buf;
        if lanes.len() < n {
            lanes.resize(n, <Lanes as bytemuck::Zeroable>::zeroed());
            scales.resize(n, [0.0; 2]);
        }
        f(&mut lanes[..n], &mut scales[..n])
    })
}

/// The kernel of each type with a SIMD version, for a path.
mod kernels;

#[cfg(test)]
mod tests;
