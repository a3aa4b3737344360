//! One file because it is one test target per issue (one binary to build and run); each test
//! is independent and named for the behaviour it protects.
//!
//! Sensor coverage end-to-end tests (issue 3): every new event kind from a real workload inside an
//! agent session with its key fields, the same workloads outside any session producing nothing,
//! and the evasions an adversarial agent tries. Root and BTF required; without them each test
//! says why and skips.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use agent_model::{Event, Kind};
use tests::{Daemon, in_session, real_exe, require_sensor, workload};

fn w() -> String {
    workload().display().to_string()
}

fn tmpdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("aw-cov-")
        .tempdir()
        .unwrap()
}

/// A fresh directory as the kernel names it (symlinks resolved).
fn real(t: &tempfile::TempDir) -> PathBuf {
    t.path().canonicalize().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Events of `kind` in session `sid`.
fn of<'a>(evs: &'a [Event], sid: &str, k: Kind) -> Vec<&'a Event> {
    in_session(evs, sid)
        .into_iter()
        .filter(|e| e.kind() == k)
        .collect()
}

fn path_of(e: &Event) -> String {
    e.file
        .as_ref()
        .map(|f| f.path.to_str_lossy().into_owned())
        .unwrap_or_default()
}

fn target_of(e: &Event) -> String {
    e.file
        .as_ref()
        .and_then(|f| f.target.as_ref())
        .map(|t| t.to_str_lossy().into_owned())
        .unwrap_or_default()
}

fn args_of(e: &Event) -> Vec<String> {
    e.process
        .args
        .iter()
        .map(|a| a.to_str_lossy().into_owned())
        .collect()
}

/// The one event of `kind` in the session whose file path is `path`.
fn file_ev<'a>(evs: &'a [Event], sid: &str, k: Kind, path: &Path) -> &'a Event {
    let v: Vec<_> = of(evs, sid, k)
        .into_iter()
        .filter(|e| path_of(e) == s(path))
        .collect();
    assert_eq!(
        v.len(),
        1,
        "{} of {}: {v:?}\nall of that kind: {:?}",
        k.name(),
        path.display(),
        of(evs, sid, k)
    );
    v[0]
}

fn has_file(evs: &[Event], sid: &str, k: Kind, path: &Path) -> bool {
    of(evs, sid, k).iter().any(|e| path_of(e) == s(path))
}

/// Wait until the session has ended (every process exited), so all its events are in.
fn ended(d: &Daemon, sid: &str) -> Vec<Event> {
    d.wait_for("session end", |e| {
        e.iter()
            .any(|e| e.kind() == Kind::SessionEnd && e.session_id() == Some(sid))
    })
    .unwrap()
}

fn run_ok(d: &Daemon, agent: &str, script: &str) -> String {
    let (out, sid) = d.run(agent, &["/bin/sh", "-c", script]).unwrap();
    assert!(
        out.status.success(),
        "{script}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    sid
}

fn run_out(d: &Daemon, agent: &str, script: &str) -> (String, String) {
    let (out, sid) = d.run(agent, &["/bin/sh", "-c", script]).unwrap();
    assert!(
        out.status.success(),
        "{script}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), sid)
}

/// A process outside any session, killed on drop.
struct Outside(std::process::Child);

impl Outside {
    fn sleep() -> Outside {
        Outside(Command::new("/bin/sleep").arg("30").spawn().unwrap())
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory anyone may write to (mode 1777, like /tmp), for writable-dir markers.
fn world_writable(t: &tempfile::TempDir) -> PathBuf {
    let d = real(t).join("ww");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).unwrap();
    d
}

#[test]
fn chmod_chown_link_symlink_mkdir_truncate_report_paths_and_values() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let dir = real(&t);
    let script = format!(
        "cd {d} && echo x > f && chmod 4751 f && chown 65534:65533 f && chown :65532 f \
         && ln f hard && ln -s f soft && mkdir sub && truncate -s 123 f \
         && perl -e 'truncate(\"{d}/f\", 7) or die'",
        d = dir.display()
    );
    let sid = run_ok(&d, "t-fileops", &script);
    let f = dir.join("f");
    let evs = ended(&d, &sid);

    let c = file_ev(&evs, &sid, Kind::FileChmod, &f);
    assert_eq!(c.file.as_ref().unwrap().mode, Some(0o4751));
    assert_eq!(c.process.exe.to_str_lossy(), real_exe("chmod"));

    let owners: Vec<_> = of(&evs, &sid, Kind::FileChown)
        .into_iter()
        .filter(|e| path_of(e) == s(&f))
        .map(|e| {
            let f = e.file.as_ref().unwrap();
            (f.owner_uid, f.owner_gid)
        })
        .collect();
    assert_eq!(
        owners,
        vec![(Some(65534), Some(65533)), (None, Some(65532))],
        "chown u:g, then :g only (uid -1 is not reported as an owner)"
    );

    let l = file_ev(&evs, &sid, Kind::FileLink, &dir.join("hard"));
    assert_eq!(target_of(l), s(&f));
    let sl = file_ev(&evs, &sid, Kind::FileSymlink, &dir.join("soft"));
    assert_eq!(target_of(sl), "f", "a symlink's target is its text");
    let m = file_ev(&evs, &sid, Kind::FileMkdir, &dir.join("sub"));
    assert_eq!(m.file.as_ref().unwrap().mode, Some(0o777));

    // truncate(1) uses ftruncate on a descriptor; perl's truncate(FILENAME) uses truncate(2).
    let sizes: Vec<_> = of(&evs, &sid, Kind::FileTruncate)
        .into_iter()
        .filter(|e| path_of(e) == s(&f))
        .map(|e| e.file.as_ref().unwrap().size)
        .collect();
    assert_eq!(sizes, vec![Some(123), Some(7)]);
}

#[test]
fn fchmod_fchown_ftruncate_take_the_path_from_the_descriptor() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let f = real(&t).join("data.bin");
    std::fs::write(&f, vec![0u8; 4096]).unwrap();
    let md = std::fs::metadata(&f).unwrap();
    let sid = run_ok(
        &d,
        "t-fdops",
        &format!("{} fd-ops {} 1234 4321 99", w(), f.display()),
    );
    let evs = ended(&d, &sid);
    let c = file_ev(&evs, &sid, Kind::FileChmod, &f);
    assert_eq!(c.file.as_ref().unwrap().mode, Some(0o640));
    assert_eq!(c.file.as_ref().unwrap().ino, Some(md.ino()));
    let o = file_ev(&evs, &sid, Kind::FileChown, &f);
    assert_eq!(o.file.as_ref().unwrap().owner_uid, Some(1234));
    assert_eq!(o.file.as_ref().unwrap().owner_gid, Some(4321));
    let tr = file_ev(&evs, &sid, Kind::FileTruncate, &f);
    assert_eq!(tr.file.as_ref().unwrap().size, Some(99));
    let st = std::fs::metadata(&f).unwrap();
    assert_eq!((st.uid(), st.gid(), st.len()), (1234, 4321, 99));
}

#[test]
fn only_the_first_write_of_a_process_to_a_file_is_reported() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let f = real(&t).join("out.txt");
    let g = real(&t).join("other.txt");
    let script = format!(
        "{wl} write-twice {f} && {wl} write-twice {g} && {wl} write-twice {f}",
        wl = w(),
        f = f.display(),
        g = g.display()
    );
    let sid = run_ok(&d, "t-write", &script);
    let evs = ended(&d, &sid);
    let wf: Vec<_> = of(&evs, &sid, Kind::FileWrite)
        .into_iter()
        .filter(|e| path_of(e) == s(&f))
        .collect();
    // Two processes wrote twice each to f: one event per process, with the first write's size.
    assert_eq!(wf.len(), 2, "{wf:?}");
    assert_ne!(wf[0].process.pid, wf[1].process.pid);
    for e in &wf {
        assert_eq!(e.file.as_ref().unwrap().size, Some(5));
        assert_eq!(
            e.process.exe.to_str_lossy(),
            s(&workload().canonicalize().unwrap())
        );
    }
    let wg = file_ev(&evs, &sid, Kind::FileWrite, &g);
    assert_eq!(wg.file.as_ref().unwrap().size, Some(5));
    // Writes to pipes and terminals are not file writes.
    assert!(
        of(&evs, &sid, Kind::FileWrite)
            .iter()
            .all(|e| path_of(e) == s(&f) || path_of(e) == s(&g)),
        "{:?}",
        of(&evs, &sid, Kind::FileWrite)
    );
}

