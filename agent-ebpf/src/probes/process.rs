//! Process lifecycle: fork, exec and exit (sched tracepoints), and the selector match that opens
//! a session at exec.
//!
//! Sessions start here (an exec matching a selector), are inherited at fork (so setsid, double
//! fork and reparenting keep a descendant) and end when the thread group dies.

use crate::{
    maps::{ERRORS, SEL_CGROUP, SEL_COMM, SEL_EXE, SEL_UID, SESSIONS, config, off, session_of},
    read::{
        POS_LIMIT, POS_MASK, current_task, exe_markers, rd, rdp, stdio_markers, write_kstr,
        write_path,
    },
    record::{bump, header_current, put, scratch, submit},
};
use agent_common::{
    ARGV_TRUNCATED, COMM_LEN, EXE_KEY_LEN, ExecRecord, ExitRecord, ForkRecord, HEADER_LEN,
    PATH_TRUNCATED, PATH2_TRUNCATED, REC_NEW_SESSION, REC_PROVISIONAL, RecordHeader, RecordKind,
    SESSION_PROVISIONAL, SessionInfo,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_uid_gid, bpf_ktime_get_boot_ns, generated,
    },
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};

const MAX_ARGV: usize = 4095;
const MAX_FILENAME: usize = 2047;

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
            let _ = SESSIONS.remove(ctgid);
        }
        return Ok(());
    };
    SESSIONS.insert(ctgid, s, 0)?;
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
        // SAFETY: the helper has no preconditions.
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
        ForkRecord {
            parent_start_ns: pstart,
            flags: 0,
            _pad: 0,
        },
    );
    submit(
        buf,
        HEADER_LEN + core::mem::size_of::<ForkRecord>(),
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
    if config!(have_other_selectors) != 0 {
        let comm = bpf_get_current_comm().unwrap_or([0; COMM_LEN]);
        // SAFETY: values are copied out at once.
        agent = unsafe { SEL_COMM.get(comm) }.copied();
        if agent.is_none() {
            let uid = bpf_get_current_uid_gid() as u32;
            // SAFETY: as above.
            agent = unsafe { SEL_UID.get(uid) }.copied();
        }
        if agent.is_none() {
            // SAFETY: the helper has no preconditions.
            let cg = unsafe { bpf_get_current_cgroup_id() };
            // SAFETY: as above.
            agent = unsafe { SEL_CGROUP.get(cg) }.copied();
        }
    }
    if agent.is_none() && config!(have_exe_selectors) != 0 {
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
        // SAFETY: the value is copied out at once.
        agent = unsafe { SEL_EXE.get(key) }.copied();
        flags = SESSION_PROVISIONAL;
    }
    let agent_id = agent?;
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let s = SessionInfo {
        session_id: ((tgid as u64) << 40) ^ (now & 0xff_ffff_ffff),
        agent_id,
        flags,
    };
    SESSIONS.insert(tgid, s, 0).ok()?;
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
    let mut pos = body_at + core::mem::size_of::<ExecRecord>();

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
    let markers = exe_markers(file) | stdio_markers();

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
        ExecRecord {
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
    let _ = SESSIONS.remove(tgid);
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
        ExitRecord {
            exit_code: code,
            flags: 0,
        },
    );
    submit(
        buf,
        HEADER_LEN + core::mem::size_of::<ExitRecord>(),
        RecordKind::Exit,
    );
    0
}
