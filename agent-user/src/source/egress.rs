//! Egress policy in the sensor loop: fills the kernel's egress maps from `[[egress]]` and turns
//! the programs' records into `response.action` events.
//!
//! Each agent id (config agents, then names given to `agentwatch run --agent`) gets the first
//! `[[egress]]` table that names it; its allow-list (addresses, blocks, ports, and the current
//! answers of the [`Resolver`] for host names) goes into the trie. The maps are written again
//! when an answer or the agent list changes and every [`RESYNC`]. A record of a miss becomes a
//! `response.action` event: action `deny`, mode `enforce` (the process got `EPERM`) or
//! `dry_run` (it went ahead), by `egress:NAME`, with the destination in `net.*` and the note,
//! and an `egress.denied` alert. Repeats of one miss (same session, policy, destination,
//! protocol, verdict; any process) within `repeats::WINDOW` are not stored: they are counted
//! into that alert, written again with the total `count` when the window closes.
//!
//! On SIGHUP the config file is read again and its `[[egress]]` tables replace the running ones
//! (`reload_egress`): the programs are attached if they were not, and the maps are rewritten or
//! emptied at once; a config that does not parse keeps the running tables and raises a
//! `config.reload_rejected` alert. Only `[[egress]]` (with the `[response] default_mode` it
//! falls back on) is taken from a reload; the rest of the config needs a restart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::tracker::session::Agents as _;
use agent_common::{
    DnsAllowKey, EGRESS_ALLOW_MAX, EGRESS_DENIED, EGRESS_ENFORCE, EGRESS_HOOK_SENDMSG,
    EgressRecord, HEADER_LEN, RecordHeader, SockRecord, read_plain,
};

use super::SourceLoop;
use crate::egress::{Allow, Resolver, shown_addr, trie_entries};

/// How often the maps are written again without a change.
pub const RESYNC: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct EgressState {
    resolver: Option<Resolver>,
    /// When the maps were written, for which resolver generation and agent count.
    synced: Option<(Instant, u64, u32)>,
    /// Misses folded per (session, policy, address, port, protocol, verdict) into their
    /// `egress.denied` alert (`repeats`).
    repeats: super::repeats::Repeats,
    /// Repeats not stored.
    pub suppressed: u64,
    /// Records the programs could not send (ring full), as last reported.
    lost: u64,
    /// Agent id → index of its `[[egress]]` table, as last written to the kernel.
    policy_of: HashMap<u32, usize>,
    /// Addresses from sessions' DNS answers let through (`EGRESS_DNS` entries written).
    pub dns_allowed: u64,
    /// DNS answers not used: unparsable, or from a resolver the policy does not allow.
    pub dns_refused: u64,
    /// Misses read per policy number (1-based): (denied, dry run).
    per_policy: HashMap<u32, (u64, u64)>,
    /// Where the config is re-read from on SIGHUP (`None`: the default path or the built-in
    /// config), and the flag SIGHUP sets.
    reload: Option<(Option<PathBuf>, Arc<AtomicBool>)>,
    /// Accepted `[[egress]]` reloads.
    pub reloads: u64,
}

impl SourceLoop {
    /// Re-read the config at `path` (`None`: as at start) when `flag` is set (SIGHUP).
    pub fn reload_config_on(&mut self, path: Option<PathBuf>, flag: Arc<AtomicBool>) {
        self.egress.reload = Some((path, flag));
    }