#[test]
fn ld_preload_library_in_a_writable_dir_is_an_executable_mapping() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let ww = world_writable(&t);
    let src = real(&t).join("evil.c");
    std::fs::write(
        &src,
        "__attribute__((constructor)) static void aw_init(void) {}\n",
    )
    .unwrap();
    let so = ww.join("evil.so");
    let st = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success(), "cc failed");
    let script = format!("LD_PRELOAD={} /bin/true", so.display());
    let sid = run_ok(&d, "t-preload", &script);
    let evs = ended(&d, &sid);
    let m = file_ev(&evs, &sid, Kind::FileMmapExec, &so);
    let f = m.file.as_ref().unwrap();
    assert!(
        f.markers.iter().any(|x| x == "writable_dir"),
        "{:?}",
        f.markers
    );
    assert_eq!(m.process.exe.to_str_lossy(), real_exe("true"));
    // libc and the loader are mapped executable by every process: not from a writable dir.
    let maps = of(&evs, &sid, Kind::FileMmapExec);
    assert_eq!(maps.len(), 1, "only the preloaded library: {maps:?}");
}

/// A loopback UDP socket that receives what the workloads send, and its port.
fn udp_sink() -> (std::net::UdpSocket, u16) {
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port();
    (sink, port)
}

/// The session's only `net.dns` event: a TXT question for `qname` sent over UDP to
/// 127.0.0.1:53.
fn the_dns_question<'a>(evs: &'a [Event], sid: &str, qname: &str) -> &'a Event {
    let dns = of(evs, sid, Kind::NetDns);
    assert_eq!(dns.len(), 1, "{dns:?}");
    let q = dns[0].dns.as_ref().unwrap();
    assert_eq!(q.qname.to_str_lossy(), qname);
    assert_eq!(q.qtype, "TXT");
    let n = dns[0].net.as_ref().unwrap();
    assert_eq!(n.dst_port, Some(53));
    assert_eq!(n.dst_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(n.protocol.as_deref(), Some("udp"));
    dns[0]
}

#[test]
fn udp_sendto_without_connect_and_dns_questions() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let (sink, port) = udp_sink();
    let script = format!(
        "{wl} sendto 127.0.0.1:{port} 37 && {wl} dns 127.0.0.1:53 exfil.aw-test.example 16",
        wl = w()
    );
    let sid = run_ok(&d, "t-udp", &script);
    let evs = ended(&d, &sid);
    let sends: Vec<_> = of(&evs, &sid, Kind::NetSend)
        .into_iter()
        .filter(|e| e.net.as_ref().unwrap().dst_port == Some(port))
        .collect();
    assert_eq!(sends.len(), 1, "{sends:?}");
    let n = sends[0].net.as_ref().unwrap();
    assert_eq!(n.dst_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(n.bytes, Some(37));
    assert_eq!(n.family, "ipv4");
    assert_eq!(n.protocol.as_deref(), Some("udp"));
    let mut buf = [0u8; 64];
    assert_eq!(sink.recv(&mut buf).unwrap(), 37, "the datagram really went");

    the_dns_question(&evs, &sid, "exfil.aw-test.example");
}

/// A loopback TCP server that reads each connection to EOF, then answers `reply` bytes and
/// closes. Returns its port.
fn tcp_sink(reply: usize) -> u16 {
    use std::io::{Read as _, Write as _};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut sink = Vec::new();
                let _ = c.read_to_end(&mut sink);
                let _ = c.write_all(&vec![b'd'; reply]);
            });
        }
    });
    port
}

fn flows_to(evs: &[Event], sid: &str, port: u16, proto: &str) -> Vec<Event> {
    of(evs, sid, Kind::NetFlow)
        .into_iter()
        .filter(|e| {
            let n = e.net.as_ref().unwrap();
            n.protocol.as_deref() == Some(proto) && (n.dst_port == Some(port) || proto == "udp")
        })
        .cloned()
        .collect()
}

