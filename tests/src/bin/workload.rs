//! One file because it is one binary of many small, independent subcommands (one real kernel
//! action each), listed below; a test names the subcommand it runs.
//!
//! Workloads the sensor tests and benchmarks run inside (or outside) agent sessions. Each
//! subcommand does one real thing through the kernel and prints what a test needs to know.
//!
//! ```text
//! workload open PATH                  open(2) read-only, then close
//! workload create PATH                open(O_CREAT|O_TRUNC|O_WRONLY)
//! workload uring-open PATH            IORING_OP_OPENAT, then read through io_uring
//! workload uring-connect HOST:PORT [N] IORING_OP_CONNECT (TCP), then N bytes by IORING_OP_SEND
//! workload uring-paths DIR            through io_uring, relative to a descriptor of DIR: mkdirat
//!                                     sub (0750), symlinkat sub/link -> /etc/hostname, linkat f
//!                                     sub/hard, renameat f g, unlinkat g, and an unlinkat of a
//!                                     missing name that fails; prints each result
//! workload uring-udp IPV4:PORT NAME   on one unconnected UDP socket, through io_uring: SENDMSG
//!                                     of 37 bytes and SEND (with a destination) of 41 bytes to
//!                                     IPV4:PORT, a SEND to [::1]:PORT that fails, and SENDMSG of
//!                                     a DNS TXT question for NAME to 127.0.0.1:53; prints each
//!                                     result
//! workload connect HOST:PORT          connect(2) TCP
//! workload connect-unix PATH          connect(2) AF_UNIX stream
//! workload udp-connect HOST:PORT      connect(2) UDP
//! workload listen-accept PORTFILE     listen on 127.0.0.1:0, write the port to PORTFILE, accept one
//! workload prctl-rename NAME PATH     PR_SET_NAME then open PATH
//! workload flood PATH N               open+close PATH N times
//! workload wait-open TRIGGER PATH     wait until TRIGGER exists, then open PATH
//! workload loop-open PATH SECS        open+close loop for SECS, prints ops/s and the count
//! workload loop-exec SECS             fork+exec /bin/true loop for SECS, prints ops/s and count
//! workload loop-connect PORT SECS     loopback connect loop for SECS, prints ops/s and count
//! workload fd-ops PATH UID GID LEN     open O_RDWR, fchmod 0640, fchown UID:GID, ftruncate LEN
//! workload write-twice PATH           create PATH, write 5 bytes, then 3 more
//! workload sendto HOST:PORT N         UDP sendto(2) of N bytes without connect
//! workload dns HOST:PORT NAME QTYPE   UDP sendto(2) of a DNS question for NAME (QTYPE number)
//! workload int80 open|unlink|mmap-exec PATH
//!                                     the 32-bit syscall through `int 0x80` (path below 4 GiB);
//!                                     open reads a byte and prints `fd=N byte=B`; mmap-exec maps
//!                                     PATH executable with the old `mmap` (arguments in memory)
//! workload int80-net IPV4:PORT NAME  32-bit sends to IPV4:PORT from memory below 4 GiB:
//!                                     socketcall sendto (23 bytes), ia32 sendmsg (29),
//!                                     socketcall sendmsg (31), ia32 sendmmsg (33), socketcall
//!                                     sendmmsg (35), a socketcall sendto of a DNS TXT question
//!                                     for NAME to 127.0.0.1:53, a socketcall connect of a second
//!                                     UDP socket; prints each result
//! workload tcp-xfer HOST:PORT N SECS  connect, send N bytes spread over SECS seconds, shut down
//!                                     writing, read until EOF, close; prints `sent=N received=M`
//! workload setresuid UID              setresuid(UID, UID, UID), then open /proc/self/status
//! workload ptrace attach|seize PID    PTRACE_ATTACH (then detach) or PTRACE_SEIZE PID
//! workload vm-target SECS             print `PID ADDR` of a buffer, then sleep SECS
//! workload vm-write PID ADDR          process_vm_writev(2) 4 bytes at ADDR in PID
//! workload bpf-load NAME              BPF_PROG_LOAD of a `return 0` socket filter named NAME
//! workload bpf-tamper MAP             find map MAP by id, delete this pid's key from it
//! workload bpf-tamper-open PATH      bpf-tamper SESSIONS, wait until the entry is back, open PATH
//! workload bpf-delete PID MAP KEY     delete u32 KEY from map MAP held open by process PID
//! workload bpf-delete2 PID MAP A B    the same with a key of two u64 (A, B), as `KILL_OPEN`'s
//! workload bpf-enum                   BPF_MAP_GET_NEXT_ID over every map id
//! workload bpf-obj-get PATH           BPF_OBJ_GET of a pinned link, prints `link_id=N prog_id=M`
//! workload atomic-replace DIR         write-tmp-then-rename through /proc/self/fd/N/ (O_PATH N),
//!                                     /dev/fd/N/, /proc/self/cwd/; renameat on N; chmod via
//!                                     /proc/PID/fd/N/ (run from DIR)
//! workload utimes PATH                utimensat (a time, UTIME_OMIT), utimes(NULL), futimens
//! workload finit-module PATH          finit_module(2) of PATH, prints the errno
//! workload memfd-exec NAME PROG ARG.. memfd_create(NAME), copy PROG in, execveat(AT_EMPTY_PATH)
//! workload exec-deleted PATH ARG..    open PATH, unlink it, execveat(AT_EMPTY_PATH)
//! workload argv-rewrite PATH          overwrite argv in memory, print /proc/self/cmdline, open PATH
//! workload flip-open SECRET DECOY N   open a path buffer while a thread flips it between SECRET
//!                                     and DECOY, until N opens hit SECRET's inode (or 10 s);
//!                                     prints `secret=K` (opens of SECRET's inode)
//! ```

use std::ffi::CString;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::time::{Duration, Instant};

fn die(msg: &str) -> ! {
    eprintln!("workload: {msg}");
    std::process::exit(2)
}

fn open_close(path: &CString) -> bool {
    // SAFETY: path is a valid NUL-terminated string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd >= 0 {
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
        true
    } else {
        false
    }
}

/// A 32-bit syscall through `int 0x80` (ia32 emulation): nr in eax, args in ebx, ecx, edx.
fn int80(nr: u32, a: u64, b: u64, c: u64) -> i32 {
    int80_4(nr, a, b, c, 0)
}

