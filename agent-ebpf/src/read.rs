//! Readers of kernel and user memory, and the writers that copy strings and paths into the
//! record being built.
//!
//! Two ways to read kernel memory: `ld` is a plain load, allowed only on pointers the verifier
//! knows the BTF type of (cheap); `rd` goes through `bpf_probe_read_kernel` (any address). Path
//! walks append dentry names leaf first, bounded and masked so the verifier can prove every
//! write stays in the scratch buffer; `launder` hides a loop's exit states from the verifier so
//! that a second walk is checked once. The `POS_*` bounds live here because both the walks and
//! the record builders of the probes use them.

use crate::{
    abi::AT_FDCWD,
    maps::{VARS, off},
};
use agent_common::{
    EXE_DELETED, EXE_MEMFD, EXE_STDIN_INET, EXE_STDOUT_INET, EXE_WRITABLE_DIR, MAX_NAME,
    MAX_PATH_DEPTH, SCRATCH_SIZE,
};
use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_task_btf, bpf_probe_read_kernel, generated,
};

/// Writes into the scratch buffer land at `pos & POS_MASK`, so every write of up to
/// `SCRATCH_SIZE - POS_MASK - 1` bytes stays inside the buffer whatever `pos` is.
pub(crate) const POS_MASK: usize = 16383;
/// Stop appending variable data past this position (leaves room for one more component).
pub(crate) const POS_LIMIT: usize = POS_MASK - MAX_NAME;
/// Bytes one path walk may append.
const MAX_PATH_REGION: usize = 4096;

