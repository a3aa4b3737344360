//! `agentwatch`: the daemon (sensor, enrichment, outputs, local API) and the CLI that talks to it.
//!
//! One binary with subcommands, as in the design's CLI contract. Exit status: 0 success,
//! 1 runtime failure, 2 bad usage or bad input. `main` prints the error chain once.

mod api;
mod btf;
mod cli;
mod config;
mod loader;
mod pipeline;
mod policy;
mod query;
mod redact;
mod source;
mod tracker;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result, anyhow};
use clap::{Parser, Subcommand};
use serde_json::json;

/// Default data directory.
const DEFAULT_DATA_DIR: &str = "/var/lib/agentwatch";

/// An error caused by bad usage or bad input: exit status 2.
#[derive(Debug)]
pub(crate) struct BadInput(pub(crate) anyhow::Error);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for BadInput {}

#[derive(Parser)]
#[command(
    name = "agentwatch",
    version,
    about = "Insider-risk monitor for AI agents: follows every agent session in the kernel",
    long_about = "Insider-risk monitor for AI agents.\n\nThe daemon loads eBPF programs that follow \
    agent processes and all their descendants (exec, fork, exit, file opens, unlinks, renames, \
    connects, accepts, listens), enriches each event with its agent, session and ancestry, and \
    writes it out. Exit status: 0 success, 1 runtime failure, 2 bad usage or bad input."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Clone)]
struct Conn {
    /// Data directory of the daemon (its socket is `<data-dir>/agentwatch.sock`).
    #[arg(long, default_value = DEFAULT_DATA_DIR, env = "AGENTWATCH_DATA_DIR")]
    data_dir: PathBuf,
    /// Socket path (overrides `<data-dir>/agentwatch.sock`).
    #[arg(long, env = "AGENTWATCH_SOCKET")]
    socket: Option<PathBuf>,
}

