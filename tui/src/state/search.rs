//! The Search view model: the query, its time range, the hits of the last run and its
//! aggregation.
//!
//! A query runs when the user submits it (or changes the range of a non-empty one); each answer
//! replaces the hits and puts the selection back on the first. Hits are not filtered (the query
//! is the filter), so they are a plain vector with the shared [`Cursor`].

use agent_api::Aggregation;

use super::list::Cursor;
use crate::answer::{Entry, Found};

/// Search time ranges, cycled with `t`.
pub const RANGES: &[Option<&str>] = &[Some("15m"), Some("1h"), Some("24h"), Some("7d"), None];

#[derive(Debug)]
pub struct SearchState {
    pub query: String,
    /// Index into [`RANGES`].
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

    /// The time range after the current one.
    pub(super) fn next_range(&mut self) {
        self.range = (self.range + 1) % RANGES.len();
    }

    /// The `since` of a search request.
    pub(super) fn since(&self) -> Option<&'static str> {
        RANGES[self.range]
    }

    pub(super) fn found(&mut self, f: Found) {
        self.pending = false;
        self.error = None;
        self.total = f.total;
        self.results = f.hits;
        self.aggregation = f.aggregation;
        self.cur = Cursor::default();
    }

    pub(super) fn failed(&mut self, e: String) {
        self.pending = false;
        self.error = Some(e);
    }

    /// The number of hits and the selection, for the movement keys.
    pub(super) fn nav(&mut self) -> (usize, &mut Cursor) {
        (self.results.len(), &mut self.cur)
    }
}
