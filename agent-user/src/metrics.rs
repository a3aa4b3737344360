//! Prometheus `/metrics` on the loopback address of `[metrics] listen` (off by default).
//!
//! The figures are the ones `agentwatch status` and `agentwatch rules list` show, asked of the
//! sensor loop by the same commands, rendered in the text exposition format (version 0.0.4).
//! The server is a few lines of HTTP/1.1 on tokio rather than a web framework: one `GET
//! /metrics` per connection, a bounded request head read under a deadline, a few connections
//! at a time (a client beyond that gets `503`), so a hostile local client can neither hold the
//! daemon's memory nor its sensor loop.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use agent_api::{RulesListing, Status};
use anyhow::{Result, anyhow, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::source::Command;

/// A per-output gauge: its name, its help text and how to read it from an output's status.
type OutputGauge = (
    &'static str,
    &'static str,
    fn(&agent_api::FleetOutputStatus) -> f64,
);

/// Longest request head read (request line and headers).
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Connections served at once.
const MAX_CONNECTIONS: usize = 4;
/// Time a client has to send its request, and the daemon to answer it.
const DEADLINE: Duration = Duration::from_secs(5);

/// Bind `addr` (checked loopback by the config).
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow!("cannot listen for `/metrics` on `{addr}`: {e}"))
}

/// Serve `/metrics` until the runtime stops.
pub async fn serve(listener: TcpListener, commands: SyncSender<Command>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                respond(&mut stream, "503 Service Unavailable", "busy\n"),
            )
            .await;
            continue;
        };
        let commands = commands.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = tokio::time::timeout(DEADLINE, handle(&mut stream, &commands)).await {
                tracing::debug!(error = %e, "metrics client timed out");
            }
        });
    }
}

async fn handle(stream: &mut TcpStream, commands: &SyncSender<Command>) -> Result<()> {
    let head = match read_head(stream).await {
        Ok(h) => h,
        Err(e) => {
            respond(stream, "400 Bad Request", &format!("{e}\n")).await?;
            return Ok(());
        }
    };
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return respond(stream, "404 Not Found", "only /metrics is served\n").await;
    }
    if method != "GET" {
        return respond(stream, "405 Method Not Allowed", "GET only\n").await;
    }
    let body = match gather(commands).await {
        Ok((st, rules)) => render(&st, &rules),
        Err(e) => return respond(stream, "503 Service Unavailable", &format!("{e}\n")).await,
    };
    respond(stream, "200 OK", &body).await
}

/// The request head up to the blank line, at most [`MAX_HEAD_BYTES`].
async fn read_head(stream: &mut TcpStream) -> Result<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before the end of the request head");
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        if buf.len() > MAX_HEAD_BYTES {
            bail!("request head longer than {MAX_HEAD_BYTES} bytes");
        }
    }
    String::from_utf8(buf).map_err(|_| anyhow!("request head is not UTF-8"))
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> Result<()> {
    let kind = if status.starts_with("200") {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

async fn gather(commands: &SyncSender<Command>) -> Result<(Status, RulesListing)> {
    let busy = || anyhow!("daemon busy: command queue full");
    let (tx, rx) = tokio::sync::oneshot::channel();
    commands
        .try_send(Command::Status { reply: tx })
        .map_err(|_| busy())?;
    let st = rx.await?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    commands
        .try_send(Command::Rules { reply: tx })
        .map_err(|_| busy())?;
    Ok((st, rx.await?))
}

/// A label value in the exposition format: `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: its `# HELP` and `# TYPE` lines, then `name{labels} value` per sample.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out, name }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let name = self.name;
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
            return;
        }
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
            .collect();
        let _ = writeln!(self.out, "{name}{{{}}} {value}", l.join(","));
    }
}

/// The family of a kind name: what comes before its first dot (`file.open` → `file`).
fn family(kind: &str) -> &str {
    kind.split('.').next().unwrap_or(kind)
}

