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
//!
//! # Layout
//! Modules depend only on those listed before them (unit tests aside, which may use the default
//! policy and fixtures); none imports a module that imports it back.
//! - `error`: the crate's error enum and [`PolicyErrors`], the list `rules check` prints.
//! - `hash`: the hot-path hasher.
//! - `changed`: the bounded per-session set of files a session created or changed.
//! - `cond`: compiled conditions and their evaluation over an event.
//! - `policy`: loading — [`Source`]s in, a compiled [`Policy`] out, through definitions
//!   (serde types), validation, matchers, output templates, the compiler (split by what it
//!   compiles: lists and macros, conditions, windows and sequences, rules) and the per-kind rule
//!   index. [`Policy::compile`] is the single entry point, IO-free (also for fuzzing).
//! - `output`: rendering alerts and the Falco-like JSON line.
//! - `engine`: runs a [`Policy`] over events, with windowed state and de-duplication.
//! - `defaults`: the embedded default policy.
//! - [`fixtures`]: recorded events and the alerts they must raise, run on an [`Engine`].
//! - `fs` (feature `fs`): the only IO — reading policy and fixture files for the CLI.
#![forbid(unsafe_code)]

mod changed;
mod cond;
mod defaults;
mod engine;
mod error;
pub mod fixtures;
mod hash;
mod output;
mod policy;

#[cfg(feature = "fs")]
pub mod fs;

pub use changed::MAX_CHANGED_PATHS;
pub use defaults::{DEFAULT_POLICY, default_sources};
pub use engine::{DENY_TAG, Engine};
pub use error::{Error, PolicyErrors, did_you_mean};
pub use output::{RELOAD_REJECTED, falco_json, falco_priority, reload_rejected_alert};
pub use policy::{
    Action, DEFAULT_RATE_LIMIT, InlineTargets, MAX_DEPTH, MAX_FILE_BYTES, MAX_LINE_BYTES,
    MAX_RULES, MAX_THRESHOLD, Per, Policy, RuleInfo, RuleResponse, Source,
};
