//! Answers: the `ok`/`error` envelope ([`Reply`]) and one type per request's answer.
//!
//! Answer types do not refuse unknown fields, so an older client keeps working against a newer
//! daemon that added some; status figures default when absent, so a partial status (an offline
//! backend, a test server) still parses.

use std::collections::BTreeMap;

use agent_model::{Kind, Severity, Timestamp};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::{ApiError, Hit, SessionSummary};

/// One answer line: `{"ok": true, ...T}` or `{"ok": false, "error": "..."}`.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply<T> {
    Ok(T),
    Err(String),
}

impl<T> Reply<T> {
    /// A failed answer with this message.
    pub fn err(e: impl std::fmt::Display) -> Reply<T> {
        Reply::Err(e.to_string())
    }

    /// The answer, or [`ApiError::Refused`] with the daemon's message.
    pub fn into_result(self) -> Result<T, ApiError> {
        match self {
            Reply::Ok(t) => Ok(t),
            Reply::Err(e) => Err(ApiError::Refused(e)),
        }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Reply<U> {
        match self {
            Reply::Ok(t) => Reply::Ok(f(t)),
            Reply::Err(e) => Reply::Err(e),
        }
    }
}

impl<T, E: std::fmt::Display> From<Result<T, E>> for Reply<T> {
    fn from(r: Result<T, E>) -> Reply<T> {
        match r {
            Ok(t) => Reply::Ok(t),
            Err(e) => Reply::err(e),
        }
    }
}

#[derive(Serialize)]
struct OkWire<'a, T> {
    ok: bool,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Serialize)]
struct ErrWire<'a> {
    ok: bool,
    error: &'a str,
}

impl<T: Serialize> Serialize for Reply<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Reply::Ok(body) => OkWire { ok: true, body }.serialize(s),
            Reply::Err(error) => ErrWire { ok: false, error }.serialize(s),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Reply<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut m = serde_json::Map::deserialize(d)?;
        match m.remove("ok") {
            Some(Value::Bool(true)) => T::deserialize(Value::Object(m))
                .map(Reply::Ok)
                .map_err(D::Error::custom),
            Some(Value::Bool(false)) => Ok(Reply::Err(match m.remove("error") {
                Some(Value::String(e)) => e,
                _ => "request failed".to_owned(),
            })),
            _ => Err(D::Error::custom("answer without a boolean `ok`")),
        }
    }
}

/// The answer to `triage`, and the first line of a `subscribe` stream: nothing but `ok`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {}

/// The answer to `register`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    /// The new session's id (16 hex digits).
    pub session: String,
    /// The registered process: the caller, from `SO_PEERCRED`.
    pub pid: u32,
}

/// The answer to `hook`: what the agent's hook must tell the agent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookAnswer {
    /// `allow` (no objection: the agent's own permission rules still apply) or `deny`.
    pub decision: String,
    /// Why it was denied: the deny rule's output, shown to the agent's model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The rule that denied it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The caller's session; absent when the calling process is in no session (then nothing
    /// is recorded and the answer is `allow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The id of the recorded `agent.*` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

impl HookAnswer {
    pub fn is_deny(&self) -> bool {
        self.decision == "deny"
    }
}

/// The answer to `respond`: what was done (also recorded as a `response.action` event).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Responded {
    pub session: String,
    /// `kill_session`, `freeze_session` or `thaw_session`.
    pub action: String,
    /// `enforce` (manual actions are never dry runs).
    pub mode: String,
    /// `done`.
    pub result: String,
    /// Processes signalled, frozen or thawed.
    pub processes: u64,
    /// The id of the `response.action` event that records it.
    pub event: String,
}

/// The answer to `status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    pub pid: u32,
    pub uptime_s: f64,
    pub host: String,
    /// Where the config came from (a path, or `built-in`).
    pub config: String,
    /// Agent names of the config.
    pub agents: Vec<String>,
    /// eBPF programs attached.
    pub programs: Vec<String>,
    pub ringbuf_bytes: u64,
    /// Events delivered, by kind name.
    pub events: BTreeMap<String, u64>,
    /// Mean rate since start, by kind name.
    pub events_per_s: BTreeMap<String, f64>,
    /// Records lost in the kernel (ring buffer full), by kind name.
    pub losses: BTreeMap<String, u64>,
    /// Failures counted by the eBPF programs, by kind name.
    pub kernel_errors: BTreeMap<String, u64>,
    pub decode_errors: u64,
    /// Live sessions.
    pub sessions: Vec<LiveSession>,
    pub live_subscribers: u64,
    /// Failed writes to the JSON-lines outputs.
    pub output_errors: u64,
    pub policy: Option<PolicyHealth>,
    /// Absent when the daemon runs without a store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreStatus>,
    /// True in the answer of a read-only backend on a data dir ([`OfflineStatus`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub offline: bool,
    /// Integrity of the kernel maps an attacker with bpf() can edit (absent offline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity: Option<IntegrityStatus>,
    /// Fleet outputs (`[[output]] type = "nats"`), absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fleet: Vec<FleetOutputStatus>,
    /// Egress policy (`[[egress]]`), absent when the programs are not attached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<EgressStatus>,
    /// The TLS plaintext parsers (`llm.*`), absent until a session's TLS record arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<IntentStatus>,
}

