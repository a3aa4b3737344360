// Over 800 lines: the sensor thread owns the kernel maps, so every command that touches them (register, hook, respond, integrity, status) is served here; response and inline-kill helpers live in `source/`.
//! The sensor loop: one thread that drains the ring buffer, decodes and enriches records, polls
//! the loss counters, and serves commands that touch the kernel maps (registration, status).
//!
//! One thread owns the tracker and the maps, so there is no locking on the event path. The
//! kernel only wakes this thread when the ring is a quarter full; otherwise it polls every
//! `POLL_MS`, which keeps wake-ups far below one per event.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::ffi::OsStrExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use agent_api::{HookAnswer, LiveSession, RulesListing, Status};
use agent_common::{FLOW_EXIT, FLOW_UPDATE, FlowEntry, RecordKind, SessionInfo};
use agent_model::decode::decode;
use agent_model::{BStr, Event, Kind, Monitor, session_id_string};
use anyhow::{Result, anyhow};

mod adopt;
mod durable;
mod egress;
mod inline_kill;
mod repeats;
mod rule_actions;

use crate::capture::Capture;
use crate::config::Config;
use crate::integrity::{Finding, Integrity};
use crate::iopair::IoPairs;
use crate::loader::Sensor;
use crate::pipeline::Pipeline;
use crate::response::{Responder, Verb};
use crate::tracker::{Action, Agents, Proc, SystemClock, Tracker};

const POLL_MS: i32 = 20;
/// The wait between drains while read records wait for the store's fsync (see `durable`).
const ACK_POLL_MS: u64 = 5;

/// Requests from the API to the sensor thread.
pub enum Command {
    /// Put `pid` (the peer of a `run` connection) into a new session.
    Register {
        pid: u32,
        agent: String,
        reply: tokio::sync::oneshot::Sender<Result<String, String>>,
    },
    Status {
        reply: tokio::sync::oneshot::Sender<Status>,
    },
    Rules {
        reply: tokio::sync::oneshot::Sender<RulesListing>,
    },
    /// An agent's hook, reported by process `pid` (from `SO_PEERCRED`).
    Hook {
        pid: u32,
        payload: serde_json::Value,
        reply: tokio::sync::oneshot::Sender<Result<HookAnswer, String>>,
    },
    /// A manual response (`agentwatch session kill|freeze|thaw`), from a privileged caller.
    Respond {
        verb: Verb,
        session: String,
        note: String,
        /// `uid:N` of the caller.
        by: String,
        reply: tokio::sync::oneshot::Sender<Result<agent_api::Responded, String>>,
    },
}

/// Agent ids: config agents are 1..=N, names given to `agentwatch run --agent` follow.
pub struct AgentTable {
    cfg: Config,
    extra: Vec<String>,
    /// Where the table is kept for a daemon that adopts this one's pins (`agentids`).
    persist: Option<std::path::PathBuf>,
    /// Agent ids of an adopted sensor that this daemon numbers otherwise (old → new).
    remap: BTreeMap<u32, u32>,
}

impl AgentTable {
    fn id_for(&mut self, name: &str) -> u32 {
        if let Some(i) = self.cfg.agents.iter().position(|a| a.name == name) {
            return i as u32 + 1;
        }
        if let Some(i) = self.extra.iter().position(|a| a == name) {
            return (self.cfg.agents.len() + i) as u32 + 1;
        }
        self.extra.push(name.to_owned());
        self.save();
        (self.cfg.agents.len() + self.extra.len()) as u32
    }

    /// Every id and its name.
    fn all(&self) -> Vec<(u32, String)> {
        self.cfg
            .agents
            .iter()
            .map(|a| a.name.clone())
            .chain(self.extra.iter().cloned())
            .enumerate()
            .map(|(i, n)| (i as u32 + 1, n))
            .collect()
    }

    /// Write the table (`agentids`), if it is kept.
    fn save(&self) {
        if let Some(p) = &self.persist
            && let Err(e) = crate::agentids::save(p, &self.all())
        {
            tracing::error!(error = %format!("{e:#}"), "the agent id table is not saved: a daemon adopting this one's sessions will not know their agent names");
        }
    }

    /// Keep the table in `data_dir`; when `adopting`, first take the names of the ids the
    /// earlier daemon handed out, so that its sessions keep their agent names.
    fn restore(&mut self, data_dir: &std::path::Path, adopting: bool) {
        let p = crate::agentids::path(data_dir);
        if adopting {
            match crate::agentids::load(&p) {
                Ok(Some(table)) => {
                    for (old, name) in table {
                        let new = self.id_for(&name);
                        if new != old {
                            self.remap.insert(old, new);
                        }
                    }
                }
                Ok(None) => tracing::warn!(
                    path = %p.display(),
                    "no agent id table: adopted sessions of `agentwatch run --agent` keep ids, not names"
                ),
                Err(e) => tracing::error!(
                    error = %format!("{e:#}"),
                    "the agent id table is refused: adopted sessions of `agentwatch run --agent` keep ids, not names"
                ),
            }
        }
        self.persist = Some(p);
        self.save();
    }
}

