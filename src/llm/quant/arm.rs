//! aarch64 NEON dot products for the block types the shipped models use.
//!
//! The integer work (unpacking and multiplying the 8-bit values) is NEON;
//! the float accumulation is done in exactly the portable kernels' order
//! ([`super::dot`]), so every result here is bit-identical to the portable
//! one and the model's output does not depend on the board.
//!
//! The legacy types (`Q4_0`, `Q4_1`, `Q5_0`, `Q8_0`) also have four-row
//! tiles for prefill, which unpack each weight block once for four
//! activation rows and give each row the single-row kernel's result.
//!
//! Three sets: the functions at the top level use only ARMv8.0 NEON
//! (`smull`/`sadalp`: Raspberry Pi 3 and 4, Cortex-A53/A72); [`dotprod`]
//! uses ARMv8.2's `sdot` (Pi 5, Cortex-A76) and is handed out only when
//! `is_aarch64_feature_detected!("dotprod")` says so; [`i8mm`] adds
//! ARMv8.6's `smmla` (Cortex-A710/X2, Neoverse N2/V1, Graviton 3) in
//! two-weight-row tiles. `sdot` and `smmla` are emitted by inline assembly
//! because their intrinsics are not stable Rust yet.

use std::arch::aarch64::*;

use super::formats::*;

/// Sixteen signed bytes times sixteen, added into four 32-bit lanes.
trait DotI8 {
    /// # Safety
    /// The CPU must have the instructions the implementation uses.
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t;
}

/// ARMv8.0: widening multiplies, pairwise adds.
struct Mull;

impl DotI8 for Mull {
    #[inline(always)]
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe {
            let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
            let hi = vmull_high_s8(a, b);
            vpadalq_s16(vpadalq_s16(acc, lo), hi)
        }
    }
}

/// `acc += a ⊗ b` for an integer instruction of the form
/// `OP Vacc.4s, Va.16b, Vb.16b` whose intrinsic is not stable Rust.
macro_rules! accumulate_asm {
    ($op:literal, $acc:expr, $a:expr, $b:expr) => {{
        let mut acc: int32x4_t = $acc;
        std::arch::asm!(
            concat!($op, " {acc:v}.4s, {a:v}.16b, {b:v}.16b"),
            acc = inout(vreg) acc,
            a = in(vreg) $a,
            b = in(vreg) $b,
            options(pure, nomem, nostack, preserves_flags)
        );
        acc
    }};
}

/// ARMv8.2 `sdot`.
struct Sdot;

impl DotI8 for Sdot {
    #[inline(always)]
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: only reached from functions compiled with `dotprod`,
        // which are handed out only when the CPU has it.
        unsafe { accumulate_asm!("sdot", acc, a, b) }
    }
}

/// Loads 16 bytes.
#[inline(always)]
unsafe fn load_u8(p: &[u8]) -> uint8x16_t {
    debug_assert!(p.len() >= 16);
    // SAFETY: the caller's slice has at least 16 bytes.
    unsafe { vld1q_u8(p.as_ptr()) }
}

#[inline(always)]
unsafe fn load_i8(p: &[i8]) -> int8x16_t {
    debug_assert!(p.len() >= 16);
    // SAFETY: as above.
    unsafe { vld1q_s8(p.as_ptr()) }
}

/// The low and high nibbles of 16 bytes, as signed bytes.
#[inline(always)]
unsafe fn nibbles(v: uint8x16_t) -> (int8x16_t, int8x16_t) {
    // SAFETY: NEON baseline.
    unsafe {
        let lo = vandq_u8(v, vdupq_n_u8(0x0F));
        let hi = vshrq_n_u8::<4>(v);
        (vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi))
    }
}

/// A 32-value block type whose weights unpack to 32 signed bytes (low 16,
/// high 16), combined with its activation block's scales in the portable
/// kernel's float order.
trait Legacy {
    type W;
    type A;
    /// # Safety
    /// NEON (the aarch64 baseline) only.
    unsafe fn unpack(x: &Self::W) -> (int8x16_t, int8x16_t);
    fn quants(y: &Self::A) -> &[i8; 32];
    /// `sumf` plus this block's contribution, as [`super::dot`] adds it.
    fn add(sumf: f32, sumi: i32, x: &Self::W, y: &Self::A) -> f32;
}

