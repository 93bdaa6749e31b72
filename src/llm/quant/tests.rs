//! Kernels against a plain reference: every dot product is compared with
//! the f64 dot product of the dequantized weights and the dequantized
//! activations (what the integer arithmetic must equal up to f32 rounding),
//! and every SIMD kernel this CPU runs with the portable one.

use super::*;
use bytemuck::{Pod, Zeroable};

/// A small deterministic generator (no test depends on a seed crate).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }

    fn unit(&mut self) -> f32 {
        self.next() as f32 / (1u64 << 31) as f32 * 2.0 - 1.0
    }
}

/// Random blocks: random bytes, with every f16 field at `f16_offsets`
/// replaced by a small positive or negative scale (random bits could be
/// NaN or huge).
fn random_blocks<B: Pod>(n: usize, f16_offsets: &[usize], rng: &mut Lcg) -> Vec<B> {
    let mut blocks = vec![B::zeroed(); n];
    for b in blocks.iter_mut() {
        let bytes = bytemuck::bytes_of_mut(b);
        for x in bytes.iter_mut() {
            *x = rng.next() as u8;
        }
        for &o in f16_offsets {
            let v = f16::from_f32(rng.unit() * 0.05).to_bits().to_le_bytes();
            bytes[o..o + 2].copy_from_slice(&v);
        }
    }
    blocks
}

fn dequantized<W: WeightBlock>(w: &[W]) -> Vec<f32> {
    let mut out = vec![0f32; w.len() * W::N];
    for (b, o) in w.iter().zip(out.chunks_exact_mut(W::N)) {
        b.dequantize(o);
    }
    out
}

/// The activation as the kernel sees it: quantized, then widened.
fn act_values<A: ActBlock>(acts: &[A]) -> Vec<f32> {
    let any: &dyn std::any::Any = &acts.to_vec();
    if let Some(v) = any.downcast_ref::<Vec<BlockQ8_0>>() {
        v.iter()
            .flat_map(|b| b.qs.map(|q| q as f32 * h2f(b.d)))
            .collect()
    } else if let Some(v) = any.downcast_ref::<Vec<BlockQ8_1>>() {
        v.iter()
            .flat_map(|b| b.qs.map(|q| q as f32 * h2f(b.d)))
            .collect()
    } else if let Some(v) = any.downcast_ref::<Vec<BlockQ8K>>() {
        v.iter()
            .flat_map(|b| b.qs.map(|q| q as f32 * b.d))
            .collect()
    } else if let Some(v) = any.downcast_ref::<Vec<f32>>() {
        v.clone()
    } else if let Some(v) = any.downcast_ref::<Vec<f16>>() {
        v.iter().map(|x| x.to_f32()).collect()
    } else if let Some(v) = any.downcast_ref::<Vec<bf16>>() {
        v.iter().map(|x| x.to_f32()).collect()
    } else {
        unreachable!("unknown activation block")
    }
}

/// Checks `kernels` (portable first) on `rows` random rows of `cols`.
fn check<W: WeightBlock + 'static>(
    name: &str,
    f16_offsets: &[usize],
    cols: usize,
    tolerance: f64,
    kernels: &[DotFn<W>],
) where
    W::Act: 'static,
{
    let mut rng = Lcg(cols as u64 * 31 + name.len() as u64);
    for trial in 0..20 {
        let w: Vec<W> = random_blocks(cols / W::N, f16_offsets, &mut rng);
        let x: Vec<f32> = (0..cols).map(|_| rng.unit() * 3.0).collect();
        let mut acts = vec![W::Act::zeroed(); cols / W::Act::N];
        W::Act::quantize(&x, &mut acts);
        let wf = dequantized(&w);
        let af = act_values(&acts);
        let want: f64 = wf.iter().zip(&af).map(|(a, b)| *a as f64 * *b as f64).sum();
        let scale: f64 = wf
            .iter()
            .zip(&af)
            .map(|(a, b)| (*a as f64 * *b as f64).abs())
            .sum::<f64>()
            .max(1e-6);
        let portable = kernels[0](&w, &acts);
        let err = (portable as f64 - want).abs() / scale;
        assert!(
            err < tolerance,
            "{name} trial {trial}: portable {portable} vs {want} (rel {err:e})"
        );
        for (k, kern) in kernels.iter().enumerate().skip(1) {
            let got = kern(&w, &acts);
            let err = (got as f64 - portable as f64).abs() / scale;
            assert!(
                err < 1e-6,
                "{name} kernel {k} trial {trial}: {got} vs portable {portable}"
            );
        }
    }
}