#[test]
fn per_connection_byte_counts_at_close_periodically_and_at_exit() {
    require_sensor!();
    let cfg = "[daemon]\nflow_report_secs = 1\n";
    let d = Daemon::start_with(Some(cfg), &[]).unwrap();
    let short = tcp_sink(50_000);
    let long = tcp_sink(7);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let uport = udp.local_addr().unwrap().port();
    let script = format!(
        "{wl} tcp-xfer 127.0.0.1:{short} 100000 0 && {wl} tcp-xfer 127.0.0.1:{long} 3000 3 \
         && {wl} sendto 127.0.0.1:{uport} 37",
        wl = w()
    );
    let (out, sid) = run_out(&d, "t-flow", &script);
    assert!(out.contains("sent=100000 received=50000"), "{out}");
    assert!(out.contains("sent=3000 received=7"), "{out}");
    // UDP has no close: its final report follows the owner's exit within a scan period.
    let evs = d
        .wait_for("udp flow exit report", |e| {
            !flows_to(e, &sid, uport, "udp").is_empty()
        })
        .unwrap();

    // A short connection: one report, at close, with both directions exact.
    let f = flows_to(&evs, &sid, short, "tcp");
    assert_eq!(f.len(), 1, "{f:?}");
    let n = f[0].net.as_ref().unwrap();
    assert_eq!(n.flow_state.as_deref(), Some("close"));
    assert_eq!((n.bytes, n.bytes_received), (Some(100_000), Some(50_000)));
    assert_eq!(n.dst_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(n.src_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(n.family, "ipv4");
    assert!(f[0].process.exe.to_str_lossy().ends_with("/workload"));

    // A connection open for ~3 s with the report period at 1 s: updates with growing totals,
    // then the close with the final ones.
    let f = flows_to(&evs, &sid, long, "tcp");
    let states: Vec<_> = f
        .iter()
        .map(|e| e.net.as_ref().unwrap().flow_state.clone().unwrap())
        .collect();
    assert!(states.iter().any(|s| s == "update"), "{states:?}");
    assert_eq!(
        states.last().map(String::as_str),
        Some("close"),
        "{states:?}"
    );
    let sent: Vec<u64> = f
        .iter()
        .map(|e| e.net.as_ref().unwrap().bytes.unwrap())
        .collect();
    assert!(sent.windows(2).all(|w| w[0] <= w[1]), "{sent:?}");
    assert!(
        sent[0] < 3000,
        "the first update came before the end: {sent:?}"
    );
    let last = f.last().unwrap().net.as_ref().unwrap();
    assert_eq!((last.bytes, last.bytes_received), (Some(3000), Some(7)));
    assert!(last.flow_ms.unwrap() >= 1500, "{last:?}");

    // UDP: the owner exited, so the final report says `exit`.
    let f = flows_to(&evs, &sid, uport, "udp");
    assert_eq!(f.len(), 1, "{f:?}");
    let n = f[0].net.as_ref().unwrap();
    assert_eq!(n.flow_state.as_deref(), Some("exit"));
    assert_eq!((n.bytes, n.bytes_received), (Some(37), Some(0)));
}

#[test]
fn evasion_io_uring_send_is_counted_in_the_flow() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let port = tcp_sink(0);
    let (out, sid) = run_out(
        &d,
        "t-uring-send",
        &format!("{} uring-connect 127.0.0.1:{port} 4321", w()),
    );
    assert!(out.contains("sent=4321"), "{out}");
    let evs = d
        .wait_for("io_uring flow", |e| {
            !flows_to(e, &sid, port, "tcp").is_empty()
        })
        .unwrap();
    let f = flows_to(&evs, &sid, port, "tcp");
    assert_eq!(f.len(), 1, "{f:?}");
    let n = f[0].net.as_ref().unwrap();
    assert_eq!(n.bytes, Some(4321));
    assert_eq!(n.bytes_received, Some(0));
    let connects: Vec<_> = of(&evs, &sid, Kind::NetConnect)
        .into_iter()
        .filter(|e| e.net.as_ref().unwrap().dst_port == Some(port))
        .collect();
    assert_eq!(connects.len(), 1, "{connects:?}");
}

#[test]
fn evasion_32bit_socketcall_sendmsg_and_sendmmsg_are_seen_with_their_destination() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let (sink, port) = udp_sink();
    let (out, sid) = run_out(
        &d,
        "t-int80-net",
        &format!("{} int80-net 127.0.0.1:{port} compat.aw-test.example", w()),
    );
    for step in [
        "sc-sendto=23",
        "sendmsg=29",
        "sc-sendmsg=31",
        "sendmmsg=1",
        "sc-sendmmsg=1",
        "sc-connect=0",
    ] {
        assert!(out.contains(step), "{step}: {out}");
    }
    let mut buf = [0u8; 64];
    for n in [23, 29, 31, 33, 35] {
        assert_eq!(sink.recv(&mut buf).unwrap(), n, "the datagrams really went");
    }
    let evs = ended(&d, &sid);
    let mut bytes: Vec<u64> = of(&evs, &sid, Kind::NetSend)
        .into_iter()
        .filter_map(|e| {
            let n = e.net.as_ref().unwrap();
            assert_eq!(n.protocol.as_deref(), Some("udp"));
            (n.dst_port == Some(port) && n.dst_ip == Some("127.0.0.1".parse().unwrap()))
                .then_some(n.bytes.unwrap())
        })
        .collect();
    bytes.sort();
    assert_eq!(bytes, [23, 29, 31, 33, 35], "{evs:?}");
    the_dns_question(&evs, &sid, "compat.aw-test.example");
    let connects: Vec<_> = of(&evs, &sid, Kind::NetConnect)
        .into_iter()
        .filter(|e| e.net.as_ref().unwrap().dst_port == Some(port))
        .collect();
    assert_eq!(connects.len(), 1, "{connects:?}");
    assert_eq!(
        connects[0].net.as_ref().unwrap().protocol.as_deref(),
        Some("udp")
    );
}

#[test]
fn evasion_io_uring_udp_sends_and_dns_are_seen_with_their_destination() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let (sink, port) = udp_sink();
    let (out, sid) = run_out(
        &d,
        "t-uring-udp",
        &format!("{} uring-udp 127.0.0.1:{port} ring.aw-test.example", w()),
    );
    for step in ["sendmsg=37", "send=41", "send6=-97", "dns="] {
        assert!(out.contains(step), "{step}: {out}");
    }
    let mut buf = [0u8; 64];
    assert_eq!(
        sink.recv(&mut buf).unwrap(),
        37,
        "the sendmsg datagram really went"
    );
    assert_eq!(
        sink.recv(&mut buf).unwrap(),
        41,
        "the send datagram really went"
    );
    let evs = ended(&d, &sid);
    let mut sends: Vec<_> = of(&evs, &sid, Kind::NetSend)
        .into_iter()
        .filter(|e| e.net.as_ref().unwrap().dst_port == Some(port))
        .collect();
    sends.sort_by_key(|e| e.net.as_ref().unwrap().bytes);
    // The refused IPv6 send is not reported, as a failed sendto(2) is not.
    assert_eq!(sends.len(), 2, "{sends:?}");
    for (e, bytes) in sends.iter().zip([37, 41]) {
        let n = e.net.as_ref().unwrap();
        assert_eq!(n.bytes, Some(bytes));
        assert_eq!(n.dst_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(n.protocol.as_deref(), Some("udp"));
        assert_eq!(n.via.as_deref(), Some("io_uring"));
        let exe = std::fs::canonicalize(w()).unwrap();
        assert_eq!(e.process.exe.to_str_lossy(), s(&exe));
    }
    let q = the_dns_question(&evs, &sid, "ring.aw-test.example");
    assert_eq!(q.net.as_ref().unwrap().via.as_deref(), Some("io_uring"));
}