impl Conn {
    fn socket(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join("agentwatch.sock"))
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the sensor, enrichment, outputs and local API (needs root and a kernel with BTF).
    Daemon {
        /// Config file (default: /etc/agentwatch/config.toml when present, else built-in).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        conn: Conn,
        /// Append every event as one JSON object per line to this file.
        #[arg(long)]
        events_jsonl: Option<PathBuf>,
        /// Append every alert as one JSON object per line (Falco-like shape) to this file.
        #[arg(long)]
        alerts_jsonl: Option<PathBuf>,
        /// Policy files or directories (default: /etc/agentwatch/rules when present, else the
        /// built-in default policy). Reloaded on SIGHUP and when the files change.
        #[arg(long = "rules", value_name = "PATH")]
        rules: Vec<PathBuf>,
        /// Do not keep a durable store (events go only to the JSON-lines outputs).
        #[arg(long)]
        no_store: bool,
        /// Ring buffer size in bytes (power of two, at least 4096); overrides the config.
        #[arg(long)]
        ringbuf_bytes: Option<u32>,
    },
    /// Start CMD as a monitored agent session and wait for it; refuses to start it unmonitored.
    Run {
        /// Agent name for the session.
        #[arg(long, default_value = "run")]
        agent: String,
        #[command(flatten)]
        conn: Conn,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<std::ffi::OsString>,
    },
    /// Programs attached, event rates, losses and sessions of the running daemon.
    Status {
        #[command(flatten)]
        conn: Conn,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print live events and alerts as they happen (Ctrl-C to stop).
    Events {
        #[command(flatten)]
        conn: Conn,
        /// Only events of this session id.
        #[arg(long)]
        session: Option<String>,
        /// One JSON object a line.
        #[arg(long)]
        json: bool,
    },
    /// Validate and test policies (no root needed).
    Rules {
        #[command(subcommand)]
        cmd: RulesCmd,
    },
    /// Lucene-style search over stored events and alerts, newest first.
    Search {
        /// Query, e.g. `kind:file.open AND file.path:*id_rsa*` (append `| count by FIELD`,
        /// `| top N FIELD` or `| histogram 1m` to aggregate).
        query: Vec<String>,
        #[command(flatten)]
        conn: Conn,
        /// Start of the time range: `15m`, `2h`, `7d` or RFC 3339.
        #[arg(long)]
        since: Option<String>,
        /// End of the time range.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        #[arg(long)]
        json: bool,
    },
    /// Stored alerts, newest first.
    Alerts {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        since: Option<String>,
        /// Minimum severity: info, low, medium, high, critical.
        #[arg(long)]
        severity: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Keep printing new alerts as they are raised.
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        json: bool,
    },
    /// Sessions seen, with their agent, span, event and alert counts.
    Sessions {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One session: its process tree and its timeline with alerts placed on it.
    Session {
        id: String,
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        json: bool,
    },
    /// Export stored events and alerts as JSON lines or OCSF.
    Export {
        /// Query (default: everything).
        query: Vec<String>,
        #[command(flatten)]
        conn: Conn,
        #[arg(long, value_parser = ["jsonl", "ocsf"], default_value = "jsonl")]
        format: String,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 1_000_000)]
        limit: usize,
    },
    /// Terminal UI: live alerts, sessions, timelines, search, rules, health. Talks to the daemon;
    /// when none answers, opens `<data-dir>/store` read-only for forensics.
    Tui {
        #[command(flatten)]
        conn: Conn,
    },
    /// Acknowledge an alert (persisted by the daemon, seen by every client).
    Ack {
        alert_id: String,
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Resolve an alert.
    Resolve {
        alert_id: String,
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand)]
enum RulesCmd {
    /// Validate policy files or directories (default: the shipped policy); exit 2 on any error.
    Check { paths: Vec<PathBuf> },
    /// Run the policy's fixtures; exit 1 on any failure.
    Test { paths: Vec<PathBuf> },
    /// Rules loaded in the running daemon, with hit counts.
    List {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        json: bool,
    },
}

/// mimalloc rather than glibc malloc: the sensor thread allocates for every event and other
/// threads free, where glibc spent 40 % of the daemon's time (`malloc`, `_int_free`,
/// `malloc_consolidate`) under an open flood.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AGENTWATCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            // `agentwatch search ... | head` closing the pipe is not an error.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("agentwatch: error: {e:#}");
            if e.downcast_ref::<BadInput>().is_some()
                || e.downcast_ref::<config::ConfigError>().is_some()
            {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Daemon {
            config,
            conn,
            events_jsonl,
            alerts_jsonl,
            rules,
            no_store,
            ringbuf_bytes,
        } => daemon(DaemonArgs {
            config: config.as_deref(),
            conn: &conn,
            events_jsonl: events_jsonl.as_deref(),
            alerts_jsonl: alerts_jsonl.as_deref(),
            rules: &rules,
            no_store,
            ringbuf_bytes,
        }),
        Cmd::Run { agent, conn, cmd } => run(&agent, &conn, &cmd),
        Cmd::Status { conn, json } => status(&conn, json),
        Cmd::Events {
            conn,
            session,
            json,
        } => events(&conn, session, json),
        Cmd::Rules { cmd } => match cmd {
            RulesCmd::Check { paths } => Ok(exit(rules::fs::cmd_check(
                &paths,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            ))),
            RulesCmd::Test { paths } => Ok(exit(rules::fs::cmd_test(
                &paths,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            ))),
            RulesCmd::List { conn, json } => cli::rules_list(&conn.socket(), json),
        },
        Cmd::Search {
            query,
            conn,
            since,
            until,
            limit,
            offset,
            json,
        } => cli::read(
            &conn.socket(),
            &conn.data_dir,
            serde_json::json!({"op": "search", "query": query.join(" "), "since": since, "until": until, "limit": limit, "offset": offset}),
            json,
        ),
        Cmd::Alerts {
            conn,
            since,
            severity,
            limit,
            follow,
            json,
        } => {
            let code = cli::read(
                &conn.socket(),
                &conn.data_dir,
                serde_json::json!({"op": "alerts", "since": since, "severity": severity, "limit": limit}),
                json,
            )?;
            if follow {
                cli::follow_alerts(&conn.socket(), severity.as_deref(), json)
            } else {
                Ok(code)
            }
        }
        Cmd::Sessions { conn, since, json } => cli::read(
            &conn.socket(),
            &conn.data_dir,
            serde_json::json!({"op": "sessions", "since": since}),
            json,
        ),
        Cmd::Session { id, conn, json } => cli::read(
            &conn.socket(),
            &conn.data_dir,
            serde_json::json!({"op": "session", "id": id}),
            json,
        ),
        Cmd::Export {
            query,
            conn,
            format,
            since,
            until,
            limit,
        } => cli::export(
            &conn.data_dir,
            &query.join(" "),
            &format,
            since,
            until,
            limit,
        ),
        Cmd::Tui { conn } => cli::tui(&conn.socket(), &conn.data_dir),
        Cmd::Ack {
            alert_id,
            note,
            conn,
        } => cli::triage(&conn.socket(), &alert_id, "acknowledged", &note),
        Cmd::Resolve {
            alert_id,
            note,
            conn,
        } => cli::triage(&conn.socket(), &alert_id, "resolved", &note),
    }
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

struct DaemonArgs<'a> {
    config: Option<&'a Path>,
    conn: &'a Conn,
    events_jsonl: Option<&'a Path>,
    alerts_jsonl: Option<&'a Path>,
    rules: &'a [PathBuf],
    no_store: bool,
    ringbuf_bytes: Option<u32>,
}

