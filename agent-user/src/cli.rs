//! Read-side CLI commands: ask the running daemon, or open the store read-only in `--data-dir`
//! when no daemon answers (forensics on a copied data dir). Human output escapes every string
//! that came from an agent; `--json` prints one object a line. Requests and answers are the
//! `agent-api` types, the same the daemon and the TUI use.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use agent_api::{
    Aggregation, Answer, ApiError, Client, Done, Hit, Item, ProcessNode, Reply, Request,
    RulesListing, SessionDetail, SessionSummary, Status, StreamItem, TriageState,
};
use agent_model::display::{escape, event_line, event_line_dated, utc_stamp};
use agent_model::{Alert, Timestamp};
use anyhow::{Result, anyhow, bail};
use serde::Serialize;

use crate::query::{self, ReadAnswer};

/// A refusal by the daemon is bad input (exit 2); anything else is a runtime failure.
pub fn refused(e: ApiError) -> anyhow::Error {
    match e {
        ApiError::Refused(msg) => crate::BadInput(anyhow!("{msg}")).into(),
        e => e.into(),
    }
}

/// Answer a read request from the daemon, or offline from the data dir.
fn ask(socket: &Path, data_dir: &Path, req: Request) -> Result<ReadAnswer> {
    if let Ok(mut c) = Client::connect(socket) {
        let answer = match &req {
            Request::Search { .. } => c.call(&req).map(ReadAnswer::Search),
            Request::Alerts { .. } => c.call(&req).map(ReadAnswer::Alerts),
            Request::Sessions { .. } => c.call(&req).map(ReadAnswer::Sessions),
            Request::Session { .. } => c.call(&req).map(|d| ReadAnswer::Session(Box::new(d))),
            _ => bail!("`{}` is not a read request", req.op()),
        };
        return answer.map_err(refused);
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
    query::answer(&reader, req).into_result().map_err(refused)
}

fn alert_line(a: &Alert, triage: Option<TriageState>) -> String {
    format!(
        "{} {:<8} {:<12} {:<32} {}{}{}  [{}]",
        utc_stamp(a.time),
        a.severity.name().to_uppercase(),
        escape(a.agent.as_ref().map_or("-", |x| x.name.as_str())),
        escape(&a.rule),
        agent_model::display::escape_bytes(a.summary.as_bytes()),
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
        triage.unwrap_or_default().name(),
    )
}

pub(crate) fn hit_line(h: &Hit) -> String {
    match &h.item {
        Item::Alert(a) => format!("ALERT {} id={}", alert_line(a, h.triage_state()), a.id),
        Item::Event(e) => event_line_dated(e),
    }
}

/// One line of the live stream, for humans.
pub fn live_line(line: &str) -> String {
    match serde_json::from_str::<StreamItem>(line) {
        Ok(StreamItem::Lagged(n)) => format!("-- missed {n} items (client too slow)"),
        Ok(StreamItem::Alert(a)) => format!("ALERT {} id={}", alert_line(&a, None), a.id),
        Ok(StreamItem::Event(e)) => event_line(&e),
        Err(_) => format!("-- {}", escape(line.trim())),
    }
}

/// `{"aggregation": {...}}`, the last line of `search --json` when the query aggregates.
#[derive(Serialize)]
pub(crate) struct AggregationLine<'a> {
    pub(crate) aggregation: &'a Aggregation,
}

/// One JSON object a line. Encoded first, then written, so that a closed pipe (`... | head`)
/// surfaces as the `io::Error` that `main` treats as a normal end.
pub fn json_line(out: &mut dyn std::io::Write, v: &impl Serialize) -> Result<()> {
    let mut s = serde_json::to_string(v)?;
    s.push('\n');
    out.write_all(s.as_bytes())?;
    Ok(())
}

