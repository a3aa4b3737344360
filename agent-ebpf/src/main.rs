//! agentwatch eBPF sensor.
//!
//! Tracepoint-family programs only (they load everywhere agentwatch runs; LSM and fentry may be
//! refused): sched tracepoints follow exec/fork/exit, the BTF `sys_exit` tracepoint reads the
//! kernel objects a syscall produced (the opened `struct file` through the fd table, the socket
//! behind a descriptor), `inet_sock_set_state` sees TCP connects and listens from any path, and
//! `io_uring_submit_req` with `io_uring_complete` cover io_uring-issued opens, connects,
//! accepts, path operations and UDP sends.
//!
//! Filtering happens here: every program first looks the current thread group up in `SESSIONS`
//! and returns at once when it is not part of an agent session. Sessions are inherited at fork,
//! so setsid, double fork and reparenting do not lose a descendant. Struct member offsets come
//! from BTF at load time through the `CONFIG` global; nothing is hard-coded for one kernel.
//! Records are assembled in a per-CPU scratch buffer and copied to the ring buffer; a failed
//! copy is counted per kind in `LOSS`, never dropped silently.
#![no_std]
#![no_main]
// `atomic_xadd` compiles to the BPF atomic add; core's AtomicU64 has no fetch_add on this target.
#![allow(internal_features)]
#![feature(core_intrinsics)]

use agent_common::{
    ARGV_TRUNCATED, COMM_LEN, Config, EXE_DELETED, EXE_KEY_LEN, EXE_MEMFD, EXE_WRITABLE_DIR,
    ExecBody, ExitBody, FD_OP, FLOW_CLOSE, FlowBody, FlowRecord, ForkBody, HEADER_LEN, IO_PENDING,
    IO_RESULT, MAX_NAME, MAX_PATH_DEPTH, NAME_IS_PATH, OpenBody, PATH_TRUNCATED, PATH2_TRUNCATED,
    PathOpBody, REC_NEW_SESSION, REC_PROVISIONAL, RecordHeader, RecordKind, SCRATCH_SIZE,
    SESSION_PROVISIONAL, SessionInfo, SockBody, SysBody, TARGET_DAEMON, TARGET_OTHER_SESSION,
    TARGET_SAME_SESSION, VIA_IO_URING,
};
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_task_btf, bpf_get_current_uid_gid, bpf_ktime_get_boot_ns,
        bpf_probe_read_kernel, generated,
    },
    macros::{btf_tracepoint, map},
    maps::{HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
    programs::BtfTracePointContext,
};

/// Set by the loader before load (see `agent_common::Config`).
#[unsafe(no_mangle)]
static CONFIG: Config = unsafe { core::mem::zeroed() };

#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// Byte counters per socket of agent processes (see `flow_account`).
#[map(name = "FLOWS")]
static FLOWS: LruHashMap<u64, FlowRecord> = LruHashMap::with_max_entries(16384, 0);

#[map(name = "SESSIONS")]
static SESSIONS: HashMap<u32, SessionInfo> = HashMap::with_max_entries(65536, 0);

#[map(name = "LOSS")]
static LOSS: PerCpuArray<u64> = PerCpuArray::with_max_entries(agent_common::KIND_SLOTS, 0);

#[map(name = "ERRORS")]
static ERRORS: PerCpuArray<u64> = PerCpuArray::with_max_entries(agent_common::KIND_SLOTS, 0);

#[map(name = "SCRATCH")]
static SCRATCH: PerCpuArray<[u8; SCRATCH_SIZE]> = PerCpuArray::with_max_entries(1, 0);

/// What the filter hands the handler it tail-calls, so the handler repeats no lookup.
#[derive(Clone, Copy)]
#[repr(C)]
struct SysCall {
    /// The x86_64 syscall number.
    nr: u64,
    /// `ARGS_*` mode.
    mode: u64,
    /// User address of the arguments when they are in memory (`socketcall`, old 32-bit `mmap`).
    args: u64,
    /// The caller's session.
    session: SessionInfo,
}

#[map(name = "SYSNR")]
static SYSNR: PerCpuArray<SysCall> = PerCpuArray::with_max_entries(1, 0);

/// One per-CPU word used to hide a value's history from the verifier (see `launder`).
#[map(name = "VARS")]
static VARS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "SEL_COMM")]
static SEL_COMM: HashMap<[u8; COMM_LEN], u32> = HashMap::with_max_entries(256, 0);

#[map(name = "SEL_EXE")]
static SEL_EXE: HashMap<[u8; EXE_KEY_LEN], u32> = HashMap::with_max_entries(256, 0);

#[map(name = "SEL_UID")]
static SEL_UID: HashMap<u32, u32> = HashMap::with_max_entries(256, 0);

#[map(name = "SEL_CGROUP")]
static SEL_CGROUP: HashMap<u64, u32> = HashMap::with_max_entries(1024, 0);

/// Writes into the scratch buffer land at `pos & POS_MASK`, so every write of up to
/// `SCRATCH_SIZE - POS_MASK - 1` bytes stays inside the buffer whatever `pos` is.
const POS_MASK: usize = 16383;
/// Stop appending variable data past this position (leaves room for one more component).
const POS_LIMIT: usize = POS_MASK - MAX_NAME;
const MAX_PATH_REGION: usize = 4096;
const MAX_ARGV: usize = 4095;
const MAX_FILENAME: usize = 2047;

// x86_64 syscall numbers (ABI constants, not kernel struct layout).
const NR_OPEN: u64 = 2;
const NR_CONNECT: u64 = 42;
const NR_ACCEPT: u64 = 43;
const NR_LISTEN: u64 = 50;
const NR_RENAME: u64 = 82;
const NR_CREAT: u64 = 85;
const NR_UNLINK: u64 = 87;
const NR_OPENAT: u64 = 257;
const NR_UNLINKAT: u64 = 263;
const NR_RENAMEAT: u64 = 264;
const NR_ACCEPT4: u64 = 288;
const NR_RENAMEAT2: u64 = 316;
const NR_OPENAT2: u64 = 437;
const NR_WRITE: u64 = 1;
const NR_MMAP: u64 = 9;
const NR_PWRITE64: u64 = 18;
const NR_WRITEV: u64 = 20;
const NR_SENDTO: u64 = 44;
const NR_SENDMSG: u64 = 46;
const NR_CLONE: u64 = 56;
const NR_TRUNCATE: u64 = 76;
const NR_FTRUNCATE: u64 = 77;
const NR_MKDIR: u64 = 83;
const NR_LINK: u64 = 86;
const NR_SYMLINK: u64 = 88;
const NR_CHMOD: u64 = 90;
const NR_FCHMOD: u64 = 91;
const NR_CHOWN: u64 = 92;
const NR_FCHOWN: u64 = 93;
const NR_LCHOWN: u64 = 94;
const NR_PTRACE: u64 = 101;
const NR_SETUID: u64 = 105;
const NR_SETGID: u64 = 106;
const NR_SETREUID: u64 = 113;
const NR_SETREGID: u64 = 114;
const NR_SETRESUID: u64 = 117;
const NR_SETRESGID: u64 = 119;
const NR_CAPSET: u64 = 126;
const NR_MOUNT: u64 = 165;
const NR_INIT_MODULE: u64 = 175;
const NR_MKDIRAT: u64 = 258;
const NR_FCHOWNAT: u64 = 260;
const NR_LINKAT: u64 = 265;
const NR_SYMLINKAT: u64 = 266;
const NR_FCHMODAT: u64 = 268;
const NR_UNSHARE: u64 = 272;
const NR_PWRITEV: u64 = 296;
const NR_SENDMMSG: u64 = 307;
const NR_SETNS: u64 = 308;
const NR_PROCESS_VM_WRITEV: u64 = 311;
const NR_FINIT_MODULE: u64 = 313;
const NR_MEMFD_CREATE: u64 = 319;
const NR_BPF: u64 = 321;
const NR_PWRITEV2: u64 = 328;
const NR_MOVE_MOUNT: u64 = 429;
const NR_CLONE3: u64 = 435;
const NR_FCHMODAT2: u64 = 452;
/// CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME.
const CLONE_NEW_MASK: u64 = 0x0002_0000
    | 0x0200_0000
    | 0x0400_0000
    | 0x0800_0000
    | 0x1000_0000
    | 0x2000_0000
    | 0x4000_0000
    | 0x80;
const PROT_EXEC: u64 = 4;
const SIGCHLD: i32 = 17;
const IPPROTO_UDP: u16 = 17;
const S_IFREG: u32 = 0o100000;
const MAX_DNS_PAYLOAD: usize = 512;

// io_uring opcodes (UAPI).
const IORING_OP_SENDMSG: u8 = 9;
const IORING_OP_ACCEPT: u8 = 13;
const IORING_OP_CONNECT: u8 = 16;
const IORING_OP_OPENAT: u8 = 18;
const IORING_OP_OPENAT2: u8 = 28;
const IORING_OP_RENAMEAT: u8 = 35;
const IORING_OP_UNLINKAT: u8 = 36;
const IORING_OP_MKDIRAT: u8 = 37;
const IORING_OP_SYMLINKAT: u8 = 38;
const IORING_OP_LINKAT: u8 = 39;
const IORING_OP_SEND: u8 = 26;
const IORING_OP_SEND_ZC: u8 = 47;
const IORING_OP_SENDMSG_ZC: u8 = 48;
/// `io_kiocb.flags`: the request names a registered (fixed) file, not a descriptor.
const REQ_F_FIXED_FILE: u64 = 1;

const AT_FDCWD: i64 = -100;
/// creat(2) is open(O_CREAT | O_WRONLY | O_TRUNC).
const O_CREAT_WRONLY_TRUNC: u64 = 0o1101;
const EINPROGRESS: i64 = 115;
const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u16 = 6;
const TCP_SYN_SENT: i32 = 2;
const TCP_CLOSE: i32 = 7;
const TCP_LISTEN: i32 = 10;
const S_IFMT: u32 = 0o170000;
const S_IFSOCK: u32 = 0o140000;

macro_rules! off {
    ($f:ident) => {
        // SAFETY: CONFIG is a plain global in .rodata; volatile keeps the loader's value.
        (unsafe { core::ptr::read_volatile(&CONFIG.offsets.$f) }) as usize
    };
}

macro_rules! cfg {
    ($f:ident) => {
        // SAFETY: as in `off!`.
        unsafe { core::ptr::read_volatile(&CONFIG.$f) }
    };
}

/// Read a `T` at `base + off` from kernel memory.
#[inline(always)]
fn rd<T>(base: *const u8, off: usize) -> Result<T, i32> {
    if base.is_null() {
        return Err(-1);
    }
    // SAFETY: bpf_probe_read_kernel validates the address; a bad pointer only yields an error.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off) as *const T) }
}

