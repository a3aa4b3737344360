//! The one filtered list of the model: rows, the filter typed over them, which of them are
//! shown, in which order, and the selection ([`Cursor`], which every view's list moves).
//!
//! Shaped like tokio-console's table state, but the rows are owned here: the Alerts, Sessions
//! and Rules view models are a [`FilteredList`] of their row type plus whatever else they show
//! (Timeline and Search are never filtered: they keep a plain vector and a [`Cursor`]). Rows are
//! stored in one order ([`Order`] says whether they are shown as stored or newest first), an
//! optional sort hook keeps them sorted on [`FilteredList::replace`], and `visible` indexes the
//! rows that pass the filter, so filtering never copies a row. The selection is a position
//! among the shown rows; a row arriving keeps it on the same row.

use std::borrow::Cow;
use std::cmp::Ordering;

/// A selection in a list, with scrolling computed at draw time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    pub sel: usize,
}

impl Cursor {
    /// Move by `d` rows, staying within a list of `len` rows.
    pub fn by(&mut self, d: isize, len: usize) {
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

/// A row the filter can match.
pub trait Filterable {
    /// Lowercase text in which every filter term must appear.
    fn hay(&self) -> Cow<'_, str>;
}

impl<T: Filterable + ?Sized> Filterable for Box<T> {
    fn hay(&self) -> Cow<'_, str> {
        (**self).hay()
    }
}

/// How stored rows are shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Row 0 shown first.
    #[default]
    AsStored,
    /// The last stored row shown first: a feed stored in arrival order, shown newest first.
    NewestFirst,
}

/// Rows, filter, order and selection. Display positions (`row`, `cur.sel`, indexing) count the
/// shown rows in display order; `rows` and `visible` are in storage order.
#[derive(Debug)]
pub struct FilteredList<T> {
    /// Every row, in storage order.
    pub rows: Vec<T>,
    /// Indexes into `rows` of the rows that pass the filter, ascending.
    pub visible: Vec<usize>,
    /// The filter as typed.
    pub filter: String,
    /// Its lowercase terms; a row is shown when its hay holds all of them.
    terms: Vec<String>,
    pub cur: Cursor,
    order: Order,
    /// Sort hook: `replace` puts `rows` in this order.
    sort: Option<fn(&T, &T) -> Ordering>,
    /// A selection on the first shown row stays there when a row is shown above it, so the
    /// newest row of a live feed stays selected; otherwise the selection follows its row.
    follow: bool,
}

impl<T> Default for FilteredList<T> {
    fn default() -> Self {
        FilteredList {
            rows: Vec::new(),
            visible: Vec::new(),
            filter: String::new(),
            terms: Vec::new(),
            cur: Cursor::default(),
            order: Order::AsStored,
            sort: None,
            follow: false,
        }
    }
}

fn matches<T: Filterable>(row: &T, terms: &[String]) -> bool {
    if terms.is_empty() {
        return true;
    }
    let hay = row.hay();
    terms.iter().all(|t| hay.contains(t.as_str()))
}

impl<T> FilteredList<T> {
    /// Show the last stored row first.
    pub fn newest_first(mut self) -> Self {
        self.order = Order::NewestFirst;
        self
    }

    /// Sort the rows by `cmp` (stable) whenever they are replaced.
    pub fn sorted_by(mut self, cmp: fn(&T, &T) -> Ordering) -> Self {
        self.sort = Some(cmp);
        self
    }

    /// Keep a selection on the first shown row there when rows arrive above it.
    pub fn follow(mut self) -> Self {
        self.follow = true;
        self
    }

    /// Rows shown.
    pub fn len(&self) -> usize {
        self.visible.len()
    }

    pub fn is_empty(&self) -> bool {
        self.visible.is_empty()
    }

    /// Display position of `visible[p]`.
    fn display(&self, p: usize) -> usize {
        match self.order {
            Order::AsStored => p,
            Order::NewestFirst => self.visible.len() - 1 - p,
        }
    }

    /// Shown row `i` (0 = first on screen).
    pub fn row(&self, i: usize) -> Option<&T> {
        let n = self.visible.len();
        if i >= n {
            return None;
        }
        let p = match self.order {
            Order::AsStored => i,
            Order::NewestFirst => n - 1 - i,
        };
        Some(&self.rows[self.visible[p]])
    }

    pub fn selected(&self) -> Option<&T> {
        self.row(self.cur.sel)
    }

    /// Select the stored row `i`, if it is shown.
    pub fn select_row(&mut self, i: usize) {
        if let Ok(p) = self.visible.binary_search(&i) {
            self.cur.sel = self.display(p);
        }
    }

