//! `cargo bench --bench kernels`: the quantized kernels on their own, and
//! the machine's memory read bandwidth, the ceiling decode runs against.
//!
//! For every weight type the shipped models use and every kernel set this
//! CPU runs (`portable`, `avx2`, `neon`, `neon-dotprod`): a 32768 × 4096
//! matrix (75–142 MB, larger than the caches, so weights stream from memory
//! as in decode) times one activation row (decode's matrix-vector product),
//! and a 4096 × 4096 one times 64 rows (prefill's matrix-matrix product). Reported as GB/s of weights read and
//! GFLOP/s (2 · rows · cols · batch per product). Threads: all cores, or
//! `RAYON_NUM_THREADS`.
//!
//! Bandwidth: a buffer summed as 64-bit words by 1 and by 2 threads of
//! Hearth's pool, best of 5 passes; 1 GiB (main memory), and 240 and 96
//! MiB (about the Gemma 3 and SmolLM2 files: what decode streams per token).
//! `cargo bench --bench kernels -- bandwidth` stops after this table.

use std::time::{Duration, Instant};

use hearth::llm::pool::Pool;
use hearth::llm::quant::{Bytes, Isa, QMatrix, QType};

/// Rows of the matrix-vector (decode) case; prefill's matrix has `COLS`.
const DECODE_ROWS: usize = 32768;
const COLS: usize = 4096;

fn main() {
    bandwidth();
    if std::env::args().any(|a| a == "bandwidth") {
        return;
    }
    println!();
    println!(
        "kernels: {DECODE_ROWS} x {COLS} (batch 1) and {COLS} x {COLS} (batch 64), {} compute threads",
        hearth::process::compute_threads()
    );
    println!("| type | path         | batch |  µs/call |   GB/s | GFLOP/s |");
    println!("| ---- | ------------ | ----: | -------: | -----: | ------: |");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for ty in QType::SHIPPED {
        let decode = random_matrix(ty, DECODE_ROWS, &mut seed);
        let prefill = random_matrix(ty, COLS, &mut seed);
        for &isa in Isa::available() {
            for (batch, m) in [(1usize, &decode), (64, &prefill)] {
                let rows = m.rows();
                let x: Vec<f32> = (0..batch * COLS)
                    .map(|i| ((i % 97) as f32 - 48.0) / 50.0)
                    .collect();
                let mut out = vec![0f32; batch * rows];
                let t = time(|| m.matmul_on(isa, &x, batch, &mut out));
                let secs = t.as_secs_f64();
                println!(
                    "| {:<4} | {:<12} | {batch:>5} | {:>8.1} | {:>6.2} | {:>7.1} |",
                    ty.name(),
                    isa.name(),
                    secs * 1e6,
                    m.size_in_bytes() as f64 / secs / 1e9,
                    2.0 * (rows * COLS * batch) as f64 / secs / 1e9,
                );
            }
        }
    }
}

/// Best time of `f` over ~0.3 s after a warm-up call.
fn time(mut f: impl FnMut()) -> Duration {
    f();
    let mut best = Duration::MAX;
    let start = Instant::now();
    let mut n = 0;
    while n < 3 || (start.elapsed() < Duration::from_millis(300) && n < 200) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
        n += 1;
    }
    best
}

fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Random blocks whose f16 scales are small finite numbers.
fn random_matrix(ty: QType, rows: usize, seed: &mut u64) -> QMatrix {
    let bb = ty.block_bytes();
    let n = rows * COLS / ty.block_elems();
    let mut bytes = vec![0u8; n * bb];
    for block in bytes.chunks_exact_mut(bb) {
        for b in block.iter_mut() {
            *b = next(seed) as u8;
        }
        for &o in ty.scale_offsets() {
            let v = half::f16::from_f32((next(seed) % 1000) as f32 / 20_000.0);
            block[o..o + 2].copy_from_slice(&v.to_bits().to_le_bytes());
        }
    }
    QMatrix::new(ty, rows, COLS, Bytes::copy_from(&bytes)).expect("valid matrix")
}

/// Read bandwidth with 1 and 2 threads (see the module doc), over 1 GiB
/// (main memory) and over buffers the size of the shipped model files
/// (which a large last-level cache may hold between passes), measured as
/// `hearth bench` measures it.
fn bandwidth() {
    println!("memory read bandwidth (u64 words summed on Hearth's pool, best of 5):");
    println!("| buffer | 1 thread | 2 threads |");
    println!("| -----: | -------: | --------: |");
    for mib in [1024usize, 240, 96] {
        let mut row = format!("| {mib} MiB |");
        for threads in [1usize, 2] {
            let pool = Pool::new(threads);
            match hearth::bench::host::read_bandwidth_over(&pool, mib << 20) {
                Some(gbs) => row += &format!(" {gbs:.1} GB/s |"),
                None => row += " - |",
            }
        }
        println!("{row}");
    }
}