    /// A pending SIGHUP: read the config again and swap in its `[[egress]]` tables.
    pub(super) fn reload_egress(&mut self) {
        let Some((path, flag)) = &self.egress.reload else {
            return;
        };
        if !flag.swap(false, Ordering::Relaxed) {
            return;
        }
        let path = path.clone();
        let new = match crate::config::Config::load(path.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("{e:#}");
                tracing::warn!(error = %msg, "config reload rejected; keeping the running `[[egress]]` tables");
                let now = agent_model::Timestamp::now();
                self.pipeline.alert(agent_model::Alert {
                    id: format!("config-reload-{}", now.0),
                    time: now,
                    host: self.tracker.host.clone(),
                    rule: "config.reload_rejected".into(),
                    severity: agent_model::Severity::High,
                    summary: agent_model::BStr::from(format!(
                        "config reload rejected, the running `[[egress]]` tables stay: {msg}"
                    )),
                    tags: vec!["agentwatch".into(), "config".into()],
                    count: 1,
                    first_time: now,
                    last_time: now,
                    ..Default::default()
                });
                return;
            }
        };
        let mut tables = new.egress;
        // The mode a table falls back on is the reloaded config's.
        for p in &mut tables {
            p.dry_run.get_or_insert(new.response.default_dry_run);
        }
        let cfg = &self.agents.cfg;
        let running: Vec<_> = cfg
            .egress
            .iter()
            .cloned()
            .map(|mut p| {
                p.dry_run.get_or_insert(cfg.response.default_dry_run);
                p
            })
            .collect();
        if running == tables {
            tracing::info!("config reloaded: `[[egress]]` unchanged");
            return;
        }
        if !cfg.response.enabled {
            tracing::warn!(
                "config reloaded: `[response] enabled = false` at start; `[[egress]]` stays off until a restart"
            );
            return;
        }
        self.agents.cfg.egress = tables;
        self.egress.resolver = None;
        self.egress.synced = None;
        self.egress.per_policy.clear();
        self.egress.reloads += 1;
        let n = self.agents.cfg.egress.len();
        if n > 0 && self.sensor.egress.attached.is_none() {
            match self.sensor.attach_egress() {
                Ok(h) if !h.is_empty() => tracing::info!(hooks = ?h, "egress programs attached"),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "egress programs not attached")
                }
            }
        }
        tracing::info!(tables = n, "config reloaded: `[[egress]]` replaced");
        self.sync_egress();
    }

    /// Fill the egress maps when something changed or [`RESYNC`] passed.
    pub(super) fn sync_egress(&mut self) {
        if self.sensor.egress.attached.is_none() {
            return;
        }
        self.report_egress_loss();
        let cfg = &self.agents.cfg;
        let resolver = self.egress.resolver.get_or_insert_with(|| {
            let mut names: Vec<String> = cfg
                .egress
                .iter()
                .flat_map(|p| p.allow.iter())
                .filter_map(|a| match a {
                    Allow::Host { name, .. } => Some(name.clone()),
                    Allow::Net { .. } => None,
                })
                .collect();
            names.sort();
            names.dedup();
            Resolver::start(names)
        });
        let (generation, resolved) = resolver.snapshot();
        let n_agents = (cfg.agents.len() + self.agents.extra.len()) as u32;
        if self
            .egress
            .synced
            .is_some_and(|(at, g, n)| g == generation && n == n_agents && at.elapsed() < RESYNC)
        {
            return;
        }
        let mut agents = Vec::new();
        let mut policy_of = HashMap::new();
        for id in 1..=n_agents {
            let name = self.agents.name(id);
            if let Some(i) = cfg.egress.iter().position(|p| p.applies_to(&name)) {
                let dry = cfg.egress[i]
                    .dry_run
                    .unwrap_or(cfg.response.default_dry_run);
                let v = (i as u32 + 1) | if dry { 0 } else { EGRESS_ENFORCE };
                agents.push((id, v));
                policy_of.insert(id, i);
            }
        }
        let mut allow = Vec::new();
        for (i, p) in cfg.egress.iter().enumerate() {
            trie_entries(i as u32 + 1, p, &resolved, &mut allow);
        }
        allow.sort_by(|a, b| {
            (a.0, a.1.policy, a.1.port, a.1.addr).cmp(&(b.0, b.1.policy, b.1.port, b.1.addr))
        });
        allow.dedup();
        if allow.len() > EGRESS_ALLOW_MAX as usize {
            tracing::error!(
                entries = allow.len(),
                max = EGRESS_ALLOW_MAX,
                "egress allow-lists are too long; the rest is not allowed"
            );
            allow.truncate(EGRESS_ALLOW_MAX as usize);
        }
        if let Err(e) = self.sensor.egress.set(&agents, &allow) {
            tracing::error!(error = %format!("{e:#}"), "egress maps not filled");
        }
        self.egress.synced = Some((Instant::now(), generation, n_agents));
        self.egress.policy_of = policy_of;
    }

    /// A `monitor.loss` event when the programs could not send some records (the verdicts
    /// themselves were applied; only their events are missing).
    fn report_egress_loss(&mut self) {
        let lost = self.sensor.egress.stats().lost;
        if lost > self.egress.lost {
            let n = lost - self.egress.lost;
            tracing::warn!(lost = n, "egress records lost");
            let ev = self.tracker.monitor_event(
                agent_model::Kind::MonitorLoss,
                agent_model::Monitor {
                    loss_kind: Some("response.action".into()),
                    loss_count: Some(n),
                    message: Some(format!(
                        "ring buffer full: {n} egress `response.action` records lost (the verdicts were applied)"
                    )),
                    ..Default::default()
                },
            );
            self.emit(ev);
        }
        self.egress.lost = lost;
    }

    /// A record of the egress programs: its `response.action` event.
    pub(super) fn on_egress_record(&mut self, raw: &[u8]) {
        let (Some(h), Some(b)) = (
            read_plain::<RecordHeader>(raw, 0),
            read_plain::<EgressRecord>(raw, HEADER_LEN),
        ) else {
            self.decode_errors += 1;
            return;
        };
        let c = self.egress.per_policy.entry(b.policy).or_default();
        if b.verdict == EGRESS_DENIED {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
        let key = format!(
            "egress:{:x}:{}:{:?}:{}:{}:{}",
            h.session_id, b.policy, b.daddr, b.dport, b.protocol, b.verdict
        );
        if !self
            .egress
            .repeats
            .seen(&key, agent_model::Timestamp::now())
        {
            self.egress.suppressed += 1;
            return;
        }
        let policy = self
            .agents
            .cfg
            .egress
            .get((b.policy as usize).wrapping_sub(1))
            .map_or_else(|| format!("egress#{}", b.policy), |p| p.name.clone());
        let dst = shown_addr(b.daddr);
        let proto = match b.protocol {
            6 => "tcp".to_owned(),
            17 => "udp".to_owned(),
            n => n.to_string(),
        };
        let what = if b.hook == EGRESS_HOOK_SENDMSG {
            "send"
        } else {
            "connect"
        };
        let enforce = b.verdict == EGRESS_DENIED;
        let (mode, result) = if enforce {
            ("enforce", "done")
        } else {
            ("dry_run", "dry_run")
        };
        let shown = match dst {
            std::net::IpAddr::V6(v6) => format!("[{v6}]:{}", b.dport),
            std::net::IpAddr::V4(v4) => format!("{v4}:{}", b.dport),
        };
        let note = format!(
            "{what} to {shown}/{proto} is not allowed by egress policy `{policy}`{}",
            if enforce {
                ": EPERM"
            } else {
                ": allowed (dry run)"
            }
        );
        let session = agent_model::session_id_string(h.session_id);
        tracing::warn!(%session, action = "deny", mode, by = %format!("egress:{policy}"), dst = %shown, pid = h.tgid, "egress miss");
        let r = agent_model::Response {
            action: "deny".into(),
            mode: mode.into(),
            by: format!("egress:{policy}"),
            result: result.into(),
            note,
            processes: Some(1),
        };
        let mut ev = self.tracker.response_event(h.session_id, h.tgid, r);
        ev.net = Some(agent_model::Net {
            family: if dst.is_ipv4() { "ipv4" } else { "ipv6" }.into(),
            protocol: Some(proto.clone()),
            dst_ip: Some(dst),
            dst_port: Some(b.dport),
            ..Default::default()
        });
        let alert = super::repeats::first_alert(
            &ev,
            "egress.denied",
            if enforce {
                agent_model::Severity::Medium
            } else {
                agent_model::Severity::Low
            },
            format!(
                "{what} to {shown}/{proto} {} by egress policy `{policy}` in session {session}",
                if enforce {
                    "denied"
                } else {
                    "would be denied (dry run)"
                }
            ),
        );
        self.emit(ev);
        for a in self.egress.repeats.open(key, alert) {
            self.pipeline.alert(a);
        }
    }

    /// Write again the `egress.denied` alerts whose window closed with repeats (`all`: every
    /// open one, at a stop).
    pub(super) fn close_egress_repeats(&mut self, all: bool) {
        for a in self.egress.repeats.close(all) {
            tracing::warn!(rule = %a.rule, count = a.count, summary = %a.summary, "repeated egress misses");
            self.pipeline.alert(a);
        }
    }
}

