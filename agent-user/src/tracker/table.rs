//! The process table: every process of a session, live or exited, keyed by (pid, start time).
//!
//! The start time tells a reused pid from the process that had it before. Exited processes stay
//! while their session lives, so that orphans reparented to init keep their ancestry; the table
//! is capped and drops exited processes first.

use std::collections::HashMap;

use agent_model::BStr;
use agent_model::decode::Header;

/// Cap on remembered processes (live and exited); the oldest exited ones go first.
const MAX_PROCS: usize = 200_000;
const MAX_ANCESTRY: usize = 32;

#[derive(Clone, Debug, Default)]
pub struct Proc {
    pub tgid: u32,
    pub start_ns: u64,
    pub ppid: u32,
    pub parent_start_ns: u64,
    pub exe: BStr,
    pub comm: BStr,
    pub args: Vec<BStr>,
    pub args_truncated: bool,
    pub args_len: Option<u32>,
    pub cwd: BStr,
    pub session: u64,
    pub exited: bool,
    /// Start time came from /proc (clock ticks), not from the kernel record.
    pub approx_start: bool,
    pub args_redacted: bool,
    /// The tool call this process works for (see `tracker::intent`).
    pub call: Option<super::intent::CallTag>,
}

/// Processes by (pid, start time), and the start time of the live process of each pid.
#[derive(Debug, Default)]
pub struct ProcTable {
    live: HashMap<u32, u64>,
    procs: HashMap<(u32, u64), Proc>,
}

impl ProcTable {
    /// Insert `p` as the live process of its pid, evicting exited processes when full.
    pub fn insert(&mut self, p: Proc) {
        if self.procs.len() >= MAX_PROCS {
            let old: Vec<_> = self
                .procs
                .iter()
                .filter(|(_, p)| p.exited)
                .map(|(k, _)| *k)
                .take(MAX_PROCS / 10)
                .collect();
            for k in old {
                self.procs.remove(&k);
            }
        }
        self.live.insert(p.tgid, p.start_ns);
        self.procs.insert((p.tgid, p.start_ns), p);
    }

    /// The process (pid, start time), live or exited.
    pub fn get(&self, key: &(u32, u64)) -> Option<&Proc> {
        self.procs.get(key)
    }

    /// Whether the process (tgid, start time) has not exited.
    pub fn is_live(&self, tgid: u32, start_ns: u64) -> bool {
        self.live.get(&tgid) == Some(&start_ns)
    }

    /// Every live process that belongs to a session.
    pub fn live_in_sessions(&self) -> impl Iterator<Item = &Proc> {
        self.live
            .iter()
            .filter_map(|(t, s)| self.procs.get(&(*t, *s)))
            .filter(|p| p.session != 0 && !p.exited)
    }

    /// The live process of `tgid`.
    pub fn by_tgid(&self, tgid: u32) -> Option<&Proc> {
        let start = self.live.get(&tgid)?;
        self.procs.get(&(tgid, *start))
    }

    /// pid reuse: the live process of `tgid`, when it started at another time than `start_ns`,
    /// is gone.
    pub fn retire_reused(&mut self, tgid: u32, start_ns: u64) {
        if let Some(old) = self.live.get(&tgid).copied()
            && old != start_ns
            && let Some(o) = self.procs.get_mut(&(tgid, old))
        {
            o.exited = true;
        }
    }

    /// The process a record comes from, if the table knows it.
    pub fn current(&self, h: &Header) -> Option<&Proc> {
        let start = self.live.get(&h.tgid)?;
        let p = self.procs.get(&(h.tgid, *start))?;
        // Seeded entries carry a tick-precision start time.
        (p.start_ns == h.start_ns || p.approx_start).then_some(p)
    }

    pub fn current_mut(&mut self, h: &Header) -> Option<&mut Proc> {
        let start = *self.live.get(&h.tgid)?;
        if start != h.start_ns {
            let p = self.procs.get(&(h.tgid, start))?;
            if !p.approx_start {
                return None;
            }
            // Re-key a seeded entry with the kernel's precise start time.
            let mut p = self.procs.remove(&(h.tgid, start))?;
            p.start_ns = h.start_ns;
            p.approx_start = false;
            self.procs.insert((h.tgid, h.start_ns), p);
            self.live.insert(h.tgid, h.start_ns);
        }
        self.procs.get_mut(&(h.tgid, h.start_ns))
    }

    /// The process of a record has exited: mark it, and its pid has no live process.
    pub fn exited(&mut self, h: &Header) {
        if let Some(p) = self.current_mut(h) {
            p.exited = true;
        }
        self.live.remove(&h.tgid);
    }

    /// A session ended: forget its exited processes.
    pub fn end_session(&mut self, id: u64) {
        self.procs.retain(|_, p| p.session != id || !p.exited);
    }

    pub fn parent_of(&self, p: &Proc) -> Option<&Proc> {
        if p.ppid == 0 || p.ppid == p.tgid {
            return None;
        }
        if p.parent_start_ns != 0
            && let Some(pp) = self.procs.get(&(p.ppid, p.parent_start_ns))
        {
            return Some(pp);
        }
        self.by_tgid(p.ppid)
    }

    /// The parent of `p` and the exe chain from it up to the session root (`root`), within
    /// `session`.
    pub fn ancestry(
        &self,
        p: &Proc,
        session: u64,
        root: Option<(u32, u64)>,
    ) -> (Option<&Proc>, Vec<BStr>) {
        let parent_proc = self.parent_of(p);
        let mut chain = Vec::new();
        let mut cur = parent_proc;
        while let Some(pp) = cur {
            if chain.len() >= MAX_ANCESTRY || pp.session != session {
                break;
            }
            chain.push(pp.exe.clone());
            if Some((pp.tgid, pp.start_ns)) == root {
                break;
            }
            cur = self.parent_of(pp);
        }
        (parent_proc, chain)
    }
}
