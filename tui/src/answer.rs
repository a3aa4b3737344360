//! The daemon's typed answers (`agent-api`) turned into the view models' rows, with escaped
//! display strings.
//!
//! The answers arrive already parsed into the API's types (by the backend, on its own thread);
//! this module only makes rows of them, so the view models in [`crate::state`] see rows and the
//! request worker in [`crate::backend`] can build a large `alerts` answer's rows off the UI
//! thread with the same code. Agent-originated strings are escaped with [`safe`] here, once,
//! when they enter the model. This module imports neither the model nor the backend, so both
//! can use it.

use std::collections::BTreeMap;

use agent_api::{
    Aggregation, AlertList, Hit, Item, ProcessNode, RulesListing, SearchResults, SessionList,
    TriageEntry, TriageState,
};
use agent_model::{Alert, Event, FIELDS, Kind, Severity, Timestamp};

use crate::intent::{IntentStats, LlmUsage, gap_text, llm_usage};
use crate::text::{bytes, duration, safe};

// ---- alerts ----

/// An alert with its triage and its display strings (escaped once).
#[derive(Clone, Debug)]
pub struct AlertRow {
    pub alert: Alert,
    pub triage: TriageState,
    /// Escaped triage note and author.
    pub note: String,
    pub agent: String,
    pub session: String,
    pub rule: String,
    pub summary: String,
    /// Lowercase text the filter matches against.
    pub(crate) hay: String,
}

impl AlertRow {
    /// A row for an alert never triaged (a live alert).
    pub fn new(alert: Alert) -> AlertRow {
        AlertRow::triaged(alert, None)
    }

    fn triaged(alert: Alert, triage: Option<&TriageEntry>) -> AlertRow {
        let agent = safe(alert.agent.as_ref().map_or("-", |a| a.name.as_str()));
        let session = safe(alert.session.as_ref().map_or("-", |s| s.id.as_str()));
        let rule = safe(&alert.rule);
        let summary = safe(&alert.summary.to_str_lossy());
        let hay = format!(
            "{} {} {} {} {} {}",
            alert.severity.name(),
            agent,
            session,
            rule,
            summary,
            alert.tags.join(" ")
        )
        .to_lowercase();
        AlertRow {
            alert,
            triage: triage.map(|t| t.state).unwrap_or_default(),
            note: triage.map(triage_note).unwrap_or_default(),
            agent,
            session,
            rule,
            summary,
            hay,
        }
    }

    /// The row of an alert hit; `None` for an event hit.
    pub fn from_hit(h: Hit) -> Option<AlertRow> {
        match h.item {
            Item::Alert(a) => Some(AlertRow::triaged(*a, h.triage.as_ref())),
            Item::Event(_) => None,
        }
    }
}

/// The rows of an `alerts` answer. The worker calls this on its own thread, so a large answer
/// is turned into rows off the UI thread.
pub fn alert_rows(l: AlertList) -> Vec<Box<AlertRow>> {
    l.hits
        .into_iter()
        .filter_map(|h| AlertRow::from_hit(h).map(Box::new))
        .collect()
}

fn triage_note(t: &TriageEntry) -> String {
    match (t.note.is_empty(), t.by.is_empty()) {
        (true, true) => String::new(),
        (false, true) => safe(&t.note),
        (true, false) => format!("by {}", safe(&t.by)),
        (false, false) => format!("{} (by {})", safe(&t.note), safe(&t.by)),
    }
}

// ---- sessions ----

/// One session in the list.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRow {
    /// Raw id, used in requests only.
    pub id: String,
    pub id_text: String,
    pub agent: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub events: u64,
    pub alerts: u64,
    pub root: String,
    pub live: bool,
    /// Live processes, from the last status (live sessions only).
    pub procs: Option<u64>,
    /// What a response did to it: `frozen` or `killed` (`None`: running, or thawed).
    pub response: Option<&'static str>,
    /// Model, tool calls and tokens, from the session's agent and `llm.*` events.
    pub intent: IntentStats,
}

