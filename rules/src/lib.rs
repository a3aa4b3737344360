//! The agentwatch policy language and its engine.
//!
//! Policies are TOML files: rules with a structured condition over dotted event fields
//! (`process.exe`, `file.path`, `net.dst_ip`), reusable `lists` and `macros`, windowed rules
//! (count, distinct count, ordered sequence per session or agent) and de-duplication. The crate is
//! pure — no IO, no clock, no async runtime — so the daemon, `rules check`, `rules test`, the
//! benchmarks and the tests all run the same code on the same recorded events; time comes only
//! from `event.time`. The one exception is the `fs` module behind the `fs` feature, which reads
//! policy files for the command line. Everything a policy can get wrong is found at load time
//! and reported as `file:line:col: message`, so a running engine never meets a bad rule.
#![forbid(unsafe_code)]

mod cond;
mod engine;
mod error;
pub mod fixtures;
mod index;
mod output;
mod policy;

#[cfg(feature = "fs")]
pub mod fs;

pub use engine::Engine;
pub use error::{Error, PolicyErrors};
pub use output::{RELOAD_REJECTED, falco_json, falco_priority, reload_rejected_alert};
pub use policy::{
    MAX_DEPTH, MAX_FILE_BYTES, MAX_LINE_BYTES, MAX_RULES, MAX_THRESHOLD, Per, Policy, RuleInfo,
    Source,
};

/// The shipped default policy files, embedded so the daemon works without the source tree.
pub const DEFAULT_POLICY: &[(&str, &str)] = &[
    (
        "credentials.toml",
        include_str!("../policy/credentials.toml"),
    ),
    (
        "exfiltration.toml",
        include_str!("../policy/exfiltration.toml"),
    ),
    ("discovery.toml", include_str!("../policy/discovery.toml")),
    ("privilege.toml", include_str!("../policy/privilege.toml")),
    (
        "persistence.toml",
        include_str!("../policy/persistence.toml"),
    ),
    ("evasion.toml", include_str!("../policy/evasion.toml")),
    ("delegation.toml", include_str!("../policy/delegation.toml")),
    ("lists.toml", include_str!("../policy/lists.toml")),
    ("monitor.toml", include_str!("../policy/monitor.toml")),
];

/// The default policy as sources (names like `<default>/credentials.toml`).
pub fn default_sources() -> Vec<Source> {
    let mut v: Vec<Source> = DEFAULT_POLICY
        .iter()
        .map(|(n, t)| Source::from_text(format!("<default>/{n}"), *t))
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}
