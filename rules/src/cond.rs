//! Compiled conditions: a tree of `all` / `any` / `not` over matchers that were resolved to a
//! [`Field`] and compiled (regexes, globs, CIDRs) at load time, so evaluation does no parsing and,
//! for valid UTF-8 values, no allocation.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use agent_model::{Event, Field, Value};

use crate::changed::ChangedPaths;
pub(crate) use crate::hash::{Fx, FxBuild};

/// What a condition sees besides the event: the engine's state about the event's session.
#[derive(Clone, Copy, Default)]
pub(crate) struct Cx<'a> {
    /// The files the session created or changed before this event (`changed_by_session`).
    pub changed: Option<&'a ChangedPaths>,
}

/// A compiled condition.
#[derive(Debug)]
pub(crate) enum Node {
    True,
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Macro(Arc<Node>),
    Match(Matcher),
}

impl Node {
    /// Rough evaluation cost, so `all` and `any` test cheap things first (their children are
    /// pure, so order does not change the result).
    pub(crate) fn cost(&self) -> u32 {
        match self {
            Node::True => 0,
            Node::All(v) | Node::Any(v) => v.iter().map(Node::cost).sum(),
            Node::Not(n) => n.cost(),
            Node::Macro(n) => n.cost(),
            Node::Match(m) => {
                let base = match &m.op {
                    Op::KindIn(_) => 0,
                    Op::Exists(_)
                    | Op::BoolEq(_)
                    | Op::IntIn(_)
                    | Op::Cmp(..)
                    | Op::Ports(_)
                    | Op::Bits(..) => 1,
                    Op::Len(_) => 2,
                    Op::Changed(_) | Op::Created(_) => 3,
                    Op::Entropy(_) => 6,
                    Op::StrInSmall(_) => 2,
                    Op::Cidr(_) | Op::IpIn(_) => 2,
                    Op::StrIn(_) | Op::Basename(_) => 3,
                    Op::Prefix(_) | Op::Suffix(_) => 4,
                    Op::Contains(..) => 8,
                    Op::Glob(..) => 20,
                    Op::Regex(_) => 25,
                };
                let list = matches!(
                    m.field,
                    Field::ProcessArgs | Field::Ancestry | Field::FileFlags
                );
                if list { base * 4 } else { base }
            }
        }
    }

    pub(crate) fn eval(&self, ev: &Event, cx: Cx<'_>) -> bool {
        match self {
            Node::True => true,
            Node::All(v) => v.iter().all(|n| n.eval(ev, cx)),
            Node::Any(v) => v.iter().any(|n| n.eval(ev, cx)),
            Node::Not(n) => !n.eval(ev, cx),
            Node::Macro(n) => n.eval(ev, cx),
            Node::Match(m) => m.eval(ev, cx),
        }
    }

    /// Whether the condition reads engine state (`changed_by_session`, `created_by_session`).
    pub(crate) fn uses_state(&self) -> bool {
        match self {
            Node::True => false,
            Node::All(v) | Node::Any(v) => v.iter().any(Node::uses_state),
            Node::Not(n) => n.uses_state(),
            Node::Macro(n) => n.uses_state(),
            Node::Match(m) => matches!(m.op, Op::Changed(_) | Op::Created(_)),
        }
    }
}

/// One field test.
pub(crate) struct Matcher {
    pub field: Field,
    pub op: Op,
    /// Canonical text of the test (used for `Debug` and rule fingerprints).
    pub desc: String,
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.desc)
    }
}

/// An IP network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

impl Cidr {
    pub(crate) fn parse(s: &str) -> Result<Cidr, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("`{s}` is not a valid CIDR: `{a}` is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) => l.parse::<u8>().ok().filter(|&n| n <= max).ok_or_else(|| {
                format!("`{s}` is not a valid CIDR: prefix length must be `0..={max}`")
            })?,
        };
        Ok(Cidr { addr, len })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.len == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.len)
                };
                (u32::from(n) & mask) == (u32::from(a) & mask)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.len == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.len)
                };
                (u128::from(n) & mask) == (u128::from(a) & mask)
            }
            _ => false,
        }
    }
}

