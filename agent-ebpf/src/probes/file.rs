//! Files at syscall exit: opens, path operations (unlink, rename, chmod, chown, link, symlink,
//! mkdir, truncate, utime), operations on descriptors, the first write to a file, and executable
//! mappings.
//!
//! The `h_*` handlers are tail-called by the `sys_exit` filter; the record builders
//! (`emit_open`, `emit_path_op`, `emit_fd_op`) are shared with the io_uring probes.

use crate::{
    abi::{AT_FDCWD, S_IFMT, S_IFREG},
    maps::{ERRORS, KILL_OPEN, PROTECT, WRITTEN, config, off},
    probes::filter::Sys,
    read::{exe_markers, file_of_fd, rd, rdp, read_user, write_dir_for, write_path, write_str},
    record::{bump, header_current, put, scratch, submit},
    syscalls::{
        NR_CHMOD, NR_CHOWN, NR_CREAT, NR_FCHMOD, NR_FCHMODAT, NR_FCHMODAT2, NR_FCHOWN, NR_FCHOWNAT,
        NR_FTRUNCATE, NR_FUTIMESAT, NR_LCHOWN, NR_LINK, NR_LINKAT, NR_MKDIR, NR_MKDIRAT, NR_MMAP,
        NR_OPEN, NR_OPENAT, NR_RENAME, NR_RENAMEAT, NR_RENAMEAT2, NR_SYMLINK, NR_SYMLINKAT,
        NR_TRUNCATE, NR_UNLINK, NR_UNLINKAT, NR_UTIME, NR_UTIMENSAT, NR_UTIMENSAT_TIME64,
        NR_UTIMES,
    },
};
use agent_common::{
    ATIME_NOW, ATIME_OMIT, FD_OP, HEADER_LEN, IO_PENDING, KILL_DIR, KILL_FILE, MTIME_NOW,
    MTIME_OMIT, OPEN_DAEMON, OPEN_KILLED, OpenRecord, PATH_TRUNCATED, PATH2_TRUNCATED, PROTECT_DIR,
    PROTECT_FILE, PROTECT_PROCFS, PathOpRecord, RecordKind, SessionInfo, TAMPER, VIA_IO_URING,
};
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_send_signal},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};

const PROT_EXEC: u64 = 4;

/// creat(2) is open(O_CREAT | O_WRONLY | O_TRUNC).
const O_CREAT_WRONLY_TRUNC: u64 = 0o1101;

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
    let outside = x.s.session_id == 0;
    let file = file_of_fd(x.ret);
    let daemon = file.is_ok_and(daemon_file);
    if outside && !daemon {
        return 0;
    }
    let mut via = match (daemon, outside) {
        (true, true) => OPEN_DAEMON | TAMPER,
        (true, false) => OPEN_DAEMON,
        _ => 0,
    };
    if !outside && file.is_ok_and(kill_file) {
        let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        if tgid > 1 && tgid != config!(daemon_tgid) {
            // The signal is delivered on the way back to user space: the process dies before
            // the open returns, so not one byte of the file can be read.
            // SAFETY: the helper takes a plain signal number and acts on the current task.
            if unsafe { bpf_send_signal(SIGKILL) } == 0 {
                via |= OPEN_KILLED;
            }
        }
    }
    if emit_open(&x.s, x.ret, via, req_flags as u32).is_err() {
        bump(&ERRORS, RecordKind::Open);
    }
    0
}

const SIGKILL: u32 = 9;

/// Whether an open file is protected by an inline kill rule: the file in `KILL_OPEN`, or
/// directly in a directory in it.
#[inline(always)]
fn kill_file(file: *const u8) -> bool {
    let inode = rdp(file, off!(file_inode)).unwrap_or(core::ptr::null());
    let sb = rdp(inode, off!(inode_sb)).unwrap_or(core::ptr::null());
    let dev = rd::<u32>(sb, off!(sb_dev)).unwrap_or(0) as u64;
    let ino: u64 = rd(inode, off!(inode_ino)).unwrap_or(0);
    // SAFETY: the value is copied out at once.
    if unsafe { KILL_OPEN.get([dev, ino]) }.is_some_and(|v| v & KILL_FILE != 0) {
        return true;
    }
    let dentry = rdp(file, off!(file_path) + off!(path_dentry)).unwrap_or(core::ptr::null());
    let parent = rdp(dentry, off!(dentry_parent)).unwrap_or(core::ptr::null());
    let pinode = rdp(parent, off!(dentry_inode)).unwrap_or(core::ptr::null());
    let pino: u64 = rd(pinode, off!(inode_ino)).unwrap_or(0);
    // SAFETY: as above.
    pino != 0 && unsafe { KILL_OPEN.get([dev, pino]) }.is_some_and(|v| v & KILL_DIR != 0)
}

