//! Loads the eBPF object, writes the BTF-derived offsets and settings into it, fills the
//! selector maps from the config, and attaches every program. The only module that uses aya.

use std::collections::BTreeMap;

use agent_common::{
    COMM_LEN, EXE_KEY_LEN, GLOBAL_CONFIG, KIND_SLOTS, MAP_ERRORS, MAP_EVENTS, MAP_LOSS,
    MAP_SEL_CGROUP, MAP_SEL_COMM, MAP_SEL_EXE, MAP_SEL_UID, MAP_SESSIONS, SensorConfig,
    SessionInfo,
};
use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, ProgramArray, RingBuf},
    programs::BtfTracePoint,
};

use crate::btf;
use crate::config::Config;

/// The eBPF object built by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/agent-ebpf"));

/// BTF tracepoints attached, in order (sessions are inherited at fork, so fork goes first).
const BTF_PROGRAMS: &[&str] = &[
    "sched_process_fork",
    "sched_process_exec",
    "sched_process_exit",
    "inet_sock_set_state",
    "io_uring_submit_req",
    "io_uring_complete",
    "signal_generate",
    "sock_send_length",
    "sock_recv_length",
    "tcp_destroy_sock",
    // The syscall-exit filter last: it tail-calls the handlers loaded before it.
    "sys_exit",
];

/// `sys_exit` handlers, tail-called from the filter program by syscall family (their index in
/// the `HANDLERS` program array).
const HANDLER_PROGRAMS: &[(&str, u32)] = &[
    ("h_open", 0),
    ("h_path", 1),
    ("h_net", 2),
    ("h_proc", 3),
    ("h_io", 4),
    ("h_path2", 5),
    ("h_fdop", 6),
    ("h_utime", 7),
    ("h_bpf", 8),
];

/// Write agentwatch's own program, map and link ids into `OWN_IDS`, so the kernel can tell when
/// a bpf() command reaches one of them (a tamper attempt, reported from any process). Maps are
/// the ones the programs use; links the ones attached to the programs.
fn own_ids(ebpf: &mut aya::Ebpf) -> Result<()> {
    use agent_common::{MAP_OWN_IDS, OBJ_LINK, OBJ_MAP, OBJ_PROG};
    let mut progs = std::collections::BTreeSet::new();
    let mut maps = std::collections::BTreeSet::new();
    for (name, p) in ebpf.programs() {
        let info = p
            .info()
            .with_context(|| format!("cannot read the id of program `{name}`"))?;
        progs.insert(info.id());
        if let Ok(Some(ids)) = info.map_ids() {
            maps.extend(ids);
        }
    }
    let links: Vec<u32> = aya::programs::loaded_links()
        .filter_map(|l| l.ok())
        .filter(|l| progs.contains(&l.program_id()))
        .map(|l| l.id())
        .collect();
    let mut own: HashMap<_, u64, u32> = HashMap::try_from(
        ebpf.take_map(MAP_OWN_IDS)
            .ok_or_else(|| anyhow!("no map `{MAP_OWN_IDS}`"))?,
    )?;
    let keys = progs
        .iter()
        .map(|id| OBJ_PROG << 32 | *id as u64)
        .chain(maps.iter().map(|id| OBJ_MAP << 32 | *id as u64))
        .chain(links.iter().map(|id| OBJ_LINK << 32 | *id as u64));
    for k in keys {
        own.insert(k, 1, 0)
            .context("cannot record agentwatch's own bpf ids")?;
    }
    Ok(())
}

/// The loaded sensor: maps user space reads and writes, and the attached program names.
pub struct Sensor {
    /// Kept alive: dropping it detaches the programs.
    _ebpf: Ebpf,
    pub ring: RingBuf<MapData>,
    pub sessions: HashMap<MapData, u32, SessionInfo>,
    pub loss: PerCpuArray<MapData, u64>,
    pub errors: PerCpuArray<MapData, u64>,
    /// Per-socket byte counters of agent processes (see `source::FlowReporter`).
    pub flows: HashMap<MapData, u64, agent_common::FlowEntry>,
    cgroups: HashMap<MapData, u64, u32>,
    /// Kept so the tail-call table lives as long as the sensor.
    _handlers: ProgramArray<MapData>,
    pub programs: Vec<String>,
    pub ringbuf_bytes: u32,
}

