//! The Timeline view model: one session's process tree and its events and alerts in time
//! order, with loss and restart marks.
//!
//! Entries are sorted by time, an alert after the events at the same time (it is caused by
//! them); live entries of the open session are inserted in that order without moving the
//! selection off its entry. Nothing filters a timeline, so it is a plain vector with the shared
//! [`Cursor`] rather than a [`super::list::FilteredList`].

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
        self.entries = entries;
        self.procs = s.procs;
        self.cur.sel = focus
            .and_then(|f| self.entries.iter().position(|e| e.id == f))
            .unwrap_or(0);
    }

    /// A live event or alert of the open session.
    pub(super) fn push(&mut self, e: Entry) {
        if self.session.is_some() && e.session == self.session {
            // Same order as `load`, after the entries equal to it.
            let at = self.entries.partition_point(|x| key(x) <= key(&e));
            if at <= self.cur.sel && !self.entries.is_empty() {
                self.cur.sel += 1;
            }
            self.entries.insert(at, e);
        }
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