/// One block's integer dot product.
#[inline(always)]
unsafe fn block_sum<D: DotI8>(lo: int8x16_t, hi: int8x16_t, q: &[i8; 32]) -> i32 {
    // SAFETY: 16-byte loads from a 32-byte array; the caller guarantees
    // the instructions `D` uses.
    unsafe {
        let acc = D::dot(vdupq_n_s32(0), lo, load_i8(&q[..16]));
        vaddvq_s32(D::dot(acc, hi, load_i8(&q[16..])))
    }
}

#[inline(always)]
unsafe fn legacy_with<L: Legacy, D: DotI8>(w: &[L::W], a: &[L::A]) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in w.iter().zip(a) {
        // SAFETY: the caller guarantees the instructions `D` uses.
        let sumi = unsafe {
            let (lo, hi) = L::unpack(x);
            block_sum::<D>(lo, hi, L::quants(y))
        };
        sumf = L::add(sumf, sumi, x, y);
    }
    sumf
}

/// One weight row with four activation rows: each block unpacked once,
/// every row's sum in [`legacy_with`]'s order (so bit-identical to it).
#[inline(always)]
unsafe fn legacy_x4_with<L: Legacy, D: DotI8>(w: &[L::W], a: [&[L::A]; 4]) -> [f32; 4] {
    let mut sumf = [0f32; 4];
    for (b, x) in w.iter().enumerate() {
        // SAFETY: as above.
        let (lo, hi) = unsafe { L::unpack(x) };
        for (s, row) in sumf.iter_mut().zip(a) {
            let y = &row[b];
            // SAFETY: as above.
            let sumi = unsafe { block_sum::<D>(lo, hi, L::quants(y)) };
            *s = L::add(*s, sumi, x, y);
        }
    }
    sumf
}

struct Q4_0;

impl Legacy for Q4_0 {
    type W = BlockQ4_0;
    type A = BlockQ8_0;
    #[inline(always)]
    unsafe fn unpack(x: &BlockQ4_0) -> (int8x16_t, int8x16_t) {
        // SAFETY: a 16-byte load from a 16-byte array; NEON baseline.
        unsafe {
            let (lo, hi) = nibbles(load_u8(&x.qs));
            let eight = vdupq_n_s8(8);
            (vsubq_s8(lo, eight), vsubq_s8(hi, eight))
        }
    }
    #[inline(always)]
    fn quants(y: &BlockQ8_0) -> &[i8; 32] {
        &y.qs
    }
    #[inline(always)]
    fn add(sumf: f32, sumi: i32, x: &BlockQ4_0, y: &BlockQ8_0) -> f32 {
        sumf + sumi as f32 * (h2f(x.d) * h2f(y.d))
    }
}

struct Q4_1;

impl Legacy for Q4_1 {
    type W = BlockQ4_1;
    type A = BlockQ8_1;
    #[inline(always)]
    unsafe fn unpack(x: &BlockQ4_1) -> (int8x16_t, int8x16_t) {
        // SAFETY: as for `Q4_0`.
        unsafe { nibbles(load_u8(&x.qs)) }
    }
    #[inline(always)]
    fn quants(y: &BlockQ8_1) -> &[i8; 32] {
        &y.qs
    }
    #[inline(always)]
    fn add(sumf: f32, sumi: i32, x: &BlockQ4_1, y: &BlockQ8_1) -> f32 {
        sumf + ((h2f(x.d) * h2f(y.d)) * sumi as f32 + h2f(x.m) * h2f(y.s))
    }
}

/// 0x10 in each of 16 bytes whose bit is set in `lo` (bytes 0..8) and
/// `hi` (bytes 8..16).
#[inline(always)]
unsafe fn fifth_bits(lo: u8, hi: u8) -> uint8x16_t {
    const BITS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    // SAFETY: NEON baseline; `BITS` has 16 bytes.
    unsafe {
        let v = vcombine_u8(vdup_n_u8(lo), vdup_n_u8(hi));
        let set = vtstq_u8(v, vld1q_u8(BITS.as_ptr()));
        vandq_u8(set, vdupq_n_u8(0x10))
    }
}

struct Q5_0;

