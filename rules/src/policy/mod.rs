//! The policy language: TOML definitions (with spans for `file:line:col` errors), their checks,
//! and compilation into [`Policy`], the immutable set of compiled rules the engine runs.
//!
//! Compilation is pure: the caller reads files into [`Source`]s; everything else — size,
//! encoding, permissions, syntax, names, types, kinds — is checked here, and every problem found
//! is reported, not only the first. [`Policy::compile`] is the one entry point, for the daemon,
//! `rules check`, the tests and a fuzz target alike.
//!
//! The submodules, each importing only those before it (unit tests aside):
//! - `limits`, `source`: the bounds a policy must keep, and a file as bytes;
//! - `template`, `response`, `rule`: output templates, a rule's response action, and the
//!   compiled rule the engine runs;
//! - `definitions`: the serde types a file deserializes into;
//! - `validate`: checks on files, names, durations, parser messages and contradictions;
//! - `matchers`: one field test into a compiled matcher;
//! - `compile`: definitions into rules (lists and macros, conditions, windows, rules);
//! - `index`: per event kind, which rules can match, read by the engine.
//!
//! This file only declares them and assembles a [`Policy`]; no submodule imports it back.

mod compile;
mod definitions;
mod index;
mod limits;
mod matchers;
mod response;
mod rule;
mod source;
mod template;
mod validate;

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::PolicyErrors;

pub use self::limits::{MAX_DEPTH, MAX_FILE_BYTES, MAX_LINE_BYTES, MAX_RULES, MAX_THRESHOLD};
pub use self::response::{Action, DEFAULT_RATE_LIMIT, InlineTargets, RuleResponse};
pub use self::rule::{Per, RuleInfo};
pub use self::source::Source;

pub(crate) use self::index::KindIndex;
pub(crate) use self::limits::MAX_JOIN_KEYS;
pub(crate) use self::rule::{Mode, Rule, Step, kind_bit};
pub(crate) use self::template::Part;

/// A compiled, immutable policy. Share it with `Arc`; swap it into the engine whole.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) rules: Arc<Vec<Rule>>,
    pub(crate) infos: Arc<Vec<RuleInfo>>,
    /// Per `Kind as usize`: which enabled rules can match an event (see `policy::index`).
    pub(crate) index: Arc<Vec<KindIndex>>,
    /// Some enabled rule tests `changed_by_session`, so the engine tracks changed files.
    pub(crate) uses_changed: bool,
    hash: String,
}

impl Policy {
    /// Compile sources into a policy, or report every problem found, each as
    /// `file:line:col: message`.
    ///
    /// No IO: the sources are in memory (see [`Source::from_text`], or build a [`Source`] from
    /// raw bytes), so this is also the entry point for fuzzing the policy loader. The file
    /// loader (`fs::cmd_check`, `fs::cmd_test`) and the daemon read files and call this.
    pub fn compile(sources: &[Source]) -> Result<Policy, PolicyErrors> {
        let compiled = compile::compile(sources)?;
        let index = index::build(&compiled.rules);
        let uses_changed = compiled.rules.iter().any(|r| {
            r.enabled
                && (r.cond.uses_state()
                    || r.exceptions.iter().any(|x| x.uses_state())
                    || matches!(&r.mode, Mode::Sequence { steps } if steps.iter().any(|s| s.cond.uses_state())))
        });
        Ok(Policy {
            uses_changed,
            rules: Arc::new(compiled.rules),
            infos: Arc::new(compiled.infos),
            index: Arc::new(index),
            hash: hash_sources(sources),
        })
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

/// 16 hex digits of SHA-256 over each source's file name (not its directory, so `rules check
/// ./rules/` and a daemon given `/etc/agentwatch/rules` agree) and bytes, length-prefixed, in
/// order. Sources the daemon generates ([`Source::extends_optional`], e.g. its own paths) are
/// left out: the hash names the policy a user wrote, the same on every host.
fn hash_sources(sources: &[Source]) -> String {
    let mut h = Sha256::new();
    for s in sources.iter().filter(|s| !s.extends_optional) {
        let name = s.name.rsplit('/').next().unwrap_or(&s.name);
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((s.bytes.len() as u64).to_le_bytes());
        h.update(&s.bytes);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}
