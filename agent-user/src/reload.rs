//! Policy loading and hot reload for the daemon (the glue between `--rules`, the files on disk
//! and the `rules` crate, which itself does no IO).
//!
//! The policy comes from `--rules PATH...`, else `/etc/agentwatch/rules` when present, else the
//! default policy embedded in the binary. A reload (SIGHUP, or a rule file changing on disk) reads
//! and validates the whole set first and swaps it in atomically; a rejected reload keeps the
//! running policy and raises a `policy.reload_rejected` alert with the error. A reload that
//! succeeds but loses rules or rule files (moved away, deleted) raises `monitor.rules_dropped`
//! naming them: an attacker disabling rules by removing files is not a silent config change.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_model::{Alert, BStr, Severity, Timestamp};
use anyhow::{Result, anyhow};

/// Where the policy is read from.
#[derive(Clone, Debug)]
pub enum PolicySource {
    Paths(Vec<PathBuf>),
    Embedded,
}

pub const DEFAULT_RULES_DIR: &str = "/etc/agentwatch/rules";

impl PolicySource {
    pub fn from_args(paths: &[PathBuf]) -> PolicySource {
        if !paths.is_empty() {
            PolicySource::Paths(paths.to_vec())
        } else if std::path::Path::new(DEFAULT_RULES_DIR).is_dir() {
            PolicySource::Paths(vec![DEFAULT_RULES_DIR.into()])
        } else {
            PolicySource::Embedded
        }
    }

    pub fn describe(&self) -> String {
        match self {
            PolicySource::Paths(p) => p
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            PolicySource::Embedded => "<built-in default policy>".into(),
        }
    }

    /// Read and compile the whole set.
    pub fn compile(&self) -> Result<rules::Policy> {
        self.compile_with(&[]).map(|(p, _)| p)
    }

    fn sources(&self) -> Result<Vec<rules::Source>> {
        Ok(match self {
            PolicySource::Paths(p) => rules::fs::load_sources(p).map_err(|e| anyhow!(e))?,
            PolicySource::Embedded => rules::default_sources(),
        })
    }

    /// Read and compile the whole set with `extra` sources (the daemon's generated ones)
    /// appended; also the names of the files read.
    pub fn compile_with(&self, extra: &[rules::Source]) -> Result<(rules::Policy, Vec<String>)> {
        let mut sources = self.sources()?;
        let names = sources.iter().map(|s| s.name.clone()).collect();
        sources.extend(extra.iter().cloned());
        let p = rules::Policy::compile(&sources).map_err(|e| anyhow!("{e}"))?;
        Ok((p, names))
    }

    /// Fingerprint of what the policy is read from: SHA-256 over every source's name, mode
    /// and content (or the read error). Content, not modification times: a file replaced by
    /// one with an older mtime (`cp -p`, `touch -d`) is a change too.
    fn stamp(&self) -> Option<[u8; 32]> {
        use sha2::Digest as _;
        let PolicySource::Paths(_) = self else {
            return None;
        };
        let mut h = sha2::Sha256::new();
        match self.sources() {
            Ok(sources) => {
                for s in sources {
                    h.update((s.name.len() as u64).to_le_bytes());
                    h.update(s.name.as_bytes());
                    h.update(s.mode.to_le_bytes());
                    h.update([u8::from(s.regular_file)]);
                    h.update((s.bytes.len() as u64).to_le_bytes());
                    h.update(&s.bytes);
                }
            }
            Err(e) => h.update(format!("error: {e:#}").as_bytes()),
        }
        Some(h.finalize().into())
    }
}

/// A reload that succeeded: the policy to swap in, and the alert naming what it dropped.
pub struct Reloaded {
    pub policy: Arc<rules::Policy>,
    pub dropped: Option<Alert>,
}

/// Reload bookkeeping: current generation, hash, last error, and the file watch.
pub struct PolicyState {
    pub source: PolicySource,
    pub generation: u64,
    pub hash: String,
    pub rules: usize,
    pub last_error: Option<String>,
    /// Rules changed by `[[override]]`s.
    pub overridden: usize,
    /// Sources the daemon adds to every compile (its real paths as `monitor_paths`).
    extra: Vec<rules::Source>,
    /// The files and rule ids of the running policy: a reload that loses some is alerted.
    files: Vec<String>,
    rule_ids: Vec<String>,
    stamp: Option<[u8; 32]>,
    last_check: Instant,
    /// A change seen on disk; reload once files have been quiet for a moment (a half-written
    /// file or a burst of saves becomes one reload).
    pending_since: Option<Instant>,
}