/// Check what the kernel must provide, with a one-line cause and a hint.
pub fn preflight() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "the daemon must run as root (it loads eBPF programs); hint: `sudo agentwatch daemon`"
        );
    }
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        bail!(
            "the kernel has no BTF (`/sys/kernel/btf/vmlinux` is missing); hint: use a kernel built with CONFIG_DEBUG_INFO_BTF=y (5.8 or later)"
        );
    }
    Ok(())
}

fn key<const N: usize>(s: &str) -> [u8; N] {
    let mut k = [0u8; N];
    let b = s.as_bytes();
    let n = b.len().min(N - 1);
    k[..n].copy_from_slice(&b[..n]);
    k
}

impl Sensor {
    /// Load and attach. `ringbuf_bytes` overrides the config (the loss test uses a tiny ring).
    pub fn load(cfg: &Config, ringbuf_bytes: u32) -> Result<Sensor> {
        preflight()?;
        // Older kernels charge BPF memory to RLIMIT_MEMLOCK.
        let rlim = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit reads a valid rlimit struct.
        unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) };

        let kbtf = btf::Btf::from_sys()?;
        let offsets =
            btf::offsets(&kbtf).context("this kernel lacks a structure the sensor reads")?;
        let have_exe = cfg.agents.iter().any(|a| !a.exe.is_empty());
        let have_other = cfg
            .agents
            .iter()
            .any(|a| !a.comm.is_empty() || !a.uid.is_empty() || !a.cgroup.is_empty());
        let kcfg = SensorConfig {
            offsets,
            daemon_tgid: std::process::id(),
            wakeup_bytes: (ringbuf_bytes / 4).max(1),
            have_exe_selectors: have_exe as u32,
            // cgroup ids are added later by `refresh_cgroups`, so keep the check on when any
            // agent has a cgroup selector.
            have_other_selectors: have_other as u32,
        };
        let aya_btf =
            aya::Btf::from_sys_fs().context("cannot load kernel BTF for tp_btf programs")?;
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&aya_btf))
            .override_global(GLOBAL_CONFIG, &kcfg, true)
            .map_max_entries(MAP_EVENTS, ringbuf_bytes)
            .load(OBJECT)
            .context("loading the eBPF object failed")?;

        // Selectors first, so the first exec after attaching is already matched.
        let mut sel_comm: HashMap<_, [u8; COMM_LEN], u32> = HashMap::try_from(
            ebpf.take_map(MAP_SEL_COMM)
                .ok_or_else(|| anyhow!("no map `{MAP_SEL_COMM}`"))?,
        )?;
        let mut sel_exe: HashMap<_, [u8; EXE_KEY_LEN], u32> = HashMap::try_from(
            ebpf.take_map(MAP_SEL_EXE)
                .ok_or_else(|| anyhow!("no map `{MAP_SEL_EXE}`"))?,
        )?;
        let mut sel_uid: HashMap<_, u32, u32> = HashMap::try_from(
            ebpf.take_map(MAP_SEL_UID)
                .ok_or_else(|| anyhow!("no map `{MAP_SEL_UID}`"))?,
        )?;
        for (i, a) in cfg.agents.iter().enumerate() {
            let id = i as u32 + 1;
            for c in &a.comm {
                sel_comm.insert(key::<COMM_LEN>(c), id, 0)?;
            }
            for (g, _) in &a.exe {
                let base = g.rsplit('/').next().unwrap_or("");
                sel_exe.insert(key::<EXE_KEY_LEN>(base), id, 0)?;
            }
            for u in &a.uid {
                sel_uid.insert(*u, id, 0)?;
            }
        }
        let cgroups: HashMap<_, u64, u32> = HashMap::try_from(
            ebpf.take_map(MAP_SEL_CGROUP)
                .ok_or_else(|| anyhow!("no map `{MAP_SEL_CGROUP}`"))?,
        )?;

        // Handlers first: the filter program jumps to them as soon as it is attached.
        let mut handlers: ProgramArray<_> = ProgramArray::try_from(
            ebpf.take_map("HANDLERS")
                .ok_or_else(|| anyhow!("no map `HANDLERS`"))?,
        )?;
        for (name, idx) in HANDLER_PROGRAMS {
            let p: &mut BtfTracePoint = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("program `{name}` missing from the object"))?
                .try_into()?;
            p.load("sys_exit", &aya_btf)
                .with_context(|| format!("the kernel refused handler `{name}`"))?;
            handlers.set(*idx, p.fd()?, 0)?;
        }
        let mut programs = Vec::new();
        for name in BTF_PROGRAMS {
            let p: &mut BtfTracePoint = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("program `{name}` missing from the object"))?
                .try_into()?;
            p.load(name, &aya_btf).with_context(|| {
                format!("the kernel refused BTF tracepoint `{name}`; hint: the kernel needs BPF_PROG_TYPE_TRACING (5.5+) and BTF")
            })?;
            p.attach()
                .with_context(|| format!("attaching `tp_btf/{name}` failed"))?;
            programs.push(format!("tp_btf/{name}"));
        }
        own_ids(&mut ebpf)?;
        // Keep the selector maps alive with the object (they are referenced by the programs,
        // which hold their own references; dropping our handles is fine).
        drop((sel_comm, sel_exe, sel_uid));

        let ring = RingBuf::try_from(
            ebpf.take_map(MAP_EVENTS)
                .ok_or_else(|| anyhow!("no map `{MAP_EVENTS}`"))?,
        )?;
        let sessions = HashMap::try_from(
            ebpf.take_map(MAP_SESSIONS)
                .ok_or_else(|| anyhow!("no map `{MAP_SESSIONS}`"))?,
        )?;
        let loss = PerCpuArray::try_from(
            ebpf.take_map(MAP_LOSS)
                .ok_or_else(|| anyhow!("no map `{MAP_LOSS}`"))?,
        )?;
        let flows = HashMap::try_from(
            ebpf.take_map(agent_common::MAP_FLOWS)
                .ok_or_else(|| anyhow!("no map `{}`", agent_common::MAP_FLOWS))?,
        )?;
        let errors = PerCpuArray::try_from(
            ebpf.take_map(MAP_ERRORS)
                .ok_or_else(|| anyhow!("no map `{MAP_ERRORS}`"))?,
        )?;
        Ok(Sensor {
            _ebpf: ebpf,
            ring,
            sessions,
            loss,
            errors,
            flows,
            cgroups,
            _handlers: handlers,
            programs,
            ringbuf_bytes,
        })
    }

    /// Sum of a per-CPU counter array, by slot.
    pub fn counters(map: &PerCpuArray<MapData, u64>) -> BTreeMap<u32, u64> {
        let mut out = BTreeMap::new();
        for slot in 0..KIND_SLOTS {
            if let Ok(vals) = map.get(&slot, 0) {
                let sum: u64 = vals.iter().sum();
                if sum > 0 {
                    out.insert(slot, sum);
                }
            }
        }
        out
    }

    /// Put a process into a session (registration by `agentwatch run`, or /proc seeding).
    pub fn add_to_session(&mut self, tgid: u32, info: SessionInfo) -> Result<()> {
        self.sessions
            .insert(tgid, info, 0)
            .with_context(|| format!("cannot add pid `{tgid}` to the session map"))
    }

    pub fn remove_from_session(&mut self, tgid: u32) {
        let _ = self.sessions.remove(&tgid);
    }

    /// Resolve cgroup path globs to cgroup ids (cgroup v2 directory inode numbers).
    pub fn refresh_cgroups(&mut self, cfg: &Config) {
        use std::os::unix::fs::MetadataExt as _;
        let root = std::path::Path::new("/sys/fs/cgroup");
        if !cfg.agents.iter().any(|a| !a.cgroup.is_empty()) {
            return;
        }
        let mut stack = vec![root.to_path_buf()];
        let mut seen = 0usize;
        while let Some(dir) = stack.pop() {
            seen += 1;
            if seen > 100_000 {
                break;
            }
            let rel = format!("/{}", dir.strip_prefix(root).unwrap_or(&dir).display());
            for (i, a) in cfg.agents.iter().enumerate() {
                if a.cgroup.iter().any(|(_, g)| g.is_match(&rel))
                    && let Ok(md) = std::fs::metadata(&dir)
                {
                    let _ = self.cgroups.insert(md.ino(), i as u32 + 1, 0);
                }
            }
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        stack.push(e.path());
                    }
                }
            }
        }
    }
}
