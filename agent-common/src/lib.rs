// Over 800 lines: the one ABI shared by the eBPF side and user space; every record layout and map key is asserted against the other side here, and splitting it would split those checks.
//! Records shared between the eBPF sensor and user space.
//!
//! Every type here is `#[repr(C)]` plain data with explicit padding so that the kernel side
//! (`agent-ebpf`) and the decoder (`agent-model`) agree on one layout, checked by size and offset
//! asserts below. A record on the ring buffer is a [`RecordHeader`], a fixed body chosen by
//! [`RecordKind`], then variable-length byte strings whose lengths the body carries. Paths are
//! sent as the kernel walks them: dentry names leaf first, each ending in a NUL byte; user space
//! reverses them. This keeps the kernel loop simple enough for the verifier.
#![no_std]

/// Name of the ring buffer map.
pub const MAP_EVENTS: &str = "EVENTS";
/// Name of the session map: thread-group id -> [`SessionInfo`].
pub const MAP_SESSIONS: &str = "SESSIONS";
/// Per-CPU array of lost-record counters, indexed by [`RecordKind`] id.
pub const MAP_LOSS: &str = "LOSS";
/// Per-CPU array of error counters (failed kernel reads), indexed by [`RecordKind`] id.
pub const MAP_ERRORS: &str = "ERRORS";
/// `comm` (16 bytes, NUL padded) -> agent id.
pub const MAP_SEL_COMM: &str = "SEL_COMM";
/// Executable basename (NUL padded) -> agent id; user space confirms the full glob.
pub const MAP_SEL_EXE: &str = "SEL_EXE";
/// uid -> agent id.
pub const MAP_SEL_UID: &str = "SEL_UID";
/// cgroup id -> agent id.
pub const MAP_SEL_CGROUP: &str = "SEL_CGROUP";
/// Per-socket byte counters of agent processes (key: the `struct sock` address, value:
/// [`FlowEntry`]).
pub const MAP_FLOWS: &str = "FLOWS";
/// agentwatch's own bpf objects: key `(OBJ_* << 32) | id`, value 1. The daemon fills it after
/// attaching, so the kernel can tell when a bpf() command reaches one of them.
pub const MAP_OWN_IDS: &str = "OWN_IDS";
/// Object types in [`MAP_OWN_IDS`] keys.
pub const OBJ_PROG: u64 = 1;
pub const OBJ_MAP: u64 = 2;
pub const OBJ_LINK: u64 = 3;
/// Name of the global that carries [`SensorConfig`].
pub const GLOBAL_CONFIG: &str = "CONFIG";

/// Number of slots in the loss and error counter arrays.
pub const KIND_SLOTS: u32 = 64;
/// Length of the kernel's `comm`.
pub const COMM_LEN: usize = 16;
/// Length of a key in [`MAP_SEL_EXE`].
pub const EXE_KEY_LEN: usize = 32;
/// Maximum number of path components walked in the kernel.
pub const MAX_PATH_DEPTH: u32 = 48;
/// Maximum bytes of one path component read in the kernel (NAME_MAX + NUL).
pub const MAX_NAME: usize = 256;
/// Maximum bytes of a whole encoded path.
pub const MAX_PATH_BYTES: u32 = 4096;
/// Maximum bytes of argv captured at exec.
pub const MAX_ARGV_BYTES: u32 = 4096;
/// Maximum bytes of a user-supplied path string (unlink, rename, unix socket).
pub const MAX_USER_PATH: u32 = 4096;
/// Size of the per-CPU scratch buffer a record is assembled in.
pub const SCRATCH_SIZE: usize = 32768;

/// Kind of a kernel record. The numbers are part of the wire format and are never reused.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    Exec = 1,
    Exit = 2,
    Fork = 3,
    Open = 10,
    Unlink = 11,
    Rename = 12,
    Chmod = 13,
    Chown = 14,
    Link = 15,
    Symlink = 16,
    Mkdir = 17,
    Truncate = 18,
    Write = 19,
    Connect = 20,
    Accept = 21,
    Listen = 22,
    /// UDP send with a destination (also the source of DNS queries).
    Send = 23,
    /// Bytes sent and received on one socket (at close, periodically, at process exit).
    Flow = 26,
    MmapExec = 25,
    PrivChange = 30,
    Ptrace = 31,
    Bpf = 32,
    Module = 33,
    Mount = 34,
    Namespace = 35,
    Memfd = 36,
    Signal = 37,
    /// Access and modification times set (utimensat, futimesat, utimes, utime).
    Utime = 27,
    /// A chunk of TLS plaintext an agent wrote or read (`SSL_write`/`SSL_read` uprobes).
    TlsData = 44,
    /// An extended attribute set on a file (setxattr, lsetxattr, fsetxattr, setxattrat):
    /// `security.capability` gives a file capabilities.
    Xattr = 45,
}