/// Read a `T` at `base + off` with a plain load. Only for pointers whose kernel type the verifier
/// knows (BTF): the current task, tracepoint arguments, and pointer members loaded from them with
/// `ld`. The verifier checks the access against the type; the JIT guards it (a bad address reads
/// as zero). It costs a load, where `rd` costs a helper call.
#[inline(always)]
fn ld<T: Copy>(base: *const u8, off: usize) -> T {
    // SAFETY: the verifier only accepts this on BTF-typed pointers and turns it into a guarded
    // load; a faulting address yields zero instead of an exception.
    unsafe { core::ptr::read_volatile(base.wrapping_add(off) as *const T) }
}

#[inline(always)]
fn ldp(base: *const u8, off: usize) -> *const u8 {
    ld::<*const u8>(base, off)
}

/// The current `task_struct`, typed for the verifier (so `ld` works on it).
#[inline(always)]
fn current_task() -> *const u8 {
    // SAFETY: the helper has no preconditions; it returns the current task_struct pointer.
    unsafe { bpf_get_current_task_btf() as *const u8 }
}

#[inline(always)]
fn rdp(base: *const u8, off: usize) -> Result<*const u8, i32> {
    rd::<*const u8>(base, off)
}

#[inline(always)]
fn bump(map: &PerCpuArray<u64>, kind: RecordKind) {
    if let Some(p) = map.get_ptr_mut(kind as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU while we run.
        unsafe { *p += 1 };
    }
}

#[inline(always)]
fn scratch() -> Option<*mut u8> {
    SCRATCH.get_ptr_mut(0).map(|p| p as *mut u8)
}

#[inline(always)]
fn session_of(tgid: u32) -> Option<SessionInfo> {
    // SAFETY: the value is copied out immediately.
    unsafe { SESSIONS.get(&tgid) }.copied()
}

/// Output flags for a record of `len` bytes: wake the reader only with the record that takes
/// the ring past `wakeup_bytes`, once per batch. A wake-up is an inter-processor interrupt
/// (a VM exit under virtualization) and costs more than the record; past the threshold the
/// reader is either awake already (its poll returns at once while data is waiting) or wakes
/// on its poll timer, which also covers two CPUs crossing the threshold together.
#[inline(always)]
fn wake_flags(len: usize) -> u64 {
    let avail = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    let t = cfg!(wakeup_bytes) as u64;
    (if avail < t && avail + len as u64 >= t {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }) as u64
}

/// Copy `len` bytes of the scratch buffer to the ring buffer; count a loss on failure.
#[inline(always)]
fn submit(buf: *mut u8, len: usize, kind: RecordKind) {
    if len < HEADER_LEN || len > SCRATCH_SIZE {
        bump(&ERRORS, kind);
        return;
    }
    // Patch the total length into the header.
    // SAFETY: buf points at SCRATCH_SIZE bytes; the header is at offset 0.
    unsafe { (*(buf as *mut RecordHeader)).len = len as u32 };
    // SAFETY: the slice stays within the scratch buffer (len <= SCRATCH_SIZE checked above).
    let data = unsafe { core::slice::from_raw_parts(buf as *const u8, len) };
    if EVENTS.output::<[u8]>(data, wake_flags(len)).is_err() {
        bump(&LOSS, kind);
    }
}

/// Fill the common header for the current task.
#[inline(always)]
fn header_current(buf: *mut u8, kind: RecordKind, s: &SessionInfo) -> Result<(), i32> {
    let task = current_task();
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    let leader = ldp(task, off!(task_group_leader));
    let start_ns: u64 = ld(leader, off!(task_start_boottime));
    let parent = ldp(task, off!(task_real_parent));
    let ppid: u32 = ld(parent, off!(task_tgid));
    let comm = bpf_get_current_comm().unwrap_or([0; COMM_LEN]);
    let h = RecordHeader {
        kind: kind as u32,
        len: 0,
        ktime_ns: unsafe { bpf_ktime_get_boot_ns() },
        session_id: s.session_id,
        start_ns,
        pid: pid_tgid as u32,
        tgid: (pid_tgid >> 32) as u32,
        ppid,
        agent_id: s.agent_id,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        comm,
    };
    // SAFETY: buf has room for the header at offset 0.
    unsafe { core::ptr::write_unaligned(buf as *mut RecordHeader, h) };
    Ok(())
}

#[inline(always)]
fn put<T>(buf: *mut u8, at: usize, v: T) {
    // SAFETY: callers only write fixed bodies right after the header, far below SCRATCH_SIZE.
    unsafe { core::ptr::write_unaligned(buf.add(at) as *mut T, v) };
}

/// Pass a value through map memory so that the verifier forgets how it was computed: after a
/// bounded loop, every exit state then merges into one, and a second loop is verified once
/// instead of once per exit state of the first. The result is re-bounded by the caller.
#[inline(always)]
fn launder(v: u64) -> u64 {
    match VARS.get_ptr_mut(0) {
        Some(p) => {
            // SAFETY: per-CPU slot owned by this program for the duration of the call.
            unsafe {
                core::ptr::write_volatile(p, v);
                core::ptr::read_volatile(p)
            }
        }
        None => v,
    }
}

/// Append the dentry names of `path` (a `struct path *`) leaf first, each NUL-terminated,
/// crossing mount points up to the global root. Returns the new position and a truncation flag.
#[inline(always)]
fn write_path(buf: *mut u8, start: usize, path: *const u8) -> (usize, bool) {
    let (pos, trunc) = write_path_raw(buf, start, path);
    let v = launder(pos as u64 | (trunc as u64) << 32);
    let pos = (v & 0xffff_ffff) as usize;
    if pos > POS_MASK {
        return (start, true);
    }
    (pos, v >> 32 != 0)
}

#[inline(always)]
fn write_path_raw(buf: *mut u8, start: usize, path: *const u8) -> (usize, bool) {
    let mut pos = start;
    let Ok(mut dentry) = rdp(path, off!(path_dentry)) else {
        return (pos, true);
    };
    let Ok(mut vfsmnt) = rdp(path, off!(path_mnt)) else {
        return (pos, true);
    };
    let mut mount = vfsmnt.wrapping_sub(off!(mount_mnt));
    let limit = start + MAX_PATH_REGION - MAX_NAME;
    let mut done = false;
    // Read once per mount, not once per component.
    let Ok(mut mnt_root) = rdp(vfsmnt, off!(vfsmount_root)) else {
        return (pos, true);
    };
    for _ in 0..MAX_PATH_DEPTH {
        if dentry == mnt_root {
            let Ok(parent_mount) = rdp(mount, off!(mount_parent)) else {
                break;
            };
            if parent_mount == mount {
                done = true;
                break;
            }
            let Ok(mp) = rdp(mount, off!(mount_mountpoint)) else {
                break;
            };
            dentry = mp;
            mount = parent_mount;
            vfsmnt = mount.wrapping_add(off!(mount_mnt));
            let Ok(r) = rdp(vfsmnt, off!(vfsmount_root)) else {
                break;
            };
            mnt_root = r;
            continue;
        }
        let Ok(parent) = rdp(dentry, off!(dentry_parent)) else {
            break;
        };
        if parent == dentry || parent.is_null() {
            // A file on a kernel-internal mount (memfd, anon inodes) is its own root: its name
            // (`memfd:evil`) is the only name it has.
            if pos == start
                && let Ok(name) = rdp(dentry, off!(dentry_name) + off!(qstr_name))
            {
                // SAFETY: destination masked into the buffer, at most MAX_NAME bytes.
                let n = unsafe {
                    generated::bpf_probe_read_kernel_str(
                        buf.add(pos & POS_MASK) as *mut _,
                        MAX_NAME as u32,
                        name as *const _,
                    )
                };
                if n > 1 {
                    pos += (n as usize) & (MAX_NAME * 2 - 1);
                }
            }
            done = true;
            break;
        }
        let Ok(name) = rdp(dentry, off!(dentry_name) + off!(qstr_name)) else {
            break;
        };
        if pos > limit || pos > POS_LIMIT {
            break;
        }
        // SAFETY: the destination is pos & POS_MASK plus at most MAX_NAME bytes, inside the
        // SCRATCH_SIZE buffer; the helper checks the source.
        let n = unsafe {
            generated::bpf_probe_read_kernel_str(
                buf.add(pos & POS_MASK) as *mut _,
                MAX_NAME as u32,
                name as *const _,
            )
        };
        if n <= 0 {
            break;
        }
        pos += (n as usize) & (MAX_NAME * 2 - 1);
        dentry = parent;
    }
    (pos, !done)
}

/// Append a NUL-terminated string of at most `max` bytes from kernel or user memory.
#[inline(always)]
fn write_str(buf: *mut u8, pos: usize, src: *const u8, max: usize, user: bool) -> usize {
    if pos > POS_LIMIT || src.is_null() {
        return pos;
    }
    let dst = buf.wrapping_add(pos & POS_MASK) as *mut _;
    let size = (max & 4095) as u32;
    // SAFETY: destination within the buffer (masked position + max < SCRATCH_SIZE - POS_MASK);
    // the helpers validate the source address.
    let n = unsafe {
        if user {
            generated::bpf_probe_read_user_str(dst, size, src as *const _)
        } else {
            generated::bpf_probe_read_kernel_str(dst, size, src as *const _)
        }
    };
    if n > 0 {
        pos + ((n as usize) & 4095)
    } else {
        pos
    }
}

#[inline(always)]
fn write_kstr(buf: *mut u8, pos: usize, src: *const u8, max: usize) -> usize {
    write_str(buf, pos, src, max, false)
}

#[inline(always)]
fn write_ustr(buf: *mut u8, pos: usize, src: *const u8, max: usize) -> usize {
    write_str(buf, pos, src, max, true)
}

/// The `struct file *` installed at descriptor `fd` of the current task.
#[inline(always)]
fn file_of_fd(fd: i64) -> Result<*const u8, i32> {
    if fd < 0 {
        return Err(-1);
    }
    let task = current_task();
    let files = ldp(task, off!(task_files));
    let fdt = ldp(files, off!(files_fdt));
    let max: u32 = ld(fdt, off!(fdt_max_fds));
    if fd as u64 >= max as u64 {
        return Err(-1);
    }
    // `struct file **`: the verifier types the array as a number, so the slot is read with a
    // helper.
    let arr = ldp(fdt, off!(fdt_fd));
    let file = rdp(arr, (fd as usize) * 8)?;
    if file.is_null() {
        return Err(-1);
    }
    Ok(file)
}

/// Directory a user-supplied path is relative to: the dirfd's path or the cwd.
#[inline(always)]
fn write_dir_of(buf: *mut u8, pos: usize, dfd: i64) -> (usize, bool) {
    // Resolve the `struct path *` first so that only one path walk is inlined here.
    let path = if dfd == AT_FDCWD {
        Ok(ldp(current_task(), off!(task_fs)).wrapping_add(off!(fs_pwd)))
    } else {
        file_of_fd(dfd).map(|f| f.wrapping_add(off!(file_path)))
    };
    match path {
        Ok(p) => write_path(buf, pos, p),
        Err(_) => (pos, true),
    }
}

