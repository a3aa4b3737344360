//! Conditions: `all` / `any` / `not` / `macro` / field tests as written, compiled into the
//! evaluation tree of `crate::cond`.
//!
//! Besides building the tree this checks the shape of each node (exactly one of the forms), the
//! nesting depth, contradictions inside an `all`, and records where each field is used and which
//! kinds an enclosing `kind` guard narrows it to, so that a rule can reject a field that does not
//! exist for its kinds. Single tests are built by `policy::matchers`.

use agent_model::{FIELDS, Field, Kind};
use toml::Spanned;

use super::context::{Compiler, Use};
use crate::cond::Node;
use crate::error::did_you_mean;
use crate::policy::definitions::{CondDef, Item, Items, RangeDef};
use crate::policy::limits::MAX_DEPTH;
use crate::policy::matchers::build_matcher;
use crate::policy::rule::kind_bit;
use crate::policy::validate::contradiction;

/// The kinds a `{ field = "kind", equals = ... }` / `in = [...]` test allows.
fn kind_guard(d: &CondDef) -> Option<u64> {
    if d.field.as_deref() != Some("kind") {
        return None;
    }
    let items = match (&d.equals, &d.in_) {
        (Some(i), None) => vec![i.clone()],
        (None, Some(v)) => v.clone().into_vec(),
        _ => return None,
    };
    let mut mask = 0;
    for i in items {
        let Item::Str(s) = i else { return None };
        mask |= kind_bit(Kind::from_name(&s)?);
    }
    Some(mask)
}