/// The metrics of one `status` and `rules` answer, in the text exposition format.
pub fn render(st: &Status, rules: &RulesListing) -> String {
    let mut out = String::with_capacity(8 * 1024);
    Family::new(
        &mut out,
        "agentwatch_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
    )
    .sample(&[], st.uptime_s);
    let by_kind = |out: &mut String, name: &'static str, help: &str, m: &BTreeMap<String, u64>| {
        let mut f = Family::new(out, name, "counter", help);
        for (k, n) in m {
            f.sample(&[("kind", k.as_str()), ("family", family(k))], n);
        }
    };
    by_kind(
        &mut out,
        "agentwatch_events_total",
        "Events delivered by the sensor, by kind.",
        &st.events,
    );
    by_kind(
        &mut out,
        "agentwatch_ring_lost_total",
        "Records lost in the kernel because the ring buffer was full, by kind.",
        &st.losses,
    );
    by_kind(
        &mut out,
        "agentwatch_kernel_errors_total",
        "Failures counted by the eBPF programs, by kind.",
        &st.kernel_errors,
    );
    Family::new(
        &mut out,
        "agentwatch_decode_errors_total",
        "counter",
        "Kernel records that did not decode.",
    )
    .sample(&[], st.decode_errors);
    Family::new(
        &mut out,
        "agentwatch_sessions",
        "gauge",
        "Live agent sessions.",
    )
    .sample(&[], st.sessions.len());
    Family::new(
        &mut out,
        "agentwatch_output_errors_total",
        "counter",
        "Failed writes to the JSON-lines outputs.",
    )
    .sample(&[], st.output_errors);
    if let Some(p) = &st.policy {
        Family::new(
            &mut out,
            "agentwatch_alerts_total",
            "counter",
            "Alerts raised since start.",
        )
        .sample(&[], p.alerts);
        Family::new(
            &mut out,
            "agentwatch_policy_rules",
            "gauge",
            "Rules in the running policy.",
        )
        .sample(&[], p.policy.rules);
        Family::new(
            &mut out,
            "agentwatch_policy_overridden_rules",
            "gauge",
            "Rules changed by local [[override]]s.",
        )
        .sample(&[], p.policy.overridden);
        Family::new(
            &mut out,
            "agentwatch_policy_generation",
            "gauge",
            "Policy generation (bumped by each accepted reload).",
        )
        .sample(&[], p.policy.generation);
        Family::new(
            &mut out,
            "agentwatch_policy_info",
            "gauge",
            "The running policy's hash, as a label.",
        )
        .sample(&[("hash", p.policy.hash.as_str())], 1);
        Family::new(
            &mut out,
            "agentwatch_policy_reload_rejected",
            "gauge",
            "1 while the last policy reload was rejected.",
        )
        .sample(&[], u8::from(p.policy.last_error.is_some()));
        Family::new(
            &mut out,
            "agentwatch_rule_state_bytes",
            "gauge",
            "Memory held by windowed rules.",
        )
        .sample(&[], p.state_bytes);
    }
    let mut by_severity: BTreeMap<&str, u64> = agent_model::Severity::ALL
        .iter()
        .map(|s| (s.name(), 0))
        .collect();
    {
        let mut f = Family::new(
            &mut out,
            "agentwatch_rule_hits_total",
            "counter",
            "Alerts raised by each rule since start.",
        );
        for r in &rules.rules {
            *by_severity.entry(r.severity.name()).or_default() += r.hits;
            f.sample(
                &[
                    ("rule", r.id.as_str()),
                    ("severity", r.severity.name()),
                    ("enabled", if r.enabled { "true" } else { "false" }),
                ],
                r.hits,
            );
        }
    }
    {
        let mut f = Family::new(
            &mut out,
            "agentwatch_rule_alerts_by_severity_total",
            "counter",
            "Alerts raised by policy rules since start, by the rule's severity.",
        );
        for (s, n) in &by_severity {
            f.sample(&[("severity", *s)], n);
        }
    }
    if let Some(s) = &st.store {
        let st = &s.stats;
        let gauges: [(&'static str, &str, u64); 5] = [
            (
                "agentwatch_store_spool_bytes",
                "Bytes of the durable spool.",
                st.spool_bytes,
            ),
            (
                "agentwatch_store_index_bytes",
                "Bytes of the search index.",
                st.index_bytes,
            ),
            (
                "agentwatch_store_index_lag_records",
                "Records durable but not yet searchable.",
                st.lag,
            ),
            (
                "agentwatch_store_unsynced_records",
                "Records handed out but not yet fsynced.",
                st.last_seq.saturating_sub(st.durable_seq),
            ),
            (
                "agentwatch_store_full",
                "1 while the disk does not take writes.",
                u64::from(st.full),
            ),
        ];
        for (name, help, v) in gauges {
            Family::new(&mut out, name, "gauge", help).sample(&[], v);
        }
        Family::new(
            &mut out,
            "agentwatch_store_dropped_total",
            "counter",
            "Records refused because the disk did not take them.",
        )
        .sample(&[], st.dropped);
        Family::new(
            &mut out,
            "agentwatch_store_errors_total",
            "counter",
            "Failed appends to the store.",
        )
        .sample(&[], s.errors);
    }
    if let Some(i) = &st.integrity {
        Family::new(
            &mut out,
            "agentwatch_integrity_checks_total",
            "counter",
            "Checks of the kernel maps against the daemon's copy.",
        )
        .sample(&[], i.checks);
        Family::new(
            &mut out,
            "agentwatch_integrity_repairs_total",
            "counter",
            "Kernel map entries found missing, altered or added, and put back.",
        )
        .sample(&[], i.repairs);
        Family::new(
            &mut out,
            "agentwatch_integrity_failures_total",
            "counter",
            "Kernel map entries that could not be put back.",
        )
        .sample(&[], i.failures);
    }
    if let Some(t) = &st.intent {
        Family::new(
            &mut out,
            "agentwatch_tls_records_total",
            "counter",
            "TLS plaintext records of session processes handed to the parsers.",
        )
        .sample(&[], t.tls_records);
        for (name, help, map) in [
            (
                "agentwatch_llm_requests_total",
                "Model API requests parsed, by provider.",
                &t.requests,
            ),
            (
                "agentwatch_llm_responses_total",
                "Model API responses parsed, by provider.",
                &t.responses,
            ),
        ] {
            let mut f = Family::new(&mut out, name, "counter", help);
            for (p, n) in map {
                f.sample(&[("provider", p.as_str())], *n);
            }
        }
        Family::new(
            &mut out,
            "agentwatch_intent_parse_failures_total",
            "counter",
            "Malformed HTTP, HTTP/2, HPACK, JSON or JSON-RPC input met by the intent parsers.",
        )
        .sample(&[], t.parse_failures);
        Family::new(
            &mut out,
            "agentwatch_intent_bytes_dropped_total",
            "counter",
            "Plaintext bytes dropped by the parsers' bounds or never copied by the kernel.",
        )
        .sample(&[], t.bytes_dropped);
    }
    if !st.fleet.is_empty() {
        let gauges: [OutputGauge; 3] = [
            (
                "agentwatch_output_backlog_records",
                "Spool records durable but not yet acknowledged by the output.",
                |o| o.backlog as f64,
            ),
            (
                "agentwatch_output_lag_seconds",
                "Age of the oldest record the output has not yet acknowledged.",
                |o| o.lag_ms as f64 / 1000.0,
            ),
            (
                "agentwatch_output_connected",
                "1 while the output is connected.",
                |o| f64::from(u8::from(o.connected)),
            ),
        ];
        for (name, help, get) in gauges {
            let mut f = Family::new(&mut out, name, "gauge", help);
            for o in &st.fleet {
                f.sample(&[("output", o.name.as_str())], get(o));
            }
        }
        let mut f = Family::new(
            &mut out,
            "agentwatch_output_shipped_total",
            "counter",
            "Records the output acknowledged since start.",
        );
        for o in &st.fleet {
            f.sample(&[("output", o.name.as_str())], o.shipped);
        }
        let mut f = Family::new(
            &mut out,
            "agentwatch_output_dropped_total",
            "counter",
            "Records retention deleted before the output shipped them.",
        );
        for o in &st.fleet {
            f.sample(&[("output", o.name.as_str())], o.dropped);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_api::{PolicyHealth, RuleStatus};
    use agent_model::{Kind, Severity};

    #[test]
    fn intent_counters_are_exported_per_provider() {
        let mut st = Status::default();
        assert!(!render(&st, &RulesListing::default()).contains("agentwatch_llm_"));
        let mut t = agent_api::IntentStatus {
            tls_records: 9,
            parse_failures: 2,
            bytes_dropped: 40,
            ..Default::default()
        };
        t.requests.insert("anthropic".into(), 3);
        t.responses.insert("gemini".into(), 1);
        st.intent = Some(t);
        let text = render(&st, &RulesListing::default());
        for line in [
            "agentwatch_tls_records_total 9",
            "agentwatch_llm_requests_total{provider=\"anthropic\"} 3",
            "agentwatch_llm_responses_total{provider=\"gemini\"} 1",
            "agentwatch_intent_parse_failures_total 2",
            "agentwatch_intent_bytes_dropped_total 40",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
    }

    #[test]
    fn render_is_valid_exposition_with_escaped_labels() {
        let mut st = Status::default();
        st.events.insert("file.open".into(), 7);
        st.losses.insert("file.open".into(), 1);
        st.policy = Some(PolicyHealth {
            alerts: 3,
            ..Default::default()
        });
        st.fleet.push(agent_api::FleetOutputStatus {
            name: "we\"ird\\name\n".into(),
            backlog: 5,
            ..Default::default()
        });
        let rules = RulesListing {
            rules: vec![RuleStatus {
                id: "cred.read".into(),
                severity: Severity::High,
                enabled: true,
                description: String::new(),
                kinds: vec![Kind::FileOpen],
                tags: vec![],
                mode: "event".into(),
                defined_at: String::new(),
                hits: 3,
                last_hit: None,
                overrides: vec![],
                action: None,
                action_mode: None,
            }],
            ..Default::default()
        };
        let text = render(&st, &rules);
        assert!(
            text.contains("agentwatch_events_total{kind=\"file.open\",family=\"file\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("agentwatch_ring_lost_total{kind=\"file.open\",family=\"file\"} 1\n")
        );
        assert!(text.contains(
            "agentwatch_rule_hits_total{rule=\"cred.read\",severity=\"high\",enabled=\"true\"} 3\n"
        ));
        assert!(text.contains("agentwatch_rule_alerts_by_severity_total{severity=\"high\"} 3\n"));
        assert!(text.contains("agentwatch_rule_alerts_by_severity_total{severity=\"low\"} 0\n"));
        assert!(text.contains("agentwatch_alerts_total 3\n"));
        assert!(
            text.contains("agentwatch_output_backlog_records{output=\"we\\\"ird\\\\name\\n\"} 5\n")
        );
        // Every sample line belongs to a family declared once, HELP then TYPE.
        let mut declared = std::collections::HashSet::new();
        let mut last_type = "";
        for l in text.lines() {
            if let Some(r) = l.strip_prefix("# TYPE ") {
                let name = r.split(' ').next().unwrap();
                assert!(declared.insert(name.to_owned()), "declared twice: {name}");
                last_type = r.split(' ').next().unwrap();
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap();
                assert_eq!(name, last_type, "sample outside its family: {l}");
            }
        }
    }
}
