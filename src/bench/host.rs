//! The host a benchmark ran on, as a report needs it to compare boards:
//! CPU model, the cores online and used, the kernel set chosen, the cache
//! sizes, total memory, read bandwidth measured now on the compute pool,
//! and Hearth's version. Read from `/proc` and `/sys`; a fact the box does
//! not expose is left out, never guessed.

use std::time::Instant;

use crate::llm::pool::Pool;
use crate::llm::quant::Isa;

/// One level of the CPU's cache hierarchy as cpu0 sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cache {
    pub level: u8,
    /// `Data`, `Instruction` or `Unified`.
    pub kind: String,
    pub size_kib: u64,
    /// How many logical CPUs share one instance.
    pub shared_by: usize,
}

/// Where a benchmark ran.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Host {
    pub hearth_version: String,
    pub arch: String,
    pub cpu: String,
    pub cores_online: usize,
    pub threads_used: usize,
    pub kernels: String,
    pub caches: Vec<Cache>,
    pub memory_mib: Option<u64>,
    /// Read bandwidth with `threads_used` threads, GB/s (10^9 bytes).
    pub mem_read_gbs: Option<f64>,
}

impl Host {
    /// Describes this box, measuring read bandwidth on the compute pool
    /// (about a second) unless `measure` is false.
    pub fn describe(measure: bool) -> Self {
        let pool = Pool::global();
        Self {
            hearth_version: env!("CARGO_PKG_VERSION").to_string(),
            arch: std::env::consts::ARCH.to_string(),
            cpu: cpu_model(),
            cores_online: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads_used: pool.threads(),
            kernels: Isa::selected().name().to_string(),
            caches: caches(),
            memory_mib: crate::board::total_memory_mib(),
            mem_read_gbs: measure.then(|| read_bandwidth(pool)).flatten(),
        }
    }

    /// The largest cache, in bytes (the last level).
    pub fn last_level_cache_bytes(&self) -> Option<u64> {
        self.caches.iter().map(|c| c.size_kib * 1024).max()
    }

    /// One line without the per-thread-count facts: "AMD EPYC 7B13
    /// (x86_64), 2 cores, kernels avx2, L1d 32K L2 512K L3 32M, 24 GiB,
    /// hearth 0.1.0".
    pub fn summary(&self) -> String {
        let caches: Vec<String> = self
            .caches
            .iter()
            .filter(|c| c.kind != "Instruction")
            .map(|c| {
                let suffix = if c.level == 1 { "d" } else { "" };
                format!("L{}{suffix} {}", c.level, kib(c.size_kib))
            })
            .collect();
        let caches = if caches.is_empty() {
            "caches not reported".to_string()
        } else {
            caches.join(" ")
        };
        let memory = self
            .memory_mib
            .map_or("memory not reported".to_string(), |m| {
                if m >= 4096 {
                    format!("{:.0} GiB", m as f64 / 1024.0)
                } else {
                    format!("{m} MiB")
                }
            });
        format!(
            "{} ({}), {} cores, kernels {}, {caches}, {memory}, hearth {}",
            self.cpu, self.arch, self.cores_online, self.kernels, self.hearth_version
        )
    }
}

fn kib(k: u64) -> String {
    if k >= 1024 && k.is_multiple_of(1024) {
        format!("{}M", k / 1024)
    } else {
        format!("{k}K")
    }
}

/// The CPU's marketing name (x86), or the board and core names (ARM).
pub fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let board = std::fs::read_to_string("/proc/device-tree/model")
        .ok()
        .map(|m| m.trim_end_matches('\0').trim().to_string())
        .filter(|m| !m.is_empty());
    cpu_model_from(&info, board.as_deref())
}

fn cpu_model_from(cpuinfo: &str, board: Option<&str>) -> String {
    let field = |name: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    if let Some(name) = field("model name").filter(|n| !n.is_empty()) {
        return name;
    }
    let part = field("CPU part").and_then(|p| arm_core(field("CPU implementer").as_deref(), &p));
    match (board, part) {
        (Some(b), Some(p)) => format!("{b} ({p})"),
        (Some(b), None) => b.to_string(),
        (None, Some(p)) => p.to_string(),
        (None, None) => "unknown CPU".to_string(),
    }
}

