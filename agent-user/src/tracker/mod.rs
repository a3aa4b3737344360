//! Process table and session bookkeeping: turns decoded kernel records into enriched events.
//!
//! Processes are keyed by (pid, start time). Every event gets its agent, session, parent and
//! ancestry (executables from the parent up to the session root). Exited processes stay in the
//! table while their session lives so that orphans reparented to init keep their ancestry.
//!
//! [`Tracker::on_record`] does the bookkeeping (sessions, the process table, counts) and hands
//! the fields of each event family to one small module: [`process`], [`file`], [`net`],
//! [`kernel`]. The clock is passed in ([`Clock`]) so that replayed records give the same events.

pub mod clock;
mod file;
pub mod intent;
mod kernel;
pub mod llm;
mod net;
mod process;
pub mod session;
pub mod table;

use std::collections::{HashMap, HashSet};

use agent_common::{ARGV_TRUNCATED, REC_NEW_SESSION, REC_PROVISIONAL, RecordKind};
use agent_model::decode::{Header, Record, dns_question};
use agent_model::{
    AgentRef, BStr, Event, Kind, KindField, Monitor, Parent, Priv, Process, SessionRef, Timestamp,
    session_id_string,
};

use crate::redact::Redactor;

pub use clock::{Clock, FixedClock, SystemClock};
pub use session::{Action, Agents, Session};
pub use table::{Proc, ProcTable};

pub struct Tracker {
    pub host: String,
    instance: String,
    seq: u64,
    /// The ring record being handled (see [`Tracker::set_record`]): its events' id tag and the
    /// record's position, and how many ids it has had.
    record: Option<RecordIds>,
    clock: Box<dyn Clock>,
    /// realtime - boottime, ns.
    boot_offset: i64,
    procs: ProcTable,
    pub sessions: HashMap<u64, Session>,
    rejected: HashSet<u64>,
    /// Events delivered, by kind id.
    pub delivered: HashMap<u32, u64>,
    redactor: Redactor,
    /// Tool calls in progress (from the agents' hooks).
    spans: intent::Spans,
    /// This binary: its `agentwatch hook` runs are the hooks themselves, never undeclared.
    own_exe: Vec<u8>,
    /// TLS plaintext decoders (`llm.request`, `llm.response`).
    pub llm: llm::LlmCapture,
}

/// Ids of the events of one ring record (see [`Tracker::set_record`]).
struct RecordIds {
    tag: String,
    pos: u64,
    n: u64,
}

/// The event kind of a record (a send to port 53 that carries a DNS question is `net.dns`).
fn kind_of(rec: &Record) -> Kind {
    match rec.header().kind {
        RecordKind::Exec => Kind::ProcessExec,
        RecordKind::Exit => Kind::ProcessExit,
        RecordKind::Fork => Kind::ProcessFork,
        RecordKind::Open => Kind::FileOpen,
        RecordKind::Unlink => Kind::FileUnlink,
        RecordKind::Rename => Kind::FileRename,
        RecordKind::Connect => Kind::NetConnect,
        RecordKind::Accept => Kind::NetAccept,
        RecordKind::Listen => Kind::NetListen,
        RecordKind::Chmod => Kind::FileChmod,
        RecordKind::Chown => Kind::FileChown,
        RecordKind::Link => Kind::FileLink,
        RecordKind::Symlink => Kind::FileSymlink,
        RecordKind::Mkdir => Kind::FileMkdir,
        RecordKind::Truncate => Kind::FileTruncate,
        RecordKind::Write => Kind::FileWrite,
        RecordKind::MmapExec => Kind::FileMmapExec,
        RecordKind::Utime => Kind::FileUtime,
        RecordKind::Xattr => Kind::FileXattr,
        RecordKind::Send => match rec {
            Record::Sock { body, payload, .. }
                if body.dport == 53 && dns_question(payload).is_some() =>
            {
                Kind::NetDns
            }
            _ => Kind::NetSend,
        },
        RecordKind::Flow => Kind::NetFlow,
        RecordKind::PrivChange => Kind::PrivChange,
        RecordKind::Ptrace => Kind::ProcessPtrace,
        RecordKind::Bpf => Kind::KernelBpf,
        RecordKind::Module => Kind::KernelModule,
        RecordKind::Mount => Kind::FsMount,
        RecordKind::Namespace => Kind::ProcessNamespace,
        RecordKind::Memfd => Kind::ProcessMemfd,
        RecordKind::Signal => Kind::ProcessSignal,
        // Never an event by itself: `on_record` hands TLS data to `llm` first.
        RecordKind::TlsData => Kind::LlmRequest,
    }
}

