//! `inline = true`: whether a `kill` rule can be carried out by the kernel at the open itself,
//! and what it protects ([`InlineTargets`]).
//!
//! The kernel only knows the file's `(dev, inode)`, so an inline rule must say no more than the
//! kernel can check: a single-event `file.open` rule, no exceptions, and a condition that tests
//! only `file.path` against exact paths or directory prefixes (ending in `/`), joined by `any`.
//! Anything else would make the kernel kill where the rule would not fire, so it is an error.

use agent_model::{Field, Kind};

use crate::cond::{Node, Op};
use crate::policy::response::InlineTargets;
use crate::policy::rule::{Mode, kind_bit};

/// The files an inline rule protects, or why the rule cannot be inline.
pub(super) fn inline_targets(
    kinds: u64,
    mode: &Mode,
    cond: &Node,
    exceptions: usize,
) -> Result<InlineTargets, String> {
    if kinds != kind_bit(Kind::FileOpen) {
        return Err("`inline = true` needs `kinds = [\"file.open\"]` only".into());
    }
    if !matches!(mode, Mode::Event) {
        return Err("`inline = true` needs a single-event rule (no `window` or `sequence`)".into());
    }
    if exceptions != 0 {
        return Err(
            "`inline = true` cannot have `exceptions`: the kernel cannot check them".into(),
        );
    }
    let mut t = InlineTargets::default();
    collect(cond, &mut t)?;
    if t.paths.is_empty() && t.prefixes.is_empty() {
        return Err("`inline = true` needs a condition on `file.path`".into());
    }
    t.paths.sort();
    t.paths.dedup();
    t.prefixes.sort();
    t.prefixes.dedup();
    Ok(t)
}

fn collect(n: &Node, t: &mut InlineTargets) -> Result<(), String> {
    let text = |v: &[u8]| -> Result<String, String> {
        let s = std::str::from_utf8(v)
            .map_err(|_| "inline paths must be UTF-8".to_owned())?
            .to_owned();
        if !s.starts_with('/') {
            return Err(format!(
                "inline path `{}` is not absolute",
                s.escape_debug()
            ));
        }
        Ok(s)
    };
    match n {
        Node::Macro(m) => collect(m, t),
        Node::Any(v) => v.iter().try_for_each(|c| collect(c, t)),
        Node::All(v) if v.len() == 1 => collect(&v[0], t),
        Node::Match(m) if m.field == Field::FilePath => match &m.op {
            Op::StrIn(set) => set.iter().try_for_each(|p| {
                t.paths.push(text(p)?);
                Ok(())
            }),
            Op::StrInSmall(v) => v.iter().try_for_each(|p| {
                t.paths.push(text(p)?);
                Ok(())
            }),
            Op::Prefix(v) => v.iter().try_for_each(|p| {
                let s = text(p)?;
                if !s.ends_with('/') {
                    return Err(format!(
                        "inline prefix `{}` must name a directory and end with `/`",
                        s.escape_debug()
                    ));
                }
                t.prefixes.push(s);
                Ok(())
            }),
            _ => Err(format!(
                "the kernel cannot check `{}`; an inline rule may test `file.path` only with \
                 `equals`, `in` or `prefix`",
                m.desc
            )),
        },
        Node::Match(m) => Err(format!(
            "the kernel cannot check `{}`; an inline rule may test only `file.path`",
            m.desc
        )),
        _ => Err("an inline rule's condition may only join `file.path` tests with `any`".into()),
    }
}
