//! Signals an agent sends outside its own session, and signals any process sends to the
//! agentwatch daemon (`signal_generate`).
//!
//! The record is the same shape as the privilege operations', so it is built by `privs`.

use crate::{
    maps::{ERRORS, config, off, session_of},
    probes::privs::{emit_sys, relation},
    read::ld,
    record::bump,
};
use agent_common::{RecordKind, SessionInfo, SysRecord, TAMPER, TARGET_SAME_SESSION};
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::btf_tracepoint, programs::BtfTracePointContext,
};

const SIGCHLD: i32 = 17;

#[btf_tracepoint(function = "signal_generate")]
pub fn signal_generate(ctx: BtfTracePointContext) -> i32 {
    let sig: i32 = ctx.arg(0);
    // SIGCHLD to a parent outside the session is the kernel's doing, not the agent's (and
    // every exit sends one: decide before the session lookup).
    if sig == SIGCHLD {
        return 0;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let task: *const u8 = ctx.arg(2);
    let (s, flags) = match session_of(tgid) {
        Some(s) => (s, 0),
        None => {
            // Outside every session: only a signal to the daemon from another process (one
            // load and a compare).
            let target: u32 = ld(task, off!(task_tgid));
            if target != config!(daemon_tgid) || target == tgid {
                return 0;
            }
            (SessionInfo::default(), TAMPER)
        }
    };
    let result: i32 = ctx.arg(4);
    let target: u32 = ld(task, off!(task_tgid));
    let rel = relation(&s, target);
    if rel == TARGET_SAME_SESSION {
        return 0;
    }
    let b = SysRecord {
        flags,
        op: sig as u32,
        target_tgid: target,
        target: rel,
        ret: result as i64,
        ..SysRecord::default()
    };
    if emit_sys(&s, RecordKind::Signal, b, 0, 0, -1).is_err() {
        bump(&ERRORS, RecordKind::Signal);
    }
    0
}
