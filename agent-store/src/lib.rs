//! The agentwatch store: every event and alert goes first into an append-only, checksummed spool
//! (fsynced in groups), then into a tantivy index committed on a cadence by a background thread.
//!
//! The spool is the source of truth and holds each record losslessly (events in a compact binary
//! encoding, cheap to write on the hot path and to read back for indexing; alerts as JSON), from
//! which the JSON the store hands out is exactly what was appended; the index holds
//! only what queries need plus a pointer (`_seq`, `_off`) back into the spool, which keeps it
//! small and lets a damaged or deleted index be rebuilt from the spool. Each index commit records
//! the last spool sequence it holds, so after a crash the spool tail is replayed: nothing
//! acknowledged is lost and nothing is indexed twice. Only the daemon writes ([`Store`]); the CLI
//! and TUI open a [`Reader`], which never writes, even on a copied data dir. Queries use our own
//! Lucene-like language ([`query`]), parsed to an AST and built into tantivy queries by hand.
//!
//! What it hands out (hits, aggregations, sessions, triage entries) are `agent-api` types, so
//! the daemon answers with them unchanged.
//!
//! This crate is synchronous: the daemon calls it from a dedicated thread.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

pub mod chain;
mod codec;
pub mod evidence;
pub mod export;
pub mod mark;
pub mod query;
mod reader;
pub mod schema;
mod search;
mod spool;
mod store;
mod tail;
pub mod verify;

/// The read side's results are the API's types: the daemon sends them as they are.
pub use agent_api::{
    Aggregation, Hit, Item, ProcessNode, SessionDetail, SessionSummary, StoreStats, TriageEntry,
    TriageState,
};
pub use query::{QueryError, parse_time_bound};
pub use reader::{Reader, SearchRequest, SearchResponse, StoredHit};
pub use spool::Damage;
pub use store::Store;
pub use tail::{SpoolTail, TailItem};
pub use verify::{Finding, FindingKind, VerifyReport, verify};

/// The one error type of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("i/o error on `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("index error")]
    Index(#[from] tantivy::TantivyError),
    #[error("{0}")]
    Query(#[from] QueryError),
    #[error("data dir `{0}` is in use by another writer")]
    Locked(PathBuf),
    #[error("no index in `{0}`; has a daemon ever written there?")]
    NoIndex(PathBuf),
    #[error("record `{seq}` is too large: `{len}` bytes")]
    TooLarge { seq: u64, len: usize },
    #[error("corrupt spool record at `{path}` offset `{offset}`")]
    Corrupt { path: PathBuf, offset: u64 },
    #[error("bad json in spool record `{seq}`")]
    Json {
        seq: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "spool segment `{path}` has format `{magic}`, written by a newer agentwatch; this version reads `AWSPOOL1` to `AWSPOOL3`"
    )]
    SpoolFormat { path: PathBuf, magic: String },
    #[error("spool buffer is full (`{0}` bytes unwritten); the disk may be full")]
    Backlog(usize),
    #[error("free space is below the reserve kept for alerts and monitor events: event refused")]
    Reserve,
    #[error("the indexer thread stopped: {0}")]
    Indexer(String),
    #[error("the spool does not take writes (`{buffered}` bytes buffered in memory): {cause}")]
    NoSpace { buffered: usize, cause: String },
}

/// Tuning of a [`Store`].
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Commit the index after this many new records...
    pub commit_every_events: u64,
    /// ... or this long after the first uncommitted one.
    pub commit_every: Duration,
    /// fsync the spool after this many records...
    pub sync_every_events: u64,
    /// ... or at least this often.
    pub sync_every: Duration,
    /// Delete spool segments (and their documents) whose newest record is older than this.
    pub retention_age: Option<Duration>,
    /// Delete the oldest segments while the spool is larger than this.
    pub retention_bytes: Option<u64>,
    /// Start a new spool segment past this size.
    pub segment_bytes: u64,
    /// Memory budget of the tantivy writer (split between its threads, at least 15 MB each).
    pub index_memory_bytes: usize,
    /// tantivy indexing threads.
    pub index_threads: usize,
    /// Where to keep the high-water mark (last durable seq and chain value), outside the data
    /// dir; `None` keeps none. See [`mark`].
    pub mark: Option<PathBuf>,
    /// While the disk does not take writes, events are kept in memory up to this many bytes,
    /// then dropped and counted; alerts and `monitor.*` events may use up to 256 MiB.
    pub backlog_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            commit_every_events: 200_000,
            commit_every: Duration::from_millis(500),
            sync_every_events: 8192,
            sync_every: Duration::from_millis(50),
            retention_age: Some(Duration::from_secs(30 * 86_400)),
            retention_bytes: None,
            segment_bytes: 64 << 20,
            index_memory_bytes: 96 << 20,
            index_threads: 2,
            mark: None,
            backlog_bytes: 64 << 20,
        }
    }
}

