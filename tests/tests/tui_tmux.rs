//! The TUI in a real terminal: tmux runs `agentwatch tui` against a live daemon, an agent
//! session raises alerts, and the test presses keys (`send-keys`) and reads the screen
//! (`capture-pane`): alerts arrive live, views switch, the filter narrows the list, Enter opens
//! the session's timeline and process tree, and acknowledging persists through the daemon.

use std::process::Command;
use std::time::{Duration, Instant};

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