/// Read a `T` at `base + off` from kernel memory.
#[inline(always)]
pub(crate) fn rd<T>(base: *const u8, off: usize) -> Result<T, i32> {
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
pub(crate) fn ld<T: Copy>(base: *const u8, off: usize) -> T {
    // SAFETY: the verifier only accepts this on BTF-typed pointers and turns it into a guarded
    // load; a faulting address yields zero instead of an exception.
    unsafe { core::ptr::read_volatile(base.wrapping_add(off) as *const T) }
}

/// `ld` of a pointer member.
#[inline(always)]
pub(crate) fn ldp(base: *const u8, off: usize) -> *const u8 {
    ld::<*const u8>(base, off)
}

/// The current `task_struct`, typed for the verifier (so `ld` works on it).
#[inline(always)]
pub(crate) fn current_task() -> *const u8 {
    // SAFETY: the helper has no preconditions; it returns the current task_struct pointer.
    unsafe { bpf_get_current_task_btf() as *const u8 }
}

/// `rd` of a pointer member.
#[inline(always)]
pub(crate) fn rdp(base: *const u8, off: usize) -> Result<*const u8, i32> {
    rd::<*const u8>(base, off)
}

/// A `T` at `base + off` in user memory (zero when unreadable).
#[inline(always)]
pub(crate) fn read_user<T: Default>(base: *const u8, off: usize) -> T {
    if base.is_null() {
        return T::default();
    }
    // SAFETY: the helper validates the user address.
    unsafe { aya_ebpf::helpers::bpf_probe_read_user(base.wrapping_add(off) as *const T) }
        .unwrap_or_default()
}

/// A user or kernel pointer's bytes at `off` (zero when unreadable).
#[inline(always)]
pub(crate) fn read_any<T: Default>(base: *const u8, off: usize, kernel: bool) -> T {
    if kernel {
        rd(base, off).unwrap_or_default()
    } else {
        read_user(base, off)
    }
}

/// Pass a value through map memory so that the verifier forgets how it was computed: after a
/// bounded loop, every exit state then merges into one, and a second loop is verified once
/// instead of once per exit state of the first. The result is re-bounded by the caller.
#[inline(always)]
pub(crate) fn launder(v: u64) -> u64 {
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
pub(crate) fn write_path(buf: *mut u8, start: usize, path: *const u8) -> (usize, bool) {
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
pub(crate) fn write_str(buf: *mut u8, pos: usize, src: *const u8, max: usize, user: bool) -> usize {
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
pub(crate) fn write_kstr(buf: *mut u8, pos: usize, src: *const u8, max: usize) -> usize {
    write_str(buf, pos, src, max, false)
}

#[inline(always)]
pub(crate) fn write_ustr(buf: *mut u8, pos: usize, src: *const u8, max: usize) -> usize {
    write_str(buf, pos, src, max, true)
}

/// The `struct file *` installed at descriptor `fd` of the current task.
#[inline(always)]
pub(crate) fn file_of_fd(fd: i64) -> Result<*const u8, i32> {
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

/// The `struct path *` a dirfd stands for: the descriptor's file, or the cwd for `AT_FDCWD`.
#[inline(always)]
fn dir_path(dfd: i64) -> Result<*const u8, i32> {
    if dfd == AT_FDCWD {
        Ok(ldp(current_task(), off!(task_fs)).wrapping_add(off!(fs_pwd)))
    } else {
        file_of_fd(dfd).map(|f| f.wrapping_add(off!(file_path)))
    }
}

/// Directory a user-supplied name is relative to, written as a path: the directory a magic link
/// at the head of the name points at (see `magic_link`), else the dirfd's path or the cwd.
/// Returns the new position, the truncation flag and the bytes of the name the link took.
#[inline(always)]
pub(crate) fn write_dir_for(
    buf: *mut u8,
    pos: usize,
    dfd: i64,
    name: u64,
    user: bool,
) -> (usize, bool, u32) {
    // Resolve the `struct path *` first so that only one path walk is inlined here.
    let (path, skip) = match magic_link(buf, name as *const u8, user) {
        Some((p, skip)) => (Ok(p), skip),
        None => (dir_path(dfd), 0),
    };
    match path {
        Ok(p) => {
            let (end, trunc) = write_path(buf, pos, p);
            (end, trunc, skip as u32)
        }
        Err(_) => (pos, true, 0),
    }
}

/// Where the head of a name is copied for `magic_link`: past every region the writers use
/// (they stay below `POS_MASK + 4096`), 64 bytes from the end of the scratch buffer.
const HEAD_AT: usize = SCRATCH_SIZE - 64;
/// Bytes of the head read: the longest magic link (`/proc/thread-self/fd/4294967295/`) is 32.
const HEAD_LEN: u32 = 48;
const LINK_FD: u64 = 1;
const LINK_CWD: u64 = 2;
const LINK_ROOT: u64 = 3;

/// A string of up to 8 bytes as a little-endian word (compared byte by byte by `lit`).
const fn w(s: &[u8]) -> u64 {
    let mut v = 0u64;
    let mut k = 0;
    while k < s.len() {
        v |= (s[k] as u64) << (8 * k);
        k += 1;
    }
    v
}

/// Byte `i` of the head (masked into its 64 bytes).
#[inline(always)]
fn at(h: *const u8, i: usize) -> u8 {
    // SAFETY: `h` is HEAD_AT bytes into the SCRATCH_SIZE buffer and `i & 63` keeps the read in
    // its last 64 bytes.
    unsafe { *h.add(i & 63) }
}

/// The head holds the `n` bytes of `v` at `i`.
#[inline(always)]
fn lit(h: *const u8, i: usize, v: u64, n: usize) -> bool {
    let mut k = 0;
    while k < n {
        if at(h, i + k) != (v >> (8 * k)) as u8 {
            return false;
        }
        k += 1;
    }
    true
}

/// A decimal number of 1 to 10 digits at `i`: its value and the position after it.
#[inline(always)]
fn number(h: *const u8, i: usize) -> Option<(u64, usize)> {
    let mut n = 0u64;
    let mut j = i;
    for _ in 0..10 {
        let c = at(h, j);
        if !c.is_ascii_digit() {
            break;
        }
        n = n * 10 + (c - b'0') as u64;
        j += 1;
    }
    if j == i { None } else { Some((n, j)) }
}

/// The end of a link component at `i`: after its `/`, or at the end of the name.
#[inline(always)]
fn link_end(h: *const u8, i: usize) -> Option<usize> {
    match at(h, i) {
        b'/' => Some(i + 1),
        0 => Some(i),
        _ => None,
    }
}

/// Parse a magic link at the head of a name: `LINK_* << 56 | bytes taken << 40 | descriptor`,
/// or 0 when the name starts with none.
#[inline(always)]
fn parse_link(h: *const u8) -> u64 {
    let i = if lit(h, 0, w(b"/dev/fd/"), 8) {
        8
    } else if lit(h, 0, w(b"/proc/"), 6) {
        let i = if lit(h, 6, w(b"self/"), 5) {
            11
        } else if lit(h, 6, w(b"thread-s"), 8) && lit(h, 14, w(b"elf/"), 4) {
            18
        } else {
            // `/proc/PID/`: only the caller's own process or thread, whose descriptor table
            // and fs this program can reach.
            let Some((pid, j)) = number(h, 6) else {
                return 0;
            };
            let pt = bpf_get_current_pid_tgid();
            if at(h, j) != b'/' || (pid != pt >> 32 && pid != pt & 0xffff_ffff) {
                return 0;
            }
            j + 1
        };
        if lit(h, i, w(b"cwd"), 3) {
            return match link_end(h, i + 3) {
                Some(e) => LINK_CWD << 56 | (e as u64) << 40,
                None => 0,
            };
        }
        if lit(h, i, w(b"root"), 4) {
            return match link_end(h, i + 4) {
                Some(e) => LINK_ROOT << 56 | (e as u64) << 40,
                None => 0,
            };
        }
        if !lit(h, i, w(b"fd/"), 3) {
            return 0;
        }
        i + 3
    } else {
        return 0;
    };
    let Some((fd, j)) = number(h, i) else {
        return 0;
    };
    match link_end(h, j) {
        Some(e) if fd <= i32::MAX as u64 => LINK_FD << 56 | (e as u64) << 40 | fd,
        _ => 0,
    }
}

/// If `name` starts with a magic link of the calling process (`/proc/self/fd/N/`,
/// `/proc/thread-self/fd/N/`, `/proc/<own pid or tid>/fd/N/`, `/dev/fd/N/`, `/proc/self/cwd/`,
/// `/proc/self/root/`), the `struct path *` the link points at (descriptor N's file, the cwd or
/// the root) and the bytes of the name it took. Resolved here, at syscall exit, because N is
/// still open now; user space would race its close.
#[inline(always)]
pub(crate) fn magic_link(buf: *mut u8, name: *const u8, user: bool) -> Option<(*const u8, usize)> {
    if name.is_null() {
        return None;
    }
    let h = buf.wrapping_add(HEAD_AT);
    // SAFETY: HEAD_LEN bytes from HEAD_AT stay inside the scratch buffer; the helpers validate
    // the source address.
    let n = unsafe {
        if user {
            generated::bpf_probe_read_user_str(h as *mut _, HEAD_LEN, name as *const _)
        } else {
            generated::bpf_probe_read_kernel_str(h as *mut _, HEAD_LEN, name as *const _)
        }
    };
    if n <= 0 {
        return None;
    }
    let v = launder(parse_link(h));
    let path = match v >> 56 {
        LINK_FD => file_of_fd((v & 0xffff_ffff) as i64)
            .ok()?
            .wrapping_add(off!(file_path)),
        LINK_CWD => ldp(current_task(), off!(task_fs)).wrapping_add(off!(fs_pwd)),
        LINK_ROOT => ldp(current_task(), off!(task_fs)).wrapping_add(off!(fs_root)),
        _ => return None,
    };
    Some((path, ((v >> 40) & 63) as usize))
}

/// `EXE_*` markers of a file: memfd, deleted, in a world-writable directory.
#[inline(always)]
pub(crate) fn exe_markers(file: *const u8) -> u32 {
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

/// Whether `file` is an IPv4 or IPv6 socket.
#[inline(always)]
fn is_inet_socket(file: *const u8) -> bool {
    let inode = rdp(file, off!(file_inode)).unwrap_or(core::ptr::null());
    let mode: u16 = rd(inode, off!(inode_mode)).unwrap_or(0);
    if mode & 0o170000 != 0o140000 {
        return false;
    }
    let sock = rdp(file, off!(file_private_data)).unwrap_or(core::ptr::null());
    let sk = rdp(sock, off!(socket_sk)).unwrap_or(core::ptr::null());
    let family: u16 = rd(sk, off!(sk_family)).unwrap_or(0);
    family == 2 || family == 10
}

/// `EXE_STDIN_INET` / `EXE_STDOUT_INET`: descriptors 0 and 1 of the current task that are
/// network sockets (read at exec, after the dup2 that wires a reverse shell).
#[inline(always)]
pub(crate) fn stdio_markers() -> u32 {
    let mut m = 0;
    if file_of_fd(0).is_ok_and(is_inet_socket) {
        m |= EXE_STDIN_INET;
    }
    if file_of_fd(1).is_ok_and(is_inet_socket) {
        m |= EXE_STDOUT_INET;
    }
    m
}