/// `file->f_mode` bit of a file open for writing.
const FMODE_WRITE: u32 = 2;

/// `PROTECT_*` bits of `[dev, ino]`.
#[inline(always)]
fn protect(dev: u64, ino: u64) -> u32 {
    // SAFETY: the value is copied out at once.
    unsafe { PROTECT.get([dev, ino]) }.copied().unwrap_or(0)
}

/// The first 8 bytes of a dentry's name, zero after its end.
#[inline(always)]
fn name8(dentry: *const u8) -> u64 {
    let Ok(name) = rdp(dentry, off!(dentry_name) + off!(qstr_name)) else {
        return 0;
    };
    let b: [u8; 8] = rd(name, 0).unwrap_or([0; 8]);
    let mut v = 0u64;
    for (i, c) in b.iter().enumerate() {
        if *c == 0 {
            break;
        }
        v |= (*c as u64) << (8 * i);
    }
    v
}

/// A dentry name (at most 8 bytes) as the `name8` word.
const fn word(s: &[u8]) -> u64 {
    let mut v = 0u64;
    let mut i = 0;
    while i < s.len() {
        v |= (s[i] as u64) << (8 * i);
        i += 1;
    }
    v
}

/// The pid a `/proc` directory's name spells, or 0.
#[inline(always)]
fn name_pid(dentry: *const u8) -> u32 {
    let Ok(name) = rdp(dentry, off!(dentry_name) + off!(qstr_name)) else {
        return 0;
    };
    let b: [u8; 12] = rd(name, 0).unwrap_or([0; 12]);
    let mut v = 0u32;
    for c in b.iter() {
        if *c == 0 {
            return v;
        }
        if !c.is_ascii_digit() {
            return 0;
        }
        v = v.wrapping_mul(10).wrapping_add((*c - b'0') as u32);
    }
    0
}

/// Whether an open file is the daemon's: one of its `/proc/PID/` (or `/proc/PID/task/TID/`)
/// entries that expose its memory or secrets, or, opened for writing, a file in `PROTECT` or
/// directly in a directory in `PROTECT`.
#[inline(always)]
fn daemon_file(file: *const u8) -> bool {
    let inode = rdp(file, off!(file_inode)).unwrap_or(core::ptr::null());
    let sb = rdp(inode, off!(inode_sb)).unwrap_or(core::ptr::null());
    let dev = rd::<u32>(sb, off!(sb_dev)).unwrap_or(0) as u64;
    let dentry = rdp(file, off!(file_path) + off!(path_dentry)).unwrap_or(core::ptr::null());
    let parent = rdp(dentry, off!(dentry_parent)).unwrap_or(core::ptr::null());
    let f_mode: u32 = rd(file, off!(file_mode)).unwrap_or(0);
    if f_mode & FMODE_WRITE != 0 {
        let ino: u64 = rd(inode, off!(inode_ino)).unwrap_or(0);
        if protect(dev, ino) & PROTECT_FILE != 0 {
            return true;
        }
        let pinode = rdp(parent, off!(dentry_inode)).unwrap_or(core::ptr::null());
        let pino: u64 = rd(pinode, off!(inode_ino)).unwrap_or(0);
        if pino != 0 && protect(dev, pino) & PROTECT_DIR != 0 {
            return true;
        }
    }
    if protect(dev, 0) & PROTECT_PROCFS == 0 {
        return false;
    }
    const EXPOSING: [u64; 8] = [
        word(b"mem"),
        word(b"environ"),
        word(b"maps"),
        word(b"smaps"),
        word(b"pagemap"),
        word(b"auxv"),
        word(b"syscall"),
        word(b"stack"),
    ];
    let n = name8(dentry);
    if !EXPOSING.contains(&n) {
        return false;
    }
    let tgid = config!(daemon_tgid);
    if name_pid(parent) == tgid {
        return true;
    }
    let gp = rdp(parent, off!(dentry_parent)).unwrap_or(core::ptr::null());
    name8(gp) == word(b"task")
        && name_pid(rdp(gp, off!(dentry_parent)).unwrap_or(core::ptr::null())) == tgid
}

