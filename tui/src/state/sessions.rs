//! The Sessions view model: agent sessions newest first, which of them are live, and a summary
//! per agent.
//!
//! The list comes from `sessions` answers, liveness from `status` answers; the two arrive
//! independently, so the live ids are kept and applied to whichever list is current.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

use super::list::{Filterable, FilteredList};
use crate::answer::SessionRow;

impl Filterable for SessionRow {
    fn hay(&self) -> Cow<'_, str> {
        Cow::Owned(format!("{} {} {}", self.agent, self.id_text, self.root).to_lowercase())
    }
}

/// Sessions, newest first. Derefs to its [`FilteredList`].
#[derive(Debug)]
pub struct SessionsState {
    pub list: FilteredList<SessionRow>,
    /// Live session ids, from the last status.
    live: Vec<String>,
}

impl Default for SessionsState {
    fn default() -> Self {
        SessionsState {
            // Newest first, ties by id.
            list: FilteredList::default()
                .sorted_by(|a: &SessionRow, b| b.start.cmp(&a.start).then(a.id.cmp(&b.id))),
            live: Vec::new(),
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

impl SessionsState {
    /// A new list; the selection stays on the same session if it is still there.
    pub fn set(&mut self, mut rows: Vec<SessionRow>) {
        let keep = self.selected().map(|r| r.id.clone());
        for r in &mut rows {
            r.live = self.live.contains(&r.id);
        }
        self.list.replace(rows);
        if let Some(id) = keep {
            self.list.select_where(|r| r.id == id);
        }
    }

    pub(super) fn set_live(&mut self, ids: Vec<String>) {
        for r in &mut self.list.rows {
            r.live = ids.contains(&r.id);
        }
        self.live = ids;
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