impl SourceLoop {
    /// A DNS answer a session process received (`RECORD_DNS_ANSWER`): the addresses it gives for
    /// a host name the session's egress policy allows go into `EGRESS_DNS` for that session,
    /// until the answer's TTL (clamped to [`DNS_TTL_MIN`]..[`DNS_TTL_MAX`]) runs out. Answers
    /// count only from a resolver the policy itself allows on port 53 (an agent cannot vouch
    /// for a name by answering itself from an address it was not allowed to ask).
    pub(super) fn on_dns_answer(&mut self, raw: &[u8]) {
        if self.sensor.egress.attached.is_none() {
            return;
        }
        let start = HEADER_LEN + std::mem::size_of::<SockRecord>();
        let (Some(h), Some(b)) = (
            read_plain::<RecordHeader>(raw, 0),
            read_plain::<SockRecord>(raw, HEADER_LEN),
        ) else {
            self.decode_errors += 1;
            return;
        };
        let Some(payload) = raw.get(start..start.saturating_add(b.payload_len as usize)) else {
            self.decode_errors += 1;
            return;
        };
        let Some(&i) = self.egress.policy_of.get(&h.agent_id) else {
            return; // the agent's sessions are not restricted
        };
        let Some(policy) = self.agents.cfg.egress.get(i) else {
            return;
        };
        let resolver = if b.family == 2 {
            let mut a = [0u8; 16];
            a[10] = 0xff;
            a[11] = 0xff;
            a[12..].copy_from_slice(&b.daddr[..4]);
            a
        } else {
            b.daddr
        };
        if !policy.allows_net(resolver, 53) {
            self.egress.dns_refused += 1;
            return;
        }
        let answer = match crate::dnsanswer::parse(payload) {
            Ok(a) => a,
            Err(e) => {
                self.egress.dns_refused += 1;
                tracing::debug!(error = %e, pid = h.tgid, "dns answer not used");
                return;
            }
        };
        let ports: Vec<u16> = policy
            .allow
            .iter()
            .filter_map(|a| match a {
                Allow::Host { name, port } if *name == answer.name => Some(*port),
                _ => None,
            })
            .collect();
        if ports.is_empty() {
            return;
        }
        for (ip, ttl) in answer.addrs.iter().take(32) {
            let addr = match ip {
                std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                std::net::IpAddr::V6(v6) => v6.octets(),
            };
            let ttl = Duration::from_secs(u64::from(*ttl)).clamp(DNS_TTL_MIN, DNS_TTL_MAX);
            let expires = h.ktime_ns.saturating_add(ttl.as_nanos() as u64);
            for port in &ports {
                let key = DnsAllowKey {
                    session_id: h.session_id,
                    addr,
                    port: *port,
                    _pad: [0; 6],
                };
                match self.sensor.egress.allow_answer(key, expires) {
                    Ok(()) => self.egress.dns_allowed += 1,
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "dns answer not allowed")
                    }
                }
            }
        }
    }
}

