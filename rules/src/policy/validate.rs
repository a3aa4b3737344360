//! Checks that are not compilation: on a file before it is parsed (type, permissions, size,
//! encoding, characters), on text values (names, durations, control and bidi characters), on
//! the parser's messages (made one line, with a "did you mean"), and on a compiled `all` whose
//! children contradict each other.
//!
//! They are free functions over values, returning the message (and for files the byte offset)
//! rather than recording errors, so the compiler decides where each error points and the checks
//! can be unit-tested alone.

use std::collections::{HashMap, HashSet};

use agent_model::{Field, FieldType, Kind};

use super::limits::{MAX_DEPTH, MAX_FILE_BYTES, MAX_LINE_BYTES, MAX_WINDOW_NS};
use super::rule::kind_bit;
use super::source::Source;
use crate::cond::{Cmp, Node, Op};
use crate::error::suggest;

fn bad_char(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t' && c != '\r')
        || matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

pub(super) fn check_text(s: &str) -> Result<(), String> {
    match s.chars().find(|&c| bad_char(c)) {
        Some(c) => Err(format!(
            "control or bidi character `U+{:04X}` is not allowed in `{}`",
            c as u32,
            s.escape_debug()
        )),
        None => Ok(()),
    }
}

/// Parse `500ms`, `10s`, `5m`, `1h` into nanoseconds.
pub(super) fn parse_duration(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num.parse().map_err(|_| {
        format!(
            "`{s}` is not a duration: expected a number and a unit like `10s`, `500ms`, `5m`, `1h`"
        )
    })?;
    let mul: i64 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => {
            return Err(format!(
                "`{s}` has an unknown duration unit `{unit}`: use `ms`, `s`, `m` or `h`"
            ));
        }
    };
    let ns = n
        .checked_mul(mul)
        .filter(|&ns| ns <= MAX_WINDOW_NS)
        .ok_or_else(|| format!("duration `{s}` is longer than the limit of `24h`"))?;
    Ok(ns)
}

pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
}

/// Add a "did you mean" to serde's unknown-key and unknown-value messages.
pub(super) fn improve_message(msg: &str) -> String {
    // One error, one line: parser messages can span several.
    let joined: Vec<&str> = msg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let joined = joined.join(": ");
    let msg = joined.as_str();
    let lead = if msg.starts_with("unknown field") {
        Some("unknown key")
    } else if msg.starts_with("unknown variant") {
        Some("unknown value")
    } else {
        None
    };
    let Some(lead) = lead else {
        if msg.contains("recursion limit exceeded") {
            return format!(
                "{msg}: nesting is too deep (conditions may nest `{MAX_DEPTH}` levels)"
            );
        }
        if msg.contains("invalid basic string") || msg.contains("invalid literal string") {
            return format!("{msg}: unterminated string (a half-written file?)");
        }
        return msg.to_string();
    };
    let ticks: Vec<&str> = msg.split('`').skip(1).step_by(2).collect();
    let Some((word, candidates)) = ticks.split_first() else {
        return msg.to_string();
    };
    let mut out = format!("{lead} `{word}`");
    if let Some(s) = suggest(word, candidates.iter().copied()) {
        out.push_str(&format!(", did you mean `{s}`?"));
    }
    if !candidates.is_empty() {
        let list: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
        out.push_str(&format!(" (expected one of {})", list.join(", ")));
    }
    out
}

