//! The store's disk-full state turned into alerts: `monitor.disk_full` (critical) once per
//! outage, when the spool stops taking writes, and `monitor.disk_resumed` when it takes them
//! again, with the count of records that were refused (never stored) in between, so the gap is
//! recorded in the store itself. Polled from the pipeline's tick; pure over the store's
//! [`agent_store::StoreHealth`].

use agent_model::{Alert, BStr, Severity, Timestamp};
use agent_store::StoreHealth;

/// Rule id of the alert raised when the spool stops taking writes.
pub const DISK_FULL: &str = "monitor.disk_full";
/// Rule id of the alert raised when it takes writes again (the gap's record).
pub const DISK_RESUMED: &str = "monitor.disk_resumed";

/// What the daemon has already alerted.
#[derive(Debug, Default)]
pub struct DiskWatch {
    outages_seen: u64,
    open: bool,
}

impl DiskWatch {
    /// Alerts for what changed since the last call, oldest first.
    pub fn check(&mut self, h: &StoreHealth, host: &str, now: Timestamp) -> Vec<Alert> {
        let mut out = Vec::new();
        if h.outages > self.outages_seen {
            self.outages_seen = h.outages;
            self.open = true;
            let since = h.full_since.unwrap_or(now);
            let summary = format!(
                "the store's disk does not take writes ({}); events are kept in memory, then dropped and counted",
                h.error.as_deref().unwrap_or("write error")
            );
            out.push(alert(DISK_FULL, Severity::Critical, summary, host, since));
        }
        if self.open && !h.full {
            self.open = false;
            let at = h.resumed_at.unwrap_or(now);
            let since = h.full_since.unwrap_or(at);
            let summary = format!(
                "the store takes writes again; {} records were not stored between {} and {}",
                h.outage_dropped,
                since.to_rfc3339(),
                at.to_rfc3339()
            );
            let mut a = alert(DISK_RESUMED, Severity::High, summary, host, at);
            a.count = h.outage_dropped.max(1);
            a.first_time = since;
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
        tags: vec!["monitor".into(), "disk_full".into()],
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
    fn one_full_alert_per_outage_and_a_resumed_alert_with_the_gap() {
        let mut w = DiskWatch::default();
        let t = Timestamp(1_000_000_000);
        let mut h = StoreHealth {
            full: true,
            outages: 1,
            full_since: Some(t),
            error: Some("No space left on device".into()),
            ..Default::default()
        };
        let a = w.check(&h, "h", t);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].rule, DISK_FULL);
        assert_eq!(a[0].severity, Severity::Critical);
        assert!(w.check(&h, "h", t).is_empty(), "raised once");
        h.full = false;
        h.outage_dropped = 42;
        h.resumed_at = Some(Timestamp(2_000_000_000));
        let a = w.check(&h, "h", t);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].rule, DISK_RESUMED);
        assert_eq!(a[0].count, 42);
        assert!(
            a[0].summary
                .to_string()
                .contains("42 records were not stored")
        );
        assert!(w.check(&h, "h", t).is_empty());
    }
}