impl Agents for AgentTable {
    fn name(&self, id: u32) -> String {
        let i = id as usize;
        if i >= 1 && i <= self.cfg.agents.len() {
            return self.cfg.agents[i - 1].name.clone();
        }
        self.extra
            .get(i.wrapping_sub(self.cfg.agents.len() + 1))
            .cloned()
            .unwrap_or_else(|| format!("agent-{id}"))
    }

    fn confirm_exe(&self, id: u32, exe: &str) -> bool {
        let i = id as usize;
        i >= 1 && i <= self.cfg.agents.len() && self.cfg.agents[i - 1].exe_matches(exe)
    }

    /// Whether agent `id` is configured `metadata_only`.
    fn metadata_only(&self, id: u32) -> bool {
        let i = id as usize;
        i >= 1 && self.cfg.agents.get(i - 1).is_some_and(|a| a.metadata_only)
    }
}

pub struct SourceLoop {
    sensor: Sensor,
    tracker: Tracker,
    agents: AgentTable,
    pipeline: Pipeline,
    commands: Receiver<Command>,
    stop: Arc<AtomicBool>,
    last_loss: BTreeMap<u32, u64>,
    started: Instant,
    decode_errors: u64,
    next_session: u64,
    /// What the last `net.flow` report of each socket said (key: the kernel's socket address).
    flows: std::collections::HashMap<u64, FlowSeen>,
    /// io_uring operations submitted and not yet completed.
    io_pending: IoPairs,
    /// Where drained records are copied when `AGENTWATCH_CAPTURE_RECORDS` is set.
    capture: Option<Capture>,
    /// Records copied out of the ring by `drain`, back to back, and where each ends (kept
    /// between drains so that a busy ring costs no allocation per record).
    drained: Vec<u8>,
    drained_ends: Vec<usize>,
    /// Checks of the kernel maps against the daemon's copy (`integrity`).
    integrity: Integrity,
    /// Session cgroups and response actions.
    responder: Responder,
    /// Per-rule rate limits of rule-driven actions.
    rate: rule_actions::RateLimits,
    /// Rules whose kill is done in the kernel (`KILL_OPEN`).
    inline: inline_kill::InlineKills,
    /// Egress policy maps and the records of their misses.
    egress: egress::EgressState,
    /// Ring positions waiting for the store's fsync, and the ids of re-read records.
    durable: durable::Durability,
    /// The ring position of each record in `drained`.
    drained_pos: Vec<u64>,
}

/// How long a submitted io_uring path operation waits for its completion record.
const IO_PENDING_TTL: Duration = Duration::from_secs(60);

struct FlowSeen {
    sent: u64,
    received: u64,
    reported_ns: u64,
}

/// CLOCK_BOOTTIME in ns, the clock of `bpf_ktime_get_boot_ns`.
fn boot_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn kind_name(id: u32) -> String {
    match RecordKind::try_from(id) {
        Ok(k) => Kind::from_id(k as u32).map_or_else(|| id.to_string(), |k| k.name().to_owned()),
        Err(_) => id.to_string(),
    }
}

/// Read a process from /proc (for registration and seeding).
pub fn proc_info(pid: u32) -> Option<(Proc, u32, String, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: split at the last ')'.
    let close = stat.rfind(')')?;
    let comm = stat.get(stat.find('(')? + 1..close)?.to_owned();
    let rest: Vec<&str> = stat[close + 2..].split(' ').collect();
    let ppid: u32 = rest.get(1)?.parse().ok()?;
    let start_ticks: u64 = rest.get(19)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let start_ns = start_ticks * (1_000_000_000 / hz);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| BStr(p.as_os_str().as_encoded_bytes().to_vec()))
        .unwrap_or_default();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))
        .map(|p| BStr(p.as_os_str().as_encoded_bytes().to_vec()))
        .unwrap_or_default();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut args: Vec<BStr> = cmdline.split(|b| *b == 0).map(BStr::from).collect();
    if args.last().is_some_and(|a| a.is_empty()) {
        args.pop();
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX);
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
        })
        .unwrap_or_default();
    Some((
        Proc {
            tgid: pid,
            start_ns,
            ppid,
            exe,
            comm: BStr::from(comm),
            args,
            cwd,
            approx_start: true,
            ..Default::default()
        },
        ppid,
        cgroup,
        uid,
    ))
}

