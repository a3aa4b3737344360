//! Harness for the end-to-end tests: find the built `agentwatch` binary and the `workload`
//! binary, start a real daemon (real eBPF programs in this kernel) in a temporary data dir, run
//! workloads inside and outside agent sessions, and read the events it wrote as JSON lines.
//!
//! [`agents`] runs the real Claude Code and Codex CLIs against a scripted model server;
//! [`nats`] starts real `nats-server` nodes for the fleet tests.
//!
//! Root tests call [`skip_reason`] first: without root, BTF or the binary they print why and
//! return; under CI (root) they always run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use agent_model::Event;
use anyhow::{Context as _, Result, anyhow, bail};

pub mod agents;
pub mod corpus;
pub mod nats;
pub mod tls;

/// Workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate lives in the workspace")
        .to_path_buf()
}

/// The `agentwatch` binary: `$AGENTWATCH_BIN`, else the release build.
pub fn bin() -> PathBuf {
    std::env::var_os("AGENTWATCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/release/agentwatch"))
}

/// The workload binary built with these tests.
pub fn workload() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/workload
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join("workload")
}

/// Why the sensor tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root to load eBPF programs".into());
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Some("kernel has no BTF (/sys/kernel/btf/vmlinux)".into());
    }
    if !bin().exists() {
        return Some(format!(
            "`{}` not built; run `cargo xtask test`",
            bin().display()
        ));
    }
    if !workload().exists() {
        return Some(format!("`{}` not built", workload().display()));
    }
    None
}

