//! Rule-driven response: the alerts of rules with an `action` (see `rules::RuleResponse`) become
//! response actions on their session, through the same [`SourceLoop::act`] as manual ones.
//!
//! It lives on the sensor thread, beside the session map it needs, and adds only what rules
//! bring: the rule's mode (or the `[response] default_mode`), a per-rule rate limit (an action
//! over the limit is recorded as refused, never carried out) and the offending process of a
//! `kill`. Alerts outside sessions never lead to an action.

use std::collections::{HashMap, VecDeque};

use rules::Action;

use super::SourceLoop;
use crate::response::Verb;

/// Per rule: when its recent actions were taken (ns since boot), oldest first.
#[derive(Default)]
pub struct RateLimits {
    seen: HashMap<String, VecDeque<u64>>,
}

impl RateLimits {
    /// Whether rule `rule` may act at `now` with at most `limit` actions per `per_ns`; counts
    /// the action when it may.
    pub fn allow(&mut self, rule: &str, limit: u32, per_ns: i64, now: u64) -> bool {
        let q = self.seen.entry(rule.to_owned()).or_default();
        while q
            .front()
            .is_some_and(|&t| now.saturating_sub(t) >= per_ns.max(0) as u64)
        {
            q.pop_front();
        }
        if q.len() >= limit as usize {
            return false;
        }
        q.push_back(now);
        true
    }
}

impl SourceLoop {
    /// Carry out (or record) the actions of the rules that fired since the last call.
    pub(super) fn respond_to_rules(&mut self) {
        for t in self.pipeline.take_triggered() {
            let Some(sid) = t
                .session
                .as_deref()
                .filter(|s| s.len() == 16)
                .and_then(|s| u64::from_str_radix(s, 16).ok())
            else {
                tracing::debug!(rule = %t.rule, "rule action skipped: the alert has no session");
                continue;
            };
            if t.response.inline.is_some()
                && t.target
                    .is_some_and(|(pid, _)| self.inline_already_killed(pid, &t.rule))
            {
                // The kernel killed it at the open; its event is already recorded.
                continue;
            }
            let r = &t.response;
            let verb = match r.action {
                Action::Kill => Verb::Kill,
                Action::KillSession => Verb::KillSession,
                Action::FreezeSession => Verb::FreezeSession,
                Action::Deny => Verb::Deny,
            };
            let dry_run = r.dry_run.unwrap_or(self.responder.cfg.default_dry_run);
            let target = t
                .target
                .map(|(pid, start)| (pid, self.tracker.boot_ns_of(start)));
            let by = format!("rule:{}", t.rule);
            let note = format!("alert {}", t.alert_id);
            let refused = (!self
                .rate
                .allow(&t.rule, r.limit, r.per_ns, super::boot_ns()))
            .then(|| {
                format!(
                    "refused: rate limit of rule `{}` ({} per {} s) reached",
                    t.rule,
                    r.limit,
                    r.per_ns / 1_000_000_000
                )
            });
            self.act_checked(verb, sid, target, dry_run, &by, &note, refused);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_counts_per_rule_within_the_window() {
        let mut r = RateLimits::default();
        let s = 1_000_000_000;
        assert!(r.allow("a", 2, s, 0));
        assert!(r.allow("a", 2, s, 10));
        assert!(!r.allow("a", 2, s, 20), "a third action within 1 s");
        assert!(r.allow("b", 2, s, 20), "another rule has its own budget");
        assert!(
            r.allow("a", 2, s, s as u64),
            "the first action left the window"
        );
        assert!(!r.allow("a", 2, s, s as u64 + 5));
    }
}
