//! One file because the query builders and the collectors share the field lookups and the
//! negation rules below; split, each half would have to re-derive them.
//!
//! From the query [`Ast`] to tantivy queries, and the fast-field collectors behind aggregations
//! and session summaries.
//!
//! Negations are built explicitly: `NOT x` alone becomes `all AND NOT x`, and a conjunction with
//! only negative parts gets an `all` clause, so `a AND NOT b` and `NOT b` return what they say
//! (tantivy matches nothing for a boolean query made only of exclusions).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::ops::Bound;

use agent_model::Timestamp;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, Occur, PhraseQuery, Query, RangeQuery, RegexQuery,
    TermQuery, TermSetQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{DocId, Score, SegmentReader, Term};

use crate::TriageState;
use crate::query::{Ast, QValue, QueryError, Word, parse_time_bound};
use crate::schema::{self, FieldClass, FieldSpec, Fields, clip, to_v6};

/// What the builder needs besides the AST.
pub(crate) struct BuildCtx<'a> {
    pub fields: &'a Fields,
    pub analyzer: TextAnalyzer,
    pub now: Timestamp,
    /// Alert ids by triage state (only non-open states are listed).
    pub triage: &'a HashMap<String, TriageState>,
}

type Q = Box<dyn Query>;

fn boolean(clauses: Vec<(Occur, Q)>) -> Q {
    Box::new(BooleanQuery::new(clauses))
}

/// `all AND NOT q`.
fn negate(q: Q) -> Q {
    boolean(vec![
        (Occur::Must, Box::new(AllQuery) as Q),
        (Occur::MustNot, q),
    ])
}