// ---------------------------------------------------------------------------------------------
// Process lifecycle
// ---------------------------------------------------------------------------------------------

#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> i32 {
    let parent: *const u8 = ctx.arg(0);
    let child: *const u8 = ctx.arg(1);
    let _ = on_fork(parent, child);
    0
}

#[inline(always)]
fn on_fork(parent: *const u8, child: *const u8) -> Result<(), i32> {
    let ptgid: u32 = rd(parent, off!(task_tgid))?;
    let ctgid: u32 = rd(child, off!(task_tgid))?;
    if ptgid == ctgid {
        return Ok(()); // a new thread, already covered by its process
    }
    let Some(s) = session_of(ptgid) else {
        // A reused pid must not inherit a stale session. The lookup is lock-free; the delete
        // takes a bucket lock, so it runs only when there is something to delete.
        if session_of(ctgid).is_some() {
            let _ = SESSIONS.remove(&ctgid);
        }
        return Ok(());
    };
    SESSIONS.insert(&ctgid, &s, 0).map_err(|e| e as i32)?;
    let buf = scratch().ok_or(-1)?;
    let cpid: u32 = rd(child, off!(task_pid))?;
    let cstart: u64 = rd(child, off!(task_start_boottime)).unwrap_or(0);
    let pleader = rdp(parent, off!(task_group_leader))?;
    let pstart: u64 = rd(pleader, off!(task_start_boottime)).unwrap_or(0);
    let comm: [u8; COMM_LEN] = rd(child, off!(task_comm)).unwrap_or([0; COMM_LEN]);
    let uid_gid = bpf_get_current_uid_gid();
    let h = RecordHeader {
        kind: RecordKind::Fork as u32,
        len: 0,
        ktime_ns: unsafe { bpf_ktime_get_boot_ns() },
        session_id: s.session_id,
        start_ns: cstart,
        pid: cpid,
        tgid: ctgid,
        ppid: ptgid,
        agent_id: s.agent_id,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        comm,
    };
    put(buf, 0, h);
    put(
        buf,
        HEADER_LEN,
        ForkBody {
            parent_start_ns: pstart,
            flags: 0,
            _pad: 0,
        },
    );
    submit(
        buf,
        HEADER_LEN + core::mem::size_of::<ForkBody>(),
        RecordKind::Fork,
    );
    Ok(())
}

#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(ctx: BtfTracePointContext) -> i32 {
    let bprm: *const u8 = ctx.arg(2);
    if on_exec(bprm).is_err() {
        bump(&ERRORS, RecordKind::Exec);
    }
    0
}

/// Match a process that is not in a session yet against the selectors.
#[inline(always)]
fn select(tgid: u32, bprm: *const u8) -> Option<SessionInfo> {
    let mut agent = None;
    let mut flags = 0;
    if cfg!(have_other_selectors) != 0 {
        let comm = bpf_get_current_comm().unwrap_or([0; COMM_LEN]);
        // SAFETY: values are copied out at once.
        agent = unsafe { SEL_COMM.get(&comm) }.copied();
        if agent.is_none() {
            let uid = bpf_get_current_uid_gid() as u32;
            agent = unsafe { SEL_UID.get(&uid) }.copied();
        }
        if agent.is_none() {
            let cg = unsafe { bpf_get_current_cgroup_id() };
            agent = unsafe { SEL_CGROUP.get(&cg) }.copied();
        }
    }
    if agent.is_none() && cfg!(have_exe_selectors) != 0 {
        let mut key = [0u8; EXE_KEY_LEN];
        let file = rdp(bprm, off!(bprm_file)).ok()?;
        let dentry = rdp(file, off!(file_path) + off!(path_dentry)).ok()?;
        let name = rdp(dentry, off!(dentry_name) + off!(qstr_name)).ok()?;
        // SAFETY: key is a stack buffer of EXE_KEY_LEN bytes.
        unsafe {
            generated::bpf_probe_read_kernel_str(
                key.as_mut_ptr() as *mut _,
                EXE_KEY_LEN as u32,
                name as *const _,
            )
        };
        agent = unsafe { SEL_EXE.get(&key) }.copied();
        flags = SESSION_PROVISIONAL;
    }
    let agent_id = agent?;
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let s = SessionInfo {
        session_id: ((tgid as u64) << 40) ^ (now & 0xff_ffff_ffff),
        agent_id,
        flags,
    };
    SESSIONS.insert(&tgid, &s, 0).ok()?;
    Some(s)
}

#[inline(always)]
fn on_exec(bprm: *const u8) -> Result<(), i32> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let mut flags = 0u32;
    let s = match session_of(tgid) {
        Some(s) => s,
        None => match select(tgid, bprm) {
            Some(s) => {
                flags |= REC_NEW_SESSION;
                s
            }
            None => return Ok(()),
        },
    };
    if s.flags & SESSION_PROVISIONAL != 0 {
        flags |= REC_PROVISIONAL;
    }
    let buf = scratch().ok_or(-1)?;
    header_current(buf, RecordKind::Exec, &s)?;
    let task = current_task();
    let body_at = HEADER_LEN;
    let mut pos = body_at + core::mem::size_of::<ExecBody>();

    // Executable: the binprm's file, as the kernel resolved it.
    let file = rdp(bprm, off!(bprm_file))?;
    let exe_start = pos;
    let (p, trunc) = write_path(buf, pos, file.wrapping_add(off!(file_path)));
    pos = p;
    if trunc {
        flags |= PATH_TRUNCATED;
    }
    let exe_len = pos - exe_start;
    let inode = rdp(file, off!(file_inode)).unwrap_or(core::ptr::null());
    let exe_ino: u64 = rd(inode, off!(inode_ino)).unwrap_or(0);
    let sb = rdp(inode, off!(inode_sb)).unwrap_or(core::ptr::null());
    let exe_dev: u32 = rd(sb, off!(sb_dev)).unwrap_or(0);
    let markers = exe_markers(file);

    // Working directory.
    let cwd_start = pos;
    if let Ok(fs) = rdp(task, off!(task_fs)) {
        let (p, trunc) = write_path(buf, pos, fs.wrapping_add(off!(fs_pwd)));
        pos = p;
        if trunc {
            flags |= PATH2_TRUNCATED;
        }
    }
    let cwd_len = pos - cwd_start;

    // The name passed to exec.
    let fn_start = pos;
    if let Ok(name) = rdp(bprm, off!(bprm_filename)) {
        pos = write_kstr(buf, pos, name, MAX_FILENAME);
    }
    let filename_len = pos - fn_start;

    // argv, from the new image's memory.
    let argv_start = pos;
    let mut argv_orig_len = 0u32;
    if let Ok(mm) = rdp(task, off!(task_mm)) {
        let a0: u64 = rd(mm, off!(mm_arg_start)).unwrap_or(0);
        let a1: u64 = rd(mm, off!(mm_arg_end)).unwrap_or(0);
        if a1 > a0 {
            let total = a1 - a0;
            argv_orig_len = total as u32;
            let mut n = total as usize;
            if n > MAX_ARGV {
                n = MAX_ARGV;
                flags |= ARGV_TRUNCATED;
            }
            if pos <= POS_LIMIT && n > 0 {
                // SAFETY: destination masked into the buffer, n <= 4095.
                let r = unsafe {
                    generated::bpf_probe_read_user(
                        buf.add(pos & POS_MASK) as *mut _,
                        (n & 4095) as u32,
                        a0 as *const _,
                    )
                };
                if r == 0 {
                    pos += n & 4095;
                }
            }
        }
    }
    let argv_len = pos - argv_start;

    let cred = rdp(task, off!(task_cred)).unwrap_or(core::ptr::null());
    let parent = rdp(task, off!(task_real_parent)).unwrap_or(core::ptr::null());
    let pleader = rdp(parent, off!(task_group_leader)).unwrap_or(core::ptr::null());
    put(
        buf,
        body_at,
        ExecBody {
            flags,
            euid: rd(cred, off!(cred_euid)).unwrap_or(u32::MAX),
            egid: rd(cred, off!(cred_egid)).unwrap_or(u32::MAX),
            exe_len: exe_len as u32,
            cwd_len: cwd_len as u32,
            filename_len: filename_len as u32,
            argv_len: argv_len as u32,
            argv_orig_len,
            exe_ino,
            exe_dev,
            markers,
            parent_start_ns: rd(pleader, off!(task_start_boottime)).unwrap_or(0),
        },
    );
    submit(buf, pos, RecordKind::Exec);
    Ok(())
}

#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(ctx: BtfTracePointContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    let group_dead: u64 = ctx.arg(1);
    if group_dead & 0xff == 0 {
        return 0;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(s) = session_of(tgid) else {
        return 0;
    };
    let _ = SESSIONS.remove(&tgid);
    let Some(buf) = scratch() else {
        return 0;
    };
    if header_current(buf, RecordKind::Exit, &s).is_err() {
        bump(&ERRORS, RecordKind::Exit);
        return 0;
    }
    let code: u32 = rd(task, off!(task_exit_code)).unwrap_or(0);
    put(
        buf,
        HEADER_LEN,
        ExitBody {
            exit_code: code,
            flags: 0,
        },
    );
    submit(
        buf,
        HEADER_LEN + core::mem::size_of::<ExitBody>(),
        RecordKind::Exit,
    );
    0
}

// ---------------------------------------------------------------------------------------------
// Files and sockets at syscall exit
// ---------------------------------------------------------------------------------------------

/// Tail-call targets of `sys_exit`, by syscall family. Each handler is its own program, so the
/// verifier checks them separately and the filter in front stays tiny.
#[map(name = "HANDLERS")]
static HANDLERS: ProgramArray = ProgramArray::with_max_entries(8, 0);

/// io_uring send requests whose submission sent an `IO_PENDING` record: their completion sends
/// the result (one lookup per send completion of a session process).
#[map(name = "IO_SENDS")]
static IO_SENDS: LruHashMap<u64, u8> = LruHashMap::with_max_entries(4096, 0);

/// (tgid, struct file *) pairs that already produced a `file.write`.
#[map(name = "WRITTEN")]
static WRITTEN: LruHashMap<[u64; 2], u8> = LruHashMap::with_max_entries(16384, 0);

const H_OPEN: u32 = 0;
const H_PATH: u32 = 1;
const H_NET: u32 = 2;
const H_PROC: u32 = 3;
const H_IO: u32 = 4;
const H_PATH2: u32 = 5;
const H_FDOP: u32 = 6;

