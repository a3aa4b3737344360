//! Integrity of the kernel maps a root process can edit through bpf(): the daemon keeps the
//! authoritative copy in user space (its process table for `SESSIONS`; what it wrote at load for
//! `HANDLERS`, the selector maps, `OWN_IDS` and `PROTECT`), compares on a short period and right after
//! every bpf() command aimed at it, puts back what was removed or changed, and raises critical
//! `monitor.map_tamper` alerts saying what it found.
//!
//! This module holds the schedule, the counters shown by `status` and the alerts; the sensor
//! thread (`source`) runs the comparison, because it owns both the maps and the process table.
//! A deleted entry leaves a blind span between the delete and the repair (at most one check
//! period, usually one poll of the ring, since the delete itself is reported and triggers a
//! check); the alert names it.

use std::time::{Duration, Instant};

use agent_api::IntegrityStatus;
use agent_model::{Alert, BStr, SessionRef, Severity, Timestamp, session_id_string};

/// Rule id of the alerts raised for kernel map entries found not as the daemon left them.
pub const MAP_TAMPER: &str = "monitor.map_tamper";

/// How often the maps are compared when nothing triggers a check.
pub const PERIOD: Duration = Duration::from_secs(1);

/// Most items named in one alert's summary (the rest are counted).
const NAMED: usize = 8;

/// One map entry found not as the daemon left it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub map: String,
    pub what: String,
    pub repaired: bool,
    /// The session whose entry it was (`SESSIONS` only): id and agent name.
    pub session: Option<(u64, String)>,
}

/// The check schedule and its counters.
#[derive(Debug)]
pub struct Integrity {
    last: Option<Instant>,
    soon: bool,
    status: IntegrityStatus,
}

impl Default for Integrity {
    fn default() -> Self {
        Integrity::new()
    }
}

impl Integrity {
    pub fn new() -> Integrity {
        Integrity {
            last: None,
            soon: true,
            status: IntegrityStatus::default(),
        }
    }

    /// Check at the next turn of the sensor loop (a bpf() command reached the daemon).
    pub fn soon(&mut self) {
        self.soon = true;
    }

    /// Whether a check is due now.
    pub fn due(&self) -> bool {
        self.soon || self.last.is_none_or(|l| l.elapsed() >= PERIOD)
    }

    pub fn status(&self) -> IntegrityStatus {
        self.status.clone()
    }

    /// Count one check and its findings; the alerts to raise (one per map and session).
    pub fn record(&mut self, found: &[Finding], host: &str, now: Timestamp) -> Vec<Alert> {
        self.last = Some(Instant::now());
        self.soon = false;
        self.status.checks += 1;
        self.status.last_check = Some(now);
        if found.is_empty() {
            return Vec::new();
        }
        let repaired = found.iter().filter(|f| f.repaired).count() as u64;
        self.status.repairs += repaired;
        self.status.failures += found.len() as u64 - repaired;
        let alerts = alerts(found, host, now);
        self.status.last_finding = alerts.last().map(|a| a.summary.to_str_lossy().into_owned());
        alerts
    }
}

/// Whether `pid` is a live process (not gone, not a zombie): a session entry is only put back
/// for a process that can still act.
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 2..i + 3))
        .unwrap_or("X");
    !matches!(state, "Z" | "X" | "x")
}

/// Findings of one map and one session (or none).
type Group<'a> = (&'a str, Option<&'a (u64, String)>, Vec<&'a Finding>);

