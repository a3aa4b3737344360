//! Sockets: connect, accept, listen, UDP sends and DNS answers received (recvfrom/recvmsg from
//! port 53) at syscall exit (`h_net`), and TCP connects and listens from `inet_sock_set_state`,
//! which also sees the ones io_uring issues.
//!
//! The socket record builders are shared with the io_uring probes; `inet_addrs` with the flow
//! counters.

use crate::{
    abi::{AF_INET, AF_INET6, AF_UNIX, EINPROGRESS, IPPROTO_TCP, IPPROTO_UDP, S_IFMT, S_IFSOCK},
    maps::{ERRORS, IO_SENDS, off, session_of},
    probes::filter::Sys,
    read::{POS_MASK, file_of_fd, rd, rdp, read_any, read_user},
    record::{bump, header_current, put, scratch, submit, submit_now},
    syscalls::{
        NR_ACCEPT, NR_ACCEPT4, NR_CONNECT, NR_LISTEN, NR_RECVFROM, NR_RECVMSG, NR_SENDMMSG,
        NR_SENDMSG, NR_SENDTO,
    },
};
use agent_common::{
    DNS_ANSWER_MAX, HEADER_LEN, IO_PENDING, RECORD_DNS_ANSWER, RecordKind, SessionInfo, SockRecord,
    VIA_IO_URING,
};
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};

const MAX_DNS_PAYLOAD: usize = 512;

const TCP_SYN_SENT: i32 = 2;
const TCP_CLOSE: i32 = 7;
const TCP_LISTEN: i32 = 10;

#[btf_tracepoint(function = "sys_exit")]
pub fn h_net(ctx: BtfTracePointContext) -> i32 {
    let Some(x) = Sys::load(&ctx) else { return 0 };
    let _ = match x.nr {
        NR_CONNECT if x.ret == 0 || x.ret == -EINPROGRESS => {
            emit_sock_fd(&x.s, RecordKind::Connect, x.fd(0), 0, true)
        }
        NR_ACCEPT | NR_ACCEPT4 if x.ret >= 0 => {
            emit_sock_fd(&x.s, RecordKind::Accept, x.ret, 0, false)
        }
        NR_LISTEN if x.ret == 0 => emit_sock_fd(&x.s, RecordKind::Listen, x.fd(0), 0, true),
        NR_SENDTO if x.ret > 0 => emit_send(&x.s, x.fd(0), x.arg(1), x.arg(4), false, x.ret, 0),
        NR_RECVFROM if x.ret > 0 => emit_dns_answer(&x.s, x.fd(0), x.arg(1), x.arg(4), x.ret),
        NR_RECVMSG if x.ret > 0 => {
            let (name, base, len) = msg_first(x.arg(1) as *const u8, x.compat);
            let got = if (x.ret as u64) < len {
                x.ret
            } else {
                len as i64
            };
            emit_dns_answer(&x.s, x.fd(0), base, name, got)
        }
        NR_SENDMSG | NR_SENDMMSG if x.ret > 0 => {
            // struct msghdr (x86_64 ABI): msg_name @0, msg_iov @16; iovec: base @0, len @8.
            // The 32-bit compat_msghdr: msg_name @0, msg_iov @8; compat_iovec: base @0, len @4.
            // For sendmmsg the first struct mmsghdr starts with its msghdr.
            let msg = x.arg(1) as *const u8;
            let (name, base, len) = if x.compat {
                let name: u32 = read_user(msg, 0);
                let iov: u32 = read_user(msg, 8);
                let base: u32 = read_user(iov as u64 as *const u8, 0);
                let len: u32 = read_user(iov as u64 as *const u8, 4);
                (name as u64, base as u64, len as u64)
            } else {
                let name: u64 = read_user(msg, 0);
                let iov: u64 = read_user(msg, 16);
                let base: u64 = read_user(iov as *const u8, 0);
                let len: u64 = read_user(iov as *const u8, 8);
                (name, base, len)
            };
            let sent = if x.nr == NR_SENDMMSG {
                len as i64
            } else {
                x.ret
            };
            emit_send(&x.s, x.fd(0), base, name, false, sent, 0)
        }
        _ => Ok(()),
    };
    0
}

