//! The rule index: which rules can possibly match an event, found without evaluating them.
//!
//! For each rule the compiler derives a *requirement* from its condition: a text field and a
//! set of exact values, executable base names or literals, one of which the field must hold or
//! contain whenever the condition matches (`all` takes its most selective child's, `any` the
//! union of all its children's, possibly on different fields). Per event kind, rules with a requirement are indexed
//! by those values (hash maps for exact values and base names, one Aho-Corasick automaton per
//! field for literals); the rest are always evaluated. An event then costs one lookup or one
//! scan per indexed field plus the evaluation of the few candidate rules. The index only ever
//! skips rules that cannot match, so results are the same as evaluating every rule.
//!
//! It lives in `policy` because it is part of a compiled policy, built once by
//! `Policy::compile` and read by the engine; it reads compiled rules (`policy::rule`), never the
//! `Policy` that holds it, so the two do not import each other.

use std::collections::HashMap;

use agent_model::{Field, FieldType, Kind};
use aho_corasick::AhoCorasick;

use super::rule::{Mode, Rule, kind_bit};
use crate::cond::{FxBuild, Node, Op, any_text, basename};

/// What a matching event must hold in one field.
#[derive(Debug, Clone, PartialEq)]
enum Req {
    Exact(Field, Vec<Box<[u8]>>),
    Base(Field, Vec<Box<[u8]>>),
    Lits(Field, Vec<Box<[u8]>>),
}

impl Req {
    fn values(&self) -> &[Box<[u8]>] {
        match self {
            Req::Exact(_, v) | Req::Base(_, v) | Req::Lits(_, v) => v,
        }
    }

    /// Higher is more selective.
    fn score(&self) -> usize {
        let min = self.values().iter().map(|v| v.len()).min().unwrap_or(0);
        match self {
            Req::Exact(..) => 1000 + min,
            Req::Base(..) => 500 + min,
            Req::Lits(..) => min,
        }
    }

    fn usable(&self) -> bool {
        !self.values().is_empty() && self.values().iter().all(|v| v.len() >= 2)
    }
}

fn to_vec(v: impl IntoIterator<Item = impl AsRef<[u8]>>) -> Vec<Box<[u8]>> {
    v.into_iter()
        .map(|x| x.as_ref().to_vec().into_boxed_slice())
        .collect()
}

/// Requirements of a node: the node can only match when at least one of them holds.
fn requirement(n: &Node) -> Option<Vec<Req>> {
    match n {
        Node::Match(m) => {
            if m.field.def().ty != FieldType::Str && m.field.def().ty != FieldType::StrList {
                return None;
            }
            if m.field == Field::EventKind {
                return None;
            }
            let f = m.field;
            let r = match &m.op {
                Op::StrIn(s) => Req::Exact(f, to_vec(s.iter())),
                Op::StrInSmall(v) => Req::Exact(f, to_vec(v.iter())),
                Op::Basename(s) => Req::Base(f, to_vec(s.iter())),
                Op::Prefix(v) | Op::Suffix(v) | Op::Contains(_, v) => Req::Lits(f, v.clone()),
                Op::Glob(_, Some(_), lits) => Req::Lits(f, lits.clone()),
                _ => return None,
            };
            r.usable().then(|| vec![r])
        }
        Node::Macro(inner) => requirement(inner),
        // Any one child's requirements will do: take the most selective.
        Node::All(v) => v
            .iter()
            .filter_map(requirement)
            .max_by_key(|alts| alts.iter().map(Req::score).min().unwrap_or(0)),
        // Every branch must be covered; the rule is a candidate when any branch's holds.
        Node::Any(v) => {
            let mut out = Vec::new();
            for c in v {
                out.extend(requirement(c)?);
            }
            Some(out)
        }
        Node::True | Node::Not(_) => None,
    }
}

/// Values to rules, with the set of value lengths so most misses skip hashing.
#[derive(Debug, Default)]
struct ValueMap {
    map: HashMap<Box<[u8]>, Vec<u32>, FxBuild>,
    /// Bit `n` set when some value is `n` bytes long (`n < 128`).
    lens: u128,
    /// Some value is 128 bytes or longer.
    long: bool,
}

impl ValueMap {
    fn insert(&mut self, v: Box<[u8]>, rule: u32) {
        match v.len() {
            n if n < 128 => self.lens |= 1 << n,
            _ => self.long = true,
        }
        self.map.entry(v).or_default().push(rule);
    }

    #[inline]
    fn get(&self, v: &[u8]) -> Option<&Vec<u32>> {
        let possible = match v.len() {
            n if n < 128 => self.lens & (1 << n) != 0,
            _ => self.long,
        };
        if possible { self.map.get(v) } else { None }
    }
}
/// A literal and the rule that requires it.
type Owned = (Box<[u8]>, u32);

/// The candidate rules of one event kind.
#[derive(Debug, Default)]
pub(crate) struct KindIndex {
    always: Vec<u32>,
    exact: Vec<(Field, ValueMap)>,
    base: Vec<(Field, ValueMap)>,
    lits: Vec<(Field, AhoCorasick, Vec<Vec<u32>>)>,
}

