//! io_uring: opens, accepts and connects at completion; path operations and UDP sends at
//! submission (the only time their arguments are readable) paired with their completion by a
//! cookie.
//!
//! The records are those of the syscall probes, built by the same builders of `file` and `net`,
//! flagged `VIA_IO_URING`.

use crate::{
    abi::{AF_INET, AF_INET6, AT_FDCWD, EINPROGRESS, IPPROTO_TCP},
    maps::{ERRORS, IO_SENDS, off, session_of},
    probes::file::{NO_DIR, emit_open, emit_path_op},
    probes::net::{emit_send, emit_sock, emit_sock_fd},
    read::{launder, ld, rd, rdp, read_user},
    record::{bump, header_current, put, scratch, submit},
};
use agent_common::{
    HEADER_LEN, IO_RESULT, PathOpRecord, RecordKind, SessionInfo, SockRecord, VIA_IO_URING,
};
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::btf_tracepoint, programs::BtfTracePointContext,
};

// io_uring opcodes (UAPI).
const IORING_OP_SENDMSG: u8 = 9;
const IORING_OP_ACCEPT: u8 = 13;
const IORING_OP_CONNECT: u8 = 16;
const IORING_OP_OPENAT: u8 = 18;
const IORING_OP_OPENAT2: u8 = 28;
const IORING_OP_RENAMEAT: u8 = 35;
const IORING_OP_UNLINKAT: u8 = 36;
const IORING_OP_MKDIRAT: u8 = 37;
const IORING_OP_SYMLINKAT: u8 = 38;
const IORING_OP_LINKAT: u8 = 39;
const IORING_OP_SEND: u8 = 26;
const IORING_OP_SEND_ZC: u8 = 47;
const IORING_OP_SENDMSG_ZC: u8 = 48;
/// `io_kiocb.flags`: the request names a registered (fixed) file, not a descriptor.
const REQ_F_FIXED_FILE: u64 = 1;

#[btf_tracepoint(function = "io_uring_complete")]
pub fn io_uring_complete(ctx: BtfTracePointContext) -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(s) = session_of(tgid) else {
        return 0;
    };
    let req: *const u8 = ctx.arg(1);
    let cqe: *const u8 = ctx.arg(2);
    let Ok(op) = rd::<u8>(req, off!(iokiocb_opcode)) else {
        return 0;
    };
    let res: i32 = rd(cqe, off!(cqe_res)).unwrap_or(-1);
    match op {
        IORING_OP_OPENAT | IORING_OP_OPENAT2 => {
            let req_flags: u64 = rd(req, off!(ioreq_open_flags)).unwrap_or(0);
            if res >= 0 && emit_open(&s, res as i64, VIA_IO_URING, req_flags as u32).is_err() {
                bump(&ERRORS, RecordKind::Open);
            }
        }
        IORING_OP_ACCEPT => {
            if res >= 0 {
                let _ = emit_sock_fd(&s, RecordKind::Accept, res as i64, VIA_IO_URING, false);
            }
        }
        IORING_OP_RENAMEAT..=IORING_OP_LINKAT => {
            if let Some(kind) = io_path_kind(op) {
                io_path_result(&s, kind, launder(req as u64), res);
            }
        }
        IORING_OP_SENDMSG | IORING_OP_SEND | IORING_OP_SEND_ZC | IORING_OP_SENDMSG_ZC => {
            let cookie = launder(req as u64);
            if IO_SENDS.remove(cookie).is_ok() {
                io_send_result(&s, cookie, res);
            }
        }
        IORING_OP_CONNECT => {
            if (res == 0 || res == -(EINPROGRESS as i32))
                && let Ok(file) = rdp(req, off!(iokiocb_file))
            {
                let _ = emit_sock_file(&s, file);
            }
        }
        _ => {}
    }
    0
}