#[test]
fn evasion_io_uring_mkdir_symlink_link_rename_unlink_are_seen_with_full_paths() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let dir = real(&t);
    let (out, sid) = run_out(
        &d,
        "t-uring-paths",
        &format!("{} uring-paths {}", w(), dir.display()),
    );
    for step in [
        "mkdirat=0",
        "symlinkat=0",
        "linkat=0",
        "renameat=0",
        "unlinkat=0",
        "unlinkat-missing=-2",
    ] {
        assert!(out.contains(step), "{step}: {out}");
    }
    let evs = ended(&d, &sid);
    let via = |e: &Event| {
        e.file
            .as_ref()
            .and_then(|f| f.via.clone())
            .unwrap_or_default()
    };

    // Names are relative to a descriptor of the directory: the events carry the whole path.
    let m = file_ev(&evs, &sid, Kind::FileMkdir, &dir.join("sub"));
    assert_eq!(m.file.as_ref().unwrap().mode, Some(0o750));
    assert_eq!(via(m), "io_uring");
    let sl = file_ev(&evs, &sid, Kind::FileSymlink, &dir.join("sub/link"));
    assert_eq!(target_of(sl), "/etc/hostname");
    let l = file_ev(&evs, &sid, Kind::FileLink, &dir.join("sub/hard"));
    assert_eq!(target_of(l), s(&dir.join("f")));
    let r = file_ev(&evs, &sid, Kind::FileRename, &dir.join("f"));
    assert_eq!(target_of(r), s(&dir.join("g")));
    let u = file_ev(&evs, &sid, Kind::FileUnlink, &dir.join("g"));
    assert_eq!(via(u), "io_uring");
    // The header is the submitting thread's: the agent's own process, not an io-wq worker.
    assert!(u.process.exe.to_str_lossy().ends_with("/workload"), "{u:?}");
    // A failed operation is not reported, as with the syscalls.
    assert!(!has_file(
        &evs,
        &sid,
        Kind::FileUnlink,
        &dir.join("missing")
    ));
}

#[test]
fn setresuid_and_a_setuid_exec_are_privilege_changes() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let dir = real(&t);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let suid = dir.join("aw-suid");
    std::fs::copy(workload(), &suid).unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let script = format!(
        "{wl} setresuid 65534 && setpriv --reuid=65534 --regid=65534 --clear-groups {suid} open /proc/self/status \
         && setpriv --inh-caps=-all /bin/true && su -s /bin/true nobody",
        wl = w(),
        suid = suid.display()
    );
    let sid = run_ok(&d, "t-priv", &script);
    let evs = ended(&d, &sid);
    let p = of(&evs, &sid, Kind::PrivChange);
    let ops: Vec<_> = p
        .iter()
        .map(|e| {
            let r = e.r#priv.as_ref().unwrap();
            (r.op.as_str(), r.uid, r.euid, e.process.exe.to_str_lossy())
        })
        .collect();
    let wl_exe = workload().canonicalize().unwrap();
    // The workload dropping to nobody.
    assert!(
        ops.contains(&("setresuid", 65534, 65534, wl_exe.to_string_lossy())),
        "{ops:?}"
    );
    // setpriv dropping to nobody, then nobody exec'ing a setuid-root binary.
    assert!(
        ops.iter()
            .any(|o| o.0 == "setresuid" && o.1 == 65534 && o.3 == "/usr/bin/setpriv"),
        "{ops:?}"
    );
    // Capabilities changed by capset(2).
    assert!(
        ops.iter()
            .any(|o| o.0 == "capset" && o.1 == 0 && o.3 == "/usr/bin/setpriv"),
        "{ops:?}"
    );
    // su's child becoming nobody.
    assert!(
        ops.iter().any(|o| o.0.starts_with("set")
            && o.1 == 65534
            && o.2 == 65534
            && o.3 == "/usr/bin/su"),
        "{ops:?}"
    );
    let ex: Vec<_> = p
        .iter()
        .filter(|e| e.r#priv.as_ref().unwrap().op == "exec")
        .collect();
    assert_eq!(ex.len(), 1, "{ops:?}");
    let r = ex[0].r#priv.as_ref().unwrap();
    assert_eq!((r.uid, r.euid), (65534, 0));
    assert_eq!(ex[0].process.exe.to_str_lossy(), s(&suid));
}

