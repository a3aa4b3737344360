//! Assembling a record and sending it: the per-CPU scratch buffer, the common header, plain
//! writes of a fixed body, the ring-buffer output with its wake-up policy, and the per-kind loss
//! and error counters.
//!
//! Every probe family builds its records the same way (`scratch`, `header_current`, strings with
//! the writers of `read`, `put` of the body, `submit`), so these steps live in one place; the
//! bodies themselves are built by each family's file under `probes`.

use crate::{
    maps::{ERRORS, EVENTS, LOSS, SCRATCH, config, off},
    read::{current_task, ld, ldp},
};
use agent_common::{COMM_LEN, HEADER_LEN, RecordHeader, RecordKind, SCRATCH_SIZE, SessionInfo};
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_ktime_get_boot_ns,
    },
    maps::PerCpuArray,
};

/// Count one record of `kind` in a per-CPU counter map (`LOSS` or `ERRORS`).
#[inline(always)]
pub(crate) fn bump(map: &PerCpuArray<u64>, kind: RecordKind) {
    if let Some(p) = map.get_ptr_mut(kind as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU while we run.
        unsafe { *p += 1 };
    }
}

/// This CPU's scratch buffer (`SCRATCH_SIZE` bytes), where a record is assembled.
#[inline(always)]
pub(crate) fn scratch() -> Option<*mut u8> {
    SCRATCH.get_ptr_mut(0).map(|p| p as *mut u8)
}

/// Output flags for a record of `len` bytes: wake the reader only with the record that takes
/// the ring past `wakeup_bytes`, once per batch. A wake-up is an inter-processor interrupt
/// (a VM exit under virtualization) and costs more than the record; past the threshold the
/// reader is either awake already (its poll returns at once while data is waiting) or wakes
/// on its poll timer, which also covers two CPUs crossing the threshold together.
#[inline(always)]
pub(crate) fn wake_flags(len: usize) -> u64 {
    let avail = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    let t = config!(wakeup_bytes) as u64;
    (if avail < t && avail + len as u64 >= t {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }) as u64
}

/// Copy `len` bytes of the scratch buffer to the ring buffer; count a loss on failure.
#[inline(always)]
pub(crate) fn submit(buf: *mut u8, len: usize, kind: RecordKind) {
    if !(HEADER_LEN..=SCRATCH_SIZE).contains(&len) {
        bump(&ERRORS, kind);
        return;
    }
    // Patch the total length into the header.
    // SAFETY: buf points at SCRATCH_SIZE bytes; the header is at offset 0.
    unsafe { (*(buf as *mut RecordHeader)).len = len as u32 };
    // SAFETY: the slice stays within the scratch buffer (len <= SCRATCH_SIZE checked above).
    let data = unsafe { core::slice::from_raw_parts(buf as *const u8, len) };
    if EVENTS.output::<[u8]>(data, wake_flags(len)).is_err() {
        bump(&LOSS, kind);
    }
}

/// [`submit`], waking the reader at once: for records the daemon must act on before the
/// process's next syscall is likely (a DNS answer whose addresses it must allow).
#[inline(always)]
pub(crate) fn submit_now(buf: *mut u8, len: usize, kind: RecordKind) {
    if !(HEADER_LEN..=SCRATCH_SIZE).contains(&len) {
        bump(&ERRORS, kind);
        return;
    }
    // SAFETY: as in `submit`.
    unsafe { (*(buf as *mut RecordHeader)).len = len as u32 };
    // SAFETY: as in `submit`.
    let data = unsafe { core::slice::from_raw_parts(buf as *const u8, len) };
    if EVENTS
        .output::<[u8]>(data, BPF_RB_FORCE_WAKEUP as u64)
        .is_err()
    {
        bump(&LOSS, kind);
    }
}

/// Fill the common header for the current task.
#[inline(always)]
pub(crate) fn header_current(buf: *mut u8, kind: RecordKind, s: &SessionInfo) -> Result<(), i32> {
    let task = current_task();
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    let leader = ldp(task, off!(task_group_leader));
    let start_ns: u64 = ld(leader, off!(task_start_boottime));
    let parent = ldp(task, off!(task_real_parent));
    let ppid: u32 = ld(parent, off!(task_tgid));
    let comm = bpf_get_current_comm().unwrap_or([0; COMM_LEN]);
    let h = RecordHeader {
        kind: kind as u32,
        len: 0,
        // SAFETY: the helper has no preconditions.
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

/// Write a fixed body at byte `at` of the scratch buffer.
#[inline(always)]
pub(crate) fn put<T>(buf: *mut u8, at: usize, v: T) {
    // SAFETY: callers only write fixed bodies right after the header, far below SCRATCH_SIZE.
    unsafe { core::ptr::write_unaligned(buf.add(at) as *mut T, v) };
}