#[inline(always)]
pub(crate) fn emit_open(s: &SessionInfo, fd: i64, via: u32, req_flags: u32) -> Result<(), i32> {
    let file = file_of_fd(fd)?;
    let buf = scratch().ok_or(-1)?;
    header_current(buf, RecordKind::Open, s)?;
    let start = HEADER_LEN + core::mem::size_of::<OpenRecord>();
    let (pos, trunc) = write_path(buf, start, file.wrapping_add(off!(file_path)));
    let inode = rdp(file, off!(file_inode)).unwrap_or(core::ptr::null());
    let sb = rdp(inode, off!(inode_sb)).unwrap_or(core::ptr::null());
    let i_mode: u16 = rd(inode, off!(inode_mode)).unwrap_or(0);
    put(
        buf,
        HEADER_LEN,
        OpenRecord {
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
pub(crate) const NO_DIR: i64 = i64::MIN;

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
    let r = emit_path_op(&x.s, kind, d1, n1, n, n2, a0, a1, fl as u32, 0, 0);
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
    if emit_path_op(&x.s, kind, d1, n1, d2, n2, 0, 0, fl as u32, 0, 0).is_err() {
        bump(&ERRORS, kind);
    }
    0
}

/// `tv_nsec` values of utimensat that are not times.
const UTIME_NOW: i64 = (1 << 30) - 1;
const UTIME_OMIT: i64 = (1 << 30) - 2;
/// utimensat's flag that makes an empty name mean the dirfd's own file.
const AT_EMPTY_PATH: u64 = 0x1000;

/// One time of a utime-family call (`at` is its index, 0 access, 1 modification): nanoseconds
/// since the epoch, or the `*_NOW` / `*_OMIT` flag (shifted by `at`).
#[inline(always)]
fn utime_of(
    times: *const u8,
    at: usize,
    w: usize,
    frac_ns: i64,
    now: u32,
    omit: u32,
) -> (u64, u32) {
    if times.is_null() {
        return (0, now);
    }
    // utime(2) has seconds only (`struct utimbuf`); the others a (seconds, fraction) pair.
    let (sec_at, frac_at) = if frac_ns == 0 {
        (at * w, usize::MAX)
    } else {
        (2 * at * w, (2 * at + 1) * w)
    };
    let rd_word = |o: usize| -> i64 {
        if w == 4 {
            read_user::<i32>(times, o) as i64
        } else {
            read_user::<i64>(times, o)
        }
    };
    let sec = rd_word(sec_at);
    let frac = if frac_at == usize::MAX {
        0
    } else {
        rd_word(frac_at)
    };
    if frac_ns == 1 && frac == UTIME_NOW {
        return (0, now);
    }
    if frac_ns == 1 && frac == UTIME_OMIT {
        return (0, omit);
    }
    (
        sec.wrapping_mul(1_000_000_000)
            .wrapping_add(frac.wrapping_mul(frac_ns)) as u64,
        0,
    )
}

/// utimensat, futimesat, utimes and utime (futimens is utimensat without a name): the times set
/// and the file, by name (canonical, like the other path operations) or by descriptor.
#[btf_tracepoint(function = "sys_exit")]
pub fn h_utime(ctx: BtfTracePointContext) -> i32 {
    let Some(x) = Sys::load(&ctx) else { return 0 };
    if x.ret != 0 {
        return 0;
    }
    let a = |i| x.arg(i);
    // (dirfd, name, times, flags, bytes per word, nanoseconds per fraction unit; 0: no fraction)
    let w = if x.compat && x.nr != NR_UTIMENSAT_TIME64 {
        4
    } else {
        8
    };
    let (dfd, name, times, fl, frac) = match x.nr {
        NR_UTIMENSAT | NR_UTIMENSAT_TIME64 => (x.fd(0), a(1), a(2), a(3), 1),
        NR_FUTIMESAT => (x.fd(0), a(1), a(2), 0, 1000),
        NR_UTIMES => (AT_FDCWD, a(0), a(1), 0, 1000),
        NR_UTIME => (AT_FDCWD, a(0), a(1), 0, 0),
        _ => return 0,
    };
    let t = times as *const u8;
    let (atime, af) = utime_of(t, 0, w, frac, ATIME_NOW, ATIME_OMIT);
    let (mtime, mf) = utime_of(t, 1, w, frac, MTIME_NOW, MTIME_OMIT);
    let kind = RecordKind::Utime;
    // futimens(fd) is utimensat(fd, NULL); utimensat(fd, "", AT_EMPTY_PATH) the same.
    let empty =
        name == 0 || (fl & AT_EMPTY_PATH != 0 && read_user::<u8>(name as *const u8, 0) == 0);
    let r = if empty && dfd != AT_FDCWD {
        emit_fd_op(&x.s, kind, dfd, atime, mtime, af | mf, 0, 0)
    } else {
        emit_path_op(
            &x.s,
            kind,
            dfd,
            name,
            NO_DIR,
            0,
            atime,
            mtime,
            fl as u32,
            0,
            af | mf,
        )
    };
    if r.is_err() {
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
    if emit_fd_op(&x.s, kind, x.fd(0), x.arg(1), x.arg(2), 0, 0, 0).is_err() {
        bump(&ERRORS, kind);
    }
    0
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
        if unsafe { WRITTEN.get(key) }.is_some() {
            return 0;
        }
        let _ = WRITTEN.insert(key, 1, 0);
        (RecordKind::Write, x.fd(0), x.ret as u64)
    };
    if emit_fd_op(&x.s, kind, fd, arg0, 0, 0, 0, 0).is_err() {
        bump(&ERRORS, kind);
    }
    0
}

/// An operation on the file behind descriptor `fd` (fchmod, fchown, ftruncate, write, mmap,
/// fsetxattr, whose attribute name is `name2`; 0 for none).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn emit_fd_op(
    s: &SessionInfo,
    kind: RecordKind,
    fd: i64,
    arg0: u64,
    arg1: u64,
    extra_flags: u32,
    op_flags: u32,
    name2: u64,
) -> Result<(), i32> {
    let file = file_of_fd(fd)?;
    let buf = scratch().ok_or(-1)?;
    header_current(buf, kind, s)?;
    let start = HEADER_LEN + core::mem::size_of::<PathOpRecord>();
    let (p1, trunc) = write_path(buf, start, file.wrapping_add(off!(file_path)));
    // A second name as passed (the xattr name of fsetxattr); none for the other operations.
    let pos = if name2 != 0 {
        write_str(buf, p1, name2 as *const u8, 255, true)
    } else {
        p1
    };
    let inode = rdp(file, off!(file_inode)).unwrap_or(core::ptr::null());
    put(
        buf,
        HEADER_LEN,
        PathOpRecord {
            flags: if trunc { PATH_TRUNCATED } else { 0 }
                | FD_OP
                | exe_markers(file) << 8
                | extra_flags,
            op_flags,
            dir_len: (p1 - start) as u32,
            name_len: 0,
            dir2_len: 0,
            name2_len: (pos - p1) as u32,
            arg0,
            arg1,
            ino: rd(inode, off!(inode_ino)).unwrap_or(0),
            cookie: 0,
            name_skip: 0,
            name2_skip: 0,
        },
    );
    submit(buf, pos, kind);
    Ok(())
}

/// A path operation: directory (dirfd or cwd) + name as passed, optionally a second directory
/// and name (`d2 == NO_DIR` with `n2 != 0` writes only the second name, e.g. a symlink's text).
/// A name that starts with a magic link (`/proc/self/fd/N/...`) gets the directory the link
/// points at instead of the dirfd's, and the bytes it took in `name_skip` (see `magic_link`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn emit_path_op(
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
    extra_flags: u32,
) -> Result<(), i32> {
    let buf = scratch().ok_or(-1)?;
    header_current(buf, kind, s)?;
    let start = HEADER_LEN + core::mem::size_of::<PathOpRecord>();
    // io_uring requests carry kernel copies of the names (`struct filename`); syscalls the
    // user's pointers.
    let user = io_cookie == 0;
    let (p1, t1, skip1) = write_dir_for(buf, start, d1, n1, user);
    let p2 = write_str(buf, p1, n1 as *const u8, 2047, user);
    let (p3, t2, skip2) = if d2 == NO_DIR {
        (p2, false, 0)
    } else {
        write_dir_for(buf, p2, d2, n2, user)
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
        PathOpRecord {
            flags: (if t1 { PATH_TRUNCATED } else { 0 })
                | (if t2 { PATH2_TRUNCATED } else { 0 })
                | io
                | extra_flags,
            op_flags,
            dir_len: (p1 - start) as u32,
            name_len: (p2 - p1) as u32,
            dir2_len: (p3 - p2) as u32,
            name2_len: (p4 - p3) as u32,
            arg0,
            arg1,
            ino: 0,
            cookie: io_cookie,
            name_skip: skip1,
            name2_skip: skip2,
        },
    );
    submit(buf, p4, kind);
    Ok(())
}
