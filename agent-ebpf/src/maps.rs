//! Every map of the sensor, the `CONFIG` global the loader fills, and the two macros that read
//! it.
//!
//! One home for the maps because the loader finds them by name (`#[map(name = ...)]` is the
//! contract with agent-user's loader and `agent_common::MAP_*`) and because several probe
//! families share most of them. Readers and record builders live in `read` and `record`; this
//! module depends on nothing else in the crate.

use agent_common::{COMM_LEN, EXE_KEY_LEN, FlowEntry, SCRATCH_SIZE, SensorConfig, SessionInfo};
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
};

/// Set by the loader before load (see `agent_common::SensorConfig`).
#[unsafe(no_mangle)]
// SAFETY: SensorConfig is plain integers, for which all-zero bytes are a valid value.
pub(crate) static CONFIG: SensorConfig = unsafe { core::mem::zeroed() };

#[map(name = "EVENTS")]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// Byte counters per socket of agent processes (see `flow_account`).
#[map(name = "FLOWS")]
pub(crate) static FLOWS: LruHashMap<u64, FlowEntry> = LruHashMap::with_max_entries(16384, 0);

#[map(name = "SESSIONS")]
pub(crate) static SESSIONS: HashMap<u32, SessionInfo> = HashMap::with_max_entries(65536, 0);

#[map(name = "LOSS")]
pub(crate) static LOSS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(agent_common::KIND_SLOTS, 0);

#[map(name = "ERRORS")]
pub(crate) static ERRORS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(agent_common::KIND_SLOTS, 0);

#[map(name = "SCRATCH")]
pub(crate) static SCRATCH: PerCpuArray<[u8; SCRATCH_SIZE]> = PerCpuArray::with_max_entries(1, 0);

/// What the filter hands the handler it tail-calls, so the handler repeats no lookup.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct SysCall {
    /// The x86_64 syscall number.
    pub(crate) nr: u64,
    /// `ARGS_*` mode.
    pub(crate) mode: u64,
    /// User address of the arguments when they are in memory (`socketcall`, old 32-bit `mmap`).
    pub(crate) args: u64,
    /// The caller's session.
    pub(crate) session: SessionInfo,
}

#[map(name = "SYSNR")]
pub(crate) static SYSNR: PerCpuArray<SysCall> = PerCpuArray::with_max_entries(1, 0);

/// One per-CPU word used to hide a value's history from the verifier (see `launder`).
#[map(name = "VARS")]
pub(crate) static VARS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "SEL_COMM")]
pub(crate) static SEL_COMM: HashMap<[u8; COMM_LEN], u32> = HashMap::with_max_entries(256, 0);

#[map(name = "SEL_EXE")]
pub(crate) static SEL_EXE: HashMap<[u8; EXE_KEY_LEN], u32> = HashMap::with_max_entries(256, 0);

#[map(name = "SEL_UID")]
pub(crate) static SEL_UID: HashMap<u32, u32> = HashMap::with_max_entries(256, 0);

#[map(name = "SEL_CGROUP")]
pub(crate) static SEL_CGROUP: HashMap<u64, u32> = HashMap::with_max_entries(1024, 0);

/// Tail-call targets of `sys_exit`, by syscall family. Each handler is its own program, so the
/// verifier checks them separately and the filter in front stays tiny.
#[map(name = "HANDLERS")]
pub(crate) static HANDLERS: ProgramArray = ProgramArray::with_max_entries(16, 0);

/// agentwatch's own programs, maps and links (`agent_common::MAP_OWN_IDS`): key
/// `(OBJ_* << 32) | id`. Filled by the daemon after attaching; read by `h_bpf`.
#[map(name = "OWN_IDS")]
pub(crate) static OWN_IDS: HashMap<u64, u32> = HashMap::with_max_entries(1024, 0);

