//! The model: everything the TUI knows, and how keys and daemon answers change it.
//!
//! Pure and synchronous: [`App::on_key`], [`App::on_update`] and [`App::on_tick`] mutate the
//! state and queue [`Request`]s in [`App::outbox`]; nothing here draws or does IO, so every
//! behaviour is testable without a terminal. Agent-originated strings are escaped with
//! [`crate::text::safe`] when they enter the model, once, not on every frame.

use std::collections::{BTreeMap, HashMap, VecDeque};

use agent_model::{Alert, Event, FIELDS, Kind, Severity, Timestamp};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize as _;
use serde_json::{Value, json};

use crate::msg::{Purpose, Request, Update};
use crate::text::{bytes, duration, safe};

/// The views, in tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Alerts,
    Sessions,
    Timeline,
    Search,
    Rules,
    Health,
}

impl View {
    pub const ALL: [View; 6] = [
        View::Alerts,
        View::Sessions,
        View::Timeline,
        View::Search,
        View::Rules,
        View::Health,
    ];

    pub fn name(self) -> &'static str {
        match self {
            View::Alerts => "Alerts",
            View::Sessions => "Sessions",
            View::Timeline => "Timeline",
            View::Search => "Search",
            View::Rules => "Rules",
            View::Health => "Health",
        }
    }

    fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }
}

/// Every key, for the help overlay and the README.
pub const KEYS: &[(&str, &str)] = &[
    ("?", "toggle this help"),
    ("1-6, Tab, S-Tab", "switch view"),
    (":", "command: a view name (alerts, sessions, ...) or q"),
    ("j/k, Down/Up", "move down / up"),
    ("g / G", "first / last row"),
    ("PgDn / PgUp", "move one page"),
    (
        "/",
        "filter (Alerts, Sessions, Rules) or edit query (Search)",
    ),
    ("Enter", "open: alert or session -> timeline; run query"),
    ("Esc", "close prompt / help, clear filter, back"),
    (
        "a / r / o",
        "alert: acknowledge / resolve / reopen (asks a note)",
    ),
    ("n / p", "timeline: next / previous alert"),
    ("t", "search: cycle time range"),
    ("q, Ctrl-C", "quit"),
];

/// Search time ranges, cycled with `t`.
pub const RANGES: &[Option<&str>] = &[Some("15m"), Some("1h"), Some("24h"), Some("7d"), None];

/// Alerts fetched at start and after every reconnect.
pub const ALERT_FETCH: usize = 10_000;

/// A selection in a list, with scrolling computed at draw time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    pub sel: usize,
}

impl Cursor {
    fn by(&mut self, d: isize, len: usize) {
        if len == 0 {
            self.sel = 0;
            return;
        }
        let s = self.sel as isize + d;
        self.sel = s.clamp(0, len as isize - 1) as usize;
    }

    fn clamp(&mut self, len: usize) {
        self.sel = self.sel.min(len.saturating_sub(1));
    }

    /// First visible row so that `sel` is shown in a window of `height` rows (kept centred
    /// once the list is longer than the window).
    pub fn offset(&self, len: usize, height: usize) -> usize {
        if len <= height || height == 0 {
            return 0;
        }
        self.sel.saturating_sub(height / 2).min(len - height)
    }
}

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
    hay: String,
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

    fn matches(&self, terms: &[String]) -> bool {
        terms.iter().all(|t| self.hay.contains(t.as_str()))
    }
}