impl RecordKind {
    /// All kinds, in id order.
    pub const ALL: [RecordKind; 30] = [
        RecordKind::Exec,
        RecordKind::Exit,
        RecordKind::Fork,
        RecordKind::Open,
        RecordKind::Unlink,
        RecordKind::Rename,
        RecordKind::Chmod,
        RecordKind::Chown,
        RecordKind::Link,
        RecordKind::Symlink,
        RecordKind::Mkdir,
        RecordKind::Truncate,
        RecordKind::Write,
        RecordKind::Connect,
        RecordKind::Accept,
        RecordKind::Listen,
        RecordKind::Send,
        RecordKind::MmapExec,
        RecordKind::Flow,
        RecordKind::Utime,
        RecordKind::PrivChange,
        RecordKind::Ptrace,
        RecordKind::Bpf,
        RecordKind::Module,
        RecordKind::Mount,
        RecordKind::Namespace,
        RecordKind::Memfd,
        RecordKind::Signal,
        RecordKind::TlsData,
        RecordKind::Xattr,
    ];
}

/// An unknown record kind id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownKind(pub u32);

impl TryFrom<u32> for RecordKind {
    type Error = UnknownKind;
    fn try_from(v: u32) -> Result<Self, UnknownKind> {
        Ok(match v {
            1 => RecordKind::Exec,
            2 => RecordKind::Exit,
            3 => RecordKind::Fork,
            10 => RecordKind::Open,
            11 => RecordKind::Unlink,
            12 => RecordKind::Rename,
            13 => RecordKind::Chmod,
            14 => RecordKind::Chown,
            15 => RecordKind::Link,
            16 => RecordKind::Symlink,
            17 => RecordKind::Mkdir,
            18 => RecordKind::Truncate,
            19 => RecordKind::Write,
            20 => RecordKind::Connect,
            21 => RecordKind::Accept,
            22 => RecordKind::Listen,
            23 => RecordKind::Send,
            25 => RecordKind::MmapExec,
            26 => RecordKind::Flow,
            27 => RecordKind::Utime,
            30 => RecordKind::PrivChange,
            31 => RecordKind::Ptrace,
            32 => RecordKind::Bpf,
            33 => RecordKind::Module,
            34 => RecordKind::Mount,
            35 => RecordKind::Namespace,
            36 => RecordKind::Memfd,
            37 => RecordKind::Signal,
            44 => RecordKind::TlsData,
            45 => RecordKind::Xattr,
            other => return Err(UnknownKind(other)),
        })
    }
}

/// Session map value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionInfo {
    pub session_id: u64,
    pub agent_id: u32,
    /// `SESSION_*` flags.
    pub flags: u32,
}

/// The session was opened in the kernel by an executable-basename match that user space has not
/// confirmed yet against the full glob.
pub const SESSION_PROVISIONAL: u32 = 1;

/// Header of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    /// [`RecordKind`] id.
    pub kind: u32,
    /// Total record length in bytes, header included.
    pub len: u32,
    /// `bpf_ktime_get_boot_ns` at the event.
    pub ktime_ns: u64,
    pub session_id: u64,
    /// Start time (boot-time ns) of the subject process (its thread-group leader).
    pub start_ns: u64,
    /// Thread id.
    pub pid: u32,
    /// Process id (thread-group id).
    pub tgid: u32,
    /// Thread-group id of the real parent.
    pub ppid: u32,
    pub agent_id: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: [u8; COMM_LEN],
}

/// Path was cut at [`MAX_PATH_DEPTH`] components or [`MAX_PATH_BYTES`].
pub const PATH_TRUNCATED: u32 = 1;
/// argv was longer than [`MAX_ARGV_BYTES`].
pub const ARGV_TRUNCATED: u32 = 2;
/// The record came from an io_uring request rather than a syscall.
pub const VIA_IO_URING: u32 = 4;
/// The session is provisional (see [`SESSION_PROVISIONAL`]).
pub const REC_PROVISIONAL: u32 = 8;
/// This exec opened a new session (selector match in the kernel).
pub const REC_NEW_SESSION: u32 = 16;
/// A second path (cwd, rename target) was truncated.
pub const PATH2_TRUNCATED: u32 = 32;
/// A path operation on a descriptor: the first path is the file's own (`EXE_*` markers of the
/// file are in bits 8..16 of the flags).
pub const FD_OP: u32 = 64;
/// The first name of a [`SysRecord`] is an encoded kernel path (a descriptor's file).
pub const NAME_IS_PATH: u32 = 128;
/// A [`PathOpRecord`] of an io_uring path operation (or a [`SockRecord`] of an io_uring send) at
/// submission: the paths or the destination, not yet the result. User space holds it until the
/// [`IO_RESULT`] record with the same cookie says it succeeded.
/// (Bits 8..16 are the `EXE_*` markers of [`FD_OP`] records.)
pub const IO_PENDING: u32 = 1 << 16;
/// A [`PathOpRecord`] with no strings: the result (`arg0`, as i64) of the io_uring path operation
/// whose submission record has the same cookie; or a [`SockRecord`] with the result (`bytes`, as
/// i32) of an io_uring send.
pub const IO_RESULT: u32 = 1 << 17;
/// [`RecordKind::Utime`]: the access time is set to the current time (`UTIME_NOW`, or no times
/// given); `arg0` carries no time.
pub const ATIME_NOW: u32 = 1 << 18;
/// [`RecordKind::Utime`]: the access time is left as it is (`UTIME_OMIT`).
pub const ATIME_OMIT: u32 = 1 << 19;
/// [`RecordKind::Utime`]: the modification time is set to the current time.
pub const MTIME_NOW: u32 = 1 << 20;
/// [`RecordKind::Utime`]: the modification time is left as it is.
pub const MTIME_OMIT: u32 = 1 << 21;
/// A [`SysRecord`] the kernel sent for a process outside every session because it reached
/// agentwatch itself (its bpf objects, its process): `header.session_id` is zero.
pub const TAMPER: u32 = 256;
/// A [`SysRecord`] of [`RecordKind::Bpf`]: the object reached belongs to agentwatch.
pub const BPF_OWN: u32 = 512;
/// An [`OpenRecord`] of a file of the daemon: one of its `/proc/PID/` entries that expose its
/// memory or secrets (`mem`, `environ`, `maps`, ...), or a file in [`MAP_PROTECT`] opened for
/// writing. Reported from any process ([`TAMPER`] too when outside every session).
pub const OPEN_DAEMON: u32 = 1 << 24;