/// The rows of a `sessions` answer, in answer order, none marked live (liveness comes from the
/// status answer).
pub fn session_rows(l: SessionList) -> Vec<SessionRow> {
    l.sessions
        .into_iter()
        .map(|s| {
            let root = match (&s.root_exe, s.root_pid) {
                (Some(e), Some(p)) => format!("{} [{}]", safe(e), p),
                (Some(e), None) => safe(e),
                _ => "-".into(),
            };
            SessionRow {
                id_text: safe(&s.id),
                live: false,
                agent: safe(s.agent.as_deref().unwrap_or("-")),
                id: s.id,
                start: s.start,
                end: s.end,
                events: s.events,
                alerts: s.alerts,
                root,
                procs: None,
                response: None,
                intent: IntentStats::default(),
            }
        })
        .collect()
}

// ---- timeline and search entries ----

/// What a timeline (or search) entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Event(Kind),
    Alert(Severity),
    /// A `monitor.loss` event (the sensor lost records) or a `monitor.start` (a restart: a
    /// gap in what was seen); drawn as a marked span.
    Loss,
}

/// One row of the timeline or of search results, with its full detail (escaped).
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub id: String,
    pub time: Timestamp,
    pub kind: EntryKind,
    /// One escaped line.
    pub text: String,
    /// The alert falls in a loss window.
    pub in_loss: bool,
    /// For alerts: triage state; folded count.
    pub count: u64,
    /// Session id (raw) to open from search.
    pub session: Option<String>,
    /// Every field: (name, escaped value).
    pub fields: Vec<(String, String)>,
    /// Raw `intent.tool_call_id`: the tool call this event belongs to (or is).
    pub call_id: Option<String>,
    /// Nesting in the timeline: 1 under the tool call that caused it.
    pub depth: u8,
    /// Model and tokens of an `llm.*` event.
    pub llm: Option<LlmUsage>,
}

impl Entry {
    /// An `agent.tool_call` row: the parent of what the call caused.
    pub fn is_tool_call(&self) -> bool {
        self.kind == EntryKind::Event(Kind::AgentToolCall) && self.call_id.is_some()
    }
}

/// The entry of a hit (an event, or an alert with its triage).
pub fn hit_entry(h: Hit) -> Entry {
    match h.item {
        Item::Event(e) => event_entry(&e),
        Item::Alert(a) => alert_entry(&AlertRow::triaged(*a, h.triage.as_ref())),
    }
}

/// The entry of an alert row.
pub fn alert_entry(r: &AlertRow) -> Entry {
    let a = &r.alert;
    let mut fields = vec![
        ("alert.id".into(), safe(&a.id)),
        ("time".into(), a.time.to_rfc3339()),
        ("host".into(), safe(&a.host)),
        ("rule".into(), r.rule.clone()),
        ("severity".into(), a.severity.name().into()),
        ("agent.name".into(), r.agent.clone()),
        ("session.id".into(), r.session.clone()),
        ("summary".into(), r.summary.clone()),
        ("tags".into(), safe(&a.tags.join(" "))),
        ("event_ids".into(), safe(&a.event_ids.join(" "))),
        ("count".into(), a.count.to_string()),
        ("first_time".into(), a.first_time.to_rfc3339()),
        ("last_time".into(), a.last_time.to_rfc3339()),
        ("in_loss_window".into(), a.in_loss_window.to_string()),
        ("triage.state".into(), r.triage.name().into()),
    ];
    if !r.note.is_empty() {
        fields.push(("triage.note".into(), r.note.clone()));
    }
    Entry {
        id: a.id.clone(),
        time: a.time,
        kind: EntryKind::Alert(a.severity),
        text: format!("{}  {}", r.rule, r.summary),
        in_loss: a.in_loss_window,
        count: a.count,
        session: a.session.as_ref().map(|s| s.id.clone()),
        fields,
        call_id: None,
        depth: 0,
        llm: None,
    }
}