/// The portable kernel, then the one of every other path this CPU runs.
fn with_simd<W: WeightBlock>(portable: DotFn<W>, simd: fn(Isa) -> DotFn<W>) -> Vec<DotFn<W>> {
    let mut v: Vec<DotFn<W>> = vec![portable];
    for &isa in Isa::available() {
        let picked = simd(isa);
        if picked as usize != portable as usize {
            v.push(picked);
        }
    }
    v
}

/// `Q8_1` carries `s = d·Σq` rounded to f16 (as ggml does), so the
/// `min·s` term of `Q4_1`/`Q5_1` is exact only to f16 precision.
const Q8_1_TOLERANCE: f64 = 2e-3;

#[test]
fn legacy_quants_match_reference() {
    check::<BlockQ4_0>(
        "q4_0",
        &[0],
        256,
        1e-5,
        &with_simd(dot::q4_0, kernels::q4_0),
    );
    check::<BlockQ4_1>(
        "q4_1",
        &[0, 2],
        256,
        Q8_1_TOLERANCE,
        &with_simd(dot::q4_1, kernels::q4_1),
    );
    check::<BlockQ5_0>(
        "q5_0",
        &[0],
        256,
        1e-5,
        &with_simd(dot::q5_0, kernels::q5_0),
    );
    check::<BlockQ5_1>("q5_1", &[0, 2], 256, Q8_1_TOLERANCE, &[dot::q5_1]);
    check::<BlockQ8_0>(
        "q8_0",
        &[0],
        256,
        1e-5,
        &with_simd(dot::q8_0, kernels::q8_0),
    );
}

#[test]
fn k_quants_match_reference() {
    check::<BlockQ2K>("q2_k", &[80, 82], 512, 1e-5, &[dot::q2_k]);
    check::<BlockQ3K>("q3_k", &[108], 512, 1e-5, &[dot::q3_k]);
    check::<BlockQ4K>(
        "q4_k",
        &[0, 2],
        512,
        1e-5,
        &with_simd(dot::q4_k, kernels::q4_k),
    );
    check::<BlockQ4K>(
        "q4_k batched",
        &[0, 2],
        512,
        1e-5,
        &with_simd(dot::q4_k_batched, kernels::q4_k_batched),
    );
    check::<BlockQ5K>("q5_k", &[0, 2], 512, 1e-5, &[dot::q5_k]);
    check::<BlockQ6K>(
        "q6_k",
        &[208],
        512,
        1e-5,
        &with_simd(dot::q6_k, kernels::q6_k),
    );
    check::<BlockQ6K>(
        "q6_k batched",
        &[208],
        512,
        1e-5,
        &with_simd(dot::q6_k_batched, kernels::q6_k_batched),
    );
}

#[test]
fn float_types_match_reference() {
    let mut rng = Lcg(7);
    let w: Vec<f32> = (0..100).map(|_| rng.unit()).collect();
    let x: Vec<f32> = (0..100).map(|_| rng.unit()).collect();
    let want: f32 = w.iter().zip(&x).map(|(a, b)| a * b).sum();
    assert!((dot::f32_f32(&w, &x) - want).abs() < 1e-5);
    let w16: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
    let x16: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
    assert!((dot::f16_f16(&w16, &x16) - want).abs() < 1e-2);
}

#[test]
fn matmul_matches_row_dots_for_batches_and_threads() {
    let mut rng = Lcg(11);
    let (rows, cols) = (37, 64);
    let blocks: Vec<BlockQ8_0> = random_blocks(rows * cols / 32, &[0], &mut rng);
    let m = QMatrix::new(
        QType::Q8_0,
        rows,
        cols,
        Bytes::copy_from(bytemuck::cast_slice(&blocks)),
    )
    .unwrap();
    for batch in [1, 3] {
        let x: Vec<f32> = (0..batch * cols).map(|_| rng.unit()).collect();
        let mut out = vec![0f32; batch * rows];
        m.matmul(&x, batch, &mut out);
        for i in 0..batch {
            let mut acts = vec![BlockQ8_0::zeroed(); cols / 32];
            BlockQ8_0::quantize(&x[i * cols..(i + 1) * cols], &mut acts);
            for r in 0..rows {
                let want = dot::q8_0(&blocks[r * 2..r * 2 + 2], &acts);
                assert!((out[i * rows + r] - want).abs() < 1e-5);
            }
        }
    }
    let mut row = vec![0f32; cols];
    m.dequantize_row(5, &mut row);
    assert_eq!(row, dequantized(&blocks[10..12]));
}

