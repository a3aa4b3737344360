//! The sensor survives its daemon (issue 19), root required. A daemon is killed with SIGKILL
//! during an `agentwatch run` session; while no daemon runs, the session opens a secret and runs
//! a command; a new daemon on the same data dir adopts the pinned sensor: the downtime events
//! are in the output attributed to the same session, `monitor.start` says how long the sensor
//! ran alone and what it buffered, and what the session does next arrives too, under the same
//! agent name. Fail-closed:
//! with `[protect] fail_closed = "kill"`, a session process is killed in the kernel once the
//! daemon has been gone for the configured time; a process outside sessions is untouched; with
//! `fail_closed = "freeze"` the session processes are stopped (SIGSTOP) instead, stay stopped
//! once a daemon adopts the pins again, and resume with SIGCONT, seen in the same session.
//! Every test removes its pins (the `Daemon` helper's drop does), even after a SIGKILL.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use agent_model::{Event, Kind};
use tests::{Daemon, bin, in_session, require_sensor};

fn has_exec(evs: &[Event], sid: &str, marker: &str) -> bool {
    in_session(evs, sid).iter().any(|e| {
        e.kind() == Kind::ProcessExec && e.process.args.iter().any(|a| a.to_str_lossy() == marker)
    })
}

fn has_open(evs: &[Event], sid: &str, path: &str) -> bool {
    in_session(evs, sid).iter().any(|e| {
        e.kind() == Kind::FileOpen
            && e.file
                .as_ref()
                .is_some_and(|f| f.path.to_str_lossy() == path)
    })
}

fn wait_file_gone(p: &Path, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if !p.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn a_session_keeps_being_seen_across_a_daemon_sigkill() {
    require_sensor!();
    let mut d = Daemon::start().unwrap();
    let work = std::fs::canonicalize(d.dir.path()).unwrap();
    let secret = work.join("id_rsa");
    std::fs::write(&secret, "-----BEGIN OPENSSH PRIVATE KEY-----\n").unwrap();
    let (go1, go2) = (work.join("go1"), work.join("go2"));
    let script = format!(
        "while [ ! -e {g1} ]; do sleep 0.1; done; cat {s} >/dev/null; /bin/echo marker-downtime >/dev/null; \
         while [ ! -e {g2} ]; do sleep 0.1; done; /bin/echo marker-after >/dev/null",
        g1 = go1.display(),
        g2 = go2.display(),
        s = secret.display()
    );
    let (mut child, sid) = tests::run_bg(&d, "t-restart", &script);
    d.wait_for("the session's start", |evs| {
        !in_session(evs, &sid).is_empty()
    })
    .unwrap();
    assert!(d.pin_dir().join("SESSIONS").exists(), "no pinned maps");
    assert!(
        d.pin_dir().join("link_sys_exit").exists(),
        "no pinned links"
    );

    d.kill9();
    let killed = Instant::now();
    // The pins outlive the daemon; the session acts while nothing reads the ring.
    assert!(
        d.pin_dir().join("EVENTS").exists(),
        "pins gone with the daemon"
    );
    std::fs::write(&go1, "").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let before = d.events().len();
    assert!(
        !has_exec(&d.events(), &sid, "marker-downtime"),
        "an event of the downtime was written with no daemon running"
    );

    d.restart(&[]).unwrap();
    let evs = d
        .wait_for("the downtime events, attributed to the session", |evs| {
            has_exec(evs, &sid, "marker-downtime") && has_open(evs, &sid, secret.to_str().unwrap())
        })
        .unwrap();
    let start = evs[before..]
        .iter()
        .find(|e| e.kind() == Kind::MonitorStart)
        .expect("no monitor.start from the new daemon");
    let msg = start
        .monitor
        .as_ref()
        .and_then(|m| m.message.clone())
        .unwrap_or_default();
    assert!(
        msg.contains("adopted the pinned sensor"),
        "monitor.start does not mention the adoption: {msg}"
    );
    let m = start.monitor.as_ref().unwrap();
    let downtime_ms = m
        .downtime_ms
        .unwrap_or_else(|| panic!("no monitor.downtime_ms: {msg}"));
    assert!(
        downtime_ms >= 1000 && downtime_ms <= killed.elapsed().as_millis() as u64 + 1000,
        "downtime {downtime_ms} ms is not the time the daemon was gone: {msg}"
    );
    assert!(
        msg.contains(&format!("downtime_ms {downtime_ms}")),
        "the message and the field disagree: {msg}"
    );
    let buffered = m
        .buffered
        .unwrap_or_else(|| panic!("no monitor.buffered: {msg}"));
    assert_eq!(m.loss_count, Some(0), "records were lost: {msg}");
    assert!(buffered >= 2, "nothing was buffered: {msg}");

    // Later events of the adopted session arrive, in the same session, with the agent name
    // `run --agent` gave it (kept in the data dir's agent id table, not only in the dead
    // daemon's memory).
    std::fs::write(&go2, "").unwrap();
    let evs = d
        .wait_for("the session's events after the restart", |evs| {
            has_exec(evs, &sid, "marker-after")
        })
        .unwrap();
    for marker in ["marker-downtime", "marker-after"] {
        let e = in_session(&evs, &sid)
            .into_iter()
            .find(|e| {
                e.kind() == Kind::ProcessExec
                    && e.process.args.iter().any(|a| a.to_str_lossy() == marker)
            })
            .unwrap();
        assert_eq!(
            e.agent.as_ref().map(|a| a.name.as_str()),
            Some("t-restart"),
            "the adopted session lost its agent name: {e:?}"
        );
    }
    assert!(child.wait().unwrap().success());

    // A clean stop removes the pins.
    let pins = d.pin_dir();
    d.stop();
    assert!(
        wait_file_gone(&pins, Duration::from_secs(5)),
        "pins left after a clean stop"
    );
}

#[test]
fn fail_closed_kills_session_processes_once_the_daemon_is_gone() {
    require_sensor!();
    let config = "[protect]\nfail_closed = \"kill\"\nfail_closed_after_secs = 2\n";
    let mut d = Daemon::start_with(Some(config), &[]).unwrap();
    // A busy loop of syscalls in a session, and the same outside every session.
    let script = "while :; do /bin/sleep 0.2; done";
    let (mut inside, sid) = tests::run_bg(&d, "t-failclosed", script);
    let mut outside = Command::new("/bin/sh")
        .args(["-c", script])
        .spawn()
        .unwrap();
    d.wait_for("the session's start", |evs| {
        !in_session(evs, &sid).is_empty()
    })
    .unwrap();
    // While the daemon runs, nothing is killed.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        inside.try_wait().unwrap().is_none(),
        "a session process died while the daemon ran"
    );

    d.kill9();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = inside.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let status = status.expect("the session process still runs 10 s after the daemon died");
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the session ended otherwise: {status:?}"
    );
    assert!(
        outside.try_wait().unwrap().is_none(),
        "a process outside sessions was touched"
    );
    let _ = outside.kill();
    let _ = outside.wait();
}