impl SourceLoop {
    pub fn new(
        sensor: Sensor,
        cfg: Config,
        host: String,
        pipeline: Pipeline,
        commands: Receiver<Command>,
        stop: Arc<AtomicBool>,
    ) -> Result<SourceLoop> {
        let mut tracker = Tracker::new(host, Box::new(SystemClock));
        if let Ok(r) = crate::redact::Redactor::new(&cfg.redact_patterns) {
            tracker.set_redactor(r);
        }
        let responder = Responder::new(cfg.response.clone());
        let durable = durable::Durability::new(sensor.ring.map_id());
        let mut src = SourceLoop {
            durable,
            drained_pos: Vec::new(),
            responder,
            rate: Default::default(),
            inline: Default::default(),
            egress: Default::default(),
            sensor,
            tracker,
            agents: AgentTable {
                cfg,
                extra: vec![],
                persist: None,
                remap: BTreeMap::new(),
            },
            pipeline,
            commands,
            stop,
            last_loss: BTreeMap::new(),
            started: Instant::now(),
            decode_errors: 0,
            next_session: 0,
            flows: std::collections::HashMap::new(),
            io_pending: IoPairs::default(),
            capture: Capture::from_env()?,
            drained: Vec::new(),
            drained_ends: Vec::new(),
            integrity: Integrity::new(),
        };
        if src.sensor.adopted.is_some() {
            // Losses counted before this daemon are reported once, in `monitor.start`.
            src.last_loss = Sensor::counters(&src.sensor.loss);
        }
        src.arm_fail_closed()?;
        Ok(src)
    }

    /// Keep the agent id table in `data_dir` (see `agentids`); on adoption, read the earlier
    /// daemon's first. Call before `adopt`.
    pub fn keep_agent_ids(&mut self, data_dir: &std::path::Path) {
        let adopting = self.sensor.adopted.is_some();
        self.agents.restore(data_dir, adopting);
    }

    fn new_session_id(&mut self) -> u64 {
        self.next_session += 1;
        // User-space sessions have the top bit set; kernel-made ones never do.
        (1u64 << 63)
            | ((agent_model::Timestamp::now().0 as u64) << 8 & 0x7fff_ffff_ffff_ff00)
            | (self.next_session & 0xff)
    }

    /// Find already-running agent processes and their descendants in /proc.
    pub fn seed_from_proc(&mut self) {
        for _pass in 0..2 {
            let mut all: HashMap<u32, (Proc, u32, String, u32)> = HashMap::new();
            if let Ok(rd) = std::fs::read_dir("/proc") {
                for e in rd.flatten() {
                    if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
                        && pid != std::process::id()
                        && let Some(info) = proc_info(pid)
                    {
                        all.insert(pid, info);
                    }
                }
            }
            let matches = |p: &Proc, cgroup: &str, uid: u32| -> Option<u32> {
                self.agents
                    .cfg
                    .agents
                    .iter()
                    .position(|a| {
                        let comm = p.comm.to_str_lossy();
                        a.comm.iter().any(|c| *c == comm)
                            || a.exe_matches(&p.exe.to_str_lossy())
                            || a.uid.contains(&uid)
                            || a.cgroup.iter().any(|(_, g)| g.is_match(cgroup))
                    })
                    .map(|i| i as u32 + 1)
            };
            // Session of each process: walk up to the topmost matching ancestor.
            let mut assigned: Vec<(u32, u32, u32)> = Vec::new(); // (pid, root pid, agent)
            for (&pid, _) in all.iter() {
                let mut cur = pid;
                let mut root = None;
                for _ in 0..64 {
                    let Some((p, ppid, cg, uid)) = all.get(&cur) else {
                        break;
                    };
                    if let Some(a) = matches(p, cg, *uid) {
                        root = Some((cur, a));
                    }
                    if *ppid == 0 || *ppid == cur {
                        break;
                    }
                    cur = *ppid;
                }
                if let Some((r, a)) = root {
                    assigned.push((pid, r, a));
                }
            }
            assigned.sort_by_key(|(pid, root, _)| (*pid != *root, *pid));
            let mut session_of_root: HashMap<u32, u64> = HashMap::new();
            for (pid, root, agent) in assigned {
                if self.sensor.sessions.get(&pid, 0).is_ok() {
                    continue; // already tracked (second pass, or kernel picked it up)
                }
                let Some((p, ..)) = all.get(&pid).cloned() else {
                    continue;
                };
                let sid = match session_of_root.get(&root) {
                    Some(s) => *s,
                    None => {
                        let s = match self.sensor.sessions.get(&root, 0) {
                            Ok(info) => info.session_id,
                            Err(_) => self.new_session_id(),
                        };
                        session_of_root.insert(root, s);
                        s
                    }
                };
                let info = SessionInfo {
                    session_id: sid,
                    agent_id: agent,
                    flags: 0,
                };
                if self.sensor.add_to_session(pid, info).is_err() {
                    continue;
                }
                if pid == root && !self.tracker.sessions.contains_key(&sid) {
                    let name = self.agents.name(agent);
                    let mut ev = self.tracker.open_session(sid, &name, p);
                    ev.monitor = Some(Monitor {
                        message: Some("session found running at daemon start".into()),
                        ..Default::default()
                    });
                    self.emit(ev);
                } else {
                    self.tracker.adopt(Proc { session: sid, ..p });
                }
            }
        }
    }

