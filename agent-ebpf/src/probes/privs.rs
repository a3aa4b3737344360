//! Privilege and kernel operations at syscall exit (`h_proc`): credential changes, ptrace and
//! process_vm_writev, module loads, mounts, namespaces and memfd_create (bpf() has its own
//! handler, in `bpf`).
//!
//! `emit_sys` and `relation` (how a target process relates to the acting session) are shared
//! with the signal probe, which produces the same record shape.

use crate::{
    maps::{ERRORS, config, off, session_of},
    probes::filter::Sys,
    read::{current_task, file_of_fd, rd, rdp, read_user, write_path, write_ustr},
    record::{bump, header_current, put, scratch, submit},
    syscalls::{
        NR_CAPSET, NR_CLONE, NR_CLONE3, NR_FINIT_MODULE, NR_INIT_MODULE, NR_MEMFD_CREATE, NR_MOUNT,
        NR_MOVE_MOUNT, NR_PROCESS_VM_WRITEV, NR_PTRACE, NR_SETGID, NR_SETNS, NR_SETREGID,
        NR_SETRESGID, NR_SETRESUID, NR_SETREUID, NR_SETUID, NR_UNSHARE,
    },
};
use agent_common::{
    HEADER_LEN, NAME_IS_PATH, RecordKind, SessionInfo, SysRecord, TAMPER, TARGET_DAEMON,
    TARGET_OTHER_SESSION, TARGET_SAME_SESSION,
};
use aya_ebpf::{helpers::generated, macros::btf_tracepoint, programs::BtfTracePointContext};

/// CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME.
const CLONE_NEW_MASK: u64 = 0x0002_0000
    | 0x0200_0000
    | 0x0400_0000
    | 0x0800_0000
    | 0x1000_0000
    | 0x2000_0000
    | 0x4000_0000
    | 0x80;

#[inline(always)]
pub(crate) fn relation(s: &SessionInfo, tgid: u32) -> u32 {
    if tgid != 0 && tgid == config!(daemon_tgid) {
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
    // A caller outside every session reaches this handler only for ptrace and
    // process_vm_writev, and is reported only when it aims at the daemon.
    let outside = x.s.session_id == 0;
    let mut b = SysRecord {
        op: x.nr as u32,
        ret: x.ret,
        ..SysRecord::default()
    };
    let mut name = 0u64;
    let mut name2 = 0u64;
    let mut name_fd = -1i64;
    if outside {
        b.flags |= TAMPER;
    }
    let kind = match x.nr {
        _ if outside && x.nr != NR_PTRACE && x.nr != NR_PROCESS_VM_WRITEV => return 0,
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
            if outside && b.target != TARGET_DAEMON {
                return 0;
            }
            RecordKind::Ptrace
        }
        NR_PROCESS_VM_WRITEV => {
            if x.ret <= 0 {
                return 0;
            }
            b.target_tgid = x.arg(0) as u32;
            b.target = relation(&x.s, b.target_tgid);
            if outside && b.target != TARGET_DAEMON {
                return 0;
            }
            RecordKind::Ptrace
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
pub(crate) fn emit_sys(
    s: &SessionInfo,
    kind: RecordKind,
    mut b: SysRecord,
    name: u64,
    name2: u64,
    name_fd: i64,
) -> Result<(), i32> {
    let buf = scratch().ok_or(-1)?;
    header_current(buf, kind, s)?;
    let start = HEADER_LEN + core::mem::size_of::<SysRecord>();
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