/// Arm's own cores by `CPU part` (implementer 0x41), the ones boards use.
fn arm_core(implementer: Option<&str>, part: &str) -> Option<String> {
    if implementer.is_some_and(|i| i != "0x41") {
        return Some(format!("core {part}"));
    }
    let name = match part {
        "0xd03" => "Cortex-A53",
        "0xd04" => "Cortex-A35",
        "0xd05" => "Cortex-A55",
        "0xd07" => "Cortex-A57",
        "0xd08" => "Cortex-A72",
        "0xd09" => "Cortex-A73",
        "0xd0a" => "Cortex-A75",
        "0xd0b" => "Cortex-A76",
        "0xd0c" => "Neoverse-N1",
        "0xd0d" => "Cortex-A77",
        "0xd40" => "Neoverse-V1",
        "0xd41" => "Cortex-A78",
        "0xd46" => "Cortex-A510",
        "0xd47" => "Cortex-A710",
        "0xd49" => "Neoverse-N2",
        "0xd4f" => "Neoverse-V2",
        _ => return Some(format!("Arm core {part}")),
    };
    Some(name.to_string())
}

/// cpu0's caches from sysfs (empty where the kernel does not list them,
/// as on many ARM boards).
pub fn caches() -> Vec<Cache> {
    let dir = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Cache> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("index"))
        .filter_map(|e| {
            let read = |f: &str| std::fs::read_to_string(e.path().join(f)).ok();
            Some(Cache {
                level: read("level")?.trim().parse().ok()?,
                kind: read("type")?.trim().to_string(),
                size_kib: parse_size_kib(&read("size")?)?,
                shared_by: read("shared_cpu_list").map_or(1, |l| count_cpus(&l)),
            })
        })
        .collect();
    out.sort_by(|a, b| (a.level, &a.kind).cmp(&(b.level, &b.kind)));
    out
}

/// "32K", "1024K", "32M" → KiB.
fn parse_size_kib(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1),
        b'M' => (&s[..s.len() - 1], 1024),
        b'G' => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

/// "0-3,8" → 5.
fn count_cpus(list: &str) -> usize {
    list.trim()
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum()
}

/// Streaming read bandwidth on `pool`'s threads, GB/s, over a buffer four
/// times the last-level cache (64 MiB at least, 512 MiB and an eighth of
/// memory at most), which is what a decode step does to weights that do
/// not fit in cache.
pub fn read_bandwidth(pool: &Pool) -> Option<f64> {
    let llc = caches()
        .iter()
        .map(|c| c.size_kib * 1024)
        .max()
        .unwrap_or(0);
    let cap = crate::board::total_memory_mib().map_or(512 << 20, |m| (m << 20) / 8);
    let bytes = (4 * llc).clamp(64 << 20, 512 << 20).min(cap.max(16 << 20));
    read_bandwidth_over(pool, bytes as usize)
}

/// Read bandwidth over a buffer of `bytes`, GB/s: the best of five passes,
/// each summing the buffer as 64-bit words split across `pool`'s threads.
/// (A buffer the cache holds measures the cache, not memory.)
pub fn read_bandwidth_over(pool: &Pool, bytes: usize) -> Option<f64> {
    let words = vec![1u64; bytes / 8];
    let tasks = pool.threads() * 8;
    let per_task = words.len().div_ceil(tasks);
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        pool.run(tasks, &|t| {
            let from = (t * per_task).min(words.len());
            let to = ((t + 1) * per_task).min(words.len());
            std::hint::black_box(sum_words(&words[from..to]));
        });
        best = best.min(start.elapsed().as_secs_f64());
    }
    (best > 0.0 && !words.is_empty()).then(|| (words.len() * 8) as f64 / best / 1e9)
}

/// A sum with independent accumulators, so the loads, not the adds, bound
/// it. The loads are explicit vector loads where the CPU has them: left to
/// the compiler, the same loop built with `target-cpu=native` on a Zen 4
/// (AVX-512) read at 5.3 GB/s where an AVX2 build of it read 24-26 GB/s
/// and explicit AVX2 loads 28 GB/s, so the bound came out below what
/// decode reached.
fn sum_words(w: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if crate::llm::quant::x86::has_avx2() {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { sum_words_avx2(w) };
    }
    #[cfg(target_arch = "aarch64")]
    {
        sum_words_neon(w)
    }
    #[cfg(not(target_arch = "aarch64"))]
    sum_words_scalar(w)
}

fn sum_words_scalar(w: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let chunks = w.chunks_exact(8);
    let tail: u64 = chunks.remainder().iter().fold(0, |a, &x| a.wrapping_add(x));
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(x);
        }
    }
    acc.iter().fold(tail, |a, &x| a.wrapping_add(x))
}

