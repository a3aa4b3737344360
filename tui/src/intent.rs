//! What the agent said it was doing, and where the monitor itself was blind, read out of events
//! defensively by field name.
//!
//! Agent intent (`agent.prompt`, `agent.tool_call`, `agent.tool_result`) arrives typed, but the
//! LLM traffic kinds (`llm.request`, `llm.response`) and the downtime figures of a restarted
//! monitor are newer than some daemons and some TUIs: they are looked up by their dotted field
//! name in the event's JSON (nested, as the event model writes it, or flat), so the TUI reads
//! them when present and draws the rest when not, and a value of the wrong type is ignored, never
//! a panic. Every string that comes out of here is escaped with [`safe`]. This module imports
//! nothing of the model, the views or the backend, so [`crate::answer`] and the model both use it.

use agent_model::{Event, Kind};
use serde_json::Value;

use crate::text::safe;

/// A field of an event's JSON by its dotted name: nested objects (`{"llm":{"model":..}}`) or a
/// flat key (`{"llm.model":..}`).
pub fn field<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    if let Some(x) = v.get(dotted) {
        return Some(x);
    }
    dotted.split('.').try_fold(v, |v, k| v.get(k))
}

/// A non-negative integer field (an integer, or a float that is one).
fn uint(v: &Value, dotted: &str) -> Option<u64> {
    let x = field(v, dotted)?;
    x.as_u64().or_else(|| {
        x.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

/// A number field, as f64.
fn num(v: &Value, dotted: &str) -> Option<f64> {
    field(v, dotted)?.as_f64().filter(|f| f.is_finite())
}

/// Model and token counts of one `llm.*` event (fields `llm.model`, `llm.input_tokens`,
/// `llm.output_tokens`), each when present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LlmUsage {
    /// Escaped model name.
    pub model: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}

/// The LLM usage of an event whose kind is an `llm.*` kind; `None` for every other event (they
/// are not serialised to look).
pub fn llm_usage(ev: &Event) -> Option<LlmUsage> {
    if !ev.kind().name().starts_with("llm.") {
        return None;
    }
    Some(llm_from_json(&serde_json::to_value(ev).ok()?))
}

/// [`llm_usage`] of an event's JSON.
pub fn llm_from_json(v: &Value) -> LlmUsage {
    LlmUsage {
        model: field(v, "llm.model")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(safe),
        input_tokens: uint(v, "llm.input_tokens"),
        output_tokens: uint(v, "llm.output_tokens"),
    }
}

/// What a session's agent events say about it: its model, tool calls and tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntentStats {
    /// Escaped, the last one seen.
    pub model: Option<String>,
    pub tool_calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Some `llm.response` carried token counts.
    pub tokens_known: bool,
}

impl IntentStats {
    /// Count one event: a tool call, or an LLM event's model and (for responses) tokens.
    pub fn add(&mut self, kind: Kind, llm: Option<&LlmUsage>) {
        if kind == Kind::AgentToolCall {
            self.tool_calls += 1;
        }
        let Some(u) = llm else { return };
        if let Some(m) = &u.model {
            self.model = Some(m.clone());
        }
        // Usage is reported on responses; a request's counts (if any) would count twice.
        if kind.name() == "llm.response" && (u.input_tokens.is_some() || u.output_tokens.is_some())
        {
            self.tokens_known = true;
            self.input_tokens = self
                .input_tokens
                .saturating_add(u.input_tokens.unwrap_or(0));
            self.output_tokens = self
                .output_tokens
                .saturating_add(u.output_tokens.unwrap_or(0));
        }
    }

    /// Nothing known.
    pub fn is_empty(&self) -> bool {
        *self == IntentStats::default()
    }
}

/// `1234` → `1.2k`, `5_600_000` → `5.6M`.
pub fn count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// The row text of a `monitor.start` that reports how long the monitor was down, with what the
/// kernel buffered meanwhile and what was lost: `monitor down 12s, 340 events buffered / 0
/// lost`. `None` when the event names no downtime (a first start, or an older daemon).
pub fn gap_text(ev: &Event) -> Option<String> {
    if ev.kind() != Kind::MonitorStart {
        return None;
    }
    gap_from_json(&serde_json::to_value(ev).ok()?)
}

/// [`gap_text`] of an event's JSON: `monitor.downtime_ms` (what the daemon writes; `_s`, `_ns`
/// also read), with `monitor.buffered` and `monitor.loss_count` when present.
pub fn gap_from_json(v: &Value) -> Option<String> {
    let secs = num(v, "monitor.downtime_s")
        .or_else(|| num(v, "monitor.downtime_ms").map(|ms| ms / 1e3))
        .or_else(|| num(v, "monitor.downtime_ns").map(|ns| ns / 1e9))
        .or_else(|| num(v, "monitor.downtime"))
        .filter(|s| *s >= 0.0)?;
    let first = |names: &[&str]| names.iter().find_map(|n| uint(v, n));
    let buffered = first(&[
        "monitor.buffered",
        "monitor.events_buffered",
        "monitor.buffered_events",
    ]);
    let lost = first(&[
        "monitor.lost",
        "monitor.events_lost",
        "monitor.lost_events",
        "monitor.loss_count",
    ]);
    let down = if secs < 10.0 {
        format!("{secs:.1}s")
    } else {
        crate::text::duration((secs * 1e9).min(i64::MAX as f64) as i64)
    };
    let n = |x: Option<u64>| x.map_or("?".to_string(), |x| x.to_string());
    Some(format!(
        "monitor down {down}, {} events buffered / {} lost",
        n(buffered),
        n(lost)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_found_nested_or_flat_and_wrong_types_are_ignored() {
        let v = json!({"llm": {"model": "m", "input_tokens": 12}, "monitor.lost": 3});
        assert_eq!(field(&v, "llm.model"), Some(&json!("m")));
        assert_eq!(uint(&v, "llm.input_tokens"), Some(12));
        assert_eq!(uint(&v, "monitor.lost"), Some(3));
        assert_eq!(uint(&v, "llm.model"), None);
        assert_eq!(field(&v, "llm.output_tokens"), None);
    }

    #[test]
    fn tokens_come_from_responses_and_tool_calls_are_counted() {
        let mut s = IntentStats::default();
        s.add(Kind::AgentToolCall, None);
        s.add(Kind::AgentToolResult, None);
        assert_eq!(s.tool_calls, 1);
        assert!(!s.tokens_known);
        s.add(
            Kind::AgentPrompt,
            Some(&LlmUsage {
                model: Some("claude-x".into()),
                ..Default::default()
            }),
        );
        assert_eq!(s.model.as_deref(), Some("claude-x"));
        assert_eq!(count(999), "999");
        assert_eq!(count(12_345), "12.3k");
        assert_eq!(count(5_600_000), "5.6M");
    }

    #[test]
    fn llm_events_give_model_and_tokens_summed_over_responses() {
        let resp = |m: &str, i: u64, o: u64| {
            llm_from_json(&json!({"kind": "llm.response",
                "llm": {"model": m, "input_tokens": i, "output_tokens": o}}))
        };
        let a = resp("claude-\u{1b}[31mx", 1200, 300);
        assert_eq!(a.model.as_deref(), Some("claude-\\x1b[31mx"), "escaped");
        // Wrong types are ignored, not trusted.
        let bad = llm_from_json(&json!({"llm": {"model": 7, "input_tokens": "many"}}));
        assert_eq!(bad, LlmUsage::default());
        // Nothing from a non-`llm.*` event, whatever it carries.
        assert_eq!(llm_usage(&Event::default()), None);
        // A kind without the `llm.response` name (this build has none) counts no tokens.
        let mut s = IntentStats::default();
        s.add(Kind::AgentToolCall, Some(&a));
        assert!(!s.tokens_known);
        assert_eq!(s.model.as_deref(), Some("claude-\\x1b[31mx"));
        assert_eq!(s.tool_calls, 1);
    }

    #[test]
    fn a_restart_with_downtime_reads_as_a_gap_and_one_without_does_not() {
        let g = gap_from_json(&json!({"kind": "monitor.start",
            "monitor": {"downtime_s": 12.4, "buffered": 340, "lost": 0}}));
        assert_eq!(
            g.as_deref(),
            Some("monitor down 12s, 340 events buffered / 0 lost")
        );
        let g = gap_from_json(&json!({"monitor": {"downtime_ms": 2500, "events_lost": 7}}));
        assert_eq!(
            g.as_deref(),
            Some("monitor down 2.5s, ? events buffered / 7 lost")
        );
        // No downtime, a negative one, or one of the wrong type: no gap row.
        assert_eq!(
            gap_from_json(&json!({"monitor": {"message": "started"}})),
            None
        );
        assert_eq!(gap_from_json(&json!({"monitor": {"downtime_s": -1}})), None);
        assert_eq!(
            gap_from_json(&json!({"monitor": {"downtime_s": "12"}})),
            None
        );
        // A plain first start is not a gap row.
        assert_eq!(gap_text(&Event::default()), None);
    }
}