/// The daemon's files, for opens aimed at it: key `[kernel dev, inode]`, value `PROTECT_*`
/// bits. `[procfs dev, 0]` with [`PROTECT_PROCFS`] names the procfs whose `/PID/` entries of the
/// daemon are watched.
pub const MAP_PROTECT: &str = "PROTECT";
/// The file itself (binary, config, rules file, mark): opens for writing are reported.
pub const PROTECT_FILE: u32 = 1;
/// Every file directly in this directory (data dir, store, rules dir): opens for writing.
pub const PROTECT_DIR: u32 = 2;
/// The procfs of key `[dev, 0]`.
pub const PROTECT_PROCFS: u32 = 4;

/// An [`OpenRecord`] whose process the kernel SIGKILLed at the open (the file is in
/// [`MAP_KILL_OPEN`]); the process dies before the open returns to user space.
pub const OPEN_KILLED: u32 = 1 << 25;
/// Files whose open by a session process is killed in the kernel (rules with `inline = true`):
/// key `[kernel dev, inode]`, value `KILL_*` bits.
pub const MAP_KILL_OPEN: &str = "KILL_OPEN";
/// The file itself.
pub const KILL_FILE: u32 = 1;
/// Every file directly in this directory.
pub const KILL_DIR: u32 = 2;

/// Body of [`RecordKind::Exec`]; followed by `exe_len` bytes of encoded exe path, `cwd_len`
/// bytes of encoded cwd, `filename_len` bytes of the filename passed to exec, `argv_len` bytes of
/// NUL-separated argv.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecRecord {
    pub flags: u32,
    pub euid: u32,
    pub egid: u32,
    pub exe_len: u32,
    pub cwd_len: u32,
    pub filename_len: u32,
    pub argv_len: u32,
    /// Length of argv in the process's memory, before truncation.
    pub argv_orig_len: u32,
    pub exe_ino: u64,
    pub exe_dev: u32,
    /// `EXE_*` markers.
    pub markers: u32,
    pub parent_start_ns: u64,
}

/// The executable is a memfd (fileless exec).
pub const EXE_MEMFD: u32 = 1;
/// The executable's inode has no links left (deleted after start, or never linked).
pub const EXE_DELETED: u32 = 2;
/// The executable's directory is writable by everyone (`/tmp`, `/dev/shm`, ...).
pub const EXE_WRITABLE_DIR: u32 = 4;
/// At exec, descriptor 0 (stdin) is an IPv4/IPv6 socket: a program wired to the network (a
/// reverse or bind shell), not a terminal, pipe or file. Unix sockets do not count (libuv gives
/// every Node child its stdio on socketpairs).
pub const EXE_STDIN_INET: u32 = 8;
/// At exec, descriptor 1 (stdout) is an IPv4/IPv6 socket.
pub const EXE_STDOUT_INET: u32 = 16;

/// Body of [`RecordKind::Exit`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitRecord {
    /// Kernel exit code: `status << 8` for exit, signal number (plus 0x80 for core) for signals.
    pub exit_code: u32,
    pub flags: u32,
}

/// Body of [`RecordKind::Fork`]; the header describes the child.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForkRecord {
    pub parent_start_ns: u64,
    pub flags: u32,
    pub _pad: u32,
}