/// The record kind of an io_uring path operation.
#[inline(always)]
fn io_path_kind(op: u8) -> Option<RecordKind> {
    Some(match op {
        IORING_OP_RENAMEAT => RecordKind::Rename,
        IORING_OP_UNLINKAT => RecordKind::Unlink,
        IORING_OP_MKDIRAT => RecordKind::Mkdir,
        IORING_OP_SYMLINKAT => RecordKind::Symlink,
        IORING_OP_LINKAT => RecordKind::Link,
        _ => return None,
    })
}

/// io_uring path operations are seen twice: at submission (here), when the request holds the
/// kernel copies of its names, and at completion, when the names are already freed but the
/// result is known. This sends the paths with `IO_PENDING` and the request as cookie; user space
/// reports the operation when the completion record (`io_path_result`) says it succeeded. The
/// header is the submitting thread's, as for the syscall.
#[btf_tracepoint(function = "io_uring_submit_req")]
pub fn io_uring_submit_req(ctx: BtfTracePointContext) -> i32 {
    // Every io_uring submission on the host passes here: the opcode (a plain load from the
    // typed request) rules most out before the session lookup.
    let req: *const u8 = ctx.arg(0);
    let op: u8 = ld(req, off!(iokiocb_opcode));
    if matches!(
        op,
        IORING_OP_SENDMSG | IORING_OP_SEND | IORING_OP_SEND_ZC | IORING_OP_SENDMSG_ZC
    ) {
        io_send_submit(req, op);
        return 0;
    }
    let Some(kind) = io_path_kind(op) else {
        return 0;
    };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(s) = session_of(tgid) else {
        return 0;
    };
    let cmd = req.wrapping_add(off!(iokiocb_cmd));
    let dfd = |o: usize| rd::<i32>(cmd, o).unwrap_or(AT_FDCWD as i32) as i64;
    let name = |o: usize| {
        rdp(cmd, o)
            .and_then(|f| rdp(f, off!(filename_name)))
            .map(|p| p as u64)
            .unwrap_or(0)
    };
    let word = |o: usize| rd::<u32>(cmd, o).unwrap_or(0) as u64;
    // (dir, name, second dir, second name, arg0, flags), as the syscall handlers order them.
    let (d1, n1, d2, n2, a0, fl) = match op {
        IORING_OP_UNLINKAT => (
            dfd(off!(io_unlink_dfd)),
            name(off!(io_unlink_filename)),
            NO_DIR,
            0,
            0,
            word(off!(io_unlink_flags)),
        ),
        IORING_OP_MKDIRAT => (
            dfd(off!(io_mkdir_dfd)),
            name(off!(io_mkdir_filename)),
            NO_DIR,
            0,
            word(off!(io_mkdir_mode)),
            0,
        ),
        IORING_OP_RENAMEAT => (
            dfd(off!(io_rename_old_dfd)),
            name(off!(io_rename_oldpath)),
            dfd(off!(io_rename_new_dfd)),
            name(off!(io_rename_newpath)),
            0,
            word(off!(io_rename_flags)),
        ),
        // The new link is the path; a symlink's content is the second name, as written.
        IORING_OP_SYMLINKAT => (
            dfd(off!(io_link_new_dfd)),
            name(off!(io_link_newpath)),
            NO_DIR,
            name(off!(io_link_oldpath)),
            0,
            0,
        ),
        _ => (
            dfd(off!(io_link_new_dfd)),
            name(off!(io_link_newpath)),
            dfd(off!(io_link_old_dfd)),
            name(off!(io_link_oldpath)),
            0,
            word(off!(io_link_flags)),
        ),
    };
    if n1 == 0 {
        return 0;
    }
    // The request's address as a plain number (the verifier forbids arithmetic on a pointer,
    // and the cookie is written byte by byte).
    let cookie = launder(req as u64);
    if emit_path_op(&s, kind, d1, n1, d2, n2, a0, 0, fl as u32, cookie, 0).is_err() {
        bump(&ERRORS, kind);
    }
    0
}