impl Compiler<'_> {
    /// One condition at nesting `depth`, recording in `uses` every field it tests (through
    /// macros too) for the rule's kind check; `None` after recording its errors.
    pub(super) fn compile_cond(
        &mut self,
        file: usize,
        def: &Spanned<CondDef>,
        depth: usize,
        uses: &mut Vec<Use>,
    ) -> Option<Node> {
        let at = def.span().start;
        if depth > MAX_DEPTH {
            self.err(
                file,
                at,
                format!("conditions are nested more than `{MAX_DEPTH}` levels deep"),
            );
            return None;
        }
        let d = def.get_ref();
        let ops: Vec<(&str, Option<Vec<Item>>)> = vec![
            ("equals", d.equals.clone().map(|i| vec![i])),
            ("in", d.in_.clone().map(Items::into_vec)),
            ("prefix", d.prefix.clone().map(Items::into_vec)),
            ("suffix", d.suffix.clone().map(Items::into_vec)),
            ("contains", d.contains.clone().map(Items::into_vec)),
            ("glob", d.glob.clone().map(Items::into_vec)),
            ("regex", d.regex.clone().map(Items::into_vec)),
            ("cidr", d.cidr.clone().map(Items::into_vec)),
            ("ports", d.ports.clone().map(Items::into_vec)),
            ("basename", d.basename.clone().map(Items::into_vec)),
            ("gt", d.gt.clone().map(|i| vec![i])),
            ("ge", d.ge.clone().map(|i| vec![i])),
            ("lt", d.lt.clone().map(|i| vec![i])),
            ("le", d.le.clone().map(|i| vec![i])),
            ("exists", d.exists.map(|b| vec![Item::Bool(b)])),
            ("bits_any", d.bits_any.clone().map(|i| vec![i])),
            ("bits_all", d.bits_all.clone().map(|i| vec![i])),
            ("bits_none", d.bits_none.clone().map(|i| vec![i])),
            ("len", d.len.clone().map(RangeDef::into_items)),
            ("entropy", d.entropy.clone().map(RangeDef::into_items)),
            (
                "changed_by_session",
                d.changed_by_session.map(|b| vec![Item::Bool(b)]),
            ),
            (
                "created_by_session",
                d.created_by_session.map(|b| vec![Item::Bool(b)]),
            ),
        ];
        let tests: Vec<(&str, Vec<Item>)> = ops
            .into_iter()
            .filter_map(|(n, v)| v.map(|v| (n, v)))
            .collect();
        let shapes = usize::from(d.all.is_some())
            + usize::from(d.any.is_some())
            + usize::from(d.not.is_some())
            + usize::from(d.macro_.is_some())
            + usize::from(d.field.is_some() || !tests.is_empty());
        if shapes != 1 {
            let msg = if shapes == 0 {
                "empty condition: expected one of `all`, `any`, `not`, `macro`, or `field` with a test"
            } else {
                "a condition takes exactly one of `all`, `any`, `not`, `macro`, or `field` with a test; wrap several in `all = [...]`"
            };
            self.err(file, at, msg);
            return None;
        }
        if let Some(list) = d.all.as_ref().or(d.any.as_ref()) {
            let which = if d.all.is_some() { "all" } else { "any" };
            if list.is_empty() {
                self.err(
                    file,
                    at,
                    format!("empty `{which}` can never be meaningful: list at least one condition"),
                );
                return None;
            }
            let mut nodes = Vec::new();
            let first_use = uses.len();
            for c in list {
                if let Some(n) = self.compile_cond(file, c, depth + 1, uses) {
                    nodes.push(n);
                }
            }
            if which == "all" {
                let guard = list
                    .iter()
                    .filter_map(|c| kind_guard(c.get_ref()))
                    .fold(None, |acc: Option<u64>, m| Some(acc.map_or(m, |a| a & m)));
                if let Some(g) = guard {
                    for u in &mut uses[first_use..] {
                        u.narrow = Some(u.narrow.map_or(g, |n| n & g));
                    }
                }
            }
            if nodes.len() != list.len() {
                return None;
            }
            nodes.sort_by_key(Node::cost);
            if which == "all" {
                if let Some(why) = contradiction(&nodes) {
                    self.err(file, at, format!("this `all` can never match: {why}"));
                    return None;
                }
                return Some(if nodes.len() == 1 {
                    nodes.pop()?
                } else {
                    Node::All(nodes)
                });
            }
            return Some(if nodes.len() == 1 {
                nodes.pop()?
            } else {
                Node::Any(nodes)
            });
        }
        if let Some(inner) = &d.not {
            return self
                .compile_cond(file, inner, depth + 1, uses)
                .map(|n| Node::Not(Box::new(n)));
        }
        if let Some(name) = &d.macro_ {
            let m = self.compile_macro(name, Some((file, at)))?;
            for &(f, narrow) in &m.fields {
                uses.push(Use {
                    field: f,
                    at,
                    via_macro: Some(name.clone()),
                    narrow,
                });
            }
            return Some(Node::Macro(m.node.clone()));
        }
        // A field test.
        let Some(fname) = &d.field else {
            self.err(
                file,
                at,
                format!("`{}` needs a `field` to test", tests[0].0),
            );
            return None;
        };
        let Some(field) = Field::from_name(fname) else {
            let s = did_you_mean(fname, FIELDS.iter().map(|f| f.name));
            self.err(
                file,
                at,
                format!("unknown field `{}`{s}", fname.escape_debug()),
            );
            return None;
        };
        let (op, items) = match tests.len() {
            0 => {
                self.err(file, at, format!("field `{fname}` has no test: add one of `equals`, `in`, `prefix`, `suffix`, `contains`, `basename`, `glob`, `regex`, `cidr`, `ports`, `gt`, `ge`, `lt`, `le`, `exists`, `bits_any`, `bits_all`, `bits_none`, `len`, `entropy`, `changed_by_session`, `created_by_session`"));
                return None;
            }
            1 => tests.into_iter().next()?,
            _ => {
                let names: Vec<String> = tests.iter().map(|t| format!("`{}`", t.0)).collect();
                self.err(
                    file,
                    at,
                    format!(
                        "one test per condition, found {}: wrap them in `all = [...]`",
                        names.join(", ")
                    ),
                );
                return None;
            }
        };
        let lits = self.resolve_items(file, at, items)?;
        uses.push(Use {
            field,
            at,
            via_macro: None,
            narrow: None,
        });
        match build_matcher(field, op, lits) {
            Ok(m) => Some(Node::Match(m)),
            Err(e) => {
                self.err(file, at, e);
                None
            }
        }
    }

    /// The mask of a `kinds = [...]` list; `None` after reporting an empty list or unknown kind.
    pub(super) fn parse_kinds(&mut self, file: usize, kinds: &Spanned<Vec<String>>) -> Option<u64> {
        let at = kinds.span().start;
        if kinds.get_ref().is_empty() {
            self.err(file, at, "`kinds` is empty: name at least one event kind");
            return None;
        }
        let mut mask = 0;
        let mut ok = true;
        for k in kinds.get_ref() {
            match Kind::from_name(k) {
                Some(kind) => mask |= kind_bit(kind),
                None => {
                    let s = did_you_mean(k, Kind::ALL.iter().map(|k| k.name()));
                    self.err(
                        file,
                        at,
                        format!("unknown event kind `{}`{s}", k.escape_debug()),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(mask)
    }

    /// Reports every use of a field that does not exist for one of `kinds`.
    pub(super) fn check_uses(&mut self, file: usize, uses: &[Use], kinds: u64) -> bool {
        let mut ok = true;
        for u in uses {
            let kinds = kinds & u.narrow.unwrap_or(u64::MAX);
            for k in Kind::ALL {
                if kinds & kind_bit(k) != 0 && !u.field.applies_to(k) {
                    let via = u
                        .via_macro
                        .as_ref()
                        .map(|m| format!(" (through macro `{m}`)"))
                        .unwrap_or_default();
                    self.err(
                        file,
                        u.at,
                        format!(
                            "field `{}`{via} does not exist for `{}` events; it exists for {}",
                            u.field.name(),
                            k.name(),
                            kinds_of(u.field)
                        ),
                    );
                    ok = false;
                    break;
                }
            }
        }
        ok
    }
}

/// The kinds field `f` exists for, for messages.
fn kinds_of(f: Field) -> String {
    let ks = f.def().kinds;
    if ks.is_empty() {
        "every kind".into()
    } else {
        ks.iter()
            .map(|k| format!("`{}`", k.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
