//! The daemon's answers, read once: JSON objects in, typed rows with escaped display strings out.
//!
//! Every place that looks inside a daemon answer is here, so the view models in [`crate::state`]
//! only ever see typed rows and the request worker in [`crate::backend`] can parse a large
//! `alerts` answer off the UI thread with the same code. Parsing is lenient (a missing field
//! becomes empty, zero or `-`) because a UI must show what it can of a newer or older daemon.
//! Agent-originated strings are escaped with [`safe`] here, once, when they enter the model.
//! This module imports neither the model nor the backend, so both can use it.

use std::collections::BTreeMap;

use agent_model::{Alert, Event, FIELDS, Kind, Severity, Timestamp};
use serde::Deserialize as _;
use serde_json::Value;

use crate::text::{bytes, duration, safe};

fn time_of(v: Option<&Value>) -> Timestamp {
    match v {
        Some(Value::String(s)) => Timestamp::parse_rfc3339(s).unwrap_or_default(),
        Some(Value::Number(n)) => Timestamp(n.as_i64().unwrap_or(0)),
        _ => Timestamp::default(),
    }
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn u64_of(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// The array `v[k]`, or nothing.
fn array<'a>(v: &'a Value, k: &str) -> impl Iterator<Item = &'a Value> {
    v.get(k).and_then(Value::as_array).into_iter().flatten()
}

// ---- alerts ----

/// Triage state of an alert.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TriageState {
    #[default]
    Open,
    Acknowledged,
    Resolved,
}

impl TriageState {
    pub fn name(self) -> &'static str {
        match self {
            TriageState::Open => "open",
            TriageState::Acknowledged => "acknowledged",
            TriageState::Resolved => "resolved",
        }
    }

    fn parse(s: &str) -> TriageState {
        match s {
            "acknowledged" => TriageState::Acknowledged,
            "resolved" => TriageState::Resolved,
            _ => TriageState::Open,
        }
    }
}

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
    fn new(alert: Alert, triage: TriageState, note: String) -> AlertRow {
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
            triage,
            note,
            agent,
            session,
            rule,
            summary,
            hay,
        }
    }
}

/// The rows of an `alerts` answer. The worker calls this on its own thread, so a large answer
/// is parsed off the UI thread.
pub fn alert_rows(v: &Value) -> Vec<Box<AlertRow>> {
    array(v, "hits")
        .filter_map(|h| parse_alert_hit(h).map(Box::new))
        .collect()
}

/// Parse an alert hit (`{"alert":{..},"triage":{..}}`) or a bare alert object.
pub fn parse_alert_hit(v: &Value) -> Option<AlertRow> {
    let a = v.get("alert")?;
    // Deserialize from the borrowed value: no copy of the JSON tree.
    let alert = Alert::deserialize(a).ok()?;
    let (state, note) = match v.get("triage") {
        Some(t) => (
            TriageState::parse(t.get("state").and_then(Value::as_str).unwrap_or("open")),
            triage_note(t),
        ),
        None => (TriageState::Open, String::new()),
    };
    Some(AlertRow::new(alert, state, note))
}

