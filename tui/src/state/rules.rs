//! The Rules view model: the loaded policy's rules with their hit counts, and the policy's
//! source, generation and last reload error.

use std::borrow::Cow;
use std::ops::{Deref, DerefMut};

use super::list::{Filterable, FilteredList};
use crate::answer::{Policy, RuleRow};

impl Filterable for RuleRow {
    fn hay(&self) -> Cow<'_, str> {
        Cow::Owned(format!("{} {} {}", self.id, self.description, self.kinds).to_lowercase())
    }
}

/// The rules, in policy order. Derefs to its [`FilteredList`].
#[derive(Debug, Default)]
pub struct RulesState {
    pub list: FilteredList<RuleRow>,
    /// Escaped policy source.
    pub source: String,
    pub generation: u64,
    /// Escaped last reload error.
    pub last_error: Option<String>,
}

impl Deref for RulesState {
    type Target = FilteredList<RuleRow>;

    fn deref(&self) -> &Self::Target {
        &self.list
    }
}

impl DerefMut for RulesState {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.list
    }
}

impl RulesState {
    pub(super) fn set(&mut self, p: Policy) {
        self.source = p.source;
        self.generation = p.generation;
        self.last_error = p.last_error;
        self.list.replace(p.rules);
    }
}
