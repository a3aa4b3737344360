//! The compiler's state ([`Compiler`]) and the records its parts pass to each other: list and
//! macro entries, compiled macros, and the places fields are used.
//!
//! The compiler's methods are spread over the sibling modules by what they compile (lists and
//! macros, conditions, rules, windows); they all share this one state, defined here so that
//! none of them has to import another to reach it. Errors are recorded, not returned, so one
//! pass reports every problem with its `file:line:col`.

use std::collections::HashMap;
use std::sync::Arc;

use agent_model::Field;
use toml::Spanned;

use crate::cond::Node;
use crate::error::{Error, line_col};
use crate::policy::definitions::{CondDef, Item, Lit};
use crate::policy::source::Source;

/// A named list: its items as written until resolved, then the values.
pub(super) struct ListEntry {
    pub(super) file: usize,
    pub(super) span: usize,
    pub(super) items: Option<Vec<Item>>,
    pub(super) resolved: Option<Vec<Lit>>,
    pub(super) busy: bool,
}

/// A named macro: its definition until compiled, then the compiled condition (`Some(None)` when
/// it failed, so it is reported once).
pub(super) struct MacroEntry {
    pub(super) file: usize,
    pub(super) span: usize,
    pub(super) def: Option<Spanned<CondDef>>,
    pub(super) compiled: Option<Option<Arc<CompiledMacro>>>,
    pub(super) busy: bool,
}

/// A compiled macro, shared by every condition that names it.
pub(super) struct CompiledMacro {
    pub(super) node: Arc<Node>,
    /// Fields used, each with the kinds an enclosing `kind` guard narrowed it to.
    pub(super) fields: Vec<(Field, Option<u64>)>,
}

/// Where a field is used (to check it against the rule's kinds).
pub(super) struct Use {
    pub(super) field: Field,
    pub(super) at: usize,
    pub(super) via_macro: Option<String>,
    /// Kinds a sibling `{ field = "kind", equals/in = ... }` in an enclosing `all` allows.
    pub(super) narrow: Option<u64>,
}

/// The compiler's state while it works through the sources: the errors so far, the lists and
/// macros by name, and the names being resolved (to report a loop as `a -> b -> a`).
pub(super) struct Compiler<'a> {
    pub(super) sources: &'a [Source],
    pub(super) errors: Vec<Error>,
    pub(super) lists: HashMap<String, ListEntry>,
    pub(super) macros: HashMap<String, MacroEntry>,
    pub(super) stack: Vec<String>,
}

impl<'a> Compiler<'a> {
    pub(super) fn new(sources: &'a [Source]) -> Self {
        Compiler {
            sources,
            errors: Vec::new(),
            lists: HashMap::new(),
            macros: HashMap::new(),
            stack: Vec::new(),
        }
    }

    /// The file name, line and column of byte `offset` of source `file`.
    pub(super) fn place(&self, file: usize, offset: usize) -> (String, usize, usize) {
        let src = &self.sources[file];
        let (l, c) = line_col(&src.bytes, offset);
        (src.name.clone(), l, c)
    }

    /// Records an error at byte `offset` of source `file`.
    pub(super) fn err(&mut self, file: usize, offset: usize, message: impl Into<String>) {
        let (file, line, col) = self.place(file, offset);
        self.errors.push(Error::Policy {
            file,
            line,
            col,
            message: message.into(),
        });
    }

    /// `file:line:col` of byte `offset` of source `file`, for "first defined at" messages.
    pub(super) fn at(&self, file: usize, offset: usize) -> String {
        let (f, l, c) = self.place(file, offset);
        format!("{f}:{l}:{c}")
    }
}
