//! Read-side CLI commands: ask the running daemon, or open the store read-only in `--data-dir`
//! when no daemon answers (forensics on a copied data dir). Human output escapes every string
//! that came from an agent; `--json` prints one object a line.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use agent_model::display::{escape, event_line};
use agent_model::{Alert, Event};
use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};

use crate::api::{Client, Request};

/// Answer a read request from the daemon, or offline from the data dir.
fn ask(socket: &Path, data_dir: &Path, req: Value) -> Result<Value> {
    if let Ok(mut c) = Client::connect(socket) {
        return c.request(&req);
    }
    let dir = data_dir.join("store");
    if !dir.exists() {
        bail!(
            "no daemon answers on `{}` and there is no store in `{}`; hint: start the daemon or pass --data-dir",
            socket.display(),
            data_dir.display()
        );
    }
    let reader = agent_store::Reader::open(&dir)?;
    let req: Request = serde_json::from_value(req)?;
    Ok(crate::query::answer(&reader, req))
}

fn check(v: &Value) -> Result<()> {
    if v["ok"] != true {
        return Err(crate::BadInput(anyhow!(
            "{}",
            v["error"].as_str().unwrap_or("request failed")
        ))
        .into());
    }
    Ok(())
}

fn alert_line(a: &Alert, triage: Option<&str>) -> String {
    let t = a.time.to_rfc3339();
    format!(
        "{} {:<8} {:<12} {:<32} {}{}{}  [{}]",
        t.get(..19).unwrap_or(&t),
        a.severity.name().to_uppercase(),
        escape(a.agent.as_ref().map_or("-", |x| x.name.as_str())),
        escape(&a.rule),
        escape(&a.summary.to_str_lossy()),
        if a.count > 1 {
            format!(" (x{})", a.count)
        } else {
            String::new()
        },
        if a.in_loss_window {
            " [events were lost near this alert]"
        } else {
            ""
        },
        triage.unwrap_or("open"),
    )
}

fn hit_line(h: &Value) -> String {
    if let Some(a) = h.get("alert") {
        match serde_json::from_value::<Alert>(a.clone()) {
            Ok(a) => format!(
                "ALERT {} id={}",
                alert_line(&a, h["triage"]["state"].as_str()),
                a.id
            ),
            Err(_) => escape(&h.to_string()),
        }
    } else {
        match serde_json::from_value::<Event>(h.clone()) {
            Ok(e) => event_line(&e),
            Err(_) => escape(&h.to_string()),
        }
    }
}

/// One line of the live stream, for humans.
pub fn live_line(line: &str) -> String {
    match serde_json::from_str::<Value>(line) {
        Ok(v) if v.get("lagged").is_some() => {
            format!("-- missed {} items (client too slow)", v["lagged"])
        }
        Ok(v) => hit_line(&v),
        Err(_) => format!("-- {}", escape(line.trim())),
    }
}