/// The name pointer and the first buffer (base, length) of a user `struct msghdr` (x86_64:
/// msg_name @0, msg_iov @16, iovec base @0 len @8; compat: @0, @8, iovec @0 @4).
#[inline(always)]
fn msg_first(msg: *const u8, compat: bool) -> (u64, u64, u64) {
    if compat {
        let name: u32 = read_user(msg, 0);
        let iov: u32 = read_user(msg, 8);
        let base: u32 = read_user(iov as u64 as *const u8, 0);
        let len: u32 = read_user(iov as u64 as *const u8, 4);
        (name as u64, base as u64, len as u64)
    } else {
        let name: u64 = read_user(msg, 0);
        let iov: u64 = read_user(msg, 16);
        let base: u64 = read_user(iov as *const u8, 0);
        let len: u64 = read_user(iov as *const u8, 8);
        (name, base, len)
    }
}

/// A datagram received from port 53 on a UDP socket (the peer from the caller's `addr` when it
/// gave one, else the connected peer): the first [`DNS_ANSWER_MAX`] bytes as a
/// `RECORD_DNS_ANSWER` record, so the daemon can allow the addresses the session's own resolver
/// answered for allow-listed host names. Every other receive returns after the socket check.
#[inline(always)]
fn emit_dns_answer(s: &SessionInfo, fd: i64, buf: u64, addr: u64, got: i64) -> Result<(), i32> {
    let file = file_of_fd(fd)?;
    let socket = rdp(file, off!(file_private_data))?;
    let sk = rdp(socket, off!(socket_sk))?;
    let protocol: u16 = rd(sk, off!(sk_protocol)).unwrap_or(0);
    if protocol != IPPROTO_UDP {
        return Ok(());
    }
    let mut family: u16 = rd(sk, off!(sk_family))?;
    let mut body = SockRecord {
        protocol,
        sock_type: 2,
        fd: fd as i32,
        bytes: got as u32,
        ..SockRecord::default()
    };
    let mut from_user = false;
    if addr != 0 {
        let ua = addr as *const u8;
        let f: u16 = read_user(ua, 0);
        if f == AF_INET || f == AF_INET6 {
            from_user = true;
            family = f;
            let port: u16 = read_user(ua, 2);
            body.dport = u16::from_be(port);
            if family == AF_INET {
                let a4: [u8; 4] = read_user(ua, 4);
                body.daddr[..4].copy_from_slice(&a4);
            } else {
                body.daddr = read_user(ua, 8);
            }
        }
    }
    if !from_user {
        let dport: u16 = rd(sk, off!(sk_dport)).unwrap_or(0);
        body.dport = u16::from_be(dport);
        if family == AF_INET {
            let d: [u8; 4] = rd(sk, off!(sk_daddr)).unwrap_or([0; 4]);
            body.daddr[..4].copy_from_slice(&d);
        } else if family == AF_INET6 {
            body.daddr = rd(sk, off!(sk_v6_daddr)).unwrap_or([0; 16]);
        }
    }
    if body.dport != 53 || buf == 0 {
        return Ok(());
    }
    body.family = family;
    body.sport = rd(sk, off!(sk_num)).unwrap_or(0);
    let buf_ptr = scratch().ok_or(-1)?;
    header_current(buf_ptr, RecordKind::Send, s)?;
    put(buf_ptr, 0, RECORD_DNS_ANSWER);
    let start = HEADER_LEN + core::mem::size_of::<SockRecord>();
    let mut pos = start;
    let mut n = got as usize;
    if n > DNS_ANSWER_MAX {
        n = DNS_ANSWER_MAX;
    }
    if n > 0 {
        // SAFETY: destination within the scratch buffer; n <= DNS_ANSWER_MAX < 2048.
        let r = unsafe {
            generated::bpf_probe_read_user(
                buf_ptr.add(pos & POS_MASK) as *mut _,
                (n as u32) & 2047,
                buf as *const _,
            )
        };
        if r == 0 {
            pos += n & 2047;
        }
    }
    body.payload_len = (pos - start) as u32;
    put(buf_ptr, HEADER_LEN, body);
    submit_now(buf_ptr, pos, RecordKind::Send);
    Ok(())
}

