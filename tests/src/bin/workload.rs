//! Workloads the sensor tests and benchmarks run inside (or outside) agent sessions. Each
//! subcommand does one real thing through the kernel and prints what a test needs to know.
//!
//! ```text
//! workload open PATH                  open(2) read-only, then close
//! workload create PATH                open(O_CREAT|O_TRUNC|O_WRONLY)
//! workload uring-open PATH            IORING_OP_OPENAT, then read through io_uring
//! workload uring-connect HOST:PORT    IORING_OP_CONNECT (TCP)
//! workload connect HOST:PORT          connect(2) TCP
//! workload connect-unix PATH          connect(2) AF_UNIX stream
//! workload udp-connect HOST:PORT      connect(2) UDP
//! workload listen-accept PORTFILE     listen on 127.0.0.1:0, write the port to PORTFILE, accept one
//! workload prctl-rename NAME PATH     PR_SET_NAME then open PATH
//! workload flood PATH N               open+close PATH N times
//! workload wait-open TRIGGER PATH     wait until TRIGGER exists, then open PATH
//! workload loop-open PATH SECS        open+close loop for SECS, prints ops
//! workload loop-exec SECS             fork+exec /bin/true loop for SECS, prints ops
//! workload loop-connect PORT SECS     loopback connect loop for SECS, prints ops
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

fn uring_connect(target: &str) {
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
        "uring-connect" => uring_connect(a(1)),
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
            println!("{}", n as f64 / t.elapsed().as_secs_f64());
        }
        "loop-exec" => {
            let d = secs(a(1));
            let t = Instant::now();
            let mut n = 0u64;
            while t.elapsed() < d {
                let _ = std::process::Command::new("/bin/true").status();
                n += 1;
            }
            println!("{}", n as f64 / t.elapsed().as_secs_f64());
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
            println!("{}", n as f64 / t.elapsed().as_secs_f64());
        }
        other => die(&format!("unknown workload `{other}`")),
    }
}
