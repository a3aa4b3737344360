//! Response: freeze, thaw and kill agent sessions, through their own cgroup v2.
//!
//! Sessions started by `agentwatch run` are placed in `<cgroup2>/agentwatch/<session id>` before
//! the agent's first instruction; a selector-matched session is moved there, pid by pid from the
//! kernel's session map, the first time it is acted on. Freezing writes `cgroup.freeze` and
//! waits for `cgroup.events` to say `frozen 1`; killing writes `cgroup.kill`, then SIGKILLs every
//! pid the session map still lists until none is left, so double-forked children die too.
//!
//! Guard rails live here, in one place: nothing is done when the `[response]` kill switch is
//! off; pid 1, the daemon itself and processes outside the session are never signalled or moved
//! (every pid comes from the session map and is checked again); a single-process kill checks
//! the start time so a reused pid is never hit. The cgroup2 mount is found in
//! `/proc/self/mountinfo` (hybrid hosts mount it at `/sys/fs/cgroup/unified`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::ResponseConfig;

/// What a responder can do to a session or process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Kill,
    KillSession,
    FreezeSession,
    ThawSession,
    /// A rule's `deny`.
    Deny,
}

impl Verb {
    /// The name recorded in `response.action`.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Kill => "kill",
            Verb::KillSession => "kill_session",
            Verb::FreezeSession => "freeze_session",
            Verb::ThawSession => "thaw_session",
            Verb::Deny => "deny",
        }
    }
}

/// How long `freeze` waits for the kernel to report the cgroup frozen, and `kill` for the
/// session's processes to be gone.
const SETTLE: Duration = Duration::from_secs(3);

/// Where the cgroup2 hierarchy is mounted, from `/proc/self/mountinfo`.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    parse_cgroup2_mount(&text)
}

fn parse_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let fstype = post.split(' ').next()?;
        if fstype != "cgroup2" {
            return None;
        }
        pre.split(' ').nth(4).map(PathBuf::from)
    })
}

/// The process's start time in ns since boot, as `/proc/PID/stat` gives it (clock ticks).
pub fn start_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: fields start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let ticks: u64 = rest.split(' ').nth(19)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * (1_000_000_000 / hz))
}

/// Whether `pid` is alive and not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s.get(i + 2..i + 3))
            .is_some_and(|st| st != "Z" && st != "X"),
        Err(_) => false,
    }
}

fn sigkill(pid: u32) -> bool {
    // SAFETY: kill has no memory preconditions; the pid was checked against the guard rails.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) == 0 }
}

/// Freeze, thaw and kill sessions.
pub struct Responder {
    pub cfg: ResponseConfig,
    /// `<cgroup2>/agentwatch`, when a cgroup2 hierarchy is mounted and writable.
    root: Option<PathBuf>,
    /// Session id → its cgroup directory.
    dirs: HashMap<u64, PathBuf>,
    me: u32,
}

impl Responder {
    pub fn new(cfg: ResponseConfig) -> Responder {
        let root = cgroup2_mount().map(|m| m.join("agentwatch")).and_then(|r| {
            match std::fs::create_dir_all(&r) {
                Ok(()) => Some(r),
                Err(e) => {
                    tracing::warn!(dir = %r.display(), error = %e, "no session cgroups: freeze is unavailable");
                    None
                }
            }
        });
        Responder {
            cfg,
            root,
            dirs: HashMap::new(),
            me: std::process::id(),
        }
    }

    /// The session's cgroup directory, if it has one.
    pub fn dir(&self, sid: u64) -> Option<&Path> {
        self.dirs.get(&sid).map(PathBuf::as_path)
    }

    /// Whether a pid may ever be acted on (not pid 0/1, not the daemon).
    pub fn guarded(&self, pid: u32) -> bool {
        pid <= 1 || pid == self.me
    }

    /// Move `pids` (members of session `sid`) into the session's cgroup, creating it.
    pub fn place(&mut self, sid: u64, pids: &[u32]) -> Result<usize, String> {
        let Some(root) = &self.root else {
            return Err("no writable cgroup2 hierarchy".into());
        };
        let dir = root.join(agent_model::session_id_string(sid));
        if !dir.exists() {
            std::fs::create_dir(&dir)
                .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        }
        self.dirs.insert(sid, dir.clone());
        let mut moved = 0;
        let mut last_err = None;
        for &pid in pids {
            if self.guarded(pid) {
                continue;
            }
            match std::fs::write(dir.join("cgroup.procs"), pid.to_string()) {
                Ok(()) => moved += 1,
                // A process that exited meanwhile is not a failure.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => last_err = Some(format!("cannot move pid `{pid}`: {e}")),
            }
        }
        match last_err {
            Some(e) if moved == 0 && !pids.is_empty() => Err(e),
            _ => Ok(moved),
        }
    }

