//! Process table and session bookkeeping: turns decoded kernel records into enriched events.
//!
//! Processes are keyed by (pid, start time). Every event gets its agent, session, parent and
//! ancestry (executables from the parent up to the session root). Exited processes stay in the
//! table while their session lives so that orphans reparented to init keep their ancestry.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use agent_common::{
    ARGV_TRUNCATED, ATIME_NOW, ATIME_OMIT, BPF_OWN, EXE_DELETED, EXE_MEMFD, EXE_WRITABLE_DIR,
    FD_OP, FLOW_CLOSE, FLOW_EXIT, MTIME_NOW, MTIME_OMIT, OBJ_LINK, OBJ_MAP, OBJ_PROG,
    REC_NEW_SESSION, REC_PROVISIONAL, RecordKind, TARGET_DAEMON, TARGET_OTHER_SESSION,
    TARGET_SAME_SESSION, VIA_IO_URING,
};
use agent_model::decode::{Header, Record, dns_question, dns_type_name};
use agent_model::{
    AgentRef, BStr, Dns, Event, Exit, File, Kind, KindField, Monitor, Net, Op, Parent, Priv,
    Process, SessionRef, Target, Timestamp, session_id_string,
};

use crate::redact::Redactor;

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
}

#[derive(Clone, Debug)]
pub struct Session {
    pub id: u64,
    pub agent: String,
    pub root: (u32, u64),
    pub start: Timestamp,
    pub live: u64,
    pub events: u64,
}

/// Something the sensor must do in the kernel after a record.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Remove these pids from the session map (a provisional session that did not match).
    Drop(Vec<u32>),
    /// Clear the provisional flag of this pid's session entry.
    Confirm(u32, u64, u32),
}

/// Agent name lookup and exe-glob confirmation, from the config.
pub trait Agents {
    fn name(&self, id: u32) -> String;
    /// For a provisional session: does the full exe path match agent `id`'s globs?
    fn confirm_exe(&self, id: u32, exe: &str) -> bool;
}

pub struct Tracker {
    pub host: String,
    instance: String,
    seq: u64,
    /// realtime - boottime, ns.
    boot_offset: i64,
    live: HashMap<u32, u64>,
    procs: HashMap<(u32, u64), Proc>,
    pub sessions: HashMap<u64, Session>,
    rejected: HashSet<u64>,
    /// Events delivered, by kind id.
    pub delivered: HashMap<u32, u64>,
    redactor: Redactor,
}

pub fn boot_offset_ns() -> i64 {
    let mut rt = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let mut bt = rt;
    // SAFETY: clock_gettime writes a valid timespec.
    unsafe {
        libc::clock_gettime(libc::CLOCK_REALTIME, &mut rt);
        libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut bt);
    }
    (rt.tv_sec - bt.tv_sec) * 1_000_000_000 + (rt.tv_nsec - bt.tv_nsec)
}

/// `file.via` of a file record: how the agent asked for the operation.
fn file_via(flags: u32) -> Option<String> {
    Some(
        if flags & VIA_IO_URING != 0 {
            "io_uring"
        } else {
            "syscall"
        }
        .into(),
    )
}

fn o_flag_names(flags: u32) -> Vec<String> {
    const NAMES: &[(u32, &str)] = &[
        (0o100, "O_CREAT"),
        (0o200, "O_EXCL"),
        (0o400, "O_NOCTTY"),
        (0o1000, "O_TRUNC"),
        (0o2000, "O_APPEND"),
        (0o4000, "O_NONBLOCK"),
        (0o10000, "O_DSYNC"),
        (0o200000, "O_DIRECTORY"),
        (0o400000, "O_NOFOLLOW"),
        (0o1000000, "O_NOATIME"),
        (0o2000000, "O_CLOEXEC"),
        (0o10000000, "O_PATH"),
        (0o20000000, "O_TMPFILE_BIT"),
    ];
    let mut out = vec![
        match flags & 3 {
            0 => "O_RDONLY",
            1 => "O_WRONLY",
            _ => "O_RDWR",
        }
        .to_owned(),
    ];
    for (bit, name) in NAMES {
        if flags & bit != 0 {
            out.push((*name).to_owned());
        }
    }
    out
}

