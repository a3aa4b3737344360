//! The Health view model: event rates per kind with a short history for sparklines, losses,
//! and facts about the daemon, store and policy, from the periodic `status` answers.
//!
//! Only the history is state: everything else is the last status as parsed by
//! [`crate::answer::status`].

use std::collections::{BTreeMap, VecDeque};

use crate::answer::Status;

/// Samples kept per sparkline.
pub const HISTORY: usize = 120;

#[derive(Debug, Default)]
pub struct HealthState {
    /// Per kind: total events, last rate, rate history (events/s, rounded).
    pub kinds: BTreeMap<String, (u64, f64, VecDeque<u64>)>,
    pub losses: BTreeMap<String, u64>,
    pub total_rate: VecDeque<u64>,
    /// (label, value) lines about the daemon, store and policy (escaped).
    pub facts: Vec<(String, String)>,
    pub polls: u64,
}

fn record(h: &mut VecDeque<u64>, sample: f64) {
    h.push_back(sample.round() as u64);
    if h.len() > HISTORY {
        h.pop_front();
    }
}

impl HealthState {
    pub(super) fn set(&mut self, s: Status) {
        self.polls += 1;
        let mut total = 0.0;
        for (k, n, r) in s.kinds {
            total += r;
            let e = self.kinds.entry(k).or_default();
            e.0 = n;
            e.1 = r;
            record(&mut e.2, r);
        }
        record(&mut self.total_rate, total);
        self.losses = s.losses;
        self.facts = s.facts;
    }
}
