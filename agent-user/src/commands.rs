//! The client commands that talk to a running daemon over its socket and are not read-only
//! queries: `run` (register a session, then exec the agent), `status`, `events` and `session
//! kill|freeze|thaw` (response), and the
//! connection arguments every client command shares.
//!
//! The read-only query commands (search, alerts, sessions, export, tui) live in [`crate::cli`].

use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agent_api::{Client, Done, Registered, Reply, Request, Responded, SessionAction, Status};
use anyhow::{Result, anyhow};

use crate::{BadInput, cli};

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/agentwatch";

/// How a client finds the daemon: its data directory and socket.
#[derive(clap::Args, Clone)]
pub struct Conn {
    /// Data directory of the daemon (its socket is `<data-dir>/agentwatch.sock`).
    #[arg(long, default_value = DEFAULT_DATA_DIR, env = "AGENTWATCH_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Socket path (overrides `<data-dir>/agentwatch.sock`).
    #[arg(long, env = "AGENTWATCH_SOCKET")]
    pub socket: Option<PathBuf>,
}

impl Conn {
    pub fn socket(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join("agentwatch.sock"))
    }
}

/// The uid of the process at the other end of a unix socket (`SO_PEERCRED`: its credentials
/// when it called `listen`, which it cannot fake).
pub fn peer_uid(s: &UnixStream) -> std::io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given; the fd is open.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// `agentwatch run`: connect, check that the listener is the daemon (root or `[daemon] user`,
/// from `config`), register this process, then exec the command in its place.
pub fn run(
    agent: &str,
    conn: &Conn,
    config: Option<&Path>,
    cmd: &[std::ffi::OsString],
) -> Result<ExitCode> {
    if !valid_agent_name(agent) {
        return Err(BadInput(anyhow!(
            "`--agent` = `{}` must be 1 to 64 ASCII letters, digits, `-`, `_` or `.`",
            agent_model::display::escape(agent)
        ))
        .into());
    }
    let socket = conn.socket();
    let refuse = |why: String| {
        anyhow!(
            "refusing to start `{}` unmonitored: {why}",
            cmd[0].to_string_lossy()
        )
    };
    let allowed = crate::config::Config::load(config)?.daemon_uids()?;
    let stream = UnixStream::connect(&socket).map_err(|e| {
        refuse(format!(
            "{:#}",
            anyhow::Error::new(agent_api::ApiError::Connect {
                path: socket.clone(),
                source: e,
            })
        ))
    })?;
    let uid = peer_uid(&stream).map_err(|e| {
        refuse(format!(
            "cannot tell who listens on `{}`: {e}",
            socket.display()
        ))
    })?;
    if !allowed.contains(&uid) {
        return Err(refuse(format!(
            "the process listening on `{}` runs as uid `{uid}`, not as root or the configured daemon user (uids {allowed:?}); it is not the agentwatch daemon",
            socket.display()
        )));
    }
    let mut c = Client::from_stream(stream)?;
    let session = match c.reply::<Registered>(&Request::Register {
        agent: agent.to_owned(),
    })? {
        Reply::Ok(r) => r.session,
        Reply::Err(e) => return Err(refuse(format!("daemon said: {e}"))),
    };
    drop(c);
    if std::env::var_os("AGENTWATCH_QUIET").is_none() {
        eprintln!("agentwatch: session {session} (agent {agent})");
    }
    let err = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .env("AGENTWATCH_SESSION", &session)
        .exec();
    // As a shell does: 127 when the command is not found, 126 when it cannot be executed.
    eprintln!(
        "agentwatch: error: cannot run `{}`: {err}",
        escape_os(&cmd[0])
    );
    Ok(ExitCode::from(
        if err.kind() == std::io::ErrorKind::NotFound {
            127
        } else {
            126
        },
    ))
}

/// An OS string for a message: UTF-8 escaped as in events, other bytes as `\xNN`.
fn escape_os(s: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    agent_model::display::escape_bytes(s.as_bytes())
}