/// The rows of an `alerts` answer. The worker calls this on its own thread, so a large answer
/// is parsed off the UI thread.
pub fn alert_rows(v: &Value) -> Vec<Box<AlertRow>> {
    v.get("hits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
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

fn filter_terms(f: &str) -> Vec<String> {
    f.split_whitespace().map(str::to_lowercase).collect()
}

/// Indexes of the rows whose text (`hay`, lowercased) contains every term of `filter`.
fn matching_rows<T>(rows: &[T], filter: &str, hay: impl Fn(&T) -> String) -> Vec<usize> {
    let terms = filter_terms(filter);
    (0..rows.len())
        .filter(|&i| {
            let hay = hay(&rows[i]).to_lowercase();
            terms.iter().all(|t| hay.contains(t.as_str()))
        })
        .collect()
}

/// The live alert list, newest first.
#[derive(Debug, Default)]
pub struct AlertsState {
    /// In arrival order (oldest first); display is reversed.
    /// Boxed so growing the list moves pointers, not whole rows.
    pub rows: Vec<Box<AlertRow>>,
    by_id: HashMap<String, usize>,
    /// Indexes into `rows` that pass the filter, ascending.
    visible: Vec<usize>,
    pub filter: String,
    terms: Vec<String>,
    pub cur: Cursor,
    /// Alerts per severity (indexed by `Severity as usize`).
    pub counts: [u64; 5],
}

impl AlertsState {
    pub fn len(&self) -> usize {
        self.visible.len()
    }

    pub fn is_empty(&self) -> bool {
        self.visible.is_empty()
    }

    /// Display row `i` (0 = newest).
    pub fn row(&self, i: usize) -> Option<&AlertRow> {
        let n = self.visible.len();
        (i < n).then(|| &*self.rows[self.visible[n - 1 - i]])
    }

    pub fn selected(&self) -> Option<&AlertRow> {
        self.row(self.cur.sel)
    }

    /// Replace everything (initial load, resync), oldest first by last time.
    pub fn replace(&mut self, mut rows: Vec<Box<AlertRow>>) {
        let keep = self.selected().map(|r| r.alert.id.clone());
        rows.sort_by_key(|r| (r.alert.last_time, r.alert.time));
        self.rows.clear();
        self.by_id.clear();
        self.counts = [0; 5];
        for r in rows {
            self.insert(r);
        }
        self.refilter();
        if let Some(id) = keep {
            self.select_id(&id);
        }
    }

    fn insert(&mut self, r: Box<AlertRow>) -> Option<usize> {
        if let Some(&i) = self.by_id.get(&r.alert.id) {
            // A folded duplicate: the same alert with a new count; triage is kept unless the
            // newer copy carries one.
            let old = &mut self.rows[i];
            self.counts[old.alert.severity as usize] -= 1;
            self.counts[r.alert.severity as usize] += 1;
            let triage = if r.triage == TriageState::Open && r.note.is_empty() {
                (old.triage, std::mem::take(&mut old.note))
            } else {
                (r.triage, r.note.clone())
            };
            *old = r;
            old.triage = triage.0;
            old.note = triage.1;
            return None;
        }
        self.counts[r.alert.severity as usize] += 1;
        self.by_id.insert(r.alert.id.clone(), self.rows.len());
        self.rows.push(r);
        Some(self.rows.len() - 1)
    }

    /// One live alert. The selection stays on the same alert when the user has scrolled.
    pub fn push(&mut self, r: Box<AlertRow>) {
        if let Some(i) = self.insert(r)
            && self.rows[i].matches(&self.terms)
        {
            self.visible.push(i);
            if self.cur.sel > 0 {
                self.cur.sel += 1;
            }
        }
    }

    pub fn set_filter(&mut self, f: &str) {
        self.filter = f.to_string();
        self.terms = filter_terms(f);
        self.refilter();
        self.cur.sel = 0;
    }

    fn refilter(&mut self) {
        self.visible = (0..self.rows.len())
            .filter(|&i| self.rows[i].matches(&self.terms))
            .collect();
        self.cur.clamp(self.visible.len());
    }

    fn select_id(&mut self, id: &str) {
        if let Some(&i) = self.by_id.get(id)
            && let Ok(p) = self.visible.binary_search(&i)
        {
            self.cur.sel = self.visible.len() - 1 - p;
        }
    }

    pub fn set_triage(&mut self, id: &str, state: TriageState, note: &str) {
        if let Some(&i) = self.by_id.get(id) {
            self.rows[i].triage = state;
            self.rows[i].note = safe(note);
        }
    }
}

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

#[derive(Debug, Default)]
pub struct SessionsState {
    pub rows: Vec<SessionRow>,
    pub visible: Vec<usize>,
    pub filter: String,
    pub cur: Cursor,
    /// Live session ids, from the last status.
    live: Vec<String>,
}

impl SessionsState {
    pub fn set(&mut self, list: &[Value]) {
        let keep = self.selected().map(|r| r.id.clone());
        self.rows = list
            .iter()
            .map(|s| {
                let id = str_of(s, "id").to_string();
                let root = match (s.get("root_exe").and_then(Value::as_str), s.get("root_pid")) {
                    (Some(e), Some(p)) => format!("{} [{}]", safe(e), p),
                    (Some(e), None) => safe(e),
                    _ => "-".into(),
                };
                SessionRow {
                    id_text: safe(&id),
                    live: self.live.contains(&id),
                    id,
                    agent: safe(s.get("agent").and_then(Value::as_str).unwrap_or("-")),
                    start: time_of(s.get("start")),
                    end: time_of(s.get("end")),
                    events: u64_of(s, "events"),
                    alerts: u64_of(s, "alerts"),
                    root,
                }
            })
            .collect();
        // Newest first.
        self.rows
            .sort_by(|a, b| b.start.cmp(&a.start).then(a.id.cmp(&b.id)));
        self.refilter();
        if let Some(id) = keep
            && let Some(p) = self.visible.iter().position(|&i| self.rows[i].id == id)
        {
            self.cur.sel = p;
        }
    }

    fn set_live(&mut self, ids: Vec<String>) {
        for r in &mut self.rows {
            r.live = ids.contains(&r.id);
        }
        self.live = ids;
    }

    pub fn set_filter(&mut self, f: &str) {
        self.filter = f.to_string();
        self.refilter();
        self.cur.sel = 0;
    }

    fn refilter(&mut self) {
        self.visible = matching_rows(&self.rows, &self.filter, |r| {
            format!("{} {} {}", r.agent, r.id_text, r.root)
        });
        self.cur.clamp(self.visible.len());
    }

    pub fn selected(&self) -> Option<&SessionRow> {
        self.visible.get(self.cur.sel).map(|&i| &self.rows[i])
    }

    /// Sessions per agent: (agent, sessions, live).
    pub fn agents(&self) -> Vec<(String, usize, usize)> {
        let mut m: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for r in &self.rows {
            let e = m.entry(&r.agent).or_default();
            e.0 += 1;
            e.1 += r.live as usize;
        }
        m.into_iter()
            .map(|(a, (n, l))| (a.to_string(), n, l))
            .collect()
    }
}

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

/// One session's process tree and timeline.
#[derive(Debug, Default)]
pub struct TimelineState {
    /// Raw session id.
    pub session: Option<String>,
    pub entries: Vec<Entry>,
    pub procs: Vec<ProcLine>,
    pub cur: Cursor,
    pub loading: bool,
}

impl TimelineState {
    fn load(&mut self, v: &Value, focus: Option<&str>) {
        self.loading = false;
        self.session = v.get("id").and_then(Value::as_str).map(str::to_string);
        let mut entries: Vec<Entry> = v
            .get("events")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .chain(
                v.get("alerts")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten(),
            )
            .filter_map(parse_entry)
            .collect();
        // Stable: alerts sort after the events at the same time (they are caused by them).
        entries.sort_by_key(|e| (e.time, matches!(e.kind, EntryKind::Alert(_))));
        self.entries = entries;
        self.procs = proc_tree(v);
        self.cur.sel = focus
            .and_then(|f| self.entries.iter().position(|e| e.id == f))
            .unwrap_or(0);
    }

    /// A live event or alert of the open session.
    fn push(&mut self, e: Entry) {
        if self.session.is_some() && e.session == self.session {
            // Same order as `load`: by time, alerts after the events at the same time.
            let key = |x: &Entry| (x.time, matches!(x.kind, EntryKind::Alert(_)));
            let at = self.entries.partition_point(|x| key(x) <= key(&e));
            if at <= self.cur.sel && !self.entries.is_empty() {
                self.cur.sel += 1;
            }
            self.entries.insert(at, e);
        }
    }

    fn jump_alert(&mut self, forward: bool) {
        let is_alert = |e: &Entry| matches!(e.kind, EntryKind::Alert(_));
        let found = if forward {
            self.entries
                .iter()
                .enumerate()
                .skip(self.cur.sel + 1)
                .find(|(_, e)| is_alert(e))
                .map(|(i, _)| i)
        } else {
            self.entries[..self.cur.sel.min(self.entries.len())]
                .iter()
                .rposition(is_alert)
        };
        if let Some(i) = found {
            self.cur.sel = i;
        }
    }

    pub fn selected(&self) -> Option<&Entry> {
        self.entries.get(self.cur.sel)
    }
}

fn proc_tree(v: &Value) -> Vec<ProcLine> {
    let procs = v
        .get("processes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let roots: Vec<usize> = v
        .get("roots")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|x| x.as_u64().map(|x| x as usize))
                .collect()
        })
        .unwrap_or_default();
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
        v.get("buckets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
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

#[derive(Debug)]
pub struct SearchState {
    pub query: String,
    pub range: usize,
    pub results: Vec<Entry>,
    pub total: u64,
    pub aggregation: Option<Aggregation>,
    pub cur: Cursor,
    pub error: Option<String>,
    pub pending: bool,
}

impl Default for SearchState {
    fn default() -> Self {
        SearchState {
            query: String::new(),
            range: 2,
            results: Vec::new(),
            total: 0,
            aggregation: None,
            cur: Cursor::default(),
            error: None,
            pending: false,
        }
    }
}

impl SearchState {
    pub fn range_name(&self) -> &'static str {
        RANGES[self.range].unwrap_or("all")
    }

    pub fn selected(&self) -> Option<&Entry> {
        self.results.get(self.cur.sel)
    }
}

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

#[derive(Debug, Default)]
pub struct RulesState {
    pub rows: Vec<RuleRow>,
    pub visible: Vec<usize>,
    pub filter: String,
    pub cur: Cursor,
    /// Escaped policy summary and last reload error.
    pub source: String,
    pub generation: u64,
    pub last_error: Option<String>,
}

impl RulesState {
    fn set(&mut self, v: &Value) {
        let p = v.get("policy").cloned().unwrap_or(Value::Null);
        self.source = safe(&match p.get("source") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(x) => x.to_string(),
        });
        self.generation = u64_of(&p, "generation");
        self.last_error = p
            .get("last_error")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(safe);
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
        self.rows = v
            .get("rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
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
            .collect();
        self.refilter();
    }

    pub fn set_filter(&mut self, f: &str) {
        self.filter = f.to_string();
        self.refilter();
        self.cur.sel = 0;
    }

    fn refilter(&mut self) {
        self.visible = matching_rows(&self.rows, &self.filter, |r| {
            format!("{} {} {}", r.id, r.description, r.kinds)
        });
        self.cur.clamp(self.visible.len());
    }
}

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

impl HealthState {
    fn set(&mut self, v: &Value) {
        self.polls += 1;
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
        let mut total = 0.0;
        for k in names {
            let n = events.get(&k).and_then(Value::as_u64).unwrap_or(0);
            let r = rates.get(&k).and_then(Value::as_f64).unwrap_or(0.0);
            total += r;
            let e = self.kinds.entry(safe(&k)).or_default();
            e.0 = n;
            e.1 = r;
            e.2.push_back(r.round() as u64);
            if e.2.len() > HISTORY {
                e.2.pop_front();
            }
        }
        self.total_rate.push_back(total.round() as u64);
        if self.total_rate.len() > HISTORY {
            self.total_rate.pop_front();
        }
        self.losses = obj("losses")
            .iter()
            .map(|(k, n)| (safe(k), n.as_u64().unwrap_or(0)))
            .collect();
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
        let lost: u64 = self.losses.values().sum();
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
        self.facts = f;
    }
}

/// The daemon connection as the user sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conn {
    Connecting,
    Live,
    /// Escaped error, retry delay in ms.
    Down {
        error: String,
        retry_ms: u64,
    },
    /// An offline data dir: no live stream.
    Offline,
}