impl Legacy for Q5_0 {
    type W = BlockQ5_0;
    type A = BlockQ8_0;
    #[inline(always)]
    unsafe fn unpack(x: &BlockQ5_0) -> (int8x16_t, int8x16_t) {
        // SAFETY: as for `Q4_0`.
        unsafe {
            let v = load_u8(&x.qs);
            let lo = vorrq_u8(vandq_u8(v, vdupq_n_u8(0x0F)), fifth_bits(x.qh[0], x.qh[1]));
            let hi = vorrq_u8(vshrq_n_u8::<4>(v), fifth_bits(x.qh[2], x.qh[3]));
            let sixteen = vdupq_n_s8(16);
            (
                vsubq_s8(vreinterpretq_s8_u8(lo), sixteen),
                vsubq_s8(vreinterpretq_s8_u8(hi), sixteen),
            )
        }
    }
    #[inline(always)]
    fn quants(y: &BlockQ8_0) -> &[i8; 32] {
        &y.qs
    }
    #[inline(always)]
    fn add(sumf: f32, sumi: i32, x: &BlockQ5_0, y: &BlockQ8_0) -> f32 {
        sumf + (h2f(x.d) * h2f(y.d)) * sumi as f32
    }
}

struct Q8_0;

impl Legacy for Q8_0 {
    type W = BlockQ8_0;
    type A = BlockQ8_0;
    #[inline(always)]
    unsafe fn unpack(x: &BlockQ8_0) -> (int8x16_t, int8x16_t) {
        // SAFETY: 16-byte loads from a 32-byte array; NEON baseline.
        unsafe { (load_i8(&x.qs[..16]), load_i8(&x.qs[16..])) }
    }
    #[inline(always)]
    fn quants(y: &BlockQ8_0) -> &[i8; 32] {
        &y.qs
    }
    #[inline(always)]
    fn add(sumf: f32, sumi: i32, x: &BlockQ8_0, y: &BlockQ8_0) -> f32 {
        sumf + sumi as f32 * (h2f(x.d) * h2f(y.d))
    }
}

/// `Q4_K` in the order of [`super::dot::q4_k_with`] (`PER64`: its
/// `Per64` rounding, otherwise `PerSuperBlock`).
#[inline(always)]
unsafe fn q4_k_with<D: DotI8, const PER64: bool>(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
    use super::dot::Q4kRounding;
    let rounding = if PER64 {
        Q4kRounding::Per64
    } else {
        Q4kRounding::PerSuperBlock
    };
    super::dot::q4_k_by(w, a, rounding, |q4, q8| {
        // SAFETY: 16-byte loads inside the 32- and 64-byte slices; the
        // caller guarantees the instructions `D` uses.
        unsafe {
            let (l0, h0) = nibbles(load_u8(&q4[..16]));
            let (l1, h1) = nibbles(load_u8(&q4[16..]));
            let lo = D::dot(vdupq_n_s32(0), l0, load_i8(&q8[..16]));
            let lo = D::dot(lo, l1, load_i8(&q8[16..32]));
            let hi = D::dot(vdupq_n_s32(0), h0, load_i8(&q8[32..48]));
            let hi = D::dot(hi, h1, load_i8(&q8[48..]));
            (vaddvq_s32(lo), vaddvq_s32(hi))
        }
    })
}

/// The 128 signed 6-bit values of half a `Q6_K` block, as eight vectors of
/// sixteen in value order.
#[inline(always)]
unsafe fn q6_k_half(ql: &[u8], qh: &[u8]) -> [int8x16_t; 8] {
    // SAFETY: `ql` has 64 bytes, `qh` 32; NEON baseline.
    unsafe {
        let m4 = vdupq_n_u8(0x0F);
        let m2 = vdupq_n_u8(0x03);
        let l: [uint8x16_t; 4] = std::array::from_fn(|i| load_u8(&ql[16 * i..]));
        let h: [uint8x16_t; 2] = std::array::from_fn(|i| load_u8(&qh[16 * i..]));
        let high = |v: uint8x16_t, shift: i32| -> uint8x16_t {
            let s = match shift {
                0 => v,
                2 => vshrq_n_u8::<2>(v),
                4 => vshrq_n_u8::<4>(v),
                _ => vshrq_n_u8::<6>(v),
            };
            vshlq_n_u8::<4>(vandq_u8(s, m2))
        };
        let v = |q: uint8x16_t, hb: uint8x16_t| {
            vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(q, hb)), vdupq_n_s8(32))
        };
        [
            v(vandq_u8(l[0], m4), high(h[0], 0)),
            v(vandq_u8(l[1], m4), high(h[1], 0)),
            v(vandq_u8(l[2], m4), high(h[0], 2)),
            v(vandq_u8(l[3], m4), high(h[1], 2)),
            v(vshrq_n_u8::<4>(l[0]), high(h[0], 4)),
            v(vshrq_n_u8::<4>(l[1]), high(h[1], 4)),
            v(vshrq_n_u8::<4>(l[2]), high(h[0], 6)),
            v(vshrq_n_u8::<4>(l[3]), high(h[1], 6)),
        ]
    }
}