#[test]
fn ptrace_and_process_vm_writev_of_an_outside_process() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let victim = Outside::sleep();
    let mut vm = Command::new(w())
        .args(["vm-target", "5"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(vm.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let (vpid, vaddr) = line.trim().split_once(' ').unwrap();
    let script = format!(
        "{wl} ptrace seize {v} && {wl} ptrace attach {v} && {wl} vm-write {vpid} {vaddr}",
        wl = w(),
        v = victim.pid()
    );
    let sid = run_ok(&d, "t-ptrace", &script);
    let evs = ended(&d, &sid);
    let pt = of(&evs, &sid, Kind::ProcessPtrace);
    let got: Vec<_> = pt
        .iter()
        .map(|e| {
            let t = e.target.as_ref().unwrap();
            (
                e.op.as_ref().unwrap().name.as_str(),
                t.pid,
                t.relation.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("PTRACE_SEIZE", victim.pid(), "outside"),
            ("PTRACE_ATTACH", victim.pid(), "outside"),
            ("process_vm_writev", vpid.parse().unwrap(), "outside"),
        ]
    );
    assert_eq!(
        pt[0].target.as_ref().unwrap().exe.to_str_lossy(),
        real_exe("sleep")
    );
    let out = vm.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("[112, 119, 110, 100"),
        "the write really happened"
    );
}

#[test]
fn bpf_program_load_and_a_refused_module_load_attempt_are_reported() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let bogus = real(&t).join("bogus.ko");
    std::fs::write(&bogus, b"not an ELF module").unwrap();
    let script = format!(
        "{wl} bpf-load aw_probe && {wl} finit-module {b}",
        wl = w(),
        b = bogus.display()
    );
    let (out, sid) = run_out(&d, "t-bpf", &script);
    assert!(out.contains("prog_fd="), "{out}");
    assert!(
        out.contains("finit_module=-1"),
        "the bogus load fails: {out}"
    );
    let evs = ended(&d, &sid);
    let b = of(&evs, &sid, Kind::KernelBpf);
    assert_eq!(b.len(), 1, "{b:?}");
    let op = b[0].op.as_ref().unwrap();
    assert_eq!(op.name, "bpf_prog_load");
    assert_eq!(op.r#type.as_deref(), Some("socket_filter"));
    assert_eq!(
        op.object.as_ref().map(|o| o.to_str_lossy().into_owned()),
        Some("aw_probe".into())
    );
    assert!(op.result.unwrap() >= 0, "{op:?}");
    // The file is no module (and the CI kernel has no module support at all), so the kernel
    // refuses it: the attempt is reported with that refusal and the file named from its
    // descriptor.
    let m = of(&evs, &sid, Kind::KernelModule);
    assert_eq!(m.len(), 1, "{m:?}");
    let op = m[0].op.as_ref().unwrap();
    assert_eq!(op.name, "finit_module");
    assert_eq!(
        op.object.as_ref().map(|o| o.to_str_lossy().into_owned()),
        Some(s(&bogus).to_owned())
    );
    assert!(op.result.unwrap() < 0, "{op:?}");
    let errno = -op.result.unwrap();
    assert!(
        out.contains(&std::io::Error::from_raw_os_error(errno as i32).to_string()),
        "the event's result is the errno the caller saw: {op:?} / {out}"
    );
}

#[test]
fn unshare_and_mounts_in_a_user_namespace_and_reading_through_a_bind_mount() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let dir = real(&t);
    let secret = dir.join("secret.key");
    std::fs::write(&secret, "KEY").unwrap();
    let decoy = dir.join("readme.txt");
    std::fs::write(&decoy, "hello").unwrap();
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let ino = std::fs::metadata(&secret).unwrap().ino();
    let victim = Outside::sleep();
    let script = format!(
        "nsenter -t {v} -u /bin/true && unshare -U /bin/true && unshare -Urm /bin/sh -c 'mount -t tmpfs awfs {m} && mount --bind {s} {dc} && cat {dc}'",
        m = mnt.display(),
        v = victim.pid(),
        s = secret.display(),
        dc = decoy.display()
    );
    let (out, sid) = run_out(&d, "t-mount", &script);
    assert_eq!(out, "KEY", "the bind mount served the secret");
    let evs = ended(&d, &sid);
    let ns: Vec<_> = of(&evs, &sid, Kind::ProcessNamespace)
        .into_iter()
        .map(|e| {
            let op = e.op.as_ref().unwrap();
            (op.name.clone(), op.flags.clone())
        })
        .collect();
    assert!(
        ns.contains(&("setns".into(), vec!["CLONE_NEWUTS".into()])),
        "nsenter into an outside process's uts namespace: {ns:?}"
    );
    assert!(
        ns.contains(&("unshare".into(), vec!["CLONE_NEWUSER".into()])),
        "{ns:?}"
    );
    assert!(
        ns.contains(&(
            "unshare".into(),
            vec!["CLONE_NEWNS".into(), "CLONE_NEWUSER".into()]
        )),
        "{ns:?}"
    );
    let mounts: Vec<_> = of(&evs, &sid, Kind::FsMount)
        .into_iter()
        .map(|e| {
            let op = e.op.as_ref().unwrap();
            (
                op.object
                    .as_ref()
                    .map(|o| o.to_str_lossy().into_owned())
                    .unwrap_or_default(),
                op.target_path
                    .as_ref()
                    .map(|o| o.to_str_lossy().into_owned())
                    .unwrap_or_default(),
                op.r#type.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        mounts.contains(&("awfs".into(), s(&mnt).into(), "tmpfs".into())),
        "{mounts:?}"
    );
    assert!(
        mounts.iter().any(|m| m.0 == s(&secret) && m.1 == s(&decoy)),
        "bind mount of the secret: {mounts:?}"
    );
    // cat opened the decoy's name, but the event carries the secret's inode.
    let cat: Vec<_> = of(&evs, &sid, Kind::FileOpen)
        .into_iter()
        .filter(|e| e.process.exe.to_str_lossy() == real_exe("cat"))
        .filter(|e| e.file.as_ref().unwrap().ino == Some(ino))
        .collect();
    assert_eq!(cat.len(), 1, "{:?}", of(&evs, &sid, Kind::FileOpen));
}

#[test]
fn memfd_create_and_exec_markers_memfd_deleted_writable_dir_ld_loader() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let dir = real(&t);
    let ww = world_writable(&t);
    let del = dir.join("gone");
    std::fs::copy("/bin/true", &del).unwrap();
    let wwtrue = ww.join("true");
    std::fs::copy("/bin/true", &wwtrue).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "s").unwrap();
    let script = format!(
        "{wl} memfd-exec evil /bin/true memfd-true && {wl} exec-deleted {del} deleted-true && {ww} && /lib64/ld-linux-x86-64.so.2 /bin/cat {secret} && /bin/true plain",
        wl = w(),
        del = del.display(),
        ww = wwtrue.display(),
        secret = secret.display()
    );
    let sid = run_ok(&d, "t-markers", &script);
    let evs = ended(&d, &sid);
    let mf = of(&evs, &sid, Kind::ProcessMemfd);
    assert_eq!(mf.len(), 1, "{mf:?}");
    let op = mf[0].op.as_ref().unwrap();
    assert_eq!(op.name, "memfd_create");
    assert_eq!(
        op.object.as_ref().unwrap().to_str_lossy(),
        "evil",
        "the name the agent chose"
    );
    let execs = of(&evs, &sid, Kind::ProcessExec);
    let by_argv0 = |a0: &str| -> &Event {
        execs
            .iter()
            .find(|e| args_of(e).first().map(String::as_str) == Some(a0))
            .unwrap_or_else(|| panic!("no exec with argv0 {a0}: {execs:?}"))
    };
    let has = |e: &Event, m: &str| e.process.exec_markers.iter().any(|x| x == m);
    let e = by_argv0("memfd-true");
    assert!(has(e, "memfd"), "{:?}", e.process);
    let e = by_argv0("deleted-true");
    assert!(
        has(e, "deleted") && !has(e, "memfd"),
        "{:?}",
        e.process.exec_markers
    );
    let e = by_argv0(s(&wwtrue));
    assert!(has(e, "writable_dir"), "{:?}", e.process.exec_markers);
    assert_eq!(e.process.exe.to_str_lossy(), s(&wwtrue));
    let e = by_argv0("/lib64/ld-linux-x86-64.so.2");
    assert!(has(e, "ld_loader"), "{:?}", e.process);
    // What the loader ran is still seen: the secret open by that same process.
    let o = of(&evs, &sid, Kind::FileOpen)
        .into_iter()
        .find(|o| path_of(o) == s(&secret))
        .expect("open of the secret through ld-linux");
    assert_eq!(o.process.pid, e.process.pid);
    let plain = execs
        .iter()
        .find(|e| args_of(e) == ["/bin/true", "plain"])
        .unwrap();
    assert!(
        plain.process.exec_markers.is_empty(),
        "{:?}",
        plain.process.exec_markers
    );
}

#[test]
fn memfd_exe_and_setns_file_are_named_as_the_kernel_names_them() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let victim = Outside::sleep();
    let sid = run_ok(
        &d,
        "t-memfd-exe",
        &format!(
            "{} memfd-exec evil /bin/true memfd-true && nsenter -t {} -u /bin/true",
            w(),
            victim.pid()
        ),
    );
    let evs = ended(&d, &sid);
    let e = of(&evs, &sid, Kind::ProcessExec)
        .into_iter()
        .find(|e| args_of(e) == ["memfd-true"])
        .expect("exec of the memfd");
    // The kernel's name for it: /proc/PID/exe reads `/memfd:evil (deleted)`.
    assert!(
        e.process.exe.to_str_lossy().contains("memfd:evil"),
        "{:?}",
        e.process.exe
    );
    // /proc/PID/ns/uts reads `uts:[4026531838]`.
    let ns = of(&evs, &sid, Kind::ProcessNamespace);
    let obj = ns[0].op.as_ref().unwrap().object.as_ref().unwrap();
    assert!(obj.to_str_lossy().starts_with("uts:["), "{obj:?}");
}