/// What a prompt line is editing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prompt {
    Filter,
    Query,
    Command,
    Note {
        alert_id: String,
        state: TriageState,
    },
}

/// The whole model.
#[derive(Debug)]
pub struct App {
    pub view: View,
    pub help: bool,
    pub prompt: Option<(Prompt, String)>,
    pub conn: Conn,
    /// Last error or notice (escaped).
    pub message: Option<String>,
    pub alerts: AlertsState,
    pub sessions: SessionsState,
    pub timeline: TimelineState,
    pub search: SearchState,
    pub rules: RulesState,
    pub health: HealthState,
    pub quit: bool,
    /// Where Esc goes from the timeline: the view it was opened from.
    pub back: View,
    /// Requests to send; drained by the run loop (or inspected by tests).
    pub outbox: Vec<Request>,
    /// Rows per page for PgUp/PgDn, set by the view.
    pub page: usize,
    /// Wall clock for durations of live sessions (set by the run loop; fixed in tests).
    pub now: Timestamp,
    /// Live objects that could not be parsed.
    pub bad_objects: u64,
    /// Events the live stream skipped because we were too slow.
    pub lagged: u64,
    ticks: u64,
    /// When to fetch the alert list again after the live stream connected.
    refetch_alerts_at: Option<u64>,
    status_pending: bool,
}

