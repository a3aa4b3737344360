//! Lists and macros: the named, reusable parts of a policy, resolved on first use and cached.
//!
//! Both may refer to others of their kind, so both keep a `busy` mark and the compiler's stack
//! of names to report a loop as `a -> b -> a` instead of recursing forever. A macro is a
//! condition, so compiling one calls back into the condition compiler (a method of the same
//! [`Compiler`], not an import).

use std::sync::Arc;

use agent_model::Field;

use super::context::{CompiledMacro, Compiler};
use crate::error::did_you_mean;
use crate::policy::definitions::{Item, Lit, list_ref};
use crate::policy::validate::valid_name;

impl Compiler<'_> {
    /// Checks the name of a list or macro definition at (`file`, `span`) and that it is not a
    /// second definition (`prev`: where the first one is). False for a duplicate, to be skipped.
    pub(super) fn check_definition(
        &mut self,
        what: &str,
        name: &str,
        file: usize,
        span: usize,
        prev: Option<(usize, usize)>,
    ) -> bool {
        if !valid_name(name) {
            self.err(
                file,
                span,
                format!(
                    "{what} name `{}` must be lowercase letters, digits, `_`, `.` or `-`",
                    name.escape_debug()
                ),
            );
        }
        if let Some((pf, ps)) = prev {
            let first = self.at(pf, ps);
            self.err(
                file,
                span,
                format!("duplicate {what} `{name}`, first defined at {first}"),
            );
            return false;
        }
        true
    }

    /// The values of list `name`, references resolved; `from`: where it is named, for an
    /// "undefined list" error (`None` when checking every list).
    pub(super) fn resolve_list(
        &mut self,
        name: &str,
        from: Option<(usize, usize)>,
    ) -> Option<Vec<Lit>> {
        let Some(entry) = self.lists.get_mut(name) else {
            if let Some((f, at)) = from {
                let s = did_you_mean(name, self.lists.keys().map(|k| k.as_str()));
                self.err(f, at, format!("undefined list `{name}`{s}"));
            }
            return None;
        };
        if let Some(r) = &entry.resolved {
            return Some(r.clone());
        }
        if entry.busy {
            let (f, at) = (entry.file, entry.span);
            let mut path = self.stack.clone();
            path.push(name.to_string());
            let start = path.iter().position(|p| p == name).unwrap_or(0);
            self.err(
                f,
                at,
                format!(
                    "list `{name}` refers to itself: {}",
                    path[start..].join(" -> ")
                ),
            );
            return None;
        }
        let (file, items) = (entry.file, entry.items.take()?);
        let span = entry.span;
        entry.busy = true;
        self.stack.push(name.to_string());
        let mut out = Vec::new();
        let mut ok = true;
        for it in items {
            match it {
                Item::Str(s) => out.push(Lit::Str(s)),
                Item::Int(i) => out.push(Lit::Int(i)),
                Item::Bool(b) => out.push(Lit::Bool(b)),
                Item::Float(f) => out.push(Lit::Float(f)),
                Item::Ref(r) => match list_ref(&r) {
                    Ok(name) => match self.resolve_list(name, Some((file, span))) {
                        Some(v) => out.extend(v),
                        None => ok = false,
                    },
                    Err(e) => {
                        self.err(file, span, e);
                        ok = false;
                    }
                },
            }
        }
        self.stack.pop();
        let entry = self.lists.get_mut(name)?;
        entry.busy = false;
        if ok {
            entry.resolved = Some(out.clone());
            Some(out)
        } else {
            entry.resolved = Some(Vec::new());
            None
        }
    }

    /// Macro `name`, compiled once and shared; `from`: where it is named, for an "undefined
    /// macro" error (`None` when checking every macro).
    pub(super) fn compile_macro(
        &mut self,
        name: &str,
        from: Option<(usize, usize)>,
    ) -> Option<Arc<CompiledMacro>> {
        let Some(entry) = self.macros.get_mut(name) else {
            if let Some((f, at)) = from {
                let s = did_you_mean(name, self.macros.keys().map(|k| k.as_str()));
                self.err(f, at, format!("undefined macro `{name}`{s}"));
            }
            return None;
        };
        if let Some(c) = &entry.compiled {
            return c.clone();
        }
        if entry.busy {
            let (f, at) = (entry.file, entry.span);
            let mut path = self.stack.clone();
            path.push(name.to_string());
            let start = path.iter().position(|p| p == name).unwrap_or(0);
            self.err(
                f,
                at,
                format!(
                    "macro `{name}` refers to itself: {}",
                    path[start..].join(" -> ")
                ),
            );
            return None;
        }
        let def = entry.def.take()?;
        let file = entry.file;
        entry.busy = true;
        self.stack.push(name.to_string());
        let mut uses = Vec::new();
        let node = self.compile_cond(file, &def, 1, &mut uses);
        self.stack.pop();
        let result = node.map(|n| {
            let mut fields: Vec<(Field, Option<u64>)> =
                uses.iter().map(|u| (u.field, u.narrow)).collect();
            fields.sort();
            fields.dedup();
            Arc::new(CompiledMacro {
                node: Arc::new(n),
                fields,
            })
        });
        let entry = self.macros.get_mut(name)?;
        entry.busy = false;
        entry.compiled = Some(result.clone());
        result
    }

    /// The values of a test's items, list references at (`file`, `at`) resolved.
    pub(super) fn resolve_items(
        &mut self,
        file: usize,
        at: usize,
        items: Vec<Item>,
    ) -> Option<Vec<Lit>> {
        let mut out = Vec::new();
        let mut ok = true;
        for it in items {
            match it {
                Item::Str(s) => out.push(Lit::Str(s)),
                Item::Int(i) => out.push(Lit::Int(i)),
                Item::Bool(b) => out.push(Lit::Bool(b)),
                Item::Float(f) => out.push(Lit::Float(f)),
                Item::Ref(r) => match list_ref(&r) {
                    Ok(name) => match self.resolve_list(name, Some((file, at))) {
                        Some(v) => out.extend(v),
                        None => ok = false,
                    },
                    Err(e) => {
                        self.err(file, at, e);
                        ok = false;
                    }
                },
            }
        }
        ok.then_some(out)
    }
}