#[test]
fn refuses_wrong_sizes() {
    let data = Bytes::copy_from(&[0u8; 34]);
    assert!(matches!(
        QMatrix::new(QType::Q8_0, 2, 32, data.clone()),
        Err(QError::Size { .. })
    ));
    assert!(matches!(
        QMatrix::new(QType::Q8_0, 1, 16, data),
        Err(QError::Shape { .. })
    ));
}

/// Run by `scripts/test-arm.sh` with the kernel set the emulated CPU must
/// get (`neon` on a Cortex-A72, `neon-dotprod` on a Cortex-A76, `neon-i8mm`
/// on qemu's `max`); without the
/// variable it checks only that the fastest available set is chosen.
#[test]
fn dispatch_picks_the_cpus_kernels() {
    let available = Isa::available();
    assert_eq!(available[0], Isa::Portable);
    if std::env::var_os("HEARTH_KERNELS").is_none() {
        assert_eq!(Some(&Isa::selected()), available.last());
    }
    if let Ok(want) = std::env::var("HEARTH_EXPECT_KERNELS") {
        assert_eq!(Isa::selected().name(), want, "available: {available:?}");
    }
}

/// Every path's matrix product equals the portable one on every type the
/// shipped models use, for a single row and for batches.
#[test]
fn every_path_matches_portable_matmul() {
    let mut rng = Lcg(23);
    for ty in QType::SHIPPED {
        let f16s = ty.scale_offsets();
        let (rows, cols) = (19, 512);
        let n = rows * cols / ty.block_elems();
        let bytes: Vec<u8> = match ty {
            QType::Q4_0 => {
                bytemuck::cast_slice(&random_blocks::<BlockQ4_0>(n, f16s, &mut rng)).to_vec()
            }
            QType::Q4_1 => {
                bytemuck::cast_slice(&random_blocks::<BlockQ4_1>(n, f16s, &mut rng)).to_vec()
            }
            QType::Q5_0 => {
                bytemuck::cast_slice(&random_blocks::<BlockQ5_0>(n, f16s, &mut rng)).to_vec()
            }
            QType::Q8_0 => {
                bytemuck::cast_slice(&random_blocks::<BlockQ8_0>(n, f16s, &mut rng)).to_vec()
            }
            QType::Q4K => {
                bytemuck::cast_slice(&random_blocks::<BlockQ4K>(n, f16s, &mut rng)).to_vec()
            }
            _ => bytemuck::cast_slice(&random_blocks::<BlockQ6K>(n, f16s, &mut rng)).to_vec(),
        };
        let m = QMatrix::new(ty, rows, cols, Bytes::copy_from(&bytes)).unwrap();
        for batch in [1, 5, 9] {
            let x: Vec<f32> = (0..batch * cols).map(|_| rng.unit()).collect();
            let mut want = vec![0f32; batch * rows];
            m.matmul_on(Isa::Portable, &x, batch, &mut want);
            for &isa in Isa::available() {
                let mut got = vec![0f32; batch * rows];
                m.matmul_on(isa, &x, batch, &mut got);
                for (g, w) in got.iter().zip(&want) {
                    // The NEON sets keep the portable float order (tiles
                    // included): the board does not change the output.
                    if matches!(isa, Isa::Neon | Isa::NeonDotprod | Isa::NeonI8mm) {
                        assert_eq!(
                            g.to_bits(),
                            w.to_bits(),
                            "{} on {}: {g} vs portable {w} (batch {batch})",
                            ty.name(),
                            isa.name()
                        );
                    }
                    // Other paths may sum in another order (AVX2 Q6_K does).
                    let tol = 1e-4 * w.abs().max(1.0);
                    assert!(
                        (g - w).abs() <= tol,
                        "{} on {}: {g} vs portable {w} (batch {batch})",
                        ty.name(),
                        isa.name()
                    );
                }
            }
        }
    }
}