impl App {
    /// A fresh model; queues the initial requests.
    pub fn new(now: Timestamp) -> App {
        let mut app = App {
            view: View::Alerts,
            help: false,
            prompt: None,
            conn: Conn::Connecting,
            message: None,
            alerts: AlertsState::default(),
            sessions: SessionsState::default(),
            timeline: TimelineState::default(),
            search: SearchState::default(),
            rules: RulesState::default(),
            health: HealthState::default(),
            quit: false,
            back: View::Sessions,
            outbox: Vec::new(),
            page: 10,
            now,
            bad_objects: 0,
            lagged: 0,
            ticks: 0,
            refetch_alerts_at: None,
            status_pending: false,
        };
        app.resync();
        app
    }

    fn send(&mut self, purpose: Purpose, body: Value) {
        if purpose == Purpose::Status {
            self.status_pending = true;
        }
        self.outbox.push(Request { purpose, body });
    }

    /// Ask for everything again (start, reconnect).
    fn resync(&mut self) {
        self.send(Purpose::Status, json!({"op": "status"}));
        self.send(Purpose::Rules, json!({"op": "rules"}));
        self.send(
            Purpose::Alerts,
            json!({"op": "alerts", "since": "24h", "severity": "info", "limit": ALERT_FETCH}),
        );
        self.send(Purpose::Sessions, json!({"op": "sessions", "since": null}));
    }