/// The TLS plaintext parsers in `status` (issue #16): what they saw, parsed and cut.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IntentStatus {
    /// TLS plaintext records (`SSL_write`/`SSL_read` chunks) handed to the parsers.
    pub tls_records: u64,
    /// Plaintext bytes handed to the parsers (filler for uncopied bytes included).
    pub tls_bytes: u64,
    /// `llm.request` events by provider (`anthropic`, `open_ai_chat`, ...).
    pub requests: BTreeMap<String, u64>,
    /// `llm.response` events by provider.
    pub responses: BTreeMap<String, u64>,
    /// Malformed input: unparsable HTTP/1.1 heads, HTTP/2 frame and HPACK errors, bodies or SSE
    /// data that were not the promised JSON, MCP lines that were not JSON-RPC.
    pub parse_failures: u64,
    /// Bytes dropped by bounds: buffered past `max_buffer`, or counted by the kernel and never
    /// copied (past its 32 KiB a call).
    pub bytes_dropped: u64,
    /// Every parser counter by name (`agent_intent::Stats`), zeros left out.
    pub parser: BTreeMap<String, u64>,
}

/// The egress programs in `status`: the kernel's counters and what each policy did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EgressStatus {
    /// Hooks the programs are attached to (`cgroup/connect4`, ...).
    pub hooks: Vec<String>,
    /// Connects and sends the kernel refused with `EPERM`, over all policies.
    pub denied: u64,
    /// Misses let through by dry-run policies, over all policies.
    pub dry_run: u64,
    /// Records of misses the programs could not send (the verdicts were applied).
    pub lost: u64,
    /// Repeats of a miss folded into its `egress.denied` alert's count, not stored.
    pub suppressed: u64,
    /// Destinations allowed to a session by its own DNS answers (map entries written).
    pub dns_allowed: u64,
    /// DNS answers not used (unparsable, or from a resolver the policy does not allow).
    pub dns_refused: u64,
    /// Per `[[egress]]` table, in config order.
    pub policies: Vec<EgressPolicyStatus>,
}

/// One `[[egress]]` table in `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EgressPolicyStatus {
    pub name: String,
    /// `enforce` or `dry_run`.
    pub mode: String,
    pub agents: Vec<String>,
    /// Misses recorded since start, by verdict (records the daemon read; repeats included).
    pub denied: u64,
    pub dry_run: u64,
}

/// The daemon's checks of its kernel maps (`SESSIONS`, `HANDLERS`, the selector maps,
/// `OWN_IDS`) against the copy it keeps in user space.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IntegrityStatus {
    /// Checks run since start (periodic, and one after each bpf() command aimed at the daemon).
    pub checks: u64,
    /// Map entries found missing, altered or added, and put back.
    pub repairs: u64,
    /// Entries that could not be put back.
    pub failures: u64,
    /// When the last check ran.
    pub last_check: Option<Timestamp>,
    /// What the last check that found something found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_finding: Option<String>,
}

/// One fleet output in `status`: how far shipping from the spool has come.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FleetOutputStatus {
    /// The output's `name`.
    pub name: String,
    pub servers: Vec<String>,
    /// Connected to a NATS server now.
    pub connected: bool,
    /// Last spool seq JetStream acknowledged (the persisted cursor).
    pub acked_seq: u64,
    /// Spool records durable but not yet acknowledged.
    pub backlog: u64,
    /// Age of the oldest record not yet acknowledged, in milliseconds (0 with no backlog).
    pub lag_ms: u64,
    /// Messages acknowledged since the daemon started.
    pub shipped: u64,
    /// When the last acknowledgement arrived.
    pub last_ack: Option<Timestamp>,
    /// Why shipping is not going (cleared by the next acknowledged batch).
    pub last_error: Option<String>,
    /// Records retention deleted before they were shipped.
    pub dropped: u64,
}

/// The answer to `status` of a read-only backend on a data dir (no daemon): `{"ok": true,
/// "offline": true}`. It parses as a [`Status`] with `offline` set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineStatus {
    pub offline: bool,
}

