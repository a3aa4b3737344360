//! The alert raised when the store's retention deleted records before a NATS output shipped
//! them: the fleet's copy is missing them for good, which an operator must hear about (a host
//! cut off from the cluster for longer than its retention, or an attacker filling the spool to
//! push evidence out before it leaves the host). Pure: the daemon's pipeline compares each
//! output's `dropped` counter with the last value it saw and calls this once per increase.

use agent_model::{Alert, BStr, Severity, Timestamp};

/// Rule id of the alert.
pub const UNSHIPPED: &str = "monitor.fleet_unshipped";

/// The alert for `increase` more records of output `output` deleted unshipped (`total` so far).
pub fn unshipped_alert(
    output: &str,
    host: &str,
    increase: u64,
    total: u64,
    now: Timestamp,
) -> Alert {
    Alert {
        id: format!("{UNSHIPPED}:{output}:{total}"),
        time: now,
        host: host.to_owned(),
        rule: UNSHIPPED.into(),
        severity: Severity::High,
        summary: BStr::from(format!(
            "retention deleted {increase} records before fleet output `{output}` shipped them ({total} in all since start); the fleet's copy lacks them"
        )),
        tags: vec!["monitor".into(), "fleet".into(), "T1070".into()],
        count: 1,
        first_time: now,
        last_time: now,
        ..Default::default()
    }
}

/// Follows each output's `dropped` counter; yields the increases.
#[derive(Debug, Default)]
pub struct DroppedWatch {
    seen: Vec<u64>,
}

impl DroppedWatch {
    /// The outputs (by position) whose counter grew since the last call, with the increase and
    /// the new total.
    pub fn increases(&mut self, counters: &[u64]) -> Vec<(usize, u64, u64)> {
        self.seen.resize(counters.len(), 0);
        let mut out = Vec::new();
        for (i, (&now, seen)) in counters.iter().zip(self.seen.iter_mut()).enumerate() {
            if now > *seen {
                out.push((i, now - *seen, now));
            }
            *seen = now;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_alert_per_increase_and_none_without_one() {
        let mut w = DroppedWatch::default();
        assert!(w.increases(&[0, 0]).is_empty());
        assert_eq!(w.increases(&[5, 0]), [(0, 5, 5)]);
        assert!(w.increases(&[5, 0]).is_empty());
        assert_eq!(w.increases(&[7, 2]), [(0, 2, 7), (1, 2, 2)]);
        let a = unshipped_alert("nats", "web-1", 2, 7, Timestamp(1));
        assert_eq!(a.rule, UNSHIPPED);
        assert_eq!(a.severity, Severity::High);
        assert!(a.summary.to_string().contains("`nats`"));
    }
}