impl BuildCtx<'_> {
    pub fn build(&mut self, ast: &Ast) -> Result<Q, QueryError> {
        Ok(match ast {
            Ast::All => Box::new(AllQuery),
            Ast::Not(inner) => negate(self.build(inner)?),
            Ast::And(parts) => {
                let mut clauses = Vec::with_capacity(parts.len() + 1);
                let mut positive = false;
                for p in parts {
                    match p {
                        Ast::Not(inner) => clauses.push((Occur::MustNot, self.build(inner)?)),
                        _ => {
                            positive = true;
                            clauses.push((Occur::Must, self.build(p)?));
                        }
                    }
                }
                if !positive {
                    clauses.push((Occur::Must, Box::new(AllQuery)));
                }
                boolean(clauses)
            }
            Ast::Or(parts) => {
                let mut clauses = Vec::with_capacity(parts.len());
                for p in parts {
                    clauses.push((Occur::Should, self.build(p)?));
                }
                boolean(clauses)
            }
            Ast::Match { field, value, pos } => match field {
                Some(spec) => self.field_match(spec, value, *pos)?,
                None => self.default_match(value, *pos)?,
            },
        })
    }

    fn tokens(&mut self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut ts = self.analyzer.token_stream(text);
        while ts.advance() {
            out.push(ts.token().text.clone());
        }
        out
    }

    fn text_query(&mut self, field: Field, text: &str) -> Q {
        let toks = self.tokens(text);
        match toks.len() {
            0 => Box::new(EmptyQuery),
            1 => Box::new(TermQuery::new(
                Term::from_field_text(field, &toks[0]),
                IndexRecordOption::Basic,
            )),
            _ => Box::new(PhraseQuery::new(
                toks.iter()
                    .map(|t| Term::from_field_text(field, t))
                    .collect(),
            )),
        }
    }

    fn regex(&self, field: Field, re: &str, pos: usize) -> Result<Q, QueryError> {
        RegexQuery::from_pattern(re, field)
            .map(|q| Box::new(q) as Q)
            .map_err(|e| QueryError::new(pos, format!("wildcard is too complex: {e}")))
    }

    fn default_match(&mut self, value: &QValue, pos: usize) -> Result<Q, QueryError> {
        let fields = self.fields;
        let mut clauses: Vec<(Occur, Q)> = Vec::new();
        match value {
            QValue::Range { .. } => {
                return Err(QueryError::new(
                    pos,
                    "a range needs a field, e.g. `port:[1 TO 1024]`",
                ));
            }
            QValue::Phrase(text) | QValue::Word(Word { text, regex: None }) => {
                for name in schema::DEFAULT_TEXT_FIELDS {
                    let f = if *name == "_text" {
                        fields.text
                    } else {
                        fields.get(name)
                    };
                    clauses.push((Occur::Should, self.text_query(f, text)));
                }
                // Exact ids and keyword values too (`a1b2-7`, a rule id).
                for name in ["id", "rule", "session.id"] {
                    clauses.push((
                        Occur::Should,
                        Box::new(TermQuery::new(
                            Term::from_field_text(fields.get(name), clip(text)),
                            IndexRecordOption::Basic,
                        )),
                    ));
                }
            }
            QValue::Word(Word {
                text,
                regex: Some(re),
            }) => {
                for name in schema::DEFAULT_KEYWORD_FIELDS {
                    clauses.push((Occur::Should, self.regex(fields.get(name), re, pos)?));
                }
                if text
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '*' || c == '?')
                {
                    let lre = re.to_lowercase();
                    for name in schema::DEFAULT_TEXT_FIELDS {
                        let f = if *name == "_text" {
                            fields.text
                        } else {
                            fields.get(name)
                        };
                        clauses.push((Occur::Should, self.regex(f, &lre, pos)?));
                    }
                }
            }
        }
        Ok(boolean(clauses))
    }

    fn field_match(
        &mut self,
        spec: &'static FieldSpec,
        value: &QValue,
        pos: usize,
    ) -> Result<Q, QueryError> {
        if spec.class == FieldClass::Triage {
            return self.triage_match(value, pos);
        }
        let field = self.fields.get(spec.name);
        let name = spec.name;
        if name == "severity"
            && let QValue::Range { lo, hi } = value
        {
            return severity_range(field, lo, hi, pos);
        }
        match spec.class {
            FieldClass::Keyword => Ok(match value {
                QValue::Word(Word {
                    regex: Some(re), ..
                }) => self.regex(field, re, pos)?,
                QValue::Word(Word { text, .. }) | QValue::Phrase(text) => Box::new(TermQuery::new(
                    Term::from_field_text(field, clip(text)),
                    IndexRecordOption::Basic,
                )),
                QValue::Range { lo, hi } => {
                    let t = |s: &String| Term::from_field_text(field, clip(s));
                    range(map_bound(lo, t), map_bound(hi, t), || {
                        self.regex(field, "(?s).*", pos)
                    })?
                }
            }),
            FieldClass::Text => Ok(match value {
                QValue::Word(Word {
                    regex: Some(re), ..
                }) => self.regex(field, &re.to_lowercase(), pos)?,
                QValue::Word(Word { text, .. }) | QValue::Phrase(text) => {
                    self.text_query(field, text)
                }
                QValue::Range { .. } => {
                    return Err(QueryError::new(
                        pos,
                        format!(
                            "`{name}` is text; ranges work on numbers, times, IPs and keywords"
                        ),
                    ));
                }
            }),
            FieldClass::U64 | FieldClass::I64 | FieldClass::Time | FieldClass::Bool => {
                self.numeric(spec, field, value, pos)
            }
            FieldClass::Ip => self.ip(spec, field, value, pos),
            FieldClass::Triage => unreachable!("handled above"),
        }
    }

    fn numeric(
        &mut self,
        spec: &'static FieldSpec,
        field: Field,
        value: &QValue,
        pos: usize,
    ) -> Result<Q, QueryError> {
        let class = spec.class;
        let name = spec.name;
        let now = self.now;
        let term = |s: &str| -> Result<Term, QueryError> {
            match class {
                FieldClass::U64 => s
                    .parse::<u64>()
                    .map(|v| Term::from_field_u64(field, v))
                    .map_err(|_| {
                        QueryError::new(pos, format!("`{name}` takes a number, got `{s}`"))
                    }),
                FieldClass::I64 => s
                    .parse::<i64>()
                    .map(|v| Term::from_field_i64(field, v))
                    .map_err(|_| {
                        QueryError::new(pos, format!("`{name}` takes a number, got `{s}`"))
                    }),
                FieldClass::Bool => match s.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => Ok(Term::from_field_bool(field, true)),
                    "false" | "0" | "no" => Ok(Term::from_field_bool(field, false)),
                    _ => Err(QueryError::new(
                        pos,
                        format!("`{name}` takes `true` or `false`, got `{s}`"),
                    )),
                },
                _ => parse_time_bound(s, now)
                    .map(|t| Term::from_field_i64(field, t.0))
                    .map_err(|e| QueryError::new(pos, e.message)),
            }
        };
        let exists = || -> Q {
            let lo = match class {
                FieldClass::U64 => Term::from_field_u64(field, 0),
                FieldClass::Bool => Term::from_field_bool(field, false),
                _ => Term::from_field_i64(field, i64::MIN),
            };
            Box::new(RangeQuery::new(Bound::Included(lo), Bound::Unbounded))
        };
        match value {
            QValue::Word(Word {
                text,
                regex: Some(_),
            }) => {
                if text == "*" {
                    Ok(exists())
                } else {
                    Err(QueryError::new(
                        pos,
                        format!("wildcards do not apply to `{name}`; use a range"),
                    ))
                }
            }
            QValue::Word(Word { text, .. }) | QValue::Phrase(text) => {
                if class == FieldClass::Time {
                    // A bare day covers the whole day; a relative time means "since".
                    let t = text.trim();
                    if t.len() == 10 && !t.contains(':') {
                        let lo = parse_time_bound(t, now)
                            .map_err(|e| QueryError::new(pos, e.message))?;
                        return Ok(Box::new(RangeQuery::new(
                            Bound::Included(Term::from_field_i64(field, lo.0)),
                            Bound::Excluded(Term::from_field_i64(
                                field,
                                lo.0.saturating_add(86_400_000_000_000),
                            )),
                        )));
                    }
                    if crate::query::parse_duration(t).is_some() {
                        return Ok(Box::new(RangeQuery::new(
                            Bound::Included(term(t)?),
                            Bound::Unbounded,
                        )));
                    }
                }
                let t = term(text)?;
                let indexed = self.fields.schema.get_field_entry(field).is_indexed();
                if class == FieldClass::Time || !indexed {
                    return Ok(Box::new(RangeQuery::new(
                        Bound::Included(t.clone()),
                        Bound::Included(t),
                    )));
                }
                Ok(Box::new(TermQuery::new(t, IndexRecordOption::Basic)))
            }
            QValue::Range { lo, hi } => {
                let lo = try_bound(lo, |s| term(s))?;
                let hi = try_bound(hi, |s| term(s))?;
                range(lo, hi, || Ok(exists()))
            }
        }
    }

    fn ip(
        &mut self,
        spec: &'static FieldSpec,
        field: Field,
        value: &QValue,
        pos: usize,
    ) -> Result<Q, QueryError> {
        let name = spec.name;
        let parse = |s: &str| -> Result<Ipv6Addr, QueryError> {
            s.parse::<IpAddr>().map(to_v6).map_err(|_| {
                QueryError::new(pos, format!("`{name}` takes an IP or CIDR, got `{s}`"))
            })
        };
        let t = |ip: Ipv6Addr| Term::from_field_ip_addr(field, ip);
        match value {
            QValue::Word(Word {
                text,
                regex: Some(_),
            }) => {
                if text == "*" {
                    Ok(Box::new(RangeQuery::new(
                        Bound::Included(t(Ipv6Addr::UNSPECIFIED)),
                        Bound::Unbounded,
                    )))
                } else {
                    Err(QueryError::new(
                        pos,
                        format!("wildcards do not apply to `{name}`; use a CIDR like `10.0.0.0/8`"),
                    ))
                }
            }
            QValue::Word(Word { text, .. }) | QValue::Phrase(text) => {
                if let Some((lo, hi)) = cidr(text).map_err(|m| QueryError::new(pos, m))? {
                    return Ok(Box::new(RangeQuery::new(
                        Bound::Included(t(lo)),
                        Bound::Included(t(hi)),
                    )));
                }
                Ok(Box::new(TermQuery::new(
                    t(parse(text)?),
                    IndexRecordOption::Basic,
                )))
            }
            QValue::Range { lo, hi } => {
                let lo = try_bound(lo, |s| parse(s).map(t))?;
                let hi = try_bound(hi, |s| parse(s).map(t))?;
                range(lo, hi, || {
                    Ok(Box::new(RangeQuery::new(
                        Bound::Included(t(Ipv6Addr::UNSPECIFIED)),
                        Bound::Unbounded,
                    )))
                })
            }
        }
    }

    fn triage_match(&mut self, value: &QValue, pos: usize) -> Result<Q, QueryError> {
        let text = match value {
            QValue::Word(w) => w.text.as_str(),
            QValue::Phrase(p) => p.as_str(),
            QValue::Range { .. } => {
                return Err(QueryError::new(
                    pos,
                    "`triage.state` takes `open`, `acknowledged` or `resolved`",
                ));
            }
        };
        let state = TriageState::from_name(text).ok_or_else(|| {
            QueryError::new(
                pos,
                format!("`triage.state` takes `open`, `acknowledged` or `resolved`, got `{text}`"),
            )
        })?;
        let id = self.fields.get("id");
        let ids = |want: &dyn Fn(TriageState) -> bool| -> Q {
            let terms: Vec<Term> = self
                .triage
                .iter()
                .filter(|(_, s)| want(**s))
                .map(|(k, _)| Term::from_field_text(id, clip(k)))
                .collect();
            Box::new(TermSetQuery::new(terms))
        };
        let alerts: Q = Box::new(TermQuery::new(
            Term::from_field_text(self.fields.get("kind"), "alert"),
            IndexRecordOption::Basic,
        ));
        Ok(match state {
            TriageState::Open => boolean(vec![
                (Occur::Must, alerts),
                (Occur::MustNot, ids(&|s| s != TriageState::Open)),
            ]),
            other => boolean(vec![
                (Occur::Must, alerts),
                (Occur::Must, ids(&|s| s == other)),
            ]),
        })
    }
}