/// The entry of an event.
pub fn event_entry(ev: &Event) -> Entry {
    let fields = FIELDS
        .iter()
        .filter_map(|f| Some((f.name.to_string(), safe(&ev.get(f.field)?.render()))))
        .collect();
    let (kind, text) = if ev.kind() == Kind::MonitorLoss {
        let m = ev.monitor.clone().unwrap_or_default();
        (
            EntryKind::Loss,
            format!(
                "LOSS: {} {} records lost{}",
                m.loss_count.unwrap_or(0),
                safe(m.loss_kind.as_deref().unwrap_or("?")),
                m.message
                    .map(|s| format!(" ({})", safe(&s)))
                    .unwrap_or_default()
            ),
        )
    } else if let Some(gap) = gap_text(ev) {
        // A restart after downtime: how long, and what the kernel kept meanwhile.
        (EntryKind::Loss, format!("GAP: {gap}"))
    } else if ev.kind() == Kind::MonitorStart {
        // A (re)started monitor: whatever happened while it was down was not seen.
        let msg = ev
            .monitor
            .as_ref()
            .and_then(|m| m.message.as_deref())
            .map(|s| format!(" ({})", safe(s)))
            .unwrap_or_default();
        (
            EntryKind::Loss,
            format!("GAP: monitor (re)started, events before this may be missing{msg}"),
        )
    } else {
        (EntryKind::Event(ev.kind()), event_text(ev))
    };
    Entry {
        id: ev.id.clone(),
        time: ev.time,
        kind,
        text,
        in_loss: false,
        count: 1,
        session: ev.session_id().map(str::to_string),
        fields,
        call_id: ev
            .intent
            .as_ref()
            .and_then(|i| i.tool_call_id.clone())
            .filter(|c| !c.is_empty()),
        depth: 0,
        llm: llm_usage(ev),
    }
}

/// One escaped line for an event: kind, process, agent and what it did.
pub fn event_text(ev: &Event) -> String {
    let p = &ev.process;
    let l = |b: &agent_model::BStr| safe(&b.to_str_lossy());
    let what = match ev.kind() {
        Kind::ProcessExec => {
            let argv = if p.cmdline.is_empty() {
                l(&p.exe)
            } else {
                l(&p.cmdline)
            };
            format!(
                "exec {}{}",
                argv,
                if p.args_truncated { " [truncated]" } else { "" }
            )
        }
        Kind::ProcessExit => match &ev.exit {
            Some(x) => match (x.code, x.signal) {
                (_, Some(s)) => format!("killed by signal {s}"),
                (Some(c), _) => format!("exit code {c}"),
                _ => "exit".into(),
            },
            None => "exit".into(),
        },
        Kind::ProcessFork => format!("forked from {}", ev.parent.as_ref().map_or(0, |p| p.pid)),
        Kind::FileOpen | Kind::FileUnlink | Kind::FileRename => match &ev.file {
            Some(f) => {
                let mut s = l(&f.path);
                if let Some(t) = &f.target {
                    s = format!("{s} -> {}", l(t));
                }
                if let Some(a) = &f.access {
                    s = format!("{s} ({})", safe(a));
                }
                if f.via.as_deref() == Some("io_uring") {
                    s.push_str(" via io_uring");
                }
                s
            }
            None => String::new(),
        },
        Kind::NetConnect | Kind::NetAccept | Kind::NetListen => ev
            .net
            .as_ref()
            .map(|n| agent_model::display::net_endpoint(n, safe))
            .unwrap_or_default(),
        Kind::AgentPrompt | Kind::AgentToolCall | Kind::AgentToolResult => match &ev.intent {
            Some(i) => intent_text(ev.kind(), i),
            None => String::new(),
        },
        _ => ev
            .monitor
            .as_ref()
            .and_then(|m| m.message.as_deref())
            .map(safe)
            .unwrap_or_default(),
    };
    format!(
        "{:<12} {}[{}] {}",
        ev.kind().name(),
        l(&p.comm),
        p.pid,
        what
    )
}