    /// The `monitor.start` event of this daemon start, then the alerts raised while starting
    /// (store tamper evidence, store recovery), in that order.
    pub fn started(&mut self, message: String, alerts: Vec<agent_model::Alert>) {
        let (note, fields) = self.adoption_note().unzip();
        let ev = self.tracker.monitor_event(
            Kind::MonitorStart,
            Monitor {
                message: Some(message + note.as_deref().unwrap_or("")),
                ..fields.unwrap_or_default()
            },
        );
        self.emit(ev);
        for a in alerts {
            self.pipeline.alert(a);
        }
    }

    fn emit(&mut self, ev: Event) {
        self.pipeline.event(ev);
        self.respond_to_rules();
    }

    fn register(&mut self, pid: u32, agent: &str) -> Result<String, String> {
        let (p, ..) = proc_info(pid).ok_or_else(|| format!("pid `{pid}` vanished"))?;
        let agent_id = self.agents.id_for(agent);
        let sid = self.new_session_id();
        self.sensor
            .add_to_session(
                pid,
                SessionInfo {
                    session_id: sid,
                    agent_id,
                    flags: 0,
                },
            )
            .map_err(|e| format!("{e:#}"))?;
        // The caller waits for this answer before it execs the agent, so the agent starts in
        // its session's cgroup.
        if let Err(e) = self.responder.place(sid, &[pid]) {
            tracing::warn!(session = %session_id_string(sid), error = %e, "session runs without its own cgroup");
        }
        let ev = self.tracker.open_session(sid, agent, p);
        self.emit(ev);
        Ok(session_id_string(sid))
    }

    /// An agent's hook from process `pid`: record it in that process's session and answer with
    /// the policy's decision. A process in no session gets `allow` and nothing is recorded.
    fn hook(&mut self, pid: u32, payload: &serde_json::Value) -> Result<HookAnswer, String> {
        // Records already in the ring (the hook command's own fork and exec) come first, so the
        // tracker knows the caller and its agent.
        while self.drain() > 0 {}
        let Ok(info) = self.sensor.sessions.get(&pid, 0) else {
            return Ok(HookAnswer {
                decision: "allow".into(),
                ..Default::default()
            });
        };
        let mut report = crate::hooks::parse(payload, self.tracker.redactor())?;
        let kind = report.kind;
        let mcp = report.mcp.take();
        let agent = self.agents.name(info.agent_id);
        let mut ev = self
            .tracker
            .hook_event(pid, info.session_id, &agent, report);
        let mut mcp_ev = mcp.map(|m| self.tracker.mcp_event(info.session_id, &ev, m));
        // A `hook.deny` rule may judge the tool call or, for an MCP tool, the MCP call.
        let verdict = matches!(kind, Kind::AgentToolCall | Kind::AgentPrompt)
            .then(|| {
                self.pipeline
                    .deny_verdict(&ev)
                    .or_else(|| mcp_ev.as_ref().and_then(|m| self.pipeline.deny_verdict(m)))
            })
            .flatten();
        let meta = self.agents.metadata_only(info.agent_id);
        let intent = ev.intent.get_or_insert_with(Default::default);
        let (call_id, tool) = (intent.tool_call_id.clone(), intent.tool_name.clone());
        let tool_path = intent.tool_path.clone();
        if matches!(kind, Kind::AgentToolCall | Kind::AgentPrompt) {
            intent.decision = Some(if verdict.is_some() { "deny" } else { "allow" }.into());
            intent.reason = verdict.as_ref().map(|v| v.1.clone());
        }
        if meta {
            // The policy has decided on the text; what is stored keeps only metadata. A deny
            // reason may quote the input, so the event names the rule instead. The path a file
            // tool named stays in the call's span, for the kernel events it explains.
            intent.tool_input = None;
            intent.tool_output = None;
            intent.prompt = None;
            intent.tool_path = None;
            if let Some(v) = &verdict {
                intent.reason = Some(format!("denied by rule `{}`", v.0));
            }
        }
        if let (Some(m), Some(i)) = (&mut mcp_ev, &ev.intent) {
            // The MCP call shares the tool call's decision.
            let mi = m.intent.get_or_insert_with(Default::default);
            mi.decision.clone_from(&i.decision);
            mi.reason.clone_from(&i.reason);
            if meta && let Some(x) = &mut m.mcp {
                x.arguments = None;
            }
        }
        match (kind, &call_id) {
            (Kind::AgentToolCall, Some(id)) if verdict.is_none() => {
                let agent_pid = ev.process.pid;
                self.tracker.open_span(
                    info.session_id,
                    agent_pid,
                    id,
                    tool.as_deref().unwrap_or(""),
                    tool_path.as_ref(),
                );
            }
            (Kind::AgentToolResult, Some(id)) => self.tracker.close_span(info.session_id, id),
            _ => {}
        }
        let answer = HookAnswer {
            decision: if verdict.is_some() { "deny" } else { "allow" }.into(),
            rule: verdict.as_ref().map(|v| v.0.clone()),
            reason: verdict.map(|v| v.1),
            session: Some(session_id_string(info.session_id)),
            event: Some(ev.id.clone()),
        };
        self.emit(ev);
        if let Some(m) = mcp_ev {
            self.emit(m);
        }
        Ok(answer)
    }