/// `Q6_K` in the order of [`super::dot::q6_k`]: eight lanes, lane `l`
/// holding the scaled products at positions `≡ l (mod 8)` of a block. Only
/// widening multiplies keep that lane split, so this has no `sdot` form.
#[inline(always)]
unsafe fn q6_k_lanes(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    let mut sums = [0f32; 8];
    for (x, y) in w.iter().zip(a) {
        // SAFETY: slices of the block's fixed-size arrays; NEON baseline.
        let aux32 = unsafe {
            let mut lo = vdupq_n_s32(0);
            let mut hi = vdupq_n_s32(0);
            for n in 0..QK_K / 128 {
                let vals = q6_k_half(&x.ql[64 * n..], &x.qh[32 * n..]);
                for (k, v) in vals.iter().enumerate() {
                    let g = 8 * n + k;
                    let q8 = load_i8(&y.qs[16 * g..]);
                    // Two chunks of eight land on the same eight lanes.
                    let p = vaddq_s16(
                        vmull_s8(vget_low_s8(*v), vget_low_s8(q8)),
                        vmull_high_s8(*v, q8),
                    );
                    let sc = vdup_n_s16(x.scales[g] as i16);
                    lo = vmlal_s16(lo, vget_low_s16(p), sc);
                    hi = vmlal_high_s16(hi, p, vcombine_s16(sc, sc));
                }
            }
            let mut out = [0i32; 8];
            vst1q_s32(out.as_mut_ptr(), lo);
            vst1q_s32(out[4..].as_mut_ptr(), hi);
            out
        };
        let d = h2f(x.d) * y.d;
        for l in 0..8 {
            sums[l] += d * aux32[l] as f32;
        }
    }
    sums.iter().sum()
}

/// `Q6_K` in the order of [`super::dot::q6_k_batched`].
#[inline(always)]
unsafe fn q6_k_batched_with<D: DotI8>(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    let mut acc = 0f32;
    for (x, y) in w.iter().zip(a) {
        // SAFETY: as in `q6_k_lanes`.
        let s1 = unsafe {
            let mut s = 0i32;
            for n in 0..QK_K / 128 {
                let vals = q6_k_half(&x.ql[64 * n..], &x.qh[32 * n..]);
                for (k, v) in vals.iter().enumerate() {
                    let g = 8 * n + k;
                    let p = D::dot(vdupq_n_s32(0), *v, load_i8(&y.qs[16 * g..]));
                    s += x.scales[g] as i32 * vaddvq_s32(p);
                }
            }
            s
        };
        acc = (h2f(x.d) * s1 as f32).mul_add(y.d, acc);
    }
    acc
}

macro_rules! baseline {
    ($name:ident, $body:expr, $w:ty, $a:ty) => {
        pub fn $name(w: &[$w], a: &[$a]) -> f32 {
            // SAFETY: NEON is part of the aarch64 baseline.
            unsafe { $body(w, a) }
        }
    };
}

baseline!(q4_0, legacy_with::<Q4_0, Mull>, BlockQ4_0, BlockQ8_0);
baseline!(q4_1, legacy_with::<Q4_1, Mull>, BlockQ4_1, BlockQ8_1);
baseline!(q5_0, legacy_with::<Q5_0, Mull>, BlockQ5_0, BlockQ8_0);
baseline!(q8_0, legacy_with::<Q8_0, Mull>, BlockQ8_0, BlockQ8_0);
baseline!(q4_k, q4_k_with::<Mull, false>, BlockQ4K, BlockQ8K);
baseline!(q4_k_batched, q4_k_with::<Mull, true>, BlockQ4K, BlockQ8K);
baseline!(q6_k, q6_k_lanes, BlockQ6K, BlockQ8K);
baseline!(q6_k_batched, q6_k_batched_with::<Mull>, BlockQ6K, BlockQ8K);

macro_rules! baseline_x4 {
    ($name:ident, $l:ty, $w:ty, $a:ty) => {
        pub fn $name(w: &[$w], a: [&[$a]; 4]) -> [f32; 4] {
            assert!(
                a.iter().all(|r| r.len() >= w.len()),
                "activation rows too short"
            );
            // SAFETY: NEON is part of the aarch64 baseline.
            unsafe { legacy_x4_with::<$l, Mull>(w, a) }
        }
    };
}