/// Which handler family a syscall belongs to, if any.
#[inline(always)]
fn family(nr: u64) -> Option<u32> {
    Some(match nr {
        NR_OPEN | NR_OPENAT | NR_OPENAT2 | NR_CREAT => H_OPEN,
        NR_UNLINK | NR_UNLINKAT | NR_CHMOD | NR_FCHMODAT | NR_FCHMODAT2 | NR_CHOWN | NR_LCHOWN
        | NR_FCHOWNAT | NR_SYMLINK | NR_SYMLINKAT | NR_MKDIR | NR_MKDIRAT | NR_TRUNCATE => H_PATH,
        NR_RENAME | NR_RENAMEAT | NR_RENAMEAT2 | NR_LINK | NR_LINKAT => H_PATH2,
        NR_FCHMOD | NR_FCHOWN | NR_FTRUNCATE => H_FDOP,
        NR_CONNECT | NR_ACCEPT | NR_ACCEPT4 | NR_LISTEN | NR_SENDTO | NR_SENDMSG | NR_SENDMMSG => {
            H_NET
        }
        NR_SETUID | NR_SETGID | NR_SETREUID | NR_SETREGID | NR_SETRESUID | NR_SETRESGID
        | NR_CAPSET | NR_PTRACE | NR_PROCESS_VM_WRITEV | NR_BPF | NR_INIT_MODULE
        | NR_FINIT_MODULE | NR_MOUNT | NR_MOVE_MOUNT | NR_UNSHARE | NR_SETNS | NR_CLONE
        | NR_CLONE3 | NR_MEMFD_CREATE => H_PROC,
        NR_WRITE | NR_PWRITE64 | NR_WRITEV | NR_PWRITEV | NR_PWRITEV2 | NR_MMAP => H_IO,
        _ => return None,
    })
}

/// `thread_info.status` bit of a 32-bit (int 0x80 / sysenter) syscall in progress; cleared only
/// on the way back to user space, so it is still set at the `sys_exit` tracepoint.
const TS_COMPAT: u32 = 2;

/// `SYSNR` modes: a 32-bit syscall (arguments in ia32 registers, 32 bits wide).
const ARGS_COMPAT: u64 = 1;
/// The arguments are an array of 32-bit words in user memory (`socketcall`, the old `mmap`);
/// their count is in bits 8..16 of the mode.
const ARGS_IN_MEMORY: u64 = 2;

/// ia32 `socketcall(call, args)`: the x86_64 number and argument count of a call the handlers
/// understand (`SYS_SEND` is a `sendto` without destination).
#[inline(always)]
fn socketcall_to_x64(call: u64) -> Option<(u64, u64)> {
    Some(match call {
        3 => (NR_CONNECT, 3),
        4 => (NR_LISTEN, 2),
        5 => (NR_ACCEPT, 3),
        9 => (NR_SENDTO, 4),
        11 => (NR_SENDTO, 6),
        16 => (NR_SENDMSG, 3),
        18 => (NR_ACCEPT4, 4),
        20 => (NR_SENDMMSG, 4),
        _ => return None,
    })
}

/// ia32 `socketcall` and the old `mmap(struct mmap_arg_struct *)`.
const IA32_SOCKETCALL: u64 = 102;
const IA32_OLD_MMAP: u64 = 90;

/// The x86_64 number of a 32-bit (ia32) syscall the handlers understand, so an agent cannot hide
/// an open, unlink or send behind `int 0x80`. Numbers from 424 on are shared by both tables.
/// `socketcall` and the old `mmap` are resolved by the filter (their arguments are in memory).
#[inline(always)]
fn ia32_to_x64(nr: u64) -> Option<u64> {
    Some(match nr {
        4 => NR_WRITE,
        5 => NR_OPEN,
        8 => NR_CREAT,
        9 => NR_LINK,
        10 => NR_UNLINK,
        15 => NR_CHMOD,
        16 | 198 => NR_LCHOWN,
        21 => NR_MOUNT,
        23 | 213 => NR_SETUID,
        26 => NR_PTRACE,
        38 => NR_RENAME,
        39 => NR_MKDIR,
        46 | 214 => NR_SETGID,
        70 | 203 => NR_SETREUID,
        71 | 204 => NR_SETREGID,
        83 => NR_SYMLINK,
        92 | 193 => NR_TRUNCATE,
        93 | 194 => NR_FTRUNCATE,
        94 => NR_FCHMOD,
        95 | 207 => NR_FCHOWN,
        120 => NR_CLONE,
        128 => NR_INIT_MODULE,
        146 => NR_WRITEV,
        164 | 208 => NR_SETRESUID,
        170 | 210 => NR_SETRESGID,
        181 => NR_PWRITE64,
        182 | 212 => NR_CHOWN,
        185 => NR_CAPSET,
        192 => NR_MMAP,
        295 => NR_OPENAT,
        296 => NR_MKDIRAT,
        298 => NR_FCHOWNAT,
        301 => NR_UNLINKAT,
        302 => NR_RENAMEAT,
        303 => NR_LINKAT,
        304 => NR_SYMLINKAT,
        306 => NR_FCHMODAT,
        310 => NR_UNSHARE,
        334 => NR_PWRITEV,
        346 => NR_SETNS,
        348 => NR_PROCESS_VM_WRITEV,
        350 => NR_FINIT_MODULE,
        353 => NR_RENAMEAT2,
        356 => NR_MEMFD_CREATE,
        357 => NR_BPF,
        362 => NR_CONNECT,
        363 => NR_LISTEN,
        364 => NR_ACCEPT4,
        345 => NR_SENDMMSG,
        369 => NR_SENDTO,
        370 => NR_SENDMSG,
        379 => NR_PWRITEV2,
        424..=511 => nr,
        _ => return None,
    })
}

/// The filter in front of every syscall exit: one hash lookup for processes outside sessions.
/// For session processes it resolves the syscall (translating 32-bit ones) and hands it, with
/// the session, to the handler it tail-calls through `SYSNR`.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit(ctx: BtfTracePointContext) -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(session) = session_of(tgid) else {
        return 0;
    };
    let regs: *const u8 = ctx.arg(0);
    let mut nr: u64 = ld(regs, off!(regs_orig_ax));
    let status: u32 = ld(current_task(), off!(task_ti_status));
    let mut mode = 0;
    let mut args = 0;
    if status & TS_COMPAT != 0 {
        mode = ARGS_COMPAT;
        let bx: u64 = ld(regs, off!(regs_bx));
        if nr == IA32_SOCKETCALL {
            let Some((n, count)) = socketcall_to_x64(bx & 0xffff_ffff) else {
                return 0;
            };
            let cx: u64 = ld(regs, off!(regs_cx));
            (nr, mode, args) = (n, mode | ARGS_IN_MEMORY | count << 8, cx & 0xffff_ffff);
        } else if nr == IA32_OLD_MMAP {
            (nr, mode, args) = (NR_MMAP, mode | ARGS_IN_MEMORY | 6 << 8, bx & 0xffff_ffff);
        } else {
            match ia32_to_x64(nr) {
                Some(n) => nr = n,
                None => return 0,
            }
        }
    }
    if let Some(h) = family(nr) {
        let Some(p) = SYSNR.get_ptr_mut(0) else {
            return 0;
        };
        // SAFETY: per-CPU slot; the tail-called handler runs next on this CPU.
        unsafe {
            *p = SysCall {
                nr,
                mode,
                args,
                session,
            }
        };
        // SAFETY: the tail call either jumps to a handler of the same program type, or fails
        // and we return.
        unsafe { HANDLERS.tail_call(&ctx, h) };
    }
    0
}

/// Session, syscall number, return value and an argument reader for a handler.
struct Sys {
    s: SessionInfo,
    nr: u64,
    ret: i64,
    regs: *const u8,
    /// A 32-bit syscall (`nr` is already the x86_64 number).
    compat: bool,
    /// `ARGS_*` mode and, for arguments in memory, their user address.
    mode: u64,
    args: u64,
}

impl Sys {
    #[inline(always)]
    fn load(ctx: &BtfTracePointContext) -> Option<Sys> {
        let regs: *const u8 = ctx.arg(0);
        let ret: i64 = ctx.arg(1);
        // SAFETY: per-CPU slot written by the filter just before the tail call (sys_exit does
        // not nest on a CPU, so nothing else writes it in between).
        let SysCall {
            nr,
            mode,
            args,
            session,
        } = unsafe { *SYSNR.get_ptr_mut(0)? };
        Some(Sys {
            s: session,
            nr,
            ret,
            regs,
            compat: mode & ARGS_COMPAT != 0,
            mode,
            args,
        })
    }

    /// Syscall argument `i` (0-based; x86_64 order di si dx r10 r8, ia32 order bx cx dx si di,
    /// cut to 32 bits as the kernel does; or the i-th 32-bit word of an argument array in
    /// memory, zero past its count).
    #[inline(always)]
    fn arg(&self, i: u32) -> u64 {
        if self.mode & ARGS_IN_MEMORY != 0 {
            if i as u64 >= (self.mode >> 8) & 0xff {
                return 0;
            }
            let w: u32 = read_user(self.args as *const u8, (i as usize & 7) * 4);
            return w as u64;
        }
        let o = match (self.compat, i) {
            (false, 0) => off!(regs_di),
            (false, 1) => off!(regs_si),
            (false, 2) => off!(regs_dx),
            (false, 3) => off!(regs_r10),
            (false, _) => off!(regs_r8),
            (true, 0) => off!(regs_bx),
            (true, 1) => off!(regs_cx),
            (true, 2) => off!(regs_dx),
            (true, 3) => off!(regs_si),
            (true, _) => off!(regs_di),
        };
        let v: u64 = ld(self.regs, o);
        if self.compat { v & 0xffff_ffff } else { v }
    }

    #[inline(always)]
    fn fd(&self, i: u32) -> i64 {
        self.arg(i) as i32 as i64
    }
}

#[btf_tracepoint(function = "sys_exit")]
pub fn h_open(ctx: BtfTracePointContext) -> i32 {
    let Some(x) = Sys::load(&ctx) else { return 0 };
    if x.ret < 0 {
        return 0;
    }
    let req_flags = match x.nr {
        NR_OPEN => x.arg(1),
        NR_OPENAT => x.arg(2),
        NR_CREAT => O_CREAT_WRONLY_TRUNC,
        _ => {
            // openat2: flags are the first u64 of the user's `struct open_how`.
            let how = x.arg(2) as *const u64;
            // SAFETY: the helper validates the user address.
            unsafe { aya_ebpf::helpers::bpf_probe_read_user(how) }.unwrap_or(0)
        }
    };
    if emit_open(&x.s, x.ret, 0, req_flags as u32).is_err() {
        bump(&ERRORS, RecordKind::Open);
    }
    0
}