    /// Select the first shown row (in storage order) for which `pred` holds, if any.
    pub fn select_where(&mut self, pred: impl Fn(&T) -> bool) {
        if let Some(p) = self.visible.iter().position(|&i| pred(&self.rows[i])) {
            self.cur.sel = self.display(p);
        }
    }

    /// The number of shown rows and the selection, for the movement keys.
    pub fn nav(&mut self) -> (usize, &mut Cursor) {
        (self.visible.len(), &mut self.cur)
    }
}

impl<T: Filterable> FilteredList<T> {
    /// Replace every row (sorted by the hook, if any), keeping the filter; the selection stays
    /// at its position, within the new length.
    pub fn replace(&mut self, mut rows: Vec<T>) {
        if let Some(cmp) = self.sort {
            rows.sort_by(cmp);
        }
        self.rows = rows;
        self.refilter();
    }

    /// Filter by `f` (whitespace-separated terms, all required, any case) and select the first
    /// row.
    pub fn set_filter(&mut self, f: &str) {
        self.filter = f.to_string();
        self.terms = f.split_whitespace().map(str::to_lowercase).collect();
        self.refilter();
        self.cur.sel = 0;
    }

    /// Recompute the shown rows after `rows` changed wholesale.
    pub fn refilter(&mut self) {
        let terms = &self.terms;
        self.visible = (0..self.rows.len())
            .filter(|&i| matches(&self.rows[i], terms))
            .collect();
        self.cur.clamp(self.visible.len());
    }

    /// Append a row (a live feed, in arrival order), keeping the selection on its row.
    pub fn push(&mut self, row: T) {
        let had_rows = !self.visible.is_empty();
        let shown = matches(&row, &self.terms);
        self.rows.push(row);
        if !shown {
            return;
        }
        self.visible.push(self.rows.len() - 1);
        let d = self.display(self.visible.len() - 1);
        if had_rows && d <= self.cur.sel && !(self.follow && self.cur.sel == 0) {
            self.cur.sel += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct R(&'static str, u32);

    impl Filterable for R {
        fn hay(&self) -> Cow<'_, str> {
            Cow::Owned(self.0.to_lowercase())
        }
    }

    fn names(l: &FilteredList<R>) -> Vec<&str> {
        (0..l.len()).map(|i| l.row(i).unwrap().0).collect()
    }

    #[test]
    fn filter_keeps_rows_holding_every_term_in_any_case() {
        let mut l = FilteredList::default();
        l.replace(vec![R("Alpha beta", 0), R("alpha", 1), R("gamma", 2)]);
        l.cur.sel = 2;
        l.set_filter("BETA alp");
        assert_eq!(names(&l), ["Alpha beta"]);
        assert_eq!(l.cur.sel, 0, "a new filter selects the first row");
        l.set_filter("");
        assert_eq!(l.len(), 3);
        assert_eq!(l.rows.len(), 3, "filtering never drops stored rows");
    }

    #[test]
    fn newest_first_feed_follows_the_top_but_keeps_a_scrolled_selection() {
        let mut l = FilteredList::default().newest_first().follow();
        l.push(R("a", 0));
        l.push(R("b", 1));
        assert_eq!(names(&l), ["b", "a"]);
        assert_eq!(l.cur.sel, 0);
        l.push(R("c", 2));
        assert_eq!(l.selected(), Some(&R("c", 2)), "the top stays selected");
        l.cur.sel = 1;
        assert_eq!(l.selected(), Some(&R("b", 1)));
        l.push(R("d", 3));
        assert_eq!(names(&l), ["d", "c", "b", "a"]);
        assert_eq!(
            l.selected(),
            Some(&R("b", 1)),
            "a scrolled selection stays on its row"
        );
        l.set_filter("d");
        l.push(R("e", 4));
        assert_eq!(names(&l), ["d"], "a hidden row is stored but not shown");
        assert_eq!(l.rows.len(), 5);
    }

    #[test]
    fn the_sort_hook_orders_replaced_rows_and_selection_follows_ids() {
        let mut l = FilteredList::default().sorted_by(|a: &R, b: &R| a.1.cmp(&b.1));
        l.replace(vec![R("c", 3), R("a", 1), R("b", 1)]);
        assert_eq!(names(&l), ["a", "b", "c"], "stable sort");
        l.select_where(|r| r.0 == "c");
        assert_eq!(l.cur.sel, 2);
        l.push(R("d", 0));
        assert_eq!(names(&l), ["a", "b", "c", "d"], "a pushed row is appended");
        assert_eq!(l.selected(), Some(&R("c", 3)));
        l.set_filter("b");
        l.select_row(0);
        assert_eq!(
            l.selected(),
            Some(&R("b", 1)),
            "a hidden row cannot be selected"
        );
        l.set_filter("");
        l.select_row(2);
        assert_eq!(l.selected(), Some(&R("c", 3)));
    }
}