/// [`int80`] with a fourth argument (esi).
fn int80_4(nr: u32, a: u64, b: u64, c: u64, d: u64) -> i32 {
    let ret: i32;
    // SAFETY: a raw syscall with scalar arguments or pointers into our own memory; rbx is
    // reserved by LLVM, so the first argument is swapped in and out around the trap.
    unsafe {
        std::arch::asm!(
            "xchg {a}, rbx",
            "int 0x80",
            "xchg {a}, rbx",
            a = inout(reg) a => _,
            inlateout("eax") nr => ret,
            in("ecx") b as u32,
            in("edx") c as u32,
            in("esi") d as u32,
        );
    }
    ret
}

/// Sends over 32-bit syscalls, all from memory below 4 GiB to an unconnected UDP socket: the
/// multiplexed `socketcall` (sendto, sendmsg, sendmmsg, connect) and the direct ia32 `sendmsg`
/// and `sendmmsg` with their 32-bit message headers; then a DNS TXT question for NAME to
/// 127.0.0.1:53 through `socketcall`.
fn int80_net(target: &str, name: &str) {
    let std::net::SocketAddr::V4(v4) = addr(target) else {
        die("int80-net takes an IPv4 address")
    };
    // SAFETY: a fresh anonymous mapping below 4 GiB, so 32-bit syscalls can address it.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        )
    };
    if page == libc::MAP_FAILED {
        die("mmap MAP_32BIT failed");
    }
    let base = page as u64;
    let put = |off: u64, bytes: &[u8]| {
        assert!(off as usize + bytes.len() <= 4096);
        // SAFETY: within the 4096-byte mapping (checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), (base + off) as *mut u8, bytes.len())
        };
    };
    let words = |off: u64, w: &[u32]| {
        let b: Vec<u8> = w.iter().flat_map(|x| x.to_ne_bytes()).collect();
        put(off, &b);
    };
    let sin = |a: std::net::SocketAddrV4| {
        let s = sockaddr_in(a);
        // SAFETY: sockaddr_in is plain old data.
        unsafe {
            std::slice::from_raw_parts(
                &s as *const libc::sockaddr_in as *const u8,
                std::mem::size_of::<libc::sockaddr_in>(),
            )
        }
        .to_vec()
    };
    // Layout: destination @0, DNS server @16, argument words @64, compat_msghdr @128 (the
    // mmsghdr's msg_len follows it), compat_iovec @192, payload @512, DNS question @1024.
    let (dst, dns, args, msg, iov, data, query) = (0, 16, 64, 128, 192, 512, 1024);
    put(dst, &sin(v4));
    put(
        dns,
        &sin(std::net::SocketAddrV4::new(
            std::net::Ipv4Addr::LOCALHOST,
            53,
        )),
    );
    put(data, &[b'q'; 64]);
    let q = dns_query(name, 16);
    put(query, &q);
    let a = |off: u64| (base + off) as u32;
    // compat_msghdr: name, namelen, iov, iovlen, control, controllen, flags; compat_iovec.
    let message = |len: u32| {
        words(msg, &[a(dst), 16, a(iov), 1, 0, 0, 0, 0]);
        words(iov, &[a(data), len]);
    };
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        die("socket failed");
    }
    let fd = fd as u32;
    const SOCKETCALL: u32 = 102;
    words(args, &[fd, a(data), 23, 0, a(dst), 16]);
    println!("sc-sendto={}", int80(SOCKETCALL, 11, a(args) as u64, 0));
    message(29);
    println!("sendmsg={}", int80(370, fd as u64, a(msg) as u64, 0));
    message(31);
    words(args, &[fd, a(msg), 0]);
    println!("sc-sendmsg={}", int80(SOCKETCALL, 16, a(args) as u64, 0));
    message(33);
    println!("sendmmsg={}", int80_4(345, fd as u64, a(msg) as u64, 1, 0));
    message(35);
    words(args, &[fd, a(msg), 1, 0]);
    println!("sc-sendmmsg={}", int80(SOCKETCALL, 20, a(args) as u64, 0));
    words(args, &[fd, a(query), q.len() as u32, 0, a(dns), 16]);
    println!("sc-dns={}", int80(SOCKETCALL, 11, a(args) as u64, 0));
    // SAFETY: plain socket(2).
    let fd2 = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    words(args, &[fd2 as u32, a(dst), 16]);
    println!("sc-connect={}", int80(SOCKETCALL, 3, a(args) as u64, 0));
    // SAFETY: our descriptors.
    unsafe {
        libc::close(fd as i32);
        libc::close(fd2);
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| die("NUL in path"))
}

fn addr(s: &str) -> std::net::SocketAddr {
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| die(&format!("bad address `{s}`")))
}

fn uring_open(path: &str) {
    use io_uring::{IoUring, opcode, types};
    let mut ring = IoUring::new(8).unwrap_or_else(|e| die(&format!("io_uring_setup: {e}")));
    let p = cstr(path);
    let e = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), p.as_ptr())
        .flags(libc::O_RDONLY | libc::O_CLOEXEC)
        .build()
        .user_data(1);
    // SAFETY: `p` outlives the submission (we wait for the completion below).
    unsafe { ring.submission().push(&e) }.unwrap_or_else(|_| die("sq full"));
    ring.submit_and_wait(1)
        .unwrap_or_else(|e| die(&format!("submit: {e}")));
    let cqe = ring.completion().next().unwrap_or_else(|| die("no cqe"));
    let fd = cqe.result();
    if fd < 0 {
        die(&format!("io_uring open failed: {fd}"));
    }
    let mut buf = vec![0u8; 4096];
    let r = opcode::Read::new(types::Fd(fd), buf.as_mut_ptr(), buf.len() as u32)
        .build()
        .user_data(2);
    // SAFETY: `buf` outlives the submission.
    unsafe { ring.submission().push(&r) }.unwrap_or_else(|_| die("sq full"));
    ring.submit_and_wait(1)
        .unwrap_or_else(|e| die(&format!("submit: {e}")));
    let n = ring.completion().next().map(|c| c.result()).unwrap_or(-1);
    println!("fd={fd} read={n}");
}