/// Kernel-internal `dev_t` (major << 20 | minor) to the encoding `stat(2)` reports.
pub fn user_dev(kdev: u32) -> u64 {
    let major = (kdev >> 20) as u64;
    let minor = (kdev & 0xfffff) as u64;
    ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & !0xff) << 12) | ((major & !0xfff) << 32)
}

fn file_type(i_mode: u32) -> Option<String> {
    Some(
        match i_mode & 0o170000 {
            0o100000 => "file",
            0o040000 => "dir",
            0o120000 => "symlink",
            0o020000 => "char",
            0o060000 => "block",
            0o010000 => "fifo",
            0o140000 => "socket",
            _ => return None,
        }
        .to_owned(),
    )
}

fn protocol_name(p: u16, sock_type: u16) -> String {
    match (p, sock_type) {
        (6, _) => "tcp".into(),
        (17, _) => "udp".into(),
        (1, _) => "icmp".into(),
        (58, _) => "icmpv6".into(),
        (136, _) => "udplite".into(),
        (0, 1) => "stream".into(),
        (0, 2) => "dgram".into(),
        (0, 5) => "seqpacket".into(),
        (0, 3) => "raw".into(),
        (n, _) => n.to_string(),
    }
}

impl Tracker {
    pub fn new(host: String) -> Tracker {
        let instance = format!(
            "{:08x}",
            (Timestamp::now().0 as u64 ^ std::process::id() as u64) as u32
        );
        Tracker {
            host,
            instance,
            seq: 0,
            boot_offset: boot_offset_ns(),
            live: HashMap::new(),
            procs: HashMap::new(),
            sessions: HashMap::new(),
            rejected: HashSet::new(),
            delivered: HashMap::new(),
            redactor: Redactor::defaults(),
        }
    }

    pub fn set_redactor(&mut self, r: Redactor) {
        self.redactor = r;
    }

