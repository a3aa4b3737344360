//! The egress programs in the kernel: loads the cgroup `sock_addr` programs (`connect4`,
//! `connect6`, `sendmsg4`, `sendmsg6`), attaches them to the cgroup v2 root found in
//! `/proc/self/mountinfo`, and owns the maps the daemon fills from `[[egress]]`.
//!
//! Its own module beside `loader` (which calls [`EgressMaps::load`] before it records the
//! object's ids) so that the egress part of the loader stays in one place. The programs are
//! always loaded (every program of the object is), but attached only when the config has an
//! `[[egress]]` table and `[response]` is enabled: without a policy there is nothing to enforce
//! and no cost on any connect. A config reload that brings the first table attaches them then
//! ([`EgressMaps::attach`]); one that removes every table empties the maps and leaves them
//! attached (every connect of a session is then allowed at the first lookup).
//!
//! With pinning (`loader::pin`) the links are pinned under the program's name, so the deny keeps
//! holding while no daemon runs, and the maps the daemon wrote are compared with its copy on
//! every integrity check ([`EgressMaps::check`]): an entry deleted or added behind its back is
//! put back or removed and reported.

use std::path::PathBuf;

use agent_common::{
    DnsAllowKey, EGRESS_STAT_DENIED, EGRESS_STAT_DRY_RUN, EGRESS_STAT_LOST, EgressKey,
    MAP_EGRESS_AGENTS, MAP_EGRESS_ALLOW, MAP_EGRESS_DNS, MAP_EGRESS_STATS,
};
use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf,
    maps::{HashMap, MapData, PerCpuArray, lpm_trie::Key, lpm_trie::LpmTrie},
    programs::{CgroupAttachMode, CgroupSockAddr, links::FdLink},
};

/// Pins a link under a name (`loader::pin::PinDir::pin_link`), passed in so that this module
/// does not import the loader that imports it.
pub type PinLink<'a> = &'a dyn Fn(&str, FdLink) -> Result<()>;

/// One egress map entry found not as the daemon left it: (map, what, repaired).
pub type EgressRepair = (&'static str, String, bool);

/// The programs, with the hook each is attached to (for `status` and logs).
pub const PROGRAMS: &[(&str, &str)] = &[
    ("egress_connect4", "cgroup/connect4"),
    ("egress_connect6", "cgroup/connect6"),
    ("egress_sendmsg4", "cgroup/sendmsg4"),
    ("egress_sendmsg6", "cgroup/sendmsg6"),
];

/// The egress maps and where the programs are attached.
pub struct EgressMaps {
    agents: HashMap<MapData, u32, u32>,
    allow: LpmTrie<MapData, EgressKey, u8>,
    stats: PerCpuArray<MapData, u64>,
    /// Destinations of the sessions' own DNS answers (an LRU hash: key, expiry in boot ns).
    dns: HashMap<MapData, DnsAllowKey, u64>,
    /// The cgroup v2 root the programs are attached to; `None`: not attached.
    pub attached: Option<PathBuf>,
    /// What the daemon wrote last.
    agents_now: Vec<(u32, u32)>,
    allow_now: Vec<(u32, EgressKey)>,
    /// Whether [`EgressMaps::set`] ran: before it, the maps hold an earlier daemon's entries
    /// (adopted pins) and are not checked.
    written: bool,
}

/// Counters of the egress programs: denied, dry-run misses, records lost.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EgressStats {
    pub denied: u64,
    pub dry_run: u64,
    pub lost: u64,
}

