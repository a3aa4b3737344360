//! The policy language: TOML definitions (with spans for `file:line:col` errors), their checks,
//! and compilation into [`Policy`], the immutable set of compiled rules the engine runs.
//!
//! Compilation is pure: the caller reads files into [`Source`]s; everything else — size,
//! encoding, permissions, syntax, names, types, kinds — is checked here, and every problem found
//! is reported, not only the first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use agent_model::{FIELDS, Field, FieldType, Kind, Severity};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::cond::{Cidr, Cmp, FxBuild, Matcher, Node, Op};
use crate::error::{Error, PolicyErrors, line_col, suggest};

/// Largest policy file accepted.
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// Largest policy (all files together).
pub const MAX_TOTAL_BYTES: usize = 16 << 20;
/// Longest line accepted in a policy file.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Most rules in a policy.
pub const MAX_RULES: usize = 10_000;
/// Deepest nesting of `all` / `any` / `not` (macros count as one level each).
pub const MAX_DEPTH: usize = 32;
/// Largest `threshold` of a windowed rule (it bounds the state kept per session).
pub const MAX_THRESHOLD: i64 = 10_000;
/// Longest window (`within`, dedup `window`).
pub const MAX_WINDOW_NS: i64 = 24 * 3600 * 1_000_000_000;
/// Compiled size limit of one regex.
pub const MAX_REGEX_BYTES: usize = 1 << 20;
/// Most steps of a sequence.
pub const MAX_STEPS: usize = 8;
/// Default de-duplication window.
pub const DEFAULT_DEDUP_NS: i64 = 60 * 1_000_000_000;

/// One policy file, read by the caller (see `fs::load_sources`), checked here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// Path shown in errors.
    pub name: String,
    pub bytes: Vec<u8>,
    /// False for directories, fifos, devices, sockets.
    pub regular_file: bool,
    /// Unix mode bits (`st_mode`).
    pub mode: u32,
}

impl Source {
    /// A regular, owner-writable in-memory source (tests, embedded policy).
    pub fn from_text(name: impl Into<String>, text: impl Into<String>) -> Source {
        Source {
            name: name.into(),
            bytes: text.into().into_bytes(),
            regular_file: true,
            mode: 0o100644,
        }
    }
}

/// What a rules listing shows about one rule.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RuleInfo {
    pub id: String,
    pub severity: Severity,
    pub enabled: bool,
    pub description: String,
    pub kinds: Vec<Kind>,
    pub tags: Vec<String>,
    /// `count`, `distinct`, `sequence`, or `event` for a stateless rule.
    pub mode: &'static str,
    /// `file:line:col` of the definition.
    pub defined_at: String,
}

/// Whose events a windowed rule groups together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Per {
    #[default]
    Session,
    Agent,
}

/// How a rule fires.
#[derive(Debug)]
pub(crate) enum Mode {
    /// On each matching event.
    Event,
    /// When `threshold` matching events fall within `within_ns`.
    Count { threshold: usize },
    /// When `threshold` distinct values of `field` fall within `within_ns`.
    Distinct { field: Field, threshold: usize },
    /// When the steps match in order within `within_ns` of the first.
    Sequence { steps: Vec<Step> },
}

#[derive(Debug)]
pub(crate) struct Step {
    pub kinds: u64,
    pub cond: Node,
}

/// A piece of an output template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Lit(String),
    Field(Field),
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub id: String,
    pub severity: Severity,
    pub tags: Vec<String>,
    pub enabled: bool,
    /// Bit `k as usize` set for each kind the rule applies to.
    pub kinds: u64,
    pub cond: Node,
    pub exceptions: Vec<Node>,
    pub output: Vec<Part>,
    pub mode: Mode,
    pub per: Per,
    pub within_ns: i64,
    pub dedup_ns: i64,
    /// Fields whose values key de-duplication; `None`: the rendered output (event rules) or
    /// nothing (windowed rules).
    pub dedup_key: Option<Vec<Field>>,
    /// Hash of the rule's full meaning (macros and lists resolved); state survives a policy swap
    /// only when it is unchanged.
    pub fingerprint: String,
}

/// A compiled, immutable policy. Share it with `Arc`; swap it into the engine whole.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) rules: Arc<Vec<Rule>>,
    pub(crate) infos: Arc<Vec<RuleInfo>>,
    /// Per `Kind as usize`: which enabled rules can match an event (see [`crate::index`]).
    pub(crate) index: Arc<Vec<crate::index::KindIndex>>,
    hash: String,
}