/// A two-row pair is the four-row tile run on each row, bit for bit (the
/// reference tests need every path to sum in llama.cpp's order).
#[test]
fn pairs_equal_tiles_bit_for_bit() {
    fn check_pair<W: WeightBlock<Act = BlockQ8_0>>(
        ty: QType,
        tile: fn(Isa) -> Option<TileFn<W>>,
        pair: fn(Isa) -> Option<PairFn<W>>,
        rng: &mut Lcg,
    ) {
        let blocks = 14;
        let (name, f16s) = (ty.name(), ty.scale_offsets());
        let w0 = random_blocks::<W>(blocks, f16s, rng);
        let w1 = random_blocks::<W>(blocks, f16s, rng);
        let acts = four_act_rows::<BlockQ8_0>(blocks, rng);
        let a: [&[BlockQ8_0]; 4] = std::array::from_fn(|i| acts[i].as_slice());
        let mut checked = 0;
        for &isa in Isa::available() {
            let (Some(tile), Some(pair)) = (tile(isa), pair(isa)) else {
                continue;
            };
            let got = pair(&w0, &w1, a);
            let want = [tile(&w0, a), tile(&w1, a)];
            assert_pair_bits(got, want, name, isa);
            checked += 1;
        }
        if Isa::available().contains(&Isa::Avx2) {
            assert!(checked > 0, "{name}: no pair kernel on an AVX2 CPU");
        }
    }
    let mut rng = Lcg(41);
    check_pair::<BlockQ4_0>(QType::Q4_0, kernels::q4_0_x4, kernels::q4_0_x2x4, &mut rng);
    check_pair::<BlockQ5_0>(QType::Q5_0, kernels::q5_0_x4, kernels::q5_0_x2x4, &mut rng);
    check_pair::<BlockQ8_0>(QType::Q8_0, kernels::q8_0_x4, kernels::q8_0_x2x4, &mut rng);
}

/// The unpacked prefill tiles equal the packed pairs bit for bit, and a
/// batch long enough to take them gives the packed tiles' matrix product.
#[test]
fn unpacked_tiles_equal_packed_pairs_bit_for_bit() {
    fn check_unpacked<W: WeightBlock<Act = BlockQ8_0>>(
        ty: QType,
        pair: fn(Isa) -> Option<PairFn<W>>,
        unpacked: fn(Isa) -> Option<Unpacked<W>>,
        rng: &mut Lcg,
    ) {
        let blocks = 37; // more than two of the tiles' chunks of scale products
        let (name, f16s) = (ty.name(), ty.scale_offsets());
        let w = [
            random_blocks::<W>(blocks, f16s, rng),
            random_blocks::<W>(blocks, f16s, rng),
        ];
        let acts = four_act_rows::<BlockQ8_0>(blocks, rng);
        let a: [&[BlockQ8_0]; 4] = std::array::from_fn(|i| acts[i].as_slice());
        let mut checked = 0;
        for &isa in Isa::available() {
            let (Some(pair), Some(u)) = (pair(isa), unpacked(isa)) else {
                continue;
            };
            let (got_pair, asides) = unpacked_pair(&u, &w, &acts);
            for (b, x) in asides.iter().enumerate() {
                let want = ActAside::new(std::array::from_fn(|k| &acts[k][b]), u.offset);
                assert_eq!(x.neg, want.neg, "{name} {isa:?}: aside sums");
                assert_eq!(
                    x.d.map(f32::to_bits),
                    want.d.map(f32::to_bits),
                    "{name} {isa:?}: aside scales"
                );
            }
            let want = pair(&w[0], &w[1], a);
            assert_pair_bits(got_pair, want, name, isa);
            checked += 1;
        }
        if Isa::available().contains(&Isa::Avx2) {
            assert!(checked > 0, "{name}: no unpacked kernel on an AVX2 CPU");
        }
    }
    let mut rng = Lcg(47);
    check_unpacked::<BlockQ4_0>(
        QType::Q4_0,
        kernels::q4_0_x2x4,
        kernels::q4_0_unpacked,
        &mut rng,
    );
    check_unpacked::<BlockQ5_0>(
        QType::Q5_0,
        kernels::q5_0_x2x4,
        kernels::q5_0_unpacked,
        &mut rng,
    );

    // Through `matmul_on`: 16 rows take the unpacked tiles, the same rows
    // one block of four at a time (under `UNPACK_FROM`) take the packed ones.
    for ty in [QType::Q4_0, QType::Q5_0] {
        let (rows, cols) = (7, 256);
        let n = rows * cols / 32;
        let bytes: Vec<u8> = match ty {
            QType::Q4_0 => {
                bytemuck::cast_slice(&random_blocks::<BlockQ4_0>(n, &[0], &mut rng)).to_vec()
            }
            _ => bytemuck::cast_slice(&random_blocks::<BlockQ5_0>(n, &[0], &mut rng)).to_vec(),
        };
        let mat = QMatrix::new(ty, rows, cols, Bytes::copy_from(&bytes)).unwrap();
        let batch = 16;
        let x: Vec<f32> = (0..batch * cols).map(|_| rng.unit()).collect();
        for &isa in Isa::available() {
            let mut all = vec![0f32; batch * rows];
            mat.matmul_on(isa, &x, batch, &mut all);
            for i in (0..batch).step_by(4) {
                let mut four = vec![0f32; 4 * rows];
                mat.matmul_on(isa, &x[i * cols..(i + 4) * cols], 4, &mut four);
                for (g, w) in all[i * rows..(i + 4) * rows].iter().zip(&four) {
                    assert_eq!(g.to_bits(), w.to_bits(), "{} on {}", ty.name(), isa.name());
                }
            }
        }
    }
}

