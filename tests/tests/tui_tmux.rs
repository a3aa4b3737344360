//! The TUI in a real terminal: tmux runs `agentwatch tui` against a live daemon, an agent
//! session raises alerts, and the test presses keys (`send-keys`) and reads the screen
//! (`capture-pane`): alerts arrive live, views switch, the filter narrows the list, Enter opens
//! the session's timeline and process tree, and acknowledging persists through the daemon.
//! A second test responds from the Sessions view: freeze and kill a live session, each after a
//! confirmation that names it, Esc cancelling and Enter sending the note.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use agent_model::Kind;
use tests::{Daemon, bin, require_sensor};

struct Tmux {
    name: String,
}

impl Tmux {
    fn start(name: &str, cmd: &str) -> Tmux {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", name])
            .status();
        let st = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                "160",
                "-y",
                "48",
                cmd,
            ])
            .env("NO_COLOR", "1")
            .status()
            .expect("tmux");
        assert!(st.success(), "tmux new-session failed");
        Tmux { name: name.into() }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let st = Command::new("tmux")
                .args(["send-keys", "-t", &self.name, k])
                .status()
                .unwrap();
            assert!(st.success());
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn literal(&self, text: &str) {
        let st = Command::new("tmux")
            .args(["send-keys", "-l", "-t", &self.name, text])
            .status()
            .unwrap();
        assert!(st.success());
        std::thread::sleep(Duration::from_millis(150));
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

#[test]
fn soc_workflow_in_a_real_terminal() {
    require_sensor!();
    if Command::new("tmux").arg("-V").output().is_err() {
        panic!("tmux is not installed (cargo xtask setup installs it)");
    }
    let d = Daemon::start().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = work.path().canonicalize().unwrap();
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_rsa"), "FAKE").unwrap();
    let t = Tmux::start(
        "aw-tui-test",
        &format!(
            "{} tui --data-dir {}",
            bin().display(),
            d.data_dir().display()
        ),
    );
    t.wait_for("the alerts view", |s| {
        s.contains("Alerts") && s.contains("live")
    });
    // An agent session raises alerts while the TUI watches.
    let key = home.join(".ssh/id_rsa");
    let (_, sid) = d
        .run(
            "tmux-agent",
            &[
                "/bin/sh",
                "-c",
                &format!("cat {} > /dev/null", key.display()),
            ],
        )
        .unwrap();
    let s = t.wait_for("the live alert", |s| s.contains("cred.ssh_private_key"));
    assert!(s.contains("tmux-agent"), "{s}");
    // Sessions view lists the session.
    t.keys(&["2"]);
    t.wait_for("the session in the sessions view", |s| s.contains(&sid));
    // Help overlay lists the keys, Esc closes it.
    t.keys(&["?"]);
    t.wait_for("help", |s| s.contains("quit"));
    t.keys(&["Escape", "1"]);
    // Filter narrows the alert list.
    t.keys(&["/"]);
    t.literal("ssh_private");
    t.keys(&["Enter"]);
    let s = t.wait_for("filtered list", |s| s.contains("cred.ssh_private_key"));
    assert!(
        !s.contains("exfil."),
        "the filter should hide other rules:\n{s}"
    );
    // Enter opens the session timeline with its process tree.
    t.keys(&["Enter"]);
    t.wait_for("the timeline", |s| {
        s.contains("process tree") && s.contains(&sid)
    });
    // Back, then acknowledge with a note; the state persists in the daemon's store.
    t.keys(&["Escape", "1"]);
    t.wait_for("alerts again", |s| s.contains("cred.ssh_private_key"));
    t.keys(&["a"]);
    t.literal("checked by tmux test");
    t.keys(&["Enter"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new(bin())
            .args(["alerts", "--json", "--data-dir"])
            .arg(d.data_dir())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let acked = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| {
                v["alert"]["rule"] == "cred.ssh_private_key"
                    && v["triage"]["state"] == "acknowledged"
                    && v["triage"]["note"] == "checked by tmux test"
            });
        if acked {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acknowledgement not persisted:\n{text}\nscreen:\n{}",
            t.screen()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    t.wait_for("ack shown", |s| s.contains("ack"));
    // q quits and restores the terminal.
    t.keys(&["q"]);
}

fn read_pid(p: &Path) -> u32 {
    let t0 = Instant::now();
    loop {
        if let Some(pid) = std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no pid in {p:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rfind(')')
            .and_then(|i| s.get(i + 2..i + 3))
            .is_some_and(|st| st != "Z" && st != "X")
    })
}

/// `frozen 1` in the `cgroup.events` of `pid`'s cgroup v2 (mounted at `/sys/fs/cgroup/unified`
/// on hybrid hosts, `/sys/fs/cgroup` elsewhere).
fn cgroup_frozen(pid: u32) -> bool {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let Some(path) = cg.lines().find_map(|l| l.strip_prefix("0::")) else {
        return false;
    };
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .any(|m| {
            std::fs::read_to_string(format!("{m}{path}/cgroup.events"))
                .is_ok_and(|e| e.lines().any(|l| l == "frozen 1"))
        })
}

fn counter(dir: &Path) -> String {
    // Retried while caught between the truncation and the write of `echo $n > c`.
    let t0 = Instant::now();
    loop {
        let c = std::fs::read_to_string(dir.join("c")).unwrap_or_default();
        if !c.is_empty() || t0.elapsed() > Duration::from_secs(10) {
            return c;
        }
        std::thread::yield_now();
    }
}

#[test]
fn freeze_and_kill_a_session_from_the_sessions_view_with_a_confirmation() {
    require_sensor!();
    if Command::new("tmux").arg("-V").output().is_err() {
        panic!("tmux is not installed (cargo xtask setup installs it)");
    }
    let d = Daemon::start().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // A busy child writing a counter, and its shell waiting for it.
    let (mut run, sid) = tests::run_bg(
        &d,
        "tui-responder",
        &format!(
            "echo $$ > {0}/root; (n=0; while :; do n=$((n+1)); echo $n > {0}/c; done) & \
             echo $! > {0}/child; wait",
            w.display()
        ),
    );
    let pids = [read_pid(&w.join("root")), read_pid(&w.join("child"))];
    let t = Tmux::start(
        "aw-tui-respond",
        &format!(
            "{} tui --data-dir {}",
            bin().display(),
            d.data_dir().display()
        ),
    );
    t.wait_for("the TUI, live", |s| {
        s.contains("Alerts") && s.contains("live")
    });
    t.keys(&["2"]);
    // Only this session, selected, once the status has counted its processes.
    t.keys(&["/"]);
    t.literal(&sid);
    t.keys(&["Enter"]);
    t.wait_for("the live session", |s| {
        s.lines().any(|l| l.contains(&sid) && l.contains("live"))
    });
    std::thread::sleep(Duration::from_millis(1200));

    // Freeze asks first, naming the session, its agent and its processes; Esc cancels.
    t.keys(&["f"]);
    let s = t.wait_for("the freeze confirmation", |s| s.contains("freeze session?"));
    assert!(s.contains("stop every process of this session"), "{s}");
    assert!(s.contains(&sid) && s.contains("tui-responder"), "{s}");
    assert!(s.contains("processes 2 live"), "{s}");
    assert!(
        s.contains("Enter confirms") && s.contains("Esc cancels"),
        "{s}"
    );
    t.literal("not yet");
    t.keys(&["Escape"]);
    t.wait_for("the cancel notice", |s| {
        s.contains("cancelled, nothing sent")
    });
    let before = counter(w);
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(counter(w), before, "the session stopped after Esc");
    assert!(!cgroup_frozen(pids[1]), "frozen after Esc");
    let responses = |evs: &[agent_model::Event]| {
        evs.iter()
            .filter(|e| e.kind() == Kind::ResponseAction && e.session_id() == Some(&sid))
            .filter_map(|e| e.response.clone())
            .collect::<Vec<_>>()
    };
    assert!(responses(&d.events()).is_empty(), "Esc sent a response");

    // Enter with a note freezes it: its cgroup is frozen and the counter stands still.
    t.keys(&["f"]);
    t.wait_for("the freeze confirmation", |s| s.contains("freeze session?"));
    t.literal("tmux freeze note");
    t.keys(&["Enter"]);
    t.wait_for("the freeze result", |s| {
        s.contains(&format!("freeze session `{sid}`: done (2 processes)"))
    });
    t.wait_for("the frozen row", |s| {
        s.lines().any(|l| l.contains(&sid) && l.contains("frozen"))
    });
    assert!(cgroup_frozen(pids[1]), "the session's cgroup is not frozen");
    let frozen = counter(w);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(counter(w), frozen, "the counter moved while frozen");
    let evs = d
        .wait_for("the freeze event", |e| !responses(e).is_empty())
        .unwrap();
    let r = &responses(&evs)[0];
    assert_eq!(
        (r.action.as_str(), r.result.as_str(), r.note.as_str()),
        ("freeze_session", "done", "tmux freeze note")
    );

    // Ctrl-K kills it, after the same confirmation: nothing of the session is left.
    t.keys(&["C-k"]);
    let s = t.wait_for("the kill confirmation", |s| s.contains("kill session?"));
    assert!(s.contains("SIGKILL every process of this session"), "{s}");
    t.literal("contained");
    t.keys(&["Enter"]);
    t.wait_for("the kill result", |s| {
        s.contains(&format!("kill session `{sid}`: done"))
    });
    t.wait_for("the killed row", |s| {
        s.lines().any(|l| l.contains(&sid) && l.contains("killed"))
    });
    let _ = run.wait();
    let t0 = Instant::now();
    while pids.iter().any(|&p| alive(p)) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "session processes survive the kill: {:?}",
            pids.iter().filter(|&&p| alive(p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let evs = d
        .wait_for("the kill event", |e| responses(e).len() >= 2)
        .unwrap();
    let r = &responses(&evs)[1];
    assert_eq!(
        (r.action.as_str(), r.note.as_str()),
        ("kill_session", "contained")
    );
    t.keys(&["q"]);
}