/// Numeric comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
}

/// How a bit test combines the bits of its mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bits {
    /// At least one bit of the mask is set.
    Any,
    /// Every bit of the mask is set.
    All,
    /// No bit of the mask is set.
    None,
}

/// The test a matcher applies.
pub(crate) enum Op {
    /// The field is present (and, for lists, non-empty) — or absent when false.
    Exists(bool),
    /// Exact text, one of a set.
    StrIn(HashSet<Box<[u8]>, FxBuild>),
    /// Exact text, one of a few (compared directly: cheaper than hashing).
    StrInSmall(Vec<Box<[u8]>>),
    /// The event kind is one of a set (bit `Kind as usize`).
    KindIn(u64),
    /// The part after the last `/`, one of a set.
    Basename(HashSet<Box<[u8]>, FxBuild>),
    Prefix(Vec<Box<[u8]>>),
    Suffix(Vec<Box<[u8]>>),
    /// Any of several literals (compiled to one searcher; the literals kept for the index).
    Contains(regex::bytes::Regex, Vec<Box<[u8]>>),
    /// Globs, with an optional searcher for literals every match must contain (a quick miss
    /// for the common case of an unrelated path).
    Glob(
        globset::GlobSet,
        Option<regex::bytes::Regex>,
        Vec<Box<[u8]>>,
    ),
    Regex(regex::bytes::Regex),
    IntIn(Vec<i64>),
    Cmp(Cmp, i64),
    Ports(Vec<(u16, u16)>),
    Cidr(Vec<Cidr>),
    IpIn(Vec<IpAddr>),
    BoolEq(bool),
    /// A bit test on an integer, or on a hex text field (`priv.caps`).
    Bits(Bits, u64),
    /// Comparisons (all must hold) on the byte length of a text value.
    Len(Vec<(Cmp, i64)>),
    /// Comparisons (all must hold) on the Shannon entropy of a text value, in bits per byte.
    Entropy(Vec<(Cmp, f64)>),
    /// The path in the field was (`true`) or was not created or changed by the session before.
    Changed(bool),
    /// The path in the field was (`true`) or was not created by the session before: an open
    /// that made the file (the kernel's `FMODE_CREATED`), or a rename of such a file onto it.
    Created(bool),
}

/// Call `f` on the raw bytes of each text value of a field until it returns true. Paths and
/// arguments are matched as the bytes the kernel gave, without UTF-8 validation or copies.
#[inline]
pub(crate) fn any_text(ev: &Event, field: Field, mut f: impl FnMut(&[u8]) -> bool) -> bool {
    let p = &ev.process;
    let nonempty = |b: &[u8]| !b.is_empty();
    match field {
        Field::ProcessExe => f(&p.exe.0),
        Field::ProcessComm => f(&p.comm.0),
        Field::ProcessCmdline => nonempty(&p.cmdline.0) && f(&p.cmdline.0),
        Field::ProcessCwd => nonempty(&p.cwd.0) && f(&p.cwd.0),
        Field::ProcessFilename => nonempty(&p.filename.0) && f(&p.filename.0),
        Field::ParentExe => ev
            .parent
            .as_ref()
            .is_some_and(|x| nonempty(&x.exe.0) && f(&x.exe.0)),
        Field::ProcessArgs => p.args.iter().any(|a| f(&a.0)),
        Field::Ancestry => ev.ancestry.iter().any(|a| f(&a.0)),
        Field::FilePath => ev.file.as_ref().is_some_and(|x| f(&x.path.0)),
        Field::FileTarget => ev
            .file
            .as_ref()
            .and_then(|x| x.target.as_ref())
            .is_some_and(|t| f(&t.0)),
        Field::NetUnixPath => ev
            .net
            .as_ref()
            .and_then(|x| x.unix_path.as_ref())
            .is_some_and(|t| f(&t.0)),
        Field::FileFlags => ev
            .file
            .as_ref()
            .is_some_and(|x| x.flags.iter().any(|a| f(a.as_bytes()))),
        _ => match ev.get(field) {
            Some(Value::Str(s)) => f(s.as_bytes()),
            Some(Value::List(l)) => l.iter().any(|s| f(s.as_bytes())),
            _ => false,
        },
    }
}