pub fn read(socket: &Path, data_dir: &Path, req: Value, as_json: bool) -> Result<ExitCode> {
    let op = req["op"].as_str().unwrap_or("").to_owned();
    let v = ask(socket, data_dir, req)?;
    check(&v)?;
    let mut out = std::io::stdout().lock();
    if as_json {
        match op.as_str() {
            "sessions" => {
                for s in v["sessions"].as_array().into_iter().flatten() {
                    writeln!(out, "{s}")?;
                }
            }
            "session" => writeln!(out, "{v}")?,
            _ => {
                for h in v["hits"].as_array().into_iter().flatten() {
                    writeln!(out, "{h}")?;
                }
                if let Some(a) = v.get("aggregation").filter(|a| !a.is_null()) {
                    writeln!(out, "{}", json!({"aggregation": a}))?;
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    match op.as_str() {
        "sessions" => {
            writeln!(
                out,
                "{:<18} {:<14} {:<20} {:>8} {:>7} {:>7}  root",
                "session", "agent", "start", "duration", "events", "alerts"
            )?;
            for s in v["sessions"].as_array().into_iter().flatten() {
                let start = s["start"].as_str().unwrap_or("");
                let dur = match (
                    agent_model::Timestamp::parse_rfc3339(start),
                    agent_model::Timestamp::parse_rfc3339(s["end"].as_str().unwrap_or("")),
                ) {
                    (Some(a), Some(b)) => format!("{:.1}s", (b.0 - a.0) as f64 / 1e9),
                    _ => "-".into(),
                };
                writeln!(
                    out,
                    "{:<18} {:<14} {:<20} {:>8} {:>7} {:>7}  {} {}",
                    escape(s["id"].as_str().unwrap_or("")),
                    escape(s["agent"].as_str().unwrap_or("-")),
                    start.get(..19).unwrap_or(start),
                    dur,
                    s["events"],
                    s["alerts"],
                    s["root_pid"],
                    escape(s["root_exe"].as_str().unwrap_or("")),
                )?;
            }
        }
        "session" => {
            writeln!(out, "session {}", escape(v["id"].as_str().unwrap_or("")))?;
            writeln!(out, "\nprocess tree")?;
            let procs = v["processes"].as_array().cloned().unwrap_or_default();
            fn walk(
                out: &mut dyn std::io::Write,
                procs: &[Value],
                i: usize,
                depth: usize,
            ) -> std::io::Result<()> {
                let p = &procs[i];
                writeln!(
                    out,
                    "{}{} {}",
                    "  ".repeat(depth + 1),
                    p["pid"],
                    escape(p["exe"].as_str().unwrap_or(""))
                )?;
                if depth < 64 {
                    for c in p["children"].as_array().into_iter().flatten() {
                        if let Some(c) = c.as_u64() {
                            walk(out, procs, c as usize, depth + 1)?;
                        }
                    }
                }
                Ok(())
            }
            for r in v["roots"].as_array().into_iter().flatten() {
                if let Some(r) = r.as_u64().filter(|r| (*r as usize) < procs.len()) {
                    walk(&mut out, &procs, r as usize, 0)?;
                }
            }
            writeln!(out, "\ntimeline")?;
            // Events and alerts merged in time order.
            let mut items: Vec<(String, String)> = Vec::new();
            for h in v["events"].as_array().into_iter().flatten() {
                items.push((h["time"].as_str().unwrap_or("").to_owned(), hit_line(h)));
            }
            for h in v["alerts"].as_array().into_iter().flatten() {
                items.push((
                    h["alert"]["time"].as_str().unwrap_or("").to_owned(),
                    format!(">>> {}", hit_line(h)),
                ));
            }
            items.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, l) in items {
                writeln!(out, "  {l}")?;
            }
        }
        _ => {
            for h in v["hits"].as_array().into_iter().flatten() {
                writeln!(out, "{}", hit_line(h))?;
            }
            if let Some(a) = v.get("aggregation").filter(|a| !a.is_null()) {
                print_agg(&mut out, a)?;
            }
            if let Some(t) = v["total"].as_u64() {
                writeln!(out, "-- {t} matching")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_agg(out: &mut dyn std::io::Write, a: &Value) -> Result<()> {
    let buckets = a["buckets"].as_array().cloned().unwrap_or_default();
    let max = buckets
        .iter()
        .filter_map(|b| b[1].as_u64())
        .max()
        .unwrap_or(1)
        .max(1);
    if let Some(c) = a["count"].as_u64() {
        writeln!(out, "count: {c}")?;
    }
    for b in &buckets {
        let n = b[1].as_u64().unwrap_or(0);
        let label = match &b[0] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let bar = "█".repeat(((n * 40) / max) as usize);
        writeln!(out, "{:<40} {:>8} {bar}", escape(&label), n)?;
    }
    Ok(())
}

pub fn follow_alerts(socket: &Path, severity: Option<&str>, as_json: bool) -> Result<ExitCode> {
    let min = match severity {
        Some(s) => agent_model::Severity::from_name(s)
            .ok_or_else(|| crate::BadInput(anyhow!("unknown severity `{s}`")))?,
        None => agent_model::Severity::Info,
    };
    let mut c = Client::connect(socket)?;
    let r = c.request(&json!({"op": "subscribe", "events": false, "alerts": true}))?;
    check(&r)?;
    let mut out = std::io::stdout().lock();
    while let Some(line) = c.next_raw()? {
        let v: Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(a) = v
            .get("alert")
            .and_then(|a| serde_json::from_value::<Alert>(a.clone()).ok())
        {
            if a.severity < min {
                continue;
            }
            if as_json {
                out.write_all(line.as_bytes())?;
            } else {
                writeln!(out, "{} id={}", alert_line(&a, None), a.id)?;
            }
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn export(
    data_dir: &Path,
    query: &str,
    format: &str,
    since: Option<String>,
    until: Option<String>,
    limit: usize,
) -> Result<ExitCode> {
    let dir = data_dir.join("store");
    let reader = agent_store::Reader::open(&dir)?;
    let now = agent_model::Timestamp::now();
    let b = |s: Option<String>| -> Result<Option<agent_model::Timestamp>> {
        s.map(|s| {
            agent_store::parse_time_bound(&s, now)
                .map_err(|e| crate::BadInput(anyhow!("{e}")).into())
        })
        .transpose()
    };
    let res = reader
        .search(&agent_store::SearchRequest {
            query: query.to_owned(),
            since: b(since)?,
            until: b(until)?,
            limit,
            offset: 0,
        })
        .map_err(|e| crate::BadInput(anyhow!("{e}")))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match format {
        "ocsf" => agent_store::export::write_ocsf(&res.hits, &mut out)?,
        _ => agent_store::export::write_jsonl(&res.hits, &mut out)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn triage(socket: &Path, alert_id: &str, state: &str, note: &str) -> Result<ExitCode> {
    let mut c = Client::connect(socket)?;
    let v =
        c.request(&json!({"op": "triage", "alert_id": alert_id, "state": state, "note": note}))?;
    check(&v)?;
    println!("alert {} {state}", escape(alert_id));
    Ok(ExitCode::SUCCESS)
}

pub fn rules_list(socket: &Path, as_json: bool) -> Result<ExitCode> {
    let mut c = Client::connect(socket)?;
    let v = c.request(&json!({"op": "rules"}))?;
    check(&v)?;
    if as_json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    let p = &v["policy"];
    println!(
        "policy {}  generation {}  hash {}  rules {}",
        p["source"].as_str().unwrap_or(""),
        p["generation"],
        p["hash"].as_str().unwrap_or(""),
        p["rules"]
    );
    if let Some(e) = p["last_error"].as_str() {
        println!("last reload rejected: {}", escape(e));
    }
    for r in v["rules"].as_array().into_iter().flatten() {
        println!(
            "{:<40} {:<9} {:>6} hits  {}",
            r["id"].as_str().unwrap_or(""),
            r["severity"].as_str().unwrap_or(""),
            r["hits"],
            r["description"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The TUI's backend on a data dir without a daemon: read-only answers from the store.
struct OfflineBackend {
    reader: agent_store::Reader,
}

impl tui::Backend for OfflineBackend {
    fn request(&mut self, req: &Value) -> Result<Value> {
        match req["op"].as_str() {
            Some("search" | "alerts" | "sessions" | "session") => {
                let r: Request = serde_json::from_value(req.clone())?;
                Ok(crate::query::answer(&self.reader, r))
            }
            Some("status") => Ok(json!({"ok": true, "offline": true})),
            Some(op) => Ok(
                json!({"ok": false, "error": format!("`{op}` needs a running daemon (offline, read-only)")}),
            ),
            None => Ok(json!({"ok": false, "error": "bad request"})),
        }
    }

    fn subscribe(&mut self, _req: &Value) -> Result<Option<Box<dyn tui::Subscription>>> {
        Ok(None)
    }
}

pub fn tui(socket: &Path, data_dir: &Path) -> Result<ExitCode> {
    let factory: tui::BackendFactory = if Client::connect(socket).is_ok() {
        tui::SocketBackend::factory(socket.to_path_buf())
    } else {
        let dir = data_dir.join("store");
        if !dir.exists() {
            bail!(
                "no daemon answers on `{}` and there is no store in `{}`; hint: start the daemon or pass --data-dir",
                socket.display(),
                data_dir.display()
            );
        }
        Box::new(move || {
            Ok(Box::new(OfflineBackend {
                reader: agent_store::Reader::open(&dir)?,
            }) as Box<dyn tui::Backend>)
        })
    };
    tui::run(factory, tui::Options::default())?;
    Ok(ExitCode::SUCCESS)
}