#[test]
fn signals_to_the_daemon_and_to_outside_processes_are_reported() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let victim = Outside::sleep();
    let script = format!(
        "kill -CONT {dp} && kill -USR1 {v}; sleep 5 & kill $!; wait; true",
        dp = d.pid(),
        v = victim.pid()
    );
    let sid = run_ok(&d, "t-signal", &script);
    let evs = ended(&d, &sid);
    let sigs: Vec<_> = of(&evs, &sid, Kind::ProcessSignal)
        .into_iter()
        .map(|e| {
            let t = e.target.as_ref().unwrap();
            let op = e.op.as_ref().unwrap();
            (t.pid, t.relation.as_str(), op.signal, op.name.as_str())
        })
        .collect();
    assert_eq!(
        sigs,
        vec![
            (d.pid() as u32, "daemon", Some(18), "SIGCONT"),
            (victim.pid(), "outside", Some(10), "SIGUSR1"),
        ],
        "signals within the session (kill of its own sleep) are not reported"
    );
    // SAFETY: kill(2) with signal 0 only checks that the daemon exists.
    assert_eq!(unsafe { libc::kill(d.pid(), 0) }, 0, "daemon survived");
    d.status().unwrap();
}

#[test]
fn argv_secrets_are_redacted_and_flagged() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let (_, sid) = d
        .run(
            "t-redact",
            &[
                "/bin/true",
                "--password=hunter2",
                "--token",
                "s3cr3tT0ken",
                "--verbose",
            ],
        )
        .unwrap();
    let evs = ended(&d, &sid);
    let ex = of(&evs, &sid, Kind::ProcessExec);
    assert_eq!(ex.len(), 1);
    assert_eq!(
        args_of(ex[0]),
        vec!["/bin/true", "--password=***", "--token", "***", "--verbose"]
    );
    assert!(ex[0].process.args_redacted);
    // Every event of the process carries the masked argv. (The session.start event is
    // covered by `the_session_start_event_redacts_the_run_command_line`.)
    let leaks = secret_lines(&d, &["hunter2", "s3cr3tT0ken"]);
    let leaks: Vec<_> = leaks
        .iter()
        .filter(|l| !l.contains("\"kind\":\"session.start\""))
        .collect();
    assert!(leaks.is_empty(), "raw secret in events: {leaks:#?}");
    let ex_sid = of(&evs, &sid, Kind::ProcessExit);
    assert_eq!(args_of(ex_sid[0]), args_of(ex[0]));
}

/// Lines of the events file that contain any of `secrets`.
fn secret_lines(d: &Daemon, secrets: &[&str]) -> Vec<String> {
    std::fs::read_to_string(&d.events_path)
        .unwrap()
        .lines()
        .filter(|l| secrets.iter().any(|s| l.contains(s)))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_session_start_event_redacts_the_run_command_line() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let (_, sid) = d
        .run("t-redact-start", &["/bin/true", "--password=hunter2"])
        .unwrap();
    let evs = ended(&d, &sid);
    let st = of(&evs, &sid, Kind::SessionStart);
    assert_eq!(st.len(), 1);
    assert!(st[0].process.args_redacted, "{:?}", st[0].process);
    let leaks = secret_lines(&d, &["hunter2"]);
    assert!(leaks.is_empty(), "raw secret in events: {leaks:#?}");
}

#[test]
fn argv_secrets_inside_a_shell_command_string_are_redacted() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let (_, sid) = d
        .run(
            "t-redact-sh",
            &[
                "/bin/sh",
                "-c",
                "true --password=hunter2 --token s3cr3tT0ken; true",
            ],
        )
        .unwrap();
    let evs = ended(&d, &sid);
    let ex = of(&evs, &sid, Kind::ProcessExec);
    let t = ex
        .iter()
        .find(|e| e.process.exe.to_str_lossy() == real_exe("sh"))
        .unwrap();
    assert!(t.process.args_redacted, "{:?}", t.process.args);
    let leaks = secret_lines(&d, &["hunter2", "s3cr3tT0ken"]);
    let leaks: Vec<_> = leaks
        .iter()
        .filter(|l| !l.contains("\"kind\":\"session.start\""))
        .collect();
    assert!(leaks.is_empty(), "raw secret in events: {leaks:#?}");
}

// ---- evasions ----

#[test]
fn evasion_copied_and_renamed_binary_reading_a_secret() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let dir = real(&t);
    let secret = dir.join("id_ed25519");
    std::fs::write(&secret, "KEY").unwrap();
    let innocent = dir.join("innocent");
    let script = format!(
        "cp /bin/cat {i} && {i} {s} >/dev/null",
        i = innocent.display(),
        s = secret.display()
    );
    let sid = run_ok(&d, "t-copy", &script);
    let evs = ended(&d, &sid);
    let o = file_ev(&evs, &sid, Kind::FileOpen, &secret);
    assert_eq!(o.process.exe.to_str_lossy(), s(&innocent));
    assert_eq!(o.process.comm.to_str_lossy(), "innocent");
    let ex = of(&evs, &sid, Kind::ProcessExec);
    assert!(
        ex.iter()
            .any(|e| e.process.exe.to_str_lossy() == s(&innocent)
                && e.process.pid == o.process.pid)
    );
}

#[test]
fn evasion_argv_rewritten_after_start_keeps_the_exec_time_argv() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let secret = real(&t).join("token");
    std::fs::write(&secret, "x").unwrap();
    let (out, sid) = run_out(
        &d,
        "t-argv",
        &format!("{} argv-rewrite {}", w(), secret.display()),
    );
    assert!(out.contains("cmdline=/usr/sbin/sshd -D"), "{out}");
    let evs = ended(&d, &sid);
    let want = vec![w(), "argv-rewrite".into(), s(&secret).to_owned()];
    let o = file_ev(&evs, &sid, Kind::FileOpen, &secret);
    assert_eq!(args_of(o), want, "the open carries the exec-time argv");
    let ex = of(&evs, &sid, Kind::ProcessExec)
        .into_iter()
        .find(|e| e.process.pid == o.process.pid)
        .unwrap();
    assert_eq!(args_of(ex), want);
}

#[test]
fn evasion_base64_decoded_command_piped_to_sh() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let secret = real(&t).join("aws_credentials");
    std::fs::write(&secret, "x").unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let inner = format!(
        "cat {} >/dev/null; {} connect 127.0.0.1:{port}\n",
        secret.display(),
        w()
    );
    let enc = Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(inner.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let b64 = String::from_utf8(enc.stdout).unwrap();
    assert!(!b64.contains("cat"));
    let sid = run_ok(&d, "t-b64", &format!("echo {b64} | base64 -d | sh"));
    let evs = ended(&d, &sid);
    let ex = of(&evs, &sid, Kind::ProcessExec);
    let cat = ex
        .iter()
        .find(|e| args_of(e) == ["cat", s(&secret)])
        .unwrap_or_else(|| panic!("decoded cat not seen: {ex:?}"));
    assert_eq!(cat.process.exe.to_str_lossy(), real_exe("cat"));
    assert!(has_file(&evs, &sid, Kind::FileOpen, &secret));
    let c = of(&evs, &sid, Kind::NetConnect)
        .into_iter()
        .find(|e| e.net.as_ref().unwrap().dst_port == Some(port))
        .expect("connect of the decoded command");
    assert_eq!(
        c.net.as_ref().unwrap().dst_ip,
        Some("127.0.0.1".parse().unwrap())
    );
    // Both ran under the sh that read the pipe.
    assert_eq!(
        c.parent.as_ref().unwrap().exe.to_str_lossy(),
        real_exe("sh")
    );
}