    /// The pids the kernel's session map puts in session `sid`.
    fn session_pids(
        sessions: &aya::maps::HashMap<aya::maps::MapData, u32, SessionInfo>,
        sid: u64,
    ) -> Vec<u32> {
        sessions
            .iter()
            .flatten()
            .filter(|(_, i)| i.session_id == sid)
            .map(|(pid, _)| pid)
            .collect()
    }

    /// Carry out (or, in a dry run, only record) a response action on session `sid`, emit its
    /// `response.action` event and log it. `target` is the offending process of a `kill`.
    pub fn act(
        &mut self,
        verb: Verb,
        sid: u64,
        target: Option<(u32, u64)>,
        dry_run: bool,
        by: &str,
        note: &str,
    ) -> (agent_model::Response, String) {
        self.act_checked(verb, sid, target, dry_run, by, note, None)
    }

    /// [`SourceLoop::act`], unless `refused` says why not (recorded as the result).
    #[allow(clippy::too_many_arguments)]
    fn act_checked(
        &mut self,
        verb: Verb,
        sid: u64,
        target: Option<(u32, u64)>,
        dry_run: bool,
        by: &str,
        note: &str,
        refused: Option<String>,
    ) -> (agent_model::Response, String) {
        let outcome: Result<usize, String> = if let Some(why) = refused {
            Err(why)
        } else if !self.responder.cfg.enabled {
            Err("refused: response actions are disabled in the config (`[response] enabled = false`)".into())
        } else if dry_run {
            Ok(0)
        } else {
            let sessions = &self.sensor.sessions;
            let mut pids = || Self::session_pids(sessions, sid);
            match verb {
                Verb::FreezeSession => self.responder.freeze(sid, true, &mut pids),
                Verb::ThawSession => self.responder.freeze(sid, false, &mut pids),
                Verb::KillSession => self.responder.kill_session(sid, &mut pids),
                Verb::Kill => match target {
                    // Only a member of this session, never anything outside it.
                    Some((pid, start)) if pids().contains(&pid) => {
                        self.responder.kill_process(pid, start)
                    }
                    Some((pid, _)) => Err(format!("pid `{pid}` is not in the session")),
                    None => Err("no offending process".into()),
                },
                // Egress is denied in the kernel (cgroup connect programs); an event that
                // already happened cannot be undone from here.
                Verb::Deny => Err("`deny` cannot undo an event that already happened".into()),
            }
            .map_err(|e| format!("failed: {e}"))
        };
        let (result, processes) = match &outcome {
            Ok(_) if dry_run && self.responder.cfg.enabled => ("dry_run".to_owned(), None),
            Ok(n) => ("done".to_owned(), Some(*n as u64)),
            Err(e) => (e.clone(), None),
        };
        let mode = if dry_run { "dry_run" } else { "enforce" };
        let session = session_id_string(sid);
        if result == "done" || result == "dry_run" {
            tracing::warn!(%session, action = verb.name(), mode, by, %result, ?processes, pid = ?target.map(|t| t.0), "response action");
        } else {
            tracing::error!(%session, action = verb.name(), mode, by, %result, pid = ?target.map(|t| t.0), "response action not carried out");
        }
        let r = agent_model::Response {
            action: verb.name().to_owned(),
            mode: mode.to_owned(),
            by: by.to_owned(),
            result,
            note: note.to_owned(),
            processes,
        };
        let subject = match (verb, target) {
            (Verb::Kill, Some((pid, _))) => pid,
            _ => self.tracker.sessions.get(&sid).map_or(0, |s| s.root.0),
        };
        let ev = self.tracker.response_event(sid, subject, r.clone());
        let id = ev.id.clone();
        self.emit(ev);
        if verb == Verb::KillSession && !dry_run {
            // Make the kills' exit records (and the session's end) visible before answering.
            while self.drain() > 0 {}
        }
        (r, id)
    }

    /// A manual action: the session must be live; the answer says what was done.
    fn respond(
        &mut self,
        verb: Verb,
        session: &str,
        note: &str,
        by: &str,
    ) -> Result<agent_api::Responded, String> {
        let sid = u64::from_str_radix(session, 16)
            .ok()
            .filter(|_| session.len() == 16)
            .ok_or_else(|| format!("bad session id `{session}`; expected 16 hex digits"))?;
        if !self.tracker.sessions.contains_key(&sid)
            && Self::session_pids(&self.sensor.sessions, sid).is_empty()
        {
            return Err(format!("no live session `{session}`"));
        }
        let (r, event) = self.act(verb, sid, None, false, by, note);
        if r.result != "done" {
            return Err(format!("{}; recorded as event `{event}`", r.result));
        }
        Ok(agent_api::Responded {
            session: session.to_owned(),
            action: r.action,
            mode: r.mode,
            result: r.result,
            processes: r.processes.unwrap_or(0),
            event,
        })
    }

