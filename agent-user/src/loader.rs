// Over 800 lines: one `Sensor` owns every map it loads, fills, checks and repairs; pinning and adoption live in `loader/pin.rs`.
//! Loads the eBPF object, writes the BTF-derived offsets and settings into it, fills the
//! selector maps from the config, and attaches every program. The only module that uses aya
//! (with its child `pin`, which keeps the sensor running across daemon restarts).

use std::collections::BTreeMap;

use agent_common::{
    COMM_LEN, EXE_KEY_LEN, GLOBAL_CONFIG, KIND_SLOTS, MAP_ERRORS, MAP_EVENTS, MAP_LOSS,
    MAP_SEL_CGROUP, MAP_SEL_COMM, MAP_SEL_EXE, MAP_SEL_UID, MAP_SESSIONS, SensorConfig,
    SessionInfo,
};
use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, ProgramArray},
    programs::{BtfTracePoint, links::FdLink},
};

pub mod pin;
pub mod ring;

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
    ("h_xattr", 9),
];

/// Write agentwatch's own program, map and link ids into `OWN_IDS`, so the kernel can tell when
/// a bpf() command reaches one of them (a tamper attempt, reported from any process). Maps are
/// the ones the programs use; links the ones attached to the programs.
/// `OWN_IDS` and the entries written into it.
type OwnIds = (HashMap<MapData, u64, u32>, Vec<(u64, u32)>);

/// The ids of the bpf links of `progs` this process holds: its own link fds and, when pinned,
/// the links pinned in `pins` (opened here, so the fds are this process's). Read from
/// `/proc/self/fdinfo` (`link_id`, `prog_id`) rather than by listing every link on the host,
/// which would reach other processes' links with bpf() — another daemon on the host reports that
/// as tampering with its own.
fn own_link_ids(progs: &std::collections::BTreeSet<u32>, pins: Option<&pin::PinDir>) -> Vec<u32> {
    let held: Vec<aya::programs::links::PinnedLink> = pins
        .map(|p| p.links())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(_, path)| aya::programs::links::PinnedLink::from_pin(path).ok())
        .collect();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/fdinfo")
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let field = |name: &str| -> Option<u32> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        };
        if let (Some(link), Some(prog)) = (field("link_id:"), field("prog_id:"))
            && progs.contains(&prog)
        {
            out.push(link);
        }
    }
    drop(held);
    out.sort_unstable();
    out.dedup();
    out
}

fn own_ids(ebpf: &mut aya::Ebpf, pins: Option<&pin::PinDir>) -> Result<OwnIds> {
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
    let links = own_link_ids(&progs, pins);
    let mut own: HashMap<_, u64, u32> = HashMap::try_from(
        ebpf.take_map(MAP_OWN_IDS)
            .ok_or_else(|| anyhow!("no map `{MAP_OWN_IDS}`"))?,
    )?;
    let keys = progs
        .iter()
        .map(|id| OBJ_PROG << 32 | *id as u64)
        .chain(maps.iter().map(|id| OBJ_MAP << 32 | *id as u64))
        .chain(links.iter().map(|id| OBJ_LINK << 32 | *id as u64));
    let want: Vec<(u64, u32)> = keys.map(|k| (k, 1)).collect();
    for (k, v) in &want {
        own.insert(*k, *v, 0)
            .context("cannot record agentwatch's own bpf ids")?;
    }
    Ok((own, want))
}

