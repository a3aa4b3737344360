//! The query language: a superset of Lucene/Quickwit syntax over the dotted event fields, parsed
//! by hand into an [`Ast`] (never handed to tantivy's own parser), plus an optional aggregation
//! after a pipe.
//!
//! ```text
//! query   := or [ '|' agg ]
//! or      := and ( ('OR' | '||') and )*
//! and     := unary ( [ 'AND' | '&&' ] unary )*          adjacent terms are ANDed
//! unary   := ('NOT' | '!' | '-') unary | '+' unary | primary
//! primary := '(' or ')' | FIELD ':' value | value
//! value   := WORD | "phrase" | '[' lo TO hi ']' | '{' lo TO hi '}' | ('>'|'>='|'<'|'<=') WORD
//!          | '(' or ')'                                   the group's bare words use FIELD
//! agg     := 'count' [ 'by' FIELD ] | 'top' N FIELD | 'histogram' [ INTERVAL ]
//! ```

use std::fmt;
use std::ops::Bound;

use agent_model::Timestamp;

use crate::schema::{self, FieldSpec};

/// Deepest nesting of groups and negations accepted.
const MAX_DEPTH: usize = 64;
/// Longest query accepted, in bytes.
pub const MAX_QUERY_LEN: usize = 512 * 1024;

/// A bad query: where (0-based character position) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryError {
    pub pos: usize,
    pub message: String,
}

impl QueryError {
    pub(crate) fn new(pos: usize, message: impl Into<String>) -> QueryError {
        QueryError {
            pos,
            message: message.into(),
        }
    }

    /// The query with a caret under the error position, for terminals.
    pub fn render(&self, query: &str) -> String {
        let line: String = query
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        format!("{line}\n{}^ {}", " ".repeat(self.pos), self.message)
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad query at column {}: {}", self.pos + 1, self.message)
    }
}

impl std::error::Error for QueryError {}

/// A word's text, with its wildcards when it has unescaped `*` or `?`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    /// The value with escapes resolved.
    pub text: String,
    /// A regex matching the whole value when the word has wildcards.
    pub regex: Option<String>,
}

/// A query value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QValue {
    Word(Word),
    Phrase(String),
    Range {
        lo: Bound<String>,
        hi: Bound<String>,
    },
}

/// The parsed query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ast {
    /// Matches everything (`*` or an empty query).
    All,
    /// A value on a field, or on the default fields when `field` is `None`.
    Match {
        field: Option<&'static FieldSpec>,
        value: QValue,
        pos: usize,
    },
    And(Vec<Ast>),
    Or(Vec<Ast>),
    Not(Box<Ast>),
}

/// An aggregation after the pipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AggSpec {
    /// `count` alone: the total.
    Count,
    /// `count by FIELD` (`limit` 1000) or `top N FIELD`.
    Terms {
        field: &'static FieldSpec,
        limit: usize,
    },
    /// `histogram INTERVAL` over `time`.
    Histogram { interval_ns: i64 },
}

/// A parsed query string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub ast: Ast,
    pub agg: Option<AggSpec>,
}

/// Parse a query string.
pub fn parse(query: &str) -> Result<Parsed, QueryError> {
    if query.len() > MAX_QUERY_LEN {
        return Err(QueryError::new(
            0,
            format!("query is longer than `{MAX_QUERY_LEN}` bytes"),
        ));
    }
    let mut p = Parser {
        s: query.chars().collect(),
        i: 0,
        depth: 0,
    };
    let ast = p.parse_or(None)?;
    p.skip_ws();
    let agg = if p.peek() == Some('|') {
        p.i += 1;
        Some(p.parse_agg()?)
    } else {
        None
    };
    p.skip_ws();
    if let Some(c) = p.peek() {
        let msg = if c == ')' {
            "unbalanced `)`".to_string()
        } else {
            format!("unexpected `{c}`")
        };
        return Err(QueryError::new(p.i, msg));
    }
    Ok(Parsed { ast, agg })
}

struct Parser {
    s: Vec<char>,
    i: usize,
    depth: usize,
}

