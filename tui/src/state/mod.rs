//! The model: everything the TUI knows, and how keys and daemon answers change it.
//!
//! Pure and synchronous: [`App::on_key`], [`App::on_update`] and [`App::on_tick`] mutate the
//! state and queue [`Request`]s in [`App::outbox`]; nothing here draws or does IO, so every
//! behaviour is testable without a terminal.
//!
//! One file per view model ([`alerts`], [`sessions`], [`timeline`], [`search`], [`rules`],
//! [`health`]). The filtered ones (Alerts, Sessions, Rules) are the one generic
//! [`FilteredList`] of [`list`] plus their extras, and every list moves the same [`Cursor`];
//! this file holds the [`App`] that owns them, the connection and prompt state, and the key
//! dispatch. Requests are [`agent_api::Request`]s; the daemon's typed answers are made into
//! rows by [`crate::answer`] (which escapes agent-originated strings once, when they enter the
//! model); its row types are re-exported here, as the model is made of them, with the API's
//! [`TriageState`] and [`Aggregation`].

pub mod alerts;
pub mod health;
pub mod list;
pub mod rules;
pub mod search;
pub mod sessions;
pub mod timeline;

use agent_api::{Answer, SessionAction, StreamItem};
use agent_model::Timestamp;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

pub use self::alerts::AlertsState;
pub use self::health::{HISTORY, HealthState};
pub use self::list::{Cursor, Filterable, FilteredList, Order};
pub use self::rules::RulesState;
pub use self::search::{RANGES, SearchState};
pub use self::sessions::SessionsState;
pub use self::timeline::TimelineState;
use crate::answer;
pub use agent_api::{Aggregation, TriageState};

pub use crate::answer::{
    AlertRow, Entry, EntryKind, ProcLine, RuleRow, SessionRow, alert_entry, alert_rows,
    event_entry, event_text, hit_entry,
};
use crate::msg::{LiveLine, Purpose, Request, Update};
use crate::text::safe;

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
    (
        "Ctrl-K / f / u",
        "session: kill / freeze / thaw (confirm with a note)",
    ),
    ("t", "search: cycle time range"),
    ("q, Ctrl-C", "quit"),
];

/// Alerts fetched at start and after every reconnect.
pub const ALERT_FETCH: usize = 10_000;

/// Hits a search asks for.
const SEARCH_LIMIT: usize = 500;

/// The sessions request: every session the store knows.
const SESSIONS: agent_api::Request = agent_api::Request::Sessions { since: None };

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
    /// Confirm a response action on a session, with a note: what will happen to which session.
    Respond(Confirm),
}