/// Submit one io_uring request and wait for its result.
fn uring_one(ring: &mut io_uring::IoUring, e: io_uring::squeue::Entry) -> i32 {
    // SAFETY: callers keep every buffer the entry points at alive until this returns, and it
    // returns only after the completion.
    unsafe { ring.submission().push(&e) }.unwrap_or_else(|_| die("sq full"));
    ring.submit_and_wait(1)
        .unwrap_or_else(|e| die(&format!("submit: {e}")));
    ring.completion().next().map(|c| c.result()).unwrap_or(-1)
}

fn uring_paths(dir: &str) {
    use io_uring::{IoUring, opcode, types};
    std::fs::write(format!("{dir}/f"), b"x").unwrap_or_else(|e| die(&format!("{dir}/f: {e}")));
    let d = cstr(dir);
    // SAFETY: a valid C string; the descriptor is closed when the process exits.
    let dfd = unsafe { libc::open(d.as_ptr(), libc::O_PATH | libc::O_DIRECTORY) };
    if dfd < 0 {
        die(&format!("open {dir}: {}", std::io::Error::last_os_error()));
    }
    let fd = types::Fd(dfd);
    let mut ring = IoUring::new(8).unwrap_or_else(|e| die(&format!("io_uring_setup: {e}")));
    let (sub, link, target, hard) = (
        cstr("sub"),
        cstr("sub/link"),
        cstr("/etc/hostname"),
        cstr("sub/hard"),
    );
    let (f, g, missing) = (cstr("f"), cstr("g"), cstr("missing"));
    let steps = [
        (
            "mkdirat",
            opcode::MkDirAt::new(fd, sub.as_ptr()).mode(0o750).build(),
        ),
        (
            "symlinkat",
            opcode::SymlinkAt::new(fd, target.as_ptr(), link.as_ptr()).build(),
        ),
        (
            "linkat",
            opcode::LinkAt::new(fd, f.as_ptr(), fd, hard.as_ptr()).build(),
        ),
        (
            "renameat",
            opcode::RenameAt::new(fd, f.as_ptr(), fd, g.as_ptr()).build(),
        ),
        ("unlinkat", opcode::UnlinkAt::new(fd, g.as_ptr()).build()),
        (
            "unlinkat-missing",
            opcode::UnlinkAt::new(fd, missing.as_ptr()).build(),
        ),
    ];
    for (name, e) in steps {
        println!("{name}={}", uring_one(&mut ring, e));
    }
}

fn sockaddr_in(a: std::net::SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

fn uring_udp(target: &str, name: &str) {
    use io_uring::{IoUring, opcode, types};
    let std::net::SocketAddr::V4(v4) = addr(target) else {
        die("uring-udp takes an IPv4 address")
    };
    // SAFETY: plain socket(2); closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        die("socket failed");
    }
    let mut ring = IoUring::new(8).unwrap_or_else(|e| die(&format!("io_uring_setup: {e}")));
    let sin_len = std::mem::size_of::<libc::sockaddr_in>() as u32;
    let sendmsg = |ring: &mut IoUring, to: &libc::sockaddr_in, data: &[u8]| {
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        // SAFETY: an all-zero msghdr is valid; the fields set below point at live locals.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = to as *const libc::sockaddr_in as *mut libc::c_void;
        msg.msg_namelen = sin_len;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        uring_one(ring, opcode::SendMsg::new(types::Fd(fd), &msg).build())
    };
    let to = sockaddr_in(v4);
    println!("sendmsg={}", sendmsg(&mut ring, &to, &[b'm'; 37]));
    let data = [b's'; 41];
    let e = opcode::Send::new(types::Fd(fd), data.as_ptr(), data.len() as u32)
        .dest_addr(&to as *const libc::sockaddr_in as *const libc::sockaddr)
        .dest_addr_len(sin_len)
        .build();
    println!("send={}", uring_one(&mut ring, e));
    // An IPv6 destination on an IPv4 socket: the kernel refuses it (EAFNOSUPPORT).
    // SAFETY: an all-zero sockaddr_in6 is valid.
    let mut six: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    six.sin6_family = libc::AF_INET6 as u16;
    six.sin6_port = v4.port().to_be();
    six.sin6_addr.s6_addr[15] = 1;
    let e = opcode::Send::new(types::Fd(fd), data.as_ptr(), 7)
        .dest_addr(&six as *const libc::sockaddr_in6 as *const libc::sockaddr)
        .dest_addr_len(std::mem::size_of::<libc::sockaddr_in6>() as u32)
        .build();
    println!("send6={}", uring_one(&mut ring, e));
    let dns = sockaddr_in(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::LOCALHOST,
        53,
    ));
    println!("dns={}", sendmsg(&mut ring, &dns, &dns_query(name, 16)));
    // SAFETY: our descriptor.
    unsafe { libc::close(fd) };
}

fn uring_connect(target: &str, send: Option<usize>) {
    use io_uring::{IoUring, opcode, types};
    let a = addr(target);
    let std::net::SocketAddr::V4(v4) = a else {
        die("uring-connect takes an IPv4 address")
    };
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        die("socket failed");
    }
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(v4.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    let mut ring = IoUring::new(8).unwrap_or_else(|e| die(&format!("io_uring_setup: {e}")));
    let e = opcode::Connect::new(
        types::Fd(fd),
        &sa as *const libc::sockaddr_in as *const libc::sockaddr,
        std::mem::size_of::<libc::sockaddr_in>() as u32,
    )
    .build()
    .user_data(1);
    // SAFETY: `sa` outlives the submission.
    unsafe { ring.submission().push(&e) }.unwrap_or_else(|_| die("sq full"));
    ring.submit_and_wait(1)
        .unwrap_or_else(|e| die(&format!("submit: {e}")));
    let res = ring.completion().next().map(|c| c.result()).unwrap_or(-1);
    println!("connect={res}");
    if let Some(n) = send {
        let data = vec![b'z'; n];
        let e = opcode::Send::new(types::Fd(fd), data.as_ptr(), n as u32)
            .build()
            .user_data(2);
        // SAFETY: `data` outlives the submission.
        unsafe { ring.submission().push(&e) }.unwrap_or_else(|_| die("sq full"));
        ring.submit_and_wait(1)
            .unwrap_or_else(|e| die(&format!("submit: {e}")));
        let sent = ring.completion().next().map(|c| c.result()).unwrap_or(-1);
        println!("sent={sent}");
    }
    // SAFETY: our descriptor.
    unsafe { libc::close(fd) };
}