fn join_args(args: &[BStr]) -> BStr {
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(a.as_bytes());
    }
    BStr(out)
}

impl Tracker {
    /// A tracker for events of `host`, with time from `clock`. Event ids start with an
    /// instance tag made of the start time and the daemon's pid (see [`Tracker::with_instance`]).
    pub fn new(host: String, clock: Box<dyn Clock>) -> Tracker {
        let instance = (clock.now().0 as u64 ^ std::process::id() as u64) as u32;
        Tracker {
            host,
            instance: String::new(),
            seq: 0,
            record: None,
            boot_offset: clock.boot_offset_ns(),
            clock,
            procs: ProcTable::default(),
            sessions: HashMap::new(),
            rejected: HashSet::new(),
            delivered: HashMap::new(),
            redactor: Redactor::defaults(),
            spans: intent::Spans::default(),
            own_exe: std::env::current_exe()
                .map(|p| p.into_os_string().into_encoded_bytes())
                .unwrap_or_default(),
            llm: llm::LlmCapture::new(Redactor::defaults(), Default::default()),
        }
        .with_instance(instance)
    }

    /// Use `instance` as the tag of event ids (`<instance>-<seq>`), e.g. a fixed one in tests.
    pub fn with_instance(mut self, instance: u32) -> Tracker {
        self.instance = format!("{instance:08x}");
        self
    }

    pub fn set_redactor(&mut self, r: Redactor) {
        self.llm = llm::LlmCapture::new(r.clone(), Default::default());
        self.redactor = r;
    }

    /// The argv redactor, also used for the text of agent hooks.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Name the events of the ring record at `pos` after the record (`<tag>-<hex of pos * 256 +
    /// n>`, `tag` naming the ring) until [`Tracker::clear_record`]: a record read again by the
    /// next daemon from a pinned ring gets the same ids, so the ones already stored are known.
    pub fn set_record(&mut self, tag: &str, pos: u64) {
        let r = self.record.get_or_insert_with(|| RecordIds {
            tag: String::new(),
            pos,
            n: 0,
        });
        if r.tag != tag {
            r.tag = tag.to_owned();
        }
        r.pos = pos;
        r.n = 0;
    }

    /// Events after this are not of a ring record: named `<instance>-<seq>`.
    pub fn clear_record(&mut self) {
        self.record = None;
    }

    fn next_id(&mut self) -> String {
        if let Some(r) = &mut self.record
            && r.n < 256
        {
            let seq = (r.pos << 8) | r.n;
            r.n += 1;
            // Later events of the daemon sort after this one (see `fleet` tests' order check).
            self.seq = self.seq.max(seq);
            let mut id = String::with_capacity(r.tag.len() + 17);
            id.push_str(&r.tag);
            id.push('-');
            agent_model::push_hex(&mut id, seq, 0);
            return id;
        }
        self.seq += 1;
        let mut id = String::with_capacity(self.instance.len() + 17);
        id.push_str(&self.instance);
        id.push('-');
        agent_model::push_hex(&mut id, self.seq, 0);
        id
    }

    pub fn ts(&self, boot_ns: u64) -> Timestamp {
        Timestamp(boot_ns as i64 + self.boot_offset)
    }

    /// The inverse of [`Tracker::ts`]: ns since boot of an event time.
    pub fn boot_ns_of(&self, t: Timestamp) -> u64 {
        (t.0 - self.boot_offset).max(0) as u64
    }