    /// Called every 250 ms: status every second, sessions every 5 s, alerts every 5 s when
    /// there is no live stream and every 30 s when there is.
    pub fn on_tick(&mut self, now: Timestamp) {
        self.now = now;
        self.ticks += 1;
        if self.refetch_alerts_at.is_some_and(|t| self.ticks >= t) {
            self.refetch_alerts_at = None;
            self.send(
                Purpose::Alerts,
                json!({"op": "alerts", "since": "24h", "severity": "info", "limit": ALERT_FETCH}),
            );
        }
        if self.ticks.is_multiple_of(4) && !self.status_pending {
            self.send(Purpose::Status, json!({"op": "status"}));
        }
        if self.ticks.is_multiple_of(20) {
            self.send(Purpose::Sessions, json!({"op": "sessions", "since": null}));
            // Without a live stream, poll; with one, resync every 30 s so triage done in other
            // TUIs shows up here too.
            if matches!(self.conn, Conn::Offline | Conn::Down { .. })
                || self.ticks.is_multiple_of(120)
            {
                self.send(
                    Purpose::Alerts,
                    json!({"op": "alerts", "since": "24h", "severity": "info", "limit": ALERT_FETCH}),
                );
            }
        }
    }

    pub fn on_update(&mut self, u: Update) {
        match u {
            Update::Connected => {
                let was_down = !matches!(self.conn, Conn::Connecting);
                self.conn = Conn::Live;
                if was_down {
                    self.resync();
                }
                // Alerts raised just before the live stream started may not have been indexed
                // when the first list was fetched (the store commits every 500 ms): fetch again
                // once the index has caught up.
                self.refetch_alerts_at = Some(self.ticks + 6);
            }
            Update::Disconnected { error, retry } => {
                self.conn = Conn::Down {
                    error: safe(&error),
                    retry_ms: retry.as_millis() as u64,
                };
            }
            Update::NoLiveStream => self.conn = Conn::Offline,
            Update::AlertRows(rows) => self.alerts.replace(rows),
            Update::Live(v) => self.on_live(v),
            Update::Answer { purpose, result } => {
                if purpose == Purpose::Status {
                    self.status_pending = false;
                }
                let v = match result {
                    Ok(v) if v.get("ok") == Some(&Value::Bool(false)) => {
                        let e = v.get("error").and_then(Value::as_str).unwrap_or("error");
                        self.fail(&purpose, e);
                        return;
                    }
                    Ok(v) => v,
                    Err(e) => {
                        self.fail(&purpose, &e);
                        return;
                    }
                };
                self.on_answer(purpose, v);
            }
        }
    }