fn map_bound<T>(b: &Bound<String>, f: impl Fn(&String) -> T) -> Bound<T> {
    match b {
        Bound::Included(s) => Bound::Included(f(s)),
        Bound::Excluded(s) => Bound::Excluded(f(s)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn try_bound<T>(
    b: &Bound<String>,
    f: impl Fn(&str) -> Result<T, QueryError>,
) -> Result<Bound<T>, QueryError> {
    Ok(match b {
        Bound::Included(s) => Bound::Included(f(s)?),
        Bound::Excluded(s) => Bound::Excluded(f(s)?),
        Bound::Unbounded => Bound::Unbounded,
    })
}

/// A range query; `[* TO *]` means "has the field" (tantivy needs one bound).
/// `severity:>=medium`, `severity:[low TO high]`: the levels in order (info < low < medium <
/// high < critical), not the names' alphabetical order.
fn severity_range(
    field: Field,
    lo: &Bound<String>,
    hi: &Bound<String>,
    pos: usize,
) -> Result<Q, QueryError> {
    const LEVELS: [&str; 5] = ["info", "low", "medium", "high", "critical"];
    let rank = |s: &String| -> Result<usize, QueryError> {
        LEVELS
            .iter()
            .position(|l| l.eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                QueryError::new(
                    pos,
                    format!("`severity` takes info, low, medium, high or critical, got `{s}`"),
                )
            })
    };
    let from = match lo {
        Bound::Included(s) => rank(s)?,
        Bound::Excluded(s) => rank(s)? + 1,
        Bound::Unbounded => 0,
    };
    let to = match hi {
        Bound::Included(s) => rank(s)? + 1,
        Bound::Excluded(s) => rank(s)?,
        Bound::Unbounded => LEVELS.len(),
    };
    let clauses: Vec<(Occur, Q)> = LEVELS
        .get(from..to.max(from))
        .unwrap_or_default()
        .iter()
        .map(|l| {
            let q: Q = Box::new(TermQuery::new(
                Term::from_field_text(field, l),
                IndexRecordOption::Basic,
            ));
            (Occur::Should, q)
        })
        .collect();
    if clauses.is_empty() {
        return Ok(Box::new(tantivy::query::EmptyQuery));
    }
    Ok(boolean(clauses))
}

fn range(
    lo: Bound<Term>,
    hi: Bound<Term>,
    exists: impl FnOnce() -> Result<Q, QueryError>,
) -> Result<Q, QueryError> {
    if matches!((&lo, &hi), (Bound::Unbounded, Bound::Unbounded)) {
        return exists();
    }
    Ok(Box::new(RangeQuery::new(lo, hi)))
}

/// `10.0.0.0/8` → first and last address (v4 as v4-mapped v6). `Ok(None)` when not a CIDR.
pub(crate) fn cidr(s: &str) -> Result<Option<(Ipv6Addr, Ipv6Addr)>, String> {
    let Some((addr, len)) = s.split_once('/') else {
        return Ok(None);
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("bad CIDR `{s}`: `{addr}` is not an IP"))?;
    let len: u32 = len
        .parse()
        .map_err(|_| format!("bad CIDR `{s}`: `{len}` is not a prefix length"))?;
    let (bits, len) = match ip {
        IpAddr::V4(_) if len <= 32 => (to_v6(ip), len + 96),
        IpAddr::V6(v6) if len <= 128 => (v6, len),
        _ => return Err(format!("bad CIDR `{s}`: prefix length out of range")),
    };
    let v = u128::from(bits);
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    Ok(Some((Ipv6Addr::from(v & mask), Ipv6Addr::from(v | !mask))))
}

/// Render an index IP back to text (v4-mapped → v4).
pub(crate) fn ip_text(ip: Ipv6Addr) -> String {
    match ip.to_ipv4_mapped() {
        Some(v4) => v4.to_string(),
        None => ip.to_string(),
    }
}

// ---- collectors ----

/// Counts per value of one fast field.
pub(crate) struct TermsCollector {
    pub field: &'static FieldSpec,
}

/// A value of an aggregated column, kept raw until the final top-N is rendered.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TermKey {
    Str(String),
    U64(u64),
    Ip(Ipv6Addr),
    I64(i64),
}

impl TermKey {
    pub fn render(&self) -> String {
        match self {
            TermKey::Str(s) => s.clone(),
            TermKey::U64(v) => v.to_string(),
            TermKey::Ip(ip) => ip_text(*ip),
            TermKey::I64(v) => v.to_string(),
        }
    }
}

/// A multiply-rotate hasher for the small integer keys of aggregations (SipHash is several
/// times slower and its DoS resistance buys nothing for counts of our own columns).
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        // murmur3's finalizer: every input bit reaches the low bits the table indexes by.
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type FastMap<K> = HashMap<K, u64, std::hash::BuildHasherDefault<FastHasher>>;

pub(crate) enum TermsSeg {
    Str(tantivy::columnar::StrColumn, Vec<u64>),
    U64(tantivy::columnar::Column<u64>, FastMap<u64>),
    Ip(tantivy::columnar::Column<Ipv6Addr>, FastMap<Ipv6Addr>),
    I64(tantivy::columnar::Column<i64>, FastMap<i64>),
    None,
}

/// Sum per-segment counts into one map (the first segment's map is reused).
fn merge_counts<K: std::hash::Hash + Eq>(fruits: Vec<HashMap<K, u64>>) -> HashMap<K, u64> {
    let mut it = fruits.into_iter();
    let mut out = it.next().unwrap_or_default();
    for f in it {
        for (k, v) in f {
            *out.entry(k).or_default() += v;
        }
    }
    out
}

impl Collector for TermsCollector {
    type Fruit = HashMap<TermKey, u64>;
    type Child = TermsSeg;

    fn for_segment(&self, _ord: u32, reader: &SegmentReader) -> tantivy::Result<TermsSeg> {
        let ff = reader.fast_fields();
        let name = self.field.name;
        Ok(match self.field.class {
            FieldClass::Keyword => match ff.str(name)? {
                Some(col) => {
                    let n = col.num_terms();
                    TermsSeg::Str(col, vec![0; n])
                }
                None => TermsSeg::None,
            },
            FieldClass::U64 => TermsSeg::U64(ff.u64(name)?, FastMap::default()),
            FieldClass::Ip => TermsSeg::Ip(ff.ip_addr(name)?, FastMap::default()),
            FieldClass::I64 | FieldClass::Time => TermsSeg::I64(ff.i64(name)?, FastMap::default()),
            _ => TermsSeg::None,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<HashMap<TermKey, u64>>) -> tantivy::Result<Self::Fruit> {
        Ok(merge_counts(fruits))
    }
}

impl SegmentCollector for TermsSeg {
    type Fruit = HashMap<TermKey, u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        match self {
            TermsSeg::Str(col, counts) => {
                for o in col.term_ords(doc) {
                    if let Some(c) = counts.get_mut(o as usize) {
                        *c += 1;
                    }
                }
            }
            TermsSeg::U64(col, m) => {
                for v in col.values_for_doc(doc) {
                    *m.entry(v).or_default() += 1;
                }
            }
            TermsSeg::Ip(col, m) => {
                for v in col.values_for_doc(doc) {
                    *m.entry(v).or_default() += 1;
                }
            }
            TermsSeg::I64(col, m) => {
                for v in col.values_for_doc(doc) {
                    *m.entry(v).or_default() += 1;
                }
            }
            TermsSeg::None => {}
        }
    }

    fn harvest(self) -> HashMap<TermKey, u64> {
        match self {
            TermsSeg::Str(col, counts) => {
                let mut out = HashMap::new();
                let mut s = String::new();
                for (o, c) in counts.into_iter().enumerate() {
                    if c > 0 && col.ord_to_str(o as u64, &mut s).unwrap_or(false) {
                        out.insert(TermKey::Str(s.clone()), c);
                    }
                }
                out
            }
            TermsSeg::U64(_, m) => m.into_iter().map(|(k, v)| (TermKey::U64(k), v)).collect(),
            TermsSeg::Ip(_, m) => m.into_iter().map(|(k, v)| (TermKey::Ip(k), v)).collect(),
            TermsSeg::I64(_, m) => m.into_iter().map(|(k, v)| (TermKey::I64(k), v)).collect(),
            TermsSeg::None => HashMap::new(),
        }
    }
}

/// Counts per time bucket.
pub(crate) struct HistogramCollector {
    pub interval_ns: i64,
}

pub(crate) struct HistogramSeg {
    col: tantivy::columnar::Column<i64>,
    interval_ns: i64,
    counts: HashMap<i64, u64>,
}

impl Collector for HistogramCollector {
    type Fruit = HashMap<i64, u64>;
    type Child = HistogramSeg;

    fn for_segment(&self, _ord: u32, reader: &SegmentReader) -> tantivy::Result<HistogramSeg> {
        Ok(HistogramSeg {
            col: reader.fast_fields().i64("time")?,
            interval_ns: self.interval_ns,
            counts: HashMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<HashMap<i64, u64>>) -> tantivy::Result<Self::Fruit> {
        Ok(merge_counts(fruits))
    }
}

impl SegmentCollector for HistogramSeg {
    type Fruit = HashMap<i64, u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(t) = self.col.first(doc) {
            *self
                .counts
                .entry(t.div_euclid(self.interval_ns) * self.interval_ns)
                .or_default() += 1;
        }
    }

    fn harvest(self) -> HashMap<i64, u64> {
        self.counts
    }
}

/// Per-session figures gathered from fast columns.
#[derive(Clone, Debug, Default)]
pub(crate) struct SessAcc {
    pub start: i64,
    pub end: i64,
    pub events: u64,
    pub alerts: u64,
    /// (time, seq, off) of the earliest non-alert record.
    pub first: Option<(i64, u64, u64)>,
}

pub(crate) struct SessionsCollector;

pub(crate) struct SessionsSeg {
    sess: Option<tantivy::columnar::StrColumn>,
    kind: Option<tantivy::columnar::StrColumn>,
    alert_ord: Option<u64>,
    time: tantivy::columnar::Column<i64>,
    seq: tantivy::columnar::Column<u64>,
    off: tantivy::columnar::Column<u64>,
    acc: HashMap<u64, SessAcc>,
}

impl Collector for SessionsCollector {
    type Fruit = HashMap<String, SessAcc>;
    type Child = SessionsSeg;

    fn for_segment(&self, _ord: u32, reader: &SegmentReader) -> tantivy::Result<SessionsSeg> {
        let ff = reader.fast_fields();
        let kind = ff.str("kind")?;
        let alert_ord = match &kind {
            Some(k) => k.dictionary().term_ord("alert")?,
            None => None,
        };
        Ok(SessionsSeg {
            sess: ff.str("session.id")?,
            kind,
            alert_ord,
            time: ff.i64("time")?,
            seq: ff.u64("_seq")?,
            off: ff.u64("_off")?,
            acc: HashMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<HashMap<String, SessAcc>>) -> tantivy::Result<Self::Fruit> {
        let mut out: HashMap<String, SessAcc> = HashMap::new();
        for f in fruits {
            for (k, v) in f {
                match out.get_mut(&k) {
                    None => {
                        out.insert(k, v);
                    }
                    Some(a) => merge_acc(a, v),
                }
            }
        }
        Ok(out)
    }
}

fn merge_acc(a: &mut SessAcc, v: SessAcc) {
    a.start = a.start.min(v.start);
    a.end = a.end.max(v.end);
    a.events += v.events;
    a.alerts += v.alerts;
    a.first = match (a.first, v.first) {
        (Some(x), Some(y)) => Some(if y < x { y } else { x }),
        (x, y) => x.or(y),
    };
}

impl SegmentCollector for SessionsSeg {
    type Fruit = HashMap<String, SessAcc>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let Some(sess) = &self.sess else { return };
        let Some(ord) = sess.term_ords(doc).next() else {
            return;
        };
        let t = self.time.first(doc).unwrap_or(0);
        let is_alert = match (&self.kind, self.alert_ord) {
            (Some(k), Some(a)) => k.term_ords(doc).next() == Some(a),
            _ => false,
        };
        let a = self.acc.entry(ord).or_insert_with(|| SessAcc {
            start: i64::MAX,
            end: i64::MIN,
            ..SessAcc::default()
        });
        a.start = a.start.min(t);
        a.end = a.end.max(t);
        if is_alert {
            a.alerts += 1;
        } else {
            a.events += 1;
            let seq = self.seq.first(doc).unwrap_or(0);
            let cand = (t, seq, self.off.first(doc).unwrap_or(0));
            if a.first.is_none_or(|f| cand < f) {
                a.first = Some(cand);
            }
        }
    }

    fn harvest(self) -> HashMap<String, SessAcc> {
        let mut out = HashMap::new();
        let Some(sess) = &self.sess else { return out };
        let mut s = String::new();
        for (ord, acc) in self.acc {
            if sess.ord_to_str(ord, &mut s).unwrap_or(false) {
                out.insert(s.clone(), acc);
            }
        }
        out
    }
}
