//! Rendering: alert summaries from output templates, and the Falco-like JSON line written to
//! `--alerts-jsonl`.

use agent_model::{Alert, BStr, Event, Severity, Timestamp};

use crate::error::PolicyErrors;
use crate::policy::Part;

/// Rule id of the alert raised when a policy reload is rejected.
pub const RELOAD_REJECTED: &str = "policy.reload_rejected";

/// The alert the daemon raises when a reload is rejected (it keeps running the old policy):
/// severity high, the first errors in the summary, `time` from the caller's clock.
pub fn reload_rejected_alert(errors: &PolicyErrors, host: &str, time: Timestamp) -> Alert {
    let mut summary = format!(
        "policy reload rejected ({} errors), running policy kept",
        errors.len()
    );
    for e in errors.iter().take(5) {
        summary.push_str("; ");
        summary.push_str(&e.to_string());
    }
    Alert {
        id: format!("{RELOAD_REJECTED}:{}", time.0),
        time,
        host: host.to_string(),
        rule: RELOAD_REJECTED.to_string(),
        severity: Severity::High,
        agent: None,
        session: None,
        summary: BStr::from(summary),
        tags: vec!["T1562.001".into(), "monitor".into()],
        event_ids: Vec::new(),
        count: 1,
        first_time: time,
        last_time: time,
        in_loss_window: false,
    }
}

/// Render an output template against an event; absent fields render as `<none>`.
pub(crate) fn render(parts: &[Part], ev: &Event) -> String {
    let mut out = String::new();
    for p in parts {
        match p {
            Part::Lit(s) => out.push_str(s),
            Part::Field(f) => match ev.get(*f) {
                Some(v) => out.push_str(&v.render()),
                None => out.push_str("<none>"),
            },
        }
    }
    out
}

/// Falco's priority name for a severity.
pub fn falco_priority(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "Critical",
        Severity::High => "Error",
        Severity::Medium => "Warning",
        Severity::Low => "Notice",
        Severity::Info => "Informational",
    }
}

/// One alert as a Falco-shaped JSON object (no trailing newline), so tools that read Falco's
/// JSON output (`time`, `rule`, `priority`, `output`, `output_fields`, `tags`, `hostname`,
/// `source`) read ours; agentwatch's own fields (`id`, `severity`, `agent`, `session`,
/// `event_ids`, `count`, `first_time`, `last_time`, `in_loss_window`) follow.
pub fn falco_json(a: &Alert) -> String {
    let agent = a.agent.as_ref().map(|x| x.name.as_str());
    let session = a.session.as_ref().map(|x| x.id.as_str());
    let v = serde_json::json!({
        "time": a.time.to_rfc3339(),
        "rule": a.rule,
        "priority": falco_priority(a.severity),
        "output": a.summary,
        "output_fields": {
            "agent.name": agent,
            "session.id": session,
            "alert.id": a.id,
            "alert.severity": a.severity.name(),
            "alert.count": a.count,
            "evt.time": a.time.to_rfc3339(),
        },
        "tags": a.tags,
        "hostname": a.host,
        "source": "agentwatch",
        "id": a.id,
        "severity": a.severity.name(),
        "agent": agent,
        "session": session,
        "event_ids": a.event_ids,
        "count": a.count,
        "first_time": a.first_time.to_rfc3339(),
        "last_time": a.last_time.to_rfc3339(),
        "in_loss_window": a.in_loss_window,
    });
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_model::{AgentRef, SessionRef};

    #[test]
    fn reload_rejected_alert_names_the_errors() {
        let errs = crate::policy::Policy::compile(&[crate::policy::Source::from_text(
            "p.toml",
            "[[rule]]\nid = 1\n",
        )])
        .unwrap_err();
        let a = reload_rejected_alert(&errs, "h", Timestamp(5));
        assert_eq!(a.rule, RELOAD_REJECTED);
        assert_eq!(a.severity, Severity::High);
        assert!(
            a.summary.to_string().contains("p.toml:2:6: invalid type"),
            "{}",
            a.summary
        );
    }

    #[test]
    fn falco_json_has_falco_and_agentwatch_fields() {
        let a = Alert {
            id: "r:e1".into(),
            time: Timestamp(1_000_000_000),
            host: "h".into(),
            rule: "r".into(),
            severity: Severity::High,
            agent: Some(AgentRef {
                name: "claude".into(),
            }),
            session: Some(SessionRef {
                id: "00000000000000ab".into(),
            }),
            summary: "x read \u{1b}[2J".into(),
            tags: vec!["T1552".into()],
            event_ids: vec!["e1".into()],
            count: 3,
            first_time: Timestamp(0),
            last_time: Timestamp(1_000_000_000),
            in_loss_window: false,
        };
        let v: serde_json::Value = serde_json::from_str(&falco_json(&a)).unwrap();
        assert_eq!(v["priority"], "Error");
        assert_eq!(v["source"], "agentwatch");
        assert_eq!(v["hostname"], "h");
        assert_eq!(v["output"], "x read \u{1b}[2J");
        assert_eq!(v["output_fields"]["agent.name"], "claude");
        assert_eq!(v["count"], 3);
        assert_eq!(v["time"], "1970-01-01T00:00:01Z");
        assert!(!falco_json(&a).contains('\n'));
    }
}
