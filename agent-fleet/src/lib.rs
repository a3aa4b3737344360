//! agentwatch's fleet layer: each daemon ships its events and alerts from its durable spool to
//! NATS JetStream, a clustered, replicated stream that SIEM shippers (Vector, Fluent Bit,
//! Benthos, Telegraf) already read. The fleet is NATS's cluster, never one of our own.
//!
//! Shaped around the spool rather than the live pipeline: a shipper reads the spool forward from
//! a persisted cursor ([`agent_store::SpoolTail`]) and advances the cursor only when JetStream
//! has acknowledged every message of a batch, so a NATS outage, restart or partition loses
//! nothing (at-least-once), and the event id travels as `Nats-Msg-Id` so a resent batch is not
//! stored twice within the stream's duplicate window. The host keeps working offline: the
//! shipper runs on the daemon's runtime beside everything else, and its state (backlog, lag,
//! last acknowledgement, last error) is what `status` shows ([`agent_api::FleetOutputStatus`]).
//! On the same connection the daemon answers fleet-wide searches (`search`), so one query
//! reaches every host's own store. A fleet console ([`Console`]) reads every host's alerts
//! from the alerts stream and shares triage through a JetStream key-value bucket.
#![forbid(unsafe_code)]

mod alert;
mod config;
mod console;
mod cursor;
mod search;
mod session;
mod ship;

pub use alert::{DroppedWatch, UNSHIPPED, unshipped_alert};
pub use config::{NatsConfig, sanitize_token};
pub use console::{Console, alert_from_payload, triage_bucket, triage_key};
pub use search::{
    FleetHit, FleetResults, HostAnswer, SearchFn, answer_bytes, fleet_search, merge,
    merge_aggregations,
};
pub use session::{SessionAnswer, SessionFn, fleet_session, session_answer_bytes, session_subject};
pub use ship::{Shipper, ShipperHandle, payload};

/// The one error type of the fleet crate.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("invalid `[[output]]` of type `nats`: {0}")]
    Config(String),
    /// The cluster could not be reached or refused a client request (`search --fleet`).
    #[error("{0}")]
    Net(String),
    #[error("i/o error on `{path}`")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}