/// A live session in `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LiveSession {
    pub id: String,
    pub agent: String,
    pub root_pid: u32,
    pub start: Timestamp,
    pub live_processes: u64,
    pub events: u64,
}

/// The running policy: where it came from, its generation and hash, and the last rejected reload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyStatus {
    /// The policy files or directories, or the built-in policy.
    pub source: String,
    /// Bumped by each accepted reload.
    pub generation: u64,
    pub hash: String,
    /// Number of rules.
    pub rules: u64,
    /// Why the last reload was rejected (`null` once a reload succeeds).
    pub last_error: Option<String>,
    /// Rules changed by `[[override]]`s (local files such as `local.d/`).
    pub overridden: u64,
}

/// The policy in `status`: its [`PolicyStatus`] and the engine's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyHealth {
    #[serde(flatten)]
    pub policy: PolicyStatus,
    /// Memory held by windowed rules.
    #[serde(default)]
    pub state_bytes: u64,
    /// Alerts raised since start.
    #[serde(default)]
    pub alerts: u64,
    /// `[rule id, hits]` of the rules that hit, most hits first.
    #[serde(default)]
    pub hits: Vec<(String, u64)>,
}

/// Figures of the store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreStats {
    pub events: u64,
    pub alerts: u64,
    pub spool_bytes: u64,
    pub index_bytes: u64,
    /// Last sequence handed out.
    pub last_seq: u64,
    /// Last sequence fsynced (acknowledged).
    pub durable_seq: u64,
    /// Last sequence in a committed index.
    pub indexed_seq: u64,
    /// Records not yet searchable.
    pub lag: u64,
    /// The spool does not take writes now (disk full): records wait in memory, then are dropped.
    #[serde(default)]
    pub full: bool,
    /// The write error while `full`.
    #[serde(default)]
    pub space_error: Option<String>,
    /// Records refused since start because the disk did not take them (never stored).
    #[serde(default)]
    pub dropped: u64,
    /// Times the spool stopped taking writes since start.
    #[serde(default)]
    pub outages: u64,
    /// Events refused since start because free space was below the `[store] low_space` reserve
    /// (kept for alerts and monitor events); counted here, not as store errors.
    #[serde(default)]
    pub reserve_dropped: u64,
    /// The indexer's last error while it retries (search is stale until it commits again).
    #[serde(default)]
    pub index_error: Option<String>,
}

/// The store in `status`: its [`StoreStats`] and the daemon's write errors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    #[serde(flatten)]
    pub stats: StoreStats,
    /// Failed appends since start.
    #[serde(default)]
    pub errors: u64,
    #[serde(default)]
    pub last_error: Option<String>,
    /// The store's directory.
    #[serde(default)]
    pub dir: String,
}

/// The answer to `rules`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesListing {
    pub policy: PolicyStatus,
    pub rules: Vec<RuleStatus>,
}

/// One rule of a `rules` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleStatus {
    pub id: String,
    pub severity: Severity,
    pub enabled: bool,
    pub description: String,
    pub kinds: Vec<Kind>,
    pub tags: Vec<String>,
    /// `count`, `distinct`, `sequence`, or `event` for a stateless rule.
    pub mode: String,
    /// `file:line:col` of the definition.
    pub defined_at: String,
    /// Alerts raised since start.
    #[serde(default)]
    pub hits: u64,
    /// Time of the rule's newest alert.
    #[serde(default)]
    pub last_hit: Option<Timestamp>,
    /// `file:line:col` of each `[[override]]` applied to the rule, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// The rule's `action` when it is not `alert` (`kill`, `kill_session`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The action's mode: `enforce`, `dry_run`, or `default` (the daemon's `[response]
    /// default_mode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_mode: Option<String>,
}

/// The answer to `search`: hits newest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchResults {
    /// Matches in all (the hits are a page of them).
    pub total: u64,
    pub hits: Vec<Hit>,
    /// `null` unless the query ends in an aggregation.
    pub aggregation: Option<crate::Aggregation>,
}

/// The answer to `alerts`: alert hits newest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertList {
    pub hits: Vec<Hit>,
}

/// The answer to `sessions`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionList {
    pub sessions: Vec<SessionSummary>,
}

/// The answer to any request, typed by the request's op: what a client that sends requests of
/// several kinds on one connection (the TUI) gets back. [`Answer::read`] parses an answer line
/// as the answer type of the request it answers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Answer {
    Registered(Registered),
    Status(Box<Status>),
    Rules(RulesListing),
    Search(SearchResults),
    Alerts(AlertList),
    Sessions(SessionList),
    Session(Box<crate::SessionDetail>),
    /// The answer to `triage`, and the first line of a `subscribe` stream.
    Done(Done),
    Hook(HookAnswer),
    /// The answer to `respond`.
    Responded(Responded),
}