/// Four 256-bit accumulators, 128 bytes a step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_words_avx2(w: &[u64]) -> u64 {
    use std::arch::x86_64::*;
    let chunks = w.chunks_exact(16);
    let tail = sum_words_scalar(chunks.remainder());
    let mut acc = [_mm256_setzero_si256(); 4];
    for c in chunks {
        let p = c.as_ptr().cast::<__m256i>();
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: `c` holds 16 words, so 4 unaligned 32-byte loads.
            *a = _mm256_add_epi64(*a, unsafe { _mm256_loadu_si256(p.add(k)) });
        }
    }
    let s = _mm256_add_epi64(
        _mm256_add_epi64(acc[0], acc[1]),
        _mm256_add_epi64(acc[2], acc[3]),
    );
    let mut out = [0u64; 4];
    // SAFETY: `out` is 32 bytes.
    unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast::<__m256i>(), s) };
    out.iter().fold(tail, |a, &x| a.wrapping_add(x))
}

/// Four 128-bit accumulators, 64 bytes a step (NEON is aarch64's baseline).
#[cfg(target_arch = "aarch64")]
fn sum_words_neon(w: &[u64]) -> u64 {
    use std::arch::aarch64::*;
    let chunks = w.chunks_exact(8);
    let tail = sum_words_scalar(chunks.remainder());
    // SAFETY: NEON is always there on aarch64; each load reads 2 of the
    // chunk's 8 words.
    unsafe {
        let mut acc = [vdupq_n_u64(0); 4];
        for c in chunks {
            let p = c.as_ptr();
            for (k, a) in acc.iter_mut().enumerate() {
                *a = vaddq_u64(*a, vld1q_u64(p.add(2 * k)));
            }
        }
        let s = vaddq_u64(vaddq_u64(acc[0], acc[1]), vaddq_u64(acc[2], acc[3]));
        tail.wrapping_add(vgetq_lane_u64::<0>(s))
            .wrapping_add(vgetq_lane_u64::<1>(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_x86_and_arm_cpus() {
        let x86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model_from(x86, None), "AMD EPYC 7B13");
        let pi5 =
            "processor\t: 0\nBogoMIPS\t: 108.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n";
        assert_eq!(
            cpu_model_from(pi5, Some("Raspberry Pi 5 Model B Rev 1.0")),
            "Raspberry Pi 5 Model B Rev 1.0 (Cortex-A76)"
        );
        let qemu = "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n";
        assert_eq!(cpu_model_from(qemu, None), "Cortex-A72");
        assert_eq!(cpu_model_from("", None), "unknown CPU");
    }

    #[test]
    fn reads_sysfs_sizes_and_lists() {
        assert_eq!(parse_size_kib("32K\n"), Some(32));
        assert_eq!(parse_size_kib("32M"), Some(32 * 1024));
        assert_eq!(parse_size_kib("x"), None);
        assert_eq!(count_cpus("0-3,8\n"), 5);
        assert_eq!(count_cpus("0"), 1);
    }

    #[test]
    fn sums_every_word() {
        for n in [0u64, 7, 21, 64, 77] {
            let w: Vec<u64> = (1..=n).collect();
            assert_eq!(sum_words(&w), n * (n + 1) / 2, "{n} words");
            assert_eq!(sum_words_scalar(&w), n * (n + 1) / 2, "{n} words");
        }
    }

    #[test]
    fn summary_names_what_was_measured() {
        let h = Host {
            hearth_version: "0.1.0".into(),
            arch: "aarch64".into(),
            cpu: "Cortex-A76".into(),
            cores_online: 4,
            threads_used: 2,
            kernels: "neon-dotprod".into(),
            caches: vec![
                Cache {
                    level: 1,
                    kind: "Data".into(),
                    size_kib: 64,
                    shared_by: 1,
                },
                Cache {
                    level: 1,
                    kind: "Instruction".into(),
                    size_kib: 64,
                    shared_by: 1,
                },
                Cache {
                    level: 3,
                    kind: "Unified".into(),
                    size_kib: 2048,
                    shared_by: 4,
                },
            ],
            memory_mib: Some(8 * 1024),
            mem_read_gbs: Some(12.34),
        };
        assert_eq!(
            h.summary(),
            "Cortex-A76 (aarch64), 4 cores, kernels neon-dotprod, L1d 64K L3 2M, 8 GiB, hearth 0.1.0"
        );
        assert_eq!(h.last_level_cache_bytes(), Some(2048 * 1024));
    }
}