#[inline(always)]
fn emit_open(s: &SessionInfo, fd: i64, via: u32, req_flags: u32) -> Result<(), i32> {
    let file = file_of_fd(fd)?;
    let buf = scratch().ok_or(-1)?;
    header_current(buf, RecordKind::Open, s)?;
    let start = HEADER_LEN + core::mem::size_of::<OpenBody>();
    let (pos, trunc) = write_path(buf, start, file.wrapping_add(off!(file_path)));
    let inode = rdp(file, off!(file_inode)).unwrap_or(core::ptr::null());
    let sb = rdp(inode, off!(inode_sb)).unwrap_or(core::ptr::null());
    let i_mode: u16 = rd(inode, off!(inode_mode)).unwrap_or(0);
    put(
        buf,
        HEADER_LEN,
        OpenBody {
            flags: via | if trunc { PATH_TRUNCATED } else { 0 },
            f_flags: rd(file, off!(file_flags)).unwrap_or(0),
            f_mode: rd(file, off!(file_mode)).unwrap_or(0),
            i_mode: i_mode as u32,
            ino: rd(inode, off!(inode_ino)).unwrap_or(0),
            dev: rd(sb, off!(sb_dev)).unwrap_or(0),
            fd: fd as i32,
            path_len: (pos - start) as u32,
            req_flags,
        },
    );
    submit(buf, pos, RecordKind::Open);
    Ok(())
}

/// No second directory.
const NO_DIR: i64 = i64::MIN;

#[btf_tracepoint(function = "sys_exit")]
pub fn h_path(ctx: BtfTracePointContext) -> i32 {
    let Some(x) = Sys::load(&ctx) else { return 0 };
    if x.ret != 0 {
        return 0;
    }
    let a = |i| x.arg(i);
    let c = AT_FDCWD;
    let n = NO_DIR;
    use RecordKind as K;
    // (kind, dir, name, second name, arg0, arg1, flags). One emit call site per handler, and
    // one shape of path work per program, keeps the verifier's work bounded.
    let (kind, d1, n1, n2, a0, a1, fl) = match x.nr {
        NR_UNLINK => (K::Unlink, c, a(0), 0, 0, 0, 0),
        NR_UNLINKAT => (K::Unlink, x.fd(0), a(1), 0, 0, 0, a(2)),
        NR_CHMOD => (K::Chmod, c, a(0), 0, a(1), 0, 0),
        NR_FCHMODAT => (K::Chmod, x.fd(0), a(1), 0, a(2), 0, 0),
        NR_FCHMODAT2 => (K::Chmod, x.fd(0), a(1), 0, a(2), 0, a(3)),
        NR_CHOWN | NR_LCHOWN => (K::Chown, c, a(0), 0, a(1), a(2), 0),
        NR_FCHOWNAT => (K::Chown, x.fd(0), a(1), 0, a(2), a(3), a(4)),
        // The new link is the path; what it points to is the second name, as written.
        NR_SYMLINK => (K::Symlink, c, a(1), a(0), 0, 0, 0),
        NR_SYMLINKAT => (K::Symlink, x.fd(1), a(2), a(0), 0, 0, 0),
        NR_MKDIR => (K::Mkdir, c, a(0), 0, a(1), 0, 0),
        NR_MKDIRAT => (K::Mkdir, x.fd(0), a(1), 0, a(2), 0, 0),
        NR_TRUNCATE => (K::Truncate, c, a(0), 0, a(1), 0, 0),
        _ => return 0,
    };
    let r = emit_path_op(&x.s, kind, d1, n1, n, n2, a0, a1, fl as u32, 0);
    if r.is_err() {
        bump(&ERRORS, kind);
    }
    0
}

#[btf_tracepoint(function = "sys_exit")]
pub fn h_path2(ctx: BtfTracePointContext) -> i32 {
    let Some(x) = Sys::load(&ctx) else { return 0 };
    if x.ret != 0 {
        return 0;
    }
    let a = |i| x.arg(i);
    let c = AT_FDCWD;
    use RecordKind as K;
    // Rename: old path, new path. Link: the new name is the path, the existing file the target.
    let (kind, d1, n1, d2, n2, fl) = match x.nr {
        NR_RENAME => (K::Rename, c, a(0), c, a(1), 0),
        NR_RENAMEAT => (K::Rename, x.fd(0), a(1), x.fd(2), a(3), 0),
        NR_RENAMEAT2 => (K::Rename, x.fd(0), a(1), x.fd(2), a(3), a(4)),
        NR_LINK => (K::Link, c, a(1), c, a(0), 0),
        NR_LINKAT => (K::Link, x.fd(2), a(3), x.fd(0), a(1), a(4)),
        _ => return 0,
    };
    if emit_path_op(&x.s, kind, d1, n1, d2, n2, 0, 0, fl as u32, 0).is_err() {
        bump(&ERRORS, kind);
    }
    0
}

#[btf_tracepoint(function = "sys_exit")]
pub fn h_fdop(ctx: BtfTracePointContext) -> i32 {
    let Some(x) = Sys::load(&ctx) else { return 0 };
    if x.ret != 0 {
        return 0;
    }
    let kind = match x.nr {
        NR_FCHMOD => RecordKind::Chmod,
        NR_FCHOWN => RecordKind::Chown,
        NR_FTRUNCATE => RecordKind::Truncate,
        _ => return 0,
    };
    if emit_fd_op(&x.s, kind, x.fd(0), x.arg(1), x.arg(2)).is_err() {
        bump(&ERRORS, kind);
    }
    0
}

#[btf_tracepoint(function = "sys_exit")]
pub fn h_net(ctx: BtfTracePointContext) -> i32 {
    let Some(x) = Sys::load(&ctx) else { return 0 };
    let _ = match x.nr {
        NR_CONNECT if x.ret == 0 || x.ret == -EINPROGRESS => {
            emit_sock_fd(&x.s, RecordKind::Connect, x.fd(0), 0, true)
        }
        NR_ACCEPT | NR_ACCEPT4 if x.ret >= 0 => {
            emit_sock_fd(&x.s, RecordKind::Accept, x.ret, 0, false)
        }
        NR_LISTEN if x.ret == 0 => emit_sock_fd(&x.s, RecordKind::Listen, x.fd(0), 0, true),
        NR_SENDTO if x.ret > 0 => emit_send(&x.s, x.fd(0), x.arg(1), x.arg(4), false, x.ret, 0),
        NR_SENDMSG | NR_SENDMMSG if x.ret > 0 => {
            // struct msghdr (x86_64 ABI): msg_name @0, msg_iov @16; iovec: base @0, len @8.
            // The 32-bit compat_msghdr: msg_name @0, msg_iov @8; compat_iovec: base @0, len @4.
            // For sendmmsg the first struct mmsghdr starts with its msghdr.
            let msg = x.arg(1) as *const u8;
            let (name, base, len) = if x.compat {
                let name: u32 = read_user(msg, 0);
                let iov: u32 = read_user(msg, 8);
                let base: u32 = read_user(iov as u64 as *const u8, 0);
                let len: u32 = read_user(iov as u64 as *const u8, 4);
                (name as u64, base as u64, len as u64)
            } else {
                let name: u64 = read_user(msg, 0);
                let iov: u64 = read_user(msg, 16);
                let base: u64 = read_user(iov as *const u8, 0);
                let len: u64 = read_user(iov as *const u8, 8);
                (name, base, len)
            };
            let sent = if x.nr == NR_SENDMMSG {
                len as i64
            } else {
                x.ret
            };
            emit_send(&x.s, x.fd(0), base, name, false, sent, 0)
        }
        _ => Ok(()),
    };
    0
}

#[inline(always)]
fn read_user<T: Default>(base: *const u8, off: usize) -> T {
    if base.is_null() {
        return T::default();
    }
    // SAFETY: the helper validates the user address.
    unsafe { aya_ebpf::helpers::bpf_probe_read_user(base.wrapping_add(off) as *const T) }
        .unwrap_or_default()
}

/// A user or kernel pointer's bytes at `off` (zero when unreadable).
#[inline(always)]
fn read_any<T: Default>(base: *const u8, off: usize, kernel: bool) -> T {
    if kernel {
        rd(base, off).unwrap_or_default()
    } else {
        read_user(base, off)
    }
}

/// UDP datagrams: a send with an explicit destination is `net.send`; anything to port 53 also
/// carries the first bytes of the payload so user space can decode the DNS question. `addr` is
/// the destination (a user pointer, or a kernel copy for io_uring); `cookie` is nonzero for an
/// io_uring submission, whose result comes later (`IO_PENDING`).
#[inline(always)]
fn emit_send(
    s: &SessionInfo,
    fd: i64,
    buf: u64,
    addr: u64,
    addr_kernel: bool,
    sent: i64,
    cookie: u64,
) -> Result<(), i32> {
    let file = file_of_fd(fd)?;
    let socket = rdp(file, off!(file_private_data))?;
    let sk = rdp(socket, off!(socket_sk))?;
    let protocol: u16 = rd(sk, off!(sk_protocol)).unwrap_or(0);
    if protocol != IPPROTO_UDP {
        return Ok(());
    }
    let mut family: u16 = rd(sk, off!(sk_family))?;
    let mut body = SockBody {
        flags: if cookie != 0 {
            IO_PENDING | VIA_IO_URING
        } else {
            0
        },
        protocol,
        sock_type: 2,
        fd: fd as i32,
        bytes: sent as u32,
        cookie,
        ..SockBody::default()
    };
    if addr != 0 {
        let ua = addr as *const u8;
        family = read_any(ua, 0, addr_kernel);
        let port: u16 = read_any(ua, 2, addr_kernel);
        body.dport = u16::from_be(port);
        if family == AF_INET {
            let a4: [u8; 4] = read_any(ua, 4, addr_kernel);
            body.daddr[..4].copy_from_slice(&a4);
        } else if family == AF_INET6 {
            body.daddr = read_any(ua, 8, addr_kernel);
        }
    } else {
        let dport: u16 = rd(sk, off!(sk_dport)).unwrap_or(0);
        body.dport = u16::from_be(dport);
        if family == AF_INET {
            let d: [u8; 4] = rd(sk, off!(sk_daddr)).unwrap_or([0; 4]);
            body.daddr[..4].copy_from_slice(&d);
        } else if family == AF_INET6 {
            body.daddr = rd(sk, off!(sk_v6_daddr)).unwrap_or([0; 16]);
        }
    }
    if addr == 0 && body.dport != 53 {
        return Ok(()); // a connected socket's ordinary traffic: its connect was reported
    }
    body.family = family;
    body.sport = rd(sk, off!(sk_num)).unwrap_or(0);
    let buf_ptr = scratch().ok_or(-1)?;
    header_current(buf_ptr, RecordKind::Send, s)?;
    let start = HEADER_LEN + core::mem::size_of::<SockBody>();
    let mut pos = start;
    if body.dport == 53 && buf != 0 {
        let mut n = sent as usize;
        if n > MAX_DNS_PAYLOAD {
            n = MAX_DNS_PAYLOAD;
        }
        if n > 0 {
            // SAFETY: destination within the scratch buffer; n <= 512.
            let r = unsafe {
                generated::bpf_probe_read_user(
                    buf_ptr.add(pos & POS_MASK) as *mut _,
                    (n as u32) & 1023,
                    buf as *const _,
                )
            };
            if r == 0 {
                pos += n & 1023;
            }
        }
    }
    body.payload_len = (pos - start) as u32;
    put(buf_ptr, HEADER_LEN, body);
    submit(buf_ptr, pos, RecordKind::Send);
    if cookie != 0 {
        let _ = IO_SENDS.insert(&cookie, &1, 0);
    }
    Ok(())
}

