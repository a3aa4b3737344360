//! Extended attributes set at syscall exit (setxattr, lsetxattr, fsetxattr, setxattrat): the
//! file (canonical path, by name or by descriptor), the attribute's name and the head of its
//! value. `security.capability` is how file capabilities are given (`setcap cap_setuid+ep`, or
//! three lines of Python with `os.setxattr`), an escalation and persistence technique that no
//! other record shows.
//!
//! One program of its own (`h_xattr`), tail-called by the `sys_exit` filter, so the path work
//! of `file`'s handlers keeps its verifier budget. The record is a `PathOpRecord`: the xattr
//! name is the second name (as a symlink's text is), `arg0` the value's size with the upper
//! permitted capability word in its high half, `arg1` the value's first 8 bytes (the
//! `vfs_cap_data` magic and the lower permitted word), `op_flags` the XATTR_* flags with the
//! syscall variant in bits 8..12.

use crate::{
    abi::AT_FDCWD,
    maps::ERRORS,
    probes::{
        file::{NO_DIR, emit_fd_op, emit_path_op},
        filter::Sys,
    },
    read::read_user,
    record::bump,
    syscalls::{NR_FSETXATTR, NR_LSETXATTR, NR_SETXATTR, NR_SETXATTRAT},
};
use agent_common::RecordKind;
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};

/// setxattrat's flag that makes an empty path mean the dirfd's own file.
const AT_EMPTY_PATH: u64 = 0x1000;

#[btf_tracepoint(function = "sys_exit")]
pub fn h_xattr(ctx: BtfTracePointContext) -> i32 {
    let Some(x) = Sys::load(&ctx) else { return 0 };
    if x.ret != 0 {
        return 0;
    }
    let a = |i| x.arg(i);
    // (variant, dirfd, path, xattr name, value, size, XATTR_* flags, at-flags)
    let (variant, dfd, path, name, value, size, fl, at) = match x.nr {
        NR_SETXATTR => (0u32, AT_FDCWD, a(0), a(1), a(2), a(3), a(4), 0),
        NR_LSETXATTR => (1, AT_FDCWD, a(0), a(1), a(2), a(3), a(4), 0),
        NR_FSETXATTR => (2, x.fd(0), 0, a(1), a(2), a(3), a(4), 0),
        NR_SETXATTRAT => {
            // struct xattr_args { __aligned_u64 value; __u32 size; __u32 flags; }
            let args = a(4) as *const u8;
            (
                3,
                x.fd(0),
                a(1),
                a(3),
                read_user::<u64>(args, 0),
                read_user::<u32>(args, 8) as u64,
                read_user::<u32>(args, 12) as u64,
                a(2),
            )
        }
        _ => return 0,
    };
    let v = value as *const u8;
    let head: u64 = if size >= 8 { read_user(v, 0) } else { 0 };
    // vfs_cap_data v2/v3: magic_etc, then {permitted, inheritable} low, then high.
    let hi: u32 = if size >= 20 { read_user(v, 12) } else { 0 };
    let arg0 = (size & 0xffff_ffff) | ((hi as u64) << 32);
    let op_flags = (fl as u32 & 0xff) | (variant << 8);
    let kind = RecordKind::Xattr;
    let empty =
        path == 0 || (at & AT_EMPTY_PATH != 0 && read_user::<u8>(path as *const u8, 0) == 0);
    let r = if empty && dfd != AT_FDCWD {
        emit_fd_op(&x.s, kind, dfd, arg0, head, 0, op_flags, name)
    } else {
        emit_path_op(
            &x.s, kind, dfd, path, NO_DIR, name, arg0, head, op_flags, 0, 0,
        )
    };
    if r.is_err() {
        bump(&ERRORS, kind);
    }
    0
}
