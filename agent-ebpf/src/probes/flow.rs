//! Per-socket byte counts of agent processes (`sock_send_length`, `sock_recv_length`), and the
//! flow record sent when a TCP socket is destroyed (`tcp_destroy_sock`).
//!
//! Counting is one lookup and one atomic add in `FLOWS`; nothing goes to the ring until the
//! socket closes, and user space reports long-lived flows and flows of exited processes from the
//! map.

use crate::{
    abi::{AF_INET, AF_INET6},
    maps::{ERRORS, EVENTS, FLOWS, LOSS, off, session_of},
    probes::net::inet_addrs,
    read::rd,
    record::{bump, header_current, put, scratch, wake_flags},
};
use agent_common::{
    FLOW_CLOSE, FlowCountsRecord, FlowEntry, HEADER_LEN, RecordKind, SessionInfo, SockRecord,
};
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};

/// recv(2) flag: look at the data without consuming it (not counted).
const MSG_PEEK: i32 = 2;
const BPF_NOEXIST: u64 = 1;

/// Count `n` bytes moved on `sk` by the current task, if it is in a session. The first count
/// creates the flow entry with the task's identity and the socket's addresses; later ones are
/// one lookup and one atomic add. Nothing goes to the ring here: the record is sent when a TCP
/// socket is destroyed (`tcp_destroy_sock`), and user space reports long-lived flows and flows
/// of exited processes from the map.
#[inline(always)]
fn flow_account(sk: *const u8, n: i32, sent: bool) {
    if n <= 0 || sk.is_null() {
        return;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(s) = session_of(tgid) else {
        return;
    };
    let key = sk as u64;
    let mut p = FLOWS.get_ptr_mut(key);
    if p.is_none() {
        if flow_new(&s, sk).is_err() {
            bump(&ERRORS, RecordKind::Flow);
            return;
        }
        p = FLOWS.get_ptr_mut(key);
    }
    let Some(p) = p else { return };
    // SAFETY: `p` points into a live map value; the counters are updated atomically because
    // threads of one process may share the socket.
    unsafe {
        let c = if sent {
            core::ptr::addr_of_mut!((*p).flow.sent)
        } else {
            core::ptr::addr_of_mut!((*p).flow.received)
        };
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            c, n as u64,
        );
    }
}

#[inline(always)]
fn flow_new(s: &SessionInfo, sk: *const u8) -> Result<(), i32> {
    let family: u16 = rd(sk, off!(sk_family))?;
    if family != AF_INET && family != AF_INET6 {
        return Err(0);
    }
    let buf = scratch().ok_or(-1)?;
    header_current(buf, RecordKind::Flow, s)?;
    let mut sock = SockRecord {
        family,
        protocol: rd(sk, off!(sk_protocol)).unwrap_or(0),
        fd: -1,
        ..SockRecord::default()
    };
    inet_addrs(sk, family, &mut sock);
    put(buf, HEADER_LEN, sock);
    put(
        buf,
        HEADER_LEN + core::mem::size_of::<SockRecord>(),
        FlowCountsRecord {
            // SAFETY: the helper has no preconditions.
            first_ns: unsafe { bpf_ktime_get_boot_ns() },
            ..FlowCountsRecord::default()
        },
    );
    // SAFETY: the scratch buffer holds a whole, initialised FlowEntry at offset 0 (8-aligned
    // map memory).
    let rec = unsafe { &*(buf as *const FlowEntry) };
    FLOWS.insert(sk as u64, rec, BPF_NOEXIST).or(Ok(()))
}

/// A TCP socket is destroyed (after its owner closed it and any data it read is counted):
/// send its flow record, if it has one, and forget it.
#[inline(always)]
fn flow_close(sk: *const u8) {
    let key = sk as u64;
    let Some(p) = FLOWS.get_ptr_mut(key) else {
        return;
    };
    let flags = wake_flags(core::mem::size_of::<FlowEntry>());
    // SAFETY: `p` points into a live map value of FlowEntry size.
    unsafe {
        (*p).hdr.kind = RecordKind::Flow as u32;
        (*p).hdr.len = core::mem::size_of::<FlowEntry>() as u32;
        (*p).hdr.ktime_ns = bpf_ktime_get_boot_ns();
        (*p).flow.state = FLOW_CLOSE;
        let family = (*p).sock.family;
        inet_addrs(sk, family, &mut (*p).sock);
        if EVENTS.output::<FlowEntry>(&*p, flags).is_err() {
            bump(&LOSS, RecordKind::Flow);
        }
    }
    let _ = FLOWS.remove(key);
}

/// Runs for any task (often in softirq for orphaned sockets): the flow map, not the session,
/// decides.
#[btf_tracepoint(function = "tcp_destroy_sock")]
pub fn tcp_destroy_sock(ctx: BtfTracePointContext) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    flow_close(sk);
    0
}

#[btf_tracepoint(function = "sock_send_length")]
pub fn sock_send_length(ctx: BtfTracePointContext) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    let ret: i32 = ctx.arg(1);
    flow_account(sk, ret, true);
    0
}

#[btf_tracepoint(function = "sock_recv_length")]
pub fn sock_recv_length(ctx: BtfTracePointContext) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    let ret: i32 = ctx.arg(1);
    let flags: i32 = ctx.arg(2);
    if flags & MSG_PEEK == 0 {
        flow_account(sk, ret, false);
    }
    0
}
