//! TLS plaintext of agent processes: uprobes on OpenSSL's `SSL_write`, `SSL_read` and their
//! `_ex` forms (issue #16), in the system `libssl.so.3` and in executables that export them
//! (node).
//!
//! An entry probe looks the thread group up in `SESSIONS` first and returns when it is not a
//! session process, so a non-agent process pays the uprobe trap and one hash lookup. For a
//! session process it saves the call's `SSL *`, buffer and (for `_ex`) result pointer in
//! `TLS_ARGS`, keyed by thread; the return probe reads how many bytes the call moved and copies
//! at most `TLS_MAX_CAPTURE` of them from the buffer to the ring, `TLS_CHUNK` bytes per
//! `TlsData` record. What is not copied is still counted in the record's `len`.

use crate::{
    maps::{ERRORS, config, session_of},
    record::{bump, header_current, put, scratch, submit},
};
use agent_common::{
    HEADER_LEN, RecordKind, TLS_CHUNK, TLS_DIR_READ, TLS_DIR_WRITE, TLS_MAX_CHUNKS, TlsRecord,
};
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user_buf},
    macros::{map, uprobe, uretprobe},
    maps::LruHashMap,
    programs::{ProbeContext, RetProbeContext},
};

/// One `SSL_*` call in progress on a thread of a session process.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct TlsCall {
    ssl: u64,
    buf: u64,
    /// `size_t *` the `_ex` forms write the byte count to (0 for the plain forms).
    out: u64,
    dir: u32,
    _pad: u32,
}

/// Calls in progress, by `pid_tgid` (entry to return).
#[map(name = "TLS_ARGS")]
pub(crate) static TLS_ARGS: LruHashMap<u64, TlsCall> = LruHashMap::with_max_entries(16384, 0);

#[inline(always)]
fn enter(ctx: &ProbeContext, dir: u32, ex: bool) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if session_of(tgid).is_none() || tgid == config!(daemon_tgid) {
        return 0;
    }
    let ssl: u64 = ctx.arg(0).unwrap_or(0);
    let buf: u64 = ctx.arg(1).unwrap_or(0);
    let out: u64 = if ex { ctx.arg(3).unwrap_or(0) } else { 0 };
    let call = TlsCall {
        ssl,
        buf,
        out,
        dir,
        _pad: 0,
    };
    if TLS_ARGS.insert(pid_tgid, call, 0).is_err() {
        bump(&ERRORS, RecordKind::TlsData);
    }
    0
}

#[uprobe]
pub fn tls_write(ctx: ProbeContext) -> u32 {
    enter(&ctx, TLS_DIR_WRITE, false)
}

#[uprobe]
pub fn tls_read(ctx: ProbeContext) -> u32 {
    enter(&ctx, TLS_DIR_READ, false)
}

#[uprobe]
pub fn tls_write_ex(ctx: ProbeContext) -> u32 {
    enter(&ctx, TLS_DIR_WRITE, true)
}

#[uprobe]
pub fn tls_read_ex(ctx: ProbeContext) -> u32 {
    enter(&ctx, TLS_DIR_READ, true)
}

/// Return of `SSL_write`/`SSL_read`: the result is the byte count (<= 0: nothing moved).
#[uretprobe]
pub fn tls_ret(ctx: RetProbeContext) -> u32 {
    let ret: i32 = ctx.ret();
    leave(if ret > 0 { ret as u64 } else { 0 }, false);
    0
}

/// Return of the `_ex` forms: 1 on success, the count in `*written`/`*readbytes`.
#[uretprobe]
pub fn tls_ret_ex(ctx: RetProbeContext) -> u32 {
    let ret: i32 = ctx.ret();
    leave(if ret == 1 { 1 } else { 0 }, true);
    0
}

#[inline(always)]
fn leave(ok: u64, ex: bool) {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the value is copied out before the entry is removed.
    let Some(call) = (unsafe { TLS_ARGS.get(pid_tgid) }).copied() else {
        return;
    };
    let _ = TLS_ARGS.remove(pid_tgid);
    if ok == 0 {
        return;
    }
    let len = if ex {
        if call.out == 0 {
            return;
        }
        // SAFETY: the helper validates the user address.
        match unsafe { aya_ebpf::helpers::bpf_probe_read_user(call.out as *const u64) } {
            Ok(n) => n,
            Err(_) => {
                bump(&ERRORS, RecordKind::TlsData);
                return;
            }
        }
    } else {
        ok
    };
    if len == 0 {
        return;
    }
    let tgid = (pid_tgid >> 32) as u32;
    let Some(s) = session_of(tgid) else {
        return;
    };
    let body_at = HEADER_LEN;
    let data_at = HEADER_LEN + core::mem::size_of::<TlsRecord>();
    for i in 0..TLS_MAX_CHUNKS {
        let offset = (i * TLS_CHUNK) as u64;
        if offset >= len {
            break;
        }
        let Some(buf) = scratch() else {
            return;
        };
        let mut n = (len - offset) as usize;
        if n > TLS_CHUNK {
            n = TLS_CHUNK;
        }
        // Re-bound for the verifier: 1..=TLS_CHUNK (a power of two).
        let n = ((n - 1) & (TLS_CHUNK - 1)) + 1;
        if header_current(buf, RecordKind::TlsData, &s).is_err() {
            return;
        }
        put(
            buf,
            body_at,
            TlsRecord {
                conn: call.ssl,
                len,
                captured: n as u32,
                offset: offset as u32,
                dir: call.dir,
                _pad: 0,
            },
        );
        // SAFETY: `data_at + n <= data_at + TLS_CHUNK`, inside the scratch buffer.
        let dst = unsafe { core::slice::from_raw_parts_mut(buf.add(data_at), n) };
        // SAFETY: the helper validates the user address; a failure leaves the bytes unread.
        if unsafe { bpf_probe_read_user_buf((call.buf + offset) as *const u8, dst) }.is_err() {
            bump(&ERRORS, RecordKind::TlsData);
            return;
        }
        submit(buf, data_at + n, RecordKind::TlsData);
    }
}
