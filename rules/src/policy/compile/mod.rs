//! The policy compiler: [`compile`] turns checked sources into compiled rules, recording every
//! problem with its `file:line:col` instead of stopping at the first.
//!
//! Split by what it compiles, as methods of one [`Compiler`] (its state, in `context`):
//! `names` resolves lists and macros, `condition` compiles conditions (single tests are built by
//! `policy::matchers`), `window` a rule's shape (condition, window or sequence) and `rule` the
//! rest of a rule. This module drives them: sizes, parsing, registration, then rules. Building
//! the index and hashing the sources is left to `Policy::compile`, so the compiler never sees
//! the finished [`Policy`](super::Policy).

mod condition;
mod context;
mod inline;
mod names;
mod overrides;
mod rule;
mod window;

use std::collections::{HashMap, HashSet};

use toml::Spanned;

use self::context::{Compiler, ListEntry, MacroEntry};
use crate::error::{Error, PolicyErrors, did_you_mean};
use crate::policy::definitions::{FileDef, RuleDef};
use crate::policy::limits::{MAX_RULES, MAX_TOTAL_BYTES};
use crate::policy::rule::{Rule, RuleInfo};
use crate::policy::source::Source;
use crate::policy::validate::{check_source, improve_message};

/// The compiled rules of a valid policy, in definition order, with what a listing shows.
pub(super) struct Compiled {
    pub(super) rules: Vec<Rule>,
    pub(super) infos: Vec<RuleInfo>,
}

/// Compile `sources`, or report every problem found.
pub(super) fn compile(sources: &[Source]) -> Result<Compiled, PolicyErrors> {
    Compiler::new(sources).run()
}

impl Compiler<'_> {
    /// Every file parsed and registered, every list and macro checked (used or not), then the
    /// rules in definition order.
    fn run(mut self) -> Result<Compiled, PolicyErrors> {
        let total: usize = self.sources.iter().map(|s| s.bytes.len()).sum();
        if total > MAX_TOTAL_BYTES {
            self.err(
                0,
                0,
                format!(
                    "policy is `{total}` bytes in all, more than the limit of `{MAX_TOTAL_BYTES}`"
                ),
            );
            return Err(PolicyErrors(self.errors));
        }
        if self.sources.is_empty() {
            self.errors.push(Error::Policy {
                file: "<policy>".into(),
                line: 1,
                col: 1,
                message: "no policy files given".into(),
            });
            return Err(PolicyErrors(self.errors));
        }
        // Parse every file.
        let mut rules: Vec<(usize, Spanned<RuleDef>)> = Vec::new();
        let mut extends = Vec::new();
        let mut overrides = Vec::new();
        for i in 0..self.sources.len() {
            let sources = self.sources;
            let (problems, text) = check_source(&sources[i]);
            for (at, message) in problems {
                self.err(i, at, message);
            }
            let Some(text) = text else {
                continue;
            };
            let file: FileDef = match toml::from_str(text) {
                Ok(f) => f,
                Err(e) => {
                    let at = e.span().map_or(0, |s| s.start);
                    self.err(i, at, improve_message(e.message()));
                    continue;
                }
            };
            if file.lists.is_empty()
                && file.extend_lists.is_empty()
                && file.macros.is_empty()
                && file.rule.is_empty()
                && file.overrides.is_empty()
            {
                self.err(
                    i,
                    0,
                    "policy file defines no rules, lists or macros (a half-written file?)",
                );
            }
            for (name, items) in file.lists {
                let span = items.span().start;
                let prev = self.lists.get(&name).map(|p| (p.file, p.span));
                if !self.check_definition("list", &name, i, span, prev) {
                    continue;
                }
                self.lists.insert(
                    name,
                    ListEntry {
                        file: i,
                        span,
                        items: Some(items.into_inner()),
                        resolved: None,
                        busy: false,
                    },
                );
            }
            extends.extend(
                file.extend_lists
                    .into_iter()
                    .map(|(n, items)| (i, n, items)),
            );
            for (name, def) in file.macros {
                let span = def.span().start;
                let prev = self.macros.get(&name).map(|p| (p.file, p.span));
                if !self.check_definition("macro", &name, i, span, prev) {
                    continue;
                }
                self.macros.insert(
                    name,
                    MacroEntry {
                        file: i,
                        span,
                        def: Some(def),
                        compiled: None,
                        busy: false,
                    },
                );
            }
            rules.extend(file.rule.into_iter().map(|r| (i, r)));
            overrides.extend(file.overrides.into_iter().map(|o| (i, o)));
            if rules.len() > MAX_RULES {
                self.err(i, 0, format!("policy has more than `{MAX_RULES}` rules"));
                return Err(PolicyErrors(self.errors));
            }
        }
        // `[extend_lists]`: appended to lists defined anywhere, in file order.
        for (file, name, items) in extends {
            let span = items.span().start;
            match self.lists.get_mut(&name) {
                Some(ListEntry {
                    items: Some(have), ..
                }) => have.extend(items.into_inner()),
                None if self.sources[file].extends_optional => {}
                _ => {
                    let known = did_you_mean(&name, self.lists.keys().map(|k| k.as_str()));
                    self.err(
                        file,
                        span,
                        format!("`extend_lists` names undefined list `{name}`{known}"),
                    );
                }
            }
        }
        // Every list and macro is checked, used or not.
        let mut names: Vec<String> = self.lists.keys().cloned().collect();
        names.sort();
        for n in names {
            self.resolve_list(&n, None);
        }
        let mut names: Vec<String> = self.macros.keys().cloned().collect();
        names.sort();
        for n in names {
            self.compile_macro(&n, None);
        }
        // Rules.
        let mut seen: HashMap<String, (usize, usize)> = HashMap::new();
        let mut compiled = Vec::new();
        let mut infos = Vec::new();
        for (file, def) in rules {
            let span = def.span().start;
            let def = def.into_inner();
            let id = def.id.get_ref().clone();
            let id_at = def.id.span().start;
            if let Some(&(pf, ps)) = seen.get(&id) {
                let first = self.at(pf, ps);
                self.err(
                    file,
                    id_at,
                    format!("duplicate rule id `{id}`, first defined at {first}"),
                );
                continue;
            }
            seen.insert(id.clone(), (file, id_at));
            let at = self.at(file, span);
            if let Some((rule, mut info)) = self.compile_rule(file, def) {
                info.defined_at = at;
                compiled.push(rule);
                infos.push(info);
            }
        }
        self.apply_overrides(overrides, &seen, &mut compiled, &mut infos);
        if !self.errors.is_empty() {
            let mut seen = HashSet::new();
            self.errors.retain(|e| seen.insert(e.to_string()));
            return Err(PolicyErrors(self.errors));
        }
        Ok(Compiled {
            rules: compiled,
            infos,
        })
    }
}