impl EgressMaps {
    /// Load the programs and, when `attach`, attach them to the cgroup v2 root, each link pinned
    /// by `pin` under the program's name when given (see [`EgressMaps::attach`]).
    pub fn load(
        ebpf: &mut Ebpf,
        attach: bool,
        pin: Option<PinLink<'_>>,
    ) -> Result<(EgressMaps, Vec<String>)> {
        for (name, hook) in PROGRAMS {
            let p: &mut CgroupSockAddr = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("program `{name}` missing from the object"))?
                .try_into()?;
            p.load()
                .with_context(|| format!("the kernel refused `{hook}` program `{name}`"))?;
        }
        let agents = HashMap::try_from(
            ebpf.take_map(MAP_EGRESS_AGENTS)
                .ok_or_else(|| anyhow!("no map `{MAP_EGRESS_AGENTS}`"))?,
        )?;
        let allow = LpmTrie::try_from(
            ebpf.take_map(MAP_EGRESS_ALLOW)
                .ok_or_else(|| anyhow!("no map `{MAP_EGRESS_ALLOW}`"))?,
        )?;
        let stats = PerCpuArray::try_from(
            ebpf.take_map(MAP_EGRESS_STATS)
                .ok_or_else(|| anyhow!("no map `{MAP_EGRESS_STATS}`"))?,
        )?;
        let dns = HashMap::try_from(
            ebpf.take_map(MAP_EGRESS_DNS)
                .ok_or_else(|| anyhow!("no map `{MAP_EGRESS_DNS}`"))?,
        )?;
        // Adopted maps hold the earlier daemon's entries: the first `set` replaces them.
        let agents_now: Vec<(u32, u32)> = agents.iter().filter_map(|e| e.ok()).collect();
        let allow_now: Vec<(u32, EgressKey)> = allow
            .keys()
            .filter_map(|k| k.ok())
            .map(|k: Key<EgressKey>| (k.prefix_len(), k.data()))
            .collect();
        let mut maps = EgressMaps {
            agents,
            allow,
            stats,
            dns,
            attached: None,
            agents_now,
            allow_now,
            written: false,
        };
        let attached = if attach {
            maps.attach(ebpf, pin)?
        } else {
            Vec::new()
        };
        Ok((maps, attached))
    }

    /// Attach the loaded programs to the cgroup v2 root (at start, or when a config reload
    /// brings the first `[[egress]]` table); the hooks attached. Already attached: nothing. A
    /// failed attach is logged and leaves egress unenforced there (the sensor still runs).
    /// A failed pin is an error (the deny would not outlive the daemon, which is what pinning
    /// promises).
    pub fn attach(&mut self, ebpf: &mut Ebpf, pin: Option<PinLink<'_>>) -> Result<Vec<String>> {
        if self.attached.is_some() {
            return Ok(Vec::new());
        }
        let Some(root) = crate::response::cgroup2_mount() else {
            tracing::error!(
                "no cgroup2 mount in /proc/self/mountinfo: `[[egress]]` is not enforced"
            );
            return Ok(Vec::new());
        };
        let dir = match std::fs::File::open(&root) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(dir = %root.display(), error = %e, "cannot open the cgroup2 root: `[[egress]]` is not enforced");
                return Ok(Vec::new());
            }
        };
        let mut attached = Vec::new();
        for (name, hook) in PROGRAMS {
            let p: &mut CgroupSockAddr = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("program `{name}` missing from the object"))?
                .try_into()?;
            // A bpf_link (what aya creates on this kernel) coexists with every other
            // program on the cgroup; the kernel refuses multi-attach flags on links.
            match p.attach(&dir, CgroupAttachMode::Single) {
                Ok(id) => {
                    if let Some(pin) = pin {
                        let link: FdLink = p
                            .take_link(id)?
                            .try_into()
                            .with_context(|| format!("`{name}` is not attached by a bpf link"))?;
                        pin(name, link)?;
                    }
                    attached.push(hook.to_string())
                }
                Err(e) => {
                    tracing::error!(hook, error = ?e, "attaching an egress program failed: `[[egress]]` is not enforced there")
                }
            }
        }
        if !attached.is_empty() {
            self.attached = Some(root);
        }
        Ok(attached)
    }

    /// Make the maps hold exactly `agents` (agent id → policy number | `EGRESS_ENFORCE`) and
    /// `allow` (prefix bits, key). New allow entries go in before the agents that use them, and
    /// stale ones leave after, so no connect is denied for a moment by a refresh. Entries are
    /// written again even when unchanged, which undoes an edit made behind the daemon's back.
    pub fn set(&mut self, agents: &[(u32, u32)], allow: &[(u32, EgressKey)]) -> Result<()> {
        for (bits, k) in allow {
            self.allow
                .insert(&Key::new(*bits, *k), 1, 0)
                .with_context(|| format!("cannot fill the `{MAP_EGRESS_ALLOW}` map"))?;
        }
        for (a, v) in agents {
            self.agents
                .insert(*a, *v, 0)
                .with_context(|| format!("cannot fill the `{MAP_EGRESS_AGENTS}` map"))?;
        }
        for (a, _) in &self.agents_now {
            if !agents.iter().any(|(b, _)| b == a) {
                let _ = self.agents.remove(a);
            }
        }
        for old in &self.allow_now {
            if !allow.contains(old) {
                let _ = self.allow.remove(&Key::new(old.0, old.1));
            }
        }
        self.agents_now = agents.to_vec();
        self.allow_now = allow.to_vec();
        self.written = true;
        Ok(())
    }

    /// Compare `EGRESS_AGENTS` and `EGRESS_ALLOW` with what [`EgressMaps::set`] wrote last: put
    /// back what was removed or changed, remove what was added, and say what was found (nothing
    /// before the first `set`).
    pub fn check(&mut self) -> Vec<EgressRepair> {
        let mut out = Vec::new();
        if !self.written {
            return out;
        }
        for (a, v) in &self.agents_now {
            let what = match self.agents.get(a, 0) {
                Ok(have) if have == *v => continue,
                Ok(have) => format!("entry of agent id `{a}` changed to `{have:#x}`"),
                Err(_) => format!("entry of agent id `{a}` missing"),
            };
            let repaired = self.agents.insert(*a, *v, 0).is_ok();
            out.push((MAP_EGRESS_AGENTS, what, repaired));
        }
        let extra: Vec<u32> = self
            .agents
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| !self.agents_now.iter().any(|(a, _)| a == k))
            .take(256)
            .collect();
        for a in extra {
            let repaired = self.agents.remove(&a).is_ok();
            out.push((
                MAP_EGRESS_AGENTS,
                format!("entry of agent id `{a}` added"),
                repaired,
            ));
        }
        let shown = |(bits, k): &(u32, EgressKey)| {
            let port = u16::from_be_bytes(k.port);
            let policy = u32::from_be_bytes(k.policy);
            let prefix = bits.saturating_sub(agent_common::EGRESS_KEY_FIXED_BITS);
            format!(
                "policy {policy} {}/{prefix} port {port}",
                crate::egress::shown_addr(k.addr)
            )
        };
        for e in &self.allow_now {
            let key = Key::new(e.0, e.1);
            if self.allow.get(&key, 0).is_ok() {
                continue;
            }
            let repaired = self.allow.insert(&key, 1, 0).is_ok();
            out.push((
                MAP_EGRESS_ALLOW,
                format!("entry `{}` missing", shown(e)),
                repaired,
            ));
        }
        let extra: Vec<(u32, EgressKey)> = self
            .allow
            .keys()
            .filter_map(|k| k.ok())
            .map(|k: Key<EgressKey>| (k.prefix_len(), k.data()))
            .filter(|e| !self.allow_now.contains(e))
            .take(256)
            .collect();
        for e in extra {
            let repaired = self.allow.remove(&Key::new(e.0, e.1)).is_ok();
            out.push((
                MAP_EGRESS_ALLOW,
                format!("entry `{}` added", shown(&e)),
                repaired,
            ));
        }
        out
    }

    /// Let session `key.session_id` reach `key.addr` on `key.port` until `expires_ns`
    /// (`CLOCK_BOOTTIME`): its own DNS answer named the address for an allow-listed host.
    pub fn allow_answer(&mut self, key: DnsAllowKey, expires_ns: u64) -> Result<()> {
        self.dns
            .insert(key, expires_ns, 0)
            .with_context(|| format!("cannot fill the `{MAP_EGRESS_DNS}` map"))
    }

    /// The programs' counters, summed over CPUs.
    pub fn stats(&self) -> EgressStats {
        let sum = |i: u32| {
            self.stats
                .get(&i, 0)
                .map(|v| v.iter().sum::<u64>())
                .unwrap_or(0)
        };
        EgressStats {
            denied: sum(EGRESS_STAT_DENIED),
            dry_run: sum(EGRESS_STAT_DRY_RUN),
            lost: sum(EGRESS_STAT_LOST),
        }
    }
}
