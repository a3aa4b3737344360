//! x86_64 syscall numbers and the translation of 32-bit (ia32) syscalls to them.
//!
//! ABI constants, not kernel struct layout, so they are not read from BTF. The translation lets
//! the handlers see one numbering whatever entry point the agent used (`int 0x80`, `socketcall`).

// x86_64 syscall numbers (ABI constants, not kernel struct layout).
pub(crate) const NR_OPEN: u64 = 2;
pub(crate) const NR_CONNECT: u64 = 42;
pub(crate) const NR_ACCEPT: u64 = 43;
pub(crate) const NR_LISTEN: u64 = 50;
pub(crate) const NR_RENAME: u64 = 82;
pub(crate) const NR_CREAT: u64 = 85;
pub(crate) const NR_UNLINK: u64 = 87;
pub(crate) const NR_OPENAT: u64 = 257;
pub(crate) const NR_UNLINKAT: u64 = 263;
pub(crate) const NR_RENAMEAT: u64 = 264;
pub(crate) const NR_ACCEPT4: u64 = 288;
pub(crate) const NR_RENAMEAT2: u64 = 316;
pub(crate) const NR_OPENAT2: u64 = 437;
pub(crate) const NR_WRITE: u64 = 1;
pub(crate) const NR_MMAP: u64 = 9;
pub(crate) const NR_PWRITE64: u64 = 18;
pub(crate) const NR_WRITEV: u64 = 20;
pub(crate) const NR_SENDTO: u64 = 44;
pub(crate) const NR_SENDMSG: u64 = 46;
pub(crate) const NR_RECVFROM: u64 = 45;
pub(crate) const NR_RECVMSG: u64 = 47;
pub(crate) const NR_CLONE: u64 = 56;
pub(crate) const NR_TRUNCATE: u64 = 76;
pub(crate) const NR_FTRUNCATE: u64 = 77;
pub(crate) const NR_MKDIR: u64 = 83;
pub(crate) const NR_LINK: u64 = 86;
pub(crate) const NR_SYMLINK: u64 = 88;
pub(crate) const NR_CHMOD: u64 = 90;
pub(crate) const NR_FCHMOD: u64 = 91;
pub(crate) const NR_CHOWN: u64 = 92;
pub(crate) const NR_FCHOWN: u64 = 93;
pub(crate) const NR_LCHOWN: u64 = 94;
pub(crate) const NR_PTRACE: u64 = 101;
pub(crate) const NR_SETUID: u64 = 105;
pub(crate) const NR_SETGID: u64 = 106;
pub(crate) const NR_SETREUID: u64 = 113;
pub(crate) const NR_SETREGID: u64 = 114;
pub(crate) const NR_SETRESUID: u64 = 117;
pub(crate) const NR_SETRESGID: u64 = 119;
pub(crate) const NR_CAPSET: u64 = 126;
pub(crate) const NR_MOUNT: u64 = 165;
pub(crate) const NR_INIT_MODULE: u64 = 175;
pub(crate) const NR_MKDIRAT: u64 = 258;
pub(crate) const NR_FCHOWNAT: u64 = 260;
pub(crate) const NR_LINKAT: u64 = 265;
pub(crate) const NR_SYMLINKAT: u64 = 266;
pub(crate) const NR_FCHMODAT: u64 = 268;
pub(crate) const NR_UNSHARE: u64 = 272;
pub(crate) const NR_PWRITEV: u64 = 296;
pub(crate) const NR_SENDMMSG: u64 = 307;
pub(crate) const NR_SETNS: u64 = 308;
pub(crate) const NR_PROCESS_VM_WRITEV: u64 = 311;
pub(crate) const NR_FINIT_MODULE: u64 = 313;
pub(crate) const NR_MEMFD_CREATE: u64 = 319;
pub(crate) const NR_BPF: u64 = 321;
pub(crate) const NR_PWRITEV2: u64 = 328;
pub(crate) const NR_MOVE_MOUNT: u64 = 429;
pub(crate) const NR_CLONE3: u64 = 435;
pub(crate) const NR_FCHMODAT2: u64 = 452;
pub(crate) const NR_UTIME: u64 = 132;
pub(crate) const NR_SETXATTR: u64 = 188;
pub(crate) const NR_LSETXATTR: u64 = 189;
pub(crate) const NR_FSETXATTR: u64 = 190;
/// setxattrat (Linux 6.13; the same number on ia32, passed through by the translation).
pub(crate) const NR_SETXATTRAT: u64 = 463;
pub(crate) const NR_UTIMES: u64 = 235;
pub(crate) const NR_FUTIMESAT: u64 = 261;
pub(crate) const NR_UTIMENSAT: u64 = 280;
/// ia32 `utimensat_time64` (412): utimensat with 64-bit times. Not an x86_64 number (those end
/// below 1024); the translation gives it this one so the handler knows the layout.
pub(crate) const NR_UTIMENSAT_TIME64: u64 = 1024 + 412;

/// ia32 numbers of the syscalls an outside process can aim at agentwatch itself (bpf, ptrace,
/// process_vm_writev), for the filter's pre-check before translation.
pub(crate) const IA32_BPF: u64 = 357;
pub(crate) const IA32_PTRACE: u64 = 26;
pub(crate) const IA32_PROCESS_VM_WRITEV: u64 = 348;

/// ia32 `socketcall(call, args)`: the x86_64 number and argument count of a call the handlers
/// understand (`SYS_SEND` is a `sendto` without destination).
#[inline(always)]
pub(crate) fn socketcall_to_x64(call: u64) -> Option<(u64, u64)> {
    Some(match call {
        3 => (NR_CONNECT, 3),
        4 => (NR_LISTEN, 2),
        5 => (NR_ACCEPT, 3),
        9 => (NR_SENDTO, 4),
        10 => (NR_RECVFROM, 4),
        11 => (NR_SENDTO, 6),
        12 => (NR_RECVFROM, 6),
        16 => (NR_SENDMSG, 3),
        17 => (NR_RECVMSG, 3),
        18 => (NR_ACCEPT4, 4),
        20 => (NR_SENDMMSG, 4),
        _ => return None,
    })
}

/// ia32 `socketcall` and the old `mmap(struct mmap_arg_struct *)`.
pub(crate) const IA32_SOCKETCALL: u64 = 102;
pub(crate) const IA32_OLD_MMAP: u64 = 90;

/// The x86_64 number of a 32-bit (ia32) syscall the handlers understand, so an agent cannot hide
/// an open, unlink or send behind `int 0x80`. Numbers from 424 on are shared by both tables.
/// `socketcall` and the old `mmap` are resolved by the filter (their arguments are in memory).
#[inline(always)]
pub(crate) fn ia32_to_x64(nr: u64) -> Option<u64> {
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
        371 => NR_RECVFROM,
        372 => NR_RECVMSG,
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
        30 => NR_UTIME,
        226 => NR_SETXATTR,
        227 => NR_LSETXATTR,
        228 => NR_FSETXATTR,
        271 => NR_UTIMES,
        299 => NR_FUTIMESAT,
        320 => NR_UTIMENSAT,
        412 => NR_UTIMENSAT_TIME64,
        424..=511 => nr,
        _ => return None,
    })
}