pub fn read(socket: &Path, data_dir: &Path, req: Request, as_json: bool) -> Result<ExitCode> {
    let answer = ask(socket, data_dir, req)?;
    let mut out = std::io::stdout().lock();
    if as_json {
        match &answer {
            ReadAnswer::Sessions(l) => {
                for s in &l.sessions {
                    json_line(&mut out, s)?;
                }
            }
            ReadAnswer::Session(d) => json_line(&mut out, &Reply::Ok(d))?,
            ReadAnswer::Search(r) => {
                for h in &r.hits {
                    json_line(&mut out, h)?;
                }
                if let Some(aggregation) = &r.aggregation {
                    json_line(&mut out, &AggregationLine { aggregation })?;
                }
            }
            ReadAnswer::Alerts(l) => {
                for h in &l.hits {
                    json_line(&mut out, h)?;
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    match &answer {
        ReadAnswer::Sessions(l) => print_sessions(&mut out, &l.sessions)?,
        ReadAnswer::Session(d) => print_session(&mut out, d)?,
        ReadAnswer::Search(r) => {
            for h in &r.hits {
                writeln!(out, "{}", hit_line(h))?;
            }
            if let Some(a) = &r.aggregation {
                print_agg(&mut out, a)?;
            }
            writeln!(out, "-- {} matching", r.total)?;
        }
        ReadAnswer::Alerts(l) => {
            for h in &l.hits {
                writeln!(out, "{}", hit_line(h))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Rows printed as columns as wide as their widest cell (by characters); the last column is
/// not padded. `right` marks the columns aligned right (numbers).
fn print_table(
    out: &mut dyn std::io::Write,
    rows: &[Vec<String>],
    right: &[bool],
) -> std::io::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = " ".repeat(width[i].saturating_sub(c.chars().count()));
            if right.get(i).copied().unwrap_or(false) {
                line.push_str(&pad);
                line.push_str(c);
            } else {
                line.push_str(c);
                if i + 1 < r.len() {
                    line.push_str(&pad);
                }
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn print_sessions(out: &mut dyn std::io::Write, sessions: &[SessionSummary]) -> Result<()> {
    let mut rows = vec![
        [
            "session", "agent", "start", "duration", "events", "alerts", "root",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for s in sessions {
        rows.push(vec![
            escape(&s.id),
            escape(s.agent.as_deref().unwrap_or("-")),
            utc_stamp(s.start),
            format!("{:.1}s", (s.end.0 - s.start.0) as f64 / 1e9),
            s.events.to_string(),
            s.alerts.to_string(),
            format!(
                "{} {}",
                s.root_pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                escape(s.root_exe.as_deref().unwrap_or(""))
            )
            .trim_end()
            .to_owned(),
        ]);
    }
    print_table(out, &rows, &[false, false, false, true, true, true, false])?;
    Ok(())
}

pub(crate) fn print_session(out: &mut dyn std::io::Write, d: &SessionDetail) -> Result<()> {
    writeln!(out, "session {}", escape(&d.id))?;
    writeln!(out, "\nprocess tree")?;
    fn walk(
        out: &mut dyn std::io::Write,
        procs: &[ProcessNode],
        i: usize,
        depth: usize,
    ) -> std::io::Result<()> {
        let Some(p) = procs.get(i) else {
            return Ok(());
        };
        writeln!(
            out,
            "{}{} {}",
            "  ".repeat(depth + 1),
            p.pid,
            escape(&p.exe)
        )?;
        if depth < 64 {
            for &c in &p.children {
                walk(out, procs, c, depth + 1)?;
            }
        }
        Ok(())
    }
    for &r in &d.roots {
        walk(out, &d.processes, r, 0)?;
    }
    writeln!(out, "\ntimeline")?;
    // Events and alerts merged in time order.
    let mut items: Vec<(Timestamp, String)> = Vec::new();
    for h in &d.events {
        items.push((h.item.time(), hit_line(h)));
    }
    for h in &d.alerts {
        items.push((h.item.time(), format!(">>> {}", hit_line(h))));
    }
    items.sort_by_key(|i| i.0);
    for (_, l) in items {
        writeln!(out, "  {l}")?;
    }
    Ok(())
}

pub(crate) fn print_agg(out: &mut dyn std::io::Write, a: &Aggregation) -> Result<()> {
    let buckets: Vec<(String, u64)> = match a {
        Aggregation::Count { count } => {
            writeln!(out, "count: {count}")?;
            Vec::new()
        }
        Aggregation::Terms { buckets, .. } => buckets.clone(),
        Aggregation::Histogram { buckets, .. } => {
            buckets.iter().map(|(t, n)| (t.to_rfc3339(), *n)).collect()
        }
    };
    let max = buckets.iter().map(|b| b.1).max().unwrap_or(1).max(1);
    for (label, n) in &buckets {
        let bar = "█".repeat(((n * 40) / max) as usize);
        writeln!(out, "{:<40} {:>8} {bar}", escape(label), n)?;
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
    c.call::<Done>(&Request::subscribe(None, false, true))
        .map_err(refused)?;
    let mut out = std::io::stdout().lock();
    while let Some(line) = c.next_line()? {
        if let Ok(StreamItem::Alert(a)) = serde_json::from_str(&line) {
            if a.severity < min {
                continue;
            }
            if as_json {
                out.write_all(line.as_bytes())?;
            } else {
                // The same shape as the listing printed before it (`ALERT ... id=`).
                writeln!(out, "ALERT {} id={}", alert_line(&a, None), a.id)?;
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
    let (since, until) = (b(since)?, b(until)?);
    query::check_range(since, until).map_err(|e| crate::BadInput(anyhow!("{e}")))?;
    let res = reader
        .search(&agent_store::SearchRequest {
            query: query.to_owned(),
            since,
            until,
            limit,
            offset: 0,
        })
        .map_err(|e| crate::BadInput(anyhow!("{e}")))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match format {
        // An alert's evidences: the events it names, from this export or the store.
        "ocsf" => agent_store::export::write_ocsf_resolving(
            &res.hits,
            &|id| {
                reader
                    .by_id(id)
                    .ok()?
                    .into_iter()
                    .find_map(|h| match h.hit.item {
                        agent_store::Item::Event(e) => Some(*e),
                        agent_store::Item::Alert(_) => None,
                    })
            },
            &mut out,
        )?,
        _ => agent_store::export::write_jsonl(&res.hits, &mut out)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn triage(socket: &Path, alert_id: &str, state: TriageState, note: &str) -> Result<ExitCode> {
    let mut c = Client::connect(socket)?;
    c.call::<Done>(&Request::triage(alert_id, state, note))
        .map_err(refused)?;
    writeln!(
        std::io::stdout().lock(),
        "alert {} {}",
        escape(alert_id),
        state.name()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `agentwatch fields`: the field catalogue, all of it or what one kind carries. An unknown
/// kind is bad input (exit 2) naming the kinds there are.
pub fn fields(kind: Option<&str>, as_json: bool) -> Result<ExitCode> {
    use agent_model::{FIELDS, Kind};
    let kind = match kind {
        None => None,
        Some(k) => match Kind::ALL.iter().find(|x| x.name() == k) {
            Some(k) => Some(*k),
            None => {
                let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                eprintln!(
                    "agentwatch: error: `--kind` = `{k}` is not an event kind; kinds: {}",
                    names.join(", ")
                );
                return Ok(ExitCode::from(2));
            }
        },
    };
    let mut out = std::io::stdout().lock();
    let rows = FIELDS
        .iter()
        .filter(|d| kind.is_none_or(|k| d.kinds.is_empty() || d.kinds.contains(&k)));
    let width = FIELDS.iter().map(|d| d.name.len()).max().unwrap_or(0);
    for d in rows {
        let kinds: Vec<&str> = d.kinds.iter().map(|k| k.name()).collect();
        let r = if as_json {
            let v = serde_json::json!({
                "field": d.name,
                "type": format!("{:?}", d.ty).to_lowercase(),
                "kinds": if kinds.is_empty() { vec!["all"] } else { kinds },
                "meaning": d.doc,
            });
            writeln!(out, "{v}")
        } else {
            let ty = format!("{:?}", d.ty).to_lowercase();
            writeln!(out, "{:width$}  {ty:5}  {}", d.name, d.doc)
        };
        if let Err(e) = r {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(e.into());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn rules_list(socket: &Path, as_json: bool) -> Result<ExitCode> {
    let mut c = Client::connect(socket)?;
    let l: RulesListing = c.call(&Request::Rules).map_err(refused)?;
    let mut out = std::io::stdout().lock();
    if as_json {
        json_line(&mut out, &Reply::Ok(&l))?;
        return Ok(ExitCode::SUCCESS);
    }
    let p = &l.policy;
    writeln!(
        out,
        "policy {}  generation {}  hash {}  rules {}",
        p.source, p.generation, p.hash, p.rules
    )?;
    if let Some(e) = &p.last_error {
        writeln!(out, "last reload rejected: {}", escape(e))?;
    }
    for r in &l.rules {
        writeln!(
            out,
            "{:<40} {:<9} {:>6} hits  {}",
            r.id,
            r.severity.name(),
            r.hits,
            r.description
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The TUI's backend on a data dir without a daemon: read-only answers from the store.
struct OfflineBackend {
    reader: agent_store::Reader,
}

impl tui::Backend for OfflineBackend {
    fn request(&mut self, req: &Request) -> Result<Reply<Answer>> {
        Ok(match req {
            Request::Status => Reply::Ok(Answer::Status(Box::new(Status {
                offline: true,
                ..Status::default()
            }))),
            r @ (Request::Search { .. }
            | Request::Alerts { .. }
            | Request::Sessions { .. }
            | Request::Session { .. }) => query::answer(&self.reader, r.clone()).map(|a| match a {
                query::ReadAnswer::Search(s) => Answer::Search(s),
                query::ReadAnswer::Alerts(l) => Answer::Alerts(l),
                query::ReadAnswer::Sessions(l) => Answer::Sessions(l),
                query::ReadAnswer::Session(d) => Answer::Session(d),
            }),
            r => Reply::err(format!(
                "`{}` needs a running daemon (offline, read-only)",
                r.op()
            )),
        })
    }

    fn subscribe(&mut self, _req: &Request) -> Result<Option<Box<dyn tui::Subscription>>> {
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