#[inline(always)]
fn relation(s: &SessionInfo, tgid: u32) -> u32 {
    if tgid != 0 && tgid == cfg!(daemon_tgid) {
        return TARGET_DAEMON;
    }
    match session_of(tgid) {
        Some(t) if t.session_id == s.session_id => TARGET_SAME_SESSION,
        Some(_) => TARGET_OTHER_SESSION,
        None => 0,
    }
}

#[btf_tracepoint(function = "sys_exit")]
pub fn h_proc(ctx: BtfTracePointContext) -> i32 {
    let Some(x) = Sys::load(&ctx) else { return 0 };
    let mut b = SysBody {
        op: x.nr as u32,
        ret: x.ret,
        ..SysBody::default()
    };
    let mut name = 0u64;
    let mut name2 = 0u64;
    let mut name_fd = -1i64;
    let kind = match x.nr {
        NR_SETUID | NR_SETGID | NR_SETREUID | NR_SETREGID | NR_SETRESUID | NR_SETRESGID
        | NR_CAPSET => {
            if x.ret != 0 {
                return 0;
            }
            // The credentials now in force.
            let cred = rdp(current_task(), off!(task_cred)).unwrap_or(core::ptr::null());
            let uid: u32 = rd(cred, off!(cred_uid)).unwrap_or(0);
            let euid: u32 = rd(cred, off!(cred_euid)).unwrap_or(0);
            let gid: u32 = rd(cred, off!(cred_gid)).unwrap_or(0);
            let egid: u32 = rd(cred, off!(cred_egid)).unwrap_or(0);
            b.arg0 = uid as u64 | (euid as u64) << 32;
            b.arg1 = gid as u64 | (egid as u64) << 32;
            b.arg2 = rd(cred, off!(cred_cap_effective)).unwrap_or(0);
            b.arg3 = [x.arg(0), x.arg(1), x.arg(2)][0];
            RecordKind::PrivChange
        }
        NR_PTRACE => {
            let req = x.arg(0);
            // attach, seize, poke text/data/user, set registers
            if x.ret != 0 || !matches!(req, 4 | 5 | 6 | 13 | 16 | 0x4206) {
                return 0;
            }
            b.op = req as u32;
            b.target_tgid = x.arg(1) as u32;
            b.target = relation(&x.s, b.target_tgid);
            RecordKind::Ptrace
        }
        NR_PROCESS_VM_WRITEV => {
            if x.ret <= 0 {
                return 0;
            }
            b.target_tgid = x.arg(0) as u32;
            b.target = relation(&x.s, b.target_tgid);
            RecordKind::Ptrace
        }
        NR_BPF => {
            // Program loads only: BPF_PROG_LOAD = 5; bpf_attr: prog_type @0, prog_name @48.
            if x.arg(0) != 5 || x.ret < 0 {
                return 0;
            }
            let attr = x.arg(1) as *const u8;
            b.op = 5;
            b.arg0 = read_user::<u32>(attr, 0) as u64;
            b.fstype = read_user(attr, 48);
            RecordKind::Bpf
        }
        // Every attempt, failed ones included (`ret`): an agent trying to load kernel code
        // matters even when the kernel refuses it.
        NR_INIT_MODULE | NR_FINIT_MODULE => {
            if x.nr == NR_FINIT_MODULE {
                name_fd = x.fd(0);
            } else {
                b.arg0 = x.arg(1);
            }
            RecordKind::Module
        }
        NR_MOUNT => {
            if x.ret != 0 {
                return 0;
            }
            name = x.arg(0);
            name2 = x.arg(1);
            let t = x.arg(2) as *const u8;
            if !t.is_null() {
                // SAFETY: fixed-size destination; the helper validates the source.
                unsafe {
                    generated::bpf_probe_read_user_str(
                        b.fstype.as_mut_ptr() as *mut _,
                        16,
                        t as *const _,
                    )
                };
            }
            b.arg0 = x.arg(3);
            RecordKind::Mount
        }
        NR_MOVE_MOUNT => {
            if x.ret != 0 {
                return 0;
            }
            name2 = x.arg(3);
            b.arg0 = x.arg(4);
            RecordKind::Mount
        }
        NR_UNSHARE | NR_SETNS | NR_CLONE | NR_CLONE3 => {
            let flags = match x.nr {
                NR_UNSHARE => x.arg(0),
                NR_SETNS => x.arg(1),
                NR_CLONE => x.arg(0),
                _ => read_user::<u64>(x.arg(0) as *const u8, 0),
            };
            // clone returns the child's pid in the parent and 0 in the child.
            let ok = match x.nr {
                NR_CLONE | NR_CLONE3 => x.ret > 0,
                _ => x.ret == 0,
            };
            if !ok || (flags & CLONE_NEW_MASK == 0 && x.nr != NR_SETNS) {
                return 0;
            }
            if x.nr == NR_SETNS {
                name_fd = x.fd(0);
            }
            b.arg0 = flags;
            RecordKind::Namespace
        }
        NR_MEMFD_CREATE => {
            if x.ret < 0 {
                return 0;
            }
            name = x.arg(0);
            b.arg0 = x.arg(1);
            RecordKind::Memfd
        }
        _ => return 0,
    };
    if emit_sys(&x.s, kind, b, name, name2, name_fd).is_err() {
        bump(&ERRORS, kind);
    }
    0
}

#[inline(always)]
fn emit_sys(
    s: &SessionInfo,
    kind: RecordKind,
    mut b: SysBody,
    name: u64,
    name2: u64,
    name_fd: i64,
) -> Result<(), i32> {
    let buf = scratch().ok_or(-1)?;
    header_current(buf, kind, s)?;
    let start = HEADER_LEN + core::mem::size_of::<SysBody>();
    let mut p1 = start;
    if name_fd >= 0 {
        if let Ok(file) = file_of_fd(name_fd) {
            p1 = write_path(buf, start, file.wrapping_add(off!(file_path))).0;
            b.flags |= NAME_IS_PATH;
            // Files of pseudo file systems (nsfs) are named by the kernel from their inode.
            let inode = rdp(file, off!(file_inode)).unwrap_or(core::ptr::null());
            b.arg1 = rd(inode, off!(inode_ino)).unwrap_or(0);
        }
    } else if name != 0 {
        p1 = write_ustr(buf, start, name as *const u8, 2047);
    }
    let p2 = if name2 != 0 {
        write_ustr(buf, p1, name2 as *const u8, 2047)
    } else {
        p1
    };
    b.name_len = (p1 - start) as u32;
    b.name2_len = (p2 - p1) as u32;
    put(buf, HEADER_LEN, b);
    submit(buf, p2, kind);
    Ok(())
}

#[btf_tracepoint(function = "sys_exit")]
pub fn h_io(ctx: BtfTracePointContext) -> i32 {
    let Some(x) = Sys::load(&ctx) else { return 0 };
    let (kind, fd, arg0) = if x.nr == NR_MMAP {
        // An executable mapping of a file from a world-writable directory, a memfd or a
        // deleted file (LD_PRELOAD-style injection).
        if x.ret < 0 || x.arg(2) & PROT_EXEC == 0 || x.fd(4) < 0 {
            return 0;
        }
        let Ok(file) = file_of_fd(x.fd(4)) else {
            return 0;
        };
        if exe_markers(file) == 0 {
            return 0;
        }
        (RecordKind::MmapExec, x.fd(4), x.arg(2))
    } else {
        if x.ret <= 0 {
            return 0;
        }
        let Ok(file) = file_of_fd(x.fd(0)) else {
            return 0;
        };
        let inode = rdp(file, off!(file_inode)).unwrap_or(core::ptr::null());
        let mode: u16 = rd(inode, off!(inode_mode)).unwrap_or(0);
        if (mode as u32) & S_IFMT != S_IFREG {
            return 0; // pipes, sockets and terminals are not files written to
        }
        let key = [
            x.s.session_id ^ ((bpf_get_current_pid_tgid() >> 32) << 1),
            file as u64,
        ];
        // SAFETY: the value is only tested for presence.
        if unsafe { WRITTEN.get(&key) }.is_some() {
            return 0;
        }
        let _ = WRITTEN.insert(&key, &1, 0);
        (RecordKind::Write, x.fd(0), x.ret as u64)
    };
    if emit_fd_op(&x.s, kind, fd, arg0, 0).is_err() {
        bump(&ERRORS, kind);
    }
    0
}

/// `EXE_*` markers of a file: memfd, deleted, in a world-writable directory.
#[inline(always)]
fn exe_markers(file: *const u8) -> u32 {
    let mut m = 0;
    let dentry = rdp(file, off!(file_path) + off!(path_dentry)).unwrap_or(core::ptr::null());
    let name = rdp(dentry, off!(dentry_name) + off!(qstr_name)).unwrap_or(core::ptr::null());
    let head: [u8; 6] = rd(name, 0).unwrap_or([0; 6]);
    if &head == b"memfd:" {
        m |= EXE_MEMFD;
    }
    let inode = rdp(file, off!(file_inode)).unwrap_or(core::ptr::null());
    let nlink: u32 = rd(inode, off!(inode_nlink)).unwrap_or(1);
    if nlink == 0 {
        m |= EXE_DELETED;
    }
    let parent = rdp(dentry, off!(dentry_parent)).unwrap_or(core::ptr::null());
    // A memfd is its own parent: there is no directory to judge.
    if parent != dentry {
        let pinode = rdp(parent, off!(dentry_inode)).unwrap_or(core::ptr::null());
        let pmode: u16 = rd(pinode, off!(inode_mode)).unwrap_or(0);
        if pmode & 0o002 != 0 {
            m |= EXE_WRITABLE_DIR;
        }
    }
    m
}