/// Body of [`RecordKind::Open`]; followed by `path_len` bytes of encoded path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenRecord {
    pub flags: u32,
    /// `file->f_flags` (O_* flags).
    pub f_flags: u32,
    /// `file->f_mode` (FMODE_* bits).
    pub f_mode: u32,
    /// `inode->i_mode` (type and permission bits).
    pub i_mode: u32,
    pub ino: u64,
    pub dev: u32,
    pub fd: i32,
    pub path_len: u32,
    /// Flags as requested by the caller (the kernel clears O_CREAT, O_EXCL, O_TRUNC and
    /// O_NOCTTY from `f_flags` once the file is open).
    pub req_flags: u32,
}

/// Body of the path operations (unlink, rename, chmod, chown, link, symlink, mkdir, truncate,
/// utime, write, mmap_exec). Followed by `dir_len` bytes of the encoded directory the first name
/// is relative to (the dirfd's path or cwd; for fd-based operations the file's own path, with an
/// empty name), `name_len` bytes of the name as passed, then `dir2_len` and `name2_len` bytes of
/// the second path (rename and link targets, symlink contents).
///
/// A name that starts with a magic link (`/proc/self/fd/N/`, `/dev/fd/N/`, `/proc/self/cwd/`,
/// ...) is resolved in the kernel at syscall exit: the directory is then the path the link
/// points at (the descriptor's dentry, the cwd or the root) and `name_skip` (`name2_skip`) says
/// how many leading bytes of the name the link took; the name is still sent whole, as passed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathOpRecord {
    pub flags: u32,
    /// Syscall flags (AT_REMOVEDIR, RENAME_*, AT_SYMLINK_FOLLOW...).
    pub op_flags: u32,
    pub dir_len: u32,
    pub name_len: u32,
    pub dir2_len: u32,
    pub name2_len: u32,
    /// Operation arguments: chmod/mkdir mode; chown uid; truncate length; mmap prot.
    pub arg0: u64,
    /// chown gid.
    pub arg1: u64,
    /// Inode of the file for fd-based operations.
    pub ino: u64,
    /// io_uring path operations: the request (`struct io_kiocb *`) that pairs the record sent at
    /// submission ([`IO_PENDING`], with the paths) with the one sent at completion
    /// ([`IO_RESULT`], result in `arg0`). Zero otherwise.
    pub cookie: u64,
    /// Bytes of the first name taken by a magic link the kernel resolved (0: none).
    pub name_skip: u32,
    /// Bytes of the second name taken by a magic link the kernel resolved (0: none).
    pub name2_skip: u32,
}

/// Body of the process and kernel operations (priv.change, ptrace, bpf, module, mount,
/// namespace, memfd, signal). Followed by `name_len` and `name2_len` bytes of strings whose
/// meaning depends on the kind (memfd name; mount source and target; module path; bpf program
/// name).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SysRecord {
    pub flags: u32,
    /// Syscall number, ptrace request, bpf command, or signal number.
    pub op: u32,
    pub arg0: u64,
    pub arg1: u64,
    pub arg2: u64,
    pub arg3: u64,
    /// Target process (ptrace, signal) by thread-group id, 0 when none.
    pub target_tgid: u32,
    /// `TARGET_*` relation of the target to the acting session.
    pub target: u32,
    pub ret: i64,
    pub name_len: u32,
    pub name2_len: u32,
    /// Mount file system type, NUL padded.
    pub fstype: [u8; 16],
}

/// The target process is in the same session.
pub const TARGET_SAME_SESSION: u32 = 1;
/// The target process is in another agent session.
pub const TARGET_OTHER_SESSION: u32 = 2;
/// The target process is the agentwatch daemon.
pub const TARGET_DAEMON: u32 = 4;

/// Body of [`RecordKind::Connect`], [`RecordKind::Accept`] and [`RecordKind::Listen`]. Followed
/// by `unix_path_len` bytes of a unix socket address (`sun_path`, may start with NUL for abstract
/// sockets).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockRecord {
    pub flags: u32,
    pub family: u16,
    pub protocol: u16,
    /// Socket type (SOCK_STREAM, SOCK_DGRAM...).
    pub sock_type: u16,
    /// Local port, host byte order.
    pub sport: u16,
    /// Remote port, host byte order.
    pub dport: u16,
    pub _pad: u16,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub unix_path_len: u32,
    pub fd: i32,
    /// Bytes sent (net.send).
    pub bytes: u32,
    /// Payload bytes that follow the unix path (DNS queries only).
    pub payload_len: u32,
    /// io_uring sends: the request that pairs the record sent at submission ([`IO_PENDING`],
    /// with the destination and payload) with the one sent at completion ([`IO_RESULT`], the
    /// result as an i32 in `bytes`). Zero otherwise.
    pub cookie: u64,
}

/// Per-socket traffic of an agent process: follows a [`SockRecord`] in a [`RecordKind::Flow`]
/// record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCountsRecord {
    /// Bytes sent (successful sendmsg/write/sendfile on the socket).
    pub sent: u64,
    /// Bytes received (successful recvmsg/read, MSG_PEEK excluded).
    pub received: u64,
    /// `bpf_ktime_get_boot_ns` of the first counted byte.
    pub first_ns: u64,
    /// One of the `FLOW_*` states.
    pub state: u32,
    pub _pad: u32,
}