    fn status(&self) -> Status {
        let named = |m: BTreeMap<u32, u64>| -> BTreeMap<String, u64> {
            m.into_iter().map(|(k, v)| (kind_name(k), v)).collect()
        };
        let events: BTreeMap<String, u64> = self
            .tracker
            .delivered
            .iter()
            .map(|(k, v)| {
                (
                    Kind::from_id(*k).map_or_else(|| k.to_string(), |k| k.name().to_owned()),
                    *v,
                )
            })
            .collect();
        let uptime = self.started.elapsed().as_secs_f64();
        let events_per_s: BTreeMap<String, f64> = events
            .iter()
            .map(|(k, v)| (k.clone(), *v as f64 / uptime.max(1.0)))
            .collect();
        let sessions: Vec<LiveSession> = self
            .tracker
            .session_list()
            .into_iter()
            .map(|s| LiveSession {
                id: session_id_string(s.id),
                agent: s.agent.clone(),
                root_pid: s.root.0,
                start: s.start,
                live_processes: s.live,
                events: s.events,
            })
            .collect();
        let mut st = Status {
            pid: std::process::id(),
            uptime_s: uptime,
            host: self.tracker.host.clone(),
            config: self.agents.cfg.origin.clone(),
            agents: self
                .agents
                .cfg
                .agents
                .iter()
                .map(|a| a.name.clone())
                .collect(),
            programs: self.sensor.programs.clone(),
            ringbuf_bytes: self.sensor.ringbuf_bytes.into(),
            events,
            events_per_s,
            losses: named(Sensor::counters(&self.sensor.loss)),
            kernel_errors: named(Sensor::counters(&self.sensor.errors)),
            decode_errors: self.decode_errors,
            sessions,
            ..Status::default()
        };
        self.pipeline.status_into(&mut st);
        st.integrity = Some(self.integrity.status());
        st.egress = self.egress_status();
        st.intent = self.tracker.llm.status();
        st
    }

    /// Compare the kernel maps with the daemon's copy and repair them (see `integrity`):
    /// `HANDLERS`, selectors and `OWN_IDS` against what the loader wrote, `SESSIONS` against
    /// the live session processes of the tracker.
    fn check_integrity(&mut self) {
        let mut found: Vec<Finding> = self
            .sensor
            .check_maps()
            .into_iter()
            .map(|r| Finding {
                map: r.map.to_owned(),
                what: r.what,
                repaired: r.repaired,
                session: None,
            })
            .collect();
        let mut members = self.tracker.session_members();
        let differs = |s: &Self, pid: u32, sid: u64| {
            s.sensor
                .sessions
                .get(&pid, 0)
                .map_or(true, |have| have.session_id != sid)
        };
        if members
            .iter()
            .any(|(pid, sid, ..)| differs(self, *pid, *sid))
        {
            // An exit the kernel already removed may still be in the ring: read it first.
            while self.drain() > 0 {}
            members = self.tracker.session_members();
        }
        for (pid, sid, agent) in members {
            let what = match self.sensor.sessions.get(&pid, 0) {
                Ok(have) if have.session_id == sid => continue,
                Ok(have) => format!(
                    "entry of pid `{pid}` moved to session `{}`",
                    session_id_string(have.session_id)
                ),
                Err(_) if !crate::integrity::alive(pid) => continue,
                Err(_) => format!("entry of pid `{pid}` missing"),
            };
            let info = SessionInfo {
                session_id: sid,
                agent_id: self.agents.id_for(&agent),
                flags: 0,
            };
            let repaired = self.sensor.add_to_session(pid, info).is_ok();
            found.push(Finding {
                map: agent_common::MAP_SESSIONS.to_owned(),
                what,
                repaired,
                session: Some((sid, agent)),
            });
        }
        for f in &found {
            tracing::warn!(map = %f.map, what = %f.what, repaired = f.repaired, "kernel map tampered");
        }
        let now = agent_model::Timestamp::now();
        for a in self.integrity.record(&found, &self.tracker.host, now) {
            self.pipeline.alert(a);
        }
    }

    fn check_losses(&mut self) {
        let now = Sensor::counters(&self.sensor.loss);
        for (k, v) in &now {
            let before = self.last_loss.get(k).copied().unwrap_or(0);
            if *v > before {
                let ev = self.tracker.monitor_event(
                    Kind::MonitorLoss,
                    Monitor {
                        loss_kind: Some(kind_name(*k)),
                        loss_count: Some(v - before),
                        message: Some(format!(
                            "ring buffer full: {} `{}` records lost",
                            v - before,
                            kind_name(*k)
                        )),
                        ..Default::default()
                    },
                );
                tracing::warn!(kind = %kind_name(*k), lost = v - before, "sensor lost records");
                self.emit(ev);
            }
        }
        self.last_loss = now;
    }