/// Whether the store is writing: see [`Store::health`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreHealth {
    /// The spool does not take writes now (disk full or another write error).
    pub full: bool,
    /// When the current (or last) outage began.
    pub full_since: Option<agent_model::Timestamp>,
    /// When the last outage ended.
    pub resumed_at: Option<agent_model::Timestamp>,
    /// The write error of the current outage.
    pub error: Option<String>,
    /// Outages since open.
    pub outages: u64,
    /// Records refused (never given a seq) since open, and during the current or last outage.
    pub dropped: u64,
    pub outage_dropped: u64,
    /// The indexer's last error while it is retrying (cleared by its next commit).
    pub index_error: Option<String>,
    /// Events refused because free space was below the reserve (`Store::set_reserve_only`).
    pub reserve_dropped: u64,
}

/// What [`Store::open`] found and repaired. The daemon turns a non-clean report into an alert.
#[derive(Clone, Debug, Default)]
pub struct OpenReport {
    /// Damaged spool regions, quarantined (corrupted records) or cut (torn tails).
    pub damaged: Vec<Damage>,
    /// Sequence ranges (inclusive) missing from the spool.
    pub missing_seqs: Vec<(u64, u64)>,
    /// Why the index was rebuilt from the spool, when it was.
    pub index_rebuilt: Option<String>,
    /// Spool records replayed into the index (the tail past its last commit).
    pub replayed: u64,
    /// Last sequence in the spool.
    pub last_seq: u64,
    /// Files and directories whose permissions were too open and were fixed.
    pub permissions_fixed: Vec<PathBuf>,
    /// Tamper evidence: what the chain, the segment anchors and the mark say is missing or
    /// altered (and, informationally, older-format segments and torn tails).
    pub findings: Vec<Finding>,
}

impl OpenReport {
    /// True when nothing was corrupted, missing or rebuilt. A torn tail (the normal trace of a
    /// crash mid-write) is reported in [`OpenReport::messages`] but counts as clean.
    pub fn is_clean(&self) -> bool {
        self.damaged.iter().all(|d| d.torn_tail)
            && self.missing_seqs.is_empty()
            && self.index_rebuilt.is_none()
            && self.findings.iter().all(|f| !f.kind.is_tamper())
    }

    /// One line per finding, for an alert or a log.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for d in &self.damaged {
            out.push(if d.torn_tail {
                format!(
                    "torn spool tail cut at `{}` offset `{}` ({} bytes kept in `{}`)",
                    d.segment.display(),
                    d.offset,
                    d.len,
                    d.quarantine.display()
                )
            } else {
                format!(
                    "corrupted spool record at `{}` offset `{}` ({} bytes) quarantined in `{}`",
                    d.segment.display(),
                    d.offset,
                    d.len,
                    d.quarantine.display()
                )
            });
        }
        for (a, b) in &self.missing_seqs {
            out.push(format!("spool records `{a}`..=`{b}` are missing"));
        }
        if let Some(r) = &self.index_rebuilt {
            out.push(format!("index rebuilt from the spool: {r}"));
        }
        for f in self.findings.iter().filter(|f| f.kind.is_tamper()) {
            out.push(format!("tamper evidence ({}): {}", f.kind.name(), f.detail));
        }
        for p in &self.permissions_fixed {
            out.push(format!(
                "permissions of `{}` were too open and were fixed",
                p.display()
            ));
        }
        out
    }
}
