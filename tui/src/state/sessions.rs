//! The Sessions view model: agent sessions newest first, which of them are live, what a
//! responder did to them, what their agents said, and a summary per agent.
//!
//! The list comes from `sessions` answers, liveness (with live process counts) from `status`
//! answers, response states from `respond` answers and `response.action` events, and intent
//! figures (model, tool calls, tokens) from the agent and `llm.*` events of the live stream and
//! of opened timelines. They all arrive independently, so each is kept by session id and applied
//! to whichever list is current.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::{Deref, DerefMut};

use super::list::{Filterable, FilteredList};
use crate::answer::{Entry, EntryKind, SessionRow};
use crate::intent::IntentStats;

impl Filterable for SessionRow {
    fn hay(&self) -> Cow<'_, str> {
        Cow::Owned(
            format!(
                "{} {} {} {} {}",
                self.agent,
                self.id_text,
                self.root,
                self.response.unwrap_or(""),
                self.intent.model.as_deref().unwrap_or("")
            )
            .to_lowercase(),
        )
    }
}

/// Sessions, newest first. Derefs to its [`FilteredList`].
#[derive(Debug)]
pub struct SessionsState {
    pub list: FilteredList<SessionRow>,
    /// Live session ids with their live processes, from the last status.
    live: Vec<(String, u64)>,
    /// `frozen` / `killed` per session id.
    response: HashMap<String, &'static str>,
    /// Intent figures per session id.
    intent: HashMap<String, IntentStats>,
}

impl Default for SessionsState {
    fn default() -> Self {
        SessionsState {
            // Newest first, ties by id.
            list: FilteredList::default()
                .sorted_by(|a: &SessionRow, b| b.start.cmp(&a.start).then(a.id.cmp(&b.id))),
            live: Vec::new(),
            response: HashMap::new(),
            intent: HashMap::new(),
        }
    }
}

impl Deref for SessionsState {
    type Target = FilteredList<SessionRow>;

    fn deref(&self) -> &Self::Target {
        &self.list
    }
}

impl DerefMut for SessionsState {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.list
    }
}

/// The state a response action leaves a session in; `None` for a thaw (running again).
pub fn response_state(action: &str) -> Option<&'static str> {
    match action {
        "freeze" | "freeze_session" => Some("frozen"),
        "kill" | "kill_session" => Some("killed"),
        _ => None,
    }
}

impl SessionsState {
    /// A new list; the selection stays on the same session if it is still there.
    pub fn set(&mut self, mut rows: Vec<SessionRow>) {
        let keep = self.selected().map(|r| r.id.clone());
        for r in &mut rows {
            self.decorate(r);
        }
        self.list.replace(rows);
        if let Some(id) = keep {
            self.list.select_where(|r| r.id == id);
        }
    }

    fn decorate(&self, r: &mut SessionRow) {
        let live = self.live.iter().find(|(id, _)| *id == r.id);
        r.live = live.is_some();
        r.procs = live.map(|(_, n)| *n);
        r.response = self.response.get(&r.id).copied();
        r.intent = self.intent.get(&r.id).cloned().unwrap_or_default();
    }

    pub(super) fn set_live(&mut self, live: Vec<(String, u64)>) {
        self.live = live;
        let mut rows = std::mem::take(&mut self.list.rows);
        for r in &mut rows {
            self.decorate(r);
        }
        self.list.rows = rows;
    }

    /// A response `action` (`kill`, `freeze_session`, ...) done on session `id`.
    pub(super) fn responded(&mut self, id: &str, action: &str) {
        let st = response_state(action);
        // A kill is final: a later thaw (or a late freeze event) does not bring it back.
        if self.response.get(id) == Some(&"killed") {
            return;
        }
        match st {
            Some(s) => self.response.insert(id.to_owned(), s),
            None => self.response.remove(id),
        };
        if let Some(r) = self.list.rows.iter_mut().find(|r| r.id == id) {
            r.response = self.response.get(id).copied();
        }
    }

    /// One live entry of session `id`: counted if it is a tool call or an LLM event.
    pub(super) fn count_intent(&mut self, id: &str, e: &Entry) {
        let EntryKind::Event(kind) = e.kind else {
            return;
        };
        if kind != agent_model::Kind::AgentToolCall && e.llm.is_none() {
            return;
        }
        let s = self.intent.entry(id.to_owned()).or_default();
        s.add(kind, e.llm.as_ref());
        let s = s.clone();
        if let Some(r) = self.list.rows.iter_mut().find(|r| r.id == id) {
            r.intent = s;
        }
    }

    /// A whole timeline of session `id` was loaded: its figures replace what the live stream
    /// counted.
    pub(super) fn intent_from_timeline(&mut self, id: &str, entries: &[Entry]) {
        let mut s = IntentStats::default();
        for e in entries {
            if let EntryKind::Event(kind) = e.kind {
                s.add(kind, e.llm.as_ref());
            }
        }
        if let Some(r) = self.list.rows.iter_mut().find(|r| r.id == id) {
            r.intent = s.clone();
        }
        if s.is_empty() {
            self.intent.remove(id);
        } else {
            self.intent.insert(id.to_owned(), s);
        }
    }

    /// The session's live process count, if live.
    pub fn procs(&self, id: &str) -> Option<u64> {
        self.live.iter().find(|(i, _)| i == id).map(|(_, n)| *n)
    }

    /// Sessions per agent: (agent, sessions, live).
    pub fn agents(&self) -> Vec<(String, usize, usize)> {
        let mut m: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for r in &self.list.rows {
            let e = m.entry(&r.agent).or_default();
            e.0 += 1;
            e.1 += r.live as usize;
        }
        m.into_iter()
            .map(|(a, (n, l))| (a.to_string(), n, l))
            .collect()
    }
}
