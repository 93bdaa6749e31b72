//! Facts about and settings of the running process: the compute thread count
//! (which candle and `llm::pool` read once, from the environment, at their
//! first parallel op) and resident memory as the kernel reports it.

/// Sets the number of compute threads. Must run before any inference and
/// before the process starts other threads: candle sizes its thread pools
/// once, from `RAYON_NUM_THREADS`/`CANDLE_NUM_THREADS`.
pub fn set_compute_threads(n: usize) {
    let n = n.max(1).to_string();
    // SAFETY: called from `main` before any other thread exists, so nothing
    // can read the environment concurrently.
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", &n);
        std::env::set_var("CANDLE_NUM_THREADS", &n);
    }
}

/// The thread count that compute will use.
pub fn compute_threads() -> usize {
    candle_core::utils::get_num_threads()
}

/// Resident memory now and at its peak, in bytes (Linux; `None` elsewhere).
pub fn resident_memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_memory() {
        if cfg!(target_os = "linux") {
            let (rss, peak) = super::resident_memory().unwrap();
            assert!(rss > 0 && peak >= rss);
        }
    }
}
