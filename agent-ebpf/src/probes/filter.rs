//! The `sys_exit` filter and the argument reader of the handlers it tail-calls.
//!
//! Every syscall exit on the host runs `sys_exit`: for processes outside sessions it is one hash
//! lookup and a compare of the syscall number: bpf, ptrace and process_vm_writev, and successful
//! opens, go on to their handler, which reports them when they reach agentwatch itself (its bpf
//! objects, its process, its `/proc/PID/` entries, its files opened for writing), whoever the
//! caller is. That is also what keeps a process that deleted its own `SESSIONS`
//! entry through bpf() from going dark unseen: its lookup fails at that very syscall's exit, and
//! the command is judged as an outside one. For session processes it translates 32-bit syscalls to their x86_64 numbers and
//! tail-calls the handler of the syscall's family through `HANDLERS`, passing the syscall and
//! the session in `SYSNR`, so each handler is verified on its own and repeats no lookup.

use crate::{
    maps::{HANDLERS, SYSNR, SysCall, config, guard, off, session_of},
    read::{current_task, ld, read_user},
    syscalls::{
        IA32_BPF, IA32_OLD_MMAP, IA32_PROCESS_VM_WRITEV, IA32_PTRACE, IA32_SOCKETCALL, NR_ACCEPT,
        NR_ACCEPT4, NR_BPF, NR_CAPSET, NR_CHMOD, NR_CHOWN, NR_CLONE, NR_CLONE3, NR_CONNECT,
        NR_CREAT, NR_FCHMOD, NR_FCHMODAT, NR_FCHMODAT2, NR_FCHOWN, NR_FCHOWNAT, NR_FINIT_MODULE,
        NR_FSETXATTR, NR_FTRUNCATE, NR_FUTIMESAT, NR_INIT_MODULE, NR_LCHOWN, NR_LINK, NR_LINKAT,
        NR_LISTEN, NR_LSETXATTR, NR_MEMFD_CREATE, NR_MKDIR, NR_MKDIRAT, NR_MMAP, NR_MOUNT,
        NR_MOVE_MOUNT, NR_OPEN, NR_OPENAT, NR_OPENAT2, NR_PROCESS_VM_WRITEV, NR_PTRACE,
        NR_PWRITE64, NR_PWRITEV, NR_PWRITEV2, NR_RECVFROM, NR_RECVMSG, NR_RENAME, NR_RENAMEAT,
        NR_RENAMEAT2, NR_SENDMMSG, NR_SENDMSG, NR_SENDTO, NR_SETGID, NR_SETNS, NR_SETREGID,
        NR_SETRESGID, NR_SETRESUID, NR_SETREUID, NR_SETUID, NR_SETXATTR, NR_SETXATTRAT, NR_SYMLINK,
        NR_SYMLINKAT, NR_TRUNCATE, NR_UNLINK, NR_UNLINKAT, NR_UNSHARE, NR_UTIME, NR_UTIMENSAT,
        NR_UTIMENSAT_TIME64, NR_UTIMES, NR_WRITE, NR_WRITEV, ia32_to_x64, socketcall_to_x64,
    },
};
use agent_common::SessionInfo;
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::btf_tracepoint, programs::BtfTracePointContext,
};

/// Slots of the handlers in `HANDLERS` (the loader fills them by program name, in
/// agent-user/src/loader.rs).
const H_OPEN: u32 = 0;
const H_PATH: u32 = 1;
const H_NET: u32 = 2;
const H_PROC: u32 = 3;
const H_IO: u32 = 4;
const H_PATH2: u32 = 5;
const H_FDOP: u32 = 6;
const H_UTIME: u32 = 7;
const H_BPF: u32 = 8;
const H_XATTR: u32 = 9;