/// File-level checks, before parsing: file type, permissions, size, encoding, line length and
/// characters. Returns the problems found, as (byte offset, message) in the order found, and
/// the text when it can be parsed.
pub(super) fn check_source(src: &Source) -> (Vec<(usize, String)>, Option<&str>) {
    let mut problems = Vec::new();
    let name = &src.name;
    if !src.regular_file {
        problems.push((0, format!("`{name}` is not a regular file")));
        return (problems, None);
    }
    if src.mode & 0o002 != 0 {
        problems.push((
            0,
            format!(
                "`{name}` is world-writable (mode `{:o}`): any user could change the policy; run `chmod o-w` on it",
                src.mode & 0o7777
            ),
        ));
    }
    if src.bytes.len() > MAX_FILE_BYTES {
        problems.push((
            0,
            format!(
                "file is `{}` bytes, more than the limit of `{MAX_FILE_BYTES}`",
                src.bytes.len()
            ),
        ));
        return (problems, None);
    }
    let text = match std::str::from_utf8(&src.bytes) {
        Ok(t) => t,
        Err(e) => {
            problems.push((
                e.valid_up_to(),
                "invalid UTF-8: policy files must be UTF-8 text".into(),
            ));
            return (problems, None);
        }
    };
    if text.trim().is_empty() {
        problems.push((
            0,
            "policy file is empty (a half-written file?): it must define rules, lists or macros"
                .into(),
        ));
        return (problems, None);
    }
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.len() > MAX_LINE_BYTES {
            problems.push((
                offset,
                format!(
                    "line is `{}` bytes, more than the limit of `{MAX_LINE_BYTES}`",
                    line.len()
                ),
            ));
            return (problems, None);
        }
        offset += line.len();
    }
    if let Some((pos, c)) = text.char_indices().find(|&(_, c)| bad_char(c)) {
        problems.push((
            pos,
            format!(
                "control or bidi character `U+{:04X}` is not allowed in a policy file",
                c as u32
            ),
        ));
        return (problems, None);
    }
    (problems, Some(text))
}

/// Detect direct contradictions among the children of an `all`.
pub(super) fn contradiction(nodes: &[Node]) -> Option<String> {
    let mut eq: HashMap<Field, HashSet<Vec<u8>>> = HashMap::new();
    let mut lo: HashMap<Field, i64> = HashMap::new();
    let mut hi: HashMap<Field, i64> = HashMap::new();
    let mut absent: HashSet<Field> = HashSet::new();
    let mut tested: HashSet<Field> = HashSet::new();
    for n in nodes {
        let Node::Match(m) = n else { continue };
        let f = m.field;
        match &m.op {
            Op::Exists(false) => {
                absent.insert(f);
                continue;
            }
            Op::StrIn(_) | Op::StrInSmall(_) | Op::KindIn(_) if f.def().ty == FieldType::Str => {
                let set: HashSet<Vec<u8>> = match &m.op {
                    Op::StrIn(s) => s.iter().map(|x| x.to_vec()).collect(),
                    Op::StrInSmall(v) => v.iter().map(|x| x.to_vec()).collect(),
                    Op::KindIn(mask) => Kind::ALL
                        .iter()
                        .filter(|&&k| mask & kind_bit(k) != 0)
                        .map(|k| k.name().as_bytes().to_vec())
                        .collect(),
                    _ => HashSet::new(),
                };
                if let Some(prev) = eq.get(&f)
                    && prev.is_disjoint(&set)
                {
                    return Some(format!(
                        "`{}` cannot equal values of two disjoint sets",
                        f.name()
                    ));
                }
                eq.insert(f, set);
            }
            Op::Cmp(c, v) => {
                let (l, h) = match c {
                    Cmp::Gt => (v.saturating_add(1), i64::MAX),
                    Cmp::Ge => (*v, i64::MAX),
                    Cmp::Lt => (i64::MIN, v.saturating_sub(1)),
                    Cmp::Le => (i64::MIN, *v),
                };
                let l = lo.get(&f).copied().unwrap_or(i64::MIN).max(l);
                let h = hi.get(&f).copied().unwrap_or(i64::MAX).min(h);
                if l > h {
                    return Some(format!(
                        "no value of `{}` is in the range the comparisons allow",
                        f.name()
                    ));
                }
                lo.insert(f, l);
                hi.insert(f, h);
            }
            _ => {}
        }
        if !matches!(m.op, Op::Exists(_)) {
            tested.insert(f);
        }
    }
    absent
        .intersection(&tested)
        .next()
        .map(|f| format!("`{}` is required to be absent and is tested too", f.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_reject() {
        assert_eq!(parse_duration("10s").unwrap(), 10_000_000_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
        assert_eq!(parse_duration("2m").unwrap(), 120_000_000_000);
        assert!(parse_duration("10").unwrap_err().contains("unit"));
        assert!(parse_duration("25h").unwrap_err().contains("limit"));
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn unknown_key_messages_get_a_suggestion() {
        let m = improve_message("unknown field `severty`, expected one of `id`, `severity`");
        assert!(m.contains("did you mean `severity`?"), "{m}");
    }
}
