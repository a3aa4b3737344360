//! The compiled rule: what the engine runs ([`Rule`], [`Mode`], [`Step`]) and what a listing
//! shows ([`RuleInfo`]).
//!
//! These are plain data with no behaviour beyond [`kind_bit`], kept apart from the compiler that
//! builds them and from the index that reads them, so that neither has to import the other.

use agent_model::{Field, Kind, Severity};
use serde::Deserialize;

use super::response::RuleResponse;
use super::template::Part;
use crate::cond::Node;

/// What a rules listing shows about one rule.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RuleInfo {
    pub id: String,
    pub severity: Severity,
    pub enabled: bool,
    pub description: String,
    pub kinds: Vec<Kind>,
    pub tags: Vec<String>,
    /// `count`, `distinct`, `sum`, `sequence`, or `event` for a stateless rule.
    pub mode: &'static str,
    /// `file:line:col` of the definition.
    pub defined_at: String,
    /// What the daemon does when the rule fires, besides alerting (`action` not `alert`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<RuleResponse>,
    /// `file:line:col` of each `[[override]]` applied to the rule, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
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
    /// When the values of `field` over matching events within `within_ns` add up to
    /// `threshold` or more.
    Sum { field: Field, threshold: i64 },
    /// When the steps match in order within `within_ns` of the first.
    Sequence { steps: Vec<Step> },
}

#[derive(Debug)]
pub(crate) struct Step {
    pub kinds: u64,
    pub cond: Node,
    /// `join`: fields whose value must equal the chain's key. The first step with a join keys
    /// the chain with the first of its fields the event carries; later steps continue a chain
    /// whose key equals any of theirs. Empty: the step does not join.
    pub join: Vec<Field>,
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

// Kind masks are one bit per kind, by position in `Kind::ALL`.
const _: () = assert!(Kind::ALL.len() <= 64);

/// The bit of `k` in a kind mask (`Rule::kinds`, `Step::kinds`, `Op::KindIn`).
pub(crate) fn kind_bit(k: Kind) -> u64 {
    1 << (k as usize)
}