/// Which handler family a syscall belongs to, if any.
#[inline(always)]
fn family(nr: u64) -> Option<u32> {
    Some(match nr {
        NR_OPEN | NR_OPENAT | NR_OPENAT2 | NR_CREAT => H_OPEN,
        NR_UNLINK | NR_UNLINKAT | NR_CHMOD | NR_FCHMODAT | NR_FCHMODAT2 | NR_CHOWN | NR_LCHOWN
        | NR_FCHOWNAT | NR_SYMLINK | NR_SYMLINKAT | NR_MKDIR | NR_MKDIRAT | NR_TRUNCATE => H_PATH,
        NR_RENAME | NR_RENAMEAT | NR_RENAMEAT2 | NR_LINK | NR_LINKAT => H_PATH2,
        NR_FCHMOD | NR_FCHOWN | NR_FTRUNCATE => H_FDOP,
        NR_UTIMENSAT | NR_UTIMENSAT_TIME64 | NR_FUTIMESAT | NR_UTIMES | NR_UTIME => H_UTIME,
        NR_BPF => H_BPF,
        NR_SETXATTR | NR_LSETXATTR | NR_FSETXATTR | NR_SETXATTRAT => H_XATTR,
        NR_CONNECT | NR_ACCEPT | NR_ACCEPT4 | NR_LISTEN | NR_SENDTO | NR_SENDMSG | NR_SENDMMSG
        | NR_RECVFROM | NR_RECVMSG => H_NET,
        NR_SETUID | NR_SETGID | NR_SETREUID | NR_SETREGID | NR_SETRESUID | NR_SETRESGID
        | NR_CAPSET | NR_PTRACE | NR_PROCESS_VM_WRITEV | NR_INIT_MODULE | NR_FINIT_MODULE
        | NR_MOUNT | NR_MOVE_MOUNT | NR_UNSHARE | NR_SETNS | NR_CLONE | NR_CLONE3
        | NR_MEMFD_CREATE => H_PROC,
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

/// Syscalls (raw number, either ABI) with which a process outside every session can reach
/// agentwatch itself; the only ones the filter does not drop at once for such a process.
#[inline(always)]
fn may_tamper(nr: u64) -> bool {
    matches!(
        nr,
        NR_BPF | IA32_BPF | NR_PTRACE | IA32_PTRACE | NR_PROCESS_VM_WRITEV | IA32_PROCESS_VM_WRITEV
    )
}

/// Opens (raw number, either ABI: x86_64 open, creat, openat, openat2; ia32 open 5, creat 8 and
/// openat 295) with which a process outside every session may reach the daemon's files. 5, 8
/// and 295 are also x86_64 fstat, lseek and preadv: those go on only when the syscall is 32-bit.
#[inline(always)]
fn may_open(nr: u64) -> bool {
    matches!(
        nr,
        NR_OPEN | NR_CREAT | NR_OPENAT | NR_OPENAT2 | 5 | 8 | 295
    )
}

/// The filter in front of every syscall exit: one hash lookup and a compare of the syscall
/// number for processes outside sessions. For session processes, and for outside processes
/// making a syscall that can reach agentwatch (`may_tamper`, passed on with a zero session),
/// it resolves the syscall (translating 32-bit ones) and hands it, with the session, to the
/// handler it tail-calls through `SYSNR`.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit(ctx: BtfTracePointContext) -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let regs: *const u8 = ctx.arg(0);
    let mut nr: u64 = ld(regs, off!(regs_orig_ax));
    let session = match session_of(tgid) {
        Some(s) => {
            fail_closed(tgid);
            s
        }
        None => {
            if tgid == config!(daemon_tgid) {
                return 0;
            }
            if !may_tamper(nr) {
                // A successful open may reach the daemon's files (`h_open` judges).
                let ret: i64 = ctx.arg(1);
                if ret < 0 || !may_open(nr) {
                    return 0;
                }
                if matches!(nr, 5 | 8 | 295) {
                    let status: u32 = ld(current_task(), off!(task_ti_status));
                    if status & TS_COMPAT == 0 {
                        return 0;
                    }
                }
            }
            // The daemon that adopted these pinned programs (see `GUARD_DAEMON_TGID`).
            if guard(agent_common::GUARD_DAEMON_TGID) == tgid as u64 {
                return 0;
            }
            SessionInfo::default()
        }
    };
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
    let family = match family(nr) {
        // Outside processes: only the handlers that judge tampering.
        Some(h) if session.session_id != 0 || h == H_BPF || h == H_PROC || h == H_OPEN => Some(h),
        _ => None,
    };
    if let Some(h) = family {
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
pub(crate) struct Sys {
    pub(crate) s: SessionInfo,
    pub(crate) nr: u64,
    pub(crate) ret: i64,
    regs: *const u8,
    /// A 32-bit syscall (`nr` is already the x86_64 number).
    pub(crate) compat: bool,
    /// `ARGS_*` mode and, for arguments in memory, their user address.
    mode: u64,
    args: u64,
}

impl Sys {
    #[inline(always)]
    pub(crate) fn load(ctx: &BtfTracePointContext) -> Option<Sys> {
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
    pub(crate) fn arg(&self, i: u32) -> u64 {
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
    pub(crate) fn fd(&self, i: u32) -> i64 {
        self.arg(i) as i32 as i64
    }
}

/// Fail-closed: a session process whose daemon has not ticked for `GUARD_AFTER_NS` is stopped
/// (`SIGSTOP`) or killed (`SIGKILL`) at this syscall's exit, per `GUARD_MODE`. Never pid 1, and
/// never before the daemon's first heartbeat. The signal is delivered on the way back to user
/// space, so the process runs no further instruction of its own.
#[inline(always)]
fn fail_closed(tgid: u32) {
    use agent_common::{
        FAIL_CLOSED_FREEZE, FAIL_CLOSED_KILL, GUARD_AFTER_NS, GUARD_HEARTBEAT, GUARD_MODE,
    };
    let mode = guard(GUARD_MODE);
    if mode == 0 || tgid <= 1 {
        return;
    }
    let beat = guard(GUARD_HEARTBEAT);
    if beat == 0 {
        return;
    }
    // SAFETY: the helper has no arguments.
    let now = unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() };
    if now.saturating_sub(beat) <= guard(GUARD_AFTER_NS) {
        return;
    }
    let sig = match mode {
        FAIL_CLOSED_KILL => 9,
        FAIL_CLOSED_FREEZE => 19,
        _ => return,
    };
    // SAFETY: the helper takes a plain signal number and acts on the current task.
    unsafe { aya_ebpf::helpers::bpf_send_signal(sig) };
}