#[btf_tracepoint(function = "signal_generate")]
pub fn signal_generate(ctx: BtfTracePointContext) -> i32 {
    let sig: i32 = ctx.arg(0);
    // SIGCHLD to a parent outside the session is the kernel's doing, not the agent's (and
    // every exit sends one: decide before the session lookup).
    if sig == SIGCHLD {
        return 0;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(s) = session_of(tgid) else { return 0 };
    let task: *const u8 = ctx.arg(2);
    let result: i32 = ctx.arg(4);
    let target: u32 = rd(task, off!(task_tgid)).unwrap_or(0);
    let rel = relation(&s, target);
    if rel == TARGET_SAME_SESSION {
        return 0;
    }
    let b = SysBody {
        op: sig as u32,
        target_tgid: target,
        target: rel,
        ret: result as i64,
        ..SysBody::default()
    };
    if emit_sys(&s, RecordKind::Signal, b, 0, 0, -1).is_err() {
        bump(&ERRORS, RecordKind::Signal);
    }
    0
}

/// An operation on the file behind descriptor `fd` (fchmod, fchown, ftruncate, write, mmap).
#[inline(always)]
fn emit_fd_op(s: &SessionInfo, kind: RecordKind, fd: i64, arg0: u64, arg1: u64) -> Result<(), i32> {
    let file = file_of_fd(fd)?;
    let buf = scratch().ok_or(-1)?;
    header_current(buf, kind, s)?;
    let start = HEADER_LEN + core::mem::size_of::<PathOpBody>();
    let (pos, trunc) = write_path(buf, start, file.wrapping_add(off!(file_path)));
    let inode = rdp(file, off!(file_inode)).unwrap_or(core::ptr::null());
    put(
        buf,
        HEADER_LEN,
        PathOpBody {
            flags: if trunc { PATH_TRUNCATED } else { 0 } | FD_OP | exe_markers(file) << 8,
            op_flags: 0,
            dir_len: (pos - start) as u32,
            name_len: 0,
            dir2_len: 0,
            name2_len: 0,
            arg0,
            arg1,
            ino: rd(inode, off!(inode_ino)).unwrap_or(0),
            cookie: 0,
        },
    );
    submit(buf, pos, kind);
    Ok(())
}

/// A path operation: directory (dirfd or cwd) + name as passed, optionally a second directory
/// and name (`d2 == NO_DIR` with `n2 != 0` writes only the second name, e.g. a symlink's text).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn emit_path_op(
    s: &SessionInfo,
    kind: RecordKind,
    d1: i64,
    n1: u64,
    d2: i64,
    n2: u64,
    arg0: u64,
    arg1: u64,
    op_flags: u32,
    io_cookie: u64,
) -> Result<(), i32> {
    let buf = scratch().ok_or(-1)?;
    header_current(buf, kind, s)?;
    let start = HEADER_LEN + core::mem::size_of::<PathOpBody>();
    // io_uring requests carry kernel copies of the names (`struct filename`); syscalls the
    // user's pointers.
    let user = io_cookie == 0;
    let (p1, t1) = write_dir_of(buf, start, d1);
    let p2 = write_str(buf, p1, n1 as *const u8, 2047, user);
    let (p3, t2) = if d2 == NO_DIR {
        (p2, false)
    } else {
        write_dir_of(buf, p2, d2)
    };
    let p4 = if n2 != 0 {
        write_str(buf, p3, n2 as *const u8, 2047, user)
    } else {
        p3
    };
    let io = if user { 0 } else { IO_PENDING | VIA_IO_URING };
    put(
        buf,
        HEADER_LEN,
        PathOpBody {
            flags: (if t1 { PATH_TRUNCATED } else { 0 })
                | (if t2 { PATH2_TRUNCATED } else { 0 })
                | io,
            op_flags,
            dir_len: (p1 - start) as u32,
            name_len: (p2 - p1) as u32,
            dir2_len: (p3 - p2) as u32,
            name2_len: (p4 - p3) as u32,
            arg0,
            arg1,
            ino: 0,
            cookie: io_cookie,
        },
    );
    submit(buf, p4, kind);
    Ok(())
}

/// Emit a socket record for the socket behind descriptor `fd`. `skip_tcp`: TCP connects and
/// listens are reported by `inet_sock_set_state`, which also sees io_uring.
#[inline(always)]
fn emit_sock_fd(
    s: &SessionInfo,
    kind: RecordKind,
    fd: i64,
    via: u32,
    skip_tcp: bool,
) -> Result<(), i32> {
    let file = file_of_fd(fd)?;
    let inode = rdp(file, off!(file_inode))?;
    let mode: u16 = rd(inode, off!(inode_mode))?;
    if (mode as u32) & S_IFMT != S_IFSOCK {
        return Ok(());
    }
    let socket = rdp(file, off!(file_private_data))?;
    let sk = rdp(socket, off!(socket_sk))?;
    let family: u16 = rd(sk, off!(sk_family))?;
    let protocol: u16 = rd(sk, off!(sk_protocol)).unwrap_or(0);
    if skip_tcp && protocol == IPPROTO_TCP && (family == AF_INET || family == AF_INET6) {
        return Ok(());
    }
    let sock_type: u16 = rd(socket, off!(socket_type)).unwrap_or(0);
    emit_sock(s, kind, sk, family, protocol, sock_type, fd as i32, via)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn emit_sock(
    s: &SessionInfo,
    kind: RecordKind,
    sk: *const u8,
    family: u16,
    protocol: u16,
    sock_type: u16,
    fd: i32,
    via: u32,
) -> Result<(), i32> {
    let buf = scratch().ok_or(-1)?;
    header_current(buf, kind, s)?;
    let mut body = SockBody {
        flags: via,
        family,
        protocol,
        sock_type,
        fd,
        ..SockBody::default()
    };
    let start = HEADER_LEN + core::mem::size_of::<SockBody>();
    let mut pos = start;
    if family == AF_INET || family == AF_INET6 {
        inet_addrs(sk, family, &mut body);
    } else if family == AF_UNIX {
        // Connect names the peer's address; listen and accept name our own.
        let owner = if kind == RecordKind::Connect {
            rdp(sk, off!(unix_peer)).unwrap_or(core::ptr::null())
        } else {
            sk
        };
        if let Ok(addr) = rdp(owner, off!(unix_addr)) {
            let len: i32 = rd(addr, off!(unix_address_len)).unwrap_or(0);
            // sockaddr_un: 2 bytes of family, then sun_path.
            let n = (len as i64) - 2;
            if n > 0 && n < 109 {
                let src = addr.wrapping_add(off!(unix_address_name) + 2);
                // SAFETY: destination masked into the buffer; n < 109.
                let r = unsafe {
                    generated::bpf_probe_read_kernel(
                        buf.add(pos & POS_MASK) as *mut _,
                        (n as u32) & 127,
                        src as *const _,
                    )
                };
                if r == 0 {
                    pos += (n as usize) & 127;
                }
            }
        }
    }
    body.unix_path_len = (pos - start) as u32;
    put(buf, HEADER_LEN, body);
    submit(buf, pos, kind);
    Ok(())
}

/// Local and remote address and port of an IPv4/IPv6 socket.
#[inline(always)]
fn inet_addrs(sk: *const u8, family: u16, body: &mut SockBody) {
    if family == AF_INET {
        let d: [u8; 4] = rd(sk, off!(sk_daddr)).unwrap_or([0; 4]);
        let sa: [u8; 4] = rd(sk, off!(sk_rcv_saddr)).unwrap_or([0; 4]);
        body.daddr[..4].copy_from_slice(&d);
        body.saddr[..4].copy_from_slice(&sa);
    } else {
        body.daddr = rd(sk, off!(sk_v6_daddr)).unwrap_or([0; 16]);
        body.saddr = rd(sk, off!(sk_v6_rcv_saddr)).unwrap_or([0; 16]);
    }
    let dport: u16 = rd(sk, off!(sk_dport)).unwrap_or(0);
    body.dport = u16::from_be(dport);
    body.sport = rd(sk, off!(sk_num)).unwrap_or(0);
}

// ---------------------------------------------------------------------------------------------
// Per-socket byte counts
// ---------------------------------------------------------------------------------------------

/// recv(2) flag: look at the data without consuming it (not counted).
const MSG_PEEK: i32 = 2;
const BPF_NOEXIST: u64 = 1;

/// Count `n` bytes moved on `sk` by the current task, if it is in a session. The first count
/// creates the flow entry with the task's identity and the socket's addresses; later ones are
/// one lookup and one atomic add. Nothing goes to the ring here: the record is sent when a TCP
/// socket is destroyed (`tcp_destroy_sock`), and user space reports long-lived flows and flows
/// of exited processes from the map.
#[inline(always)]
fn flow_account(sk: *const u8, n: i32, sent: bool) {
    if n <= 0 || sk.is_null() {
        return;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(s) = session_of(tgid) else {
        return;
    };
    let key = sk as u64;
    let mut p = FLOWS.get_ptr_mut(&key);
    if p.is_none() {
        if flow_new(&s, sk).is_err() {
            bump(&ERRORS, RecordKind::Flow);
            return;
        }
        p = FLOWS.get_ptr_mut(&key);
    }
    let Some(p) = p else { return };
    // SAFETY: `p` points into a live map value; the counters are updated atomically because
    // threads of one process may share the socket.
    unsafe {
        let c = if sent {
            core::ptr::addr_of_mut!((*p).flow.sent)
        } else {
            core::ptr::addr_of_mut!((*p).flow.received)
        };
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            c, n as u64,
        );
    }
}

#[inline(always)]
fn flow_new(s: &SessionInfo, sk: *const u8) -> Result<(), i32> {
    let family: u16 = rd(sk, off!(sk_family))?;
    if family != AF_INET && family != AF_INET6 {
        return Err(0);
    }
    let buf = scratch().ok_or(-1)?;
    header_current(buf, RecordKind::Flow, s)?;
    let mut sock = SockBody {
        family,
        protocol: rd(sk, off!(sk_protocol)).unwrap_or(0),
        fd: -1,
        ..SockBody::default()
    };
    inet_addrs(sk, family, &mut sock);
    put(buf, HEADER_LEN, sock);
    put(
        buf,
        HEADER_LEN + core::mem::size_of::<SockBody>(),
        FlowBody {
            // SAFETY: the helper has no preconditions.
            first_ns: unsafe { bpf_ktime_get_boot_ns() },
            ..FlowBody::default()
        },
    );
    // SAFETY: the scratch buffer holds a whole, initialised FlowRecord at offset 0 (8-aligned
    // map memory).
    let rec = unsafe { &*(buf as *const FlowRecord) };
    FLOWS.insert(&(sk as u64), rec, BPF_NOEXIST).or(Ok(()))
}

/// A TCP socket is destroyed (after its owner closed it and any data it read is counted):
/// send its flow record, if it has one, and forget it.
#[inline(always)]
fn flow_close(sk: *const u8) {
    let key = sk as u64;
    let Some(p) = FLOWS.get_ptr_mut(&key) else {
        return;
    };
    let flags = wake_flags(core::mem::size_of::<FlowRecord>());
    // SAFETY: `p` points into a live map value of FlowRecord size.
    unsafe {
        (*p).hdr.kind = RecordKind::Flow as u32;
        (*p).hdr.len = core::mem::size_of::<FlowRecord>() as u32;
        (*p).hdr.ktime_ns = bpf_ktime_get_boot_ns();
        (*p).flow.state = FLOW_CLOSE;
        let family = (*p).sock.family;
        inet_addrs(sk, family, &mut (*p).sock);
        if EVENTS.output::<FlowRecord>(&*p, flags).is_err() {
            bump(&LOSS, RecordKind::Flow);
        }
    }
    let _ = FLOWS.remove(&key);
}

/// Runs for any task (often in softirq for orphaned sockets): the flow map, not the session,
/// decides.
#[btf_tracepoint(function = "tcp_destroy_sock")]
pub fn tcp_destroy_sock(ctx: BtfTracePointContext) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    flow_close(sk);
    0
}