    fn drain(&mut self) -> usize {
        let mut buf = std::mem::take(&mut self.drained);
        let mut ends = std::mem::take(&mut self.drained_ends);
        let mut positions = std::mem::take(&mut self.drained_pos);
        buf.clear();
        ends.clear();
        positions.clear();
        while let Some((pos, item)) = self.sensor.ring.next_record() {
            buf.extend_from_slice(item);
            ends.push(buf.len());
            positions.push(pos);
            if ends.len() >= 4096 {
                break;
            }
        }
        let n = ends.len();
        if let Some(c) = &mut self.capture {
            c.write_batch(&buf, &ends);
        }
        let mut start = 0;
        for (&end, &pos) in ends.iter().zip(&positions) {
            self.handle_at(pos, &buf[start..end]);
            start = end;
        }
        self.drained = buf;
        self.drained_ends = ends;
        self.drained_pos = positions;
        if n > 0 {
            self.durable
                .batch(self.pipeline.appended_seq(), self.sensor.ring.read_pos());
        }
        n
    }

    /// Handle the ring record at position `pos`: its events are named after it.
    fn handle_at(&mut self, pos: u64, raw: &[u8]) {
        let tag = self.durable.tag().to_owned();
        self.tracker.set_record(&tag, pos);
        self.handle(raw);
        self.tracker.clear_record();
    }

    /// Give the kernel back the ring space of records whose events the store made durable and
    /// whose JSON lines are written: `durable` is what [`Pipeline::flush`] wrote up to.
    fn commit_ring(&mut self, durable: Option<u64>) {
        self.durable.commit(&mut self.sensor.ring, durable);
    }

    /// Periodic `net.flow` reports from the kernel's per-socket counters: an `update` for a
    /// socket whose counters moved and whose last report is older than `flow_report_secs`, and
    /// a final `exit` report (then the entry is dropped) for a socket whose owner exited
    /// without a TCP close (UDP, or TCP still closing). TCP closes are reported by the kernel.
    fn report_flows(&mut self) {
        let now = boot_ns();
        let every = self
            .agents
            .cfg
            .flow_report_secs
            .saturating_mul(1_000_000_000);
        let entries: Vec<(u64, FlowEntry)> = self.sensor.flows.iter().flatten().collect();
        let mut seen = std::collections::HashSet::with_capacity(entries.len());
        for (sk, mut rec) in entries {
            seen.insert(sk);
            let last = self.flows.entry(sk).or_insert(FlowSeen {
                sent: 0,
                received: 0,
                reported_ns: rec.flow.first_ns,
            });
            let state = if !self.tracker.is_live(rec.hdr.tgid, rec.hdr.start_ns) {
                FLOW_EXIT
            } else if (rec.flow.sent, rec.flow.received) != (last.sent, last.received)
                && now.saturating_sub(last.reported_ns) >= every
            {
                FLOW_UPDATE
            } else {
                continue;
            };
            last.sent = rec.flow.sent;
            last.received = rec.flow.received;
            last.reported_ns = now;
            if state == FLOW_EXIT {
                let _ = self.sensor.flows.remove(&sk);
                self.flows.remove(&sk);
            }
            rec.hdr.kind = RecordKind::Flow as u32;
            rec.hdr.len = std::mem::size_of::<FlowEntry>() as u32;
            rec.hdr.ktime_ns = now;
            rec.flow.state = state;
            self.handle(agent_common::plain_bytes(&rec));
        }
        self.flows.retain(|k, _| seen.contains(k));
    }

