//! The policy as written: the serde types a TOML policy file deserializes into.
//!
//! They mirror the file format one to one, keep the spans (`Spanned`) that errors need for
//! `file:line:col`, and reject unknown keys (`deny_unknown_fields`) so that a typo fails loudly.
//! Nothing here checks meaning: names, types and kinds are the compiler's job, which can then
//! report every problem with its place instead of stopping at the first.

use std::collections::BTreeMap;

use agent_model::Severity;
use serde::Deserialize;
use toml::Spanned;

use super::rule::Per;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDef {
    #[serde(default)]
    pub(super) lists: BTreeMap<String, Spanned<Vec<Item>>>,
    /// Items appended to lists defined in another file (a local file adding to a shipped
    /// list without editing it; the daemon adding its real paths to `monitor_paths`).
    #[serde(default)]
    pub(super) extend_lists: BTreeMap<String, Spanned<Vec<Item>>>,
    #[serde(default)]
    pub(super) macros: BTreeMap<String, Spanned<CondDef>>,
    #[serde(default)]
    pub(super) rule: Vec<Spanned<RuleDef>>,
    /// Local changes to rules defined anywhere in the policy (see `compile::overrides`).
    #[serde(default, rename = "override")]
    pub(super) overrides: Vec<Spanned<OverrideDef>>,
}

/// `[[override]]`: changes one rule by id without editing the file that defines it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OverrideDef {
    pub(super) rule: Spanned<String>,
    pub(super) enabled: Option<Spanned<bool>>,
    pub(super) severity: Option<Spanned<Severity>>,
    /// Replaces the rule's response whole (with `mode` and `rate_limit` from this override).
    pub(super) action: Option<Spanned<String>>,
    pub(super) mode: Option<Spanned<String>>,
    pub(super) rate_limit: Option<Spanned<String>>,
    /// Appended to the rule's exceptions.
    #[serde(default)]
    pub(super) exceptions: Vec<Spanned<CondDef>>,
    /// Appended to the rule's tags.
    pub(super) tags: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleDef {
    pub(super) id: Spanned<String>,
    pub(super) description: Spanned<String>,
    pub(super) kinds: Option<Spanned<Vec<String>>>,
    pub(super) condition: Option<Spanned<CondDef>>,
    pub(super) window: Option<Spanned<WindowDef>>,
    pub(super) sequence: Option<Spanned<SeqDef>>,
    pub(super) severity: Severity,
    pub(super) tags: Option<Spanned<Vec<String>>>,
    pub(super) output: Spanned<String>,
    #[serde(default)]
    pub(super) exceptions: Vec<Spanned<CondDef>>,
    #[serde(default = "yes")]
    pub(super) enabled: bool,
    pub(super) dedup: Option<Spanned<DedupDef>>,
    /// Response (see `policy::response`): `alert` (default), `kill`, `kill_session`,
    /// `freeze_session` or `deny`.
    pub(super) action: Option<Spanned<String>>,
    /// `enforce` or `dry_run`; absent: the daemon's default.
    pub(super) mode: Option<Spanned<String>>,
    /// `N/DURATION`, e.g. `5/1m`.
    pub(super) rate_limit: Option<Spanned<String>>,
    /// `true`: a `kill` done in the kernel at the open (see `policy::response::InlineTargets`).
    pub(super) inline: Option<Spanned<bool>>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WindowDef {
    #[serde(default)]
    pub(super) per: Per,
    pub(super) within: Spanned<String>,
    pub(super) threshold: Spanned<i64>,
    pub(super) distinct: Option<Spanned<String>>,
    pub(super) sum: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SeqDef {
    #[serde(default)]
    pub(super) per: Per,
    pub(super) within: Spanned<String>,
    pub(super) steps: Vec<Spanned<StepDef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StepDef {
    pub(super) kinds: Spanned<Vec<String>>,
    pub(super) condition: Spanned<CondDef>,
    pub(super) join: Option<Spanned<Items>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DedupDef {
    pub(super) window: Spanned<String>,
    #[serde(default)]
    pub(super) key: Vec<String>,
}

/// A condition node as written: exactly one of `all`, `any`, `not`, `macro`, or `field` with
/// one test.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct CondDef {
    pub(super) all: Option<Vec<Spanned<CondDef>>>,
    pub(super) any: Option<Vec<Spanned<CondDef>>>,
    pub(super) not: Option<Box<Spanned<CondDef>>>,
    #[serde(rename = "macro")]
    pub(super) macro_: Option<String>,
    pub(super) field: Option<String>,
    pub(super) equals: Option<Item>,
    #[serde(rename = "in")]
    pub(super) in_: Option<Items>,
    pub(super) prefix: Option<Items>,
    pub(super) suffix: Option<Items>,
    pub(super) contains: Option<Items>,
    pub(super) basename: Option<Items>,
    pub(super) glob: Option<Items>,
    pub(super) regex: Option<Items>,
    pub(super) cidr: Option<Items>,
    pub(super) ports: Option<Items>,
    pub(super) gt: Option<Item>,
    pub(super) ge: Option<Item>,
    pub(super) lt: Option<Item>,
    pub(super) le: Option<Item>,
    pub(super) exists: Option<bool>,
    pub(super) bits_any: Option<Item>,
    pub(super) bits_all: Option<Item>,
    pub(super) bits_none: Option<Item>,
    pub(super) len: Option<RangeDef>,
    pub(super) entropy: Option<RangeDef>,
    pub(super) changed_by_session: Option<bool>,
    pub(super) created_by_session: Option<bool>,
}

/// The comparisons of `len = { gt = 50 }` / `entropy = { ge = 3.5, lt = 6 }`: all must hold.
#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RangeDef {
    pub(super) gt: Option<Item>,
    pub(super) ge: Option<Item>,
    pub(super) lt: Option<Item>,
    pub(super) le: Option<Item>,
}

impl RangeDef {
    /// The comparisons as `[name, value, name, value, ...]` items (how a test's values travel
    /// to the matcher builder).
    pub(super) fn into_items(self) -> Vec<Item> {
        [
            ("gt", self.gt),
            ("ge", self.ge),
            ("lt", self.lt),
            ("le", self.le),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| [Item::Str(n.into()), v]))
        .flatten()
        .collect()
    }
}

#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
pub(super) enum Item {
    Str(String),
    Int(i64),
    Bool(bool),
    Float(f64),
    /// `{ list = "name" }` (a map, so a one-element array is never mistaken for it).
    Ref(BTreeMap<String, String>),
}

#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
pub(super) enum Items {
    Many(Vec<Item>),
    One(Item),
}

/// The list a `{ list = "name" }` item names.
pub(super) fn list_ref(m: &BTreeMap<String, String>) -> Result<&str, String> {
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
    pub(super) fn into_vec(self) -> Vec<Item> {
        match self {
            Items::One(i) => vec![i],
            Items::Many(v) => v,
        }
    }
}

/// A list item after list references are resolved.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Lit {
    Str(String),
    Int(i64),
    Bool(bool),
    Float(f64),
}