#[btf_tracepoint(function = "sock_send_length")]
pub fn sock_send_length(ctx: BtfTracePointContext) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    let ret: i32 = ctx.arg(1);
    flow_account(sk, ret, true);
    0
}

#[btf_tracepoint(function = "sock_recv_length")]
pub fn sock_recv_length(ctx: BtfTracePointContext) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    let ret: i32 = ctx.arg(1);
    let flags: i32 = ctx.arg(2);
    if flags & MSG_PEEK == 0 {
        flow_account(sk, ret, false);
    }
    0
}

// ---------------------------------------------------------------------------------------------
// TCP state changes and io_uring completions
// ---------------------------------------------------------------------------------------------

#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: BtfTracePointContext) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    let old: i32 = ctx.arg(1);
    let new: i32 = ctx.arg(2);
    // Most transitions of a connection are none of ours: decide on the states before the
    // session lookup.
    let kind = if old == TCP_CLOSE && new == TCP_SYN_SENT {
        RecordKind::Connect
    } else if new == TCP_LISTEN && old != TCP_LISTEN {
        RecordKind::Listen
    } else {
        return 0;
    };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(s) = session_of(tgid) else {
        return 0;
    };
    let family: u16 = rd(sk, off!(sk_family)).unwrap_or(0);
    if emit_sock(&s, kind, sk, family, IPPROTO_TCP, 1, -1, 0).is_err() {
        bump(&ERRORS, kind);
    }
    0
}

#[btf_tracepoint(function = "io_uring_complete")]
pub fn io_uring_complete(ctx: BtfTracePointContext) -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(s) = session_of(tgid) else {
        return 0;
    };
    let req: *const u8 = ctx.arg(1);
    let cqe: *const u8 = ctx.arg(2);
    let Ok(op) = rd::<u8>(req, off!(iokiocb_opcode)) else {
        return 0;
    };
    let res: i32 = rd(cqe, off!(cqe_res)).unwrap_or(-1);
    match op {
        IORING_OP_OPENAT | IORING_OP_OPENAT2 => {
            let req_flags: u64 = rd(req, off!(ioreq_open_flags)).unwrap_or(0);
            if res >= 0 && emit_open(&s, res as i64, VIA_IO_URING, req_flags as u32).is_err() {
                bump(&ERRORS, RecordKind::Open);
            }
        }
        IORING_OP_ACCEPT => {
            if res >= 0 {
                let _ = emit_sock_fd(&s, RecordKind::Accept, res as i64, VIA_IO_URING, false);
            }
        }
        IORING_OP_RENAMEAT..=IORING_OP_LINKAT => {
            if let Some(kind) = io_path_kind(op) {
                io_path_result(&s, kind, launder(req as u64), res);
            }
        }
        IORING_OP_SENDMSG | IORING_OP_SEND | IORING_OP_SEND_ZC | IORING_OP_SENDMSG_ZC => {
            let cookie = launder(req as u64);
            if IO_SENDS.remove(&cookie).is_ok() {
                io_send_result(&s, cookie, res);
            }
        }
        IORING_OP_CONNECT => {
            if res == 0 || res == -(EINPROGRESS as i32) {
                if let Ok(file) = rdp(req, off!(iokiocb_file)) {
                    let _ = emit_sock_file(&s, file);
                }
            }
        }
        _ => {}
    }
    0
}

/// io_uring connect on a non-TCP socket (TCP is seen by `inet_sock_set_state`).
/// The record kind of an io_uring path operation.
#[inline(always)]
fn io_path_kind(op: u8) -> Option<RecordKind> {
    Some(match op {
        IORING_OP_RENAMEAT => RecordKind::Rename,
        IORING_OP_UNLINKAT => RecordKind::Unlink,
        IORING_OP_MKDIRAT => RecordKind::Mkdir,
        IORING_OP_SYMLINKAT => RecordKind::Symlink,
        IORING_OP_LINKAT => RecordKind::Link,
        _ => return None,
    })
}

/// io_uring path operations are seen twice: at submission (here), when the request holds the
/// kernel copies of its names, and at completion, when the names are already freed but the
/// result is known. This sends the paths with `IO_PENDING` and the request as cookie; user space
/// reports the operation when the completion record (`io_path_result`) says it succeeded. The
/// header is the submitting thread's, as for the syscall.
#[btf_tracepoint(function = "io_uring_submit_req")]
pub fn io_uring_submit_req(ctx: BtfTracePointContext) -> i32 {
    // Every io_uring submission on the host passes here: the opcode (a plain load from the
    // typed request) rules most out before the session lookup.
    let req: *const u8 = ctx.arg(0);
    let op: u8 = ld(req, off!(iokiocb_opcode));
    if matches!(
        op,
        IORING_OP_SENDMSG | IORING_OP_SEND | IORING_OP_SEND_ZC | IORING_OP_SENDMSG_ZC
    ) {
        io_send_submit(req, op);
        return 0;
    }
    let Some(kind) = io_path_kind(op) else {
        return 0;
    };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(s) = session_of(tgid) else {
        return 0;
    };
    let cmd = req.wrapping_add(off!(iokiocb_cmd));
    let dfd = |o: usize| rd::<i32>(cmd, o).unwrap_or(AT_FDCWD as i32) as i64;
    let name = |o: usize| {
        rdp(cmd, o)
            .and_then(|f| rdp(f, off!(filename_name)))
            .map(|p| p as u64)
            .unwrap_or(0)
    };
    let word = |o: usize| rd::<u32>(cmd, o).unwrap_or(0) as u64;
    // (dir, name, second dir, second name, arg0, flags), as the syscall handlers order them.
    let (d1, n1, d2, n2, a0, fl) = match op {
        IORING_OP_UNLINKAT => (
            dfd(off!(io_unlink_dfd)),
            name(off!(io_unlink_filename)),
            NO_DIR,
            0,
            0,
            word(off!(io_unlink_flags)),
        ),
        IORING_OP_MKDIRAT => (
            dfd(off!(io_mkdir_dfd)),
            name(off!(io_mkdir_filename)),
            NO_DIR,
            0,
            word(off!(io_mkdir_mode)),
            0,
        ),
        IORING_OP_RENAMEAT => (
            dfd(off!(io_rename_old_dfd)),
            name(off!(io_rename_oldpath)),
            dfd(off!(io_rename_new_dfd)),
            name(off!(io_rename_newpath)),
            0,
            word(off!(io_rename_flags)),
        ),
        // The new link is the path; a symlink's content is the second name, as written.
        IORING_OP_SYMLINKAT => (
            dfd(off!(io_link_new_dfd)),
            name(off!(io_link_newpath)),
            NO_DIR,
            name(off!(io_link_oldpath)),
            0,
            0,
        ),
        _ => (
            dfd(off!(io_link_new_dfd)),
            name(off!(io_link_newpath)),
            dfd(off!(io_link_old_dfd)),
            name(off!(io_link_oldpath)),
            0,
            word(off!(io_link_flags)),
        ),
    };
    if n1 == 0 {
        return 0;
    }
    // The request's address as a plain number (the verifier forbids arithmetic on a pointer,
    // and the cookie is written byte by byte).
    let cookie = launder(req as u64);
    if emit_path_op(&s, kind, d1, n1, d2, n2, a0, 0, fl as u32, cookie).is_err() {
        bump(&ERRORS, kind);
    }
    0
}

/// An io_uring send at submission, when its prepared message holds the kernel copy of the
/// destination and the user's buffers are still the submitter's: the same `net.send` and DNS
/// record as the syscalls, with `IO_PENDING` (the result comes with the completion). Requests on
/// registered (fixed) files are not followed: their socket is not in the descriptor table.
#[inline(always)]
fn io_send_submit(req: *const u8, op: u8) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(s) = session_of(tgid) else {
        return;
    };
    let flags: u64 = ld(req, off!(iokiocb_flags));
    if flags & REQ_F_FIXED_FILE != 0 {
        return;
    }
    let fd: i32 = ld(req, off!(iokiocb_fd));
    let name = rdp(req, off!(iokiocb_async_data))
        .and_then(|m| rdp(m, off!(io_amsg_name)))
        .map(|p| p as u64)
        .unwrap_or(0);
    let cmd = req.wrapping_add(off!(iokiocb_cmd));
    let ubuf: u64 = rd(cmd, off!(io_sr_buf)).unwrap_or(0);
    let (buf, len) = if op == IORING_OP_SEND || op == IORING_OP_SEND_ZC {
        (ubuf, rd::<i32>(cmd, off!(io_sr_len)).unwrap_or(0) as i64)
    } else {
        // The user's struct msghdr (x86_64): msg_iov @16; iovec: base @0, len @8.
        let iov: u64 = read_user(ubuf as *const u8, 16);
        let base: u64 = read_user(iov as *const u8, 0);
        let len: u64 = read_user(iov as *const u8, 8);
        (base, len as i64)
    };
    let cookie = launder(req as u64);
    let _ = emit_send(&s, fd as i64, buf, name, true, len, cookie);
}

/// The completion half of an io_uring send: its result, no payload.
#[inline(always)]
fn io_send_result(s: &SessionInfo, cookie: u64, res: i32) {
    let Some(buf) = scratch() else {
        return;
    };
    if header_current(buf, RecordKind::Send, s).is_err() {
        return;
    }
    put(
        buf,
        HEADER_LEN,
        SockBody {
            flags: IO_RESULT | VIA_IO_URING,
            bytes: res as u32,
            cookie,
            ..Default::default()
        },
    );
    submit(
        buf,
        HEADER_LEN + core::mem::size_of::<SockBody>(),
        RecordKind::Send,
    );
}

/// The completion half of an io_uring path operation: its result, no strings.
#[inline(always)]
fn io_path_result(s: &SessionInfo, kind: RecordKind, cookie: u64, res: i32) {
    let Some(buf) = scratch() else {
        return;
    };
    if header_current(buf, kind, s).is_err() {
        return;
    }
    put(
        buf,
        HEADER_LEN,
        PathOpBody {
            flags: IO_RESULT | VIA_IO_URING,
            arg0: res as i64 as u64,
            cookie,
            ..Default::default()
        },
    );
    submit(buf, HEADER_LEN + core::mem::size_of::<PathOpBody>(), kind);
}

#[inline(always)]
fn emit_sock_file(s: &SessionInfo, file: *const u8) -> Result<(), i32> {
    let socket = rdp(file, off!(file_private_data))?;
    let sk = rdp(socket, off!(socket_sk))?;
    let family: u16 = rd(sk, off!(sk_family))?;
    let protocol: u16 = rd(sk, off!(sk_protocol)).unwrap_or(0);
    if protocol == IPPROTO_TCP && (family == AF_INET || family == AF_INET6) {
        return Ok(());
    }
    let sock_type: u16 = rd(socket, off!(socket_type)).unwrap_or(0);
    emit_sock(
        s,
        RecordKind::Connect,
        sk,
        family,
        protocol,
        sock_type,
        -1,
        VIA_IO_URING,
    )
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