/// UDP datagrams: a send with an explicit destination is `net.send`; anything to port 53 also
/// carries the first bytes of the payload so user space can decode the DNS question. `addr` is
/// the destination (a user pointer, or a kernel copy for io_uring); `cookie` is nonzero for an
/// io_uring submission, whose result comes later (`IO_PENDING`).
#[inline(always)]
pub(crate) fn emit_send(
    s: &SessionInfo,
    fd: i64,
    buf: u64,
    addr: u64,
    addr_kernel: bool,
    sent: i64,
    cookie: u64,
) -> Result<(), i32> {
    let file = file_of_fd(fd)?;
    let socket = rdp(file, off!(file_private_data))?;
    let sk = rdp(socket, off!(socket_sk))?;
    let protocol: u16 = rd(sk, off!(sk_protocol)).unwrap_or(0);
    if protocol != IPPROTO_UDP {
        return Ok(());
    }
    let mut family: u16 = rd(sk, off!(sk_family))?;
    let mut body = SockRecord {
        flags: if cookie != 0 {
            IO_PENDING | VIA_IO_URING
        } else {
            0
        },
        protocol,
        sock_type: 2,
        fd: fd as i32,
        bytes: sent as u32,
        cookie,
        ..SockRecord::default()
    };
    if addr != 0 {
        let ua = addr as *const u8;
        family = read_any(ua, 0, addr_kernel);
        let port: u16 = read_any(ua, 2, addr_kernel);
        body.dport = u16::from_be(port);
        if family == AF_INET {
            let a4: [u8; 4] = read_any(ua, 4, addr_kernel);
            body.daddr[..4].copy_from_slice(&a4);
        } else if family == AF_INET6 {
            body.daddr = read_any(ua, 8, addr_kernel);
        }
    } else {
        let dport: u16 = rd(sk, off!(sk_dport)).unwrap_or(0);
        body.dport = u16::from_be(dport);
        if family == AF_INET {
            let d: [u8; 4] = rd(sk, off!(sk_daddr)).unwrap_or([0; 4]);
            body.daddr[..4].copy_from_slice(&d);
        } else if family == AF_INET6 {
            body.daddr = rd(sk, off!(sk_v6_daddr)).unwrap_or([0; 16]);
        }
    }
    if addr == 0 && body.dport != 53 {
        return Ok(()); // a connected socket's ordinary traffic: its connect was reported
    }
    body.family = family;
    body.sport = rd(sk, off!(sk_num)).unwrap_or(0);
    let buf_ptr = scratch().ok_or(-1)?;
    header_current(buf_ptr, RecordKind::Send, s)?;
    let start = HEADER_LEN + core::mem::size_of::<SockRecord>();
    let mut pos = start;
    if body.dport == 53 && buf != 0 {
        let mut n = sent as usize;
        if n > MAX_DNS_PAYLOAD {
            n = MAX_DNS_PAYLOAD;
        }
        if n > 0 {
            // SAFETY: destination within the scratch buffer; n <= 512.
            let r = unsafe {
                generated::bpf_probe_read_user(
                    buf_ptr.add(pos & POS_MASK) as *mut _,
                    (n as u32) & 1023,
                    buf as *const _,
                )
            };
            if r == 0 {
                pos += n & 1023;
            }
        }
    }
    body.payload_len = (pos - start) as u32;
    put(buf_ptr, HEADER_LEN, body);
    submit(buf_ptr, pos, RecordKind::Send);
    if cookie != 0 {
        let _ = IO_SENDS.insert(cookie, 1, 0);
    }
    Ok(())
}