/// The K-quant four-row tiles equal their batched single-row kernel bit
/// for bit (llama.cpp's batched rounding, which the reference tests pin).
#[test]
fn k_quant_tiles_equal_batched_rows_bit_for_bit() {
    fn check_tile<W: WeightBlock<Act = BlockQ8K>>(
        ty: QType,
        batched: fn(Isa) -> DotFn<W>,
        tile: fn(Isa) -> Option<TileFn<W>>,
        rng: &mut Lcg,
    ) {
        let blocks = 5;
        let w = random_blocks::<W>(blocks, ty.scale_offsets(), rng);
        let acts = four_act_rows::<BlockQ8K>(blocks, rng);
        let a: [&[BlockQ8K]; 4] = std::array::from_fn(|i| acts[i].as_slice());
        for &isa in Isa::available() {
            let Some(tile) = tile(isa) else { continue };
            let got = tile(&w, a);
            for (k, g) in got.iter().enumerate() {
                let want = batched(isa)(&w, a[k]);
                assert_eq!(
                    g.to_bits(),
                    want.to_bits(),
                    "{} on {}: act {k}",
                    ty.name(),
                    isa.name()
                );
            }
        }
    }
    let mut rng = Lcg(43);
    check_tile::<BlockQ4K>(
        QType::Q4K,
        kernels::q4_k_batched,
        kernels::q4_k_x4,
        &mut rng,
    );
    check_tile::<BlockQ6K>(
        QType::Q6K,
        kernels::q6_k_batched,
        kernels::q6_k_x4,
        &mut rng,
    );
}

/// Two weight rows unpacked by `u` against four activation rows and their
/// asides (which it also returns): what the prefill loop does per pair.
fn unpacked_pair<W: WeightBlock>(
    u: &Unpacked<W>,
    w: &[Vec<W>; 2],
    acts: &[Vec<W::Act>; 4],
) -> ([[f32; 4]; 2], Vec<ActAside>) {
    let blocks = w[0].len();
    let mut lanes = vec![vec![Lanes([0; 32]); blocks]; 2];
    let mut scales = vec![vec![[0f32; 2]; blocks]; 2];
    for r in 0..2 {
        (u.unpack)(&w[r], &mut lanes[r], &mut scales[r]);
    }
    let asides: Vec<ActAside> = (0..blocks)
        .map(|b| (u.aside)(std::array::from_fn(|k| &acts[k][b]), u.offset))
        .collect();
    let a: [&[W::Act]; 4] = std::array::from_fn(|i| acts[i].as_slice());
    let got = (u.pair)([&lanes[0], &lanes[1]], [&scales[0], &scales[1]], a, &asides);
    (got, asides)
}

/// Two weight rows × four activation rows, equal bit for bit.
fn assert_pair_bits(got: [[f32; 4]; 2], want: [[f32; 4]; 2], name: &str, isa: Isa) {
    for r in 0..2 {
        for k in 0..4 {
            assert_eq!(
                got[r][k].to_bits(),
                want[r][k].to_bits(),
                "{name} on {}: row {r} act {k}",
                isa.name()
            );
        }
    }
}