    fn fail(&mut self, purpose: &Purpose, e: &str) {
        let e = safe(e);
        match purpose {
            Purpose::Search => {
                self.search.pending = false;
                self.search.error = Some(e);
            }
            Purpose::Session { .. } => {
                self.timeline.loading = false;
                self.message = Some(format!("cannot open session: {e}"));
            }
            _ => self.message = Some(format!("{purpose:?}: {e}").to_lowercase()),
        }
    }

    fn on_answer(&mut self, purpose: Purpose, v: Value) {
        let list = |k: &str| {
            v.get(k)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        match purpose {
            Purpose::Status => {
                let live = list("sessions")
                    .iter()
                    .filter_map(|s| s.get("id").and_then(Value::as_str).map(str::to_string))
                    .collect();
                self.sessions.set_live(live);
                self.health.set(&v);
            }
            Purpose::Rules => self.rules.set(&v),
            Purpose::Alerts => self.alerts.replace(alert_rows(&v)),
            Purpose::Sessions => self.sessions.set(
                v.get("sessions")
                    .and_then(Value::as_array)
                    .map_or(&[], |a| a.as_slice()),
            ),
            Purpose::Session { focus } => self.timeline.load(&v, focus.as_deref()),
            Purpose::Search => {
                self.search.pending = false;
                self.search.error = None;
                self.search.total = v.get("total").and_then(Value::as_u64).unwrap_or(0);
                self.search.results = v
                    .get("hits")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(parse_entry)
                    .collect();
                self.search.aggregation = v.get("aggregation").and_then(parse_agg);
                self.search.cur = Cursor::default();
            }
            Purpose::Triage => {}
        }
    }

    fn on_live(&mut self, v: Value) {
        if let Some(n) = v.get("lagged").and_then(Value::as_u64) {
            self.lagged += n;
            return;
        }
        if v.get("alert").is_some() {
            match parse_alert_hit(&v) {
                Some(r) => {
                    if self.timeline.session.is_some()
                        && r.alert.session.as_ref().map(|s| &s.id) == self.timeline.session.as_ref()
                        && let Some(e) = parse_entry(&v)
                    {
                        self.timeline.push(e);
                    }
                    self.alerts.push(Box::new(r));
                }
                None => self.bad_objects += 1,
            }
            return;
        }
        if v.get("ok").is_some() {
            return;
        }
        match parse_entry(&v) {
            Some(e) => self.timeline.push(e),
            None => self.bad_objects += 1,
        }
    }

    fn switch(&mut self, v: View) {
        self.view = v;
        if v == View::Sessions {
            self.send(Purpose::Sessions, json!({"op": "sessions", "since": null}));
        }
        if v == View::Rules {
            self.send(Purpose::Rules, json!({"op": "rules"}));
        }
    }

    fn open_session(&mut self, id: String, focus: Option<String>) {
        if self.view != View::Timeline {
            self.back = self.view;
        }
        self.timeline.loading = true;
        self.timeline.session = Some(id.clone());
        self.send(
            Purpose::Session { focus },
            json!({"op": "session", "id": id}),
        );
        self.view = View::Timeline;
    }

    fn run_search(&mut self) {
        self.search.pending = true;
        let since = RANGES[self.search.range];
        self.send(
            Purpose::Search,
            json!({"op": "search", "query": self.search.query, "since": since, "until": null,
                   "limit": 500, "offset": 0}),
        );
    }

    /// Length of the current view's list and its cursor.
    fn list(&mut self) -> (usize, &mut Cursor) {
        match self.view {
            View::Alerts => (self.alerts.len(), &mut self.alerts.cur),
            View::Sessions => (self.sessions.visible.len(), &mut self.sessions.cur),
            View::Timeline => (self.timeline.entries.len(), &mut self.timeline.cur),
            View::Search => (self.search.results.len(), &mut self.search.cur),
            View::Rules => (self.rules.visible.len(), &mut self.rules.cur),
            View::Health => (0, &mut self.rules.cur),
        }
    }

    pub fn on_key(&mut self, k: KeyEvent) {
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            self.quit = true;
            return;
        }
        if self.prompt.is_some() {
            self.on_prompt_key(k);
            return;
        }
        if self.help {
            // Any key closes help; `q` still quits.
            self.help = false;
            if k.code == KeyCode::Char('q') {
                self.quit = true;
            }
            return;
        }
        let page = self.page.max(1) as isize;
        match k.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Tab => self.switch(View::ALL[(self.view.index() + 1) % 6]),
            KeyCode::BackTab => self.switch(View::ALL[(self.view.index() + 5) % 6]),
            KeyCode::Char(c @ '1'..='6') => self.switch(View::ALL[c as usize - '1' as usize]),
            KeyCode::Char(':') => self.prompt = Some((Prompt::Command, String::new())),
            KeyCode::Char('j') | KeyCode::Down => self.move_by(1),
            KeyCode::Char('k') | KeyCode::Up => self.move_by(-1),
            KeyCode::PageDown => self.move_by(page),
            KeyCode::PageUp => self.move_by(-page),
            KeyCode::Char('g') | KeyCode::Home => self.list().1.sel = 0,
            KeyCode::Char('G') | KeyCode::End => {
                let (n, c) = self.list();
                c.sel = n.saturating_sub(1);
            }
            KeyCode::Char('/') => {
                let (p, cur) = match self.view {
                    View::Alerts => (Prompt::Filter, self.alerts.filter.clone()),
                    View::Sessions => (Prompt::Filter, self.sessions.filter.clone()),
                    View::Rules => (Prompt::Filter, self.rules.filter.clone()),
                    View::Search => (Prompt::Query, self.search.query.clone()),
                    View::Timeline | View::Health => return,
                };
                self.prompt = Some((p, cur));
            }
            KeyCode::Esc => match self.view {
                View::Alerts => self.alerts.set_filter(""),
                View::Sessions => self.sessions.set_filter(""),
                View::Rules => self.rules.set_filter(""),
                View::Timeline => self.view = self.back,
                _ => self.message = None,
            },
            KeyCode::Enter => self.enter(),
            KeyCode::Char(c @ ('a' | 'r' | 'o')) if self.view == View::Alerts => {
                if let Some(r) = self.alerts.selected() {
                    let state = match c {
                        'a' => TriageState::Acknowledged,
                        'r' => TriageState::Resolved,
                        _ => TriageState::Open,
                    };
                    self.prompt = Some((
                        Prompt::Note {
                            alert_id: r.alert.id.clone(),
                            state,
                        },
                        String::new(),
                    ));
                }
            }
            KeyCode::Char('n') if self.view == View::Timeline => self.timeline.jump_alert(true),
            KeyCode::Char('p') if self.view == View::Timeline => self.timeline.jump_alert(false),
            KeyCode::Char('t') if self.view == View::Search => {
                self.search.range = (self.search.range + 1) % RANGES.len();
                if !self.search.query.is_empty() {
                    self.run_search();
                }
            }
            _ => {}
        }
    }

    fn move_by(&mut self, d: isize) {
        let (n, c) = self.list();
        c.by(d, n);
    }

    fn enter(&mut self) {
        match self.view {
            View::Alerts => {
                if let Some(r) = self.alerts.selected() {
                    match &r.alert.session {
                        Some(s) => self.open_session(s.id.clone(), Some(r.alert.id.clone())),
                        None => self.message = Some("this alert has no session".into()),
                    }
                }
            }
            View::Sessions => {
                if let Some(s) = self.sessions.selected() {
                    self.open_session(s.id.clone(), None);
                }
            }
            View::Search => {
                if let Some(e) = self.search.selected() {
                    if let Some(s) = e.session.clone() {
                        let id = e.id.clone();
                        self.open_session(s, Some(id));
                    }
                } else if !self.search.query.is_empty() {
                    self.run_search();
                }
            }
            _ => {}
        }
    }

    fn on_prompt_key(&mut self, k: KeyEvent) {
        let Some((p, mut buf)) = self.prompt.take() else {
            return;
        };
        match k.code {
            KeyCode::Esc => {
                // Esc on a filter clears it; on other prompts it just cancels.
                if p == Prompt::Filter {
                    self.apply_filter("");
                }
                return;
            }
            KeyCode::Enter => {
                self.submit(p, buf);
                return;
            }
            KeyCode::Backspace => {
                buf.pop();
            }
            KeyCode::Char(c) if !c.is_control() => buf.push(c),
            _ => {}
        }
        if p == Prompt::Filter {
            // Filter as you type.
            self.apply_filter(&buf);
        }
        self.prompt = Some((p, buf));
    }

    fn apply_filter(&mut self, f: &str) {
        match self.view {
            View::Alerts => self.alerts.set_filter(f),
            View::Sessions => self.sessions.set_filter(f),
            View::Rules => self.rules.set_filter(f),
            _ => {}
        }
    }

    fn submit(&mut self, p: Prompt, buf: String) {
        match p {
            Prompt::Filter => self.apply_filter(&buf),
            Prompt::Query => {
                self.search.query = buf;
                if !self.search.query.trim().is_empty() {
                    self.run_search();
                }
            }
            Prompt::Command => {
                let c = buf.trim().to_lowercase();
                if c == "q" || c == "quit" {
                    self.quit = true;
                } else if let Some(v) = View::ALL
                    .into_iter()
                    .find(|v| !c.is_empty() && v.name().to_lowercase().starts_with(&c))
                {
                    self.switch(v);
                } else {
                    self.message = Some(format!("unknown command `{}`", safe(&c)));
                }
            }
            Prompt::Note { alert_id, state } => {
                self.send(
                    Purpose::Triage,
                    json!({"op": "triage", "alert_id": alert_id, "state": state.name(),
                           "note": buf}),
                );
                self.alerts.set_triage(&alert_id, state, &buf);
                self.message = Some(format!("{} `{}`", state.name(), safe(&alert_id)));
            }
        }
    }
}