/// What a response prompt is about to do, as the responder confirms it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirm {
    /// Raw session id.
    pub session: String,
    pub action: SessionAction,
    /// Escaped agent name, `-` when unknown.
    pub agent: String,
    /// Live processes from the last status; `None`: the daemon does not list it as live.
    pub procs: Option<u64>,
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
    /// A fleet console (`tui --fleet`): a host column, and alerts fetched every second.
    pub fleet: bool,
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
            fleet: false,
        };
        app.resync();
        app
    }

    fn send(&mut self, purpose: Purpose, body: agent_api::Request) {
        if purpose == Purpose::Status {
            self.status_pending = true;
        }
        self.outbox.push(Request { purpose, body });
    }

    /// The alert list of the last day, every severity.
    fn fetch_alerts(&mut self) {
        self.send(
            Purpose::Alerts,
            agent_api::Request::Alerts {
                since: Some("24h".into()),
                severity: Some("info".into()),
                limit: ALERT_FETCH,
            },
        );
    }

    /// Ask for everything again (start, reconnect).
    fn resync(&mut self) {
        self.send(Purpose::Status, agent_api::Request::Status);
        self.send(Purpose::Rules, agent_api::Request::Rules);
        self.fetch_alerts();
        self.send(Purpose::Sessions, SESSIONS);
    }

    /// Called every 250 ms: status every second, sessions every 5 s, alerts every 5 s when
    /// there is no live stream and every 30 s when there is.
    pub fn on_tick(&mut self, now: Timestamp) {
        self.now = now;
        self.ticks += 1;
        if self.refetch_alerts_at.is_some_and(|t| self.ticks >= t) {
            self.refetch_alerts_at = None;
            self.fetch_alerts();
        }
        // A fleet console reads alerts and shared triage from its backend's cache: cheap, so
        // every second, and triage made on other consoles shows within about a second.
        if self.fleet && self.ticks.is_multiple_of(4) {
            self.fetch_alerts();
        }
        if self.ticks.is_multiple_of(4) && !self.status_pending {
            self.send(Purpose::Status, agent_api::Request::Status);
        }
        if self.ticks.is_multiple_of(20) {
            self.send(Purpose::Sessions, SESSIONS);
            // Without a live stream, poll; with one, resync every 30 s so triage done in other
            // TUIs shows up here too.
            if matches!(self.conn, Conn::Offline | Conn::Down { .. })
                || self.ticks.is_multiple_of(120)
            {
                self.fetch_alerts();
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
                match result {
                    Ok(a) => self.on_answer(purpose, a),
                    Err(e) => self.fail(&purpose, &e),
                }
            }
        }
    }

    fn fail(&mut self, purpose: &Purpose, e: &str) {
        let e = safe(e);
        match purpose {
            Purpose::Search => self.search.failed(e),
            Purpose::Session { .. } => {
                self.timeline.loading = false;
                self.message = Some(format!("cannot open session: {e}"));
            }
            Purpose::Respond { session, action } => {
                self.message = Some(format!(
                    "{} session `{}` failed: {e}",
                    action.name(),
                    safe(session)
                ));
            }
            _ => self.message = Some(format!("{purpose:?}: {e}").to_lowercase()),
        }
    }

    fn on_answer(&mut self, purpose: Purpose, a: Answer) {
        match (purpose, a) {
            (Purpose::Status, Answer::Status(st)) => {
                let mut status = answer::status(*st);
                self.sessions
                    .set_live(std::mem::take(&mut status.live_sessions));
                self.health.set(status);
            }
            (Purpose::Rules, Answer::Rules(l)) => self.rules.set(answer::policy(l)),
            (Purpose::Alerts, Answer::Alerts(l)) => self.alerts.replace(alert_rows(l)),
            (Purpose::Sessions, Answer::Sessions(l)) => self.sessions.set(answer::session_rows(l)),
            (Purpose::Session { focus }, Answer::Session(d)) => {
                self.timeline
                    .load(answer::session_timeline(*d), focus.as_deref());
                if let Some(id) = self.timeline.session.clone() {
                    self.sessions
                        .intent_from_timeline(&id, &self.timeline.entries);
                }
            }
            (Purpose::Search, Answer::Search(r)) => self.search.found(answer::found(r)),
            (Purpose::Triage, _) => {}
            (Purpose::Respond { session, action }, Answer::Responded(r)) => {
                self.sessions.responded(&session, action.name());
                self.message = Some(format!(
                    "{} session `{}`: {} ({} processes)",
                    action.name(),
                    safe(&session),
                    safe(&r.result),
                    r.processes
                ));
            }
            // A backend answered with another request's answer: a bug of that backend.
            (p, _) => self.fail(&p, "the backend answered another request"),
        }
    }

    fn on_live(&mut self, l: LiveLine) {
        match l {
            Ok(StreamItem::Lagged(n)) => self.lagged += n,
            Ok(StreamItem::Alert(a)) => {
                let r = AlertRow::new(*a);
                if self.timeline.session.is_some()
                    && r.alert.session.as_ref().map(|s| &s.id) == self.timeline.session.as_ref()
                {
                    self.timeline.push(alert_entry(&r));
                }
                self.alerts.push(Box::new(r));
            }
            Ok(StreamItem::Event(e)) => {
                let entry = event_entry(&e);
                if let Some(sid) = e.session_id() {
                    self.sessions.count_intent(sid, &entry);
                    // Every response, a rule's or another responder's, shows on the row.
                    if let Some(r) = e.response.as_ref().filter(|r| {
                        e.kind() == agent_model::Kind::ResponseAction
                            && r.mode == "enforce"
                            && r.result == "done"
                    }) {
                        self.sessions.responded(sid, &r.action);
                    }
                }
                self.timeline.push(entry);
            }
            Err(_) => self.bad_objects += 1,
        }
    }

    fn switch(&mut self, v: View) {
        self.view = v;
        if v == View::Sessions {
            self.send(Purpose::Sessions, SESSIONS);
        }
        if v == View::Rules {
            self.send(Purpose::Rules, agent_api::Request::Rules);
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
            agent_api::Request::Session { id },
        );
        self.view = View::Timeline;
    }

    fn run_search(&mut self) {
        self.search.pending = true;
        let since = self.search.since();
        self.send(
            Purpose::Search,
            agent_api::Request::Search {
                query: self.search.query.clone(),
                since: since.map(str::to_owned),
                until: None,
                limit: SEARCH_LIMIT,
                offset: 0,
            },
        );
    }

    /// Length of the current view's list and its cursor.
    fn list(&mut self) -> (usize, &mut Cursor) {
        match self.view {
            View::Alerts => self.alerts.nav(),
            View::Sessions => self.sessions.nav(),
            View::Timeline => self.timeline.nav(),
            View::Search => self.search.nav(),
            View::Rules => self.rules.nav(),
            // Health has no list: its movement keys act on an empty one. That it is the Rules
            // cursor (reset to the top by them) is kept from before the split into view models.
            View::Health => (0, &mut self.rules.cur),
        }
    }

    /// Ask to confirm a response action on the selected session (Sessions) or the open one
    /// (Timeline).
    fn confirm(&mut self, action: SessionAction) {
        let id = match self.view {
            View::Sessions => self.sessions.selected().map(|r| r.id.clone()),
            View::Timeline => self.timeline.session.clone(),
            _ => return,
        };
        let Some(session) = id else {
            self.message = Some("no session selected".into());
            return;
        };
        let agent = self
            .sessions
            .rows
            .iter()
            .find(|r| r.id == session)
            .map_or_else(|| "-".to_owned(), |r| r.agent.clone());
        let procs = self.sessions.procs(&session);
        self.prompt = Some((
            Prompt::Respond(Confirm {
                session,
                action,
                agent,
                procs,
            }),
            String::new(),
        ));
    }

    pub fn on_key(&mut self, k: KeyEvent) {
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            self.quit = true;
            return;
        }
        if k.modifiers.contains(KeyModifiers::CONTROL)
            && k.code == KeyCode::Char('k')
            && self.prompt.is_none()
            && !self.help
        {
            self.confirm(SessionAction::Kill);
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
            KeyCode::Char('f') if matches!(self.view, View::Sessions | View::Timeline) => {
                self.confirm(SessionAction::Freeze)
            }
            KeyCode::Char('u') if matches!(self.view, View::Sessions | View::Timeline) => {
                self.confirm(SessionAction::Thaw)
            }
            KeyCode::Char('n') if self.view == View::Timeline => self.timeline.jump_alert(true),
            KeyCode::Char('p') if self.view == View::Timeline => self.timeline.jump_alert(false),
            KeyCode::Char('t') if self.view == View::Search => {
                self.search.next_range();
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
                if let Prompt::Respond(c) = &p {
                    self.message = Some(format!(
                        "{} session `{}`: cancelled, nothing sent",
                        c.action.name(),
                        safe(&c.session)
                    ));
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
                    agent_api::Request::triage(alert_id.clone(), state, buf.clone()),
                );
                self.alerts.set_triage(&alert_id, state, &buf);
                self.message = Some(format!("{} `{}`", state.name(), safe(&alert_id)));
            }
            Prompt::Respond(c) => {
                self.message = Some(format!(
                    "{} session `{}`: asking the daemon…",
                    c.action.name(),
                    safe(&c.session)
                ));
                self.send(
                    Purpose::Respond {
                        session: c.session.clone(),
                        action: c.action,
                    },
                    agent_api::Request::Respond {
                        session: c.session,
                        action: c.action,
                        note: buf,
                    },
                );
            }
        }
    }
}