fn make_data_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data dir `{}`", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot set permissions of `{}`", dir.display()))?;
    Ok(())
}

fn daemon(args: DaemonArgs<'_>) -> Result<ExitCode> {
    let DaemonArgs {
        config,
        conn,
        events_jsonl,
        alerts_jsonl,
        rules,
        no_store,
        ringbuf_bytes,
    } = args;
    let cfg = config::Config::load(config)?;
    let policy_source = policy::PolicySource::from_args(rules);
    let compiled = policy_source.compile().map_err(|e| {
        BadInput(e.context(format!("invalid policy in {}", policy_source.describe())))
    })?;
    let policy_state = policy::PolicyState::new(policy_source, &compiled);
    let compiled = Arc::new(compiled);
    if let Some(n) = ringbuf_bytes
        && (!n.is_power_of_two() || n < 4096)
    {
        return Err(BadInput(anyhow!(
            "`--ringbuf-bytes` = `{n}` must be a power of two of at least 4096"
        ))
        .into());
    }
    make_data_dir(&conn.data_dir)?;
    let sensor = loader::Sensor::load(&cfg, ringbuf_bytes.unwrap_or(cfg.ringbuf_bytes))?;
    let host = cfg.host.clone().unwrap_or_else(source::hostname);
    let (store, store_report) = if no_store {
        (None, None)
    } else {
        let dir = conn.data_dir.join("store");
        let (st, report) = agent_store::Store::open(&dir, agent_store::StoreConfig::default())
            .with_context(|| format!("cannot open the store in `{}`", dir.display()))?;
        (Some(Arc::new(st)), Some(report))
    };
    let reader = match &store {
        Some(st) => Some(Arc::new(
            st.reader().context("cannot open a reader on the store")?,
        )),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (live, _) = tokio::sync::broadcast::channel(pipeline::LIVE_CAPACITY);
    let (cmd_tx, cmd_rx) = std::sync::mpsc::sync_channel(1024);
    let reload = Arc::new(AtomicBool::new(false));
    let mut pipeline = pipeline::Pipeline::new(
        host.clone(),
        pipeline::Outputs {
            events_jsonl,
            alerts_jsonl,
        },
        live.clone(),
        compiled,
        policy_state,
        reload.clone(),
        store.clone(),
    )?;
    if let Some(report) = &store_report
        && !report.is_clean()
    {
        for msg in report.messages() {
            let now = agent_model::Timestamp::now();
            pipeline.alert(agent_model::Alert {
                id: format!("store-recovery-{}", now.0),
                time: now,
                host: host.clone(),
                rule: "store.recovery".into(),
                severity: agent_model::Severity::High,
                summary: agent_model::BStr::from(msg),
                tags: vec!["agentwatch".into(), "store".into()],
                count: 1,
                first_time: now,
                last_time: now,
                ..Default::default()
            });
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut src =
        source::SourceLoop::new(sensor, cfg.clone(), host, pipeline, cmd_rx, stop.clone());
    src.seed_from_proc();
    let socket = conn.socket();
    let listener = {
        let _g = rt.enter();
        api::bind(&socket)?
    };
    let sensor_thread = std::thread::Builder::new()
        .name("sensor".into())
        .spawn(move || src.run())?;
    let api = api::Api {
        commands: cmd_tx,
        live,
        store: store.clone(),
        reader,
    };
    rt.spawn(api.serve(listener));
    eprintln!(
        "agentwatch: daemon ready (pid {}, socket {}, config {})",
        std::process::id(),
        socket.display(),
        cfg.origin
    );
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => reload.store(true, Ordering::Relaxed),
            }
        }
        anyhow::Ok(())
    })?;
    stop.store(true, Ordering::Relaxed);
    let res = sensor_thread
        .join()
        .map_err(|_| anyhow!("sensor thread panicked"))?;
    let _ = std::fs::remove_file(&socket);
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    if let Some(st) = store
        && let Ok(st) = Arc::try_unwrap(st)
        && let Err(e) = st.close()
    {
        eprintln!("agentwatch: closing the store failed: {e}");
    }
    res?;
    Ok(ExitCode::SUCCESS)
}

