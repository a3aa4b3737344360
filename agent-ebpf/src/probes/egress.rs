//! Egress policy at connect and sendmsg: cgroup `sock_addr` programs (`connect4`, `connect6`,
//! `sendmsg4`, `sendmsg6`) attached to the cgroup v2 root.
//!
//! They run for every process on the host, so the first step is the same one lookup as the
//! tracepoints: a process outside every agent session is allowed at once (return 1), whatever
//! the policy says. For a session process, its agent's policy (`EGRESS_AGENTS`) names an
//! allow-list in the `EGRESS_ALLOW` trie; a destination matched with its port or with port 0
//! (any) is allowed, and so is one the session's own DNS answers named for an allow-listed host
//! name (`EGRESS_DNS`, filled by the daemon from `RECORD_DNS_ANSWER` records). Otherwise the
//! program sends an `EgressRecord` and, when the policy is enforced, returns 0: the kernel fails
//! the connect or send with `EPERM`. A dry-run policy lets it through. Agents without a policy are not restricted.

use crate::maps::{EGRESS_AGENTS, EGRESS_ALLOW, EGRESS_DNS, EGRESS_STATS, EVENTS, session_of};
use agent_common::{
    COMM_LEN, DnsAllowKey, EGRESS_DENIED, EGRESS_DRY_RUN, EGRESS_ENFORCE, EGRESS_HOOK_CONNECT,
    EGRESS_HOOK_SENDMSG, EGRESS_KEY_FIXED_BITS, EGRESS_POLICY_MASK, EGRESS_STAT_DENIED,
    EGRESS_STAT_DRY_RUN, EGRESS_STAT_LOST, EgressKey, EgressRecord, HEADER_LEN, RECORD_EGRESS,
    RecordHeader,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_ktime_get_boot_ns,
    },
    macros::cgroup_sock_addr,
    maps::lpm_trie::Key,
    programs::SockAddrContext,
};

/// A whole egress record, sent as one piece.
#[repr(C)]
struct Out {
    hdr: RecordHeader,
    body: EgressRecord,
}

#[inline(always)]
fn count(i: u32) {
    if let Some(p) = EGRESS_STATS.get_ptr_mut(i) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU while we run.
        unsafe { *p += 1 };
    }
}

/// Whether `addr:port` is in policy `policy`'s allow-list (exact port, then any port).
#[inline(always)]
fn allowed(policy: u32, addr: [u8; 16], port: u16) -> bool {
    let mut k = Key::new(
        EGRESS_KEY_FIXED_BITS + 128,
        EgressKey {
            policy: policy.to_be_bytes(),
            port: port.to_be_bytes(),
            _pad: [0; 2],
            addr,
        },
    );
    if EGRESS_ALLOW.get(&k).is_some() {
        return true;
    }
    k.data.port = [0; 2];
    EGRESS_ALLOW.get(&k).is_some()
}

/// Whether the session's own DNS answers named `addr` for an allow-listed host name (exact
/// port, then any port) and the answer has not expired.
#[inline(always)]
fn answered(session_id: u64, addr: [u8; 16], port: u16) -> bool {
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let mut k = DnsAllowKey {
        session_id,
        addr,
        port,
        _pad: [0; 6],
    };
    // SAFETY: the value is copied out immediately.
    if unsafe { EGRESS_DNS.get(k) }.is_some_and(|&t| t > now) {
        return true;
    }
    k.port = 0;
    // SAFETY: as above.
    unsafe { EGRESS_DNS.get(k) }.is_some_and(|&t| t > now)
}

/// The verdict for the current process sending to the address in `ctx` (1: allow, 0: EPERM).
#[inline(always)]
fn judge(ctx: &SockAddrContext, v6: bool, hook: u32) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let Some(s) = session_of(tgid) else {
        return 1;
    };
    // SAFETY: the value is copied out immediately.
    let Some(pol) = (unsafe { EGRESS_AGENTS.get(s.agent_id) }).copied() else {
        return 1;
    };
    let sa = ctx.sock_addr;
    // SAFETY: the kernel passes a valid `bpf_sock_addr` context; 4-byte loads of its fields are
    // what the verifier allows.
    let (port_raw, family, sock_type, protocol) = unsafe {
        (
            (*sa).user_port,
            (*sa).user_family,
            (*sa).type_,
            (*sa).protocol,
        )
    };
    let port = u16::from_be(port_raw as u16);
    let mut addr = [0u8; 16];
    if v6 {
        let mut i = 0;
        while i < 4 {
            // SAFETY: as above; `i` < 4.
            let w = unsafe { (*sa).user_ip6[i] };
            addr[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            i += 1;
        }
    } else {
        // SAFETY: as above.
        let w = unsafe { (*sa).user_ip4 };
        addr[10] = 0xff;
        addr[11] = 0xff;
        addr[12..16].copy_from_slice(&w.to_ne_bytes());
    }
    let policy = pol & EGRESS_POLICY_MASK;
    if allowed(policy, addr, port) || answered(s.session_id, addr, port) {
        return 1;
    }
    let enforce = pol & EGRESS_ENFORCE != 0;
    let uid_gid = bpf_get_current_uid_gid();
    let out = Out {
        hdr: RecordHeader {
            kind: RECORD_EGRESS,
            len: (HEADER_LEN + core::mem::size_of::<EgressRecord>()) as u32,
            // SAFETY: the helper has no preconditions.
            ktime_ns: unsafe { bpf_ktime_get_boot_ns() },
            session_id: s.session_id,
            start_ns: 0,
            pid: pid_tgid as u32,
            tgid,
            ppid: 0,
            agent_id: s.agent_id,
            uid: uid_gid as u32,
            gid: (uid_gid >> 32) as u32,
            comm: bpf_get_current_comm().unwrap_or([0; COMM_LEN]),
        },
        body: EgressRecord {
            family: family as u16,
            protocol: protocol as u16,
            sock_type: sock_type as u16,
            dport: port,
            daddr: addr,
            policy,
            verdict: if enforce {
                EGRESS_DENIED
            } else {
                EGRESS_DRY_RUN
            },
            hook,
            _pad: 0,
        },
    };
    if EVENTS.output::<Out>(&out, 0).is_err() {
        count(EGRESS_STAT_LOST);
    }
    if enforce {
        count(EGRESS_STAT_DENIED);
        0
    } else {
        count(EGRESS_STAT_DRY_RUN);
        1
    }
}

#[cgroup_sock_addr(connect4)]
pub fn egress_connect4(ctx: SockAddrContext) -> i32 {
    judge(&ctx, false, EGRESS_HOOK_CONNECT)
}

#[cgroup_sock_addr(connect6)]
pub fn egress_connect6(ctx: SockAddrContext) -> i32 {
    judge(&ctx, true, EGRESS_HOOK_CONNECT)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn egress_sendmsg4(ctx: SockAddrContext) -> i32 {
    judge(&ctx, false, EGRESS_HOOK_SENDMSG)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn egress_sendmsg6(ctx: SockAddrContext) -> i32 {
    judge(&ctx, true, EGRESS_HOOK_SENDMSG)
}