impl PolicyState {
    pub fn new(source: PolicySource, policy: &rules::Policy) -> PolicyState {
        PolicyState {
            stamp: source.stamp(),
            files: source
                .sources()
                .map(|v| v.into_iter().map(|s| s.name).collect())
                .unwrap_or_default(),
            rule_ids: policy.rules().iter().map(|r| r.id.clone()).collect(),
            extra: Vec::new(),
            source,
            generation: 1,
            hash: policy.hash(),
            rules: policy.len(),
            overridden: overridden(policy),
            last_error: None,
            last_check: Instant::now(),
            pending_since: None,
        }
    }

    /// Add `extra` sources to every reload (the ones the running policy was compiled with).
    pub fn with_extra(mut self, extra: Vec<rules::Source>) -> PolicyState {
        self.extra = extra;
        self
    }

    /// Whether the files changed and have been quiet for 300 ms (checked at most every 500 ms).
    pub fn changed_on_disk(&mut self) -> bool {
        if let Some(since) = self.pending_since {
            if since.elapsed() >= Duration::from_millis(300) {
                let now = self.source.stamp();
                self.pending_since = None;
                self.stamp = now;
                return true;
            }
            return false;
        }
        if self.last_check.elapsed() < Duration::from_millis(500) {
            return false;
        }
        self.last_check = Instant::now();
        let now = self.source.stamp();
        if now != self.stamp {
            self.pending_since = Some(Instant::now());
        }
        false
    }

    /// Try a reload: `Ok(policy, alert)` to swap in (with a `monitor.rules_dropped` alert when
    /// rules or rule files are gone), `Err(alert)` when rejected.
    pub fn reload(&mut self, host: &str) -> Result<Reloaded, Box<Alert>> {
        match self.source.compile_with(&self.extra) {
            Ok((p, files)) => {
                self.generation += 1;
                self.hash = p.hash();
                self.rules = p.len();
                self.overridden = overridden(&p);
                self.last_error = None;
                tracing::info!(generation = self.generation, hash = %self.hash, "policy reloaded");
                let ids: Vec<String> = p.rules().iter().map(|r| r.id.clone()).collect();
                let gone: Vec<String> = self
                    .files
                    .iter()
                    .filter(|f| !files.contains(f))
                    .map(|f| format!("`{f}`"))
                    .collect();
                let dropped = crate::protect::rules_dropped_alert(
                    &self.rule_ids,
                    &ids,
                    &gone,
                    host,
                    Timestamp::now(),
                );
                if dropped.is_some() {
                    tracing::warn!(
                        generation = self.generation,
                        "policy reload dropped rules or files"
                    );
                }
                self.rule_ids = ids;
                self.files = files;
                Ok(Reloaded {
                    policy: Arc::new(p),
                    dropped,
                })
            }
            Err(e) => {
                let msg = format!("{e:#}");
                self.last_error = Some(msg.clone());
                tracing::warn!(error = %msg, "policy reload rejected; keeping the running policy");
                let now = Timestamp::now();
                Err(Box::new(Alert {
                    id: format!("policy-reload-{}", now.0),
                    time: now,
                    host: host.to_owned(),
                    rule: "policy.reload_rejected".into(),
                    severity: Severity::High,
                    summary: BStr::from(format!(
                        "policy reload rejected, generation {} ({}) still running: {msg}",
                        self.generation, self.hash
                    )),
                    tags: vec!["agentwatch".into(), "policy".into()],
                    count: 1,
                    first_time: now,
                    last_time: now,
                    ..Default::default()
                }))
            }
        }
    }

    pub fn status(&self) -> agent_api::PolicyStatus {
        agent_api::PolicyStatus {
            source: self.source.describe(),
            generation: self.generation,
            hash: self.hash.clone(),
            rules: self.rules as u64,
            last_error: self.last_error.clone(),
            overridden: self.overridden as u64,
        }
    }
}

/// How many rules `[[override]]`s changed.
fn overridden(p: &rules::Policy) -> usize {
    p.rules().iter().filter(|r| !r.overrides.is_empty()).count()
}