/// The loaded sensor: maps user space reads and writes, and the attached program names.
pub struct Sensor {
    /// Kept alive: dropping it detaches the programs.
    ebpf: Ebpf,
    /// The event ring, committed only up to what the store holds (`ring`).
    pub ring: ring::Ring,
    pub sessions: HashMap<MapData, u32, SessionInfo>,
    pub loss: PerCpuArray<MapData, u64>,
    pub errors: PerCpuArray<MapData, u64>,
    /// Per-socket byte counters of agent processes (see `source::FlowReporter`).
    pub flows: HashMap<MapData, u64, agent_common::FlowEntry>,
    cgroups: HashMap<MapData, u64, u32>,
    /// The tail-call table, and what the daemon put in it (checked by `check_maps`).
    handlers: ProgramArray<MapData>,
    guard: Guard,
    pub programs: Vec<String>,
    pub ringbuf_bytes: u32,
    /// Files of inline kill rules (`KILL_OPEN`), and the keys the daemon put there.
    kill_open: HashMap<MapData, [u64; 2], u32>,
    kill_open_keys: Vec<[u64; 2]>,
    /// The `KILL_OPEN` entries the daemon wrote (checked by `check_maps`).
    kill_open_want: Vec<([u64; 2], u32)>,
    /// Where maps and links are pinned (`None`: not pinned; they go with the daemon).
    pins: Option<pin::PinDir>,
    /// What this daemon took over from an earlier one's pins.
    pub adopted: Option<pin::Adopted>,
    /// The heartbeat and fail-closed setting (`GUARD`).
    guard_map: Array<MapData, u64>,
    /// When the daemon's loop last ticked (monotonic ns), read by the heartbeat thread.
    progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The egress programs' maps (`sockaddr`).
    pub egress: crate::sockaddr::EgressMaps,
    /// TLS plaintext uprobes and the files they are attached to.
    pub tls: crate::tls_probes::TlsProbes,
    /// `[intent] tls`: attach uprobes to executables sessions run.
    tls_uprobes: bool,
}

/// The maps other than `SESSIONS` that a process with bpf() could edit to blind the sensor, and
/// the contents the daemon wrote into them: the authoritative copy `check_maps` restores.
struct Guard {
    /// A second handle on `HANDLERS` for lookups (aya's `ProgramArray` has no `get`).
    handlers_lookup: MapData,
    /// (index, program name, program id) of every handler.
    handlers_want: Vec<(u32, &'static str, u32)>,
    sel_comm: HashMap<MapData, [u8; COMM_LEN], u32>,
    sel_comm_want: Vec<([u8; COMM_LEN], u32)>,
    sel_exe: HashMap<MapData, [u8; EXE_KEY_LEN], u32>,
    sel_exe_want: Vec<([u8; EXE_KEY_LEN], u32)>,
    sel_uid: HashMap<MapData, u32, u32>,
    sel_uid_want: Vec<(u32, u32)>,
    own_ids: HashMap<MapData, u64, u32>,
    own_ids_want: Vec<(u64, u32)>,
    protect: HashMap<MapData, [u64; 2], u32>,
    protect_want: Vec<([u64; 2], u32)>,
    /// The paths `protect_want` was made from (to tell a live match from a reused inode).
    protect_paths: Vec<std::path::PathBuf>,
}

/// The kernel's encoding of a device number (`MAJOR << 20 | MINOR`, as in `super_block.s_dev`)
/// from the user-space `st_dev`.
fn kernel_dev(st_dev: u64) -> u64 {
    let major = ((st_dev >> 8) & 0xfff) | ((st_dev >> 32) & !0xfff);
    let minor = (st_dev & 0xff) | ((st_dev >> 12) & !0xff);
    (major << 20) | (minor & 0xf_ffff)
}

/// The `PROTECT` entries for the daemon's paths: each file itself, each directory and the
/// directories below it (to depth 3, at most 256), and procfs. Paths that do not exist are
/// skipped.
fn protect_entries(paths: &[std::path::PathBuf]) -> Vec<([u64; 2], u32)> {
    use agent_common::{PROTECT_DIR, PROTECT_FILE, PROTECT_PROCFS};
    use std::os::unix::fs::MetadataExt as _;
    let mut out: Vec<([u64; 2], u32)> = Vec::new();
    let mut add = |k: [u64; 2], v: u32| match out.iter_mut().find(|(w, _)| *w == k) {
        Some(e) => e.1 |= v,
        None => out.push((k, v)),
    };
    if let Ok(md) = std::fs::metadata("/proc/self") {
        add([kernel_dev(md.dev()), 0], PROTECT_PROCFS);
    }
    let mut dirs = 0;
    for p in paths {
        let Ok(md) = std::fs::metadata(p) else {
            continue;
        };
        if !md.is_dir() {
            add([kernel_dev(md.dev()), md.ino()], PROTECT_FILE);
            continue;
        }
        let mut stack = vec![(p.clone(), 0)];
        while let Some((d, depth)) = stack.pop() {
            let Ok(md) = std::fs::metadata(&d) else {
                continue;
            };
            dirs += 1;
            if dirs > 256 {
                break;
            }
            add([kernel_dev(md.dev()), md.ino()], PROTECT_DIR);
            if depth >= 3 {
                continue;
            }
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push((e.path(), depth + 1));
                }
            }
        }
    }
    out
}