baseline_x4!(q4_0_x4, Q4_0, BlockQ4_0, BlockQ8_0);
baseline_x4!(q4_1_x4, Q4_1, BlockQ4_1, BlockQ8_1);
baseline_x4!(q5_0_x4, Q5_0, BlockQ5_0, BlockQ8_0);
baseline_x4!(q8_0_x4, Q8_0, BlockQ8_0, BlockQ8_0);

/// The same kernels with `sdot` (ARMv8.2 dotprod).
pub mod dotprod {
    use super::*;

    macro_rules! with_sdot {
        ($name:ident, $inner:ident, $body:expr, $w:ty, $a:ty) => {
            #[target_feature(enable = "dotprod")]
            unsafe fn $inner(w: &[$w], a: &[$a]) -> f32 {
                // SAFETY: compiled with `dotprod`, which `Sdot` needs.
                unsafe { $body(w, a) }
            }

            pub fn $name(w: &[$w], a: &[$a]) -> f32 {
                debug_assert!(std::arch::is_aarch64_feature_detected!("dotprod"));
                // SAFETY: `Isa::available` lists the dotprod set (the only
                // way to these functions) only when the CPU has it.
                unsafe { $inner(w, a) }
            }
        };
    }

    with_sdot!(
        q4_0,
        q4_0_sdot,
        legacy_with::<Q4_0, Sdot>,
        BlockQ4_0,
        BlockQ8_0
    );
    with_sdot!(
        q4_1,
        q4_1_sdot,
        legacy_with::<Q4_1, Sdot>,
        BlockQ4_1,
        BlockQ8_1
    );
    with_sdot!(
        q5_0,
        q5_0_sdot,
        legacy_with::<Q5_0, Sdot>,
        BlockQ5_0,
        BlockQ8_0
    );
    with_sdot!(
        q8_0,
        q8_0_sdot,
        legacy_with::<Q8_0, Sdot>,
        BlockQ8_0,
        BlockQ8_0
    );

    macro_rules! tile_sdot {
        ($name:ident, $inner:ident, $l:ty, $w:ty, $a:ty) => {
            #[target_feature(enable = "dotprod")]
            unsafe fn $inner(w: &[$w], a: [&[$a]; 4]) -> [f32; 4] {
                // SAFETY: compiled with `dotprod`, which `Sdot` needs.
                unsafe { legacy_x4_with::<$l, Sdot>(w, a) }
            }

            pub fn $name(w: &[$w], a: [&[$a]; 4]) -> [f32; 4] {
                assert!(
                    a.iter().all(|r| r.len() >= w.len()),
                    "activation rows too short"
                );
                // SAFETY: as in `with_sdot!`.
                unsafe { $inner(w, a) }
            }
        };
    }

    tile_sdot!(q4_0_x4, q4_0_x4_sdot, Q4_0, BlockQ4_0, BlockQ8_0);
    tile_sdot!(q4_1_x4, q4_1_x4_sdot, Q4_1, BlockQ4_1, BlockQ8_1);
    tile_sdot!(q5_0_x4, q5_0_x4_sdot, Q5_0, BlockQ5_0, BlockQ8_0);
    tile_sdot!(q8_0_x4, q8_0_x4_sdot, Q8_0, BlockQ8_0, BlockQ8_0);
    with_sdot!(
        q4_k,
        q4_k_sdot,
        q4_k_with::<Sdot, false>,
        BlockQ4K,
        BlockQ8K
    );
    with_sdot!(
        q4_k_batched,
        q4_k_b_sdot,
        q4_k_with::<Sdot, true>,
        BlockQ4K,
        BlockQ8K
    );
    with_sdot!(q6_k, q6_k_sdot, q6_k_lanes, BlockQ6K, BlockQ8K);
    with_sdot!(
        q6_k_batched,
        q6_k_b_sdot,
        q6_k_batched_with::<Sdot>,
        BlockQ6K,
        BlockQ8K
    );
}

/// `smmla`: the 2×8 signed bytes of `a` times the transposed 2×8 of `b`,
/// added into the 2×2 lanes of `acc` (`[a0·b0, a0·b1, a1·b0, a1·b1]`).
struct Smmla;

impl Smmla {
    #[inline(always)]
    unsafe fn mm(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: only reached from functions compiled with `i8mm`, which
        // are handed out only when the CPU has it.
        unsafe { accumulate_asm!("smmla", acc, a, b) }
    }
}

