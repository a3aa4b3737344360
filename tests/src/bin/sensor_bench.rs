//! One file because it is one benchmark program: its modes, loops and ratio report read as one
//! run from top to bottom.
//!
//! `cargo xtask bench sensor`: the cost of the sensor, as ratios measured in one run.
//!
//! Three loops (open+close, fork+exec of /bin/true, loopback TCP connect), each run under:
//! - `none`: no monitor at all (the baseline);
//! - `outside`: the agentwatch daemon running, the loop outside any session;
//! - `session`: the loop inside an agent session (`agentwatch run`);
//! - `mini`: a minimal ring-buffer open tracer (`agent-ebpf/src/bin/minitrace.rs`: comm filter
//!   plus pid, time and path string into a ring buffer, drained by a reader thread here);
//! - `floor`: one empty program on the raw `sys_exit` tracepoint, the cost of the hook family;
//! - `bpftrace`: bpftrace printing an event per open, exec and connect of the loop;
//! - `auditd`: auditd running, with syscall rules for the loop's openat, execve and connect.
//!
//! Rounds alternate the modes; each ops/s figure is the median of the rounds, each ratio the
//! median of the per-round ratios. The `none` baseline of a round is the mean of a run before
//! the daemon starts and one after it stops. Outside loops run on an
//! idle daemon (after start-up, before any session loop). Audit contexts are kept off every
//! task except in the `auditd` mode (see `AuditQuiet`). Prints ops/s, the ratios the issues set
//! targets for, and for the session open loop the loop's exact count of opens vs events
//! delivered vs counted lost. `bpftrace`/`auditd` columns read `-` when the tool is missing
//! (`cargo xtask setup` installs both).

use std::io::{BufRead as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::maps::{MapData, RingBuf};
use aya::programs::{RawTracePoint, TracePoint};
use aya::{Ebpf, EbpfLoader};

const ROUNDS: usize = 7;
/// Seconds per run: the open loop makes ~2 M operations a second; the exec and connect loops
/// make ~1.5 k and ~16 k, so they run longer to keep the per-run noise down.
const SECS_OPEN: &str = "1.0";
const SECS_SLOW: &str = "2.0";
/// The comm every loop runs under (the workload binary's name).
const COMM: &str = "workload";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    None,
    Outside,
    Session,
    Mini,
    Floor,
    Bpftrace,
    Auditd,
}

const MODES: [Mode; 7] = [
    Mode::None,
    Mode::Outside,
    Mode::Session,
    Mode::Mini,
    Mode::Floor,
    Mode::Bpftrace,
    Mode::Auditd,
];

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Outside => "outside",
            Mode::Session => "session",
            Mode::Mini => "mini",
            Mode::Floor => "floor",
            Mode::Bpftrace => "bpftrace",
            Mode::Auditd => "auditd",
        }
    }
}

fn bin() -> String {
    std::env::var("AGENTWATCH_BIN").unwrap_or_else(|_| "target/release/agentwatch".into())
}

fn workload() -> String {
    let exe = std::env::current_exe().expect("exe");
    exe.with_file_name(COMM).display().to_string()
}

struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        // The sensor is measured without the store (which has its own benchmark): the daemon
        // decodes, enriches and checks the policy for every event, as in production.
        let child = Command::new(bin())
            .args(["daemon", "--no-store", "--data-dir"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .spawn()
            .expect("daemon");
        let sock = dir.path().join("agentwatch.sock");
        let t = Instant::now();
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon { child, dir }
    }

    /// Wait until the daemon has digested everything queued: its event counts stop moving.
    fn settle(&self) {
        let total = |v: serde_json::Value| -> u64 {
            v["events"]
                .as_object()
                .map_or(0, |m| m.values().filter_map(|x| x.as_u64()).sum())
        };
        let t = Instant::now();
        let mut last = total(self.status());
        while t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(200));
            let now = total(self.status());
            if now == last {
                return;
            }
            last = now;
        }
    }

    fn status(&self) -> serde_json::Value {
        let out = Command::new(bin())
            .args(["status", "--json", "--data-dir"])
            .arg(self.dir.path())
            .output()
            .expect("status");
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// The minimal ring-buffer tracer: the object from `minitrace.rs`, a reader thread that drains
/// and formats every record (as a tracer printing lines would), and the count it delivered.
struct Mini {
    ebpf: Ebpf,
    delivered: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// Layout of `MiniOpen` in `minitrace.rs`.
const MINI_PATH_AT: usize = 32;
const MINI_LEN: usize = MINI_PATH_AT + 256;

impl Mini {
    fn load(object: &Path) -> Result<Mini> {
        let format =
            std::fs::read_to_string("/sys/kernel/tracing/events/syscalls/sys_enter_openat/format")
                .context("reading the sys_enter_openat format (is tracefs mounted?)")?;
        let off = format
            .lines()
            .find(|l| l.contains(" filename;"))
            .and_then(|l| l.split("offset:").nth(1))
            .and_then(|l| l.split(';').next())
            .and_then(|o| o.parse::<u64>().ok())
            .ok_or_else(|| anyhow!("no `filename` offset in the sys_enter_openat format"))?;
        let mut comm = [0u8; 16];
        comm[..COMM.len()].copy_from_slice(COMM.as_bytes());
        let mut ebpf = EbpfLoader::new()
            .override_global("TARGET_COMM", &comm, true)
            .override_global("FILENAME_OFF", &off, true)
            .load_file(object)
            .with_context(|| format!("loading {}", object.display()))?;
        let tp: &mut TracePoint = ebpf
            .program_mut("mini_openat")
            .ok_or_else(|| anyhow!("no mini_openat"))?
            .try_into()?;
        tp.load()?;
        let raw: &mut RawTracePoint = ebpf
            .program_mut("empty_sys_exit")
            .ok_or_else(|| anyhow!("no empty_sys_exit"))?
            .try_into()?;
        raw.load()?;
        let mut ring = RingBuf::try_from(
            ebpf.take_map("MINI_EVENTS")
                .ok_or_else(|| anyhow!("no MINI_EVENTS"))?,
        )?;
        let delivered = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, s) = (delivered.clone(), stop.clone());
        let reader = std::thread::spawn(move || drain(&mut ring, &d, &s));
        Ok(Mini {
            ebpf,
            delivered,
            stop,
            reader: Some(reader),
        })
    }

    /// Run `f` with the open tracer (or, with `floor`, the empty sys_exit program) attached.
    fn with<T>(&mut self, floor: bool, f: impl FnOnce() -> T) -> Result<T> {
        let out = if floor {
            let p: &mut RawTracePoint = self
                .ebpf
                .program_mut("empty_sys_exit")
                .ok_or_else(|| anyhow!("no empty_sys_exit"))?
                .try_into()?;
            let link = p.attach("sys_exit")?;
            let out = f();
            p.detach(link)?;
            out
        } else {
            let p: &mut TracePoint = self
                .ebpf
                .program_mut("mini_openat")
                .ok_or_else(|| anyhow!("no mini_openat"))?
                .try_into()?;
            let link = p.attach("syscalls", "sys_enter_openat")?;
            let out = f();
            p.detach(link)?;
            out
        };
        Ok(out)
    }
}

impl Drop for Mini {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

fn drain(ring: &mut RingBuf<MapData>, delivered: &AtomicU64, stop: &AtomicBool) {
    let mut sink = std::io::BufWriter::new(std::io::sink());
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd {
            fd: ring.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 50) };
        while let Some(item) = ring.next() {
            if item.len() >= MINI_LEN {
                let pid = u32::from_ne_bytes(item[8..12].try_into().unwrap_or_default());
                let comm = &item[16..32];
                let path = &item[MINI_PATH_AT..MINI_LEN];
                let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                let cend = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
                let _ = writeln!(
                    sink,
                    "open pid={pid} comm={} path={}",
                    String::from_utf8_lossy(&comm[..cend]),
                    String::from_utf8_lossy(&path[..end])
                );
                delivered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// bpftrace printing one line per open, exec and connect of the loop, to a file.
struct Bpftrace {
    child: Child,
    _out: tempfile::TempDir,
}

impl Bpftrace {
    fn start() -> Result<Bpftrace> {
        let dir = tempfile::tempdir()?;
        let script = format!(
            r#"tracepoint:syscalls:sys_enter_openat /comm == "{COMM}"/ {{ printf("open %d %s %s\n", pid, comm, str(args->filename)); }}
tracepoint:syscalls:sys_enter_execve /comm == "{COMM}"/ {{ printf("exec %d %s %s\n", pid, comm, str(args->filename)); }}
tracepoint:syscalls:sys_enter_connect /comm == "{COMM}"/ {{ printf("connect %d %s %d\n", pid, comm, args->fd); }}
"#
        );
        let bt = dir.path().join("bench.bt");
        std::fs::write(&bt, script)?;
        let out = dir.path().join("out.txt");
        let child = Command::new("bpftrace")
            .arg("-o")
            .arg(&out)
            .arg(&bt)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting bpftrace")?;
        let mut b = Bpftrace { child, _out: dir };
        let t = Instant::now();
        loop {
            let ready = std::fs::File::open(&out)
                .map(|f| {
                    std::io::BufReader::new(f)
                        .lines()
                        .map_while(Result::ok)
                        .any(|l| l.starts_with("Attaching"))
                })
                .unwrap_or(false);
            if ready {
                break;
            }
            if let Ok(Some(st)) = b.child.try_wait() {
                bail!("bpftrace exited before attaching: {st}");
            }
            if t.elapsed() > Duration::from_secs(60) {
                bail!("bpftrace did not attach within 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // "Attaching" is printed just before the probes are attached.
        std::thread::sleep(Duration::from_millis(500));
        Ok(b)
    }
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
    }
}

/// auditd running with rules for the loop's openat, execve and connect; the rules are removed,
/// the enabled flag restored and an auditd we started stopped again on drop.
struct Auditd {
    child: Option<Child>,
    rules: Vec<Vec<String>>,
    was_enabled: String,
    /// The `task,never` rule was in place and is lifted while auditd is measured.
    lifted_never: bool,
}

/// The rule that keeps audit contexts off new tasks, as `auditctl -l` lists it.
const TASK_NEVER: &str = "-a never,task";

fn task_never_present() -> bool {
    auditctl(&["-l"]).is_ok_and(|l| l.lines().any(|r| r.trim() == TASK_NEVER))
}

/// Keeps the kernel's audit machinery off the measured tasks.
///
/// Once audit has been enabled since boot (auditd ran, in this bench or before), the kernel
/// gives every new task an audit context, and every syscall of that task then takes the slow
/// path through `audit_syscall_entry`/`exit`: about 12 % of the open loop here, in every mode,
/// the baseline included. That would hide the cost of hooking syscall exit, which is the same
/// slow path. Tasks created while a `task,never` rule is in place get no context; the bench
/// adds that rule for its run (removing it at the end if it added it), and `Auditd` lifts it
/// while auditd itself is measured.
struct AuditQuiet {
    added: bool,
}

impl AuditQuiet {
    fn enter() -> AuditQuiet {
        if task_never_present() {
            return AuditQuiet { added: false };
        }
        match auditctl(&["-a", "task,never"]) {
            Ok(_) => AuditQuiet { added: true },
            Err(e) => {
                eprintln!(
                    "sensor bench: could not keep audit contexts off the loops ({e}); if audit was enabled since boot, every mode pays for it"
                );
                AuditQuiet { added: false }
            }
        }
    }
}

impl Drop for AuditQuiet {
    fn drop(&mut self) {
        if self.added
            && let Err(e) = auditctl(&["-d", "task,never"])
        {
            eprintln!("sensor bench: removing the task,never audit rule failed: {e}");
        }
    }
}

fn auditctl(args: &[&str]) -> Result<String> {
    let out = Command::new("auditctl")
        .args(args)
        .output()
        .context("running auditctl")?;
    if !out.status.success() {
        bail!(
            "auditctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn audit_status(field: &str) -> Option<String> {
    auditctl(&["-s"]).ok()?.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == field).then(|| v.trim().to_owned())
    })
}

impl Auditd {
    fn start(workload: &str) -> Result<Auditd> {
        let was_enabled = audit_status("enabled").unwrap_or_else(|| "0".into());
        let running = audit_status("pid").is_some_and(|p| p != "0");
        let child = if running {
            None
        } else {
            let c = Command::new("auditd")
                .arg("-n")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting auditd")?;
            let t = Instant::now();
            while audit_status("pid").is_none_or(|p| p == "0") {
                if t.elapsed() > Duration::from_secs(20) {
                    bail!("auditd did not register with the kernel within 20 s");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Some(c)
        };
        let true_bin = std::fs::canonicalize("/bin/true")?.display().to_string();
        let rules: Vec<Vec<String>> = vec![
            vec![
                "always,exit".into(),
                "-F".into(),
                "arch=b64".into(),
                "-S".into(),
                "openat".into(),
                "-S".into(),
                "connect".into(),
                "-F".into(),
                format!("exe={workload}"),
            ],
            vec![
                "always,exit".into(),
                "-F".into(),
                "arch=b64".into(),
                "-S".into(),
                "execve".into(),
                "-F".into(),
                format!("exe={true_bin}"),
            ],
        ];
        let mut a = Auditd {
            child,
            rules: Vec::new(),
            was_enabled,
            lifted_never: false,
        };
        if task_never_present() {
            auditctl(&["-d", "task,never"])?;
            a.lifted_never = true;
        }
        auditctl(&["-b", "8192"])?;
        auditctl(&["-e", "1"])?;
        for r in rules {
            let mut args = vec!["-a"];
            args.extend(r.iter().map(String::as_str));
            auditctl(&args)?;
            a.rules.push(r);
        }
        Ok(a)
    }
}

impl Drop for Auditd {
    fn drop(&mut self) {
        for r in &self.rules {
            let mut args = vec!["-d"];
            args.extend(r.iter().map(String::as_str));
            if let Err(e) = auditctl(&args) {
                eprintln!("sensor bench: removing an audit rule failed: {e}");
            }
        }
        if self.lifted_never
            && let Err(e) = auditctl(&["-a", "task,never"])
        {
            eprintln!("sensor bench: restoring the task,never audit rule failed: {e}");
        }
        let _ = auditctl(&["-e", &self.was_enabled]);
        if let Some(c) = &mut self.child {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

/// Run one loop; returns its ops/s and the exact number of operations it made.
fn run_loop(args: &[String], daemon: Option<&Daemon>) -> (f64, u64) {
    let out = match daemon {
        Some(d) => Command::new(bin())
            .args(["run", "--agent", "bench", "--data-dir"])
            .arg(d.dir.path())
            .arg("--")
            .arg(workload())
            .args(args)
            .env("AGENTWATCH_QUIET", "1")
            .output(),
        None => Command::new(workload()).args(args).output(),
    }
    .expect("workload");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let ops = words.next().and_then(|w| w.parse().ok()).unwrap_or(0.0);
    let n = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
    (ops, n)
}

/// Record a figure of `round` for loop `i` and mode index `m`.
fn put(res: &mut [Vec<Vec<Option<f64>>>], i: usize, m: usize, round: usize, v: f64) {
    res[i][m][round] = Some(v);
}

/// Run every loop once outside any session, as the figures of mode index `m` in `round`.
fn run_plain(
    loops: &[(&str, Vec<String>)],
    res: &mut [Vec<Vec<Option<f64>>>],
    m: usize,
    round: usize,
) {
    for (i, (_, args)) in loops.iter().enumerate() {
        put(res, i, m, round, run_loop(args, None).0);
    }
}

/// `x / y` for each round where both ran.
fn round_ratios(x: &[Option<f64>], y: &[Option<f64>]) -> Vec<Option<f64>> {
    x.iter()
        .zip(y)
        .map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) if *y > 0.0 => Some(x / y),
            _ => None,
        })
        .collect()
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    Some(v[v.len() / 2])
}

fn minitrace_object() -> Option<PathBuf> {
    std::env::var_os("AGENTWATCH_MINITRACE").map(PathBuf::from)
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ensure_tracefs() {
    if !Path::new("/sys/kernel/tracing/events").exists() {
        let _ = Command::new("mount")
            .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
            .status();
    }
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("sensor bench needs root (it loads eBPF programs)");
        std::process::exit(1);
    }
    ensure_tracefs();
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("bench.txt");
    std::fs::write(&file, "x").expect("write");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut b = [0u8; 1];
                let _ = std::io::Read::read(&mut &s, &mut b);
                let _ = std::io::Write::write_all(&mut &s, b"y");
            });
        }
    });
    let loops: Vec<(&str, Vec<String>)> = vec![
        (
            "open+close",
            vec![
                "loop-open".into(),
                file.display().to_string(),
                SECS_OPEN.into(),
            ],
        ),
        ("fork+exec", vec!["loop-exec".into(), SECS_SLOW.into()]),
        (
            "connect",
            vec!["loop-connect".into(), port.to_string(), SECS_SLOW.into()],
        ),
    ];

    let mut mini = match minitrace_object() {
        Some(o) => match Mini::load(&o) {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("sensor bench: minimal tracer unavailable: {e:#}");
                None
            }
        },
        None => {
            eprintln!(
                "sensor bench: AGENTWATCH_MINITRACE not set (cargo xtask bench sensor sets it); no mini/floor columns"
            );
            None
        }
    };
    let have_bpftrace = have("bpftrace");
    let have_auditd = have("auditctl") && have("auditd");
    if !have_bpftrace {
        eprintln!("sensor bench: bpftrace not installed (cargo xtask setup installs it)");
    }
    if !have_auditd {
        eprintln!("sensor bench: auditd not installed (cargo xtask setup installs it)");
    }

    // res[loop][mode][round] = ops/s, when the mode ran in that round
    let mut res: Vec<Vec<Vec<Option<f64>>>> = loops
        .iter()
        .map(|_| vec![vec![None; ROUNDS]; MODES.len()])
        .collect();
    let idx = |m: Mode| MODES.iter().position(|x| *x == m).unwrap_or(0);
    let mut session_generated = 0u64;
    let mut session_delivered = 0u64;
    let mut session_lost = 0u64;
    let mut mini_generated = 0u64;
    let mut mini_delivered = 0u64;
    // Keep audit contexts off the measured tasks (see `AuditQuiet`); auditd's own mode lifts it.
    let _audit_quiet = have_auditd.then(AuditQuiet::enter);
    for round in 0..ROUNDS {
        eprintln!("sensor bench: round {}/{ROUNDS}", round + 1);
        // The baseline brackets the daemon's modes (the mean of a run before and one after), so
        // that a drift of the machine during the round does not read as the sensor's cost.
        let mut before_daemon = Vec::new();
        for (_, args) in &loops {
            before_daemon.push(run_loop(args, None).0);
        }
        let d = Daemon::start();
        // Outside loops run on an idle daemon: after its start-up, and before any session loop
        // leaves it a backlog to digest.
        d.settle();
        run_plain(&loops, &mut res, idx(Mode::Outside), round);
        for (i, (_, args)) in loops.iter().enumerate() {
            d.settle();
            let before = d.status();
            let (ops, n) = run_loop(args, Some(&d));
            put(&mut res, i, idx(Mode::Session), round, ops);
            if i == 0 {
                d.settle();
                let after = d.status();
                let get = |v: &serde_json::Value, k: &str, f: &str| v[k][f].as_u64().unwrap_or(0);
                session_generated += n;
                session_delivered +=
                    get(&after, "events", "file.open") - get(&before, "events", "file.open");
                session_lost +=
                    get(&after, "losses", "file.open") - get(&before, "losses", "file.open");
            }
        }
        drop(d);
        for (i, (_, args)) in loops.iter().enumerate() {
            let after = run_loop(args, None).0;
            put(
                &mut res,
                i,
                idx(Mode::None),
                round,
                (before_daemon[i] + after) / 2.0,
            );
        }
        if let Some(m) = &mut mini {
            for (i, (_, args)) in loops.iter().enumerate() {
                let before = m.delivered.load(Ordering::Relaxed);
                match m.with(false, || run_loop(args, None)) {
                    Ok((ops, n)) => {
                        put(&mut res, i, idx(Mode::Mini), round, ops);
                        if i == 0 {
                            std::thread::sleep(Duration::from_millis(300));
                            mini_generated += n;
                            mini_delivered += m.delivered.load(Ordering::Relaxed) - before;
                        }
                    }
                    Err(e) => eprintln!("sensor bench: minimal tracer: {e:#}"),
                }
                match m.with(true, || run_loop(args, None)) {
                    Ok((ops, _)) => put(&mut res, i, idx(Mode::Floor), round, ops),
                    Err(e) => eprintln!("sensor bench: empty sys_exit hook: {e:#}"),
                }
            }
        }
        if have_bpftrace {
            match Bpftrace::start() {
                Ok(bt) => {
                    run_plain(&loops, &mut res, idx(Mode::Bpftrace), round);
                    drop(bt);
                }
                Err(e) => eprintln!("sensor bench: bpftrace: {e:#}"),
            }
        }
        if have_auditd {
            match Auditd::start(&workload()) {
                Ok(a) => {
                    run_plain(&loops, &mut res, idx(Mode::Auditd), round);
                    drop(a);
                }
                Err(e) => eprintln!("sensor bench: auditd: {e:#}"),
            }
        }
    }

    let med: Vec<Vec<Option<f64>>> = res
        .iter()
        .map(|l| {
            l.iter()
                .map(|v| median(&mut v.iter().flatten().copied().collect::<Vec<_>>()))
                .collect()
        })
        .collect();
    let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |x| format!("{x:.0}"));
    // A ratio is the median of the per-round ratios: each compares figures of the same round.
    let ratio = |i: usize, a: Mode, b: Mode| {
        let mut r: Vec<f64> = round_ratios(&res[i][idx(a)], &res[i][idx(b)])
            .into_iter()
            .flatten()
            .collect();
        median(&mut r).map_or("-".to_owned(), |r| format!("{r:.3}"))
    };
    println!();
    println!(
        "sensor overhead: ops/s, median of {ROUNDS} alternating rounds, {SECS_OPEN} s per open run, {SECS_SLOW} s per exec or connect run"
    );
    print!("{:<12}", "loop");
    for m in MODES {
        print!(" {:>10}", m.label());
    }
    println!();
    for (i, (name, _)) in loops.iter().enumerate() {
        print!("{name:<12}");
        for m in MODES {
            print!(" {:>10}", fmt(med[i][idx(m)]));
        }
        println!();
    }
    println!();
    println!("ratios, median of the per-round ratios (higher is better for agentwatch)");
    println!(
        "{:<12} {:>9} {:>9} {:>9} {:>12} {:>12} {:>14}",
        "loop", "b/a", "c/a", "floor/a", "session/mini", "session/audit", "session/bpftrace"
    );
    let targets = [
        "b/a>=0.98 (#3; #2: >=0.95), c/a>=0.80, session/mini>=0.8, session/audit>=20",
        "b/a>=0.98",
        "b/a>=0.98",
    ];
    for (i, (name, _)) in loops.iter().enumerate() {
        println!(
            "{:<12} {:>9} {:>9} {:>9} {:>12} {:>12} {:>14}   {}",
            name,
            ratio(i, Mode::Outside, Mode::None),
            ratio(i, Mode::Session, Mode::None),
            ratio(i, Mode::Floor, Mode::None),
            ratio(i, Mode::Session, Mode::Mini),
            ratio(i, Mode::Session, Mode::Auditd),
            ratio(i, Mode::Session, Mode::Bpftrace),
            targets[i]
        );
    }
    println!();
    println!("per-round b/a and floor/a (their spread is this machine's run-to-run noise)");
    let per_round = |i: usize, m: Mode| -> String {
        round_ratios(&res[i][idx(m)], &res[i][idx(Mode::None)])
            .iter()
            .map(|r| r.map_or("-".to_owned(), |r| format!("{r:.3}")))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (i, (name, _)) in loops.iter().enumerate() {
        println!("{name:<12} b/a     {}", per_round(i, Mode::Outside));
        println!("{:<12} floor/a {}", "", per_round(i, Mode::Floor));
    }
    println!();
    // The loop's own opens plus the process's start-up opens (loader, libraries): delivered
    // plus counted lost may exceed the loop's count by those, never fall short of it.
    let accounted = session_delivered + session_lost;
    println!(
        "session open loop: {session_generated} opens made by the loop, {session_delivered} file.open events delivered, {session_lost} counted lost; {}",
        if accounted >= session_generated {
            format!(
                "none unaccounted ({} more from process start-up)",
                accounted - session_generated
            )
        } else {
            format!("{} UNACCOUNTED", session_generated - accounted)
        }
    );
    if mini.is_some() {
        println!(
            "mini open loop: {mini_generated} opens made by the loop, {mini_delivered} delivered by the minimal tracer"
        );
    }
    println!(
        "floor: one empty raw sys_exit program; any monitor that hooks syscall exit pays at least this."
    );
}
