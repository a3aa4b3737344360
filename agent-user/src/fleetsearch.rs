//! `agentwatch search --fleet`: one query to every host's daemon over NATS request/reply
//! (`agent_fleet::fleet_search`), the answers merged and printed like a local search, each hit
//! prefixed by the host that answered it, then which hosts answered and which did not.
//!
//! Lives apart from `cli` because it is the one read command that talks to the cluster rather
//! than to a local daemon or data dir; it reuses `cli`'s line formats.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agent_api::Request;
use agent_fleet::{FleetResults, NatsConfig};
use agent_model::display::escape;
use anyhow::{Context as _, Result, anyhow};
use serde::Serialize;

use crate::BadInput;
use crate::cli::{AggregationLine, hit_line, json_line, print_agg};

/// Where and how to reach the fleet, from the command line.
pub struct FleetArgs {
    /// Comma-separated `nats://host:port` URLs.
    pub servers: String,
    pub timeout: String,
    pub hosts: Vec<String>,
    pub prefix: String,
    pub credentials: Option<PathBuf>,
    /// From `AGENTWATCH_FLEET_TOKEN` (never the command line, which `ps` shows).
    pub token: Option<String>,
}

/// `2s`, `500ms`, `1m`, or a number of seconds.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let bad = || format!("`--fleet-timeout` = `{s}` is not a duration (e.g. `2s`, `500ms`)");
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    if !(0.001..=600.0).contains(&secs) {
        return Err(format!(
            "`--fleet-timeout` = `{s}` must be between 1ms and 10m"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[derive(Serialize)]
struct FleetLine<'a> {
    fleet: FleetSummary<'a>,
}

#[derive(Serialize)]
struct FleetSummary<'a> {
    total: u64,
    answered: &'a [String],
    failed: &'a [(String, String)],
    missing: &'a [String],
    truncated: &'a [String],
}

/// Run `req` on every host and print the merged answer.
pub fn search(args: FleetArgs, req: Request, as_json: bool) -> Result<ExitCode> {
    let timeout = parse_timeout(&args.timeout).map_err(|e| BadInput(anyhow!(e)))?;
    let servers: Vec<String> = args
        .servers
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    for h in &args.hosts {
        if h.is_empty() || agent_fleet::sanitize_token(h) != *h {
            return Err(BadInput(anyhow!(
                "`--fleet-hosts` entry `{}` is not a host subject token",
                escape(h)
            ))
            .into());
        }
    }
    let cfg = NatsConfig::client(servers, args.token, args.credentials, &args.prefix).map_err(
        |e| match e {
            agent_fleet::FleetError::Config(m) => BadInput(anyhow!("`--fleet`: {m}")),
            e => BadInput(anyhow!("`--fleet`: {e}")),
        },
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let r = rt
        .block_on(agent_fleet::fleet_search(&cfg, &req, timeout, &args.hosts))
        .context("fleet search failed")?;
    print(&r, as_json)?;
    Ok(if r.answered.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `session --fleet ID`: the session from whichever host has it.
pub fn session(args: FleetArgs, id: &str, as_json: bool) -> Result<ExitCode> {
    let timeout = parse_timeout(&args.timeout).map_err(|e| BadInput(anyhow!(e)))?;
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BadInput(anyhow!(
            "session id `{}` must be 16 hex digits with `--fleet`",
            escape(id)
        ))
        .into());
    }
    let cfg = client_config(&args)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = rt
        .block_on(agent_fleet::fleet_session(
            &cfg,
            &id.to_ascii_lowercase(),
            timeout,
        ))
        .context("fleet session look-up failed")?;
    let Some(a) = answer else {
        return Err(anyhow!(
            "no host of the fleet answered for session `{id}` within {}",
            args.timeout
        ));
    };
    let d = a.reply.into_result().map_err(|e| {
        anyhow!(
            "host `{}` has session `{id}` but cannot send it: {}",
            escape(&a.host),
            escape(&e.to_string())
        )
    })?;
    let mut out = std::io::stdout().lock();
    if as_json {
        json_line(
            &mut out,
            &serde_json::json!({"host": a.host, "ok": true, "session": d}),
        )?;
    } else {
        writeln!(out, "host        {}", escape(&a.host))?;
        crate::cli::print_session(&mut out, &d)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The client configuration of `args` (servers, credentials, prefix), checked.
pub fn client_config(args: &FleetArgs) -> Result<NatsConfig> {
    let servers: Vec<String> = args
        .servers
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    Ok(NatsConfig::client(
        servers,
        args.token.clone(),
        args.credentials.clone(),
        &args.prefix,
    )
    .map_err(|e| BadInput(anyhow!("`--fleet`: {e}")))?)
}

fn print(r: &FleetResults, as_json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let summary = FleetSummary {
        total: r.total,
        answered: &r.answered,
        failed: &r.failed,
        missing: &r.missing,
        truncated: &r.truncated,
    };
    if as_json {
        for h in &r.hits {
            json_line(&mut out, h)?;
        }
        if let Some(aggregation) = &r.aggregation {
            json_line(&mut out, &AggregationLine { aggregation })?;
        }
        json_line(&mut out, &FleetLine { fleet: summary })?;
        return Ok(());
    }
    for h in &r.hits {
        writeln!(out, "[{}] {}", escape(&h.host), hit_line(&h.hit))?;
    }
    if let Some(a) = &r.aggregation {
        print_agg(&mut out, a)?;
    }
    let list = |v: &[String]| v.iter().map(|h| escape(h)).collect::<Vec<_>>().join(", ");
    writeln!(
        out,
        "-- {} matching on {} hosts: {}",
        r.total,
        r.answered.len(),
        list(&r.answered)
    )?;
    for (h, e) in &r.failed {
        writeln!(out, "-- {} failed: {}", escape(h), escape(e))?;
    }
    if !r.missing.is_empty() {
        writeln!(out, "-- no answer in time from: {}", list(&r.missing))?;
    }
    if !r.truncated.is_empty() {
        writeln!(
            out,
            "-- hits cut to fit the NATS payload limit from: {}",
            list(&r.truncated)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_and_bad_ones_are_named() {
        assert_eq!(parse_timeout("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("3"), Ok(Duration::from_secs(3)));
        assert!(parse_timeout("2h").unwrap_err().contains("`2h`"));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("-1s").is_err());
    }
}