#[test]
fn evasion_200k_argv_is_truncated_and_the_child_still_seen() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let f = real(&t).join("after-huge-argv");
    std::fs::write(&f, "x").unwrap();
    // One argument may hold at most 128 KiB: two of 100k.
    let big = "A".repeat(100_000);
    let script = format!("{} open {}", w(), f.display());
    let (out, sid) = d
        .run("t-huge", &["/bin/sh", "-c", &script, "sh", &big, &big])
        .unwrap();
    assert!(out.status.success());
    let evs = ended(&d, &sid);
    let sh = of(&evs, &sid, Kind::ProcessExec)
        .into_iter()
        .find(|e| e.process.exe.to_str_lossy() == real_exe("sh"))
        .unwrap();
    assert!(sh.process.args_truncated);
    assert!(
        sh.process.args_len.unwrap() >= 200_000,
        "{:?}",
        sh.process.args_len
    );
    assert_eq!(args_of(sh)[..3], ["/bin/sh", "-c", script.as_str()]);
    let o = file_ev(&evs, &sid, Kind::FileOpen, &f);
    assert_eq!(o.parent.as_ref().unwrap().pid, sh.process.pid);
}

#[test]
fn evasion_proc_self_fd_reports_the_real_path() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let secret = real(&t).join("vault.key");
    std::fs::write(&secret, "x").unwrap();
    let ino = std::fs::metadata(&secret).unwrap().ino();
    let script = format!(
        "exec 7<{s}; cd / && {wl} open /proc/self/fd/7",
        s = secret.display(),
        wl = w()
    );
    let sid = run_ok(&d, "t-procfd", &script);
    let evs = ended(&d, &sid);
    let wl_exe = workload().canonicalize().unwrap();
    let o: Vec<_> = of(&evs, &sid, Kind::FileOpen)
        .into_iter()
        .filter(|e| e.process.exe.to_str_lossy() == s(&wl_exe))
        .filter(|e| path_of(e) == s(&secret))
        .collect();
    assert_eq!(o.len(), 1, "{:?}", of(&evs, &sid, Kind::FileOpen));
    assert_eq!(o[0].file.as_ref().unwrap().ino, Some(ino));
}

#[test]
fn evasion_thread_flipping_the_path_buffer_during_open() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let dir = real(&t);
    // Same length, same directory: the flip is a handful of bytes.
    let secret = dir.join("secret.pem");
    let decoy = dir.join("readme.md_");
    std::fs::write(&secret, "KEY").unwrap();
    std::fs::write(&decoy, "hello").unwrap();
    let ino = std::fs::metadata(&secret).unwrap().ino();
    let (out, sid) = run_out(
        &d,
        "t-flip",
        &format!(
            "{} flip-open {} {} 300",
            w(),
            secret.display(),
            decoy.display()
        ),
    );
    // `secret=N decoy=M`: how many opens landed on each file, as the workload saw it.
    let count = |key: &str| -> usize {
        out.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no `{key}` in {out}"))
    };
    let (hits, decoy_hits) = (count("secret="), count("decoy="));
    assert!(hits > 0, "the race never opened the secret: {out}");
    let evs = ended(&d, &sid);
    let opens: Vec<_> = of(&evs, &sid, Kind::FileOpen)
        .into_iter()
        .filter(|e| e.process.exe.to_str_lossy() == s(&workload().canonicalize().unwrap()))
        .collect();
    let secret_opens: Vec<_> = opens
        .iter()
        .filter(|e| e.file.as_ref().unwrap().ino == Some(ino))
        .collect();
    assert_eq!(
        secret_opens.len(),
        hits,
        "every successful open of the secret is reported"
    );
    assert!(
        secret_opens.iter().all(|e| path_of(e) == s(&secret)),
        "with the real path"
    );
    // Every decoy open too, with its own path (when the flipper won the race at all: on a
    // loaded machine it may not, which says nothing about the sensor).
    let decoy_ino = std::fs::metadata(&decoy).unwrap().ino();
    let decoy_opens = opens
        .iter()
        .filter(|e| e.file.as_ref().unwrap().ino == Some(decoy_ino) && path_of(e) == s(&decoy))
        .count();
    assert_eq!(
        decoy_opens, decoy_hits,
        "every decoy open is reported with its path"
    );
    assert!(
        opens
            .iter()
            .filter(|e| path_of(e) == s(&secret))
            .all(|e| e.file.as_ref().unwrap().ino == Some(ino))
    );
}

#[test]
fn evasion_bash_dev_tcp_and_nohup() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let f = real(&t).join("nohup-target");
    std::fs::write(&f, "x").unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port}; echo hi >&3; exec 3>&-; cd {d} && nohup {wl} open {f} >/dev/null 2>&1 & wait",
        d = real(&t).display(),
        wl = w(),
        f = f.display()
    );
    let (out, sid) = d.run("t-devtcp", &["/bin/bash", "-c", &script]).unwrap();
    assert!(out.status.success());
    let evs = ended(&d, &sid);
    let c = of(&evs, &sid, Kind::NetConnect)
        .into_iter()
        .find(|e| e.net.as_ref().unwrap().dst_port == Some(port))
        .expect("connect through /dev/tcp");
    assert_eq!(c.process.exe.to_str_lossy(), real_exe("bash"));
    assert_eq!(c.net.as_ref().unwrap().protocol.as_deref(), Some("tcp"));
    let o = file_ev(&evs, &sid, Kind::FileOpen, &f);
    assert_eq!(
        o.process.exe.to_str_lossy(),
        s(&workload().canonicalize().unwrap())
    );
    assert!(
        of(&evs, &sid, Kind::ProcessExec)
            .iter()
            .any(|e| e.process.exe.to_str_lossy() == "/usr/bin/nohup"),
        "nohup exec"
    );
}

#[test]
fn evasion_32bit_int80_open_unlink_and_old_mmap_are_seen() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let dir = real(&t);
    let secret = dir.join("id_rsa");
    let gone = dir.join("evidence.log");
    std::fs::write(&secret, "KEY").unwrap();
    std::fs::write(&gone, "x").unwrap();
    let lib = world_writable(&t).join("hook.so");
    std::fs::copy("/bin/true", &lib).unwrap();
    let script = format!(
        "{wl} int80 open {s} && {wl} int80 unlink {g} && {wl} int80 mmap-exec {l}",
        wl = w(),
        s = secret.display(),
        g = gone.display(),
        l = lib.display(),
    );
    let (out, sid) = run_out(&d, "t-int80", &script);
    assert!(
        out.contains("byte=K"),
        "the 32-bit open really read the file: {out}"
    );
    assert!(!gone.exists());
    let evs = ended(&d, &sid);
    let e = file_ev(&evs, &sid, Kind::FileOpen, &secret);
    let f = e.file.as_ref().unwrap();
    assert_eq!(f.access.as_deref(), Some("read"));
    assert_eq!(f.ino, Some(std::fs::metadata(&secret).unwrap().ino()));
    assert!(e.process.exe.to_str_lossy().ends_with("/workload"));
    file_ev(&evs, &sid, Kind::FileUnlink, &gone);
    // The old 32-bit mmap passes its arguments in memory: still an executable mapping.
    assert!(out.contains("mapped"), "{out}");
    let m = file_ev(&evs, &sid, Kind::FileMmapExec, &lib);
    assert!(
        m.file
            .as_ref()
            .unwrap()
            .markers
            .iter()
            .any(|x| x == "writable_dir"),
        "{m:?}"
    );
}