fn read_as<T: DeserializeOwned>(
    line: &str,
    f: impl FnOnce(T) -> Answer,
) -> Result<Reply<Answer>, serde_json::Error> {
    Ok(serde_json::from_str::<Reply<T>>(line)?.map(f))
}

impl Answer {
    /// Parse `line`, the answer to `req`.
    pub fn read(req: &crate::Request, line: &str) -> Result<Reply<Answer>, serde_json::Error> {
        use crate::Request as R;
        match req {
            R::Register { .. } => read_as(line, Answer::Registered),
            R::Status => read_as(line, |s| Answer::Status(Box::new(s))),
            R::Rules => read_as(line, Answer::Rules),
            R::Search { .. } => read_as(line, Answer::Search),
            R::Alerts { .. } => read_as(line, Answer::Alerts),
            R::Sessions { .. } => read_as(line, Answer::Sessions),
            R::Session { .. } => read_as(line, |d| Answer::Session(Box::new(d))),
            R::Subscribe { .. } | R::Triage { .. } => read_as(line, Answer::Done),
            R::Hook { .. } => read_as(line, Answer::Hook),
            R::Respond { .. } => read_as(line, Answer::Responded),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_answers_carry_their_fields_beside_ok() {
        let r = Reply::Ok(Registered {
            session: "00000000000000ab".into(),
            pid: 7,
        });
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(s, r#"{"ok":true,"session":"00000000000000ab","pid":7}"#);
        assert_eq!(serde_json::from_str::<Reply<Registered>>(&s).unwrap(), r);
        assert_eq!(
            serde_json::to_string(&Reply::Ok(Done {})).unwrap(),
            r#"{"ok":true}"#
        );
    }

    #[test]
    fn failed_answers_carry_the_error_whatever_the_expected_type() {
        let r: Reply<Status> = Reply::err("bad request: x");
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(s, r#"{"ok":false,"error":"bad request: x"}"#);
        assert_eq!(
            serde_json::from_str::<Reply<SearchResults>>(&s).unwrap(),
            Reply::Err("bad request: x".into())
        );
        assert!(matches!(
            r.into_result(),
            Err(ApiError::Refused(e)) if e == "bad request: x"
        ));
        assert!(serde_json::from_str::<Reply<Done>>(r#"{"error":"x"}"#).is_err());
    }

    #[test]
    fn any_answer_is_read_as_the_type_of_its_request() {
        let st = Answer::read(&crate::Request::Status, r#"{"ok":true,"pid":3}"#).unwrap();
        assert!(
            matches!(&st, Reply::Ok(Answer::Status(s)) if s.pid == 3),
            "{st:?}"
        );
        let l = Answer::read(&crate::Request::Rules, r#"{"ok":true,"pid":3}"#);
        assert!(l.is_err(), "a status is not a rules listing: {l:?}");
        let t = Answer::read(
            &crate::Request::triage("a", crate::TriageState::Open, ""),
            "{\"ok\":true}",
        );
        assert_eq!(t.unwrap(), Reply::Ok(Answer::Done(Done {})));
        let e = Answer::read(
            &crate::Request::Sessions { since: None },
            r#"{"ok":false,"error":"x"}"#,
        );
        assert_eq!(e.unwrap(), Reply::Err("x".into()));
        // Written back, an answer is the line of its own type.
        let s = SessionList { sessions: vec![] };
        assert_eq!(
            serde_json::to_string(&Reply::Ok(Answer::Sessions(s.clone()))).unwrap(),
            serde_json::to_string(&Reply::Ok(s)).unwrap()
        );
    }

    #[test]
    fn the_offline_status_parses_as_a_status() {
        let s = serde_json::to_string(&Reply::Ok(OfflineStatus { offline: true })).unwrap();
        assert_eq!(s, r#"{"ok":true,"offline":true}"#);
        let st = serde_json::from_str::<Reply<Status>>(&s)
            .unwrap()
            .into_result()
            .unwrap();
        assert!(st.offline);
        assert!(st.programs.is_empty());
    }

    #[test]
    fn policy_and_store_figures_sit_beside_their_nested_fields() {
        let p = PolicyHealth {
            policy: PolicyStatus {
                source: "built-in".into(),
                generation: 2,
                hash: "h".into(),
                rules: 3,
                last_error: None,
                overridden: 0,
            },
            state_bytes: 10,
            alerts: 1,
            hits: vec![("r".into(), 1)],
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["generation"], 2);
        assert!(
            v["last_error"].is_null(),
            "a cleared error is null, not absent"
        );
        assert_eq!(v["hits"], serde_json::json!([["r", 1]]));
        assert_eq!(serde_json::from_value::<PolicyHealth>(v).unwrap(), p);
    }
}