pub(crate) fn basename(b: &[u8]) -> &[u8] {
    match b.iter().rposition(|&c| c == b'/') {
        Some(i) => &b[i + 1..],
        None => b,
    }
}

fn int_of(ev: &Event, field: Field) -> Option<i64> {
    match ev.get(field)? {
        Value::Int(i) | Value::Time(i) => Some(i),
        Value::Bool(b) => Some(i64::from(b)),
        _ => None,
    }
}

/// The value of a hex text field (`priv.caps`: lowercase hex, no `0x`); `None` when it is not hex
/// or longer than 64 bits.
fn hex_of(b: &[u8]) -> Option<u64> {
    let b = b.strip_prefix(b"0x").unwrap_or(b);
    if b.is_empty() || b.len() > 16 {
        return None;
    }
    let mut v = 0u64;
    for &c in b {
        v = (v << 4) | u64::from(char::from(c).to_digit(16)?);
    }
    Some(v)
}

fn bits_match(b: Bits, mask: u64, v: u64) -> bool {
    match b {
        Bits::Any => v & mask != 0,
        Bits::All => v & mask == mask,
        Bits::None => v & mask == 0,
    }
}

fn cmp<T: PartialOrd>(c: Cmp, a: T, b: T) -> bool {
    match c {
        Cmp::Gt => a > b,
        Cmp::Ge => a >= b,
        Cmp::Lt => a < b,
        Cmp::Le => a <= b,
    }
}