/// Skip the calling test with a clear message when the sensor cannot run; in CI, fail instead.
#[macro_export]
macro_rules! require_sensor {
    () => {
        if let Some(why) = $crate::skip_reason() {
            if std::env::var_os("CI").is_some() {
                panic!("sensor test cannot run in CI: {why}");
            }
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
}

/// A running daemon in a temporary data dir, stopped on drop.
pub struct Daemon {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub events_path: PathBuf,
}

impl Daemon {
    /// Start with the built-in config.
    pub fn start() -> Result<Daemon> {
        Daemon::start_with(None, &[])
    }

    /// Start with an optional config text and extra arguments. The store's high-water mark is
    /// kept in the test's temporary dir (`mark/store.mark`) unless `extra` names one.
    pub fn start_with(config: Option<&str>, extra: &[&str]) -> Result<Daemon> {
        let dir = tempfile::Builder::new().prefix("aw-test-").tempdir()?;
        Daemon::start_in(dir, config, extra)
    }

    /// [`Daemon::start_with`] in a prepared dir (e.g. with a filesystem mounted on `data/`).
    pub fn start_in(
        dir: tempfile::TempDir,
        config: Option<&str>,
        extra: &[&str],
    ) -> Result<Daemon> {
        if let Some(c) = config {
            std::fs::write(dir.path().join("config.toml"), c)?;
        }
        let events_path = dir.path().join("events.jsonl");
        let child = Daemon::spawn(dir.path(), extra)?;
        Ok(Daemon {
            child: Some(child),
            dir,
            events_path,
        })
    }

    /// Start again (after [`Daemon::stop`]) on the same data dir, events file and config.
    pub fn restart(&mut self, extra: &[&str]) -> Result<()> {
        self.stop();
        self.child = Some(Daemon::spawn(self.dir.path(), extra)?);
        Ok(())
    }

    /// The mark path the harness gives the daemon by default.
    pub fn mark_path(&self) -> PathBuf {
        self.dir.path().join("mark/store.mark")
    }

    fn spawn(dir: &Path, extra: &[&str]) -> Result<Child> {
        let mut cmd = Command::new(bin());
        cmd.arg("daemon")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--events-jsonl")
            .arg(dir.join("events.jsonl"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !extra.contains(&"--mark") {
            cmd.arg("--mark").arg(dir.join("mark/store.mark"));
        }
        let config = dir.join("config.toml");
        if config.exists() {
            cmd.arg("--config").arg(config);
        }
        let mut child = cmd.spawn().context("spawn daemon")?;
        let socket = dir.join("data/agentwatch.sock");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                break;
            }
            if let Some(st) = child.try_wait()? {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                bail!("daemon exited early ({st}): {err}");
            }
            if Instant::now() > deadline {
                bail!("daemon not ready after 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(child)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `agentwatch run --agent AGENT -- CMD...`; returns the output and the session id.
    pub fn run(&self, agent: &str, cmd: &[&str]) -> Result<(Output, String)> {
        let out = Command::new(bin())
            .args(["run", "--agent", agent, "--data-dir"])
            .arg(self.data_dir())
            .arg("--")
            .args(cmd)
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        let session = err
            .lines()
            .find_map(|l| l.strip_prefix("agentwatch: session "))
            .and_then(|l| l.split_whitespace().next())
            .ok_or_else(|| anyhow!("no session line in: {err}"))?
            .to_owned();
        Ok((out, session))
    }

    /// Every event written so far.
    pub fn events(&self) -> Vec<Event> {
        let text = std::fs::read_to_string(&self.events_path).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Wait until `pred` holds for the events (polling), or time out with the events seen.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&[Event]) -> bool) -> Result<Vec<Event>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let evs = self.events();
            if pred(&evs) {
                return Ok(evs);
            }
            if Instant::now() > deadline {
                let dump: Vec<String> = evs
                    .iter()
                    .rev()
                    .take(40)
                    .map(agent_model::display::event_line)
                    .collect();
                bail!(
                    "timed out waiting for {what}; last events:\n{}",
                    dump.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Let the daemon drain what the kernel has produced so far.
    pub fn settle(&self) {
        std::thread::sleep(Duration::from_millis(400));
    }

    /// `agentwatch status --json`.
    pub fn status(&self) -> Result<serde_json::Value> {
        let out = Command::new(bin())
            .args(["status", "--json", "--data-dir"])
            .arg(self.data_dir())
            .output()?;
        if !out.status.success() {
            bail!("status failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

impl Daemon {
    /// The daemon's pid.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Stop the daemon (SIGTERM, then SIGKILL after 5 s), keeping its data dir.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    /// Stop the daemon and remove its bpffs pins, which a SIGKILLed daemon leaves attached.
    fn drop(&mut self) {
        self.stop();
        remove_pins(&self.data_dir());
    }
}

impl Daemon {
    /// SIGKILL the daemon, as an attacker would: its pinned programs and maps stay.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The daemon's pin directory in bpffs (see agent-user's `pin`).
    pub fn pin_dir(&self) -> PathBuf {
        pin_dir(&self.data_dir())
    }
}

/// The pin directory of the daemon on `data_dir`: `<bpffs>/agentwatch/<FNV-1a of the canonical
/// data dir>`, computed as agent-user's `pin::data_dir_hash` does.
pub fn pin_dir(data_dir: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt as _;
    let canon = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canon.as_os_str().as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let bpffs = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                if right.split(' ').next()? != "bpf" {
                    return None;
                }
                Some(PathBuf::from(left.split(' ').nth(4)?))
            })
        })
        .unwrap_or_else(|| PathBuf::from("/sys/fs/bpf"));
    bpffs.join("agentwatch").join(format!("{h:016x}"))
}

/// Remove the pins of the daemon on `data_dir` (its programs detach once nothing holds them).
pub fn remove_pins(data_dir: &Path) {
    let _ = std::fs::remove_dir_all(pin_dir(data_dir));
}

/// Events of one session.
pub fn in_session<'a>(evs: &'a [Event], session: &str) -> Vec<&'a Event> {
    evs.iter()
        .filter(|e| e.session_id() == Some(session))
        .collect()
}

/// `/bin/NAME` resolved as the kernel sees it (symlinks followed, e.g. /usr/bin/dash for sh).
pub fn real_exe(name: &str) -> String {
    std::fs::canonicalize(format!("/bin/{name}"))
        .expect("canonicalize")
        .display()
        .to_string()
}

/// `agentwatch run --agent AGENT -- /bin/sh -c SCRIPT` in the background; returns the child and
/// the session id it printed.
pub fn run_bg(d: &Daemon, agent: &str, script: &str) -> (Child, String) {
    use std::io::BufRead as _;
    let mut child = Command::new(bin())
        .args(["run", "--agent", agent, "--data-dir"])
        .arg(d.data_dir())
        .args(["--", "/bin/sh", "-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(err).lines();
    let sid = loop {
        let l = lines
            .next()
            .expect("`run` ended before printing its session")
            .unwrap();
        if let Some(rest) = l.strip_prefix("agentwatch: session ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    (child, sid)
}

/// The alerts in a JSON-lines alerts file (lines that do not parse are skipped).
pub fn alerts_in(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Wait up to `within` until an alert of `rule` whose output contains every one of `texts` is
/// in the alerts file; fail naming the alerts there.
pub fn wait_alert_with(
    path: &Path,
    rule: &str,
    texts: &[&str],
    within: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let all = alerts_in(path);
        if let Some(a) = all.iter().find(|a| {
            a["rule"] == rule
                && a["output"]
                    .as_str()
                    .is_some_and(|o| texts.iter().all(|t| o.contains(t)))
        }) {
            return a.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no `{rule}` alert with {texts:?}; alerts: {all:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