fn fd_ops(path: &str, uid: &str, gid: &str, len: &str) {
    let p = cstr(path);
    let uid: u32 = uid.parse().unwrap_or_else(|_| die("bad uid"));
    let gid: u32 = gid.parse().unwrap_or_else(|_| die("bad gid"));
    let len: i64 = len.parse().unwrap_or_else(|_| die("bad len"));
    // SAFETY: valid path; the descriptor is ours and closed below.
    unsafe {
        let fd = libc::open(p.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if fd < 0 {
            die("open failed");
        }
        if libc::fchmod(fd, 0o640) != 0
            || libc::fchown(fd, uid, gid) != 0
            || libc::ftruncate(fd, len) != 0
        {
            die("fd op failed");
        }
        libc::close(fd);
    }
}

/// A DNS query (one question, recursion desired) for `name`.
fn dns_query(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

fn ptrace(mode: &str, pid: &str) {
    let pid: i32 = pid.parse().unwrap_or_else(|_| die("bad pid"));
    let null = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: ptrace requests on a pid with null address/data.
    unsafe {
        match mode {
            "attach" => {
                if libc::ptrace(libc::PTRACE_ATTACH, pid, null, null) != 0 {
                    die(&format!("attach: {}", std::io::Error::last_os_error()));
                }
                let mut st = 0;
                libc::waitpid(pid, &mut st, libc::__WALL);
                libc::ptrace(libc::PTRACE_DETACH, pid, null, null);
            }
            "seize" => {
                if libc::ptrace(libc::PTRACE_SEIZE, pid, null, null) != 0 {
                    die(&format!("seize: {}", std::io::Error::last_os_error()));
                }
            }
            _ => die("ptrace attach|seize PID"),
        }
    }
}

fn bpf_load(name: &str) {
    // r0 = 0; exit
    let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
    let license = cstr("GPL");
    let mut attr = [0u8; 128];
    let put32 =
        |a: &mut [u8; 128], off: usize, v: u32| a[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    let put64 =
        |a: &mut [u8; 128], off: usize, v: u64| a[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    put32(&mut attr, 0, 1); // BPF_PROG_TYPE_SOCKET_FILTER
    put32(&mut attr, 4, insns.len() as u32);
    put64(&mut attr, 8, insns.as_ptr() as u64);
    put64(&mut attr, 16, license.as_ptr() as u64);
    let n = name.as_bytes();
    let n = &n[..n.len().min(15)];
    attr[48..48 + n.len()].copy_from_slice(n);
    // SAFETY: attr is a valid bpf_attr prefix for BPF_PROG_LOAD; pointers outlive the call.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 5, attr.as_ptr(), attr.len() as u32) };
    if fd < 0 {
        die(&format!("bpf: {}", std::io::Error::last_os_error()));
    }
    println!("prog_fd={fd}");
}

fn bpf_call(cmd: i64, attr: &mut [u8; 128]) -> i64 {
    // SAFETY: attr is a zeroed bpf_attr prefix the caller filled for `cmd`; pointers in it
    // outlive the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len() as u32) };
    if r < 0 {
        -(std::io::Error::last_os_error().raw_os_error().unwrap_or(1) as i64)
    } else {
        r
    }
}

/// The ids of every bpf map (BPF_MAP_GET_NEXT_ID), as an enumerating tool sees them.
fn bpf_map_ids() -> Vec<u32> {
    let mut ids = Vec::new();
    let mut start = 0u32;
    loop {
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&start.to_ne_bytes());
        if bpf_call(12, &mut attr) != 0 {
            return ids;
        }
        start = u32::from_ne_bytes(attr[4..8].try_into().unwrap());
        ids.push(start);
    }
}

/// Open agentwatch's session map by id (BPF_MAP_GET_FD_BY_ID, found by name through
/// OBJ_GET_INFO_BY_FD) and delete this process's own entry (BPF_MAP_DELETE_ELEM): the attack
/// that makes a session go dark. Every map of that name is tried (several daemons may run) until
/// one holds the entry. Prints the map id and the result.
fn bpf_tamper(map_name: &str) -> Option<i64> {
    let mut last = None;
    for id in bpf_map_ids() {
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&id.to_ne_bytes());
        let fd = bpf_call(14, &mut attr);
        if fd < 0 {
            continue;
        }
        let mut info = [0u8; 128];
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&(fd as u32).to_ne_bytes());
        attr[4..8].copy_from_slice(&(info.len() as u32).to_ne_bytes());
        attr[8..16].copy_from_slice(&(info.as_mut_ptr() as u64).to_ne_bytes());
        if bpf_call(15, &mut attr) != 0 {
            continue;
        }
        let name: Vec<u8> = info[24..40]
            .iter()
            .copied()
            .take_while(|b| *b != 0)
            .collect();
        if name != map_name.as_bytes() {
            // SAFETY: closing our own descriptor.
            unsafe { libc::close(fd as i32) };
            continue;
        }
        let key = std::process::id();
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&(fd as u32).to_ne_bytes());
        attr[8..16].copy_from_slice(&(&key as *const u32 as u64).to_ne_bytes());
        let r = bpf_call(3, &mut attr);
        if r == -(libc::ENOENT as i64) {
            // Another daemon's map of the same name (tests run several): not ours to go dark in.
            last = Some(format!("map_id={id} map_fd={fd} delete={r}"));
            continue;
        }
        println!("map_id={id} map_fd={fd} delete={r}");
        return Some(fd);
    }
    match last {
        Some(l) => println!("{l}"),
        None => die("map not found"),
    }
    None
}