    /// Freeze (`true`) or thaw the session. `pids` lists the session's processes now (from the
    /// kernel's session map); any not yet in the cgroup is moved there first, and the list is
    /// asked again after freezing so a process forked meanwhile is caught.
    pub fn freeze(
        &mut self,
        sid: u64,
        freeze: bool,
        pids: &mut dyn FnMut() -> Vec<u32>,
    ) -> Result<usize, String> {
        let first = pids();
        if freeze || self.dir(sid).is_none() {
            self.place(sid, &first)?;
        }
        let dir = self
            .dirs
            .get(&sid)
            .cloned()
            .ok_or("session has no cgroup")?;
        std::fs::write(dir.join("cgroup.freeze"), if freeze { "1" } else { "0" })
            .map_err(|e| format!("cannot write `{}/cgroup.freeze`: {e}", dir.display()))?;
        let want = if freeze { "frozen 1" } else { "frozen 0" };
        let t0 = Instant::now();
        loop {
            if freeze {
                // Stragglers forked while moving join the (frozen) cgroup and stop there.
                let now = pids();
                let _ = self.place(sid, &now);
            }
            let ev = std::fs::read_to_string(dir.join("cgroup.events")).unwrap_or_default();
            if ev.lines().any(|l| l == want) {
                break;
            }
            if t0.elapsed() > SETTLE {
                return Err(format!("`cgroup.events` never said `{want}`"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(pids().len())
    }

    /// Kill every process of the session: `cgroup.kill`, then SIGKILL to every pid the session
    /// map lists, repeated until none is alive. Returns how many pids were signalled.
    pub fn kill_session(
        &mut self,
        sid: u64,
        pids: &mut dyn FnMut() -> Vec<u32>,
    ) -> Result<usize, String> {
        let mut signalled = std::collections::HashSet::new();
        if let Some(dir) = self.dirs.get(&sid) {
            // Absent before Linux 5.14: the signal loop below does the work then.
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
        }
        let t0 = Instant::now();
        loop {
            let live: Vec<u32> = pids()
                .into_iter()
                .filter(|&p| !self.guarded(p) && alive(p))
                .collect();
            if live.is_empty() {
                break;
            }
            if t0.elapsed() > SETTLE {
                return Err(format!("{} processes still alive: {live:?}", live.len()));
            }
            for p in live {
                if sigkill(p) {
                    signalled.insert(p);
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // A frozen cgroup is thawed so that the killed processes can finish exiting.
        if let Some(dir) = self.dirs.get(&sid) {
            let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
        }
        Ok(signalled.len())
    }

    /// Kill one process, only if it is still the one seen (same start time, within a clock
    /// tick: /proc gives the start time in ticks).
    pub fn kill_process(&self, pid: u32, started: u64) -> Result<usize, String> {
        if self.guarded(pid) {
            return Err(format!("pid `{pid}` is protected"));
        }
        // SAFETY: sysconf has no preconditions.
        let tick = 1_000_000_000 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        match start_ns(pid) {
            Some(s) if s.abs_diff(started) <= tick => {}
            Some(_) => return Err(format!("pid `{pid}` was reused")),
            None => return Err(format!("pid `{pid}` already exited")),
        }
        if sigkill(pid) {
            Ok(1)
        } else {
            Err(format!("kill `{pid}`: {}", std::io::Error::last_os_error()))
        }
    }

    /// Forget an ended session's cgroup (removed when empty).
    pub fn end_session(&mut self, sid: u64) {
        if let Some(dir) = self.dirs.remove(&sid) {
            let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_in_mountinfo_wherever_it_is() {
        let hybrid = "25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
            26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n\
            27 25 0:24 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(
            parse_cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified = "35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            parse_cgroup2_mount(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(
            parse_cgroup2_mount("1 2 0:1 / / rw - ext4 /dev/vda rw\n"),
            None
        );
    }

    #[test]
    fn pid_one_and_the_daemon_are_guarded() {
        let r = Responder {
            cfg: ResponseConfig::default(),
            root: None,
            dirs: HashMap::new(),
            me: 4242,
        };
        assert!(r.guarded(0) && r.guarded(1) && r.guarded(4242));
        assert!(!r.guarded(4243));
        assert!(r.kill_process(1, 0).unwrap_err().contains("protected"));
    }
}
