//! Facts about the box Hearth runs on, as far as they choose what it runs:
//! the total memory (which picks the default chat model). Read-only; must
//! not change any setting.

/// Pretends the box has this many MiB of memory (for trying what a
/// smaller board would choose, and for tests).
pub const MEMORY_OVERRIDE_ENV: &str = "HEARTH_BOARD_MEMORY_MIB";

/// The box's total memory in MiB: `HEARTH_BOARD_MEMORY_MIB` when set, else
/// `MemTotal` of `/proc/meminfo`, else the kernel's `sysinfo(2)` (the
/// hardened unit's `ProcSubset=pid` hides `/proc/meminfo`: without this,
/// a 1 GB Pi would pick the model for 1.5 GB); `None` where none tells.
pub fn total_memory_mib() -> Option<u64> {
    if let Some(v) = std::env::var(MEMORY_OVERRIDE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(v);
    }
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| mem_total_mib(&info))
        .or_else(sysinfo_total_mib)
}

/// Total RAM from `sysinfo(2)`, which needs no file.
fn sysinfo_total_mib() -> Option<u64> {
    // SAFETY: sysinfo writes only into the struct it is given.
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    if unsafe { libc::sysinfo(&mut info) } != 0 {
        return None;
    }
    let bytes = (info.totalram as u64).checked_mul(u64::from(info.mem_unit.max(1)))?;
    Some(bytes >> 20)
}

/// `MemTotal:` of a `/proc/meminfo` text, in MiB.
fn mem_total_mib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_total() {
        // A Raspberry Pi 4 with 1 GB, as its kernel reports it.
        let pi = "MemTotal:         929800 kB\nMemFree:  100 kB\n";
        assert_eq!(mem_total_mib(pi), Some(908));
        assert_eq!(mem_total_mib("MemFree: 1 kB\n"), None);
        if cfg!(target_os = "linux") && std::env::var_os(MEMORY_OVERRIDE_ENV).is_none() {
            assert!(total_memory_mib().is_some_and(|m| m > 0));
        }
        // Without /proc/meminfo the kernel still says, within a few MiB
        // of MemTotal (which leaves out what the kernel reserved).
        let from_proc = mem_total_mib(&std::fs::read_to_string("/proc/meminfo").unwrap()).unwrap();
        let from_sysinfo = sysinfo_total_mib().unwrap();
        assert!(
            from_sysinfo.abs_diff(from_proc) <= 16,
            "{from_sysinfo} vs {from_proc}"
        );
    }
}