/// The socket was closed and destroyed (TCP).
pub const FLOW_CLOSE: u32 = 1;
/// A periodic report of a flow that is still open (counters are totals so far).
pub const FLOW_UPDATE: u32 = 2;
/// The owning process exited; the final report of a socket without a TCP close (UDP).
pub const FLOW_EXIT: u32 = 3;

/// A whole flow record as kept in [`MAP_FLOWS`] and sent through the ring buffer: header
/// (identity of the process that first moved bytes), socket addresses, counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEntry {
    pub hdr: RecordHeader,
    pub sock: SockRecord,
    pub flow: FlowCountsRecord,
}

/// Byte offsets of kernel struct members, read from BTF at load time (never hard-coded).
/// `u16::MAX`-free: every field is required; the loader fails with a clear error when one is
/// missing.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_real_parent: u32,
    pub task_group_leader: u32,
    pub task_start_boottime: u32,
    pub task_comm: u32,
    pub task_mm: u32,
    pub task_fs: u32,
    pub task_files: u32,
    pub task_cred: u32,
    pub task_exit_code: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub bprm_file: u32,
    pub bprm_filename: u32,
    pub file_path: u32,
    pub file_inode: u32,
    pub file_flags: u32,
    pub file_mode: u32,
    pub file_private_data: u32,
    pub path_mnt: u32,
    pub path_dentry: u32,
    pub dentry_parent: u32,
    pub dentry_name: u32,
    pub dentry_inode: u32,
    pub qstr_name: u32,
    pub qstr_len: u32,
    pub vfsmount_root: u32,
    pub mount_mnt: u32,
    pub mount_parent: u32,
    pub mount_mountpoint: u32,
    pub inode_ino: u32,
    pub inode_sb: u32,
    pub inode_mode: u32,
    pub sb_dev: u32,
    pub fs_pwd: u32,
    pub files_fdt: u32,
    pub fdt_max_fds: u32,
    pub fdt_fd: u32,
    pub cred_uid: u32,
    pub cred_gid: u32,
    pub cred_euid: u32,
    pub cred_egid: u32,
    pub cred_cap_effective: u32,
    pub inode_nlink: u32,
    pub inode_uid: u32,
    pub regs_di: u32,
    pub regs_si: u32,
    pub regs_dx: u32,
    pub regs_r10: u32,
    pub regs_r8: u32,
    pub regs_orig_ax: u32,
    /// 32-bit (ia32) syscall argument registers.
    pub regs_bx: u32,
    pub regs_cx: u32,
    pub regs_bp: u32,
    /// `task_struct.thread_info.status` (TS_COMPAT marks an ia32 syscall in progress).
    pub task_ti_status: u32,
    pub socket_sk: u32,
    pub socket_type: u32,
    pub sk_family: u32,
    pub sk_daddr: u32,
    pub sk_rcv_saddr: u32,
    pub sk_dport: u32,
    pub sk_num: u32,
    pub sk_v6_daddr: u32,
    pub sk_v6_rcv_saddr: u32,
    pub sk_protocol: u32,
    pub unix_addr: u32,
    pub unix_peer: u32,
    pub unix_address_len: u32,
    pub unix_address_name: u32,
    pub iokiocb_file: u32,
    pub iokiocb_opcode: u32,
    pub cqe_res: u32,
    /// `io_kiocb.cmd` + `io_open.how.flags`: requested flags of an io_uring open.
    pub ioreq_open_flags: u32,
    /// `io_kiocb.cmd`, where the prepared operation (`io_unlink`, `io_rename`...) lives.
    pub iokiocb_cmd: u32,
    pub io_unlink_dfd: u32,
    pub io_unlink_flags: u32,
    pub io_unlink_filename: u32,
    pub io_mkdir_dfd: u32,
    pub io_mkdir_mode: u32,
    pub io_mkdir_filename: u32,
    /// `io_rename` and `io_link` (symlink and link) share this shape; both are read from BTF.
    pub io_rename_old_dfd: u32,
    pub io_rename_new_dfd: u32,
    pub io_rename_oldpath: u32,
    pub io_rename_newpath: u32,
    pub io_rename_flags: u32,
    pub io_link_old_dfd: u32,
    pub io_link_new_dfd: u32,
    pub io_link_oldpath: u32,
    pub io_link_newpath: u32,
    pub io_link_flags: u32,
    /// `struct filename.name`: the kernel copy of a path passed by user space.
    pub filename_name: u32,
    /// `io_kiocb.flags` (`REQ_F_FIXED_FILE` is bit 0).
    pub iokiocb_flags: u32,
    /// `io_kiocb.cqe.fd`: the descriptor of a request, before the file is looked up at issue.
    pub iokiocb_fd: u32,
    /// `io_kiocb.async_data`: a send's `struct io_async_msghdr`, prepared at submission.
    pub iokiocb_async_data: u32,
    /// `io_async_msghdr.msg.msg_name`: the kernel copy of a send's destination, or NULL.
    pub io_amsg_name: u32,
    /// `io_sr_msg.buf` (also `umsg`, the user's msghdr of a sendmsg) and `io_sr_msg.len`.
    pub io_sr_buf: u32,
    pub io_sr_len: u32,
    /// `fs_struct.root`: what `/proc/self/root` points at.
    pub fs_root: u32,
    /// `bpf_map.id`, `bpf_prog.aux`, `bpf_prog_aux.id`, `bpf_link.id`: the id of the object
    /// behind a bpf descriptor (`file.private_data`).
    pub bpf_map_id: u32,
    pub bpf_prog_aux: u32,
    pub bpf_prog_aux_id: u32,
    pub bpf_link_id: u32,
}