impl Policy {
    /// Compile sources into a policy, or report every problem found.
    pub fn compile(sources: &[Source]) -> Result<Policy, PolicyErrors> {
        Compiler::new(sources).run()
    }

    /// Short stable hash of the sources (names and bytes, in order): 16 hex digits of SHA-256.
    pub fn hash(&self) -> String {
        self.hash.clone()
    }

    /// The rules, in definition order.
    pub fn rules(&self) -> &[RuleInfo] {
        &self.infos
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The bit of a kind in a kind mask (u64: there are more than 32 kinds).
pub(crate) fn kind_bit(k: Kind) -> u64 {
    1 << (k as usize)
}

// ---------------------------------------------------------------------------------------------
// TOML shape

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    #[serde(default)]
    lists: BTreeMap<String, Spanned<Vec<Item>>>,
    #[serde(default)]
    macros: BTreeMap<String, Spanned<CondDef>>,
    #[serde(default)]
    rule: Vec<Spanned<RuleDef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    id: Spanned<String>,
    description: Spanned<String>,
    kinds: Option<Spanned<Vec<String>>>,
    condition: Option<Spanned<CondDef>>,
    window: Option<Spanned<WindowDef>>,
    sequence: Option<Spanned<SeqDef>>,
    severity: Severity,
    tags: Option<Spanned<Vec<String>>>,
    output: Spanned<String>,
    #[serde(default)]
    exceptions: Vec<Spanned<CondDef>>,
    #[serde(default = "yes")]
    enabled: bool,
    dedup: Option<Spanned<DedupDef>>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowDef {
    #[serde(default)]
    per: Per,
    within: Spanned<String>,
    threshold: Spanned<i64>,
    distinct: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeqDef {
    #[serde(default)]
    per: Per,
    within: Spanned<String>,
    steps: Vec<Spanned<StepDef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepDef {
    kinds: Spanned<Vec<String>>,
    condition: Spanned<CondDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DedupDef {
    window: Spanned<String>,
    #[serde(default)]
    key: Vec<String>,
}

/// A condition node as written: exactly one of `all`, `any`, `not`, `macro`, or `field` with
/// one test.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CondDef {
    all: Option<Vec<Spanned<CondDef>>>,
    any: Option<Vec<Spanned<CondDef>>>,
    not: Option<Box<Spanned<CondDef>>>,
    #[serde(rename = "macro")]
    macro_: Option<String>,
    field: Option<String>,
    equals: Option<Item>,
    #[serde(rename = "in")]
    in_: Option<Items>,
    prefix: Option<Items>,
    suffix: Option<Items>,
    contains: Option<Items>,
    basename: Option<Items>,
    glob: Option<Items>,
    regex: Option<Items>,
    cidr: Option<Items>,
    ports: Option<Items>,
    gt: Option<Item>,
    ge: Option<Item>,
    lt: Option<Item>,
    le: Option<Item>,
    exists: Option<bool>,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
enum Item {
    Str(String),
    Int(i64),
    Bool(bool),
    Float(f64),
    /// `{ list = "name" }` (a map, so a one-element array is never mistaken for it).
    Ref(BTreeMap<String, String>),
}

#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
enum Items {
    Many(Vec<Item>),
    One(Item),
}

/// The list a `{ list = "name" }` item names.
fn list_ref(m: &BTreeMap<String, String>) -> Result<&str, String> {
    match (m.len(), m.get("list")) {
        (1, Some(n)) => Ok(n),
        _ => {
            let keys: Vec<String> = m
                .keys()
                .map(|k| format!("`{}`", k.escape_debug()))
                .collect();
            Err(format!(
                "a list reference is `{{ list = \"name\" }}`, found keys {}",
                keys.join(", ")
            ))
        }
    }
}

impl Items {
    fn into_vec(self) -> Vec<Item> {
        match self {
            Items::One(i) => vec![i],
            Items::Many(v) => v,
        }
    }
}

/// A list item after list references are resolved.
#[derive(Clone, Debug, PartialEq)]
enum Lit {
    Str(String),
    Int(i64),
    Bool(bool),
    Float(f64),
}

// ---------------------------------------------------------------------------------------------
// Checks on text

fn bad_char(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t' && c != '\r')
        || matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

fn check_text(s: &str) -> Result<(), String> {
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
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
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

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
}

/// Add a "did you mean" to serde's unknown-key and unknown-value messages.
fn improve_message(msg: &str) -> String {
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

// ---------------------------------------------------------------------------------------------
// Compiler

struct ListEntry {
    file: usize,
    span: usize,
    items: Option<Vec<Item>>,
    resolved: Option<Vec<Lit>>,
    busy: bool,
}

struct MacroEntry {
    file: usize,
    span: usize,
    def: Option<Spanned<CondDef>>,
    compiled: Option<Option<Arc<CompiledMacro>>>,
    busy: bool,
}

struct CompiledMacro {
    node: Arc<Node>,
    /// Fields used, each with the kinds an enclosing `kind` guard narrowed it to.
    fields: Vec<(Field, Option<u64>)>,
}

/// Where a field is used (to check it against the rule's kinds).
struct Use {
    field: Field,
    at: usize,
    via_macro: Option<String>,
    /// Kinds a sibling `{ field = "kind", equals/in = ... }` in an enclosing `all` allows.
    narrow: Option<u64>,
}

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

struct Compiler<'a> {
    sources: &'a [Source],
    errors: Vec<Error>,
    lists: HashMap<String, ListEntry>,
    macros: HashMap<String, MacroEntry>,
    stack: Vec<String>,
}

impl<'a> Compiler<'a> {
    fn new(sources: &'a [Source]) -> Self {
        Compiler {
            sources,
            errors: Vec::new(),
            lists: HashMap::new(),
            macros: HashMap::new(),
            stack: Vec::new(),
        }
    }

    fn place(&self, file: usize, offset: usize) -> (String, usize, usize) {
        let src = &self.sources[file];
        let (l, c) = line_col(&src.bytes, offset);
        (src.name.clone(), l, c)
    }

    /// Checks the name of a list or macro definition at (`file`, `span`) and that it is not a
    /// second definition (`prev`: where the first one is). False for a duplicate, to be skipped.
    fn check_definition(
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

    fn err(&mut self, file: usize, offset: usize, message: impl Into<String>) {
        let (file, line, col) = self.place(file, offset);
        self.errors.push(Error::Policy {
            file,
            line,
            col,
            message: message.into(),
        });
    }

    fn at(&self, file: usize, offset: usize) -> String {
        let (f, l, c) = self.place(file, offset);
        format!("{f}:{l}:{c}")
    }

    /// Source-level checks; returns the text when it can be parsed.
    fn check_source(&mut self, i: usize) -> Option<&'a str> {
        let src = &self.sources[i];
        let name = &src.name;
        if !src.regular_file {
            self.err(i, 0, format!("`{name}` is not a regular file"));
            return None;
        }
        if src.mode & 0o002 != 0 {
            self.err(
                i,
                0,
                format!(
                    "`{name}` is world-writable (mode `{:o}`): any user could change the policy; run `chmod o-w` on it",
                    src.mode & 0o7777
                ),
            );
        }
        if src.bytes.len() > MAX_FILE_BYTES {
            self.err(
                i,
                0,
                format!(
                    "file is `{}` bytes, more than the limit of `{MAX_FILE_BYTES}`",
                    src.bytes.len()
                ),
            );
            return None;
        }
        let text = match std::str::from_utf8(&src.bytes) {
            Ok(t) => t,
            Err(e) => {
                self.err(
                    i,
                    e.valid_up_to(),
                    "invalid UTF-8: policy files must be UTF-8 text",
                );
                return None;
            }
        };
        if text.trim().is_empty() {
            self.err(i, 0, "policy file is empty (a half-written file?): it must define rules, lists or macros");
            return None;
        }
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            if line.len() > MAX_LINE_BYTES {
                self.err(
                    i,
                    offset,
                    format!(
                        "line is `{}` bytes, more than the limit of `{MAX_LINE_BYTES}`",
                        line.len()
                    ),
                );
                return None;
            }
            offset += line.len();
        }
        if let Some((pos, c)) = text.char_indices().find(|&(_, c)| bad_char(c)) {
            self.err(
                i,
                pos,
                format!(
                    "control or bidi character `U+{:04X}` is not allowed in a policy file",
                    c as u32
                ),
            );
            return None;
        }
        Some(text)
    }

    fn run(mut self) -> Result<Policy, PolicyErrors> {
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
        for i in 0..self.sources.len() {
            let Some(text) = self.check_source(i) else {
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
            if file.lists.is_empty() && file.macros.is_empty() && file.rule.is_empty() {
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
            if rules.len() > MAX_RULES {
                self.err(i, 0, format!("policy has more than `{MAX_RULES}` rules"));
                return Err(PolicyErrors(self.errors));
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
        if !self.errors.is_empty() {
            let mut seen = HashSet::new();
            self.errors.retain(|e| seen.insert(e.to_string()));
            return Err(PolicyErrors(self.errors));
        }
        let index = crate::index::build(&compiled);
        let mut h = Sha256::new();
        for s in self.sources {
            h.update((s.name.len() as u64).to_le_bytes());
            h.update(s.name.as_bytes());
            h.update((s.bytes.len() as u64).to_le_bytes());
            h.update(&s.bytes);
        }
        let hash: String = h
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Policy {
            rules: Arc::new(compiled),
            infos: Arc::new(infos),
            index: Arc::new(index),
            hash,
        })
    }

    fn resolve_list(&mut self, name: &str, from: Option<(usize, usize)>) -> Option<Vec<Lit>> {
        let Some(entry) = self.lists.get_mut(name) else {
            if let Some((f, at)) = from {
                let s = suggest(name, self.lists.keys().map(|k| k.as_str()))
                    .map(|s| format!(", did you mean `{s}`?"))
                    .unwrap_or_default();
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

    fn compile_macro(
        &mut self,
        name: &str,
        from: Option<(usize, usize)>,
    ) -> Option<Arc<CompiledMacro>> {
        let Some(entry) = self.macros.get_mut(name) else {
            if let Some((f, at)) = from {
                let s = suggest(name, self.macros.keys().map(|k| k.as_str()))
                    .map(|s| format!(", did you mean `{s}`?"))
                    .unwrap_or_default();
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

    fn resolve_items(&mut self, file: usize, at: usize, items: Vec<Item>) -> Option<Vec<Lit>> {
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

    fn compile_cond(
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
            let s = suggest(fname, FIELDS.iter().map(|f| f.name))
                .map(|s| format!(", did you mean `{s}`?"))
                .unwrap_or_default();
            self.err(
                file,
                at,
                format!("unknown field `{}`{s}", fname.escape_debug()),
            );
            return None;
        };
        let (op, items) = match tests.len() {
            0 => {
                self.err(file, at, format!("field `{fname}` has no test: add one of `equals`, `in`, `prefix`, `suffix`, `contains`, `basename`, `glob`, `regex`, `cidr`, `ports`, `gt`, `ge`, `lt`, `le`, `exists`"));
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

    fn parse_kinds(&mut self, file: usize, kinds: &Spanned<Vec<String>>) -> Option<u64> {
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
                    let s = suggest(k, Kind::ALL.iter().map(|k| k.name()))
                        .map(|s| format!(", did you mean `{s}`?"))
                        .unwrap_or_default();
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

    fn check_uses(&mut self, file: usize, uses: &[Use], kinds: u64) -> bool {
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

    fn compile_rule(&mut self, file: usize, def: RuleDef) -> Option<(Rule, RuleInfo)> {
        let n0 = self.errors.len();
        let id = def.id.get_ref().clone();
        let id_at = def.id.span().start;
        if !valid_name(&id) {
            self.err(
                file,
                id_at,
                format!(
                    "rule id `{}` must be 1 to 128 lowercase letters, digits, `_`, `.` or `-`",
                    id.escape_debug()
                ),
            );
        }
        for (s, at) in [
            (def.description.get_ref(), def.description.span().start),
            (def.output.get_ref(), def.output.span().start),
        ] {
            if let Err(e) = check_text(s) {
                self.err(file, at, e);
            }
        }
        if def.description.get_ref().trim().is_empty() {
            self.err(
                file,
                def.description.span().start,
                format!("rule `{id}` has an empty `description`"),
            );
        }
        let tags: Vec<String> = def
            .tags
            .as_ref()
            .map(|t| t.get_ref().clone())
            .unwrap_or_default();
        let tags_at = def.tags.as_ref().map_or(id_at, |t| t.span().start);
        for t in &tags {
            if let Err(e) = check_text(t) {
                self.err(file, tags_at, e);
            }
        }
        // Shape: a condition (optionally windowed) or a sequence.
        let mut mode = Mode::Event;
        let mut per = Per::Session;
        let mut within_ns = 0;
        let mut kinds = 0u64;
        let mut uses = Vec::new();
        let mut cond = Node::True;
        match (&def.condition, &def.sequence) {
            (Some(_), Some(s)) => {
                self.err(file, s.span().start, format!("rule `{id}` has both `condition` and `sequence`: a sequence takes its conditions in its steps"));
            }
            (None, None) => {
                self.err(
                    file,
                    id_at,
                    format!("rule `{id}` needs a `condition` or a `sequence`"),
                );
            }
            (Some(c), None) => {
                match &def.kinds {
                    Some(k) => kinds = self.parse_kinds(file, k).unwrap_or(0),
                    None => self.err(
                        file,
                        id_at,
                        format!("rule `{id}` needs `kinds`, the event kinds it applies to"),
                    ),
                }
                if let Some(n) = self.compile_cond(file, c, 1, &mut uses) {
                    cond = n;
                }
                if let Some(w) = &def.window {
                    let w = w.get_ref();
                    per = w.per;
                    match parse_duration(w.within.get_ref()) {
                        Ok(0) => self.err(
                            file,
                            w.within.span().start,
                            "`within` must be longer than `0s`",
                        ),
                        Ok(ns) => within_ns = ns,
                        Err(e) => self.err(file, w.within.span().start, e),
                    }
                    let t = *w.threshold.get_ref();
                    if !(2..=MAX_THRESHOLD).contains(&t) {
                        self.err(
                            file,
                            w.threshold.span().start,
                            format!("`threshold` `{t}` is out of range `2..={MAX_THRESHOLD}`"),
                        );
                    }
                    let threshold = t.clamp(2, MAX_THRESHOLD) as usize;
                    mode = match &w.distinct {
                        None => Mode::Count { threshold },
                        Some(f) => match Field::from_name(f.get_ref()) {
                            Some(field) => {
                                uses.push(Use {
                                    field,
                                    at: f.span().start,
                                    via_macro: None,
                                    narrow: None,
                                });
                                Mode::Distinct { field, threshold }
                            }
                            None => {
                                let s = suggest(f.get_ref(), FIELDS.iter().map(|f| f.name))
                                    .map(|s| format!(", did you mean `{s}`?"))
                                    .unwrap_or_default();
                                self.err(
                                    file,
                                    f.span().start,
                                    format!("unknown field `{}`{s}", f.get_ref().escape_debug()),
                                );
                                Mode::Count { threshold }
                            }
                        },
                    };
                }
            }
            (None, Some(s)) => {
                if let Some(k) = &def.kinds {
                    self.err(
                        file,
                        k.span().start,
                        "a `sequence` rule takes its `kinds` from its steps; remove `kinds`",
                    );
                }
                if let Some(w) = &def.window {
                    self.err(
                        file,
                        w.span().start,
                        "a rule takes `window` or `sequence`, not both",
                    );
                }
                let sd = s.get_ref();
                per = sd.per;
                match parse_duration(sd.within.get_ref()) {
                    Ok(0) => self.err(
                        file,
                        sd.within.span().start,
                        "`within` must be longer than `0s`",
                    ),
                    Ok(ns) => within_ns = ns,
                    Err(e) => self.err(file, sd.within.span().start, e),
                }
                if sd.steps.len() < 2 || sd.steps.len() > MAX_STEPS {
                    self.err(
                        file,
                        s.span().start,
                        format!(
                            "a sequence needs `2..={MAX_STEPS}` steps, found `{}`",
                            sd.steps.len()
                        ),
                    );
                }
                let mut steps = Vec::new();
                for st in &sd.steps {
                    let st = st.get_ref();
                    let Some(mask) = self.parse_kinds(file, &st.kinds) else {
                        continue;
                    };
                    kinds |= mask;
                    let mut su = Vec::new();
                    let Some(n) = self.compile_cond(file, &st.condition, 1, &mut su) else {
                        continue;
                    };
                    self.check_uses(file, &su, mask);
                    steps.push(Step {
                        kinds: mask,
                        cond: n,
                    });
                }
                mode = Mode::Sequence { steps };
            }
        }
        let mut exceptions = Vec::new();
        for e in &def.exceptions {
            if let Some(n) = self.compile_cond(file, e, 1, &mut uses) {
                exceptions.push(n);
            }
        }
        if kinds != 0 {
            self.check_uses(file, &uses, kinds);
        }
        // Output template.
        let output = match parse_template(def.output.get_ref()) {
            Ok(p) => {
                for part in &p {
                    if let Part::Field(f) = part
                        && kinds != 0
                        && !Kind::ALL
                            .iter()
                            .any(|&k| kinds & kind_bit(k) != 0 && f.applies_to(k))
                    {
                        self.err(
                            file,
                            def.output.span().start,
                            format!(
                                "output field `{}` does not exist for any of the rule's kinds",
                                f.name()
                            ),
                        );
                    }
                }
                p
            }
            Err(e) => {
                self.err(file, def.output.span().start, e);
                Vec::new()
            }
        };
        // De-duplication.
        let mut dedup_ns = DEFAULT_DEDUP_NS;
        let mut dedup_key = None;
        if let Some(d) = &def.dedup {
            let d = d.get_ref();
            match parse_duration(d.window.get_ref()) {
                Ok(ns) => dedup_ns = ns,
                Err(e) => self.err(file, d.window.span().start, e),
            }
            if !d.key.is_empty() {
                let mut keys = Vec::new();
                for k in &d.key {
                    match Field::from_name(k) {
                        Some(f) => keys.push(f),
                        None => {
                            let s = suggest(k, FIELDS.iter().map(|f| f.name))
                                .map(|s| format!(", did you mean `{s}`?"))
                                .unwrap_or_default();
                            self.err(
                                file,
                                d.window.span().start,
                                format!("unknown dedup key field `{}`{s}", k.escape_debug()),
                            );
                        }
                    }
                }
                dedup_key = Some(keys);
            }
        }
        if self.errors.len() != n0 {
            return None;
        }
        let fingerprint = {
            let text = format!(
                "{:?}|{:?}|{kinds}|{:?}|{:?}|{:?}|{:?}|{within_ns}|{dedup_ns}|{:?}|{}",
                def.severity, mode, cond, exceptions, output, per, dedup_key, def.enabled
            );
            let h = Sha256::digest(text.as_bytes());
            h.iter().take(8).map(|b| format!("{b:02x}")).collect()
        };
        let kind_list: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|&k| kinds & kind_bit(k) != 0)
            .collect();
        let info = RuleInfo {
            id: id.clone(),
            severity: def.severity,
            enabled: def.enabled,
            description: def.description.get_ref().clone(),
            kinds: kind_list,
            tags: tags.clone(),
            mode: match mode {
                Mode::Event => "event",
                Mode::Count { .. } => "count",
                Mode::Distinct { .. } => "distinct",
                Mode::Sequence { .. } => "sequence",
            },
            defined_at: String::new(),
        };
        let rule = Rule {
            id,
            severity: def.severity,
            tags,
            enabled: def.enabled,
            kinds,
            cond,
            exceptions,
            output,
            mode,
            per,
            within_ns,
            dedup_ns,
            dedup_key,
            fingerprint,
        };
        Some((rule, info))
    }
}

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

/// Parse `"{process.exe} read {file.path}"`; `{{` and `}}` are literal braces.
pub(crate) fn parse_template(s: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => {
                            return Err(format!("unclosed `{{` in output template at `{{{name}`"));
                        }
                    }
                }
                let Some(f) = Field::from_name(name.trim()) else {
                    let s = suggest(name.trim(), FIELDS.iter().map(|f| f.name))
                        .map(|s| format!(", did you mean `{s}`?"))
                        .unwrap_or_default();
                    return Err(format!("unknown field `{{{name}}}` in output template{s}"));
                };
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(Part::Field(f));
            }
            '}' => {
                return Err("stray `}` in output template: write `}}` for a literal brace".into());
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    if parts.is_empty() {
        return Err("`output` is empty".into());
    }
    Ok(parts)
}

/// Detect direct contradictions among the children of an `all`.
fn contradiction(nodes: &[Node]) -> Option<String> {
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

fn build_matcher(field: Field, op: &str, lits: Vec<Lit>) -> Result<Matcher, String> {
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
                            let s = suggest(&name, Kind::ALL.iter().map(|k| k.name()))
                                .map(|s| format!(", did you mean `{s}`?"))
                                .unwrap_or_default();
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
                match (crate::cond::glob_literal(&s), literals.as_mut()) {
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
        _ => Err(format!("unknown test `{op}`")),
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
    fn templates_parse_fields_and_braces() {
        let p = parse_template("{process.exe} read {{x}} {file.path}").unwrap();
        assert_eq!(
            p,
            vec![
                Part::Field(Field::ProcessExe),
                Part::Lit(" read {x} ".into()),
                Part::Field(Field::FilePath)
            ]
        );
        assert!(
            parse_template("{process.ex}")
                .unwrap_err()
                .contains("did you mean `process.exe`")
        );
        assert!(
            parse_template("{file.path")
                .unwrap_err()
                .contains("unclosed")
        );
    }

    #[test]
    fn unknown_key_messages_get_a_suggestion() {
        let m = improve_message("unknown field `severty`, expected one of `id`, `severity`");
        assert!(m.contains("did you mean `severity`?"), "{m}");
    }
}
