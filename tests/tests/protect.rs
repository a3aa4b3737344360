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

fn alerts_of(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Wait until an alert of `rule` whose output contains `text` is in the alerts file.
fn wait_alert(path: &Path, rule: &str, text: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let all = alerts_of(path);
        if let Some(a) = all
            .iter()
            .find(|a| a["rule"] == rule && a["output"].as_str().is_some_and(|o| o.contains(text)))
        {
            return a.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no `{rule}` alert with `{text}`; alerts: {all:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `agentwatch ARGS...`: exit code, stdout, stderr.
fn aw(args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Wait until `agentwatch verify` says the store holds at least `n` records.
fn wait_records(data: &Path, mark: &Path, n: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, out, err) = aw(&[
            "verify".as_ref(),
            "--json".as_ref(),
            "--data-dir".as_ref(),
            data.as_os_str(),
            "--mark".as_ref(),
            mark.as_os_str(),
        ]);
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
        assert_eq!(code, Some(0), "a live store is intact: {v:#}");
        if v["records"].as_u64().unwrap_or(0) >= n && v["mark_seq"].as_u64().unwrap_or(0) >= n {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "store never held {n} records: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_wiped_store_is_alerted_at_start_named_by_verify_and_packs_are_checked() {
    require_sensor!();
    let work = tempfile::tempdir().unwrap();
    let alerts = work.path().join("alerts.jsonl");
    let mut d = Daemon::start_with(None, &["--alerts-jsonl", alerts.to_str().unwrap()]).unwrap();
    let data = d.data_dir();
    let mark = d.mark_path();
    // Every start emits `monitor.start`.
    let evs = d
        .wait_for("monitor.start", |e| {
            e.iter()
                .any(|e| e.kind() == agent_model::Kind::MonitorStart)
        })
        .unwrap();
    let start = evs
        .iter()
        .find(|e| e.kind() == agent_model::Kind::MonitorStart)
        .unwrap();
    let msg = start.monitor.as_ref().unwrap().message.clone().unwrap();
    assert!(msg.contains(&mark.display().to_string()), "{msg}");
    let (out, session) = d
        .run("x", &["/bin/sh", "-c", "cat /etc/hostname >/dev/null"])
        .unwrap();
    assert!(out.status.success());
    d.wait_for("the session's exec", |e| {
        tests::in_session(e, &session).len() >= 2
    })
    .unwrap();
    // Live store, daemon running: intact (exit 0), the mark read.
    let v = wait_records(&data, &mark, 3);
    assert_eq!(v["intact"], true, "{v:#}");
    // The session's evidence pack verifies; with an item removed or altered it does not.
    // The pack is read through the index, committed on a cadence: retry until it is there.
    let deadline = Instant::now() + Duration::from_secs(15);
    let pack = loop {
        let (code, pack, err) = aw(&[
            "export".as_ref(),
            "--evidence".as_ref(),
            session.as_ref(),
            "--data-dir".as_ref(),
            data.as_os_str(),
        ]);
        if code == Some(0) && pack.lines().count() >= 3 {
            break pack;
        }
        assert!(
            Instant::now() < deadline,
            "no evidence pack for {session}: {code:?} {err}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let pack_path = work.path().join("pack.jsonl");
    std::fs::write(&pack_path, &pack).unwrap();
    let verify_pack = |p: &Path| aw(&["verify".as_ref(), "--pack".as_ref(), p.as_os_str()]);
    let (code, out, err) = verify_pack(&pack_path);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("intact"), "{out}");
    let lines: Vec<&str> = pack.lines().collect();
    assert!(lines.len() >= 3, "{pack}");
    let cut = work.path().join("cut.jsonl");
    let mut kept: Vec<&str> = lines.clone();
    kept.remove(2);
    std::fs::write(&cut, kept.join("\n") + "\n").unwrap();
    let (code, out, _) = verify_pack(&cut);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("missing"), "{out}");
    let altered = work.path().join("altered.jsonl");
    let mut item: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    item["json"] = item["json"].as_str().unwrap().replacen("x", "y", 1).into();
    let mut changed: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    changed[1] = item.to_string();
    std::fs::write(&altered, changed.join("\n") + "\n").unwrap();
    let (code, out, _) = verify_pack(&altered);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("altered"), "{out}");
    let (code, _, err) = verify_pack(&work.path().join("absent.jsonl"));
    assert_eq!(code, Some(2), "{err}");
    // The attack: stop the daemon, wipe spool and index, start again.
    d.stop();
    for sub in ["store/spool", "store/index"] {
        let p = data.join(sub);
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap().path();
            if e.is_dir() {
                std::fs::remove_dir_all(&e).unwrap();
            } else {
                std::fs::remove_file(&e).unwrap();
            }
        }
    }
    let (code, out, err) = aw(&[
        "verify".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--mark".as_ref(),
        mark.as_os_str(),
    ]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("wiped") && out.contains("NOT INTACT"), "{out}");
    d.restart(&["--alerts-jsonl", alerts.to_str().unwrap()])
        .unwrap();
    let a = wait_alert(&alerts, "monitor.store_tamper", "wiped");
    assert_eq!(a["priority"], "Critical", "{a}");
    // The alert is stored (and chained) in turn, and searchable.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, out, err) = aw(&[
            "alerts".as_ref(),
            "--json".as_ref(),
            "--data-dir".as_ref(),
            data.as_os_str(),
        ]);
        assert_eq!(code, Some(0), "{err}");
        if out.contains("monitor.store_tamper") {
            break;
        }
        assert!(Instant::now() < deadline, "tamper alert not stored: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A second start with nothing new removed reports nothing new.
    let before = alerts_of(&alerts)
        .iter()
        .filter(|a| a["rule"] == "monitor.store_tamper")
        .count();
    d.restart(&["--alerts-jsonl", alerts.to_str().unwrap()])
        .unwrap();
    d.settle();
    let starts = d
        .events()
        .iter()
        .filter(|e| e.kind() == agent_model::Kind::MonitorStart)
        .count();
    assert!(starts >= 3, "one monitor.start per start, saw {starts}");
    let after = alerts_of(&alerts)
        .iter()
        .filter(|a| a["rule"] == "monitor.store_tamper")
        .count();
    assert_eq!(before, after, "findings are reported once");
}

/// The attack of issue 19 against a daemon installed off the standard paths: a session writes
/// into the custom data dir and deletes a rules file from the custom rules dir. Both touches are
/// alerted (the policy watches the daemon's real paths), and the reload that follows names the
/// rules it lost. Files moved away from outside any session are alerted the same way.
#[test]
fn custom_data_and_rules_dirs_are_watched_and_dropped_rules_are_named() {
    require_sensor!();
    let work = tempfile::tempdir().unwrap();
    let rules_dir = work.path().join("my-rules");
    std::fs::create_dir(&rules_dir).unwrap();
    for (name, text) in rules::DEFAULT_POLICY {
        std::fs::write(rules_dir.join(name), text).unwrap();
    }
    let alerts = work.path().join("alerts.jsonl");
    let d = Daemon::start_with(
        None,
        &[
            "--rules",
            rules_dir.to_str().unwrap(),
            "--alerts-jsonl",
            alerts.to_str().unwrap(),
        ],
    )
    .unwrap();
    let rules_before = d.status().unwrap()["policy"]["rules"].as_u64().unwrap();
    // The rules each removed file held (the shipped policy grows; count, do not hard-code).
    let n_rules = |name: &str| -> u64 {
        let (_, text) = rules::DEFAULT_POLICY
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap();
        text.lines().filter(|l| l.trim() == "[[rule]]").count() as u64
    };
    let data = std::fs::canonicalize(d.data_dir()).unwrap();
    let planted = data.join("planted");
    let victim = std::fs::canonicalize(&rules_dir)
        .unwrap()
        .join("delegation.toml");
    let script = format!(
        "echo x > '{}'; rm -f '{}'",
        planted.display(),
        victim.display()
    );
    let (out, _session) = d.run("x", &["/bin/sh", "-c", &script]).unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!victim.exists());
    wait_alert(
        &alerts,
        "evasion.monitor_files",
        &planted.display().to_string(),
    );
    wait_alert(
        &alerts,
        "evasion.monitor_files",
        &victim.display().to_string(),
    );
    let a = wait_alert(&alerts, "monitor.rules_dropped", "deleg.systemd_run");
    let out = a["output"].as_str().unwrap();
    assert!(
        out.contains("delegation.toml") && out.contains("deleg.terminal_multiplexer"),
        "{out}"
    );
    assert_eq!(a["priority"], "Critical", "{a}");
    // Moving two files out of the dir (outside any session) is named too.
    let moved = work.path().join("moved");
    std::fs::create_dir(&moved).unwrap();
    for f in ["discovery.toml", "persistence.toml"] {
        std::fs::rename(rules_dir.join(f), moved.join(f)).unwrap();
    }
    let a = wait_alert(&alerts, "monitor.rules_dropped", "persistence.toml");
    let out = a["output"].as_str().unwrap();
    assert!(
        out.contains("discovery.toml") && out.contains("disc."),
        "{out}"
    );
    let rules_after = d.status().unwrap()["policy"]["rules"].as_u64().unwrap();
    assert_eq!(
        rules_after,
        rules_before
            - n_rules("delegation.toml")
            - n_rules("discovery.toml")
            - n_rules("persistence.toml"),
        "{rules_before} -> {rules_after}"
    );
}
