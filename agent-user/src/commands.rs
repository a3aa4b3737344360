//! The client commands that talk to a running daemon over its socket and are not read-only
//! queries: `run` (register a session, then exec the agent), `status` and `events`, and the
//! connection arguments every client command shares.
//!
//! The read-only query commands (search, alerts, sessions, export, tui) live in [`crate::cli`].

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use serde_json::json;

use crate::{BadInput, api, cli};

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

pub fn run(agent: &str, conn: &Conn, cmd: &[std::ffi::OsString]) -> Result<ExitCode> {
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

pub fn status(conn: &Conn, as_json: bool) -> Result<ExitCode> {
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

pub fn events(conn: &Conn, session: Option<String>, as_json: bool) -> Result<ExitCode> {
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