/// Bytes 0..8 of `a` and of `b`, and bytes 8..16 of each: two 2×8 matrices.
#[inline(always)]
unsafe fn interleave(a: int8x16_t, b: int8x16_t) -> (int8x16_t, int8x16_t) {
    // SAFETY: NEON baseline.
    unsafe {
        let (a, b) = (vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b));
        (
            vreinterpretq_s8_s64(vzip1q_s64(a, b)),
            vreinterpretq_s8_s64(vzip2q_s64(a, b)),
        )
    }
}

/// A block's 32 values as four 2×8 matrices pairing two rows.
#[inline(always)]
unsafe fn pair_rows(
    lo0: int8x16_t,
    hi0: int8x16_t,
    lo1: int8x16_t,
    hi1: int8x16_t,
) -> [int8x16_t; 4] {
    // SAFETY: NEON baseline.
    unsafe {
        let (c0, c1) = interleave(lo0, lo1);
        let (c2, c3) = interleave(hi0, hi1);
        [c0, c1, c2, c3]
    }
}

/// Two weight rows with four activation rows (`i8mm`): per block, the
/// four integer sums of a row pair with an activation pair in one 2×2
/// tile, then each pair's float step as [`legacy_with`] takes it (so every
/// result is bit-identical to the single-row kernel).
#[inline(always)]
unsafe fn legacy_pair_with<L: Legacy>(w0: &[L::W], w1: &[L::W], a: [&[L::A]; 4]) -> [[f32; 4]; 2] {
    let mut sumf = [[0f32; 4]; 2];
    for (b, (x0, x1)) in w0.iter().zip(w1).enumerate() {
        // SAFETY: the caller's CPU has `i8mm`; loads stay in the blocks.
        unsafe {
            let (lo0, hi0) = L::unpack(x0);
            let (lo1, hi1) = L::unpack(x1);
            let wp = pair_rows(lo0, hi0, lo1, hi1);
            for i in [0, 2] {
                let (y0, y1) = (&a[i][b], &a[i + 1][b]);
                let (q0, q1) = (L::quants(y0), L::quants(y1));
                let ap = pair_rows(
                    load_i8(&q0[..16]),
                    load_i8(&q0[16..]),
                    load_i8(&q1[..16]),
                    load_i8(&q1[16..]),
                );
                let mut acc = vdupq_n_s32(0);
                for (w, y) in wp.iter().zip(&ap) {
                    acc = Smmla::mm(acc, *w, *y);
                }
                sumf[0][i] = L::add(sumf[0][i], vgetq_lane_s32::<0>(acc), x0, y0);
                sumf[0][i + 1] = L::add(sumf[0][i + 1], vgetq_lane_s32::<1>(acc), x0, y1);
                sumf[1][i] = L::add(sumf[1][i], vgetq_lane_s32::<2>(acc), x1, y0);
                sumf[1][i + 1] = L::add(sumf[1][i + 1], vgetq_lane_s32::<3>(acc), x1, y1);
            }
        }
    }
    sumf
}

/// Two-row tiles with `smmla` (ARMv8.6 i8mm; the single-row kernels and
/// four-row tiles of this set are [`dotprod`]'s).
pub mod i8mm {
    use super::*;

    macro_rules! pair_i8mm {
        ($name:ident, $inner:ident, $l:ty, $w:ty, $a:ty) => {
            #[target_feature(enable = "i8mm")]
            unsafe fn $inner(w0: &[$w], w1: &[$w], a: [&[$a]; 4]) -> [[f32; 4]; 2] {
                // SAFETY: compiled with `i8mm`, which `Smmla` needs.
                unsafe { legacy_pair_with::<$l>(w0, w1, a) }
            }

            pub fn $name(w0: &[$w], w1: &[$w], a: [&[$a]; 4]) -> [[f32; 4]; 2] {
                assert!(
                    w0.len() == w1.len() && a.iter().all(|r| r.len() >= w0.len()),
                    "row lengths"
                );
                // SAFETY: `Isa::available` lists the i8mm set (the only way
                // to these functions) only when the CPU has it.
                unsafe { $inner(w0, w1, a) }
            }
        };
    }

    pair_i8mm!(q4_0_x2x4, q4_0_pair, Q4_0, BlockQ4_0, BlockQ8_0);
    pair_i8mm!(q4_1_x2x4, q4_1_pair, Q4_1, BlockQ4_1, BlockQ8_1);
    pair_i8mm!(q5_0_x2x4, q5_0_pair, Q5_0, BlockQ5_0, BlockQ8_0);
    pair_i8mm!(q8_0_x2x4, q8_0_pair, Q8_0, BlockQ8_0, BlockQ8_0);
}
