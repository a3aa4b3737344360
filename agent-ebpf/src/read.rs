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
use agent_common::{EXE_DELETED, EXE_MEMFD, EXE_WRITABLE_DIR, MAX_NAME, MAX_PATH_DEPTH};
use aya_ebpf::helpers::{bpf_get_current_task_btf, bpf_probe_read_kernel, generated};

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

/// Directory a user-supplied path is relative to: the dirfd's path or the cwd.
#[inline(always)]
pub(crate) fn write_dir_of(buf: *mut u8, pos: usize, dfd: i64) -> (usize, bool) {
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