    fn next_id(&mut self) -> String {
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

    /// A user-space-created session (registration or /proc seeding).
    pub fn open_session(&mut self, id: u64, agent: &str, mut root: Proc) -> Event {
        root.args_redacted = self.redactor.redact(&mut root.args);
        let start = Timestamp::now();
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
        if let Some(p) = self.proc_by_tgid(tgid) {
            ev.process = self.process_of(p, tgid);
        }
        ev
    }

    /// Whether the process (tgid, start time) has not exited.
    pub fn is_live(&self, tgid: u32, start_ns: u64) -> bool {
        self.live.get(&tgid) == Some(&start_ns)
    }

    fn proc_by_tgid(&self, tgid: u32) -> Option<&Proc> {
        let start = self.live.get(&tgid)?;
        self.procs.get(&(tgid, *start))
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
            time: Timestamp::now(),
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
        let outside = h.session_id == 0;
        if outside && let Some(p) = self.current(&h) {
            h.session_id = p.session;
        }
        let unattributed = h.session_id == 0;
        if self.rejected.contains(&h.session_id) {
            return (out, actions);
        }
        // Sessions opened in the kernel by a selector.
        if let Record::Exec { body, exe, .. } = &rec
            && body.flags & REC_NEW_SESSION != 0
            && !self.sessions.contains_key(&h.session_id)
        {
            if body.flags & REC_PROVISIONAL != 0 {
                if agents.confirm_exe(h.agent_id, &exe.path.to_str_lossy()) {
                    actions.push(Action::Confirm(h.tgid, h.session_id, h.agent_id));
                } else {
                    self.rejected.insert(h.session_id);
                    actions.push(Action::Drop(vec![h.tgid]));
                    return (out, actions);
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
        if !unattributed && !self.sessions.contains_key(&h.session_id) {
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
        let kind = match h.kind {
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
            RecordKind::Send => match &rec {
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
        };
        // Update the process table first so the event shows the new state.
        match &rec {
            Record::Fork { body, .. } => {
                let parent = self.proc_by_tgid(h.ppid).cloned();
                let p = Proc {
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
                if let Some(old) = self.live.get(&h.tgid).copied()
                    && old != h.start_ns
                    && let Some(o) = self.procs.get_mut(&(h.tgid, old))
                {
                    o.exited = true;
                }
                self.insert_proc(p);
            }
            Record::Exec {
                body,
                exe,
                cwd,
                argv,
                ..
            } => {
                let known = self.current(&h).is_some();
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
                if let Some(p) = self.current_mut(&h) {
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
                if !unattributed && self.current(&h).is_none() {
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
        let mut ev = self.base_event(kind, &h);
        let mut extra: Option<(u32, u32)> = None;
        match rec {
            Record::Exec {
                body,
                filename,
                exe,
                ..
            } => {
                ev.process.euid = Some(body.euid);
                ev.process.egid = Some(body.egid);
                ev.process.filename = filename;
                let mut m = markers(body.markers);
                let base = exe
                    .path
                    .as_bytes()
                    .rsplit(|b| *b == b'/')
                    .next()
                    .unwrap_or(&[]);
                if base.starts_with(b"ld-linux") || base.starts_with(b"ld-musl") || base == b"ld.so"
                {
                    m.push("ld_loader".into());
                }
                ev.process.exec_markers = m;
                // A setuid/setgid binary changed the effective ids at exec (sudo, su, pkexec).
                if body.euid != h.uid || body.egid != h.gid {
                    extra = Some((body.euid, body.egid));
                }
            }
            Record::Exit { body, .. } => {
                let code = body.exit_code;
                let sig = (code & 0x7f) as i32;
                ev.exit = Some(if sig == 0 {
                    Exit {
                        code: Some(((code >> 8) & 0xff) as i32),
                        ..Default::default()
                    }
                } else {
                    Exit {
                        signal: Some(sig),
                        core_dumped: code & 0x80 != 0,
                        ..Default::default()
                    }
                });
            }
            Record::Fork { .. } => {}
            Record::Open { body, path, .. } => {
                // The kernel keeps neither the creation flags nor O_CLOEXEC (an fd flag) in f_flags.
                let flags =
                    body.f_flags | (body.req_flags & (0o100 | 0o200 | 0o400 | 0o1000 | 0o2000000));
                ev.file = Some(File {
                    path: path.path,
                    path_truncated: path.truncated,
                    dev: Some(user_dev(body.dev)),
                    ino: Some(body.ino),
                    access: Some(
                        match flags & 3 {
                            0 => "read",
                            1 => "write",
                            _ => "read_write",
                        }
                        .into(),
                    ),
                    flags: o_flag_names(flags),
                    r#type: file_type(body.i_mode),
                    mode: Some(body.i_mode & 0o7777),
                    fd: Some(body.fd),
                    via: file_via(body.flags),
                    ..Default::default()
                });
            }
            Record::PathOp {
                body,
                dir,
                name,
                dir2,
                name2,
                ..
            } => {
                let fd_op = body.flags & FD_OP != 0;
                let path = if fd_op {
                    dir.path.clone()
                } else {
                    dir.resolve(&name, body.name_skip)
                };
                // Names that started with a magic link the kernel resolved stay as passed.
                let path_arg = (body.name_skip != 0).then(|| name.clone());
                let (target, target_arg) = match h.kind {
                    RecordKind::Rename | RecordKind::Link => (
                        Some(dir2.resolve(&name2, body.name2_skip)),
                        (body.name2_skip != 0).then(|| name2.clone()),
                    ),
                    RecordKind::Symlink => (Some(name2), None),
                    _ => (None, None),
                };
                let mut f = File {
                    path,
                    target,
                    path_arg,
                    target_arg,
                    path_truncated: dir.truncated,
                    via: file_via(body.flags),
                    ..Default::default()
                };
                if fd_op {
                    f.ino = Some(body.ino);
                    f.markers = markers((body.flags >> 8) & 0xff);
                }
                match h.kind {
                    RecordKind::Chmod | RecordKind::Mkdir => {
                        f.mode = Some(body.arg0 as u32 & 0o7777)
                    }
                    RecordKind::Chown => {
                        f.owner_uid = (body.arg0 as u32 != u32::MAX).then_some(body.arg0 as u32);
                        f.owner_gid = (body.arg1 as u32 != u32::MAX).then_some(body.arg1 as u32);
                    }
                    RecordKind::Truncate | RecordKind::Write => f.size = Some(body.arg0),
                    RecordKind::Utime => {
                        let time = |t: u64, now: u32, omit: u32| -> String {
                            if body.flags & now != 0 {
                                "now".into()
                            } else if body.flags & omit != 0 {
                                "omit".into()
                            } else {
                                Timestamp(t as i64).to_rfc3339()
                            }
                        };
                        f.atime = Some(time(body.arg0, ATIME_NOW, ATIME_OMIT));
                        f.mtime = Some(time(body.arg1, MTIME_NOW, MTIME_OMIT));
                    }
                    _ => {}
                }
                ev.file = Some(f);
            }
            Record::Sys {
                body, name, name2, ..
            } => {
                let relation = |t: u32| -> String {
                    if t & TARGET_DAEMON != 0 {
                        "daemon"
                    } else if t & TARGET_SAME_SESSION != 0 {
                        "same_session"
                    } else if t & TARGET_OTHER_SESSION != 0 {
                        "other_session"
                    } else {
                        "outside"
                    }
                    .into()
                };
                let mut op = Op {
                    name: syscall_name(body.op).into(),
                    ..Default::default()
                };
                let obj = |b: BStr| (!b.is_empty()).then_some(b);
                match h.kind {
                    RecordKind::PrivChange => {
                        ev.r#priv = Some(Priv {
                            op: syscall_name(body.op).into(),
                            uid: body.arg0 as u32,
                            euid: (body.arg0 >> 32) as u32,
                            gid: body.arg1 as u32,
                            egid: (body.arg1 >> 32) as u32,
                            caps: Some(format!("{:x}", body.arg2)),
                        });
                    }
                    RecordKind::Ptrace => {
                        op.name = ptrace_name(body.op).into();
                        ev.target = Some(self.target(body.target_tgid, relation(body.target)));
                        ev.op = Some(op);
                    }
                    RecordKind::Signal => {
                        op.name = signal_name(body.op as i32);
                        op.signal = Some(body.op as i32);
                        op.result = Some(body.ret);
                        ev.target = Some(self.target(body.target_tgid, relation(body.target)));
                        ev.op = Some(op);
                    }
                    RecordKind::Bpf => {
                        op.name = bpf_cmd_name(body.op);
                        op.r#type = match body.arg2 {
                            _ if body.op == 5 => Some(bpf_prog_type(body.arg0 as u32)),
                            OBJ_PROG => Some("prog".into()),
                            OBJ_MAP => Some("map".into()),
                            OBJ_LINK => Some("link".into()),
                            _ => None,
                        };
                        op.object_id = (body.arg1 != 0).then_some(body.arg1);
                        if body.flags & BPF_OWN != 0 {
                            ev.target = Some(self.target(body.target_tgid, relation(body.target)));
                        }
                        let n: Vec<u8> = body
                            .fstype
                            .iter()
                            .copied()
                            .take_while(|b| *b != 0)
                            .collect();
                        op.object = obj(BStr(n));
                        op.result = Some(body.ret);
                        ev.op = Some(op);
                    }
                    RecordKind::Mount => {
                        let t: Vec<u8> = body
                            .fstype
                            .iter()
                            .copied()
                            .take_while(|b| *b != 0)
                            .collect();
                        op.r#type =
                            (!t.is_empty()).then(|| String::from_utf8_lossy(&t).into_owned());
                        op.object = obj(name);
                        op.target_path = obj(name2);
                        ev.op = Some(op);
                    }
                    RecordKind::Namespace => {
                        op.flags = ns_flags(body.arg0);
                        // An nsfs file has no stored name: the kernel shows `uts:[inode]`.
                        let name = if (name.is_empty() || name.as_bytes() == b"/") && body.arg1 != 0
                        {
                            ns_file_name(body.arg0, body.arg1)
                                .map(BStr::from)
                                .unwrap_or(name)
                        } else {
                            name
                        };
                        op.object = obj(name);
                        ev.op = Some(op);
                    }
                    RecordKind::Memfd => {
                        op.flags = memfd_flags(body.arg0);
                        op.object = obj(name);
                        ev.op = Some(op);
                    }
                    RecordKind::Module => {
                        // Attempts are reported too: the result says whether the kernel loaded it.
                        op.object = obj(name);
                        op.result = Some(body.ret);
                        ev.op = Some(op);
                    }
                    _ => {
                        op.object = obj(name);
                        ev.op = Some(op);
                    }
                }
            }
            Record::Sock {
                body,
                unix_path,
                payload,
                flow,
                ..
            } => {
                if let Some((qname, qtype)) =
                    (body.dport == 53).then(|| dns_question(&payload)).flatten()
                {
                    ev.dns = Some(Dns {
                        qname,
                        qtype: dns_type_name(qtype),
                    });
                }
                let ip = |b: [u8; 16], v6: bool| -> IpAddr {
                    if v6 {
                        IpAddr::V6(Ipv6Addr::from(b))
                    } else {
                        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                    }
                };
                let mut net = Net {
                    protocol: Some(protocol_name(body.protocol, body.sock_type)),
                    bytes: match flow {
                        Some(f) => Some(f.sent),
                        None => (h.kind == RecordKind::Send).then_some(body.bytes as u64),
                    },
                    bytes_received: flow.map(|f| f.received),
                    flow_state: flow.map(|f| {
                        match f.state {
                            FLOW_CLOSE => "close",
                            FLOW_EXIT => "exit",
                            _ => "update",
                        }
                        .to_owned()
                    }),
                    flow_ms: flow.map(|f| h.ktime_ns.saturating_sub(f.first_ns) / 1_000_000),
                    via: flow.is_none().then(|| {
                        if body.flags & VIA_IO_URING != 0 {
                            "io_uring"
                        } else if body.fd < 0 {
                            "tcp_state"
                        } else {
                            "syscall"
                        }
                        .into()
                    }),
                    ..Default::default()
                };
                match body.family {
                    2 | 10 => {
                        let v6 = body.family == 10;
                        net.family = if v6 { "ipv6" } else { "ipv4" }.into();
                        net.src_ip = Some(ip(body.saddr, v6));
                        net.src_port = Some(body.sport);
                        if h.kind != RecordKind::Listen {
                            net.dst_ip = Some(ip(body.daddr, v6));
                            net.dst_port = Some(body.dport);
                        }
                    }
                    1 => {
                        net.family = "unix".into();
                        let mut p = unix_path.0;
                        while p.last() == Some(&0) && p.len() > 1 {
                            p.pop();
                        }
                        if p.first() == Some(&0) {
                            p[0] = b'@';
                        }
                        if !p.is_empty() {
                            net.unix_path = Some(BStr(p));
                        }
                    }
                    f => net.family = f.to_string(),
                }
                ev.net = Some(net);
            }
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
            if let Some(p) = self.current_mut(&h) {
                p.exited = true;
            }
            self.live.remove(&h.tgid);
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
        (out, actions)
    }

    fn end_session(&mut self, id: u64) {
        self.procs.retain(|_, p| p.session != id || !p.exited);
        self.sessions.remove(&id);
    }

    fn current(&self, h: &Header) -> Option<&Proc> {
        let start = self.live.get(&h.tgid)?;
        let p = self.procs.get(&(h.tgid, *start))?;
        // Seeded entries carry a tick-precision start time.
        (p.start_ns == h.start_ns || p.approx_start).then_some(p)
    }

    fn current_mut(&mut self, h: &Header) -> Option<&mut Proc> {
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

    fn base_event(&mut self, kind: Kind, h: &Header) -> Event {
        let id = self.next_id();
        let unknown;
        let p = match self.current(h) {
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
            ..Default::default()
        }
    }

    /// Parent and the exe chain up to the session root.
    fn lineage(&self, p: &Proc, session: u64) -> (Option<Parent>, Vec<BStr>) {
        let parent_proc = self.parent_of(p);
        let parent = Some(Parent {
            pid: p.ppid,
            start: parent_proc.map(|pp| self.ts(pp.start_ns)),
            exe: parent_proc.map(|pp| pp.exe.clone()).unwrap_or_default(),
        });
        let mut chain = Vec::new();
        let mut cur = parent_proc;
        let root = self.sessions.get(&session).map(|s| s.root);
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
        (parent, chain)
    }

    fn target(&self, tgid: u32, relation: String) -> Target {
        let exe = self
            .proc_by_tgid(tgid)
            .map(|p| p.exe.clone())
            .filter(|e| !e.is_empty())
            .or_else(|| {
                std::fs::read_link(format!("/proc/{tgid}/exe"))
                    .ok()
                    .map(|p| BStr(p.as_os_str().as_encoded_bytes().to_vec()))
            })
            .unwrap_or_default();
        Target {
            pid: tgid,
            relation,
            exe,
        }
    }

    fn parent_of(&self, p: &Proc) -> Option<&Proc> {
        if p.ppid == 0 || p.ppid == p.tgid {
            return None;
        }
        if p.parent_start_ns != 0
            && let Some(pp) = self.procs.get(&(p.ppid, p.parent_start_ns))
        {
            return Some(pp);
        }
        self.proc_by_tgid(p.ppid)
    }

    pub fn session_list(&self) -> Vec<&Session> {
        let mut v: Vec<_> = self.sessions.values().collect();
        v.sort_by_key(|s| s.start);
        v
    }
}

fn markers(m: u32) -> Vec<String> {
    let mut v = Vec::new();
    if m & EXE_MEMFD != 0 {
        v.push("memfd".into());
    }
    if m & EXE_DELETED != 0 {
        v.push("deleted".into());
    }
    if m & EXE_WRITABLE_DIR != 0 {
        v.push("writable_dir".into());
    }
    v
}

fn syscall_name(nr: u32) -> &'static str {
    match nr {
        105 => "setuid",
        106 => "setgid",
        113 => "setreuid",
        114 => "setregid",
        117 => "setresuid",
        119 => "setresgid",
        126 => "capset",
        165 => "mount",
        429 => "move_mount",
        175 => "init_module",
        313 => "finit_module",
        272 => "unshare",
        308 => "setns",
        56 => "clone",
        435 => "clone3",
        319 => "memfd_create",
        311 => "process_vm_writev",
        321 => "bpf",
        _ => "syscall",
    }
}

fn ptrace_name(req: u32) -> &'static str {
    match req {
        4 => "PTRACE_POKETEXT",
        5 => "PTRACE_POKEDATA",
        6 => "PTRACE_POKEUSER",
        13 => "PTRACE_SETREGS",
        16 => "PTRACE_ATTACH",
        0x4206 => "PTRACE_SEIZE",
        311 => "process_vm_writev",
        _ => "ptrace",
    }
}

fn signal_name(sig: i32) -> String {
    const N: [&str; 32] = [
        "0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    N.get(sig as usize)
        .map_or_else(|| format!("SIGRT{sig}"), |s| (*s).to_owned())
}

/// A bpf() command by name (`bpf_map_get_fd_by_id`), as the UAPI's `enum bpf_cmd` spells it.
fn bpf_cmd_name(cmd: u32) -> String {
    const NAMES: [&str; 37] = [
        "map_create",
        "map_lookup_elem",
        "map_update_elem",
        "map_delete_elem",
        "map_get_next_key",
        "prog_load",
        "obj_pin",
        "obj_get",
        "prog_attach",
        "prog_detach",
        "prog_test_run",
        "prog_get_next_id",
        "map_get_next_id",
        "prog_get_fd_by_id",
        "map_get_fd_by_id",
        "obj_get_info_by_fd",
        "prog_query",
        "raw_tracepoint_open",
        "btf_load",
        "btf_get_fd_by_id",
        "task_fd_query",
        "map_lookup_and_delete_elem",
        "map_freeze",
        "btf_get_next_id",
        "map_lookup_batch",
        "map_lookup_and_delete_batch",
        "map_update_batch",
        "map_delete_batch",
        "link_create",
        "link_update",
        "link_get_fd_by_id",
        "link_get_next_id",
        "enable_stats",
        "iter_create",
        "link_detach",
        "prog_bind_map",
        "token_create",
    ];
    match NAMES.get(cmd as usize) {
        Some(n) => format!("bpf_{n}"),
        None => format!("bpf_{cmd}"),
    }
}

fn bpf_prog_type(t: u32) -> String {
    match t {
        1 => "socket_filter".into(),
        2 => "kprobe".into(),
        3 => "sched_cls".into(),
        5 => "tracepoint".into(),
        6 => "xdp".into(),
        7 => "perf_event".into(),
        8 => "cgroup_skb".into(),
        17 => "raw_tracepoint".into(),
        26 => "tracing".into(),
        29 => "lsm".into(),
        n => n.to_string(),
    }
}

/// Names of the bits of `f` that a table knows.
fn flag_names(table: &[(u64, &str)], f: u64) -> Vec<String> {
    table
        .iter()
        .filter(|(b, _)| f & b != 0)
        .map(|(_, n)| (*n).to_owned())
        .collect()
}

const NS_FLAGS: &[(u64, &str)] = &[
    (0x0002_0000, "CLONE_NEWNS"),
    (0x0200_0000, "CLONE_NEWCGROUP"),
    (0x0400_0000, "CLONE_NEWUTS"),
    (0x0800_0000, "CLONE_NEWIPC"),
    (0x1000_0000, "CLONE_NEWUSER"),
    (0x2000_0000, "CLONE_NEWPID"),
    (0x4000_0000, "CLONE_NEWNET"),
    (0x80, "CLONE_NEWTIME"),
];

fn ns_flags(f: u64) -> Vec<String> {
    flag_names(NS_FLAGS, f)
}

/// The name the kernel gives a namespace file (`/proc/PID/ns/*` links): `uts:[4026531838]`.
fn ns_file_name(flags: u64, ino: u64) -> Option<String> {
    let ty = [
        (0x0400_0000, "uts"),
        (0x0800_0000, "ipc"),
        (0x4000_0000, "net"),
        (0x2000_0000, "pid"),
        (0x1000_0000, "user"),
        (0x0002_0000, "mnt"),
        (0x0200_0000, "cgroup"),
        (0x80, "time"),
    ]
    .iter()
    .find(|(b, _)| flags & b != 0)?
    .1;
    Some(format!("{ty}:[{ino}]"))
}

fn memfd_flags(f: u64) -> Vec<String> {
    flag_names(
        &[
            (1, "MFD_CLOEXEC"),
            (2, "MFD_ALLOW_SEALING"),
            (4, "MFD_HUGETLB"),
            (8, "MFD_NOEXEC_SEAL"),
            (0x10, "MFD_EXEC"),
        ],
        f,
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use agent_common::{ExecBody, ForkBody, RecordHeader};
    use agent_model::decode::{body_bytes, decode, encode};

    struct NoAgents;
    impl Agents for NoAgents {
        fn name(&self, id: u32) -> String {
            format!("agent{id}")
        }
        fn confirm_exe(&self, _id: u32, exe: &str) -> bool {
            exe.ends_with("/good")
        }
    }

    fn hdr(kind: RecordKind, tgid: u32, start: u64, ppid: u32, session: u64) -> RecordHeader {
        RecordHeader {
            kind: kind as u32,
            tgid,
            pid: tgid,
            start_ns: start,
            ppid,
            session_id: session,
            agent_id: 1,
            ..Default::default()
        }
    }

    fn exec(tgid: u32, start: u64, ppid: u32, session: u64, exe: &[u8], flags: u32) -> Record {
        let tail = [exe, b"\0"].concat();
        let body = ExecBody {
            exe_len: tail.len() as u32,
            flags,
            ..Default::default()
        };
        decode(&encode(
            &hdr(RecordKind::Exec, tgid, start, ppid, session),
            &body_bytes(&body),
            &tail,
        ))
        .unwrap()
    }

    fn fork(tgid: u32, start: u64, ppid: u32, pstart: u64, session: u64) -> Record {
        let body = ForkBody {
            parent_start_ns: pstart,
            ..Default::default()
        };
        decode(&encode(
            &hdr(RecordKind::Fork, tgid, start, ppid, session),
            &body_bytes(&body),
            &[],
        ))
        .unwrap()
    }

    #[test]
    fn ancestry_follows_the_chain_to_the_session_root() {
        let mut t = Tracker::new("h".into());
        t.on_record(exec(10, 1, 1, 7, b"agent\0bin", REC_NEW_SESSION), &NoAgents);
        t.on_record(fork(11, 2, 10, 1, 7), &NoAgents);
        t.on_record(exec(11, 2, 10, 7, b"bash\0bin", 0), &NoAgents);
        t.on_record(fork(12, 3, 11, 2, 7), &NoAgents);
        let (evs, _) = t.on_record(exec(12, 3, 11, 7, b"cat\0bin", 0), &NoAgents);
        let ev = evs.last().unwrap();
        assert_eq!(ev.process.exe, BStr::from("/bin/cat"));
        assert_eq!(ev.parent.as_ref().unwrap().exe, BStr::from("/bin/bash"));
        assert_eq!(
            ev.ancestry,
            vec![BStr::from("/bin/bash"), BStr::from("/bin/agent")]
        );
        assert_eq!(ev.agent.as_ref().unwrap().name, "agent1");
    }

    #[test]
    fn pid_reuse_does_not_mix_identities() {
        let mut t = Tracker::new("h".into());
        t.on_record(exec(10, 1, 1, 7, b"agent\0bin", REC_NEW_SESSION), &NoAgents);
        t.on_record(fork(20, 5, 10, 1, 7), &NoAgents);
        t.on_record(exec(20, 5, 10, 7, b"old\0bin", 0), &NoAgents);
        // pid 20 is reused by a new process with another start time.
        t.on_record(fork(20, 9, 10, 1, 7), &NoAgents);
        let (evs, _) = t.on_record(exec(20, 9, 10, 7, b"new\0bin", 0), &NoAgents);
        let ev = evs.last().unwrap();
        assert_eq!(ev.process.exe, BStr::from("/bin/new"));
        assert_eq!(ev.process.start, t.ts(9));
        assert!(t.procs.get(&(20, 5)).unwrap().exited);
        assert_eq!(t.procs.get(&(20, 5)).unwrap().exe, BStr::from("/bin/old"));
    }

    #[test]
    fn unconfirmed_provisional_session_is_dropped_with_its_events() {
        let mut t = Tracker::new("h".into());
        let (evs, acts) = t.on_record(
            exec(30, 1, 1, 9, b"bad\0x", REC_NEW_SESSION | REC_PROVISIONAL),
            &NoAgents,
        );
        assert!(evs.is_empty());
        assert_eq!(acts, vec![Action::Drop(vec![30])]);
        let (evs, _) = t.on_record(fork(31, 2, 30, 1, 9), &NoAgents);
        assert!(evs.is_empty());
        let (evs, acts) = t.on_record(
            exec(40, 1, 1, 10, b"good\0x", REC_NEW_SESSION | REC_PROVISIONAL),
            &NoAgents,
        );
        assert_eq!(evs.len(), 2, "session.start and process.exec");
        assert_eq!(acts, vec![Action::Confirm(40, 10, 1)]);
    }
}