/// The daemon's files (`agent_common::MAP_PROTECT`): key `[kernel dev, inode]`, value
/// `PROTECT_*` bits. Filled by the daemon before attaching; read by `h_open`.
#[map(name = "PROTECT")]
pub(crate) static PROTECT: HashMap<[u64; 2], u32> = HashMap::with_max_entries(1024, 0);

/// Files of inline kill rules (`agent_common::MAP_KILL_OPEN`): key `[kernel dev, inode]`, value
/// `KILL_*` bits. Filled by the daemon from the policy; read by `h_open` for session processes.
#[map(name = "KILL_OPEN")]
pub(crate) static KILL_OPEN: HashMap<[u64; 2], u32> = HashMap::with_max_entries(4096, 0);

/// io_uring send requests whose submission sent an `IO_PENDING` record: their completion sends
/// the result (one lookup per send completion of a session process).
#[map(name = "IO_SENDS")]
pub(crate) static IO_SENDS: LruHashMap<u64, u8> = LruHashMap::with_max_entries(4096, 0);

/// (tgid, struct file *) pairs that already produced a `file.write`.
#[map(name = "WRITTEN")]
pub(crate) static WRITTEN: LruHashMap<[u64; 2], u8> = LruHashMap::with_max_entries(16384, 0);

/// Byte offset of a kernel struct member, as the loader read it from BTF into `CONFIG.offsets`.
macro_rules! off {
    ($f:ident) => {
        // SAFETY: CONFIG is a plain global in .rodata; volatile keeps the loader's value.
        (unsafe { core::ptr::read_volatile(&$crate::maps::CONFIG.offsets.$f) }) as usize
    };
}
pub(crate) use off;

/// A field of `CONFIG` other than the offsets.
macro_rules! config {
    ($f:ident) => {
        // SAFETY: as in `off!`.
        unsafe { core::ptr::read_volatile(&$crate::maps::CONFIG.$f) }
    };
}
pub(crate) use config;

/// The daemon's heartbeat and the fail-closed setting (`agent_common::MAP_GUARD`).
#[map(name = "GUARD")]
pub(crate) static GUARD: Array<u64> = Array::with_max_entries(agent_common::GUARD_SLOTS, 0);

/// A slot of `GUARD` (0 when unreadable).
#[inline(always)]
pub(crate) fn guard(slot: u32) -> u64 {
    GUARD.get(slot).copied().unwrap_or(0)
}

/// The session of thread group `tgid`, if it is in one.
#[inline(always)]
pub(crate) fn session_of(tgid: u32) -> Option<SessionInfo> {
    // SAFETY: the value is copied out immediately.
    unsafe { SESSIONS.get(tgid) }.copied()
}

/// Egress policy of each agent (`agent_common::MAP_EGRESS_AGENTS`), filled by the daemon.
#[map(name = "EGRESS_AGENTS")]
pub(crate) static EGRESS_AGENTS: HashMap<u32, u32> = HashMap::with_max_entries(1024, 0);

/// Allowed destinations per policy (`agent_common::MAP_EGRESS_ALLOW`), filled by the daemon.
#[map(name = "EGRESS_ALLOW")]
pub(crate) static EGRESS_ALLOW: aya_ebpf::maps::LpmTrie<agent_common::EgressKey, u8> =
    aya_ebpf::maps::LpmTrie::with_max_entries(
        agent_common::EGRESS_ALLOW_MAX,
        aya_ebpf::bindings::BPF_F_NO_PREALLOC,
    );

/// Counters of the egress programs (`agent_common::MAP_EGRESS_STATS`).
#[map(name = "EGRESS_STATS")]
pub(crate) static EGRESS_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(4, 0);

/// Destinations a session's own DNS answers named for allow-listed host names
/// (`agent_common::MAP_EGRESS_DNS`), filled by the daemon; value: expiry, boot-time ns.
#[map(name = "EGRESS_DNS")]
pub(crate) static EGRESS_DNS: LruHashMap<agent_common::DnsAllowKey, u64> =
    LruHashMap::with_max_entries(agent_common::EGRESS_DNS_MAX, 0);
