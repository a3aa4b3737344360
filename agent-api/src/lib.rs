//! The daemon's local API, typed: every request ([`Request`]) and every answer of the JSON-lines
//! protocol on `<data-dir>/agentwatch.sock` (`docs/api.md`), and a small blocking [`Client`].
//!
//! The daemon, the CLI and the TUI all speak through these types, as tokio-console's
//! `console-api` crate is shared by its two sides, so a field renamed on one side cannot go
//! unnoticed on the other. Each answer line is a [`Reply`]: `{"ok": true, ...answer}` or
//! `{"ok": false, "error": "..."}`. The types that the store hands out and the daemon sends
//! unchanged ([`Hit`], [`Aggregation`], [`SessionDetail`], [`TriageEntry`] ...) are defined here
//! once; `agent-store` uses them. This crate has no async runtime, no index and no loader: the
//! clients depend on it without pulling in the daemon.
#![forbid(unsafe_code)]

mod answer;
mod client;
mod hit;
mod request;
mod stream;

pub use answer::{
    AlertList, Answer, Done, EgressPolicyStatus, EgressStatus, FleetOutputStatus, HookAnswer,
    IntegrityStatus, IntentStatus, LiveSession, OfflineStatus, PolicyHealth, PolicyStatus,
    Registered, Reply, Responded, RuleStatus, RulesListing, SearchResults, SessionList, Status,
    StoreStats, StoreStatus,
};
pub use client::Client;
pub use hit::{
    Aggregation, Hit, Item, ProcessNode, SessionDetail, SessionSummary, TriageEntry, TriageState,
};
pub use request::{DEFAULT_LIMIT, Request, SessionAction};
pub use stream::StreamItem;

/// The one error type of the API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no daemon answers on `{path}`; hint: start it with `agentwatch daemon` (as root)")]
    Connect {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("i/o error on the daemon socket")]
    Io(#[from] std::io::Error),
    #[error("daemon sent invalid JSON")]
    Json(#[from] serde_json::Error),
    #[error("daemon closed the connection")]
    Closed,
    /// The daemon answered `{"ok": false, "error": ...}`.
    #[error("{0}")]
    Refused(String),
}