/// Shortest time an address from a session's DNS answer stays allowed (a TTL of 0 would expire
/// before the connect that follows the lookup).
pub const DNS_TTL_MIN: Duration = Duration::from_secs(60);
/// Longest time an address from a session's DNS answer stays allowed, whatever its TTL.
pub const DNS_TTL_MAX: Duration = Duration::from_secs(3600);

impl SourceLoop {
    /// The egress part of `status` (`None` when the programs are not attached).
    pub(super) fn egress_status(&self) -> Option<agent_api::EgressStatus> {
        let root = self.sensor.egress.attached.as_ref()?;
        let k = self.sensor.egress.stats();
        let cfg = &self.agents.cfg;
        let policies = cfg
            .egress
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (denied, dry_run) = self
                    .egress
                    .per_policy
                    .get(&(i as u32 + 1))
                    .copied()
                    .unwrap_or_default();
                let dry = p.dry_run.unwrap_or(cfg.response.default_dry_run);
                agent_api::EgressPolicyStatus {
                    name: p.name.clone(),
                    mode: if dry { "dry_run" } else { "enforce" }.into(),
                    agents: p.agents.clone(),
                    denied,
                    dry_run,
                }
            })
            .collect();
        Some(agent_api::EgressStatus {
            hooks: crate::sockaddr::PROGRAMS
                .iter()
                .map(|(_, h)| format!("{h} ({})", root.display()))
                .collect(),
            denied: k.denied,
            dry_run: k.dry_run,
            lost: k.lost,
            suppressed: self.egress.suppressed,
            dns_allowed: self.egress.dns_allowed,
            dns_refused: self.egress.dns_refused,
            policies,
        })
    }
}
