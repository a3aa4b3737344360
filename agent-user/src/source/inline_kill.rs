//! Inline kills: rules with `action = "kill"` and `inline = true` are carried out by the kernel.
//!
//! The daemon resolves each enforcing inline rule's paths and directory prefixes to
//! `(dev, inode)` and fills the sensor's `KILL_OPEN` map; the open probe SIGKILLs a session
//! process that opens one of those files before the open returns, and marks the record
//! (`OPEN_KILLED`). Here the marked record becomes a `response.action` event (`kill`, by
//! `rule:ID`, `done`, note `in kernel`), and the rule's alert is not acted on a second time.
//! Dry-run rules and a disabled `[response]` put nothing in the kernel: the alert path records
//! them as before. Files created after a sync are picked up by the next one (every
//! [`RESYNC`]); until then the user-space kill after the alert still applies. Kills of one
//! session by one rule are rate-limited like egress misses (`repeats`): the first is stored as
//! its event and a `response.inline_kill` alert, the rest of the window only counted into it.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use agent_common::{KILL_DIR, KILL_FILE};

use super::SourceLoop;

/// How often the paths are resolved again (files created or replaced since).
pub const RESYNC: Duration = Duration::from_secs(5);

/// At most this many files and directories per sync (the map holds 4096).
const MAX_ENTRIES: usize = 4000;

#[derive(Default)]
pub struct InlineKills {
    /// When the map was last filled, and for which policy.
    synced: Option<(Instant, String)>,
    /// `(st_dev, inode)` → the rule that protects the file (or, for a directory, its files).
    owners: HashMap<(u64, u64), String>,
    /// Processes the kernel killed, with the rule, until that rule's alert comes.
    killed: Vec<(u32, String)>,
    /// Kills per (session, rule) folded into their `response.inline_kill` alert.
    repeats: super::repeats::Repeats,
}

/// The `(st_dev, inode, KILL_*)` entries of one rule's targets, bounded by `room`.
fn resolve(t: &rules::InlineTargets, room: usize, out: &mut Vec<(u64, u64, u32)>) {
    let start = out.len();
    for p in &t.paths {
        match std::fs::metadata(p) {
            Ok(md) => out.push((md.dev(), md.ino(), KILL_FILE)),
            Err(e) => tracing::debug!(path = %p, error = %e, "inline kill path not resolved"),
        }
    }
    let mut stack: Vec<std::path::PathBuf> = t.prefixes.iter().map(Into::into).collect();
    while let Some(dir) = stack.pop() {
        if out.len() - start >= room {
            tracing::warn!(dir = %dir.display(), "inline kill: too many files below the prefixes; the rest are left to the alert path");
            break;
        }
        let Ok(md) = std::fs::metadata(&dir) else {
            continue;
        };
        if !md.is_dir() {
            continue;
        }
        out.push((md.dev(), md.ino(), KILL_DIR));
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                stack.push(e.path());
            } else {
                out.push((md.dev(), md.ino(), KILL_FILE));
            }
        }
    }
}

impl SourceLoop {
    /// Fill `KILL_OPEN` from the running policy when it changed or [`RESYNC`] passed.
    pub(super) fn sync_inline_kills(&mut self) {
        let hash = self.pipeline.policy_hash();
        if self
            .inline
            .synced
            .as_ref()
            .is_some_and(|(at, h)| *h == hash && at.elapsed() < RESYNC)
        {
            return;
        }
        let cfg = &self.responder.cfg;
        let mut entries = Vec::new();
        let mut owners = HashMap::new();
        if cfg.enabled {
            for (rule, r) in self.pipeline.rule_responses() {
                let Some(t) = &r.inline else { continue };
                if r.dry_run.unwrap_or(cfg.default_dry_run) {
                    continue;
                }
                let from = entries.len();
                resolve(t, MAX_ENTRIES.saturating_sub(from), &mut entries);
                for &(dev, ino, _) in &entries[from..] {
                    owners.entry((dev, ino)).or_insert_with(|| rule.clone());
                }
            }
        }
        if let Err(e) = self.sensor.set_kill_open(&entries) {
            tracing::error!(error = %format!("{e:#}"), "inline kill rules are not enforced in the kernel");
        }
        self.inline.owners = owners;
        self.inline.synced = Some((Instant::now(), hash));
    }

    /// The rule whose inline kill fired on an open of `(dev, ino)` at `path`.
    fn inline_owner(&self, dev: u64, ino: u64, path: &[u8]) -> String {
        use std::os::unix::ffi::OsStrExt as _;
        if let Some(r) = self.inline.owners.get(&(dev, ino)) {
            return r.clone();
        }
        Path::new(std::ffi::OsStr::from_bytes(path))
            .parent()
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|md| self.inline.owners.get(&(md.dev(), md.ino())))
            .cloned()
            .unwrap_or_else(|| "unknown".into())
    }

    /// Before the open's events: remember that the kernel killed `tgid` (so the rule's alert is
    /// not acted on again); returns the rule.
    pub(super) fn inline_killed_before(
        &mut self,
        tgid: u32,
        dev: u64,
        ino: u64,
        path: &[u8],
    ) -> String {
        let rule = self.inline_owner(dev, ino, path);
        self.inline.killed.push((tgid, rule.clone()));
        if self.inline.killed.len() > 1024 {
            self.inline.killed.remove(0);
        }
        rule
    }

    /// After the open's events: the `response.action` event of the kernel's kill.
    pub(super) fn inline_killed_after(&mut self, sid: u64, tgid: u32, rule: &str) {
        let session = agent_model::session_id_string(sid);
        let key = format!("kill:{sid:x}:{rule}");
        if !self
            .inline
            .repeats
            .seen(&key, agent_model::Timestamp::now())
        {
            // Counted into the group's alert; its close logs the total (a flood of kills is
            // not a flood of log lines either).
            return;
        }
        tracing::warn!(%session, action = "kill", mode = "enforce", by = %format!("rule:{rule}"), result = "done", pid = tgid, "response action in kernel");
        let r = agent_model::Response {
            action: "kill".into(),
            mode: "enforce".into(),
            by: format!("rule:{rule}"),
            result: "done".into(),
            note: "in kernel".into(),
            processes: Some(1),
        };
        let ev = self.tracker.response_event(sid, tgid, r);
        let alert = super::repeats::first_alert(
            &ev,
            "response.inline_kill",
            agent_model::Severity::High,
            format!("a process of session {session} killed in the kernel by rule `{rule}`"),
        );
        self.emit(ev);
        for a in self.inline.repeats.open(key, alert) {
            self.pipeline.alert(a);
        }
    }

    /// Write again the `response.inline_kill` alerts whose window closed with repeats (`all`:
    /// every open one, at a stop).
    pub(super) fn close_inline_repeats(&mut self, all: bool) {
        for a in self.inline.repeats.close(all) {
            tracing::warn!(rule = %a.rule, count = a.count, summary = %a.summary, "repeated response actions in kernel");
            self.pipeline.alert(a);
        }
    }

    /// Whether the kernel already killed `pid` for `rule` (consumed once).
    pub(super) fn inline_already_killed(&mut self, pid: u32, rule: &str) -> bool {
        let k = &mut self.inline.killed;
        match k.iter().position(|(p, r)| *p == pid && r == rule) {
            Some(i) => {
                k.remove(i);
                true
            }
            None => false,
        }
    }
}