/// One critical alert per (map, session) with what was found, rule [`MAP_TAMPER`].
pub fn alerts(found: &[Finding], host: &str, now: Timestamp) -> Vec<Alert> {
    let mut groups: Vec<Group> = Vec::new();
    for f in found {
        match groups
            .iter_mut()
            .find(|(m, s, _)| *m == f.map && *s == f.session.as_ref())
        {
            Some(g) => g.2.push(f),
            None => groups.push((&f.map, f.session.as_ref(), vec![f])),
        }
    }
    groups
        .into_iter()
        .enumerate()
        .map(|(i, (map, session, items))| {
            let all_repaired = items.iter().all(|f| f.repaired);
            let mut named: Vec<String> = items
                .iter()
                .take(NAMED)
                .map(|f| {
                    let fix = if f.repaired {
                        "restored"
                    } else {
                        "NOT restored"
                    };
                    format!("{} ({fix})", f.what)
                })
                .collect();
            if items.len() > NAMED {
                named.push(format!("and {} more", items.len() - NAMED));
            }
            let mut summary = format!("kernel map `{map}` tampered: {}", named.join("; "));
            if let Some((sid, _)) = session {
                summary.push_str(&format!(
                    "; session `{}` was blind to the sensor until the repair",
                    session_id_string(*sid)
                ));
            }
            Alert {
                id: format!("{MAP_TAMPER}:{}:{i}", now.0),
                time: now,
                host: host.to_owned(),
                rule: MAP_TAMPER.into(),
                severity: Severity::Critical,
                agent: session.map(|(_, a)| agent_model::AgentRef { name: a.clone() }),
                session: session.map(|(sid, _)| SessionRef {
                    id: session_id_string(*sid),
                }),
                summary: BStr::from(summary),
                tags: vec![
                    "T1562.001".into(),
                    "monitor".into(),
                    "tamper".into(),
                    if all_repaired {
                        "repaired"
                    } else {
                        "unrepaired"
                    }
                    .into(),
                ],
                count: 1,
                first_time: now,
                last_time: now,
                ..Default::default()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(map: &str, what: &str, repaired: bool, session: Option<u64>) -> Finding {
        Finding {
            map: map.into(),
            what: what.into(),
            repaired,
            session: session.map(|s| (s, "claude".into())),
        }
    }

    #[test]
    fn findings_are_grouped_by_map_and_session_into_critical_alerts() {
        let found = [
            f("SESSIONS", "entry of pid `10` missing", true, Some(7)),
            f("SESSIONS", "entry of pid `11` missing", true, Some(7)),
            f("HANDLERS", "entry `0` (h_open) missing", false, None),
        ];
        let a = alerts(&found, "h", Timestamp(5));
        assert_eq!(a.len(), 2);
        assert!(a.iter().all(|a| a.severity == Severity::Critical));
        let s = a[0].summary.to_str_lossy();
        assert!(s.contains("pid `10` missing (restored)"), "{s}");
        assert!(s.contains("pid `11` missing (restored)"), "{s}");
        assert_eq!(a[0].session.as_ref().unwrap().id, session_id_string(7));
        assert!(a[0].tags.contains(&"repaired".to_owned()));
        let s = a[1].summary.to_str_lossy();
        assert!(
            s.contains("`HANDLERS`") && s.contains("NOT restored"),
            "{s}"
        );
        assert!(a[1].session.is_none());
        assert!(a[1].tags.contains(&"unrepaired".to_owned()));
    }

    #[test]
    fn counters_follow_the_checks_and_a_quiet_check_raises_nothing() {
        let mut i = Integrity::new();
        assert!(i.due());
        assert!(i.record(&[], "h", Timestamp(1)).is_empty());
        assert!(!i.due());
        i.soon();
        assert!(i.due());
        let a = i.record(
            &[
                f("SEL_COMM", "entry `claude` missing", true, None),
                f("SEL_UID", "entry `0` added", false, None),
            ],
            "h",
            Timestamp(2),
        );
        assert_eq!(a.len(), 2);
        let st = i.status();
        assert_eq!((st.checks, st.repairs, st.failures), (2, 1, 1));
        assert_eq!(st.last_check, Some(Timestamp(2)));
        assert!(st.last_finding.unwrap().contains("SEL_UID"));
    }

    #[test]
    fn long_lists_are_cut_and_counted() {
        let found: Vec<Finding> = (0..20)
            .map(|p| {
                f(
                    "SESSIONS",
                    &format!("entry of pid `{p}` missing"),
                    true,
                    Some(1),
                )
            })
            .collect();
        let a = alerts(&found, "h", Timestamp(1));
        assert_eq!(a.len(), 1);
        assert!(a[0].summary.to_str_lossy().contains("and 12 more"));
    }

    #[test]
    fn this_process_is_alive_and_a_free_pid_is_not() {
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX - 1));
    }
}