/// Four rows of `blocks` activation blocks, quantized from random values.
fn four_act_rows<A: ActBlock>(blocks: usize, rng: &mut Lcg) -> [Vec<A>; 4] {
    std::array::from_fn(|_| {
        let x: Vec<f32> = (0..blocks * A::N).map(|_| rng.unit()).collect();
        let mut row = vec![A::zeroed(); blocks];
        A::quantize(&x, &mut row);
        row
    })
}

/// Every K-quant batch of eight rows or more equals the row kernels llama.cpp's
/// rounding picks (batched, then single for `Q4_K`'s last `m % 4`) bit for
/// bit on every kernel set, outer-product tiles included: weight rows not a
/// multiple of four, activation rows not a multiple of eight, one and
/// several threads' worth of tasks.
#[test]
fn k_quant_batches_equal_the_row_kernels_bit_for_bit() {
    fn check<W: WeightBlock<Act = BlockQ8K>>(
        ty: QType,
        rows_for: fn(Isa, usize, usize) -> DotFn<W>,
        rng: &mut Lcg,
    ) {
        let (rows, cols) = (19, 768);
        let per_row = cols / QK_K;
        let blocks = random_blocks::<W>(rows * per_row, ty.scale_offsets(), rng);
        let m = QMatrix::new(
            ty,
            rows,
            cols,
            Bytes::copy_from(bytemuck::cast_slice(&blocks)),
        )
        .unwrap();
        for batch in [8, 13, 20] {
            let x: Vec<f32> = (0..batch * cols).map(|_| rng.unit()).collect();
            for &isa in Isa::available() {
                let mut got = vec![0f32; batch * rows];
                m.matmul_on(isa, &x, batch, &mut got);
                for i in 0..batch {
                    let mut acts = vec![BlockQ8K::zeroed(); per_row];
                    BlockQ8K::quantize(&x[i * cols..(i + 1) * cols], &mut acts);
                    for r in 0..rows {
                        let dot = rows_for(isa, i, batch);
                        let want = dot(&blocks[r * per_row..(r + 1) * per_row], &acts);
                        assert_eq!(
                            got[i * rows + r].to_bits(),
                            want.to_bits(),
                            "{} on {} batch {batch}: act {i} row {r}",
                            ty.name(),
                            isa.name()
                        );
                    }
                }
            }
        }
    }
    let mut rng = Lcg(53);
    check::<BlockQ6K>(QType::Q6K, |isa, _, _| kernels::q6_k_batched(isa), &mut rng);
    check::<BlockQ4K>(
        QType::Q4K,
        |isa, i, m| {
            if i < m - m % 4 {
                kernels::q4_k_batched(isa)
            } else {
                kernels::q4_k(isa)
            }
        },
        &mut rng,
    );
}

/// The unpacked `Q4_1` pairs equal two calls of the packed four-row tile
/// bit for bit (x86 has no packed `Q4_1` pair to compare with).
#[test]
fn unpacked_q4_1_pairs_equal_the_tiles_bit_for_bit() {
    let mut rng = Lcg(59);
    let blocks = 37; // more than two of the tiles' chunks of scale products
    let f16s = QType::Q4_1.scale_offsets();
    let w = [
        random_blocks::<BlockQ4_1>(blocks, f16s, &mut rng),
        random_blocks::<BlockQ4_1>(blocks, f16s, &mut rng),
    ];
    let acts = four_act_rows::<BlockQ8_1>(blocks, &mut rng);
    let a: [&[BlockQ8_1]; 4] = std::array::from_fn(|i| acts[i].as_slice());
    let mut checked = 0;
    for &isa in Isa::available() {
        let (Some(tile), Some(u)) = (kernels::q4_1_x4(isa), kernels::q4_1_unpacked(isa)) else {
            continue;
        };
        let (got, _) = unpacked_pair(&u, &w, &acts);
        let want = [tile(&w[0], a), tile(&w[1], a)];
        assert_pair_bits(got, want, "Q4_1", isa);
        checked += 1;
    }
    if Isa::available().contains(&Isa::Avx2) {
        assert!(checked > 0, "Q4_1: no unpacked kernel on an AVX2 CPU");
    }
}