impl KindIndex {
    /// Sorted, unique indexes of the rules that may match `ev`.
    pub(crate) fn candidates(&self, ev: &agent_model::Event, out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(&self.always);
        for (f, map) in &self.exact {
            any_text(ev, *f, |s| {
                if let Some(v) = map.get(s) {
                    out.extend_from_slice(v);
                }
                false
            });
        }
        for (f, map) in &self.base {
            any_text(ev, *f, |s| {
                if let Some(v) = map.get(basename(s)) {
                    out.extend_from_slice(v);
                }
                false
            });
        }
        for (f, ac, rules) in &self.lits {
            any_text(ev, *f, |s| {
                for m in ac.find_overlapping_iter(s) {
                    out.extend_from_slice(&rules[m.pattern().as_usize()]);
                }
                false
            });
        }
        if out.len() > self.always.len() {
            out.sort_unstable();
            out.dedup();
        }
    }
}

pub(crate) fn build(rules: &[Rule]) -> Vec<KindIndex> {
    let mut out = Vec::new();
    for k in Kind::ALL {
        let mut idx = KindIndex::default();
        let mut exact: HashMap<Field, ValueMap> = HashMap::new();
        let mut base: HashMap<Field, ValueMap> = HashMap::new();
        let mut lits: HashMap<Field, Vec<Owned>> = HashMap::new();
        for (i, r) in rules.iter().enumerate() {
            if !r.enabled || r.kinds & kind_bit(k) == 0 {
                continue;
            }
            let i = i as u32;
            let req = match r.mode {
                Mode::Sequence { .. } => None,
                _ => requirement(&r.cond),
            };
            let Some(alts) = req else {
                idx.always.push(i);
                continue;
            };
            for alt in alts {
                match alt {
                    Req::Exact(f, v) => {
                        for x in v {
                            exact.entry(f).or_default().insert(x, i);
                        }
                    }
                    Req::Base(f, v) => {
                        for x in v {
                            base.entry(f).or_default().insert(x, i);
                        }
                    }
                    Req::Lits(f, v) => lits
                        .entry(f)
                        .or_default()
                        .extend(v.into_iter().map(|x| (x, i))),
                }
            }
        }
        let mut fields: Vec<Field> = exact.keys().copied().collect();
        fields.sort();
        idx.exact = fields
            .into_iter()
            .map(|f| (f, exact.remove(&f).unwrap_or_default()))
            .collect();
        let mut fields: Vec<Field> = base.keys().copied().collect();
        fields.sort();
        idx.base = fields
            .into_iter()
            .map(|f| (f, base.remove(&f).unwrap_or_default()))
            .collect();
        let mut fields: Vec<Field> = lits.keys().copied().collect();
        fields.sort();
        for f in fields {
            let pairs = lits.remove(&f).unwrap_or_default();
            let mut patterns: Vec<Box<[u8]>> = Vec::new();
            let mut owners: Vec<Vec<u32>> = Vec::new();
            for (p, r) in pairs {
                match patterns.iter().position(|x| *x == p) {
                    Some(j) => owners[j].push(r),
                    None => {
                        patterns.push(p);
                        owners.push(vec![r]);
                    }
                }
            }
            match AhoCorasick::new(&patterns) {
                Ok(ac) => idx.lits.push((f, ac, owners)),
                // Cannot happen for plain literals; fall back to always evaluating.
                Err(_) => idx.always.extend(owners.into_iter().flatten()),
            }
        }
        idx.always.sort_unstable();
        idx.always.dedup();
        out.push(idx);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::default_sources;
    use crate::policy::compile::compile;

    /// The index may only skip rules that cannot match: on every fixture event, each rule whose
    /// condition matches is a candidate.
    #[test]
    fn index_never_skips_a_matching_rule() {
        let compiled = compile(&default_sources()).unwrap();
        let (rules, index) = (&compiled.rules, build(&compiled.rules));
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policy/fixtures");
        let mut checked = 0;
        let mut skipped = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<String> = if path.extension().is_some_and(|x| x == "jsonl") {
                text.lines()
                    .filter(|l| !l.contains("\"@case\""))
                    .map(String::from)
                    .collect()
            } else {
                let v: toml::Value = toml::from_str(&text).unwrap();
                v["case"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|c| {
                        c["events"]
                            .as_str()
                            .unwrap()
                            .lines()
                            .map(String::from)
                            .collect::<Vec<_>>()
                    })
                    .collect()
            };
            {
                for (n, line) in lines.iter().filter(|l| !l.trim().is_empty()).enumerate() {
                    let ev = crate::fixtures::event_from_line(n, line).unwrap();
                    let mut cands = Vec::new();
                    index[ev.kind() as usize].candidates(&ev, &mut cands);
                    for (i, r) in rules.iter().enumerate() {
                        if r.kinds & kind_bit(ev.kind()) == 0
                            || matches!(r.mode, Mode::Sequence { .. })
                        {
                            continue;
                        }
                        checked += 1;
                        if r.cond.eval(&ev, crate::cond::Cx::default()) {
                            assert!(
                                cands.contains(&(i as u32)),
                                "rule `{}` skipped for {line}",
                                r.id
                            );
                        } else if !cands.contains(&(i as u32)) {
                            skipped += 1;
                        }
                    }
                }
            }
        }
        assert!(
            checked > 1000 && skipped > checked / 2,
            "{checked} checked, {skipped} skipped"
        );
    }
}