/// What an agent event says: the prompt, or the tool and its input, with the policy's denial
/// or the tool's failure.
fn intent_text(kind: Kind, i: &agent_model::Intent) -> String {
    let l = |b: &Option<agent_model::BStr>| {
        b.as_ref()
            .map(|b| safe(&b.to_str_lossy()))
            .unwrap_or_default()
    };
    let tool = safe(i.tool_name.as_deref().unwrap_or("?"));
    let mut s = match kind {
        Kind::AgentPrompt => format!("prompt: {}", l(&i.prompt)),
        Kind::AgentToolCall => format!("{tool}: {}", l(&i.tool_input)),
        _ => format!(
            "{tool} {}: {}",
            match i.tool_success {
                Some(true) => "ok",
                Some(false) => "failed",
                None => "done",
            },
            l(&i.tool_output)
        ),
    };
    if i.decision.as_deref() == Some("deny") {
        s = format!(
            "DENIED {s} ({})",
            safe(i.reason.as_deref().unwrap_or("policy"))
        );
    }
    s
}

/// A line of the process tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcLine {
    pub depth: usize,
    pub text: String,
}

/// A `session` answer as the timeline shows it: its id, its events and alerts as entries (in
/// answer order) and its process tree.
#[derive(Debug, Default)]
pub struct SessionTimeline {
    pub id: Option<String>,
    pub entries: Vec<Entry>,
    pub procs: Vec<ProcLine>,
}

pub fn session_timeline(d: agent_api::SessionDetail) -> SessionTimeline {
    SessionTimeline {
        procs: proc_tree(&d.processes, &d.roots),
        id: Some(d.id),
        entries: d
            .events
            .into_iter()
            .chain(d.alerts)
            .map(hit_entry)
            .collect(),
    }
}

fn proc_tree(procs: &[ProcessNode], roots: &[usize]) -> Vec<ProcLine> {
    let mut out = Vec::new();
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&r| (r, 0)).collect();
    let mut seen = vec![false; procs.len()];
    while let Some((i, depth)) = stack.pop() {
        let Some(p) = procs.get(i) else { continue };
        if std::mem::replace(&mut seen[i], true) {
            continue; // a cycle in bad data must not hang the UI
        }
        out.push(ProcLine {
            depth,
            text: format!("{} [{}]", safe(&p.exe), p.pid),
        });
        for &c in p.children.iter().rev() {
            stack.push((c, depth + 1));
        }
    }
    out
}

// ---- search ----

/// The aggregation with its field and term labels escaped.
fn escaped(a: Aggregation) -> Aggregation {
    match a {
        Aggregation::Terms {
            field,
            buckets,
            other,
        } => Aggregation::Terms {
            field: safe(&field),
            buckets: buckets.into_iter().map(|(l, n)| (safe(&l), n)).collect(),
            other,
        },
        a => a,
    }
}

/// A `search` answer.
#[derive(Debug)]
pub struct Found {
    pub total: u64,
    pub hits: Vec<Entry>,
    /// Labels escaped.
    pub aggregation: Option<Aggregation>,
}

pub fn found(r: SearchResults) -> Found {
    Found {
        total: r.total,
        hits: r.hits.into_iter().map(hit_entry).collect(),
        aggregation: r.aggregation.map(escaped),
    }
}

// ---- rules ----

#[derive(Clone, Debug, PartialEq)]
pub struct RuleRow {
    pub id: String,
    pub severity: Option<Severity>,
    pub enabled: bool,
    pub description: String,
    pub kinds: String,
    pub mode: String,
    pub hits: u64,
    /// Time of the newest alert of the rule (`HH:MM:SS`), or `-`.
    pub last_hit: String,
}

/// A `rules` answer: the policy it came from and its rules, in answer order.
#[derive(Debug)]
pub struct Policy {
    /// Escaped policy source, empty when unknown.
    pub source: String,
    pub generation: u64,
    /// Escaped last reload error.
    pub last_error: Option<String>,
    pub rules: Vec<RuleRow>,
}