/// One kernel map entry found not as the daemon left it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapRepair {
    /// The map (`HANDLERS`, `SEL_COMM`, ...).
    pub map: &'static str,
    /// What was wrong, e.g. ``entry `3` (h_proc) missing``.
    pub what: String,
    /// Whether the daemon put the entry back (or removed the added one).
    pub repaired: bool,
}

/// The id of the program at `index` of a program array (`BPF_MAP_LOOKUP_ELEM` on a program
/// array answers with the program's id), or `None` when the slot is empty.
fn prog_array_get(map: &MapData, index: u32) -> Option<u32> {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    #[repr(C)]
    struct Attr {
        map_fd: u32,
        pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    let mut value: u32 = 0;
    let attr = Attr {
        map_fd: map.fd().as_fd().as_raw_fd() as u32,
        pad: 0,
        key: &index as *const u32 as u64,
        value: &mut value as *mut u32 as u64,
        flags: 0,
    };
    // SAFETY: BPF_MAP_LOOKUP_ELEM (1) reads `attr` and writes 4 bytes to `value`, both alive
    // for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            1,
            &attr as *const Attr,
            std::mem::size_of::<Attr>(),
        )
    };
    (r == 0).then_some(value)
}

/// Compare a hash map with the entries the daemon wrote: missing or altered entries are put
/// back, entries nobody wrote are removed.
fn check_hash<K, V>(
    name: &'static str,
    map: &mut HashMap<MapData, K, V>,
    want: &[(K, V)],
    show: impl Fn(&K) -> String,
    out: &mut Vec<MapRepair>,
) where
    K: aya::Pod + PartialEq,
    V: aya::Pod + PartialEq + std::fmt::Debug,
{
    for (k, v) in want {
        let what = match map.get(k, 0) {
            Ok(have) if have == *v => continue,
            Ok(have) => format!("entry `{}` changed to {have:?}", show(k)),
            Err(_) => format!("entry `{}` missing", show(k)),
        };
        let repaired = map.insert(*k, *v, 0).is_ok();
        out.push(MapRepair {
            map: name,
            what,
            repaired,
        });
    }
    let extra: Vec<K> = map
        .keys()
        .filter_map(|k| k.ok())
        .filter(|k| !want.iter().any(|(w, _)| w == k))
        .take(256)
        .collect();
    for k in extra {
        let repaired = map.remove(&k).is_ok();
        out.push(MapRepair {
            map: name,
            what: format!("entry `{}` added", show(&k)),
            repaired,
        });
    }
}

