//! agentwatch eBPF sensor.
//!
//! Tracepoint-family programs only (they load everywhere agentwatch runs; LSM and fentry may be
//! refused): sched tracepoints follow exec/fork/exit, the raw `sys_exit` tracepoint reads the
//! kernel objects a syscall produced (the opened `struct file` through the fd table, the socket
//! behind a descriptor), `inet_sock_set_state` sees TCP connects and listens from any path, and
//! `io_uring_complete` covers io_uring-issued opens, connects and accepts.
//!
//! Filtering happens here: every program first looks the current thread group up in `SESSIONS`
//! and returns at once when it is not part of an agent session. Sessions are inherited at fork,
//! so setsid, double fork and reparenting do not lose a descendant. Struct member offsets come
//! from BTF at load time through the `CONFIG` global; nothing is hard-coded for one kernel.
//! Records are assembled in a per-CPU scratch buffer and copied to the ring buffer; a failed
//! copy is counted per kind in `LOSS`, never dropped silently.
#![no_std]
#![no_main]

use agent_common::{
    ARGV_TRUNCATED, COMM_LEN, Config, EXE_KEY_LEN, ExecBody, ExitBody, ForkBody, HEADER_LEN,
    MAX_NAME, MAX_PATH_DEPTH, OpenBody, PATH_TRUNCATED, PATH2_TRUNCATED, PathOpBody,
    REC_NEW_SESSION, REC_PROVISIONAL, RecordHeader, RecordKind, SCRATCH_SIZE, SESSION_PROVISIONAL,
    SessionInfo, SockBody, VIA_IO_URING,
};
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_task, bpf_get_current_uid_gid, bpf_ktime_get_boot_ns,
        bpf_probe_read_kernel, generated,
    },
    macros::{btf_tracepoint, map, raw_tracepoint},
    maps::{HashMap, PerCpuArray, RingBuf},
    programs::{BtfTracePointContext, RawTracePointContext},
};

/// Set by the loader before load (see `agent_common::Config`).
#[unsafe(no_mangle)]
static CONFIG: Config = unsafe { core::mem::zeroed() };

#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

#[map(name = "SESSIONS")]
static SESSIONS: HashMap<u32, SessionInfo> = HashMap::with_max_entries(65536, 0);

#[map(name = "LOSS")]
static LOSS: PerCpuArray<u64> = PerCpuArray::with_max_entries(agent_common::KIND_SLOTS, 0);

#[map(name = "ERRORS")]
static ERRORS: PerCpuArray<u64> = PerCpuArray::with_max_entries(agent_common::KIND_SLOTS, 0);

#[map(name = "SCRATCH")]
static SCRATCH: PerCpuArray<[u8; SCRATCH_SIZE]> = PerCpuArray::with_max_entries(1, 0);

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

// io_uring opcodes (UAPI).
const IORING_OP_ACCEPT: u8 = 13;
const IORING_OP_CONNECT: u8 = 16;
const IORING_OP_OPENAT: u8 = 18;
const IORING_OP_OPENAT2: u8 = 28;

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

#[inline(always)]
fn current_task() -> *const u8 {
    // SAFETY: the helper has no preconditions; it returns the current task_struct pointer.
    unsafe { bpf_get_current_task() as *const u8 }
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
    let wake = cfg!(wakeup_bytes) as u64;
    let flags = if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= wake {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    } as u64;
    // SAFETY: the slice stays within the scratch buffer (len <= SCRATCH_SIZE checked above).
    let data = unsafe { core::slice::from_raw_parts(buf as *const u8, len) };
    if EVENTS.output::<[u8]>(data, flags).is_err() {
        bump(&LOSS, kind);
    }
}