/// Read-only configuration the loader writes into the eBPF object before loading.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SensorConfig {
    pub offsets: Offsets,
    /// Thread-group id of the daemon (its own activity is never recorded).
    pub daemon_tgid: u32,
    /// Ring buffer fill level (bytes): the record that crosses it wakes the reader; otherwise
    /// the reader polls on a timer, which avoids a wake-up (an inter-processor interrupt) per
    /// event.
    pub wakeup_bytes: u32,
    /// Non-zero when [`MAP_SEL_EXE`] has entries.
    pub have_exe_selectors: u32,
    /// Non-zero when [`MAP_SEL_COMM`], [`MAP_SEL_UID`] or [`MAP_SEL_CGROUP`] have entries.
    pub have_other_selectors: u32,
}

// Layouts, checked at compile time (so the eBPF build checks them too): the sizes and offsets
// the decoder and the kernel side agree on. Each size is the sum of the record's field sizes,
// so a record that gained implicit padding (which `Plain` rules out) fails to build.
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<RecordHeader>() == 72);
    assert!(offset_of!(RecordHeader, comm) == 56);
    assert!(size_of::<SessionInfo>() == 16);
    assert!(size_of::<ExecRecord>() == 56);
    assert!(offset_of!(ExecRecord, parent_start_ns) == 48);
    assert!(size_of::<ExitRecord>() == 8);
    assert!(size_of::<ForkRecord>() == 16);
    assert!(size_of::<OpenRecord>() == 40);
    assert!(offset_of!(OpenRecord, ino) == 16);
    assert!(size_of::<PathOpRecord>() == 64);
    assert!(offset_of!(PathOpRecord, arg0) == 24);
    assert!(size_of::<SockRecord>() == 72);
    assert!(offset_of!(SockRecord, saddr) == 16);
    assert!(size_of::<SysRecord>() == 80);
    assert!(offset_of!(SysRecord, ret) == 48);
    assert!(size_of::<FlowCountsRecord>() == 32);
    assert!(size_of::<FlowEntry>() == 72 + 72 + 32);
    assert!(size_of::<TlsRecord>() == 32);
    assert!(offset_of!(TlsRecord, captured) == 16);
    assert!(size_of::<Offsets>().is_multiple_of(4));
    assert!(size_of::<SensorConfig>() == size_of::<Offsets>() + 16);
};

/// TLS plaintext (issue #16): body of a [`RecordKind::TlsData`] record, followed by
/// `captured` bytes of the data an `SSL_write`/`SSL_read` (or `_ex`) call moved. One call may
/// send several records (`offset` says where each chunk starts); bytes past
/// [`TLS_MAX_CAPTURE`] are not copied, and user space knows how many from `len`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsRecord {
    /// The `SSL *` pointer: the connection id, unique while the connection lives.
    pub conn: u64,
    /// Bytes the call moved (its return value).
    pub len: u64,
    /// Bytes of data in this record.
    pub captured: u32,
    /// Where this chunk starts in the call's data.
    pub offset: u32,
    /// `TLS_DIR_*`.
    pub dir: u32,
    pub _pad: u32,
}

/// [`TlsRecord::dir`]: the process wrote (to its peer) or read.
pub const TLS_DIR_WRITE: u32 = 0;
pub const TLS_DIR_READ: u32 = 1;
/// Bytes of data in one TLS record.
pub const TLS_CHUNK: usize = 8192;
/// Records one call sends at most (bytes past `TLS_CHUNK * TLS_MAX_CHUNKS` are counted, not
/// copied).
pub const TLS_MAX_CHUNKS: usize = 4;
/// Bytes of one call's data copied at most.
pub const TLS_MAX_CAPTURE: usize = TLS_CHUNK * TLS_MAX_CHUNKS;

/// Bytes of a record header.
pub const HEADER_LEN: usize = core::mem::size_of::<RecordHeader>();

/// Plain records: `repr(C)`, only integers and byte arrays, no implicit padding (checked by the
/// layout asserts), so every bit pattern is a valid value.
///
/// # Safety
/// Implement only for types that meet the description above.
pub unsafe trait Plain: Copy + Default {}

