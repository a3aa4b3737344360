//! Matchers: one field test as written (`prefix = [...]` on `file.path`) turned into a compiled
//! [`Matcher`] — value types checked against the field's type, paths checked for what the kernel
//! can report, regexes, globs and CIDRs built once with size limits.
//!
//! Every way a single test can be wrong is found here and returned as one message; the compiler
//! gives it the test's `file:line:col`. Evaluation lives in `crate::cond`, which never parses.

use std::collections::HashSet;
use std::net::IpAddr;

use agent_model::{Field, FieldType, Kind};

use super::definitions::Lit;
use super::limits::MAX_REGEX_BYTES;
use super::rule::kind_bit;
use super::validate::check_text;
use crate::cond::{Bits, Cidr, Cmp, FxBuild, Matcher, Op, glob_literal};
use crate::error::did_you_mean;

fn is_path_field(f: Field) -> bool {
    matches!(
        f,
        Field::ProcessExe
            | Field::ProcessCwd
            | Field::ProcessFilename
            | Field::ParentExe
            | Field::Ancestry
            | Field::FilePath
            | Field::FileTarget
            | Field::NetUnixPath
    )
}

fn has_dotdot(p: &str) -> bool {
    p.split('/').any(|seg| seg == "..")
}

fn lit_str(op: &str, l: &Lit) -> Result<String, String> {
    match l {
        Lit::Str(s) => {
            check_text(s)?;
            Ok(s.clone())
        }
        Lit::Float(f) => Err(format!("`{op}` expects text, found the number `{f}`")),
        Lit::Int(i) => Err(format!("`{op}` expects text, found the number `{i}`")),
        Lit::Bool(b) => Err(format!("`{op}` expects text, found `{b}`")),
    }
}

fn lit_int(op: &str, l: &Lit) -> Result<i64, String> {
    match l {
        Lit::Int(i) => Ok(*i),
        Lit::Float(f) if f.is_nan() => Err(format!("`{op}` expects an integer, found `nan`")),
        Lit::Float(f) => Err(format!("`{op}` expects an integer, found the float `{f}`")),
        Lit::Str(s) => Err(format!(
            "`{op}` expects an integer, found the text `{}`",
            s.escape_debug()
        )),
        Lit::Bool(b) => Err(format!("`{op}` expects an integer, found `{b}`")),
    }
}

fn port_of(op: &str, v: i64) -> Result<u16, String> {
    u16::try_from(v).map_err(|_| format!("port `{v}` in `{op}` is out of range `0..=65535`"))
}

