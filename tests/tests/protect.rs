//! Self-protection end-to-end tests (issue 19), root required: trust boundaries (a fake daemon,
//! symlinked or foreign output files, oversized and non-UTF-8 requests, out-of-range dates),
//! the evidence chain wired into the daemon and `agentwatch verify`, protected paths taken from
//! the daemon's real configuration, and policy reloads that drop rules.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tests::{Daemon, bin, require_sensor};

/// A unix-socket listener run as the unprivileged test user that answers every request line
/// with a successful `register` answer: what a local attacker would put on the socket path.
struct FakeDaemon {
    child: std::process::Child,
}

impl FakeDaemon {
    fn start(socket: &Path) -> FakeDaemon {
        let (uid, gid) = tests::agents::test_user().expect("test user");
        let dir = socket.parent().unwrap();
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
        let script = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(8)
while True:
    c, _ = s.accept()
    f = c.makefile("rwb")
    for line in f:
        f.write(b'{"ok":true,"session":"00000000deadbeef","pid":1}\n'); f.flush()
"#;
        let child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(socket)
            .uid(uid)
            .gid(gid)
            .spawn()
            .expect("python3");
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(socket).is_err() {
            assert!(Instant::now() < deadline, "fake daemon never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        FakeDaemon { child }
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn run_refuses_a_fake_daemon_run_by_an_unprivileged_user() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !bin().exists() {
        eprintln!("SKIPPED: needs root (to run the fake daemon as another user) and the binary");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let socket = data.join("agentwatch.sock");
    let _fake = FakeDaemon::start(&socket);
    let marker = work.path().join("ran-unmonitored");
    let out = Command::new(bin())
        .args(["run", "--agent", "x", "--config", "/dev/null", "--data-dir"])
        .arg(&data)
        .arg("--")
        .arg("/usr/bin/touch")
        .arg(&marker)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "run accepted the fake daemon: {err}");
    assert!(
        err.contains("refusing to start") && err.contains("not the agentwatch daemon"),
        "{err}"
    );
    assert!(err.contains(&socket.display().to_string()), "{err}");
    assert!(!marker.exists(), "the command ran unmonitored");
}

#[test]
fn symlinked_foreign_or_open_output_files_are_refused_and_new_ones_are_0600() {
    require_sensor!();
    let (uid, _) = tests::agents::test_user().expect("test user");
    let work = tempfile::tempdir().unwrap();
    let victim = work.path().join("victim");
    std::fs::write(&victim, "root's file\n").unwrap();
    let link = work.path().join("alerts.jsonl");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let foreign = work.path().join("foreign.jsonl");
    std::fs::write(&foreign, "").unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&foreign, Some(uid), None).unwrap();
    for (path, why) in [
        (&link, "symbolic link"),
        (&foreign, &*format!("owned by uid `{uid}`")),
    ] {
        let e = match Daemon::start_with(None, &["--alerts-jsonl", path.to_str().unwrap()]) {
            Ok(_) => panic!("the daemon accepted `{}`", path.display()),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            e.contains(&path.display().to_string()) && e.contains(why),
            "{e}"
        );
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's file\n");
    // A new output file is private.
    let d = Daemon::start().unwrap();
    let mode = std::fs::metadata(&d.events_path).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600, "events file mode {mode:o}");
}

fn vm_rss_kib(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn answer(r: &mut BufReader<UnixStream>) -> serde_json::Value {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad answer `{line}`: {e}"))
}

#[test]
fn oversized_and_non_utf8_requests_get_an_error_and_dates_past_2262_are_refused() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let socket = d.data_dir().join("agentwatch.sock");
    // Non-UTF-8: an error answer, and the connection keeps working.
    let s = UnixStream::connect(&socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    w.write_all(b"{\"op\":\"st\xffatus\"}\n").unwrap();
    let a = answer(&mut r);
    assert_eq!(a["ok"], false, "{a}");
    assert!(a["error"].as_str().unwrap().contains("UTF-8"), "{a}");
    w.write_all(b"{\"op\":\"status\"}\n").unwrap();
    let a = answer(&mut r);
    assert_eq!(a["ok"], true, "{a}");
    drop((r, w));
    // 200 MiB without a newline: an error answer, the connection closed, memory bounded.
    let before = vm_rss_kib(d.pid());
    let s = UnixStream::connect(&socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 1 << 20];
        let mut sent = 0usize;
        for _ in 0..200 {
            if w.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let mut r = BufReader::new(s);
    let a = answer(&mut r);
    assert_eq!(a["ok"], false, "{a}");
    assert!(a["error"].as_str().unwrap().contains("longer than"), "{a}");
    let mut rest = String::new();
    assert_eq!(r.read_line(&mut rest).unwrap_or(0), 0, "not closed: {rest}");
    let sent = writer.join().unwrap();
    assert!(sent < 200 << 20, "the daemon read all {sent} bytes");
    let after = vm_rss_kib(d.pid());
    assert!(
        after < before + 32 * 1024,
        "daemon RSS grew from {before} KiB to {after} KiB"
    );
    assert!(d.status().is_ok(), "the daemon still answers");
    // Dates beyond what a timestamp holds are bad input, not a wrapped-around date.
    for args in [
        &["search", "--since", "2300-01-01T00:00:00Z"][..],
        &["search", "--until", "9999-01-01"][..],
        &["alerts", "--since", "2263-01-01"][..],
    ] {
        let out = Command::new(bin())
            .args(args)
            .arg("--data-dir")
            .arg(d.data_dir())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("2262"), "{args:?}: {err}");
    }
}