#[test]
fn a_second_daemon_on_a_live_daemons_data_dir_refuses_to_adopt_its_pins() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let out = Command::new(bin())
        .arg("daemon")
        .arg("--data-dir")
        .arg(d.data_dir())
        .arg("--mark")
        .arg(d.mark_path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second daemon started: {err}");
    assert!(
        err.contains(&format!("a daemon (pid `{}`) already runs", d.pid())),
        "{err}"
    );
    // The first one still sees its sessions.
    let (out, sid) = d.run("t-second", &["/bin/echo", "still-seen"]).unwrap();
    assert!(out.status.success());
    d.wait_for("the first daemon's session", |evs| {
        has_exec(evs, &sid, "still-seen")
    })
    .unwrap();
}

/// The state letter of a process (`/proc/PID/stat`), `None` once it is gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// `pid` and its children.
fn family(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let ppid = std::fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(") ")?
                    .1
                    .split(' ')
                    .nth(1)?
                    .parse::<u32>()
                    .ok()
            });
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// Whether `pid` or one of its children (the shell may wait in `wait4` for a stopped child) is
/// stopped within `within`.
fn wait_stopped(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if family(pid).iter().any(|p| proc_state(*p) == Some('T')) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn fail_closed_freeze_stops_session_processes_until_sigcont() {
    require_sensor!();
    let config = "[protect]\nfail_closed = \"freeze\"\nfail_closed_after_secs = 2\n";
    let mut d = Daemon::start_with(Some(config), &[]).unwrap();
    let work = std::fs::canonicalize(d.dir.path()).unwrap();
    let pidfile = work.join("pid");
    let script = format!(
        "echo $$ >{p}.tmp; mv {p}.tmp {p}; while :; do /bin/echo tick-freeze >/dev/null; /bin/sleep 0.2; done",
        p = pidfile.display()
    );
    let (mut inside, sid) = tests::run_bg(&d, "t-freeze", &script);
    let mut outside = Command::new("/bin/sh")
        .args(["-c", "while :; do /bin/sleep 0.2; done"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid: u32 = loop {
        if let Some(p) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break p;
        }
        assert!(Instant::now() < deadline, "the session wrote no pid");
        std::thread::sleep(Duration::from_millis(50));
    };
    d.wait_for("the session's start", |evs| {
        !in_session(evs, &sid).is_empty()
    })
    .unwrap();
    // While the daemon runs, nothing is stopped.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !family(pid).iter().any(|p| proc_state(*p) == Some('T')),
        "stopped while the daemon ran"
    );

    d.kill9();
    assert!(
        wait_stopped(pid, Duration::from_secs(10)),
        "no session process is stopped 10 s after the daemon died"
    );
    assert!(
        inside.try_wait().unwrap().is_none(),
        "freeze ended the session"
    );
    assert!(
        !family(outside.id())
            .iter()
            .any(|p| proc_state(*p) == Some('T')),
        "a process outside sessions was stopped"
    );

    // A new daemon adopts the session; the stopped processes stay stopped until SIGCONT.
    d.restart(&[]).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let stopped: Vec<u32> = family(pid)
        .into_iter()
        .filter(|p| proc_state(*p) == Some('T'))
        .collect();
    assert!(!stopped.is_empty(), "resumed without SIGCONT");
    let before = d.events().len();
    for p in stopped {
        // SAFETY: sending SIGCONT to the test's own session processes.
        assert_eq!(unsafe { libc::kill(p as i32, libc::SIGCONT) }, 0);
    }
    d.wait_for("the resumed session's events", |evs| {
        evs.len() > before && has_exec(&evs[before..], &sid, "tick-freeze")
    })
    .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !family(pid).iter().any(|p| proc_state(*p) == Some('T')),
        "stopped again with a daemon running"
    );
    // SAFETY: ending the test's own session shell.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let _ = inside.wait();
    let _ = outside.kill();
    let _ = outside.wait();
}
