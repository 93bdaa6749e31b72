//! Hearth's own quantized matrix kernels: a weight matrix kept in its GGUF
//! block format (memory-mapped, never widened to f32), multiplied by f32
//! activations that are quantized once per call to the block type ggml
//! pairs with it (`Q8_0`, `Q8_1` or `Q8_K`), so the integer arithmetic is
//! llama.cpp's.
//!
//! Kernels: portable Rust for every type ([`dot`]), and AVX2 for the types
//! the shipped models use ([`x86`]), chosen at run time. Rows of the output
//! are split across the compute threads; a batch of activation rows reuses
//! each weight row while it is in cache, so prefill streams the weights once
//! per chunk, not once per token.
//!
//! Must not know about layers or tokens.

pub mod dot;
pub mod formats;
#[cfg(target_arch = "x86_64")]
pub mod x86;

use std::cell::RefCell;
use std::ops::Range;
use std::sync::Arc;

use half::{bf16, f16};
use rayon::prelude::*;

use formats::*;

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
        assert_eq!(x.len(), m * self.cols, "activation shape");
        assert_eq!(out.len(), m * self.rows, "output shape");
        match self.ty {
            QType::F32 => self.run::<f32>(x, m, out, dot::f32_f32),
            QType::F16 => self.run::<f16>(x, m, out, dot::f16_f16),
            QType::BF16 => self.run::<bf16>(x, m, out, dot::bf16_bf16),
            QType::Q4_0 => self.run::<BlockQ4_0>(x, m, out, kernels::q4_0()),
            QType::Q4_1 => self.run::<BlockQ4_1>(x, m, out, kernels::q4_1()),
            QType::Q5_0 => self.run::<BlockQ5_0>(x, m, out, kernels::q5_0()),
            QType::Q5_1 => self.run::<BlockQ5_1>(x, m, out, dot::q5_1),
            QType::Q8_0 => self.run::<BlockQ8_0>(x, m, out, kernels::q8_0()),
            QType::Q2K => self.run::<BlockQ2K>(x, m, out, dot::q2_k),
            QType::Q3K => self.run::<BlockQ3K>(x, m, out, dot::q3_k),
            QType::Q4K => self.run_split::<BlockQ4K>(
                x,
                m,
                out,
                kernels::q4_k(),
                kernels::q4_k_batched(),
                Batching::GroupsOf4,
            ),
            QType::Q5K => self.run::<BlockQ5K>(x, m, out, dot::q5_k),
            QType::Q6K => self.run_split::<BlockQ6K>(
                x,
                m,
                out,
                kernels::q6_k(),
                kernels::q6_k_batched(),
                Batching::AtLeast8,
            ),
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

    fn run<W: WeightBlock>(&self, x: &[f32], m: usize, out: &mut [f32], dot: DotFn<W>) {
        self.run_split::<W>(x, m, out, dot, dot, Batching::GroupsOf4)
    }

    /// Like [`Self::run`], with `batched` for the activation rows that
    /// llama.cpp sends through a matrix-matrix kernel (see [`Batching`])
    /// and `single` for the rest.
    fn run_split<W: WeightBlock>(
        &self,
        x: &[f32],
        m: usize,
        out: &mut [f32],
        single: DotFn<W>,
        batched: DotFn<W>,
        batching: Batching,
    ) {
        let n_batched = batching.batched_rows(m);
        let per_row = self.cols / W::N;
        let acts_per_row = self.cols / <W::Act as ActBlock>::N;
        let weights = self.blocks::<W>();
        let rows = self.rows;
        with_scratch::<W::Act, _>(m * acts_per_row, |acts| {
            for (xr, ar) in x
                .chunks_exact(self.cols)
                .zip(acts.chunks_exact_mut(acts_per_row))
            {
                W::Act::quantize(xr, ar);
            }
            let acts: &[W::Act] = acts;
            let out = SharedOut(out.as_mut_ptr());
            let task = |c: usize, chunk: usize| {
                let out = &out;
                for r in c * chunk..((c + 1) * chunk).min(rows) {
                    let w = &weights[r * per_row..(r + 1) * per_row];
                    prefetch_row(
                        &weights[(r + PREFETCH_ROWS).min(rows - 1) * per_row..][..per_row],
                    );
                    for (i, a) in acts.chunks_exact(acts_per_row).enumerate() {
                        let dot = if i < n_batched { batched } else { single };
                        // SAFETY: each (i, r) is written by exactly one task,
                        // and `out` outlives the loop.
                        unsafe { out.write(i * rows + r, dot(w, a)) };
                    }
                }
            };
            if rayon::current_num_threads() <= 1 {
                // One compute thread: no hand-off to the pool and back.
                task(0, rows);
            } else {
                let chunk = chunk_rows(rows, m);
                (0..rows.div_ceil(chunk))
                    .into_par_iter()
                    .for_each(|c| task(c, chunk));
            }
        });
    }
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
fn chunk_rows(rows: usize, m: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let tasks = threads * 4;
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

/// The output buffer, written by parallel tasks at disjoint indices.
struct SharedOut(*mut f32);

// SAFETY: tasks write disjoint elements (see `run`).
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// # Safety
    /// `i` must be in bounds and written by no other task.
    unsafe fn write(&self, i: usize, v: f32) {
        unsafe { *self.0.add(i) = v };
    }
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

/// The fastest kernel this CPU runs for each type with a SIMD version.
mod kernels {
    use super::dot;
    use super::formats::*;

    macro_rules! pick {
        ($name:ident, $w:ty, $a:ty) => {
            pub fn $name() -> fn(&[$w], &[$a]) -> f32 {
                #[cfg(target_arch = "x86_64")]
                if super::x86::has_avx2() {
                    return super::x86::$name;
                }
                dot::$name
            }
        };
    }

    pick!(q4_0, BlockQ4_0, BlockQ8_0);
    pick!(q4_1, BlockQ4_1, BlockQ8_1);
    pick!(q5_0, BlockQ5_0, BlockQ8_0);
    pick!(q8_0, BlockQ8_0, BlockQ8_0);
    pick!(q4_k, BlockQ4K, BlockQ8K);
    pick!(q4_k_batched, BlockQ4K, BlockQ8K);
    pick!(q6_k, BlockQ6K, BlockQ8K);
    pick!(q6_k_batched, BlockQ6K, BlockQ8K);
}

#[cfg(test)]
mod tests;