// SAFETY: each type below is repr(C), integer/byte-array only, without padding (layout asserts).
unsafe impl Plain for RecordHeader {}
// SAFETY: as above.
unsafe impl Plain for ExecRecord {}
// SAFETY: as above.
unsafe impl Plain for ExitRecord {}
// SAFETY: as above.
unsafe impl Plain for ForkRecord {}
// SAFETY: as above.
unsafe impl Plain for OpenRecord {}
// SAFETY: as above.
unsafe impl Plain for PathOpRecord {}
// SAFETY: as above.
unsafe impl Plain for SockRecord {}
// SAFETY: as above.
unsafe impl Plain for SessionInfo {}
// SAFETY: as above.
unsafe impl Plain for SysRecord {}
// SAFETY: as above.
unsafe impl Plain for FlowCountsRecord {}
// SAFETY: as above.
unsafe impl Plain for FlowEntry {}
// SAFETY: as above.
unsafe impl Plain for TlsRecord {}

/// Read a plain record at byte offset `at`; `None` when `buf` is too short.
pub fn read_plain<T: Plain>(buf: &[u8], at: usize) -> Option<T> {
    let end = at.checked_add(core::mem::size_of::<T>())?;
    let src = buf.get(at..end)?;
    // SAFETY: `src` holds exactly size_of::<T>() bytes; T is Plain so any bytes are a valid T;
    // read_unaligned does not require alignment.
    Some(unsafe { core::ptr::read_unaligned(src.as_ptr().cast::<T>()) })
}

/// The bytes of a plain record.
pub fn plain_bytes<T: Plain>(v: &T) -> &[u8] {
    // SAFETY: T is Plain (no padding, so every byte is initialised); the slice borrows `v`.
    unsafe { core::slice::from_raw_parts((v as *const T).cast::<u8>(), core::mem::size_of::<T>()) }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all these types are `repr(C)`, contain only integers and byte arrays, and have no
    // implicit padding (checked by the layout asserts), so any bit pattern is valid.
    unsafe impl aya::Pod for super::SessionInfo {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SensorConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FlowEntry {}
}

/// Egress verdicts of the cgroup `sock_addr` programs (`connect4/6`, `sendmsg4/6`): the record
/// kind id, outside [`RecordKind`] on purpose (it shares the id of the `egress.*` range of event
/// kinds), so user space reads it before decoding. Body: [`EgressRecord`].
pub const RECORD_EGRESS: u32 = 921;
/// Agent id → the egress policy of its sessions (`EGRESS_POLICY_MASK` bits: policy number, 1-based)
/// and [`EGRESS_ENFORCE`]. An agent absent from the map is not restricted.
pub const MAP_EGRESS_AGENTS: &str = "EGRESS_AGENTS";
/// LPM trie of allowed destinations: key data [`EgressKey`], value 1.
pub const MAP_EGRESS_ALLOW: &str = "EGRESS_ALLOW";
/// Per-CPU counters of the egress programs: [`EGRESS_STAT_DENIED`], [`EGRESS_STAT_DRY_RUN`],
/// [`EGRESS_STAT_LOST`].
pub const MAP_EGRESS_STATS: &str = "EGRESS_STATS";
pub const EGRESS_STAT_DENIED: u32 = 0;
pub const EGRESS_STAT_DRY_RUN: u32 = 1;
pub const EGRESS_STAT_LOST: u32 = 2;
/// The policy number bits of an [`MAP_EGRESS_AGENTS`] value.
pub const EGRESS_POLICY_MASK: u32 = 0xffff;
/// The policy is enforced (EPERM); without it a miss is only reported (dry run).
pub const EGRESS_ENFORCE: u32 = 1 << 31;
/// Entries of [`MAP_EGRESS_ALLOW`].
pub const EGRESS_ALLOW_MAX: u32 = 16384;
/// Bits of an [`EgressKey`] before the address: policy, port and padding.
pub const EGRESS_KEY_FIXED_BITS: u32 = 64;
/// [`EgressRecord::verdict`]: the connect or send got EPERM.
pub const EGRESS_DENIED: u32 = 1;
/// [`EgressRecord::verdict`]: a dry run; the connect or send went ahead.
pub const EGRESS_DRY_RUN: u32 = 2;
/// [`EgressRecord::hook`]: connect (TCP, or UDP connect).
pub const EGRESS_HOOK_CONNECT: u32 = 1;
/// [`EgressRecord::hook`]: a UDP send with a destination address.
pub const EGRESS_HOOK_SENDMSG: u32 = 2;

/// Key data of [`MAP_EGRESS_ALLOW`] (the LPM prefix length is [`EGRESS_KEY_FIXED_BITS`] plus
/// the address prefix). IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`), so one trie
/// serves both families; port 0 means any port (the programs look up the port, then 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EgressKey {
    /// Policy number, big-endian (the trie matches bytes from the first).
    pub policy: [u8; 4],
    /// Destination port, big-endian; 0: any.
    pub port: [u8; 2],
    pub _pad: [u8; 2],
    pub addr: [u8; 16],
}