fn is_delim(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '"' | '|')
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.i += 1;
        }
    }

    /// The bare keyword at the cursor (`AND`, `or`, `&&` ...), if any, without consuming it.
    fn keyword(&self) -> Option<(&'static str, usize)> {
        let rest = &self.s[self.i.min(self.s.len())..];
        for (kw, canon) in [
            ("and", "AND"),
            ("or", "OR"),
            ("not", "NOT"),
            ("&&", "AND"),
            ("||", "OR"),
        ] {
            let n = kw.chars().count();
            if rest.len() >= n
                && rest[..n]
                    .iter()
                    .zip(kw.chars())
                    .all(|(a, b)| a.to_ascii_lowercase() == b)
                && rest.get(n).is_none_or(|c| c.is_whitespace() || *c == '(')
            {
                return Some((canon, n));
            }
        }
        None
    }

    fn enter(&mut self) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(QueryError::new(
                self.i,
                format!("query nests deeper than `{MAX_DEPTH}` levels"),
            ));
        }
        Ok(())
    }

    fn parse_or(&mut self, ctx: Option<&'static FieldSpec>) -> Result<Ast, QueryError> {
        let mut parts = vec![self.parse_and(ctx)?];
        loop {
            self.skip_ws();
            match self.keyword() {
                Some(("OR", n)) => {
                    let at = self.i;
                    self.i += n;
                    self.skip_ws();
                    if self.at_end_of_expr() {
                        return Err(QueryError::new(at, "`OR` needs a term after it"));
                    }
                    parts.push(self.parse_and(ctx)?);
                }
                _ => break,
            }
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap_or(Ast::All)
        } else {
            Ast::Or(parts)
        })
    }

    fn at_end_of_expr(&self) -> bool {
        matches!(self.peek(), None | Some(')') | Some('|'))
    }

    fn parse_and(&mut self, ctx: Option<&'static FieldSpec>) -> Result<Ast, QueryError> {
        let mut parts = Vec::new();
        loop {
            self.skip_ws();
            if self.at_end_of_expr() {
                break;
            }
            match self.keyword() {
                Some(("OR", n)) => {
                    if parts.is_empty() {
                        return Err(QueryError::new(self.i, "`OR` needs a term before it"));
                    }
                    let _ = n;
                    break;
                }
                Some(("AND", n)) => {
                    if parts.is_empty() {
                        return Err(QueryError::new(self.i, "`AND` needs a term before it"));
                    }
                    let at = self.i;
                    self.i += n;
                    self.skip_ws();
                    if self.at_end_of_expr() || matches!(self.keyword(), Some(("OR" | "AND", _))) {
                        return Err(QueryError::new(at, "`AND` needs a term after it"));
                    }
                    continue;
                }
                _ => {}
            }
            parts.push(self.parse_unary(ctx)?);
        }
        Ok(match parts.len() {
            0 => Ast::All,
            1 => parts.pop().unwrap_or(Ast::All),
            _ => Ast::And(parts),
        })
    }

    fn parse_unary(&mut self, ctx: Option<&'static FieldSpec>) -> Result<Ast, QueryError> {
        self.skip_ws();
        let at = self.i;
        let negate = if let Some(("NOT", n)) = self.keyword() {
            self.i += n;
            true
        } else if matches!(self.peek(), Some('-' | '!')) {
            self.i += 1;
            true
        } else {
            false
        };
        if negate {
            self.enter()?;
            self.skip_ws();
            if self.at_end_of_expr() || matches!(self.keyword(), Some(("OR" | "AND", _))) {
                return Err(QueryError::new(at, "`NOT` needs a term after it"));
            }
            let inner = self.parse_unary(ctx)?;
            self.depth -= 1;
            return Ok(Ast::Not(Box::new(inner)));
        }
        if self.peek() == Some('+') {
            self.i += 1;
            if self.peek().is_none_or(is_delim)
                && self.peek() != Some('(')
                && self.peek() != Some('"')
            {
                return Err(QueryError::new(at, "`+` needs a term after it"));
            }
        }
        self.parse_primary(ctx)
    }

    fn parse_group(&mut self, ctx: Option<&'static FieldSpec>) -> Result<Ast, QueryError> {
        let open = self.i;
        self.i += 1;
        self.enter()?;
        let inner = self.parse_or(ctx)?;
        self.skip_ws();
        if self.peek() != Some(')') {
            return Err(QueryError::new(open, "unbalanced `(`"));
        }
        self.i += 1;
        self.depth -= 1;
        Ok(inner)
    }

    fn parse_primary(&mut self, ctx: Option<&'static FieldSpec>) -> Result<Ast, QueryError> {
        let at = self.i;
        match self.peek() {
            Some('(') => return self.parse_group(ctx),
            Some('[' | '{') if ctx.is_none() => {
                self.parse_range()?;
                return Err(QueryError::new(
                    at,
                    "a range needs a field, e.g. `port:[1 TO 1024]`",
                ));
            }
            Some('"') => {
                let phrase = self.parse_phrase()?;
                return Ok(Ast::Match {
                    field: ctx,
                    value: QValue::Phrase(phrase),
                    pos: at,
                });
            }
            _ => {}
        }
        // A field prefix?
        if ctx.is_none()
            && let Some(colon) = self.field_wildcard_end()
        {
            return Err(QueryError::new(
                at,
                format!(
                    "field wildcards (`{}:`) are not supported; name one field (`agentwatch fields` lists them)",
                    self.s[self.i..colon].iter().collect::<String>()
                ),
            ));
        }
        if ctx.is_none()
            && let Some(colon) = self.field_prefix_end()
        {
            let name: String = self.s[self.i..colon].iter().collect();
            if name == "_exists_" {
                // `_exists_:FIELD`: the field has a value, as `FIELD:*`.
                self.i = colon + 1;
                let fpos = self.i;
                let field = self.parse_word(false)?;
                if field.text.is_empty() {
                    return Err(QueryError::new(fpos, "`_exists_:` needs a field name"));
                }
                let spec = schema::lookup(&field.text)
                    .ok_or_else(|| QueryError::new(fpos, unknown_field(&field.text)))?;
                return Ok(Ast::Match {
                    field: Some(spec),
                    value: QValue::Word(Word {
                        text: "*".into(),
                        regex: Some("(?s).*".into()),
                    }),
                    pos: fpos,
                });
            }
            let Some(spec) = schema::lookup(&name) else {
                return Err(QueryError::new(at, unknown_field(&name)));
            };
            self.i = colon + 1;
            let vpos = self.i;
            return match self.peek() {
                None => Err(QueryError::new(vpos, format!("`{name}:` needs a value"))),
                Some(c) if c.is_whitespace() || c == ')' || c == '|' => {
                    Err(QueryError::new(vpos, format!("`{name}:` needs a value")))
                }
                Some('(') => self.parse_group(Some(spec)),
                Some('"') => Ok(Ast::Match {
                    field: Some(spec),
                    value: QValue::Phrase(self.parse_phrase()?),
                    pos: vpos,
                }),
                _ => self.parse_value(spec, vpos),
            };
        }
        match ctx {
            Some(spec) => self.parse_value(spec, at),
            None => {
                let word = self.parse_word(false)?;
                if word.text == "*" && word.regex.is_some() {
                    return Ok(Ast::All);
                }
                Ok(Ast::Match {
                    field: None,
                    value: QValue::Word(word),
                    pos: at,
                })
            }
        }
    }

    /// Position of the `:` ending a field name with a `*` in it (`process.*:`), which is not
    /// supported: said so rather than searched as a word that matches nothing.
    fn field_wildcard_end(&self) -> Option<usize> {
        let mut j = self.i;
        let mut star = false;
        while let Some(&c) = self.s.get(j) {
            if c == ':' {
                return (star && j > self.i && self.s[self.i] != '*').then_some(j);
            }
            if c == '*' {
                star = true;
            } else if !(c.is_ascii_alphanumeric() || c == '_' || c == '.') {
                return None;
            }
            j += 1;
        }
        None
    }

    /// Position of the `:` ending a field name at the cursor.
    fn field_prefix_end(&self) -> Option<usize> {
        let mut j = self.i;
        while let Some(&c) = self.s.get(j) {
            if c == ':' {
                return (j > self.i).then_some(j);
            }
            if !(c.is_ascii_alphanumeric() || c == '_' || c == '.') {
                return None;
            }
            j += 1;
        }
        None
    }

    fn parse_value(&mut self, spec: &'static FieldSpec, pos: usize) -> Result<Ast, QueryError> {
        let value = match self.peek() {
            Some('[' | '{') => self.parse_range()?,
            Some('>' | '<') => {
                let gt = self.peek() == Some('>');
                self.i += 1;
                let incl = if self.peek() == Some('=') {
                    self.i += 1;
                    true
                } else {
                    false
                };
                let vpos = self.i;
                let w = self.parse_word(false)?;
                if w.text.is_empty() {
                    return Err(QueryError::new(vpos, "comparison needs a value"));
                }
                let b = if incl {
                    Bound::Included(w.text)
                } else {
                    Bound::Excluded(w.text)
                };
                if gt {
                    QValue::Range {
                        lo: b,
                        hi: Bound::Unbounded,
                    }
                } else {
                    QValue::Range {
                        lo: Bound::Unbounded,
                        hi: b,
                    }
                }
            }
            _ => QValue::Word(self.parse_word(false)?),
        };
        Ok(Ast::Match {
            field: Some(spec),
            value,
            pos,
        })
    }

    fn parse_range(&mut self) -> Result<QValue, QueryError> {
        let open = self.i;
        let lo_incl = self.peek() == Some('[');
        self.i += 1;
        self.skip_ws();
        let lo = self.parse_word(true)?;
        self.skip_ws();
        let to_at = self.i;
        let to: String = self.s[self.i..(self.i + 2).min(self.s.len())]
            .iter()
            .collect();
        if to != "TO" && to != "to" {
            return Err(QueryError::new(
                to_at,
                "range needs `TO` between its bounds",
            ));
        }
        self.i += 2;
        self.skip_ws();
        let hi = self.parse_word(true)?;
        self.skip_ws();
        let hi_incl = match self.peek() {
            Some(']') => true,
            Some('}') => false,
            _ => {
                return Err(QueryError::new(
                    open,
                    "unterminated range, expected `]` or `}`",
                ));
            }
        };
        self.i += 1;
        if lo.text.is_empty() || hi.text.is_empty() {
            return Err(QueryError::new(open, "range bounds must not be empty"));
        }
        let bound = |w: Word, incl: bool| {
            if w.text == "*" {
                Bound::Unbounded
            } else if incl {
                Bound::Included(w.text)
            } else {
                Bound::Excluded(w.text)
            }
        };
        Ok(QValue::Range {
            lo: bound(lo, lo_incl),
            hi: bound(hi, hi_incl),
        })
    }

    fn parse_phrase(&mut self) -> Result<String, QueryError> {
        let open = self.i;
        self.i += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(QueryError::new(open, "unterminated phrase `\"`")),
                Some('"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c) => out.push(c),
                        None => return Err(QueryError::new(self.i, "dangling `\\`")),
                    }
                    self.i += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    /// A word up to a delimiter (in ranges also `]` and `}`), escapes resolved.
    fn parse_word(&mut self, in_range: bool) -> Result<Word, QueryError> {
        let mut text = String::new();
        let mut regex = String::new();
        let mut wild = false;
        // The last unescaped `~` or `^` (Lucene's fuzzy/proximity and boost suffixes).
        let mut suffix: Option<(usize, char, usize)> = None;
        while let Some(c) = self.peek() {
            if is_delim(c) || (in_range && matches!(c, ']' | '}')) {
                break;
            }
            if matches!(c, '~' | '^') {
                suffix = Some((self.i, c, text.len()));
            }
            self.i += 1;
            match c {
                '\\' => {
                    let Some(e) = self.peek() else {
                        return Err(QueryError::new(self.i - 1, "dangling `\\`"));
                    };
                    self.i += 1;
                    text.push(e);
                    push_regex_literal(&mut regex, e);
                }
                '*' => {
                    wild = true;
                    text.push(c);
                    regex.push_str(".*");
                }
                '?' => {
                    wild = true;
                    text.push(c);
                    regex.push('.');
                }
                _ => {
                    text.push(c);
                    push_regex_literal(&mut regex, c);
                }
            }
        }
        // `word~`, `word~2`, `word^3`: not literal text anyone searches for, so an error at
        // the suffix rather than a search that matches nothing. A `~` that starts the word or
        // follows a `/` (`~/.ssh`, `/home/~bob`) stays text.
        if let Some((at, c, off)) = suffix {
            let tail = &text[off + 1..];
            let digits = tail.chars().all(|d| d.is_ascii_digit() || d == '.');
            let after_text = off > 0 && !text[..off].ends_with('/');
            if digits && (c == '^' || after_text) {
                return Err(QueryError::new(
                    at,
                    if c == '^' {
                        "boosts (`^N`) are not supported: results are ordered newest first; escape it as `\\^` to search for it"
                    } else {
                        "fuzzy and proximity matching (`~`) are not supported; use wildcards (`*`, `?`), or escape it as `\\~`"
                    },
                ));
            }
        }
        Ok(Word {
            text,
            // `(?s)`: wildcards match newlines too (paths can hold them).
            regex: wild.then(|| format!("(?s){regex}")),
        })
    }

    fn agg_word(&mut self) -> (usize, String) {
        self.skip_ws();
        let at = self.i;
        let mut w = String::new();
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                break;
            }
            w.push(c);
            self.i += 1;
        }
        (at, w)
    }

    fn agg_field(&mut self) -> Result<&'static FieldSpec, QueryError> {
        let (at, name) = self.agg_word();
        if name.is_empty() {
            return Err(QueryError::new(at, "aggregation needs a field"));
        }
        if let Some(comma) = name.find(',') {
            return Err(QueryError::new(
                at + name[..comma].chars().count(),
                "an aggregation takes one field; several (`a, b`) are not supported: narrow the query instead (`a:x | count by b`)",
            ));
        }
        let spec =
            schema::lookup(&name).ok_or_else(|| QueryError::new(at, unknown_field(&name)))?;
        if !spec.fast {
            let fast: Vec<&str> = schema::SPECS
                .iter()
                .filter(|s| s.fast && s.name != "time")
                .map(|s| s.name)
                .collect();
            return Err(QueryError::new(
                at,
                format!(
                    "field `{}` cannot be aggregated; use one of `{}`",
                    spec.name,
                    fast.join("`, `")
                ),
            ));
        }
        Ok(spec)
    }

    fn parse_agg(&mut self) -> Result<AggSpec, QueryError> {
        let (at, op) = self.agg_word();
        let agg = match op.to_ascii_lowercase().as_str() {
            "count" => {
                let save = self.i;
                let (_, by) = self.agg_word();
                if by.eq_ignore_ascii_case("by") {
                    AggSpec::Terms {
                        field: self.agg_field()?,
                        limit: 1000,
                    }
                } else {
                    self.i = save;
                    AggSpec::Count
                }
            }
            "top" => {
                let (npos, n) = self.agg_word();
                let limit: usize = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or_else(|| {
                        QueryError::new(npos, format!("`top` needs a count 1..=10000, got `{n}`"))
                    })?;
                AggSpec::Terms {
                    field: self.agg_field()?,
                    limit,
                }
            }
            "histogram" => {
                let save = self.i;
                let (ipos, iv) = self.agg_word();
                let interval_ns = if iv.is_empty() {
                    self.i = save;
                    60_000_000_000
                } else {
                    parse_duration(&iv)
                        .filter(|d| *d > 0)
                        .ok_or_else(|| QueryError::new(ipos, format!("bad interval `{iv}`")))?
                };
                AggSpec::Histogram { interval_ns }
            }
            "" => return Err(QueryError::new(at, "`|` needs an aggregation")),
            _ => {
                return Err(QueryError::new(
                    at,
                    format!(
                        "unknown aggregation `{op}`; use `count by FIELD`, `top N FIELD` or `histogram 1m`"
                    ),
                ));
            }
        };
        let (rest_at, rest) = self.agg_word();
        if !rest.is_empty() {
            return Err(QueryError::new(rest_at, format!("unexpected `{rest}`")));
        }
        Ok(agg)
    }
}