/// An agent name as the config allows it: ASCII letters, digits, `-`, `_`, `.`, at most 64.
pub fn valid_agent_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// `agentwatch session kill|freeze|thaw ID`: ask on a terminal unless `yes`, then ask the
/// daemon, which records the action as an event of the session.
pub fn respond(
    conn: &Conn,
    action: &str,
    session: &str,
    note: String,
    yes: bool,
    as_json: bool,
) -> Result<ExitCode> {
    use std::io::IsTerminal as _;
    let action = match action {
        "kill" => SessionAction::Kill,
        "freeze" => SessionAction::Freeze,
        "thaw" => SessionAction::Thaw,
        other => {
            return Err(BadInput(anyhow!(
                "unknown session action `{other}`; expected `kill`, `freeze` or `thaw` (or only a session id)"
            ))
            .into());
        }
    };
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(BadInput(anyhow!(
                "`session {}` needs confirmation: run it on a terminal or pass `--yes`",
                action.name()
            ))
            .into());
        }
        eprint!(
            "{} every process of session {session}? type `yes` to confirm: ",
            action.name()
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            eprintln!("agentwatch: not confirmed, nothing done");
            return Ok(ExitCode::from(1));
        }
    }
    let mut c = Client::connect(&conn.socket())?;
    let r: Responded = c
        .call(&Request::Respond {
            session: session.to_owned(),
            action,
            note,
        })
        .map_err(|e| anyhow!("daemon refused: {e}"))?;
    let mut out = std::io::stdout().lock();
    if as_json {
        cli::json_line(&mut out, &Reply::Ok(&r))?;
    } else {
        writeln!(
            out,
            "{} session {}: {} ({} processes; event {})",
            r.action, r.session, r.result, r.processes, r.event
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn status(conn: &Conn, as_json: bool) -> Result<ExitCode> {
    let mut c = Client::connect(&conn.socket())?;
    let st: Status = c.call(&Request::Status).map_err(cli::refused)?;
    let mut out = std::io::stdout().lock();
    if as_json {
        cli::json_line(&mut out, &Reply::Ok(&st))?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "daemon      pid {}  up {:.0}s  host {}",
        st.pid, st.uptime_s, st.host
    )?;
    writeln!(out, "config      {}", st.config)?;
    if let Some(p) = &st.policy {
        writeln!(
            out,
            "policy      {} rules  hash {}  generation {}{}",
            p.policy.rules,
            p.policy.hash,
            p.policy.generation,
            match p.policy.overridden {
                0 => String::new(),
                n => format!("  {n} overridden"),
            }
        )?;
    }
    writeln!(out, "programs    {}", st.programs.join(" "))?;
    writeln!(out, "ring buffer {} bytes", st.ringbuf_bytes)?;
    writeln!(out, "events      (total, per second)")?;
    for (k, n) in &st.events {
        writeln!(
            out,
            "  {k:<16} {n:>10}  {:>8.1}/s",
            st.events_per_s.get(k).copied().unwrap_or(0.0)
        )?;
    }
    if st.losses.is_empty() {
        writeln!(out, "losses      none")?;
    } else {
        writeln!(out, "losses")?;
        for (k, n) in &st.losses {
            writeln!(out, "  {k:<16} {n:>10}")?;
        }
    }
    if let Some(e) = &st.egress {
        writeln!(
            out,
            "egress      {} denied  {} dry-run  {} lost  {} repeats  dns: {} allowed, {} refused",
            e.denied, e.dry_run, e.lost, e.suppressed, e.dns_allowed, e.dns_refused
        )?;
        for p in &e.policies {
            writeln!(
                out,
                "  {:<16} {:<8} {:>6} denied {:>6} dry-run  agents {}",
                p.name,
                p.mode,
                p.denied,
                p.dry_run,
                p.agents.join(",")
            )?;
        }
    }
    if let Some(t) = &st.intent {
        let sum = |m: &std::collections::BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            out,
            "tls         {} records  {} bytes  {} parse failures  {} bytes dropped",
            t.tls_records, t.tls_bytes, t.parse_failures, t.bytes_dropped
        )?;
        writeln!(
            out,
            "  requests  {}\n  responses {}",
            sum(&t.requests),
            sum(&t.responses)
        )?;
    }
    if let Some(i) = &st.integrity {
        writeln!(
            out,
            "integrity   {} checks  {} repairs  {} unrepaired",
            i.checks, i.repairs, i.failures
        )?;
        if let Some(f) = &i.last_finding {
            writeln!(out, "  last      {}", agent_model::display::escape(f))?;
        }
    }
    if let Some(s) = &st.store {
        writeln!(
            out,
            "store       {} events  {} alerts  durable seq {}  indexed seq {}  lag {}  {} write errors",
            s.stats.events,
            s.stats.alerts,
            s.stats.durable_seq,
            s.stats.indexed_seq,
            s.stats.lag,
            s.errors
        )?;
        if s.stats.full {
            writeln!(
                out,
                "  OUT OF SPACE: {}",
                s.stats.space_error.as_deref().unwrap_or("writes fail")
            )?;
        }
        if s.stats.dropped > 0 {
            writeln!(
                out,
                "  {} records not stored (disk full) in {} outages",
                s.stats.dropped, s.stats.outages
            )?;
        }
        if s.stats.reserve_dropped > 0 {
            writeln!(
                out,
                "  {} events refused under the low-space reserve (alerts and monitor events kept)",
                s.stats.reserve_dropped
            )?;
        }
        if let Some(e) = &s.stats.index_error {
            writeln!(out, "  indexer retrying: {e}")?;
        }
        if let Some(e) = &s.last_error {
            writeln!(out, "  last error: {e}")?;
        }
    }
    writeln!(out, "sessions    {}", st.sessions.len())?;
    for s in &st.sessions {
        writeln!(
            out,
            "  {}  {:<14} root pid {:<8} live {:<4} events {}",
            s.id, s.agent, s.root_pid, s.live_processes, s.events
        )?;
    }
    for f in &st.fleet {
        writeln!(
            out,
            "fleet       {} ({})  {}  acked seq {}  backlog {}  lag {} ms  shipped {}  last ack {}",
            f.name,
            f.servers.join(","),
            if f.connected {
                "connected"
            } else {
                "disconnected"
            },
            f.acked_seq,
            f.backlog,
            f.lag_ms,
            f.shipped,
            f.last_ack.map_or("never".into(), |t| t.to_rfc3339()),
        )?;
        if let Some(e) = &f.last_error {
            writeln!(out, "  last error: {e}")?;
        }
        if f.dropped > 0 {
            writeln!(
                out,
                "  {} records removed by retention before they were shipped",
                f.dropped
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn events(conn: &Conn, session: Option<String>, as_json: bool) -> Result<ExitCode> {
    let mut c = Client::connect(&conn.socket())?;
    c.call::<Done>(&Request::subscribe(session, true, true))
        .map_err(|e| anyhow!("daemon refused: {e}"))?;
    let mut out = std::io::stdout().lock();
    while let Some(line) = c.next_line()? {
        if as_json {
            out.write_all(line.as_bytes())?;
        } else {
            writeln!(out, "{}", cli::live_line(&line))?;
        }
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}