pub fn policy(l: RulesListing) -> Policy {
    let p = l.policy;
    Policy {
        source: safe(&p.source),
        generation: p.generation,
        last_error: p.last_error.filter(|s| !s.is_empty()).map(|s| safe(&s)),
        rules: l
            .rules
            .into_iter()
            .map(|r| RuleRow {
                id: safe(&r.id),
                severity: Some(r.severity),
                enabled: r.enabled,
                description: safe(&r.description),
                kinds: safe(
                    &r.kinds
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                mode: safe(&r.mode),
                hits: r.hits,
                last_hit: r
                    .last_hit
                    .and_then(|t| t.to_rfc3339().get(11..19).map(str::to_owned))
                    .unwrap_or_else(|| "-".to_owned()),
            })
            .collect(),
    }
}

// ---- status ----

/// A `status` answer.
#[derive(Debug, Default)]
pub struct Status {
    /// Raw ids of the live sessions, with their live processes.
    pub live_sessions: Vec<(String, u64)>,
    /// Per event kind (escaped name, sorted by raw name): total events, events/s.
    pub kinds: Vec<(String, u64, f64)>,
    /// Lost records per kind (escaped).
    pub losses: BTreeMap<String, u64>,
    /// (label, value) lines about the daemon, store and policy (escaped).
    pub facts: Vec<(String, String)>,
}

pub fn status(st: agent_api::Status) -> Status {
    let mut names: Vec<&String> = st.events.keys().chain(st.events_per_s.keys()).collect();
    names.sort();
    names.dedup();
    let kinds = names
        .into_iter()
        .map(|k| {
            let n = st.events.get(k).copied().unwrap_or(0);
            let r = st.events_per_s.get(k).copied().unwrap_or(0.0);
            (safe(k), n, r)
        })
        .collect();
    let losses: BTreeMap<String, u64> = st.losses.iter().map(|(k, n)| (safe(k), *n)).collect();
    let lost = losses.values().sum();
    Status {
        facts: facts(&st, lost),
        live_sessions: st
            .sessions
            .into_iter()
            .map(|s| (s.id, s.live_processes))
            .collect(),
        kinds,
        losses,
    }
}

fn facts(st: &agent_api::Status, lost: u64) -> Vec<(String, String)> {
    let mut f = Vec::new();
    // A read-only backend on a data dir has no daemon figures.
    if !st.offline {
        f.push(("host".into(), safe(&st.host)));
        f.push((
            "uptime".into(),
            duration((st.uptime_s * 1e9).min(i64::MAX as f64) as i64),
        ));
        f.push(("programs".into(), st.programs.len().to_string()));
        f.push(("live sessions".into(), st.sessions.len().to_string()));
        f.push(("ring buffer".into(), bytes(st.ringbuf_bytes)));
    }
    f.push(("events lost".into(), lost.to_string()));
    if !st.offline {
        f.push(("decode errors".into(), st.decode_errors.to_string()));
    }
    if let Some(s) = &st.store {
        let s = &s.stats;
        f.push(("store events".into(), s.events.to_string()));
        f.push(("store alerts".into(), s.alerts.to_string()));
        f.push(("index size".into(), bytes(s.index_bytes)));
        f.push(("spool size".into(), bytes(s.spool_bytes)));
        f.push(("store lag".into(), s.lag.to_string()));
    }
    if let Some(p) = &st.policy {
        f.push(("rules".into(), p.policy.rules.to_string()));
        f.push(("policy generation".into(), p.policy.generation.to_string()));
        if let Some(e) = &p.policy.last_error {
            f.push(("policy error".into(), safe(e)));
        }
    }
    if let Some(e) = &st.egress {
        f.push((
            "egress".into(),
            format!(
                "{} denied, {} dry-run, {} lost, dns {} allowed",
                e.denied, e.dry_run, e.lost, e.dns_allowed
            ),
        ));
        for p in &e.policies {
            f.push((
                format!("egress {}", safe(&p.name)),
                format!(
                    "{} ({} denied, {} dry-run)",
                    safe(&p.mode),
                    p.denied,
                    p.dry_run
                ),
            ));
        }
    }
    f
}
