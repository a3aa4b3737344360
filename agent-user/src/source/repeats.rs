//! Rate limit of repeated response actions: a session looping on a denied connect, or a
//! respawning process tripping an inline kill rule, must not flood the store and the alerts.
//!
//! Actions are grouped by a key (egress: session, policy, destination, protocol and verdict;
//! inline kill: session and rule). The first action of a group is stored at once, as its
//! `response.action` event and an alert with `count = 1`. Repeats within [`WINDOW`] store
//! nothing and are counted; when the window closes (checked every tick) the alert is written
//! again with the **same id**, the total `count` and the last `last_time`, the way the rule
//! engine folds its alerts (readers upsert by id). The next action after that opens a new
//! group. So a flood costs one event and two alert writes per group and window, and the counts
//! add up to the actions the daemon read.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use agent_model::{Alert, BStr, Event, Severity, Timestamp};

/// How long repeats of one action are folded into its alert.
pub const WINDOW: Duration = Duration::from_secs(5);

/// At most this many open groups; past it the oldest ones are closed early.
const MAX_GROUPS: usize = 4096;

struct Group {
    opened: Instant,
    alert: Alert,
    /// `alert.count` when it was last written.
    written: u64,
}

#[derive(Default)]
pub struct Repeats {
    groups: HashMap<String, Group>,
    /// Repeats folded into an open alert instead of stored.
    pub folded: u64,
}

impl Repeats {
    /// An action of group `key` at `now`: `true` when it opens the group (store its event and
    /// `first()` as its alert now), `false` when it was folded into the open alert.
    pub fn seen(&mut self, key: &str, now: Timestamp) -> bool {
        match self.groups.get_mut(key) {
            Some(g) => {
                g.alert.count += 1;
                g.alert.last_time = Timestamp(g.alert.last_time.0.max(now.0));
                self.folded += 1;
                false
            }
            None => true,
        }
    }

    /// Open group `key` with its first alert (`count = 1`); what to store now is returned,
    /// with the alerts of groups closed early to make room.
    pub fn open(&mut self, key: String, alert: Alert) -> Vec<Alert> {
        let mut out = Vec::new();
        if self.groups.len() >= MAX_GROUPS {
            let mut by_age: Vec<(Instant, String)> = self
                .groups
                .iter()
                .map(|(k, g)| (g.opened, k.clone()))
                .collect();
            by_age.sort();
            for (_, k) in by_age.into_iter().take(MAX_GROUPS / 8) {
                if let Some(g) = self.groups.remove(&k)
                    && g.alert.count > g.written
                {
                    out.push(g.alert);
                }
            }
        }
        out.push(alert.clone());
        self.groups.insert(
            key,
            Group {
                opened: Instant::now(),
                written: alert.count,
                alert,
            },
        );
        out
    }

    /// Close the groups whose window has passed (all of them when `all`): the alerts with new
    /// repeats, to write again.
    pub fn close(&mut self, all: bool) -> Vec<Alert> {
        let mut out = Vec::new();
        self.groups.retain(|_, g| {
            if all || g.opened.elapsed() >= WINDOW {
                if g.alert.count > g.written {
                    out.push(g.alert.clone());
                }
                false
            } else {
                true
            }
        });
        out
    }
}

/// The alert that opens a group: `rule` about the `response.action` event `ev`, `count = 1`.
pub fn first_alert(ev: &Event, rule: &str, severity: Severity, summary: String) -> Alert {
    Alert {
        id: format!("{rule}:{}", ev.id),
        time: ev.time,
        host: ev.host.clone(),
        rule: rule.to_owned(),
        severity,
        agent: ev.agent.clone(),
        session: ev.session.clone(),
        summary: BStr::from(summary),
        tags: vec!["agentwatch".into(), "response".into()],
        event_ids: vec![ev.id.clone()],
        count: 1,
        first_time: ev.time,
        last_time: ev.time,
        in_loss_window: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: &str) -> Alert {
        Alert {
            id: id.into(),
            count: 1,
            ..Default::default()
        }
    }

    #[test]
    fn repeats_fold_into_one_alert_whose_count_is_every_action() {
        let mut r = Repeats::default();
        assert!(r.seen("a", Timestamp(1)));
        assert_eq!(r.open("a".into(), alert("x")).len(), 1);
        for t in 2..=10_000 {
            assert!(!r.seen("a", Timestamp(t)));
        }
        assert!(r.close(false).is_empty(), "the window is still open");
        let out = r.close(true);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].id.as_str(), out[0].count), ("x", 10_000));
        assert_eq!(out[0].last_time, Timestamp(10_000));
        assert_eq!(r.folded, 9_999);
        // Closed: the next one opens a new group.
        assert!(r.seen("a", Timestamp(10_001)));
    }

    #[test]
    fn a_group_without_repeats_is_not_written_twice() {
        let mut r = Repeats::default();
        r.open("a".into(), alert("x"));
        assert!(r.close(true).is_empty());
    }

    #[test]
    fn groups_are_bounded() {
        let mut r = Repeats::default();
        let mut written = 0;
        for i in 0..(MAX_GROUPS + 10) {
            let k = i.to_string();
            assert!(r.seen(&k, Timestamp(0)));
            written += r.open(k, alert(&i.to_string())).len();
        }
        assert!(r.groups.len() <= MAX_GROUPS);
        assert_eq!(
            written,
            MAX_GROUPS + 10,
            "no repeats: only the first alerts"
        );
    }
}
