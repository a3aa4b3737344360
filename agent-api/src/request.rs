//! Requests: one JSON object a line, tagged by `op`. Unknown fields are refused, so a typo in a
//! client fails loudly (`bad request: ...`) instead of being ignored.

use serde::{Deserialize, Serialize};

use crate::TriageState;

/// Results a `search` or `alerts` request returns when it names no `limit`.
pub const DEFAULT_LIMIT: usize = 100;

/// A request to the daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Put the calling process (from `SO_PEERCRED`) into a new session of agent `agent`.
    /// Answer: [`Registered`](crate::Registered).
    Register { agent: String },
    /// Programs, rates, losses, sessions, policy and store figures.
    /// Answer: [`Status`](crate::Status).
    Status,
    /// Stream live events and alerts (optionally of one session). Answer: [`Done`](crate::Done),
    /// then [`StreamItem`](crate::StreamItem)s.
    Subscribe {
        #[serde(default)]
        session: Option<String>,
        /// Include events (default true).
        #[serde(default = "yes")]
        events: bool,
        /// Include alerts (default true).
        #[serde(default = "yes")]
        alerts: bool,
    },
    /// Loaded rules with hit counts and the policy state. Answer: [`RulesListing`](crate::RulesListing).
    Rules,
    /// Query stored events and alerts. Answer: [`SearchResults`](crate::SearchResults).
    Search {
        #[serde(default)]
        query: String,
        #[serde(default)]
        since: Option<String>,
        #[serde(default)]
        until: Option<String>,
        #[serde(default = "default_limit")]
        limit: usize,
        #[serde(default)]
        offset: usize,
    },
    /// Stored alerts at or above a severity, newest first. Answer: [`AlertList`](crate::AlertList).
    Alerts {
        #[serde(default)]
        since: Option<String>,
        #[serde(default)]
        severity: Option<String>,
        #[serde(default = "default_limit")]
        limit: usize,
    },
    /// Sessions seen. Answer: [`SessionList`](crate::SessionList).
    Sessions {
        #[serde(default)]
        since: Option<String>,
    },
    /// One session's process tree and timeline. Answer: [`SessionDetail`](crate::SessionDetail).
    Session { id: String },
    /// Set an alert's triage state (`open`, `acknowledged`, `resolved`) with a note. The state
    /// stays a string on the wire so that a bad one gets the daemon's own error, not a parse
    /// error. Answer: [`Done`](crate::Done).
    Triage {
        alert_id: String,
        state: String,
        #[serde(default)]
        note: String,
    },
    /// An agent's hook, forwarded by `agentwatch hook` on the hook socket: `agent` names the
    /// hook flavour (`claude-code`, `codex`, `gemini-cli`), `payload` is the JSON the agent gave
    /// its hook command. The session is the calling process's (from `SO_PEERCRED`), never one
    /// named in the payload. Answer: [`HookAnswer`](crate::HookAnswer).
    Hook {
        agent: String,
        payload: serde_json::Value,
    },
    /// Act on a live session: `kill`, `freeze` or `thaw` it, with a note. Only root and the
    /// daemon's uid may ask; the action is recorded as a `response.action` event of the session
    /// with the caller's uid. Answer: [`Responded`](crate::Responded).
    Respond {
        session: String,
        action: SessionAction,
        #[serde(default)]
        note: String,
    },
}

/// What `respond` does to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionAction {
    /// SIGKILL every process of the session (`cgroup.kill`, then each pid until none is left).
    Kill,
    /// Stop every process of the session at once (cgroup v2 freezer).
    Freeze,
    /// Resume a frozen session.
    Thaw,
}

impl SessionAction {
    /// The name on the wire and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SessionAction::Kill => "kill",
            SessionAction::Freeze => "freeze",
            SessionAction::Thaw => "thaw",
        }
    }
}

fn yes() -> bool {
    true
}

fn default_limit() -> usize {
    DEFAULT_LIMIT
}

impl Request {
    /// The `op` tag, as on the wire.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Register { .. } => "register",
            Request::Status => "status",
            Request::Rules => "rules",
            Request::Subscribe { .. } => "subscribe",
            Request::Search { .. } => "search",
            Request::Alerts { .. } => "alerts",
            Request::Sessions { .. } => "sessions",
            Request::Session { .. } => "session",
            Request::Triage { .. } => "triage",
            Request::Hook { .. } => "hook",
            Request::Respond { .. } => "respond",
        }
    }

    /// Every op, in the order of the variants (and of the protocol's documentation).
    pub const OPS: [&'static str; 11] = [
        "register",
        "status",
        "subscribe",
        "rules",
        "search",
        "alerts",
        "sessions",
        "session",
        "triage",
        "hook",
        "respond",
    ];

    /// A triage change.
    pub fn triage(
        alert_id: impl Into<String>,
        state: TriageState,
        note: impl Into<String>,
    ) -> Request {
        Request::Triage {
            alert_id: alert_id.into(),
            state: state.name().to_owned(),
            note: note.into(),
        }
    }

    /// A subscription to the live stream.
    pub fn subscribe(session: Option<String>, events: bool, alerts: bool) -> Request {
        Request::Subscribe {
            session,
            events,
            alerts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omitted_fields_take_their_documented_defaults() {
        let r: Request = serde_json::from_str(r#"{"op":"search","query":"x"}"#).unwrap();
        assert_eq!(
            r,
            Request::Search {
                query: "x".into(),
                since: None,
                until: None,
                limit: 100,
                offset: 0
            }
        );
        let r: Request = serde_json::from_str(r#"{"op":"subscribe"}"#).unwrap();
        assert_eq!(r, Request::subscribe(None, true, true));
    }

    /// The derive lists the variants in its error: `OPS` must be exactly that list.
    #[test]
    fn ops_lists_every_variant() {
        let e = serde_json::from_str::<Request>(r#"{"op":"zzz"}"#)
            .unwrap_err()
            .to_string();
        let listed: Vec<&str> = e
            .split("expected one of ")
            .nth(1)
            .unwrap_or_else(|| panic!("{e}"))
            .split('`')
            .skip(1)
            .step_by(2)
            .collect();
        assert_eq!(listed, Request::OPS, "{e}");
    }

    #[test]
    fn unknown_fields_and_ops_are_refused() {
        assert!(serde_json::from_str::<Request>(r#"{"op":"session","id":"x","pid":1}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"nope"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"agent":"x"}"#).is_err());
    }

    #[test]
    fn every_request_round_trips_and_names_its_op() {
        let all = [
            Request::Register { agent: "a".into() },
            Request::Status,
            Request::subscribe(Some("s".into()), false, true),
            Request::Rules,
            Request::Search {
                query: "kind:file.open".into(),
                since: Some("15m".into()),
                until: None,
                limit: 5,
                offset: 1,
            },
            Request::Alerts {
                since: None,
                severity: Some("high".into()),
                limit: 3,
            },
            Request::Sessions { since: None },
            Request::Session { id: "s".into() },
            Request::triage("a-1", TriageState::Acknowledged, "mine"),
            Request::Hook {
                agent: "claude-code".into(),
                payload: serde_json::json!({"hook_event_name": "PreToolUse"}),
            },
            Request::Respond {
                session: "s".into(),
                action: SessionAction::Freeze,
                note: "look first".into(),
            },
        ];
        for (r, op) in all.iter().zip(Request::OPS) {
            let v = serde_json::to_value(r).unwrap();
            assert_eq!(v["op"], op);
            assert_eq!(r.op(), op);
            assert_eq!(&serde_json::from_value::<Request>(v).unwrap(), r);
        }
    }
}