    /// Decode one ring record (or a flow record built from the map), pair io_uring submissions
    /// with their completions, track it, emit its events.
    fn handle(&mut self, raw: &[u8]) {
        if raw.get(..4) == Some(&agent_common::RECORD_EGRESS.to_ne_bytes()[..]) {
            self.on_egress_record(raw);
            return;
        }
        if raw.get(..4) == Some(&agent_common::RECORD_DNS_ANSWER.to_ne_bytes()[..]) {
            self.on_dns_answer(raw);
            return;
        }
        match decode(raw) {
            Ok(rec) => {
                let Some(rec) = self.io_pending.pair(rec) else {
                    return;
                };
                let killed = match &rec {
                    agent_model::decode::Record::Open { hdr, body, path }
                        if body.flags & agent_common::OPEN_KILLED != 0 =>
                    {
                        let dev = agent_model::linux::user_dev(body.dev);
                        let rule = self.inline_killed_before(
                            hdr.tgid,
                            dev,
                            body.ino,
                            path.path.as_bytes(),
                        );
                        Some((hdr.session_id, hdr.tgid, rule))
                    }
                    _ => None,
                };
                let (evs, actions) = self.tracker.on_record(rec, &self.agents);
                for a in actions {
                    match a {
                        Action::Drop(pids) => {
                            for p in pids {
                                self.sensor.remove_from_session(p);
                            }
                        }
                        Action::Confirm(pid, sid, agent) => {
                            let _ = self.sensor.add_to_session(
                                pid,
                                SessionInfo {
                                    session_id: sid,
                                    agent_id: agent,
                                    flags: 0,
                                },
                            );
                        }
                    }
                }
                for mut ev in evs {
                    if ev.kind.0 == Kind::FileOpen
                        && ev.target.as_ref().is_some_and(|t| t.relation == "daemon")
                        && let Some(f) = &ev.file
                        && !f.path.as_bytes().starts_with(b"/proc/")
                        && !self.sensor.still_protected(
                            std::path::Path::new(std::ffi::OsStr::from_bytes(f.path.as_bytes())),
                            f.dev.unwrap_or(0),
                            f.ino.unwrap_or(0),
                        )
                    {
                        // A reused inode of a deleted daemon file: not aimed at the daemon.
                        if ev.session.is_none() {
                            continue;
                        }
                        ev.target = None;
                    }
                    if ev.kind.0 == Kind::KernelBpf
                        && ev.target.as_ref().map(|t| t.pid) == Some(std::process::id())
                    {
                        // A bpf() command reached the daemon's objects: compare the maps now.
                        self.integrity.soon();
                    }
                    if ev.kind() == Kind::ProcessExec && ev.session.is_some() {
                        // A session's executable may carry its own OpenSSL (node).
                        self.sensor
                            .attach_tls(std::path::Path::new(std::ffi::OsStr::from_bytes(
                                ev.process.exe.as_bytes(),
                            )));
                    }
                    if ev.kind() == Kind::SessionEnd
                        && let Some(sid) = ev
                            .session_id()
                            .and_then(|s| u64::from_str_radix(s, 16).ok())
                    {
                        self.responder.end_session(sid);
                    }
                    if self.durable.is_duplicate(&ev.id) {
                        // Stored by the daemon that read this record before (pinned ring).
                        continue;
                    }
                    self.emit(ev);
                }
                if let Some((sid, tgid, rule)) = killed {
                    self.inline_killed_after(sid, tgid, &rule);
                }
            }
            Err(e) => {
                self.decode_errors += 1;
                tracing::debug!(error = %e, "undecodable record");
            }
        }
    }

    /// Run until `stop` is set.
    pub fn run(mut self) -> Result<()> {
        self.sync_inline_kills();
        self.sync_egress();
        let fd = self.sensor.ring.as_raw_fd();
        let mut last_tick = Instant::now();
        let mut last_flows = Instant::now();
        let mut last_cgroups = Instant::now() - Duration::from_secs(60);
        loop {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // While read records wait for the store, the ring's data counts as unread and
            // `poll` would return at once: wait a short while instead.
            let r = if self.sensor.ring.unacked() {
                std::thread::sleep(Duration::from_millis(ACK_POLL_MS));
                0
            } else {
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut pfd, 1, POLL_MS) }
            };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(anyhow!(e).context("polling the ring buffer failed"));
                }
            }
            while self.drain() > 0 {}
            loop {
                match self.commands.try_recv() {
                    Ok(Command::Register { pid, agent, reply }) => {
                        let r = self.register(pid, &agent);
                        // A new agent name may have an egress policy: in the maps before the
                        // session's first instruction.
                        self.sync_egress();
                        let _ = reply.send(r);
                    }
                    Ok(Command::Status { reply }) => {
                        let _ = reply.send(self.status());
                    }
                    Ok(Command::Rules { reply }) => {
                        let _ = reply.send(self.pipeline.rules_listing());
                    }
                    Ok(Command::Hook {
                        pid,
                        payload,
                        reply,
                    }) => {
                        let _ = reply.send(self.hook(pid, &payload));
                    }
                    Ok(Command::Respond {
                        verb,
                        session,
                        note,
                        by,
                        reply,
                    }) => {
                        let _ = reply.send(self.respond(verb, &session, &note, &by));
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => break,
                }
            }
            if self.integrity.due() {
                self.check_integrity();
            }
            if last_tick.elapsed() >= Duration::from_millis(250) {
                last_tick = Instant::now();
                self.check_losses();
                self.sensor.heartbeat();
                self.pipeline.tick();
                self.sync_inline_kills();
                self.reload_egress();
                self.sync_egress();
                self.close_egress_repeats(false);
                self.close_inline_repeats(false);
                let expired = self.io_pending.expire(IO_PENDING_TTL);
                if expired > 0 {
                    tracing::debug!(
                        expired,
                        "io_uring path operations without a completion record"
                    );
                }
            }
            if last_flows.elapsed() >= Duration::from_secs(1) {
                last_flows = Instant::now();
                self.report_flows();
            }
            if last_cgroups.elapsed() >= Duration::from_secs(5) {
                last_cgroups = Instant::now();
                let cfg = self.agents.cfg.clone();
                self.sensor.refresh_cgroups(&cfg);
            }
            let written = self.pipeline.flush();
            self.commit_ring(written);
            if self.stop.load(Ordering::Relaxed) {
                while self.drain() > 0 {}
                self.check_losses();
                self.report_flows();
                // Folded repeats are written with their counts before the stop.
                self.close_egress_repeats(true);
                self.close_inline_repeats(true);
                self.pipeline.sync();
                let written = self.pipeline.flush();
                self.commit_ring(written);
                return Ok(());
            }
        }
    }
}

/// Host name for events.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