/// Body of a [`RECORD_EGRESS`] record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EgressRecord {
    /// `AF_INET` or `AF_INET6` (of the socket).
    pub family: u16,
    pub protocol: u16,
    pub sock_type: u16,
    /// Destination port, host byte order.
    pub dport: u16,
    /// Destination, IPv4-mapped for IPv4.
    pub daddr: [u8; 16],
    /// Policy number (1-based, the `[[egress]]` table's position in the config).
    pub policy: u32,
    /// [`EGRESS_DENIED`] or [`EGRESS_DRY_RUN`].
    pub verdict: u32,
    /// `EGRESS_HOOK_*`.
    pub hook: u32,
    pub _pad: u32,
}

const _: () = {
    use core::mem::size_of;
    assert!(size_of::<EgressKey>() == 24);
    assert!(size_of::<EgressRecord>() == 40);
};

// SAFETY: repr(C), byte arrays only, no padding (asserted above).
unsafe impl Plain for EgressRecord {}

#[cfg(feature = "user")]
mod pod_egress {
    // SAFETY: repr(C), byte arrays only, no padding (asserted above).
    unsafe impl aya::Pod for super::EgressKey {}
}

/// The daemon's liveness and the fail-closed setting, an array of `u64` read by `sys_exit`
/// (see [`GUARD_HEARTBEAT`] and the following slots). Pinned with the other maps, so it outlives
/// a daemon killed with SIGKILL.
pub const MAP_GUARD: &str = "GUARD";
/// Slot: `bpf_ktime_get_ns` (CLOCK_MONOTONIC) of the daemon's last tick; 0 before the first.
pub const GUARD_HEARTBEAT: u32 = 0;
/// Slot: what the kernel does to a session process once the heartbeat is stale
/// (`FAIL_CLOSED_*`).
pub const GUARD_MODE: u32 = 1;
/// Slot: how old the heartbeat may get, in ns, before [`GUARD_MODE`] applies.
pub const GUARD_AFTER_NS: u32 = 2;
/// Slot: the ring's loss total the daemon had seen at its last tick (user space only: the next
/// daemon tells what was lost while none ran).
pub const GUARD_LOSS_SEEN: u32 = 3;
/// Slots in [`MAP_GUARD`].
pub const GUARD_SLOTS: u32 = 8;
/// Fail-closed off.
pub const FAIL_CLOSED_OFF: u64 = 0;
/// SIGSTOP session processes.
pub const FAIL_CLOSED_FREEZE: u64 = 1;
/// SIGKILL session processes.
pub const FAIL_CLOSED_KILL: u64 = 2;
/// Slot: the tgid of the daemon now running. Programs a previous daemon pinned keep its tgid
/// in `CONFIG`; this tells them the new daemon's own bpf() calls are not tampering.
pub const GUARD_DAEMON_TGID: u32 = 4;

/// A DNS answer a session process received (`recvfrom`/`recvmsg` on a UDP socket whose peer is
/// port 53): the record kind id, outside [`RecordKind`] like [`RECORD_EGRESS`] (id 926, of the
/// response range), read by user space before decoding. Body: a [`SockRecord`] (the peer in
/// `daddr`/`dport`) followed by up to [`DNS_ANSWER_MAX`] bytes of the message.
pub const RECORD_DNS_ANSWER: u32 = 926;
/// Bytes of a DNS answer copied (a classic UDP answer is at most 512, EDNS0 ones 1232).
pub const DNS_ANSWER_MAX: usize = 1232;
/// LRU hash of destinations a session may reach because its own DNS answers named them for an
/// allow-listed host name: key [`DnsAllowKey`], value the `CLOCK_BOOTTIME` ns it expires at.
pub const MAP_EGRESS_DNS: &str = "EGRESS_DNS";
/// Entries of [`MAP_EGRESS_DNS`] (least recently used ones leave first).
pub const EGRESS_DNS_MAX: u32 = 8192;

/// Key of [`MAP_EGRESS_DNS`]: one session, one destination (IPv4-mapped for IPv4), one port
/// (0: any).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DnsAllowKey {
    pub session_id: u64,
    pub addr: [u8; 16],
    pub port: u16,
    pub _pad: [u8; 6],
}

const _: () = assert!(core::mem::size_of::<DnsAllowKey>() == 32);

#[cfg(feature = "user")]
mod pod_dns {
    // SAFETY: repr(C), integers and byte arrays only, no padding (asserted above).
    unsafe impl aya::Pod for super::DnsAllowKey {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn kind_ids_round_trip_and_unknown_ids_fail() {
        for k in RecordKind::ALL {
            assert_eq!(RecordKind::try_from(k as u32), Ok(k));
        }
        assert_eq!(RecordKind::try_from(0), Err(UnknownKind(0)));
        assert_eq!(RecordKind::try_from(4), Err(UnknownKind(4)));
        assert_eq!(RecordKind::try_from(24), Err(UnknownKind(24)));
    }
}