/// An io_uring send at submission, when its prepared message holds the kernel copy of the
/// destination and the user's buffers are still the submitter's: the same `net.send` and DNS
/// record as the syscalls, with `IO_PENDING` (the result comes with the completion). Requests on
/// registered (fixed) files are not followed: their socket is not in the descriptor table.
#[inline(always)]
fn io_send_submit(req: *const u8, op: u8) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(s) = session_of(tgid) else {
        return;
    };
    let flags: u64 = ld(req, off!(iokiocb_flags));
    if flags & REQ_F_FIXED_FILE != 0 {
        return;
    }
    let fd: i32 = ld(req, off!(iokiocb_fd));
    let name = rdp(req, off!(iokiocb_async_data))
        .and_then(|m| rdp(m, off!(io_amsg_name)))
        .map(|p| p as u64)
        .unwrap_or(0);
    let cmd = req.wrapping_add(off!(iokiocb_cmd));
    let ubuf: u64 = rd(cmd, off!(io_sr_buf)).unwrap_or(0);
    let (buf, len) = if op == IORING_OP_SEND || op == IORING_OP_SEND_ZC {
        (ubuf, rd::<i32>(cmd, off!(io_sr_len)).unwrap_or(0) as i64)
    } else {
        // The user's struct msghdr (x86_64): msg_iov @16; iovec: base @0, len @8.
        let iov: u64 = read_user(ubuf as *const u8, 16);
        let base: u64 = read_user(iov as *const u8, 0);
        let len: u64 = read_user(iov as *const u8, 8);
        (base, len as i64)
    };
    let cookie = launder(req as u64);
    let _ = emit_send(&s, fd as i64, buf, name, true, len, cookie);
}

/// The completion half of an io_uring send: its result, no payload.
#[inline(always)]
fn io_send_result(s: &SessionInfo, cookie: u64, res: i32) {
    let Some(buf) = scratch() else {
        return;
    };
    if header_current(buf, RecordKind::Send, s).is_err() {
        return;
    }
    put(
        buf,
        HEADER_LEN,
        SockRecord {
            flags: IO_RESULT | VIA_IO_URING,
            bytes: res as u32,
            cookie,
            ..Default::default()
        },
    );
    submit(
        buf,
        HEADER_LEN + core::mem::size_of::<SockRecord>(),
        RecordKind::Send,
    );
}

/// The completion half of an io_uring path operation: its result, no strings.
#[inline(always)]
fn io_path_result(s: &SessionInfo, kind: RecordKind, cookie: u64, res: i32) {
    let Some(buf) = scratch() else {
        return;
    };
    if header_current(buf, kind, s).is_err() {
        return;
    }
    put(
        buf,
        HEADER_LEN,
        PathOpRecord {
            flags: IO_RESULT | VIA_IO_URING,
            arg0: res as i64 as u64,
            cookie,
            ..Default::default()
        },
    );
    submit(buf, HEADER_LEN + core::mem::size_of::<PathOpRecord>(), kind);
}

/// io_uring connect on a non-TCP socket (TCP is seen by `inet_sock_set_state`).
#[inline(always)]
fn emit_sock_file(s: &SessionInfo, file: *const u8) -> Result<(), i32> {
    let socket = rdp(file, off!(file_private_data))?;
    let sk = rdp(socket, off!(socket_sk))?;
    let family: u16 = rd(sk, off!(sk_family))?;
    let protocol: u16 = rd(sk, off!(sk_protocol)).unwrap_or(0);
    if protocol == IPPROTO_TCP && (family == AF_INET || family == AF_INET6) {
        return Ok(());
    }
    let sock_type: u16 = rd(socket, off!(socket_type)).unwrap_or(0);
    emit_sock(
        s,
        RecordKind::Connect,
        sk,
        family,
        protocol,
        sock_type,
        -1,
        VIA_IO_URING,
    )
}