pub(super) fn build_matcher(field: Field, op: &str, lits: Vec<Lit>) -> Result<Matcher, String> {
    let ty = field.def().ty;
    let name = field.name();
    let desc = format!("{name} {op} {lits:?}");
    let mk = |op: Op| {
        Ok(Matcher {
            field,
            op,
            desc: desc.clone(),
        })
    };
    if lits.is_empty() && matches!(op, "len" | "entropy") {
        return Err(format!(
            "`{op}` on `{name}` needs at least one of `gt`, `ge`, `lt`, `le`, e.g. `{op} = {{ gt = 50 }}`"
        ));
    }
    if lits.is_empty() {
        return Err(format!(
            "`{op}` on `{name}` has an empty list and can never match"
        ));
    }
    let texty = matches!(ty, FieldType::Str | FieldType::StrList);
    let numeric = matches!(ty, FieldType::Int | FieldType::Port | FieldType::Time);
    let wrong = |what: &str| Err(format!("`{op}` is not a test for `{name}`, a {what} field"));
    let tyname = match ty {
        FieldType::Str => "text",
        FieldType::StrList => "text list",
        FieldType::Int => "integer",
        FieldType::Ip => "IP address",
        FieldType::Port => "port",
        FieldType::Bool => "boolean",
        FieldType::Time => "time",
    };
    let path_check = |s: &str, must_be_absolute: bool| -> Result<(), String> {
        if !is_path_field(field) {
            return Ok(());
        }
        if has_dotdot(s) {
            return Err(format!(
                "path `{s}` contains `..`: paths from the kernel are normalized, so it can never match"
            ));
        }
        if must_be_absolute
            && !(s.starts_with('/')
                || s.starts_with('*')
                || (field == Field::NetUnixPath && s.starts_with('@')))
        {
            return Err(format!(
                "path `{s}` in `{op}` on `{name}` is relative: paths from the kernel are absolute"
            ));
        }
        Ok(())
    };
    match op {
        "exists" => mk(Op::Exists(matches!(lits[0], Lit::Bool(true)))),
        "equals" | "in" => match ty {
            FieldType::Str | FieldType::StrList => {
                let mut set: HashSet<Box<[u8]>, FxBuild> = HashSet::default();
                for l in &lits {
                    let s = lit_str(op, l)?;
                    path_check(&s, true)?;
                    set.insert(s.into_bytes().into_boxed_slice());
                }
                if field == Field::EventKind {
                    let mut mask = 0;
                    for k in &set {
                        let name = String::from_utf8_lossy(k);
                        let kind = Kind::from_name(&name).ok_or_else(|| {
                            let s = did_you_mean(&name, Kind::ALL.iter().map(|k| k.name()));
                            format!("unknown event kind `{}`{s}", name.escape_debug())
                        })?;
                        mask |= kind_bit(kind);
                    }
                    return mk(Op::KindIn(mask));
                }
                if set.len() <= 8 {
                    return mk(Op::StrInSmall(set.into_iter().collect()));
                }
                mk(Op::StrIn(set))
            }
            FieldType::Int | FieldType::Time => {
                let v: Result<Vec<i64>, String> = lits.iter().map(|l| lit_int(op, l)).collect();
                mk(Op::IntIn(v?))
            }
            FieldType::Port => {
                let mut v = Vec::new();
                for l in &lits {
                    v.push(i64::from(port_of(op, lit_int(op, l)?)?));
                }
                mk(Op::IntIn(v))
            }
            FieldType::Ip => {
                let mut v = Vec::new();
                for l in &lits {
                    let s = lit_str(op, l)?;
                    v.push(
                        s.parse::<IpAddr>()
                            .map_err(|_| format!("`{s}` is not an IP address"))?,
                    );
                }
                mk(Op::IpIn(v))
            }
            FieldType::Bool => match (&lits[..], op) {
                ([Lit::Bool(b)], "equals") => mk(Op::BoolEq(*b)),
                _ => Err(format!(
                    "`{name}` is a boolean: use `equals = true` or `equals = false`"
                )),
            },
        },
        "prefix" | "suffix" | "contains" | "basename" => {
            if !texty {
                return wrong(tyname);
            }
            let mut v = Vec::new();
            for l in &lits {
                let s = lit_str(op, l)?;
                if s.is_empty() {
                    return Err(format!(
                        "empty `{op}` pattern on `{name}` would match everything"
                    ));
                }
                if op == "basename" && s.contains('/') {
                    return Err(format!(
                        "`basename` pattern `{s}` contains `/`: it is compared with the part after the last `/`"
                    ));
                }
                path_check(&s, op == "prefix")?;
                v.push(s);
            }
            mk(match op {
                "prefix" => Op::Prefix(
                    v.into_iter()
                        .map(|s| s.into_bytes().into_boxed_slice())
                        .collect(),
                ),
                "suffix" => Op::Suffix(
                    v.into_iter()
                        .map(|s| s.into_bytes().into_boxed_slice())
                        .collect(),
                ),
                "basename" => Op::Basename(
                    v.into_iter()
                        .map(|s| s.into_bytes().into_boxed_slice())
                        .collect(),
                ),
                _ => {
                    let alts: Vec<String> = v.iter().map(|s| regex::escape(s)).collect();
                    let re = regex::bytes::RegexBuilder::new(&alts.join("|"))
                        .unicode(false)
                        .size_limit(MAX_REGEX_BYTES)
                        .build()
                        .map_err(|e| regex_error(&alts.join("|"), &e))?;
                    Op::Contains(
                        re,
                        v.into_iter()
                            .map(|s| s.into_bytes().into_boxed_slice())
                            .collect(),
                    )
                }
            })
        }
        "glob" => {
            if !texty {
                return wrong(tyname);
            }
            let mut b = globset::GlobSetBuilder::new();
            let mut literals: Option<Vec<String>> = Some(Vec::new());
            for l in &lits {
                let s = lit_str(op, l)?;
                path_check(&s, true)?;
                match (glob_literal(&s), literals.as_mut()) {
                    (Some(lit), Some(v)) => v.push(lit.to_string()),
                    _ => literals = None,
                }
                let g = globset::GlobBuilder::new(&s)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| format!("bad glob `{s}`: {}", e.kind()))?;
                b.add(g);
            }
            let set = b.build().map_err(|e| format!("bad glob set: {e}"))?;
            let literals = literals.unwrap_or_default();
            let escaped: Vec<String> = literals.iter().map(|l| regex::escape(l)).collect();
            let pre = if escaped.is_empty() {
                None
            } else {
                regex::bytes::RegexBuilder::new(&escaped.join("|"))
                    .unicode(false)
                    .size_limit(MAX_REGEX_BYTES)
                    .build()
                    .ok()
            };
            let literals = if pre.is_some() {
                literals
                    .into_iter()
                    .map(|l| l.into_bytes().into_boxed_slice())
                    .collect()
            } else {
                Vec::new()
            };
            mk(Op::Glob(set, pre, literals))
        }
        "regex" => {
            if !texty {
                return wrong(tyname);
            }
            let mut alts = Vec::new();
            for l in &lits {
                let s = lit_str(op, l)?;
                regex::RegexBuilder::new(&s)
                    .size_limit(MAX_REGEX_BYTES)
                    .build()
                    .map_err(|e| regex_error(&s, &e))?;
                alts.push(format!("(?:{s})"));
            }
            let all = alts.join("|");
            let re = regex::bytes::RegexBuilder::new(&all)
                .size_limit(MAX_REGEX_BYTES)
                .build()
                .map_err(|e| regex_error(&all, &e))?;
            mk(Op::Regex(re))
        }
        "cidr" => {
            if ty != FieldType::Ip {
                return wrong(tyname);
            }
            let mut v = Vec::new();
            for l in &lits {
                v.push(Cidr::parse(&lit_str(op, l)?)?);
            }
            mk(Op::Cidr(v))
        }
        "ports" => {
            if ty != FieldType::Port {
                return wrong(tyname);
            }
            let mut v = Vec::new();
            for l in &lits {
                let (lo, hi) = match l {
                    Lit::Str(s) => {
                        let (a, b) = s.split_once('-').unwrap_or((s, s));
                        let p = |x: &str| -> Result<u16, String> {
                            let n: i64 = x.trim().parse().map_err(|_| {
                                format!("`{s}` is not a port or a range like `1-1024`")
                            })?;
                            port_of(op, n)
                        };
                        (p(a)?, p(b)?)
                    }
                    other => {
                        let p = port_of(op, lit_int(op, other)?)?;
                        (p, p)
                    }
                };
                if lo > hi {
                    return Err(format!(
                        "port range `{lo}-{hi}` is empty and can never match"
                    ));
                }
                v.push((lo, hi));
            }
            mk(Op::Ports(v))
        }
        "gt" | "ge" | "lt" | "le" => {
            if !numeric {
                return wrong(tyname);
            }
            let n = lit_int(op, &lits[0])?;
            if ty == FieldType::Port {
                port_of(op, n)?;
            }
            let c = match op {
                "gt" => Cmp::Gt,
                "ge" => Cmp::Ge,
                "lt" => Cmp::Lt,
                _ => Cmp::Le,
            };
            mk(Op::Cmp(c, n))
        }
        "bits_any" | "bits_all" | "bits_none" => {
            // Integers, and text fields that hold a hex number (capability sets).
            if !(ty == FieldType::Int || field == Field::PrivCaps) {
                return Err(format!(
                    "`{op}` is not a test for `{name}`, a {tyname} field: bit tests apply to integer fields and `priv.caps`"
                ));
            }
            let v = lit_int(op, &lits[0])?;
            if v <= 0 {
                return Err(format!(
                    "`{op}` mask `{v}` must be a positive integer (write bits as `0o4000` or `0x200000`)"
                ));
            }
            let b = match op {
                "bits_any" => Bits::Any,
                "bits_all" => Bits::All,
                _ => Bits::None,
            };
            mk(Op::Bits(b, v as u64))
        }
        "len" | "entropy" => {
            if !texty {
                return wrong(tyname);
            }
            let max = if op == "len" { 1 << 20 } else { 8 };
            let mut ints = Vec::new();
            let mut floats = Vec::new();
            for pair in lits.chunks(2) {
                let [Lit::Str(c), v] = pair else {
                    return Err(format!(
                        "`{op}` takes a table such as `{op} = {{ gt = 50 }}`"
                    ));
                };
                let c = match c.as_str() {
                    "gt" => Cmp::Gt,
                    "ge" => Cmp::Ge,
                    "lt" => Cmp::Lt,
                    _ => Cmp::Le,
                };
                if op == "len" {
                    let n = lit_int(op, v)?;
                    if !(0..=max).contains(&n) {
                        return Err(format!("`len` bound `{n}` is out of range `0..={max}`"));
                    }
                    ints.push((c, n));
                } else {
                    let f = match v {
                        Lit::Int(i) => *i as f64,
                        Lit::Float(f) => *f,
                        _ => {
                            return Err(format!(
                                "`entropy` expects a number of bits per byte, found `{v:?}`"
                            ));
                        }
                    };
                    if !(0.0..=8.0).contains(&f) {
                        return Err(format!(
                            "`entropy` bound `{f}` is out of range `0..=8` (bits per byte)"
                        ));
                    }
                    floats.push((c, f));
                }
            }
            let empty = if op == "len" {
                range_empty(ints.iter().map(|&(c, n)| (c, n as f64)), 1.0)
            } else {
                range_empty(floats.iter().copied(), 0.0)
            };
            if empty {
                return Err(format!(
                    "no value satisfies every bound of `{op}` on `{name}`: it can never match"
                ));
            }
            mk(if op == "len" {
                Op::Len(ints)
            } else {
                Op::Entropy(floats)
            })
        }
        "changed_by_session" => {
            if !is_path_field(field) {
                return Err(format!(
                    "`changed_by_session` is a test for path fields (`process.exe`, `file.path`, `file.target`, ...), not `{name}`"
                ));
            }
            mk(Op::Changed(matches!(lits[0], Lit::Bool(true))))
        }
        "created_by_session" => {
            if !is_path_field(field) {
                return Err(format!(
                    "`created_by_session` is a test for path fields (`file.path`, `file.target`, ...), not `{name}`"
                ));
            }
            mk(Op::Created(matches!(lits[0], Lit::Bool(true))))
        }
        _ => Err(format!("unknown test `{op}`")),
    }
}

