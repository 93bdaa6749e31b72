//! Whether this box's wall clock can be trusted yet. A Raspberry Pi has no
//! real-time clock: it boots at the time it last saved (or at systemd's
//! build date) and jumps when network time arrives. Until then a reminder
//! "in 20 minutes" would be dated wrongly and every reminder past due would
//! seem to fire at once, so `hearth serve` fires and accepts reminders, and
//! runs retention, only on a trusted clock.
//!
//! The clock is trusted when it reads at least [`FLOOR_MS`] and, when
//! waiting for time sync applies, systemd-timesyncd has written its
//! "synchronized" marker. Reads the clock, the marker file and
//! `/sys/class/rtc`; must not change the clock or anything else.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// 2026-01-01T00:00:00Z: no clock reading earlier than this Hearth
/// release is right.
pub const FLOOR_MS: i64 = 1_767_225_600_000;

/// Where systemd-timesyncd marks the first synchronisation of this boot.
pub const TIMESYNCD_MARKER: &str = "/run/systemd/timesync/synchronized";

/// When to wait for network time (`[clock] wait_for_sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WaitForSync {
    /// Wait when systemd-timesyncd runs and there is no real-time clock.
    #[default]
    Auto,
    /// Always wait for the marker (a box known to have no RTC).
    Always,
    /// Trust any clock past the floor.
    Never,
}

/// The `[clock]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockConfig {
    pub wait_for_sync: WaitForSync,
    /// The marker file time sync writes once synchronised.
    pub sync_marker: PathBuf,
}

impl Default for ClockConfig {
    fn default() -> Self {
        Self {
            wait_for_sync: WaitForSync::Auto,
            sync_marker: PathBuf::from(TIMESYNCD_MARKER),
        }
    }
}

/// Why the clock is not trusted yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untrusted {
    /// It reads earlier than any possible date.
    BeforeFloor { now_ms: i64 },
    /// Waiting for network time (the marker does not exist yet).
    NotSynced,
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Untrusted::BeforeFloor { now_ms } => write!(
                f,
                "the clock reads {}, before this Hearth was made",
                crate::clock::utc_minute(*now_ms)
            ),
            Untrusted::NotSynced => write!(f, "the clock is waiting for network time"),
        }
    }
}

/// What the box has, for [`judge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub now_ms: i64,
    pub marker_exists: bool,
    /// The marker's directory exists: systemd-timesyncd runs here.
    pub timesyncd_runs: bool,
    pub has_rtc: bool,
}

/// The rule, without the file system.
pub fn judge(wait: WaitForSync, f: Facts) -> Result<(), Untrusted> {
    if f.now_ms < FLOOR_MS {
        return Err(Untrusted::BeforeFloor { now_ms: f.now_ms });
    }
    let must_wait = match wait {
        WaitForSync::Never => false,
        WaitForSync::Always => true,
        WaitForSync::Auto => f.timesyncd_runs && !f.has_rtc,
    };
    if must_wait && !f.marker_exists {
        return Err(Untrusted::NotSynced);
    }
    Ok(())
}

/// Checks the clock now.
#[derive(Debug, Clone)]
pub struct ClockTrust {
    config: ClockConfig,
}

impl ClockTrust {
    pub fn new(config: ClockConfig) -> Self {
        Self { config }
    }

    /// `Ok` when reminders may fire and be set.
    pub fn check(&self) -> Result<(), Untrusted> {
        let marker = &self.config.sync_marker;
        judge(
            self.config.wait_for_sync,
            Facts {
                now_ms: crate::clock::now_ms(),
                marker_exists: marker.exists(),
                timesyncd_runs: marker.parent().is_some_and(Path::is_dir),
                has_rtc: Path::new("/sys/class/rtc/rtc0").exists(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(now_ms: i64, marker: bool, timesyncd: bool, rtc: bool) -> Facts {
        Facts {
            now_ms,
            marker_exists: marker,
            timesyncd_runs: timesyncd,
            has_rtc: rtc,
        }
    }

    #[test]
    fn a_clock_before_the_floor_is_never_trusted() {
        for wait in [WaitForSync::Auto, WaitForSync::Always, WaitForSync::Never] {
            assert!(matches!(
                judge(wait, facts(1_600_000_000_000, true, true, true)),
                Err(Untrusted::BeforeFloor { .. })
            ));
        }
    }

    #[test]
    fn auto_waits_only_on_a_box_without_rtc_that_runs_timesyncd() {
        let now = FLOOR_MS + 1;
        let auto = WaitForSync::Auto;
        assert_eq!(
            judge(auto, facts(now, false, true, false)),
            Err(Untrusted::NotSynced)
        );
        assert_eq!(judge(auto, facts(now, true, true, false)), Ok(()));
        assert_eq!(judge(auto, facts(now, false, true, true)), Ok(()));
        assert_eq!(judge(auto, facts(now, false, false, false)), Ok(()));
        assert_eq!(
            judge(WaitForSync::Always, facts(now, false, false, true)),
            Err(Untrusted::NotSynced)
        );
        assert_eq!(
            judge(WaitForSync::Never, facts(now, false, true, false)),
            Ok(())
        );
    }
}
