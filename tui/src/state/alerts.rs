//! The Alerts view model: every alert of the last day plus the live ones, newest first, with
//! counts per severity and the triage the user set.
//!
//! Rows are kept in arrival order in a newest-first [`FilteredList`] that follows its top, so a
//! live alert lands on top without moving a selection the user scrolled to. The daemon folds
//! repeats of an alert into one with a count; an alert id seen again replaces its row in place
//! (keeping its triage unless the new copy carries one) instead of adding a row.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};

use agent_api::TriageState;

use super::list::{Filterable, FilteredList};
use crate::answer::AlertRow;
use crate::text::safe;

impl Filterable for AlertRow {
    fn hay(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.hay)
    }
}

/// The live alert list, newest first. Derefs to its [`FilteredList`].
#[derive(Debug)]
pub struct AlertsState {
    /// Boxed so growing the list moves pointers, not whole rows.
    pub list: FilteredList<Box<AlertRow>>,
    /// Alert id to its index in `list.rows`.
    by_id: HashMap<String, usize>,
    /// Alerts per severity (indexed by `Severity as usize`).
    pub counts: [u64; 5],
}

impl Default for AlertsState {
    fn default() -> Self {
        AlertsState {
            list: FilteredList::default().newest_first().follow(),
            by_id: HashMap::new(),
            counts: [0; 5],
        }
    }
}

impl Deref for AlertsState {
    type Target = FilteredList<Box<AlertRow>>;

    fn deref(&self) -> &Self::Target {
        &self.list
    }
}

impl DerefMut for AlertsState {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.list
    }
}

impl AlertsState {
    /// Replace everything (initial load, resync), oldest first by last time.
    pub fn replace(&mut self, mut rows: Vec<Box<AlertRow>>) {
        let keep = self.selected().map(|r| r.alert.id.clone());
        rows.sort_by_key(|r| (r.alert.last_time, r.alert.time));
        self.list.rows.clear();
        self.by_id.clear();
        self.counts = [0; 5];
        for r in rows {
            if let Some(r) = self.fold(r) {
                self.list.rows.push(r);
            }
        }
        self.list.refilter();
        if let Some(id) = keep
            && let Some(&i) = self.by_id.get(&id)
        {
            self.list.select_row(i);
        }
    }

    /// Count `r` and fold it into the row of the same alert; hands it back when it is new (the
    /// caller appends it, at the index recorded for its id).
    fn fold(&mut self, r: Box<AlertRow>) -> Option<Box<AlertRow>> {
        let Some(&i) = self.by_id.get(&r.alert.id) else {
            self.counts[r.alert.severity as usize] += 1;
            self.by_id.insert(r.alert.id.clone(), self.list.rows.len());
            return Some(r);
        };
        // A folded duplicate: the same alert with a new count; triage is kept unless the
        // newer copy carries one.
        let old = &mut self.list.rows[i];
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
        None
    }

    /// One live alert. The selection stays on the same alert when the user has scrolled.
    pub fn push(&mut self, r: Box<AlertRow>) {
        if let Some(r) = self.fold(r) {
            self.list.push(r);
        }
    }

    pub fn set_triage(&mut self, id: &str, state: TriageState, note: &str) {
        if let Some(&i) = self.by_id.get(id) {
            self.list.rows[i].triage = state;
            self.list.rows[i].note = safe(note);
        }
    }
}