/// Whether comparisons leave no value (`step`: the gap between values, 1 for integers).
fn range_empty(cs: impl Iterator<Item = (Cmp, f64)>, step: f64) -> bool {
    let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
    let (mut lo_open, mut hi_open) = (false, false);
    for (c, v) in cs {
        match c {
            Cmp::Gt if v >= lo => (lo, lo_open) = (v, true),
            Cmp::Ge if v > lo => (lo, lo_open) = (v, false),
            Cmp::Lt if v <= hi => (hi, hi_open) = (v, true),
            Cmp::Le if v < hi => (hi, hi_open) = (v, false),
            _ => {}
        }
    }
    if step > 0.0 {
        let lo = if lo_open { lo + step } else { lo };
        let hi = if hi_open { hi - step } else { hi };
        lo > hi
    } else {
        lo > hi || (lo == hi && (lo_open || hi_open))
    }
}

fn regex_error(s: &str, e: &regex::Error) -> String {
    let short: String = s.chars().take(60).collect();
    match e {
        regex::Error::CompiledTooBig(limit) => {
            format!("regex `{short}` is too large: it compiles to more than `{limit}` bytes")
        }
        _ => {
            let msg = e.to_string();
            let last = msg
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            format!(
                "bad regex `{short}`: {}",
                last.trim_start_matches("error: ")
            )
        }
    }
}