/// Emit a socket record for the socket behind descriptor `fd`. `skip_tcp`: TCP connects and
/// listens are reported by `inet_sock_set_state`, which also sees io_uring.
#[inline(always)]
pub(crate) fn emit_sock_fd(
    s: &SessionInfo,
    kind: RecordKind,
    fd: i64,
    via: u32,
    skip_tcp: bool,
) -> Result<(), i32> {
    let file = file_of_fd(fd)?;
    let inode = rdp(file, off!(file_inode))?;
    let mode: u16 = rd(inode, off!(inode_mode))?;
    if (mode as u32) & S_IFMT != S_IFSOCK {
        return Ok(());
    }
    let socket = rdp(file, off!(file_private_data))?;
    let sk = rdp(socket, off!(socket_sk))?;
    let family: u16 = rd(sk, off!(sk_family))?;
    let protocol: u16 = rd(sk, off!(sk_protocol)).unwrap_or(0);
    if skip_tcp && protocol == IPPROTO_TCP && (family == AF_INET || family == AF_INET6) {
        return Ok(());
    }
    let sock_type: u16 = rd(socket, off!(socket_type)).unwrap_or(0);
    emit_sock(s, kind, sk, family, protocol, sock_type, fd as i32, via)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn emit_sock(
    s: &SessionInfo,
    kind: RecordKind,
    sk: *const u8,
    family: u16,
    protocol: u16,
    sock_type: u16,
    fd: i32,
    via: u32,
) -> Result<(), i32> {
    let buf = scratch().ok_or(-1)?;
    header_current(buf, kind, s)?;
    let mut body = SockRecord {
        flags: via,
        family,
        protocol,
        sock_type,
        fd,
        ..SockRecord::default()
    };
    let start = HEADER_LEN + core::mem::size_of::<SockRecord>();
    let mut pos = start;
    if family == AF_INET || family == AF_INET6 {
        inet_addrs(sk, family, &mut body);
    } else if family == AF_UNIX {
        // Connect names the peer's address; listen and accept name our own.
        let owner = if kind == RecordKind::Connect {
            rdp(sk, off!(unix_peer)).unwrap_or(core::ptr::null())
        } else {
            sk
        };
        if let Ok(addr) = rdp(owner, off!(unix_addr)) {
            let len: i32 = rd(addr, off!(unix_address_len)).unwrap_or(0);
            // sockaddr_un: 2 bytes of family, then sun_path.
            let n = (len as i64) - 2;
            if n > 0 && n < 109 {
                let src = addr.wrapping_add(off!(unix_address_name) + 2);
                // SAFETY: destination masked into the buffer; n < 109.
                let r = unsafe {
                    generated::bpf_probe_read_kernel(
                        buf.add(pos & POS_MASK) as *mut _,
                        (n as u32) & 127,
                        src as *const _,
                    )
                };
                if r == 0 {
                    pos += (n as usize) & 127;
                }
            }
        }
    }
    body.unix_path_len = (pos - start) as u32;
    put(buf, HEADER_LEN, body);
    submit(buf, pos, kind);
    Ok(())
}

/// Local and remote address and port of an IPv4/IPv6 socket.
#[inline(always)]
pub(crate) fn inet_addrs(sk: *const u8, family: u16, body: &mut SockRecord) {
    if family == AF_INET {
        let d: [u8; 4] = rd(sk, off!(sk_daddr)).unwrap_or([0; 4]);
        let sa: [u8; 4] = rd(sk, off!(sk_rcv_saddr)).unwrap_or([0; 4]);
        body.daddr[..4].copy_from_slice(&d);
        body.saddr[..4].copy_from_slice(&sa);
    } else {
        body.daddr = rd(sk, off!(sk_v6_daddr)).unwrap_or([0; 16]);
        body.saddr = rd(sk, off!(sk_v6_rcv_saddr)).unwrap_or([0; 16]);
    }
    let dport: u16 = rd(sk, off!(sk_dport)).unwrap_or(0);
    body.dport = u16::from_be(dport);
    body.sport = rd(sk, off!(sk_num)).unwrap_or(0);
}

#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: BtfTracePointContext) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    let old: i32 = ctx.arg(1);
    let new: i32 = ctx.arg(2);
    // Most transitions of a connection are none of ours: decide on the states before the
    // session lookup.
    let kind = if old == TCP_CLOSE && new == TCP_SYN_SENT {
        RecordKind::Connect
    } else if new == TCP_LISTEN && old != TCP_LISTEN {
        RecordKind::Listen
    } else {
        return 0;
    };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(s) = session_of(tgid) else {
        return 0;
    };
    let family: u16 = rd(sk, off!(sk_family)).unwrap_or(0);
    if emit_sock(&s, kind, sk, family, IPPROTO_TCP, 1, -1, 0).is_err() {
        bump(&ERRORS, kind);
    }
    0
}
