//! The Timeline view model: one session's process tree and its events and alerts in time
//! order, with the agent's prompts and tool calls among them, and loss and restart marks.
//!
//! Entries are sorted by time, an alert after the events at the same time (it is caused by
//! them). A tool call (`agent.tool_call`) is the parent row of what it caused: the entries that
//! carry its `intent.tool_call_id` (kernel events, its `agent.tool_result`) follow it in time
//! order at depth 1, even when other rows happened in between (concurrent calls, background
//! jobs); entries whose call is not in the timeline stay where their time puts them. Live
//! entries of the open session are inserted in the same order without moving the selection off
//! its entry. Nothing filters a timeline, so it is a plain vector with the shared [`Cursor`]
//! rather than a [`super::list::FilteredList`].

use std::collections::{HashMap, HashSet};

use super::list::Cursor;
use crate::answer::{Entry, EntryKind, ProcLine, SessionTimeline};

/// Time order; an alert after the events at the same time.
fn key(e: &Entry) -> (agent_model::Timestamp, bool) {
    (e.time, matches!(e.kind, EntryKind::Alert(_)))
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
    /// A `session` answer arrived; select `focus` (an entry id) if given.
    pub(super) fn load(&mut self, s: SessionTimeline, focus: Option<&str>) {
        self.loading = false;
        self.session = s.id;
        let mut entries = s.entries;
        // Stable: entries at the same time keep the answer's order.
        entries.sort_by_key(key);
        self.entries = nest(entries);
        self.procs = s.procs;
        self.cur.sel = focus
            .and_then(|f| self.entries.iter().position(|e| e.id == f))
            .unwrap_or(0);
    }

    /// A live event or alert of the open session.
    pub(super) fn push(&mut self, mut e: Entry) {
        if self.session.is_none() || e.session != self.session {
            return;
        }
        let parent = e
            .call_id
            .as_ref()
            .filter(|_| !e.is_tool_call())
            .and_then(|c| {
                self.entries
                    .iter()
                    .rposition(|x| x.is_tool_call() && x.call_id.as_ref() == Some(c))
            });
        let at =
            match parent {
                // Among the call's children, after those not later than it.
                Some(p) => {
                    e.depth = 1;
                    let mut at = p + 1;
                    while self.entries.get(at).is_some_and(|x| {
                        x.depth == 1 && x.call_id == e.call_id && key(x) <= key(&e)
                    }) {
                        at += 1;
                    }
                    at
                }
                // Among the top-level rows, after the last one not later than it and its children.
                // Live entries are nearly always the newest: the search from the end is short.
                None => {
                    e.depth = 0;
                    match self
                        .entries
                        .iter()
                        .rposition(|x| x.depth == 0 && key(x) <= key(&e))
                    {
                        Some(i) => {
                            let mut at = i + 1;
                            while self.entries.get(at).is_some_and(|x| x.depth == 1) {
                                at += 1;
                            }
                            at
                        }
                        None => 0,
                    }
                }
            };
        if at <= self.cur.sel && !self.entries.is_empty() {
            self.cur.sel += 1;
        }
        self.entries.insert(at, e);
    }

    pub(super) fn jump_alert(&mut self, forward: bool) {
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

    /// The number of entries and the selection, for the movement keys.
    pub(super) fn nav(&mut self) -> (usize, &mut Cursor) {
        (self.entries.len(), &mut self.cur)
    }
}

/// Time-ordered entries with each tool call's children moved right after it, at depth 1.
pub fn nest(entries: Vec<Entry>) -> Vec<Entry> {
    let calls: HashSet<String> = entries
        .iter()
        .filter(|e| e.is_tool_call())
        .filter_map(|e| e.call_id.clone())
        .collect();
    if calls.is_empty() {
        return entries;
    }
    let mut children: HashMap<String, Vec<Entry>> = HashMap::new();
    let mut top = Vec::with_capacity(entries.len());
    for mut e in entries {
        match e.call_id.clone() {
            Some(c) if !e.is_tool_call() && calls.contains(&c) => {
                e.depth = 1;
                children.entry(c).or_default().push(e);
            }
            _ => {
                e.depth = 0;
                top.push(e);
            }
        }
    }
    let mut out = Vec::with_capacity(top.len() + children.values().map(Vec::len).sum::<usize>());
    for e in top {
        // A call id repeated by a second call row: its children follow the first.
        let kids = if e.is_tool_call() {
            e.call_id.as_ref().and_then(|c| children.remove(c))
        } else {
            None
        };
        out.push(e);
        out.extend(kids.into_iter().flatten());
    }
    out
}