fn run(agent: &str, conn: &Conn, cmd: &[std::ffi::OsString]) -> Result<ExitCode> {
    let socket = conn.socket();
    let mut c = api::Client::connect(&socket).map_err(|e| {
        anyhow!(
            "refusing to start `{}` unmonitored: {e:#}",
            cmd[0].to_string_lossy()
        )
    })?;
    let r = c.request(&json!({"op": "register", "agent": agent}))?;
    if r["ok"] != true {
        return Err(anyhow!(
            "refusing to start `{}` unmonitored: daemon said: {}",
            cmd[0].to_string_lossy(),
            r["error"].as_str().unwrap_or("unknown error")
        ));
    }
    let session = r["session"].as_str().unwrap_or("").to_owned();
    drop(c);
    if std::env::var_os("AGENTWATCH_QUIET").is_none() {
        eprintln!("agentwatch: session {session} (agent {agent})");
    }
    let err = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .env("AGENTWATCH_SESSION", &session)
        .exec();
    Err(BadInput(anyhow!("cannot run `{}`: {err}", cmd[0].to_string_lossy())).into())
}

fn status(conn: &Conn, as_json: bool) -> Result<ExitCode> {
    let mut c = api::Client::connect(&conn.socket())?;
    let v = c.request(&json!({"op": "status"}))?;
    if as_json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "daemon      pid {}  up {:.0}s  host {}",
        v["pid"],
        v["uptime_s"].as_f64().unwrap_or(0.0),
        v["host"].as_str().unwrap_or("")
    )?;
    writeln!(out, "config      {}", v["config"].as_str().unwrap_or(""))?;
    if let Some(p) = v["policy"].as_object() {
        writeln!(
            out,
            "policy      {} rules  hash {}  generation {}",
            p.get("rules").unwrap_or(&json!(0)),
            p.get("hash").and_then(|h| h.as_str()).unwrap_or("-"),
            p.get("generation").unwrap_or(&json!(0))
        )?;
    }
    writeln!(
        out,
        "programs    {}",
        v["programs"]
            .as_array()
            .map(|a| a
                .iter()
                .filter_map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(" "))
            .unwrap_or_default()
    )?;
    writeln!(out, "ring buffer {} bytes", v["ringbuf_bytes"])?;
    writeln!(out, "events      (total, per second)")?;
    if let Some(m) = v["events"].as_object() {
        for (k, n) in m {
            writeln!(
                out,
                "  {k:<16} {n:>10}  {:>8.1}/s",
                v["events_per_s"][k].as_f64().unwrap_or(0.0)
            )?;
        }
    }
    let losses = v["losses"].as_object().cloned().unwrap_or_default();
    if losses.is_empty() {
        writeln!(out, "losses      none")?;
    } else {
        writeln!(out, "losses")?;
        for (k, n) in losses {
            writeln!(out, "  {k:<16} {n:>10}")?;
        }
    }
    let sessions = v["sessions"].as_array().cloned().unwrap_or_default();
    writeln!(out, "sessions    {}", sessions.len())?;
    for s in sessions {
        writeln!(
            out,
            "  {}  {:<14} root pid {:<8} live {:<4} events {}",
            s["id"].as_str().unwrap_or(""),
            s["agent"].as_str().unwrap_or(""),
            s["root_pid"],
            s["live_processes"],
            s["events"]
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn events(conn: &Conn, session: Option<String>, as_json: bool) -> Result<ExitCode> {
    let mut c = api::Client::connect(&conn.socket())?;
    let r = c.request(&json!({"op": "subscribe", "session": session}))?;
    if r["ok"] != true {
        return Err(anyhow!("daemon refused: {}", r["error"]));
    }
    let mut out = std::io::stdout().lock();
    while let Some(line) = c.next_raw()? {
        if as_json {
            out.write_all(line.as_bytes())?;
        } else {
            writeln!(out, "{}", cli::live_line(&line))?;
        }
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}