fn unknown_field(name: &str) -> String {
    let suffix = format!(".{name}");
    match schema::SPECS.iter().find(|s| s.name.ends_with(&suffix)) {
        Some(s) => format!("unknown field `{name}`; did you mean `{}`?", s.name),
        None => format!("unknown field `{name}`"),
    }
}

fn push_regex_literal(out: &mut String, c: char) {
    if "\\.+*?()|[]{}^$#&-~\"<>@".contains(c) {
        out.push('\\');
    }
    out.push(c);
}

/// `15m`, `2h`, `7d`, `30s`, `1w`, `500ms` → nanoseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    // `15m`, `15min`, `15 minutes`: the short units and the words a responder types.
    let mult: i64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1_000_000,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000_000_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000_000_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000_000_000,
        "d" | "day" | "days" => 86_400_000_000_000,
        "w" | "wk" | "week" | "weeks" => 7 * 86_400_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// A time bound as a responder types it: `15m`/`2h`/`7d` ago, `now`, RFC 3339, or a day
/// (`2026-11-21`, midnight UTC).
pub fn parse_time_bound(s: &str, now: Timestamp) -> Result<Timestamp, QueryError> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(rel) = t.strip_prefix("now-").or(Some(t))
        && let Some(d) = parse_duration(rel)
    {
        return Ok(Timestamp(now.0.saturating_sub(d)));
    }
    if let Some(ts) = Timestamp::parse_rfc3339(t) {
        return Ok(ts);
    }
    if t.len() == 10
        && let Some(ts) = Timestamp::parse_rfc3339(&format!("{t}T00:00:00Z"))
    {
        return Ok(ts);
    }
    Err(QueryError::new(
        0,
        format!(
            "bad time `{s}`; use `15m`, `2h`, `7d` or RFC 3339 like `2026-11-21T10:00:00Z` \
             (between 1677-09-22 and 2262-04-11)"
        ),
    ))
}
