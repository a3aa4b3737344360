//! A warning before the disk is full, and the disk's last space kept for alerts.
//!
//! The pipeline's tick reads the data dir's free space (`statvfs`, space available to the
//! daemon). Below the `[store] low_space` threshold (bytes, or a percentage of the filesystem)
//! it raises `monitor.low_space` once per crossing; below half of it (the reserve) it raises
//! `monitor.space_reserve` and the store refuses ordinary events (counted) while alerts, triage
//! and monitor events keep being written; above the threshold again (with a tenth of it as
//! margin, so a filesystem hovering at the line does not alert on every tick)
//! `monitor.space_recovered` says how many events the reserve refused. Pure over the numbers
//! read, apart from [`free_space`].

use std::path::Path;

use agent_model::{Alert, BStr, Severity, Timestamp};

/// Rule id of the alert raised when free space goes below the threshold.
pub const LOW_SPACE: &str = "monitor.low_space";
/// Rule id of the alert raised when free space goes below the reserve (half the threshold).
pub const SPACE_RESERVE: &str = "monitor.space_reserve";
/// Rule id of the alert raised when free space is back above the threshold.
pub const SPACE_RECOVERED: &str = "monitor.space_recovered";

/// `[store] low_space`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threshold {
    Bytes(u64),
    /// Percent of the filesystem's size (1..=50).
    Percent(u8),
}

/// The default threshold: 5% of the data dir's filesystem.
pub const DEFAULT: Threshold = Threshold::Percent(5);

impl Threshold {
    fn bytes(self, total: u64) -> u64 {
        match self {
            Threshold::Bytes(b) => b,
            Threshold::Percent(p) => total / 100 * u64::from(p),
        }
    }
}

/// Space available to the daemon and the filesystem's size, in bytes.
pub fn free_space(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain old data; zeroed is a valid value for it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` a valid out pointer for the call.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frag = st.f_frsize as u64;
    Some((st.f_bavail as u64 * frag, st.f_blocks as u64 * frag))
}

/// What the daemon has alerted about the data dir's free space.
#[derive(Debug)]
pub struct SpaceWatch {
    threshold: Threshold,
    low: bool,
    reserve: bool,
}

impl SpaceWatch {
    pub fn new(threshold: Threshold) -> SpaceWatch {
        SpaceWatch {
            threshold,
            low: false,
            reserve: false,
        }
    }

    /// Whether the store should keep its space for alerts and monitor events now.
    pub fn reserve_only(&self) -> bool {
        self.reserve
    }

    /// Alerts for what changed with `free` of `total` bytes; `refused`: events the reserve has
    /// refused so far (for the recovery alert).
    pub fn check(
        &mut self,
        dir: &Path,
        free: u64,
        total: u64,
        refused: u64,
        host: &str,
        now: Timestamp,
    ) -> Vec<Alert> {
        let line = self.threshold.bytes(total);
        let reserve = line / 2;
        let mut out = Vec::new();
        let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64);
        if !self.low && free < line {
            self.low = true;
            out.push(alert(
                LOW_SPACE,
                Severity::High,
                format!(
                    "the data dir `{}` has {} free, below the `low_space` threshold of {}; below {} only alerts and monitor events are stored",
                    dir.display(),
                    mib(free),
                    mib(line),
                    mib(reserve)
                ),
                host,
                now,
            ));
        }
        if !self.reserve && free < reserve {
            self.reserve = true;
            out.push(alert(
                SPACE_RESERVE,
                Severity::Critical,
                format!(
                    "the data dir `{}` has {} free, below the reserve of {}: events are refused and counted, alerts and monitor events are still stored",
                    dir.display(),
                    mib(free),
                    mib(reserve)
                ),
                host,
                now,
            ));
        }
        if self.reserve && free >= reserve + reserve / 10 {
            self.reserve = false;
        }
        if self.low && free >= line + line / 10 {
            self.low = false;
            self.reserve = false;
            let mut a = alert(
                SPACE_RECOVERED,
                Severity::Low,
                format!(
                    "the data dir `{}` has {} free again (threshold {}); {} events were refused under the reserve since the daemon started",
                    dir.display(),
                    mib(free),
                    mib(line),
                    refused
                ),
                host,
                now,
            );
            a.count = refused.max(1);
            out.push(a);
        }
        out
    }
}

fn alert(rule: &str, severity: Severity, summary: String, host: &str, t: Timestamp) -> Alert {
    Alert {
        id: format!("{rule}:{}", t.0),
        time: t,
        host: host.to_owned(),
        rule: rule.into(),
        severity,
        summary: BStr::from(summary),
        tags: vec!["monitor".into(), "low_space".into()],
        count: 1,
        first_time: t,
        last_time: t,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_alert_per_crossing_a_reserve_below_half_and_recovery_with_margin() {
        let mut w = SpaceWatch::new(Threshold::Bytes(100 << 20));
        let d = Path::new("/d");
        let t = Timestamp(1);
        let total = 1 << 30;
        assert!(w.check(d, 200 << 20, total, 0, "h", t).is_empty());
        let a = w.check(d, 90 << 20, total, 0, "h", t);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].rule, LOW_SPACE);
        assert!(a[0].summary.to_string().contains("`/d` has 90.0 MiB free"));
        assert!(w.check(d, 80 << 20, total, 0, "h", t).is_empty(), "once");
        assert!(!w.reserve_only());
        let a = w.check(d, 40 << 20, total, 0, "h", t);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].rule, SPACE_RESERVE);
        assert!(w.reserve_only());
        // Back above the reserve with margin: writes again, still low.
        assert!(w.check(d, 60 << 20, total, 3, "h", t).is_empty());
        assert!(!w.reserve_only());
        // At the line, not above it with margin: no recovery yet.
        assert!(w.check(d, 105 << 20, total, 3, "h", t).is_empty());
        let a = w.check(d, 120 << 20, total, 3, "h", t);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].rule, SPACE_RECOVERED);
        assert_eq!(a[0].count, 3);
        // A new crossing alerts again.
        assert_eq!(w.check(d, 90 << 20, total, 3, "h", t)[0].rule, LOW_SPACE);
    }

    #[test]
    fn percent_of_the_filesystem() {
        assert_eq!(Threshold::Percent(5).bytes(1000 << 20), 50 << 20);
    }
}