/// Shannon entropy of `b` in bits per byte (0 for empty text; at most 8).
pub(crate) fn entropy(b: &[u8]) -> f64 {
    if b.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &c in b {
        counts[c as usize] += 1;
    }
    let n = b.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

impl Matcher {
    pub(crate) fn eval(&self, ev: &Event, cx: Cx<'_>) -> bool {
        let field = self.field;
        match &self.op {
            Op::Exists(want) => {
                let present = match field {
                    Field::ProcessArgs => !ev.process.args.is_empty(),
                    Field::Ancestry => !ev.ancestry.is_empty(),
                    Field::FileFlags => ev.file.as_ref().is_some_and(|f| !f.flags.is_empty()),
                    _ => ev.get(field).is_some(),
                };
                present == *want
            }
            Op::StrIn(set) => any_text(ev, field, |s| set.contains(s)),
            Op::StrInSmall(v) => any_text(ev, field, |s| {
                v.iter().any(|x| x.len() == s.len() && **x == *s)
            }),
            Op::KindIn(mask) => mask & (1u64 << (ev.kind() as usize)) != 0,
            Op::Basename(set) => any_text(ev, field, |s| set.contains(basename(s))),
            Op::Prefix(p) => any_text(ev, field, |s| p.iter().any(|p| s.starts_with(p))),
            Op::Suffix(p) => any_text(ev, field, |s| p.iter().any(|p| s.ends_with(p))),
            Op::Contains(r, _) | Op::Regex(r) => any_text(ev, field, |s| r.is_match(s)),
            Op::Glob(g, pre, _) => any_text(ev, field, |s| {
                pre.as_ref().is_none_or(|p| p.is_match(s))
                    && g.is_match(std::path::Path::new(std::ffi::OsStr::from_bytes(s)))
            }),
            Op::IntIn(v) => int_of(ev, field).is_some_and(|i| v.contains(&i)),
            Op::Cmp(c, n) => int_of(ev, field).is_some_and(|i| cmp(*c, i, *n)),
            Op::Ports(r) => int_of(ev, field).is_some_and(|p| {
                r.iter()
                    .any(|&(lo, hi)| p >= i64::from(lo) && p <= i64::from(hi))
            }),
            Op::Cidr(c) => match ev.get(field) {
                Some(Value::Ip(ip)) => c.iter().any(|c| c.contains(ip)),
                _ => false,
            },
            Op::IpIn(v) => match ev.get(field) {
                Some(Value::Ip(ip)) => v.contains(&ip),
                _ => false,
            },
            Op::BoolEq(b) => matches!(ev.get(field), Some(Value::Bool(x)) if x == *b),
            Op::Bits(b, mask) => match field.def().ty {
                agent_model::FieldType::Str => any_text(ev, field, |s| {
                    hex_of(s).is_some_and(|v| bits_match(*b, *mask, v))
                }),
                _ => int_of(ev, field).is_some_and(|v| bits_match(*b, *mask, v as u64)),
            },
            Op::Len(cs) => any_text(ev, field, |s| {
                cs.iter().all(|&(c, n)| cmp(c, s.len() as i64, n))
            }),
            Op::Entropy(cs) => any_text(ev, field, |s| {
                let e = entropy(s);
                cs.iter().all(|&(c, n)| cmp(c, e, n))
            }),
            Op::Changed(want) => {
                let Some(set) = cx.changed else {
                    return !*want && any_text(ev, field, |_| true);
                };
                any_text(ev, field, |s| set.contains(s) == *want)
            }
            Op::Created(want) => {
                let Some(set) = cx.changed else {
                    return !*want && any_text(ev, field, |_| true);
                };
                any_text(ev, field, |s| set.created(s) == *want)
            }
        }
    }
}

/// The longest literal run that every match of a glob must contain (`None` when the glob has
/// alternations or no run of 3 or more bytes).
pub(crate) fn glob_literal(glob: &str) -> Option<&str> {
    if glob.contains(['{', '}']) {
        return None;
    }
    let mut best: &str = "";
    let mut in_class = false;
    let mut start = 0;
    for (i, c) in glob.char_indices() {
        let meta = in_class || matches!(c, '*' | '?' | '[' | ']' | '\\');
        if c == '[' {
            in_class = true;
        } else if c == ']' {
            in_class = false;
        }
        if meta {
            if glob[start..i].len() > best.len() {
                best = &glob[start..i];
            }
            start = i + c.len_utf8();
        }
    }
    if glob[start..].len() > best.len() && !in_class {
        best = &glob[start..];
    }
    (best.len() >= 3).then_some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_literals_are_required_runs() {
        assert_eq!(glob_literal("/**/.ssh/id_*"), Some("/.ssh/id_"));
        assert_eq!(glob_literal("/**/*.kdbx"), Some(".kdbx"));
        assert_eq!(glob_literal("/home/[abc]xyz/*"), Some("/home/"));
        assert_eq!(glob_literal("/**/a{b,c}"), None);
        assert_eq!(glob_literal("/*/*"), None);
    }

    #[test]
    fn cidr_contains_v4_v6_and_mapped() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
        let c6 = Cidr::parse("fd00::/8").unwrap();
        assert!(c6.contains("fd12::1".parse().unwrap()));
        assert!(!c6.contains("fe80::1".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert_eq!(Cidr::parse("1.2.3.4").unwrap().len, 32);
    }

    #[test]
    fn hex_bits_and_entropy() {
        assert_eq!(hex_of(b"200000"), Some(1 << 21));
        assert_eq!(hex_of(b"1ffffffffff"), Some((1 << 41) - 1));
        assert_eq!(hex_of(b"xyz"), None);
        assert_eq!(hex_of(b""), None);
        assert!(bits_match(Bits::Any, 0o6000, 0o4755));
        assert!(!bits_match(Bits::Any, 0o6000, 0o1777));
        assert!(bits_match(Bits::All, 0o2010, 0o2775));
        assert!(!bits_match(Bits::All, 0o2010, 0o2664));
        assert!(bits_match(Bits::None, 0o002, 0o755));
        assert_eq!(entropy(b""), 0.0);
        assert_eq!(entropy(b"aaaa"), 0.0);
        assert!((entropy(b"abcd") - 2.0).abs() < 1e-9);
        assert!((entropy(&(0..=255).collect::<Vec<u8>>()) - 8.0).abs() < 1e-9);
    }

    #[test]
    fn bad_cidrs_are_rejected() {
        assert!(
            Cidr::parse("10.0.0.0/33")
                .unwrap_err()
                .contains("prefix length")
        );
        assert!(Cidr::parse("10.0.0/8").unwrap_err().contains("not an IP"));
        assert!(Cidr::parse("::/129").is_err());
    }
}