fn triage_note(t: &Value) -> String {
    let note = t.get("note").and_then(Value::as_str).unwrap_or("");
    let by = t.get("by").and_then(Value::as_str).unwrap_or("");
    match (note.is_empty(), by.is_empty()) {
        (true, true) => String::new(),
        (false, true) => safe(note),
        (true, false) => format!("by {}", safe(by)),
        (false, false) => format!("{} (by {})", safe(note), safe(by)),
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
}

/// The rows of a `sessions` answer, in answer order, none marked live (liveness comes from the
/// status answer).
pub fn session_rows(v: &Value) -> Vec<SessionRow> {
    array(v, "sessions")
        .map(|s| {
            let id = str_of(s, "id").to_string();
            let root = match (s.get("root_exe").and_then(Value::as_str), s.get("root_pid")) {
                (Some(e), Some(p)) => format!("{} [{}]", safe(e), p),
                (Some(e), None) => safe(e),
                _ => "-".into(),
            };
            SessionRow {
                id_text: safe(&id),
                live: false,
                id,
                agent: safe(s.get("agent").and_then(Value::as_str).unwrap_or("-")),
                start: time_of(s.get("start")),
                end: time_of(s.get("end")),
                events: u64_of(s, "events"),
                alerts: u64_of(s, "alerts"),
                root,
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
}

/// Build an entry from an API hit (an Event object or an alert hit).
pub fn parse_entry(v: &Value) -> Option<Entry> {
    if v.get("alert").is_some() {
        let r = parse_alert_hit(v)?;
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
        return Some(Entry {
            id: a.id.clone(),
            time: a.time,
            kind: EntryKind::Alert(a.severity),
            text: format!("{}  {}", r.rule, r.summary),
            in_loss: a.in_loss_window,
            count: a.count,
            session: a.session.as_ref().map(|s| s.id.clone()),
            fields,
        });
    }
    let ev = Event::deserialize(v).ok()?;
    Some(event_entry(&ev))
}

fn event_entry(ev: &Event) -> Entry {
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

/// A line of the process tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcLine {
    pub depth: usize,
    pub text: String,
}

/// A `session` answer: its id, its events and alerts as entries (in answer order) and its
/// process tree.
#[derive(Debug, Default)]
pub struct SessionDetail {
    pub id: Option<String>,
    pub entries: Vec<Entry>,
    pub procs: Vec<ProcLine>,
}

pub fn session_detail(v: &Value) -> SessionDetail {
    SessionDetail {
        id: v.get("id").and_then(Value::as_str).map(str::to_string),
        entries: array(v, "events")
            .chain(array(v, "alerts"))
            .filter_map(parse_entry)
            .collect(),
        procs: proc_tree(v),
    }
}

fn proc_tree(v: &Value) -> Vec<ProcLine> {
    let procs = v
        .get("processes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let roots: Vec<usize> = array(v, "roots")
        .filter_map(|x| x.as_u64().map(|x| x as usize))
        .collect();
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
            text: format!("{} [{}]", safe(str_of(p, "exe")), u64_of(p, "pid")),
        });
        if let Some(ch) = p.get("children").and_then(Value::as_array) {
            for c in ch.iter().rev().filter_map(Value::as_u64) {
                stack.push((c as usize, depth + 1));
            }
        }
    }
    out
}

// ---- search ----

/// An aggregation result.
#[derive(Clone, Debug, PartialEq)]
pub enum Aggregation {
    Count(u64),
    /// (escaped label, count) by decreasing count, plus the rest.
    Terms {
        field: String,
        buckets: Vec<(String, u64)>,
        other: u64,
    },
    Histogram {
        interval_ns: i64,
        buckets: Vec<(Timestamp, u64)>,
    },
}

fn parse_agg(v: &Value) -> Option<Aggregation> {
    let pairs = |v: &Value| -> Vec<(Value, u64)> {
        array(v, "buckets")
            .filter_map(|b| Some((b.get(0)?.clone(), b.get(1)?.as_u64()?)))
            .collect()
    };
    match v.get("type")?.as_str()? {
        "count" => Some(Aggregation::Count(u64_of(v, "count"))),
        "terms" => Some(Aggregation::Terms {
            field: safe(str_of(v, "field")),
            buckets: pairs(v)
                .into_iter()
                .map(|(l, n)| (safe(l.as_str().unwrap_or(&l.to_string())), n))
                .collect(),
            other: u64_of(v, "other"),
        }),
        "histogram" => Some(Aggregation::Histogram {
            interval_ns: v.get("interval_ns").and_then(Value::as_i64).unwrap_or(0),
            buckets: pairs(v)
                .into_iter()
                .map(|(t, n)| (time_of(Some(&t)), n))
                .collect(),
        }),
        _ => None,
    }
}

/// A `search` answer.
#[derive(Debug)]
pub struct Found {
    pub total: u64,
    pub hits: Vec<Entry>,
    pub aggregation: Option<Aggregation>,
}

pub fn found(v: &Value) -> Found {
    Found {
        total: v.get("total").and_then(Value::as_u64).unwrap_or(0),
        hits: array(v, "hits").filter_map(parse_entry).collect(),
        aggregation: v.get("aggregation").and_then(parse_agg),
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

pub fn policy(v: &Value) -> Policy {
    let p = v.get("policy").cloned().unwrap_or(Value::Null);
    let list = |r: &Value, k: &str| -> String {
        match r.get(k) {
            Some(Value::Array(a)) => safe(
                &a.iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Some(Value::String(s)) => safe(s),
            _ => String::new(),
        }
    };
    Policy {
        source: safe(&match p.get("source") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(x) => x.to_string(),
        }),
        generation: u64_of(&p, "generation"),
        last_error: p
            .get("last_error")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(safe),
        rules: array(v, "rules")
            .map(|r| RuleRow {
                id: safe(str_of(r, "id")),
                severity: Severity::from_name(str_of(r, "severity")),
                enabled: r.get("enabled").and_then(Value::as_bool).unwrap_or(true),
                description: safe(str_of(r, "description")),
                kinds: list(r, "kinds"),
                mode: safe(str_of(r, "mode")),
                hits: u64_of(r, "hits"),
                last_hit: r
                    .get("last_hit")
                    .and_then(Value::as_str)
                    .and_then(|t| t.get(11..19))
                    .map_or_else(|| "-".to_owned(), safe),
            })
            .collect(),
    }
}

// ---- status ----

/// A `status` answer.
#[derive(Debug, Default)]
pub struct Status {
    /// Raw ids of the live sessions.
    pub live_sessions: Vec<String>,
    /// Per event kind (escaped name, sorted by raw name): total events, events/s.
    pub kinds: Vec<(String, u64, f64)>,
    /// Lost records per kind (escaped).
    pub losses: BTreeMap<String, u64>,
    /// (label, value) lines about the daemon, store and policy (escaped).
    pub facts: Vec<(String, String)>,
}

pub fn status(v: &Value) -> Status {
    let obj = |k: &str| {
        v.get(k)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let events = obj("events");
    let rates = obj("events_per_s");
    let mut names: Vec<String> = events.keys().chain(rates.keys()).cloned().collect();
    names.sort();
    names.dedup();
    let kinds = names
        .into_iter()
        .map(|k| {
            let n = events.get(&k).and_then(Value::as_u64).unwrap_or(0);
            let r = rates.get(&k).and_then(Value::as_f64).unwrap_or(0.0);
            (safe(&k), n, r)
        })
        .collect();
    let losses: BTreeMap<String, u64> = obj("losses")
        .iter()
        .map(|(k, n)| (safe(k), n.as_u64().unwrap_or(0)))
        .collect();
    let lost = losses.values().sum();
    Status {
        live_sessions: array(v, "sessions")
            .filter_map(|s| s.get("id").and_then(Value::as_str).map(str::to_string))
            .collect(),
        kinds,
        losses,
        facts: facts(v, lost),
    }
}

fn facts(v: &Value, lost: u64) -> Vec<(String, String)> {
    let mut f = Vec::new();
    if let Some(h) = v.get("host").and_then(Value::as_str) {
        f.push(("host".into(), safe(h)));
    }
    if let Some(u) = v.get("uptime_s").and_then(Value::as_u64) {
        f.push(("uptime".into(), duration(u as i64 * 1_000_000_000)));
    }
    if let Some(p) = v.get("programs").and_then(Value::as_array) {
        f.push(("programs".into(), p.len().to_string()));
    }
    if let Some(s) = v.get("sessions").and_then(Value::as_array) {
        f.push(("live sessions".into(), s.len().to_string()));
    }
    if let Some(r) = v.get("ringbuf_bytes").and_then(Value::as_u64) {
        f.push(("ring buffer".into(), bytes(r)));
    }
    f.push(("events lost".into(), lost.to_string()));
    if let Some(d) = v.get("decode_errors").and_then(Value::as_u64) {
        f.push(("decode errors".into(), d.to_string()));
    }
    if let Some(s) = v.get("store").and_then(Value::as_object) {
        for (k, label, is_bytes) in [
            ("events", "store events", false),
            ("alerts", "store alerts", false),
            ("index_bytes", "index size", true),
            ("spool_bytes", "spool size", true),
            ("lag", "store lag", false),
        ] {
            if let Some(n) = s.get(k).and_then(Value::as_u64) {
                f.push((
                    label.into(),
                    if is_bytes { bytes(n) } else { n.to_string() },
                ));
            }
        }
    }
    if let Some(p) = v.get("policy").and_then(Value::as_object) {
        if let Some(n) = p.get("rules").and_then(Value::as_u64) {
            f.push(("rules".into(), n.to_string()));
        }
        if let Some(g) = p.get("generation").and_then(Value::as_u64) {
            f.push(("policy generation".into(), g.to_string()));
        }
        if let Some(e) = p.get("last_error").and_then(Value::as_str) {
            f.push(("policy error".into(), safe(e)));
        }
    }
    f
}