    /// A user-space-created session (registration or /proc seeding).
    pub fn open_session(&mut self, id: u64, agent: &str, mut root: Proc) -> Event {
        root.args_redacted = self.redactor.redact(&mut root.args);
        let start = self.clock.now();
        self.sessions.insert(
            id,
            Session {
                id,
                agent: agent.to_owned(),
                root: (root.tgid, root.start_ns),
                start,
                live: 0,
                events: 0,
            },
        );
        let tgid = root.tgid;
        self.insert_proc(Proc {
            session: id,
            ..root
        });
        self.session_event(Kind::SessionStart, id, tgid, start, "session opened")
    }

    /// Add a seeded (already running) process to an existing session.
    pub fn adopt(&mut self, mut p: Proc) {
        p.args_redacted = self.redactor.redact(&mut p.args);
        self.insert_proc(p);
    }

    fn insert_proc(&mut self, p: Proc) {
        if let Some(s) = self.sessions.get_mut(&p.session)
            && !p.exited
        {
            s.live += 1;
        }
        self.procs.insert(p);
    }

    fn session_event(
        &mut self,
        kind: Kind,
        id: u64,
        tgid: u32,
        time: Timestamp,
        msg: &str,
    ) -> Event {
        let mut ev = Event {
            id: self.next_id(),
            time,
            host: self.host.clone(),
            kind: KindField(kind),
            session: Some(SessionRef {
                id: session_id_string(id),
            }),
            agent: self.sessions.get(&id).map(|s| AgentRef {
                name: s.agent.clone(),
            }),
            monitor: Some(Monitor {
                message: Some(msg.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        };
        if let Some(p) = self.procs.by_tgid(tgid) {
            ev.process = self.process_of(p, tgid);
        }
        ev
    }

    /// (pid, session id, agent name) of every live session process: what the kernel's
    /// `SESSIONS` map must hold (see `integrity`).
    pub fn session_members(&self) -> Vec<(u32, u64, String)> {
        self.procs
            .live_in_sessions()
            .filter_map(|p| {
                let s = self.sessions.get(&p.session)?;
                Some((p.tgid, p.session, s.agent.clone()))
            })
            .collect()
    }

    /// A `response.action` event of session `id`, about process `tgid` (the session root for a
    /// session-wide action).
    pub fn response_event(&mut self, id: u64, tgid: u32, response: agent_model::Response) -> Event {
        let now = self.clock.now();
        let mut ev = self.session_event(Kind::ResponseAction, id, tgid, now, "");
        ev.monitor = None;
        ev.response = Some(response);
        ev
    }

    /// Whether the process (tgid, start time) has not exited.
    pub fn is_live(&self, tgid: u32, start_ns: u64) -> bool {
        self.procs.is_live(tgid, start_ns)
    }

    fn process_of(&self, p: &Proc, tid: u32) -> Process {
        Process {
            pid: p.tgid,
            tid,
            start: self.ts(p.start_ns),
            exe: p.exe.clone(),
            comm: p.comm.clone(),
            args: p.args.clone(),
            cmdline: join_args(&p.args),
            args_truncated: p.args_truncated,
            args_len: p.args_len,
            cwd: p.cwd.clone(),
            args_redacted: p.args_redacted,
            ..Default::default()
        }
    }

    /// Monitor event (losses and the like).
    pub fn monitor_event(&mut self, kind: Kind, monitor: Monitor) -> Event {
        Event {
            id: self.next_id(),
            time: self.clock.now(),
            host: self.host.clone(),
            kind: KindField(kind),
            monitor: Some(monitor),
            ..Default::default()
        }
    }

    /// Handle one record: returns the events to emit and kernel actions to take.
    pub fn on_record(&mut self, rec: Record, agents: &dyn Agents) -> (Vec<Event>, Vec<Action>) {
        let mut out = Vec::new();
        let mut actions = Vec::new();
        let mut h = rec.header().clone();
        // A record the kernel sent for a process outside every session (it reached agentwatch
        // itself): attribute it to the session the process was last seen in, if any (one that
        // deleted its own `SESSIONS` entry), and otherwise keep it out of the process table.
        if h.session_id == 0
            && let Some(p) = self.procs.current(&h)
        {
            h.session_id = p.session;
        }
        if self.rejected.contains(&h.session_id) {
            return (out, actions);
        }
        if h.session_id != 0 && !self.open_record_session(&rec, &h, agents, &mut out, &mut actions)
        {
            return (out, actions);
        }
        if let Record::Tls { body, data, .. } = &rec {
            let meta = agents.metadata_only(h.agent_id);
            for mut o in self.llm.feed(h.tgid, body, data) {
                let kind = if o.request {
                    Kind::LlmRequest
                } else {
                    Kind::LlmResponse
                };
                if meta {
                    llm::keep_metadata(&mut o.llm);
                }
                let mut ev = self.base_event(kind, &h);
                ev.llm = Some(o.llm);
                *self.delivered.entry(kind.id()).or_default() += 1;
                if let Some(s) = self.sessions.get_mut(&h.session_id) {
                    s.events += 1;
                }
                out.push(ev);
            }
            return (out, actions);
        }
        let kind = kind_of(&rec);
        // Update the process table first so the event shows the new state.
        self.track(&rec, &h);
        let mut ev = self.base_event(kind, &h);
        let mut extra: Option<(u32, u32)> = None;
        match rec {
            Record::Exec {
                body,
                filename,
                exe,
                ..
            } => extra = process::exec(&mut ev, &h, body, filename, &exe),
            Record::Exit { body, .. } => process::exit(&mut ev, body),
            Record::Fork { .. } => {}
            Record::Open { body, path, .. } => file::open(&mut ev, body, path),
            Record::PathOp {
                body,
                dir,
                name,
                dir2,
                name2,
                ..
            } => file::path_op(&mut ev, &h, body, dir, name, dir2, name2),
            Record::Sys {
                body, name, name2, ..
            } => kernel::sys(&mut ev, &h, body, name, name2, &self.procs),
            Record::Sock {
                body,
                unix_path,
                payload,
                flow,
                ..
            } => net::sock(&mut ev, &h, body, unix_path, payload, flow),
            // Handled above.
            Record::Tls { .. } => {}
        }
        if ev.intent.as_ref().is_some_and(|i| i.tool_path.is_some())
            && let Some(span) = self.spans.for_agent(h.session_id, h.tgid)
        {
            intent::mark_divergent(&mut ev, &span.paths);
        }
        *self.delivered.entry(kind.id()).or_default() += 1;
        if let Some(s) = self.sessions.get_mut(&h.session_id) {
            s.events += 1;
        }
        let priv_ev = extra.map(|(euid, egid)| {
            let mut p = ev.clone();
            p.id = self.next_id();
            p.kind = KindField(Kind::PrivChange);
            p.r#priv = Some(Priv {
                op: "exec".into(),
                uid: h.uid,
                euid,
                gid: h.gid,
                egid,
                caps: None,
            });
            *self.delivered.entry(Kind::PrivChange.id()).or_default() += 1;
            p
        });
        out.push(ev);
        out.extend(priv_ev);
        if h.kind == RecordKind::Exit {
            let meta = agents.metadata_only(h.agent_id);
            for mut o in self.llm.exited(h.tgid) {
                let kind = if o.request {
                    Kind::LlmRequest
                } else {
                    Kind::LlmResponse
                };
                if meta {
                    llm::keep_metadata(&mut o.llm);
                }
                let mut ev = self.base_event(kind, &h);
                ev.llm = Some(o.llm);
                *self.delivered.entry(kind.id()).or_default() += 1;
                out.push(ev);
            }
            self.exited(&h, &mut out);
        }
        (out, actions)
    }

    /// Sessions opened in the kernel by a selector (`session.start`), confirmed or rejected when
    /// provisional, and sessions first heard of through a record. Returns false when the
    /// record's session was rejected and the record must be dropped.
    fn open_record_session(
        &mut self,
        rec: &Record,
        h: &Header,
        agents: &dyn Agents,
        out: &mut Vec<Event>,
        actions: &mut Vec<Action>,
    ) -> bool {
        // Sessions opened in the kernel by a selector.
        if let Record::Exec { body, exe, .. } = rec
            && body.flags & REC_NEW_SESSION != 0
            && !self.sessions.contains_key(&h.session_id)
        {
            if body.flags & REC_PROVISIONAL != 0 {
                if agents.confirm_exe(h.agent_id, &exe.path.to_str_lossy()) {
                    actions.push(Action::Confirm(h.tgid, h.session_id, h.agent_id));
                } else {
                    self.rejected.insert(h.session_id);
                    actions.push(Action::Drop(vec![h.tgid]));
                    return false;
                }
            }
            let name = agents.name(h.agent_id);
            self.sessions.insert(
                h.session_id,
                Session {
                    id: h.session_id,
                    agent: name,
                    root: (h.tgid, h.start_ns),
                    start: self.ts(h.ktime_ns),
                    live: 0,
                    events: 0,
                },
            );
            let t = self.ts(h.ktime_ns);
            let mut ev = self.session_event(
                Kind::SessionStart,
                h.session_id,
                h.tgid,
                t,
                "session opened by selector",
            );
            ev.process.pid = h.tgid;
            out.push(ev);
        }
        if !self.sessions.contains_key(&h.session_id) {
            // A session created by a process we have not heard of (registration raced the
            // first record): create it on the fly so nothing is lost.
            self.sessions.insert(
                h.session_id,
                Session {
                    id: h.session_id,
                    agent: agents.name(h.agent_id),
                    root: (h.tgid, h.start_ns),
                    start: self.ts(h.ktime_ns),
                    live: 0,
                    events: 0,
                },
            );
        }
        true
    }

    /// The process table's side of a record: a fork inserts the child (inheriting the parent's
    /// exe, args and cwd), an exec updates the image, any other record from an unknown process
    /// inserts it.
    fn track(&mut self, rec: &Record, h: &Header) {
        match rec {
            Record::Fork { body, .. } => {
                let parent = self.procs.by_tgid(h.ppid).cloned();
                // The tool call the child works for: its parent's, or the one its parent (the
                // agent) has open right now.
                let call = parent
                    .as_ref()
                    .and_then(|p| p.call.clone())
                    .or_else(|| self.spans.for_child(h.session_id, h.ppid));
                let p = Proc {
                    call,
                    tgid: h.tgid,
                    start_ns: h.start_ns,
                    ppid: h.ppid,
                    parent_start_ns: body.parent_start_ns,
                    exe: parent.as_ref().map(|p| p.exe.clone()).unwrap_or_default(),
                    comm: h.comm.clone(),
                    args: parent.as_ref().map(|p| p.args.clone()).unwrap_or_default(),
                    args_truncated: parent.as_ref().is_some_and(|p| p.args_truncated),
                    args_len: parent.as_ref().and_then(|p| p.args_len),
                    cwd: parent.as_ref().map(|p| p.cwd.clone()).unwrap_or_default(),
                    session: h.session_id,
                    ..Default::default()
                };
                // pid reuse: an old process with this pid is gone.
                self.procs.retire_reused(h.tgid, h.start_ns);
                self.insert_proc(p);
            }
            Record::Exec {
                body,
                exe,
                cwd,
                argv,
                ..
            } => {
                let known = self.procs.current(h).is_some();
                if !known {
                    self.insert_proc(Proc {
                        tgid: h.tgid,
                        start_ns: h.start_ns,
                        ppid: h.ppid,
                        parent_start_ns: body.parent_start_ns,
                        session: h.session_id,
                        ..Default::default()
                    });
                }
                let mut args = argv.clone();
                let redacted = self.redactor.redact(&mut args);
                if let Some(p) = self.procs.current_mut(h) {
                    p.exe = exe.path.clone();
                    p.comm = h.comm.clone();
                    p.args = args;
                    p.args_redacted = redacted;
                    p.args_truncated = body.flags & ARGV_TRUNCATED != 0;
                    p.args_len = Some(body.argv_orig_len);
                    p.cwd = cwd.path.clone();
                    p.session = h.session_id;
                }
            }
            _ => {
                if h.session_id != 0 && self.procs.current(h).is_none() {
                    self.insert_proc(Proc {
                        tgid: h.tgid,
                        start_ns: h.start_ns,
                        ppid: h.ppid,
                        comm: h.comm.clone(),
                        session: h.session_id,
                        ..Default::default()
                    });
                }
            }
        }
    }

    /// After a `process.exit`: the process is no longer live; the last one ends its session
    /// (`session.end`).
    fn exited(&mut self, h: &Header, out: &mut Vec<Event>) {
        self.procs.exited(h);
        let ended = match self.sessions.get_mut(&h.session_id) {
            Some(s) => {
                s.live = s.live.saturating_sub(1);
                s.live == 0
            }
            None => false,
        };
        if ended {
            let t = self.ts(h.ktime_ns);
            out.push(self.session_event(
                Kind::SessionEnd,
                h.session_id,
                h.tgid,
                t,
                "last process exited",
            ));
            self.end_session(h.session_id);
        }
    }

    fn end_session(&mut self, id: u64) {
        self.spans.end_session(id);
        self.procs.end_session(id);
        self.sessions.remove(&id);
    }

    fn base_event(&mut self, kind: Kind, h: &Header) -> Event {
        let id = self.next_id();
        let unknown;
        let p = match self.procs.current(h) {
            Some(p) => p,
            None => {
                unknown = Proc {
                    tgid: h.tgid,
                    start_ns: h.start_ns,
                    comm: h.comm.clone(),
                    ..Default::default()
                };
                &unknown
            }
        };
        let mut process = self.process_of(p, h.pid);
        process.comm = h.comm.clone();
        process.uid = h.uid;
        process.gid = h.gid;
        let (parent, ancestry) = self.lineage(p, h.session_id);
        let mut intent = p.call.as_ref().map(intent::kernel_intent);
        if intent.is_none()
            && h.session_id != 0
            && let Some(span) = self.spans.for_agent(h.session_id, p.tgid)
        {
            intent = Some(intent::agent_intent(span));
        }
        if h.session_id != 0
            && self.spans.undeclared(h.session_id, p.tgid, p.call.as_ref())
            && p.exe.as_bytes() != self.own_exe.as_slice()
        {
            intent.get_or_insert_with(Default::default).undeclared = true;
        }
        let session = self.sessions.get(&h.session_id);
        Event {
            id,
            time: self.ts(h.ktime_ns),
            host: self.host.clone(),
            kind: KindField(kind),
            agent: session.map(|s| AgentRef {
                name: s.agent.clone(),
            }),
            // A process outside every session that reached agentwatch itself has none.
            session: (h.session_id != 0).then(|| SessionRef {
                id: session_id_string(h.session_id),
            }),
            process,
            parent,
            ancestry,
            intent,
            ..Default::default()
        }
    }

    /// Parent and the exe chain up to the session root.
    fn lineage(&self, p: &Proc, session: u64) -> (Option<Parent>, Vec<BStr>) {
        let root = self.sessions.get(&session).map(|s| s.root);
        let (parent_proc, chain) = self.procs.ancestry(p, session, root);
        let parent = Some(Parent {
            pid: p.ppid,
            start: parent_proc.map(|pp| self.ts(pp.start_ns)),
            exe: parent_proc.map(|pp| pp.exe.clone()).unwrap_or_default(),
        });
        (parent, chain)
    }

    pub fn session_list(&self) -> Vec<&Session> {
        let mut v: Vec<_> = self.sessions.values().collect();
        v.sort_by_key(|s| s.start);
        v
    }
}

#[cfg(test)]
mod tests;