/// [`bpf_tamper`] on `SESSIONS`, then wait (up to 10 s) until the entry is back
/// (BPF_MAP_LOOKUP_ELEM), print how long that took, and open `path`.
fn bpf_tamper_then_open(path: &str) {
    let fd = bpf_tamper("SESSIONS").unwrap_or_else(|| die("no entry of ours to delete"));
    let start = Instant::now();
    let key = std::process::id();
    let mut value = [0u8; 16];
    loop {
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&(fd as u32).to_ne_bytes());
        attr[8..16].copy_from_slice(&(&key as *const u32 as u64).to_ne_bytes());
        attr[16..24].copy_from_slice(&(value.as_mut_ptr() as u64).to_ne_bytes());
        if bpf_call(1, &mut attr) == 0 {
            println!("restored_ms={}", start.elapsed().as_millis());
            break;
        }
        if start.elapsed() > Duration::from_secs(10) {
            println!("restored_ms=never");
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = std::io::stdout().flush();
    println!("opened={}", open_close(&cstr(path)));
}

/// Delete key `key` (its bytes) from the map named `map_name` that the process `pid` holds open
/// (its ids from `/proc/PID/fdinfo`): the attack on one daemon's map when several run.
fn bpf_delete(pid: &str, map_name: &str, key: &[u8]) {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap_or_else(|_| die("no such pid"))
        .flatten()
    {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        if let Some(id) = text
            .lines()
            .find_map(|l| l.strip_prefix("map_id:"))
            .and_then(|v| v.trim().parse::<u32>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&id.to_ne_bytes());
        let fd = bpf_call(14, &mut attr);
        if fd < 0 {
            continue;
        }
        let mut info = [0u8; 128];
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&(fd as u32).to_ne_bytes());
        attr[4..8].copy_from_slice(&(info.len() as u32).to_ne_bytes());
        attr[8..16].copy_from_slice(&(info.as_mut_ptr() as u64).to_ne_bytes());
        if bpf_call(15, &mut attr) != 0 || !info[24..40].starts_with(map_name.as_bytes()) {
            // SAFETY: closing our own descriptor.
            unsafe { libc::close(fd as i32) };
            continue;
        }
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&(fd as u32).to_ne_bytes());
        attr[8..16].copy_from_slice(&(key.as_ptr() as u64).to_ne_bytes());
        println!("map_id={id} delete={}", bpf_call(3, &mut attr));
        return;
    }
    die("map not found")
}