/// Fill the common header for the current task.
#[inline(always)]
fn header_current(buf: *mut u8, kind: RecordKind, s: &SessionInfo) -> Result<(), i32> {
    let task = current_task();
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    let leader = rdp(task, off!(task_group_leader))?;
    let start_ns: u64 = rd(leader, off!(task_start_boottime)).unwrap_or(0);
    let parent = rdp(task, off!(task_real_parent))?;
    let ppid: u32 = rd(parent, off!(task_tgid)).unwrap_or(0);
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

/// Append the dentry names of `path` (a `struct path *`) leaf first, each NUL-terminated,
/// crossing mount points up to the global root. Returns the new position and a truncation flag.
#[inline(always)]
fn write_path(buf: *mut u8, start: usize, path: *const u8) -> (usize, bool) {
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
    for _ in 0..MAX_PATH_DEPTH {
        let Ok(mnt_root) = rdp(vfsmnt, off!(vfsmount_root)) else {
            break;
        };
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
            continue;
        }
        let Ok(parent) = rdp(dentry, off!(dentry_parent)) else {
            break;
        };
        if parent == dentry || parent.is_null() {
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

/// Append a NUL-terminated kernel string of at most `max` bytes.
#[inline(always)]
fn write_kstr(buf: *mut u8, pos: usize, src: *const u8, max: usize) -> usize {
    if pos > POS_LIMIT {
        return pos;
    }
    // SAFETY: destination within the buffer (masked position + max < SCRATCH_SIZE - POS_MASK).
    let n = unsafe {
        generated::bpf_probe_read_kernel_str(
            buf.add(pos & POS_MASK) as *mut _,
            (max & 4095) as u32,
            src as *const _,
        )
    };
    if n > 0 { pos + ((n as usize) & 4095) } else { pos }
}

/// Append a NUL-terminated user string of at most `max` bytes.
#[inline(always)]
fn write_ustr(buf: *mut u8, pos: usize, src: *const u8, max: usize) -> usize {
    if pos > POS_LIMIT || src.is_null() {
        return pos;
    }
    // SAFETY: as in write_kstr; the helper validates the user address.
    let n = unsafe {
        generated::bpf_probe_read_user_str(
            buf.add(pos & POS_MASK) as *mut _,
            (max & 4095) as u32,
            src as *const _,
        )
    };
    if n > 0 { pos + ((n as usize) & 4095) } else { pos }
}

/// The `struct file *` installed at descriptor `fd` of the current task.
#[inline(always)]
fn file_of_fd(fd: i64) -> Result<*const u8, i32> {
    if fd < 0 {
        return Err(-1);
    }
    let task = current_task();
    let files = rdp(task, off!(task_files))?;
    let fdt = rdp(files, off!(files_fdt))?;
    let max: u32 = rd(fdt, off!(fdt_max_fds))?;
    if fd as u64 >= max as u64 {
        return Err(-1);
    }
    let arr = rdp(fdt, off!(fdt_fd))?;
    let file = rdp(arr, (fd as usize) * 8)?;
    if file.is_null() {
        return Err(-1);
    }
    Ok(file)
}

/// Directory a user-supplied path is relative to: the dirfd's path or the cwd.
#[inline(always)]
fn write_dir_of(buf: *mut u8, pos: usize, dfd: i64) -> (usize, bool) {
    if dfd == AT_FDCWD {
        let task = current_task();
        let Ok(fs) = rdp(task, off!(task_fs)) else {
            return (pos, true);
        };
        write_path(buf, pos, fs.wrapping_add(off!(fs_pwd)))
    } else {
        match file_of_fd(dfd) {
            Ok(file) => write_path(buf, pos, file.wrapping_add(off!(file_path))),
            Err(_) => (pos, true),
        }
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
        // A reused pid must not inherit a stale session.
        let _ = SESSIONS.remove(&ctgid);
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
            _pad: 0,
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

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit(ctx: RawTracePointContext) -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(s) = session_of(tgid) else {
        return 0;
    };
    let regs: *const u8 = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    let Ok(nr) = rd::<u64>(regs, off!(regs_orig_ax)) else {
        return 0;
    };
    let arg = |o: usize| rd::<u64>(regs, o).unwrap_or(0);
    match nr {
        NR_OPEN | NR_OPENAT | NR_OPENAT2 | NR_CREAT => {
            let req_flags = match nr {
                NR_OPEN => arg(off!(regs_si)),
                NR_OPENAT => arg(off!(regs_dx)),
                NR_CREAT => O_CREAT_WRONLY_TRUNC,
                _ => {
                    // openat2: flags are the first u64 of the user's `struct open_how`.
                    let how = arg(off!(regs_dx)) as *const u64;
                    // SAFETY: the helper validates the user address.
                    unsafe { aya_ebpf::helpers::bpf_probe_read_user(how) }.unwrap_or(0)
                }
            };
            if ret >= 0 && emit_open(&s, ret, 0, req_flags as u32).is_err() {
                bump(&ERRORS, RecordKind::Open);
            }
        }
        NR_UNLINK | NR_UNLINKAT => {
            if ret == 0 {
                let (dfd, name, fl) = if nr == NR_UNLINK {
                    (AT_FDCWD, arg(off!(regs_di)), 0)
                } else {
                    (
                        arg(off!(regs_di)) as i32 as i64,
                        arg(off!(regs_si)),
                        arg(off!(regs_dx)),
                    )
                };
                let _ = emit_path_op(&s, RecordKind::Unlink, dfd, name, fl as u32);
            }
        }
        NR_RENAME | NR_RENAMEAT | NR_RENAMEAT2 => {
            if ret == 0 {
                let (d1, n1, d2, n2, fl) = if nr == NR_RENAME {
                    (AT_FDCWD, arg(off!(regs_di)), AT_FDCWD, arg(off!(regs_si)), 0)
                } else {
                    (
                        arg(off!(regs_di)) as i32 as i64,
                        arg(off!(regs_si)),
                        arg(off!(regs_dx)) as i32 as i64,
                        arg(off!(regs_r10)),
                        if nr == NR_RENAMEAT2 {
                            arg(off!(regs_r8))
                        } else {
                            0
                        },
                    )
                };
                let _ = emit_rename(&s, d1, n1, d2, n2, fl as u32);
            }
        }
        NR_CONNECT => {
            if ret == 0 || ret == -EINPROGRESS {
                let fd = arg(off!(regs_di)) as i32 as i64;
                let _ = emit_sock_fd(&s, RecordKind::Connect, fd, 0, true);
            }
        }
        NR_ACCEPT | NR_ACCEPT4 => {
            if ret >= 0 {
                let _ = emit_sock_fd(&s, RecordKind::Accept, ret, 0, false);
            }
        }
        NR_LISTEN => {
            if ret == 0 {
                let fd = arg(off!(regs_di)) as i32 as i64;
                let _ = emit_sock_fd(&s, RecordKind::Listen, fd, 0, true);
            }
        }
        _ => {}
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

#[inline(always)]
fn emit_path_op(
    s: &SessionInfo,
    kind: RecordKind,
    dfd: i64,
    name: u64,
    op_flags: u32,
) -> Result<(), i32> {
    let buf = scratch().ok_or(-1)?;
    header_current(buf, kind, s)?;
    let start = HEADER_LEN + core::mem::size_of::<PathOpBody>();
    let (p, trunc) = write_dir_of(buf, start, dfd);
    let dir_len = p - start;
    let p2 = write_ustr(buf, p, name as *const u8, 4095);
    put(
        buf,
        HEADER_LEN,
        PathOpBody {
            flags: if trunc { PATH_TRUNCATED } else { 0 },
            op_flags,
            dir_len: dir_len as u32,
            name_len: (p2 - p) as u32,
            dir2_len: 0,
            name2_len: 0,
        },
    );
    submit(buf, p2, kind);
    Ok(())
}

#[inline(always)]
fn emit_rename(
    s: &SessionInfo,
    d1: i64,
    n1: u64,
    d2: i64,
    n2: u64,
    op_flags: u32,
) -> Result<(), i32> {
    let buf = scratch().ok_or(-1)?;
    header_current(buf, RecordKind::Rename, s)?;
    let start = HEADER_LEN + core::mem::size_of::<PathOpBody>();
    let (p1, t1) = write_dir_of(buf, start, d1);
    let p2 = write_ustr(buf, p1, n1 as *const u8, 2047);
    let (p3, t2) = write_dir_of(buf, p2, d2);
    let p4 = write_ustr(buf, p3, n2 as *const u8, 2047);
    put(
        buf,
        HEADER_LEN,
        PathOpBody {
            flags: (if t1 { PATH_TRUNCATED } else { 0 }) | (if t2 { PATH2_TRUNCATED } else { 0 }),
            op_flags,
            dir_len: (p1 - start) as u32,
            name_len: (p2 - p1) as u32,
            dir2_len: (p3 - p2) as u32,
            name2_len: (p4 - p3) as u32,
        },
    );
    submit(buf, p4, RecordKind::Rename);
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
    if family == AF_INET {
        let d: [u8; 4] = rd(sk, off!(sk_daddr)).unwrap_or([0; 4]);
        let sa: [u8; 4] = rd(sk, off!(sk_rcv_saddr)).unwrap_or([0; 4]);
        body.daddr[..4].copy_from_slice(&d);
        body.saddr[..4].copy_from_slice(&sa);
    } else if family == AF_INET6 {
        body.daddr = rd(sk, off!(sk_v6_daddr)).unwrap_or([0; 16]);
        body.saddr = rd(sk, off!(sk_v6_rcv_saddr)).unwrap_or([0; 16]);
    }
    if family == AF_INET || family == AF_INET6 {
        let dport: u16 = rd(sk, off!(sk_dport)).unwrap_or(0);
        body.dport = u16::from_be(dport);
        body.sport = rd(sk, off!(sk_num)).unwrap_or(0);
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

// ---------------------------------------------------------------------------------------------
// TCP state changes and io_uring completions
// ---------------------------------------------------------------------------------------------

#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: BtfTracePointContext) -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(s) = session_of(tgid) else {
        return 0;
    };
    let sk: *const u8 = ctx.arg(0);
    let old: i32 = ctx.arg(1);
    let new: i32 = ctx.arg(2);
    let kind = if old == TCP_CLOSE && new == TCP_SYN_SENT {
        RecordKind::Connect
    } else if new == TCP_LISTEN && old != TCP_LISTEN {
        RecordKind::Listen
    } else {
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