/// A selector key as text (NUL-padded bytes).
fn key_text(k: &[u8]) -> String {
    let end = k.iter().position(|b| *b == 0).unwrap_or(k.len());
    String::from_utf8_lossy(&k[..end]).into_owned()
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
    /// Attach the TLS uprobes to an executable a session ran, if it exports `SSL_write` and
    /// was not inspected before (see `tls_probes`).
    pub fn attach_tls(&mut self, exe: &std::path::Path) {
        if !self.tls_uprobes {
            return;
        }
        let pins = self.pins.clone();
        let pin_fn = pins.map(|p| move |name: &str, link: FdLink| p.pin_link(name, link));
        let pin = pin_fn.as_ref().map(|f| f as crate::sockaddr::PinLink<'_>);
        let ids = self.tls.attach_file(&mut self.ebpf, exe, pin);
        if !ids.is_empty() {
            self.own_links(&ids);
            self.programs.push(format!("uprobe/{}", exe.display()));
        }
    }

    /// Add link ids to `OWN_IDS` (links attached after the loader recorded the others).
    fn own_links(&mut self, ids: &[u32]) {
        let g = &mut self.guard;
        for id in ids {
            let k = agent_common::OBJ_LINK << 32 | u64::from(*id);
            if g.own_ids_want.iter().any(|(w, _)| *w == k) {
                continue;
            }
            if g.own_ids.insert(k, 1, 0).is_ok() {
                g.own_ids_want.push((k, 1));
            }
        }
    }

    /// Add program ids to `OWN_IDS` (the programs of adopted links).
    fn own_programs(&mut self, ids: &[u32]) {
        let g = &mut self.guard;
        for id in ids {
            let k = agent_common::OBJ_PROG << 32 | u64::from(*id);
            if g.own_ids_want.iter().any(|(w, _)| *w == k) {
                continue;
            }
            if g.own_ids.insert(k, 1, 0).is_ok() {
                g.own_ids_want.push((k, 1));
            }
        }
    }

    /// The TLS uprobe links pinned for files this daemon did not attach again (an earlier
    /// daemon attached them when a session ran the file): they stay attached, their links and
    /// programs become this daemon's own (`OWN_IDS`), and their files are not attached twice.
    fn adopt_tls_pins(&mut self) {
        let Some(pins) = self.pins.clone() else {
            return;
        };
        let mut links = Vec::new();
        let mut progs = Vec::new();
        for (name, path) in pins.links() {
            let Some((dev, ino)) = crate::tls_probes::parse_link_name(&name) else {
                continue;
            };
            let info = aya::programs::links::PinnedLink::from_pin(&path)
                .map(FdLink::from)
                .and_then(|l| l.info());
            match info {
                Ok(i) => {
                    links.push(i.id());
                    progs.push(i.program_id());
                    self.tls.adopt_file(dev, ino);
                }
                Err(e) => {
                    tracing::warn!(pin = %path.display(), error = %e, "a pinned TLS link cannot be read; unpinned");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        self.own_links(&links);
        self.own_programs(&progs);
    }

    /// Load and attach. `ringbuf_bytes` overrides the config (the loss test uses a tiny ring).
    pub fn load(cfg: &Config, ringbuf_bytes: u32) -> Result<Sensor> {
        Self::load_pinned(cfg, ringbuf_bytes, None)
    }

    /// Load and attach with every map and link pinned for `data_dir` (see `pin`), adopting the
    /// pins an earlier daemon on the same data dir left. Pins that cannot be adopted (an object
    /// of another layout) are removed and the sensor starts afresh.
    pub fn load_pinned(
        cfg: &Config,
        ringbuf_bytes: u32,
        data_dir: Option<&std::path::Path>,
    ) -> Result<Sensor> {
        let Some(data_dir) = data_dir else {
            return Self::load_with(cfg, ringbuf_bytes, None);
        };
        let pins = pin::PinDir::for_data_dir(data_dir)?;
        if pins.adopting
            && let Some(pid) = pins.live_owner()
        {
            bail!(
                "a daemon (pid `{pid}`) already runs on data dir `{}` (its sensor is pinned in `{}`)",
                data_dir.display(),
                pins.dir.display()
            );
        }
        if !pins.adopting {
            return Self::load_with(cfg, ringbuf_bytes, Some(pins));
        }
        match Self::load_with(cfg, ringbuf_bytes, Some(pins.clone())) {
            Ok(s) => Ok(s),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), dir = %pins.dir.display(), "cannot adopt the pinned sensor; starting afresh");
                pins.remove();
                Self::load_with(
                    cfg,
                    ringbuf_bytes,
                    Some(pin::PinDir::for_data_dir(data_dir)?),
                )
            }
        }
    }

    fn load_with(cfg: &Config, ringbuf_bytes: u32, pins: Option<pin::PinDir>) -> Result<Sensor> {
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
        let adopting = pins.as_ref().is_some_and(|p| p.adopting);
        let mut prev_beat = 0;
        if let Some(p) = pins.as_ref().filter(|p| p.adopting) {
            prev_beat = p.announce()?;
        }
        let map_names = pin::map_names(OBJECT)?;
        let map_paths: Vec<(String, std::path::PathBuf)> = match &pins {
            Some(p) => map_names.iter().map(|n| (n.clone(), p.map(n))).collect(),
            None => Vec::new(),
        };
        let mut loader = EbpfLoader::new();
        loader
            .btf(Some(&aya_btf))
            .override_global(GLOBAL_CONFIG, &kcfg, true)
            .map_max_entries(MAP_EVENTS, ringbuf_bytes);
        for (n, path) in &map_paths {
            loader.map_pin_path(n.as_str(), path.as_path());
        }
        let mut ebpf = loader
            .load(OBJECT)
            .context("loading the eBPF object failed")?;
        let mut guard_map: Array<MapData, u64> = Array::try_from(
            ebpf.take_map(agent_common::MAP_GUARD)
                .ok_or_else(|| anyhow!("no map `{}`", agent_common::MAP_GUARD))?,
        )?;
        let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(pin::monotonic_ns()));
        {
            use aya::maps::IterableMap as _;
            use std::os::fd::AsFd as _;
            let fd = guard_map
                .map()
                .fd()
                .as_fd()
                .try_clone_to_owned()
                .context("cannot duplicate the GUARD map's fd")?;
            pin::spawn_heartbeat(fd, progress.clone())?;
        }
        guard_map.set(
            agent_common::GUARD_DAEMON_TGID,
            u64::from(std::process::id()),
            0,
        )?;
        // The ring first: what it buffered while no daemon ran is drained before the fresh
        // programs add to it.
        let events_map = ebpf
            .take_map(MAP_EVENTS)
            .ok_or_else(|| anyhow!("no map `{MAP_EVENTS}`"))?;
        let aya::maps::Map::RingBuf(events_map) = events_map else {
            return Err(anyhow!("map `{MAP_EVENTS}` is not a ring buffer"));
        };
        let mut ring = ring::Ring::new(events_map)?;
        let pending = if adopting {
            ring.producer_pos().saturating_sub(ring.committed())
        } else {
            0
        };
        let loss: PerCpuArray<MapData, u64> = PerCpuArray::try_from(
            ebpf.take_map(MAP_LOSS)
                .ok_or_else(|| anyhow!("no map `{MAP_LOSS}`"))?,
        )?;
        let adopted = if adopting {
            let backlog = pin::drain(&mut ring, pending);
            let now = pin::monotonic_ns();
            let loss_total: u64 = Self::counters(&loss).values().sum();
            let seen = guard_map
                .get(&agent_common::GUARD_LOSS_SEEN, 0)
                .unwrap_or(0);
            Some(pin::Adopted {
                downtime_ns: if prev_beat == 0 {
                    0
                } else {
                    now.saturating_sub(prev_beat)
                },
                backlog,
                buffered_bytes: pending,
                lost: loss_total.saturating_sub(seen),
            })
        } else {
            None
        };
        if adopting {
            // The earlier daemon's entries go; this daemon writes its own below.
            for name in [
                MAP_SEL_COMM,
                MAP_SEL_EXE,
                MAP_SEL_UID,
                MAP_SEL_CGROUP,
                agent_common::MAP_OWN_IDS,
                agent_common::MAP_PROTECT,
                agent_common::MAP_KILL_OPEN,
            ] {
                pin::clear_hash(&mut ebpf, name);
            }
        }

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
        let sel_comm_want: Vec<_> = sel_comm.iter().filter_map(|e| e.ok()).collect();
        let sel_exe_want: Vec<_> = sel_exe.iter().filter_map(|e| e.ok()).collect();
        let sel_uid_want: Vec<_> = sel_uid.iter().filter_map(|e| e.ok()).collect();
        let cgroups: HashMap<_, u64, u32> = HashMap::try_from(
            ebpf.take_map(MAP_SEL_CGROUP)
                .ok_or_else(|| anyhow!("no map `{MAP_SEL_CGROUP}`"))?,
        )?;

        // Handlers first: the filter program jumps to them as soon as it is attached.
        let handlers_map = ebpf
            .take_map("HANDLERS")
            .ok_or_else(|| anyhow!("no map `HANDLERS`"))?;
        let handlers_lookup = match &handlers_map {
            aya::maps::Map::ProgramArray(d) => MapData::from_id(d.info()?.id())
                .context("cannot open a second handle on `HANDLERS`")?,
            _ => bail!("map `HANDLERS` is not a program array"),
        };
        let mut handlers: ProgramArray<_> = ProgramArray::try_from(handlers_map)?;
        let mut handlers_want = Vec::new();
        for (name, idx) in HANDLER_PROGRAMS {
            let p: &mut BtfTracePoint = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("program `{name}` missing from the object"))?
                .try_into()?;
            p.load("sys_exit", &aya_btf)
                .with_context(|| format!("the kernel refused handler `{name}`"))?;
            handlers.set(*idx, p.fd()?, 0)?;
            handlers_want.push((*idx, *name, p.info()?.id()));
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
            let link = p
                .attach()
                .with_context(|| format!("attaching `tp_btf/{name}` failed"))?;
            if let Some(pins) = &pins {
                let link: FdLink = p.take_link(link)?.into();
                pins.pin_link(name, link)?;
            }
            programs.push(format!("tp_btf/{name}"));
        }
        let pin_fn = pins
            .clone()
            .map(|p| move |name: &str, link: FdLink| p.pin_link(name, link));
        let pin = pin_fn.as_ref().map(|f| f as crate::sockaddr::PinLink<'_>);
        // Egress programs are loaded before the ids are recorded (`sockaddr`); their links are
        // pinned, so the deny holds while no daemon runs.
        let (egress, egress_hooks) = crate::sockaddr::EgressMaps::load(
            &mut ebpf,
            !cfg.egress.is_empty() && cfg.response.enabled,
            pin,
        )?;
        if let Some(pins) = &pins {
            // An earlier daemon's links of programs this one did not attach (another version,
            // or egress no longer configured); TLS links stay (`adopt_tls_pins`).
            let mut attached: Vec<&str> = BTF_PROGRAMS.to_vec();
            if egress.attached.is_some() {
                attached.extend(crate::sockaddr::PROGRAMS.iter().map(|(n, _)| *n));
            }
            pins.drop_stale_links(&attached);
        }
        programs.extend(egress_hooks);
        crate::tls_probes::load(&mut ebpf)?;
        let (own_ids, own_ids_want) = own_ids(&mut ebpf, pins.as_ref())?;
        let kill_open = HashMap::try_from(
            ebpf.take_map(agent_common::MAP_KILL_OPEN)
                .ok_or_else(|| anyhow!("no map `{}`", agent_common::MAP_KILL_OPEN))?,
        )?;
        let protect = HashMap::try_from(
            ebpf.take_map(agent_common::MAP_PROTECT)
                .ok_or_else(|| anyhow!("no map `{}`", agent_common::MAP_PROTECT))?,
        )?;

        let sessions = HashMap::try_from(
            ebpf.take_map(MAP_SESSIONS)
                .ok_or_else(|| anyhow!("no map `{MAP_SESSIONS}`"))?,
        )?;
        let flows = HashMap::try_from(
            ebpf.take_map(agent_common::MAP_FLOWS)
                .ok_or_else(|| anyhow!("no map `{}`", agent_common::MAP_FLOWS))?,
        )?;
        let errors = PerCpuArray::try_from(
            ebpf.take_map(MAP_ERRORS)
                .ok_or_else(|| anyhow!("no map `{MAP_ERRORS}`"))?,
        )?;
        let mut tls = crate::tls_probes::TlsProbes::default();
        let mut tls_links = Vec::new();
        let libssl = if cfg.tls_uprobes {
            crate::tls_probes::system_libssl()
        } else {
            None
        };
        match libssl {
            _ if !cfg.tls_uprobes => {}
            Some(p) => {
                let ids = tls.attach_file(&mut ebpf, &p, pin);
                if ids.is_empty() {
                    tracing::warn!(
                        "no system libssl.so.3 with SSL_write: TLS plaintext only from executables that export it"
                    );
                } else {
                    tls_links.extend(ids);
                    programs.push(format!("uprobe/{}", p.display()));
                }
            }
            None => tracing::warn!(
                "no system libssl.so.3 with SSL_write: TLS plaintext only from executables that export it"
            ),
        }
        // Executables on PATH known to bundle OpenSSL: attached now, so their first run in a
        // session is seen too (an exec-time attach comes after the process started).
        let bundled = if cfg.tls_uprobes {
            crate::tls_probes::bundled_on_path()
        } else {
            Vec::new()
        };
        for p in bundled {
            let ids = tls.attach_file(&mut ebpf, &p, pin);
            if !ids.is_empty() {
                tls_links.extend(ids);
                programs.push(format!("uprobe/{}", p.display()));
            }
        }
        let mut sensor = Sensor {
            tls,
            tls_uprobes: cfg.tls_uprobes,
            ebpf,
            ring,
            sessions,
            loss,
            errors,
            flows,
            cgroups,
            handlers,
            guard: Guard {
                handlers_lookup,
                handlers_want,
                sel_comm,
                sel_comm_want,
                sel_exe,
                sel_exe_want,
                sel_uid,
                sel_uid_want,
                own_ids,
                own_ids_want,
                protect,
                protect_want: Vec::new(),
                protect_paths: Vec::new(),
            },
            programs,
            ringbuf_bytes,
            kill_open,
            kill_open_keys: Vec::new(),
            kill_open_want: Vec::new(),
            pins,
            adopted,
            guard_map,
            progress,
            egress,
        };
        sensor.own_links(&tls_links);
        sensor.adopt_tls_pins();
        Ok(sensor)
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

    /// Replace the files whose open by a session process the kernel kills (`KILL_OPEN`):
    /// `entries` are `(st_dev, inode, KILL_* bits)` from `stat`.
    pub fn set_kill_open(&mut self, entries: &[(u64, u64, u32)]) -> Result<()> {
        let want: Vec<([u64; 2], u32)> = entries
            .iter()
            .map(|&(dev, ino, bits)| ([kernel_dev(dev), ino], bits))
            .collect();
        for k in std::mem::take(&mut self.kill_open_keys) {
            if !want.iter().any(|(w, _)| *w == k) {
                let _ = self.kill_open.remove(&k);
            }
        }
        for (k, v) in &want {
            self.kill_open.insert(*k, *v, 0).with_context(|| {
                format!("cannot fill the `{}` map", agent_common::MAP_KILL_OPEN)
            })?;
            self.kill_open_keys.push(*k);
        }
        self.kill_open_want = want;
        Ok(())
    }

    /// Attach the egress programs now (a config reload brought the first `[[egress]]` table);
    /// the hooks attached are added to `programs`.
    /// Their links are pinned like those attached at start and become the daemon's own
    /// (`OWN_IDS`), so detaching them is a tamper event.
    pub fn attach_egress(&mut self) -> Result<Vec<String>> {
        let pins = self.pins.clone();
        let pin_fn = pins.map(|p| move |name: &str, link: FdLink| p.pin_link(name, link));
        let pin = pin_fn.as_ref().map(|f| f as crate::sockaddr::PinLink<'_>);
        let hooks = self.egress.attach(&mut self.ebpf, pin)?;
        if !hooks.is_empty() {
            let progs: Vec<u32> = crate::sockaddr::PROGRAMS
                .iter()
                .filter_map(|(name, _)| self.ebpf.program(name)?.info().ok().map(|i| i.id()))
                .collect();
            let progs: std::collections::BTreeSet<u32> = progs.into_iter().collect();
            let links = own_link_ids(&progs, self.pins.as_ref());
            self.own_links(&links);
        }
        self.programs.extend(hooks.iter().cloned());
        Ok(hooks)
    }

    /// Watch the daemon's files: opens of them for writing, and of its `/proc/PID/` entries that
    /// expose its memory, are reported from any process (`PROTECT`).
    pub fn protect_paths(&mut self, paths: &[std::path::PathBuf]) -> Result<()> {
        let g = &mut self.guard;
        g.protect_want = protect_entries(paths);
        g.protect_paths = paths.to_vec();
        for (k, v) in &g.protect_want {
            g.protect
                .insert(*k, *v, 0)
                .context("cannot fill the `PROTECT` map")?;
        }
        Ok(())
    }

    /// Whether an open the kernel judged the daemon's (`OPEN_DAEMON`, matched by device and
    /// inode in `PROTECT`) still names one of the daemon's files: the file itself is one now,
    /// or its directory is one of the daemon's directories now. A protected file or directory
    /// deleted since `protect_paths` frees its inode, which a new, unrelated file may get; such
    /// a match is stale. `dev` is the user-space `st_dev` of the opened file.
    pub fn still_protected(&self, path: &std::path::Path, dev: u64, ino: u64) -> bool {
        use agent_common::{PROTECT_DIR, PROTECT_FILE};
        use std::os::unix::fs::MetadataExt as _;
        let now = protect_entries(&self.guard.protect_paths);
        let has = |k: [u64; 2], bit: u32| now.iter().any(|(w, v)| *w == k && v & bit != 0);
        if has([kernel_dev(dev), ino], PROTECT_FILE) {
            return true;
        }
        path.parent()
            .and_then(|d| std::fs::metadata(d).ok())
            .is_some_and(|md| has([kernel_dev(md.dev()), md.ino()], PROTECT_DIR))
    }

    /// Compare `HANDLERS`, the selector maps, `OWN_IDS`, `PROTECT`, `KILL_OPEN` and the egress
    /// maps (`EGRESS_AGENTS`, `EGRESS_ALLOW`) with what the daemon wrote,
    /// put back what was removed or changed, remove what was added, and say what was found.
    pub fn check_maps(&mut self) -> Vec<MapRepair> {
        let mut out = Vec::new();
        let g = &mut self.guard;
        for (idx, name, id) in &g.handlers_want {
            let what = match prog_array_get(&g.handlers_lookup, *idx) {
                Some(have) if have == *id => continue,
                Some(have) => format!("entry `{idx}` ({name}) points at program id `{have}`"),
                None => format!("entry `{idx}` ({name}) missing"),
            };
            let repaired = self
                .ebpf
                .program(name)
                .and_then(|p| <&BtfTracePoint>::try_from(p).ok())
                .and_then(|p| p.fd().ok())
                .is_some_and(|fd| self.handlers.set(*idx, fd, 0).is_ok());
            out.push(MapRepair {
                map: "HANDLERS",
                what,
                repaired,
            });
        }
        for idx in 0..16u32 {
            if g.handlers_want.iter().any(|(i, ..)| *i == idx) {
                continue;
            }
            if let Some(have) = prog_array_get(&g.handlers_lookup, idx) {
                let repaired = self.handlers.clear_index(&idx).is_ok();
                out.push(MapRepair {
                    map: "HANDLERS",
                    what: format!("entry `{idx}` added (program id `{have}`)"),
                    repaired,
                });
            }
        }
        check_hash(
            MAP_SEL_COMM,
            &mut g.sel_comm,
            &g.sel_comm_want,
            |k| key_text(k),
            &mut out,
        );
        check_hash(
            MAP_SEL_EXE,
            &mut g.sel_exe,
            &g.sel_exe_want,
            |k| key_text(k),
            &mut out,
        );
        check_hash(
            MAP_SEL_UID,
            &mut g.sel_uid,
            &g.sel_uid_want,
            u32::to_string,
            &mut out,
        );
        check_hash(
            agent_common::MAP_OWN_IDS,
            &mut g.own_ids,
            &g.own_ids_want,
            |k| format!("{}:{}", k >> 32, k & 0xffff_ffff),
            &mut out,
        );
        check_hash(
            agent_common::MAP_PROTECT,
            &mut g.protect,
            &g.protect_want,
            |k| format!("dev {} inode {}", k[0], k[1]),
            &mut out,
        );
        check_hash(
            agent_common::MAP_KILL_OPEN,
            &mut self.kill_open,
            &self.kill_open_want,
            |k| format!("dev {} inode {}", k[0], k[1]),
            &mut out,
        );
        out.extend(
            self.egress
                .check()
                .into_iter()
                .map(|(map, what, repaired)| MapRepair {
                    map,
                    what,
                    repaired,
                }),
        );
        out
    }

    /// The daemon's tick: the loop's progress the heartbeat thread (`pin::spawn_heartbeat`)
    /// requires before it writes the heartbeat, and the loss total seen (so the next daemon can tell what
    /// was lost while none ran).
    pub fn heartbeat(&mut self) {
        let now = pin::monotonic_ns();
        self.progress
            .store(now, std::sync::atomic::Ordering::Relaxed);
        let loss: u64 = Self::counters(&self.loss).values().sum();
        let _ = self.guard_map.set(agent_common::GUARD_LOSS_SEEN, loss, 0);
    }

    /// Set fail-closed (`FAIL_CLOSED_*`): what the kernel does to session processes once the
    /// heartbeat is older than `after_secs`.
    pub fn set_fail_closed(&mut self, mode: u64, after_secs: u64) -> Result<()> {
        self.guard_map
            .set(
                agent_common::GUARD_AFTER_NS,
                after_secs.saturating_mul(1_000_000_000),
                0,
            )
            .context("cannot write the fail-closed delay")?;
        self.guard_map
            .set(agent_common::GUARD_MODE, mode, 0)
            .context("cannot write the fail-closed mode")?;
        Ok(())
    }

    /// Where the maps and links are pinned, if they are.
    pub fn pin_dir(&self) -> Option<&std::path::Path> {
        self.pins.as_ref().map(|p| p.dir.as_path())
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