/// Open a pinned link (BPF_OBJ_GET) and print its id and its program's (OBJ_GET_INFO_BY_FD).
fn bpf_obj_get(path: &str) {
    let p = cstr(path);
    let mut attr = [0u8; 128];
    attr[0..8].copy_from_slice(&(p.as_ptr() as u64).to_ne_bytes());
    let fd = bpf_call(7, &mut attr);
    if fd < 0 {
        die(&format!("obj_get: {fd}"));
    }
    let mut info = [0u8; 64];
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&(fd as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(info.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(info.as_mut_ptr() as u64).to_ne_bytes());
    if bpf_call(15, &mut attr) != 0 {
        die("link info");
    }
    let id = u32::from_ne_bytes(info[4..8].try_into().unwrap_or_default());
    let prog = u32::from_ne_bytes(info[8..12].try_into().unwrap_or_default());
    println!("link_id={id} prog_id={prog}");
}

/// Atomic replaces through magic links, as Claude Code writes files: a temporary file created
/// (O_EXCL) and renamed through `/proc/self/fd/N/NAME` where N is an O_PATH descriptor of the
/// directory; the same through `/dev/fd/N/NAME` and `/proc/self/cwd/NAME` (run from `dir`), and
/// a rename relative to the O_PATH dirfd. Prints the descriptor.
fn atomic_replace(dir: &str) {
    let d = cstr(dir);
    // SAFETY: valid path; the descriptor stays open until exit.
    let n = unsafe {
        libc::open(
            d.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if n < 0 {
        die("open O_PATH failed");
    }
    let pid = std::process::id();
    let replace = |tmp: String, dst: String| {
        let t = cstr(&tmp);
        let dst = cstr(&dst);
        // SAFETY: valid paths; the descriptor is ours and closed at once.
        unsafe {
            let fd = libc::open(
                t.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                0o644,
            );
            if fd < 0 {
                die(&format!(
                    "create {tmp}: {}",
                    std::io::Error::last_os_error()
                ));
            }
            libc::write(fd, b"x=1\n".as_ptr().cast(), 4);
            libc::close(fd);
            if libc::rename(t.as_ptr(), dst.as_ptr()) != 0 {
                die(&format!(
                    "rename {tmp}: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
    };
    replace(
        format!("/proc/self/fd/{n}/.bashrc.tmp.{pid}.1f"),
        format!("/proc/self/fd/{n}/.bashrc"),
    );
    replace(format!("/dev/fd/{n}/b.tmp"), format!("/dev/fd/{n}/b"));
    replace("/proc/self/cwd/c.tmp".into(), "/proc/self/cwd/c".into());
    let (b, e) = (cstr("b"), cstr("e"));
    // SAFETY: valid names relative to the O_PATH dirfd.
    if unsafe { libc::renameat(n, b.as_ptr(), n, e.as_ptr()) } != 0 {
        die("renameat through O_PATH failed");
    }
    let c = cstr(&format!("/proc/{pid}/fd/{n}/c"));
    // SAFETY: valid path.
    if unsafe { libc::chmod(c.as_ptr(), 0o600) } != 0 {
        die("chmod through /proc/PID/fd failed");
    }
    println!("dirfd={n}");
}

/// utimensat with a time and UTIME_OMIT, utimes with NULL (now), and futimens with UTIME_NOW
/// and a time.
fn utimes_all(path: &str) {
    let p = cstr(path);
    let ts = |sec: i64, nsec: i64| libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    // SAFETY: valid path and time arrays; the descriptor is ours and closed below.
    unsafe {
        let t = [ts(1_000_000_000, 5), ts(0, libc::UTIME_OMIT)];
        if libc::utimensat(libc::AT_FDCWD, p.as_ptr(), t.as_ptr(), 0) != 0 {
            die("utimensat failed");
        }
        if libc::utimes(p.as_ptr(), std::ptr::null()) != 0 {
            die("utimes failed");
        }
        let fd = libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        let t = [ts(0, libc::UTIME_NOW), ts(2_000_000_000, 0)];
        if fd < 0 || libc::futimens(fd, t.as_ptr()) != 0 {
            die("futimens failed");
        }
        libc::close(fd);
    }
}

/// execveat(fd, "", argv, environ, AT_EMPTY_PATH); only returns on failure.
fn exec_fd(fd: i32, argv: &[String]) -> ! {
    let c: Vec<CString> = argv.iter().map(|s| cstr(s)).collect();
    let mut ptrs: Vec<*const libc::c_char> = c.iter().map(|s| s.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let empty = cstr("");
    unsafe extern "C" {
        static environ: *const *const libc::c_char;
    }
    // SAFETY: NUL-terminated argv array of valid strings; environ is the process environment.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            empty.as_ptr(),
            ptrs.as_ptr(),
            environ,
            libc::AT_EMPTY_PATH,
        )
    };
    die(&format!("execveat: {}", std::io::Error::last_os_error()))
}

/// Overwrite the argv strings in this process's memory (what /proc/PID/cmdline shows).
fn argv_rewrite(path: &str) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_else(|_| die("stat"));
    // Fields after the comm's closing parenthesis start at field 3; arg_start is field 48.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .unwrap_or_else(|| die("stat"));
    let f: Vec<&str> = rest.split_whitespace().collect();
    let start: usize = f[48 - 3].parse().unwrap_or_else(|_| die("arg_start"));
    let end: usize = f[49 - 3].parse().unwrap_or_else(|_| die("arg_end"));
    let fake = b"/usr/sbin/sshd -D";
    // SAFETY: [arg_start, arg_end) is this process's own writable argv area.
    unsafe {
        let area = std::slice::from_raw_parts_mut(start as *mut u8, end - start);
        area.fill(0);
        let n = fake.len().min(area.len() - 1);
        area[..n].copy_from_slice(&fake[..n]);
    }
    let now = std::fs::read("/proc/self/cmdline").unwrap_or_default();
    println!(
        "cmdline={}",
        String::from_utf8_lossy(&now)
            .trim_end_matches('\0')
            .replace('\0', " ")
    );
    if !open_close(&cstr(path)) {
        die("open failed");
    }
}

fn flip_open(secret: &str, decoy: &str, n: &str) {
    use std::os::unix::fs::MetadataExt as _;
    use std::sync::atomic::{AtomicBool, Ordering};
    let n: u64 = n.parse().unwrap_or_else(|_| die("bad N"));
    let secret_ino = std::fs::metadata(secret)
        .unwrap_or_else(|_| die("stat secret"))
        .ino();
    let (s, d) = (secret.as_bytes(), decoy.as_bytes());
    let len = s.len().max(d.len()) + 1;
    // One buffer, both paths NUL-padded to the same length; the flipper rewrites it in place.
    let buf: &'static mut [u8] = Box::leak(vec![0u8; len].into_boxed_slice());
    buf[..d.len()].copy_from_slice(d);
    let addr = buf.as_mut_ptr() as usize;
    static STOP: AtomicBool = AtomicBool::new(false);
    let (s2, d2) = (s.to_vec(), d.to_vec());
    let flipper = std::thread::spawn(move || {
        let mut i = 0u64;
        while !STOP.load(Ordering::Relaxed) {
            let src = if i.is_multiple_of(2) { &s2 } else { &d2 };
            let mut tmp = vec![0u8; len];
            tmp[..src.len()].copy_from_slice(src);
            // SAFETY: the buffer is leaked (lives forever); racing with open(2) is the point.
            unsafe { std::ptr::copy_nonoverlapping(tmp.as_ptr(), addr as *mut u8, len) };
            i += 1;
        }
    });
    let mut hits = 0u64;
    let mut other = 0u64;
    // SAFETY: `stat` is plain old data; all zeroes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let t = Instant::now();
    while hits < n && t.elapsed() < Duration::from_secs(10) {
        // SAFETY: the buffer always ends in NUL; its contents may change under us.
        let fd = unsafe {
            libc::open(
                addr as *const libc::c_char,
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: fd is ours.
            unsafe {
                if libc::fstat(fd, &mut st) == 0 && st.st_ino == secret_ino {
                    hits += 1;
                } else {
                    other += 1;
                }
                libc::close(fd);
            }
        }
    }
    STOP.store(true, Ordering::Relaxed);
    let _ = flipper.join();
    println!("secret={hits} decoy={other}");
}

fn secs(s: &str) -> Duration {
    Duration::from_secs_f64(s.parse().unwrap_or_else(|_| die("bad seconds")))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| -> &str {
        args.get(i)
            .map(String::as_str)
            .unwrap_or_else(|| die("missing argument"))
    };
    match a(0) {
        "open" => {
            if !open_close(&cstr(a(1))) {
                die("open failed");
            }
        }
        "create" => {
            let p = cstr(a(1));
            // SAFETY: valid path.
            let fd = unsafe {
                libc::open(
                    p.as_ptr(),
                    libc::O_CREAT | libc::O_TRUNC | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o600,
                )
            };
            if fd < 0 {
                die("create failed");
            }
            // SAFETY: fd is ours.
            unsafe { libc::close(fd) };
        }
        "uring-open" => uring_open(a(1)),
        "uring-paths" => uring_paths(a(1)),
        "uring-udp" => uring_udp(a(1), a(2)),
        "int80-net" => int80_net(a(1), a(2)),
        "uring-connect" => uring_connect(a(1), args.get(2).and_then(|n| n.parse().ok())),
        "kill-latency" => {
            // N times: a child writes CLOCK_MONOTONIC to a pipe and opens PATH; the parent
            // reads it and waits for the child. Prints one `ns` per child killed by SIGKILL.
            let path = CString::new(a(1)).unwrap_or_else(|_| die("bad path"));
            let n: usize = a(2).parse().unwrap_or_else(|_| die("bad N"));
            let mono = || {
                let mut ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: clock_gettime writes one timespec.
                unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
                ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
            };
            for _ in 0..n {
                let mut fds = [0i32; 2];
                // SAFETY: pipe writes two fds.
                if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
                    die("pipe");
                }
                // SAFETY: the child only writes, opens and exits.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    let t0 = mono().to_ne_bytes();
                    // SAFETY: writes 8 bytes from a local buffer; opens a NUL-terminated path.
                    unsafe {
                        libc::write(fds[1], t0.as_ptr().cast(), 8);
                        libc::open(path.as_ptr(), libc::O_RDONLY);
                        libc::_exit(0)
                    };
                }
                // SAFETY: closing our copy of the write end.
                unsafe { libc::close(fds[1]) };
                let mut t0 = [0u8; 8];
                // SAFETY: reads 8 bytes into a local buffer.
                unsafe { libc::read(fds[0], t0.as_mut_ptr().cast(), 8) };
                let mut st = 0;
                // SAFETY: waits for our own child.
                unsafe { libc::waitpid(pid, &mut st, 0) };
                let t1 = mono();
                // SAFETY: closing our read end.
                unsafe { libc::close(fds[0]) };
                if libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL {
                    println!("{}", t1.saturating_sub(u64::from_ne_bytes(t0)));
                }
            }
        }
        "egress-probe" => {
            // A TCP connect and a UDP send to ADDR; prints `tcp=ok|errno=N udp=ok|errno=N`.
            let shown = |r: std::io::Result<()>| match r {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("errno={}", e.raw_os_error().unwrap_or(-1)),
            };
            let to = addr(a(1));
            let tcp = TcpStream::connect_timeout(&to, Duration::from_secs(2)).map(drop);
            let any: std::net::SocketAddr = if to.is_ipv4() {
                "0.0.0.0:0".parse().unwrap_or_else(|_| die("addr"))
            } else {
                "[::]:0".parse().unwrap_or_else(|_| die("addr"))
            };
            let s = UdpSocket::bind(any).unwrap_or_else(|_| die("bind"));
            let udp = s.send_to(b"egress", to).map(drop);
            println!("tcp={} udp={}", shown(tcp), shown(udp));
        }
        "connect" => {
            let _ = TcpStream::connect_timeout(&addr(a(1)), Duration::from_secs(2));
        }
        "connect-unix" => {
            let _ = std::os::unix::net::UnixStream::connect(a(1));
        }
        "udp-connect" => {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap_or_else(|_| die("bind"));
            s.connect(addr(a(1))).unwrap_or_else(|_| die("udp connect"));
        }
        "listen-accept" => {
            let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|_| die("bind"));
            let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
            std::fs::write(a(1), port.to_string()).unwrap_or_else(|_| die("portfile"));
            if let Ok((mut s, peer)) = l.accept() {
                println!("peer={peer}");
                let _ = s.write_all(b"ok");
            }
        }
        "prctl-rename" => {
            let name = cstr(a(1));
            // SAFETY: PR_SET_NAME reads a NUL-terminated string.
            unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
            if !open_close(&cstr(a(2))) {
                die("open failed");
            }
        }
        "flood" => {
            let p = cstr(a(1));
            let n: u64 = a(2).parse().unwrap_or_else(|_| die("bad N"));
            let mut ok = 0;
            for _ in 0..n {
                ok += open_close(&p) as u64;
            }
            println!("opened={ok}");
        }
        "wait-open" => {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !std::path::Path::new(a(1)).exists() {
                if Instant::now() > deadline {
                    die("trigger never appeared");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !open_close(&cstr(a(2))) {
                die("open failed");
            }
        }
        "loop-open" => {
            let p = cstr(a(1));
            let d = secs(a(2));
            let t = Instant::now();
            let mut n = 0u64;
            while t.elapsed() < d {
                for _ in 0..256 {
                    open_close(&p);
                }
                n += 256;
            }
            println!("{} {n}", n as f64 / t.elapsed().as_secs_f64());
        }
        "loop-exec" => {
            let d = secs(a(1));
            let t = Instant::now();
            let mut n = 0u64;
            while t.elapsed() < d {
                let _ = std::process::Command::new("/bin/true").status();
                n += 1;
            }
            println!("{} {n}", n as f64 / t.elapsed().as_secs_f64());
        }
        "loop-connect" => {
            let port: u16 = a(1).parse().unwrap_or_else(|_| die("bad port"));
            let d = secs(a(2));
            let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let t = Instant::now();
            let mut n = 0u64;
            while t.elapsed() < d {
                if let Ok(mut s) = TcpStream::connect(target) {
                    // Reset instead of TIME_WAIT so the loop never runs out of ports.
                    let lg = libc::linger {
                        l_onoff: 1,
                        l_linger: 0,
                    };
                    // SAFETY: valid socket and option struct.
                    unsafe {
                        libc::setsockopt(
                            s.as_raw_fd(),
                            libc::SOL_SOCKET,
                            libc::SO_LINGER,
                            &lg as *const libc::linger as *const libc::c_void,
                            std::mem::size_of::<libc::linger>() as u32,
                        )
                    };
                    let mut b = [0u8; 1];
                    let _ = s.write_all(b"x");
                    let _ = s.read(&mut b);
                }
                n += 1;
            }
            println!("{} {n}", n as f64 / t.elapsed().as_secs_f64());
        }
        "fd-ops" => fd_ops(a(1), a(2), a(3), a(4)),
        "write-twice" => {
            let mut f = std::fs::File::create(a(1)).unwrap_or_else(|_| die("create"));
            f.write_all(b"hello").unwrap_or_else(|_| die("write"));
            f.write_all(b"abc").unwrap_or_else(|_| die("write"));
        }
        "sendto" => {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|_| die("bind"));
            let n: usize = a(2).parse().unwrap_or_else(|_| die("bad N"));
            let sent = s
                .send_to(&vec![b'x'; n], addr(a(1)))
                .unwrap_or_else(|e| die(&format!("sendto: {e}")));
            println!("sent={sent}");
        }
        "int80" => {
            let path = a(2).as_bytes();
            // SAFETY: a fresh anonymous mapping below 4 GiB, so 32-bit syscalls can address it.
            let page = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    4096 + path.len(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                    -1,
                    0,
                )
            };
            if page == libc::MAP_FAILED {
                die("mmap MAP_32BIT failed");
            }
            let buf = page as *mut u8;
            // SAFETY: the mapping is 4096 + len bytes; the path and its NUL fit from offset 16.
            unsafe {
                std::ptr::copy_nonoverlapping(path.as_ptr(), buf.add(16), path.len());
                *buf.add(16 + path.len()) = 0;
            }
            let p = buf as u64 + 16;
            match a(1) {
                "open" => {
                    let fd = int80(5, p, libc::O_RDONLY as u64, 0);
                    if fd < 0 {
                        die(&format!("int80 open: {fd}"));
                    }
                    let n = int80(3, fd as u64, buf as u64, 1);
                    // SAFETY: the read wrote at most one byte at `buf`.
                    let b = unsafe { *buf };
                    int80(6, fd as u64, 0, 0);
                    println!("fd={fd} byte={}", if n == 1 { b as char } else { '?' });
                }
                "unlink" => {
                    let r = int80(10, p, 0, 0);
                    if r != 0 {
                        die(&format!("int80 unlink: {r}"));
                    }
                    println!("unlinked");
                }
                "mmap-exec" => {
                    // The old ia32 mmap takes its six arguments as 32-bit words in memory.
                    let c = cstr(a(2));
                    // SAFETY: a valid path; the descriptor stays open for the mapping.
                    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                    if fd < 0 {
                        die("open failed");
                    }
                    let args: [u32; 6] =
                        [0, 4096, 5 /* PROT_READ|PROT_EXEC */, 2, fd as u32, 0];
                    // SAFETY: 24 bytes at offset 2048 of the 4096 + len mapping.
                    unsafe {
                        std::ptr::copy_nonoverlapping(args.as_ptr(), buf.add(2048) as *mut u32, 6)
                    };
                    let r = int80(90, buf as u64 + 2048, 0, 0);
                    if (r as u32) >= 0xffff_f000 {
                        die(&format!("int80 old mmap: {r}"));
                    }
                    println!("mapped");
                }
                _ => die("int80 open|unlink|mmap-exec PATH"),
            }
        }
        "tcp-xfer" => {
            let n: usize = a(2).parse().unwrap_or_else(|_| die("bad N"));
            let secs: u64 = a(3).parse().unwrap_or_else(|_| die("bad SECS"));
            let mut c =
                TcpStream::connect(addr(a(1))).unwrap_or_else(|e| die(&format!("connect: {e}")));
            let chunks = secs.max(1) as usize;
            let mut sent = 0;
            for i in 0..chunks {
                let len = if i + 1 == chunks {
                    n - sent
                } else {
                    n / chunks
                };
                c.write_all(&vec![b'u'; len])
                    .unwrap_or_else(|e| die(&format!("send: {e}")));
                sent += len;
                if secs > 0 {
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            c.shutdown(std::net::Shutdown::Write)
                .unwrap_or_else(|e| die(&format!("shutdown: {e}")));
            let mut got = Vec::new();
            c.read_to_end(&mut got)
                .unwrap_or_else(|e| die(&format!("recv: {e}")));
            drop(c);
            println!("sent={sent} received={}", got.len());
        }
        "dns" => {
            let qtype: u16 = a(3).parse().unwrap_or_else(|_| die("bad qtype"));
            let s = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|_| die("bind"));
            let q = dns_query(a(2), qtype);
            let sent = s
                .send_to(&q, addr(a(1)))
                .unwrap_or_else(|e| die(&format!("sendto: {e}")));
            println!("sent={sent}");
        }
        "setresuid" => {
            let uid: u32 = a(1).parse().unwrap_or_else(|_| die("bad uid"));
            // SAFETY: plain syscall.
            if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
                die("setresuid failed");
            }
            if !open_close(&cstr("/proc/self/status")) {
                die("open failed");
            }
        }
        "ptrace" => ptrace(a(1), a(2)),
        "vm-target" => {
            static BUF: std::sync::Mutex<[u8; 16]> = std::sync::Mutex::new([0; 16]);
            let addr = BUF.lock().map(|b| b.as_ptr() as usize).unwrap_or(0);
            println!("{} {addr}", std::process::id());
            let _ = std::io::stdout().flush();
            std::thread::sleep(secs(a(1)));
            println!("{:?}", BUF.lock().map(|b| b.to_vec()).unwrap_or_default());
        }
        "vm-write" => {
            let pid: i32 = a(1).parse().unwrap_or_else(|_| die("bad pid"));
            let at: usize = a(2).parse().unwrap_or_else(|_| die("bad addr"));
            let data = *b"pwnd";
            let local = libc::iovec {
                iov_base: data.as_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            };
            let remote = libc::iovec {
                iov_base: at as *mut libc::c_void,
                iov_len: data.len(),
            };
            // SAFETY: both iovecs describe valid buffers of the given lengths.
            let n = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
            if n != 4 {
                die(&format!(
                    "process_vm_writev: {n} {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
        "bpf-load" => bpf_load(a(1)),
        "bpf-tamper" => {
            bpf_tamper(a(1));
        }
        "bpf-tamper-open" => bpf_tamper_then_open(a(1)),
        "bpf-delete" => bpf_delete(
            a(1),
            a(2),
            &a(3)
                .parse::<u32>()
                .unwrap_or_else(|_| die("bad key"))
                .to_ne_bytes(),
        ),
        "bpf-delete2" => {
            let n = |s: &str| s.parse::<u64>().unwrap_or_else(|_| die("bad key"));
            let mut key = n(a(3)).to_ne_bytes().to_vec();
            key.extend_from_slice(&n(a(4)).to_ne_bytes());
            bpf_delete(a(1), a(2), &key)
        }
        "bpf-enum" => println!("map_ids={}", bpf_map_ids().len()),
        "bpf-obj-get" => bpf_obj_get(a(1)),
        "atomic-replace" => atomic_replace(a(1)),
        "utimes" => utimes_all(a(1)),
        "finit-module" => {
            let f = std::fs::File::open(a(1)).unwrap_or_else(|_| die("open"));
            let empty = cstr("");
            // SAFETY: valid fd and NUL-terminated parameter string.
            let r =
                unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), empty.as_ptr(), 0) };
            println!("finit_module={r} {}", std::io::Error::last_os_error());
        }
        "memfd-exec" => {
            let name = cstr(a(1));
            // SAFETY: valid name.
            let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
            if fd < 0 {
                die("memfd_create");
            }
            let bytes = std::fs::read(a(2)).unwrap_or_else(|_| die("read PROG"));
            // SAFETY: fd is ours; the File takes it over.
            let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            f.write_all(&bytes).unwrap_or_else(|_| die("write memfd"));
            exec_fd(f.as_raw_fd(), &args[3..]);
        }
        "exec-deleted" => {
            let f = std::fs::File::open(a(1)).unwrap_or_else(|_| die("open"));
            std::fs::remove_file(a(1)).unwrap_or_else(|_| die("unlink"));
            exec_fd(f.as_raw_fd(), &args[2..]);
        }
        "argv-rewrite" => argv_rewrite(a(1)),
        "flip-open" => flip_open(a(1), a(2), a(3)),
        other => die(&format!("unknown workload `{other}`")),
    }
}