#[test]
fn evasion_rename_a_secret_then_read_it() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let dir = real(&t);
    let secret = dir.join(".env");
    std::fs::write(&secret, "API_KEY=x").unwrap();
    let ino = std::fs::metadata(&secret).unwrap().ino();
    let renamed = dir.join("notes.txt");
    let script = format!(
        "mv {s} {r} && cat {r} >/dev/null",
        s = secret.display(),
        r = renamed.display()
    );
    let sid = run_ok(&d, "t-mv", &script);
    let evs = ended(&d, &sid);
    let r = file_ev(&evs, &sid, Kind::FileRename, &secret);
    assert_eq!(target_of(r), s(&renamed));
    let o = file_ev(&evs, &sid, Kind::FileOpen, &renamed);
    assert_eq!(o.file.as_ref().unwrap().ino, Some(ino), "same inode");
    assert_eq!(o.process.exe.to_str_lossy(), real_exe("cat"));
}

#[test]
fn the_new_workloads_outside_a_session_produce_no_events() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let dir = real(&t);
    let ww = world_writable(&t);
    let victim = Outside::sleep();
    let (_sink, port) = udp_sink();
    let so = ww.join("evil.so");
    let src = dir.join("evil.c");
    std::fs::write(&src, "void aw_f(void) {}\n").unwrap();
    assert!(
        Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&so)
            .arg(&src)
            .status()
            .unwrap()
            .success()
    );
    std::fs::copy("/bin/true", ww.join("true")).unwrap();
    std::fs::copy("/bin/true", dir.join("gone")).unwrap();
    std::fs::write(dir.join("bogus.ko"), "x").unwrap();
    std::fs::write(dir.join("secret"), "KEY").unwrap();
    std::fs::write(dir.join("decoy"), "x").unwrap();
    std::fs::create_dir(dir.join("mnt")).unwrap();
    let script = format!(
        "cd {d} && echo x > f && chmod 600 f && chown 1:1 f && ln f hard && ln -s f soft && mkdir sub \
         && truncate -s 3 f && {wl} fd-ops {d}/f 2 2 1 && {wl} write-twice {d}/w \
         && {wl} sendto 127.0.0.1:{port} 9 && {wl} dns 127.0.0.1:53 outside.aw-test.example 1 \
         && {wl} tcp-xfer 127.0.0.1:{tport} 5000 0 && {wl} int80 open {d}/secret && {wl} int80 mmap-exec {ww}/true \
         && cp {d}/decoy {d}/decoy2 && {wl} int80 unlink {d}/decoy2 \
         && mkdir {d}/up && {wl} uring-paths {d}/up && {wl} uring-udp 127.0.0.1:{port} out.aw-test.example \
         && {wl} int80-net 127.0.0.1:{port} out32.aw-test.example \
         && {wl} setresuid 65534 && {wl} ptrace seize {v} && {wl} bpf-load aw_out \
         && {wl} finit-module {d}/bogus.ko && {wl} memfd-exec evil /bin/true t \
         && {wl} exec-deleted {d}/gone t && {ww}/true && LD_PRELOAD={so} /bin/true \
         && /lib64/ld-linux-x86-64.so.2 /bin/true \
         && unshare -Urm /bin/sh -c 'mount -t tmpfs awfs {d}/mnt && mount --bind {d}/secret {d}/decoy' \
         && kill -CONT {dp} && kill -CONT {v} && /bin/true --password=hunter2",
        d = dir.display(),
        wl = w(),
        ww = ww.display(),
        so = so.display(),
        v = victim.pid(),
        dp = d.pid(),
        tport = tcp_sink(10),
    );
    let out = Command::new("/bin/sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A marker session proves the daemon is delivering while we look.
    let (_, sid) = d.run("t-marker", &["/bin/true"]).unwrap();
    let evs = ended(&d, &sid);
    // Issue #19: a signal to the daemon is reported from any process (no session, the daemon as
    // target); it is the only outside activity that may appear.
    let to_daemon = |e: &&Event| {
        e.kind() == Kind::ProcessSignal
            && e.session.is_none()
            && e.target
                .as_ref()
                .is_some_and(|t| t.relation == "daemon" && t.pid == d.pid() as u32)
    };
    assert_eq!(
        evs.iter().filter(to_daemon).count(),
        1,
        "kill -CONT of the daemon"
    );
    let leaked: Vec<_> = evs
        .iter()
        .filter(|e| {
            e.session_id() != Some(sid.as_str())
                && !matches!(e.kind(), Kind::MonitorLoss | Kind::MonitorStart)
                && !to_daemon(e)
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "outside-session activity leaked: {leaked:?}"
    );
    let raw = std::fs::read_to_string(&d.events_path).unwrap();
    assert!(!raw.contains(s(&dir)), "outside paths leaked");
}

#[test]
fn exec_with_stdio_on_a_tcp_socket_is_marked_and_a_socketpair_or_pipe_is_not() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    // One shell with fd 0/1 on a loopback TCP connection, one on a Unix socketpair (as Node
    // wires its children), one on a pipe.
    let py = r#"
import os, socket
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
c = socket.create_connection(l.getsockname()); a, _ = l.accept()
u, _v = socket.socketpair()
def run(sock, tag):
    pid = os.fork()
    if pid == 0:
        if sock is not None:
            os.dup2(sock.fileno(), 0); os.dup2(sock.fileno(), 1)
        os.execv("/bin/sh", ["sh", "-c", "true", tag])
    os.waitpid(pid, 0)
run(c, "aw-inet"); run(u, "aw-unix"); run(None, "aw-pipe")
"#;
    let sid = run_ok(
        &d,
        "t-stdio",
        &format!("python3 -c '{py}' < /dev/null | cat"),
    );
    let evs = ended(&d, &sid);
    let execs = of(&evs, &sid, Kind::ProcessExec);
    let markers = |tag: &str| -> Vec<String> {
        execs
            .iter()
            .find(|e| args_of(e).iter().any(|a| a == tag))
            .unwrap_or_else(|| panic!("no exec tagged {tag}: {execs:?}"))
            .process
            .exec_markers
            .clone()
    };
    assert_eq!(markers("aw-inet"), ["stdin_inet", "stdout_inet"]);
    assert!(markers("aw-unix").is_empty(), "{:?}", markers("aw-unix"));
    assert!(markers("aw-pipe").is_empty(), "{:?}", markers("aw-pipe"));
}
