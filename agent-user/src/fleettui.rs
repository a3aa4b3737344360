//! `agentwatch tui --fleet`: the TUI over the whole fleet instead of one daemon. A
//! [`tui::Backend`] that answers the TUI's requests from NATS: alerts of every host from the
//! JetStream alerts stream with the triage every console shares through the key-value bucket
//! ([`agent_fleet::Console`]), searches and a session's timeline through the fleet's
//! request/reply ([`agent_fleet::fleet_search`], [`agent_fleet::fleet_session`], answered by
//! the host that recorded it), and new alerts as the live stream.
//!
//! The TUI's worker threads call the backend and block on it, never the draw loop; one
//! [`Console`] (its own small runtime, its cache filled by background tasks) is shared by the
//! worker's request and live threads. Requests that only a daemon can answer (responses) get an
//! error naming them; rules and the session list are empty on the fleet console.

use std::sync::Arc;
use std::time::Duration;

use agent_api::{
    AlertList, Answer, Done, Hit, Item, Reply, Request, RulesListing, SearchResults, SessionList,
    Status, StreamItem, TriageState,
};
use agent_fleet::{Console, NatsConfig};
use anyhow::{Context as _, Result};

/// How far back the console reads the alerts stream.
const SINCE: Duration = Duration::from_secs(24 * 3600);

/// One console's connection, shared by the TUI's worker threads.
pub struct FleetConsole {
    rt: tokio::runtime::Runtime,
    console: Console,
    cfg: NatsConfig,
    timeout: Duration,
}

impl FleetConsole {
    /// Connect to the fleet as `who` (named in triage changes).
    pub fn connect(cfg: NatsConfig, who: &str, timeout: Duration) -> Result<FleetConsole> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fleet-console")
            .enable_all()
            .build()?;
        let console = rt
            .block_on(Console::connect(&cfg, who, SINCE))
            .context("cannot open the fleet console")?;
        Ok(FleetConsole {
            rt,
            console,
            cfg,
            timeout,
        })
    }

    /// The console (tests read and triage through it).
    pub fn console(&self) -> &Console {
        &self.console
    }

    /// Set a triage through the shared bucket (blocking).
    pub fn triage(
        &self,
        alert_id: &str,
        state: TriageState,
        note: &str,
    ) -> Result<agent_api::TriageEntry> {
        Ok(self
            .rt
            .block_on(self.console.triage(alert_id, state, note))?)
    }

    /// Answer one of the TUI's requests.
    pub fn answer(&self, req: &Request) -> Reply<Answer> {
        match req {
            Request::Status => {
                let (bad, error) = self.console.health();
                let mut host = format!("fleet {}", self.cfg.servers.join(","));
                if let Some(e) = error {
                    host.push_str(&format!(" ({e})"));
                }
                if bad > 0 {
                    host.push_str(&format!(" ({bad} bad messages)"));
                }
                Reply::Ok(Answer::Status(Box::new(Status {
                    host,
                    ..Status::default()
                })))
            }
            Request::Rules => Reply::Ok(Answer::Rules(RulesListing::default())),
            Request::Sessions { .. } => Reply::Ok(Answer::Sessions(SessionList::default())),
            Request::Alerts { limit, .. } => {
                let hits = self
                    .console
                    .alerts(*limit)
                    .into_iter()
                    .map(|(a, triage)| Hit {
                        item: Item::Alert(Box::new(a)),
                        triage,
                    })
                    .collect();
                Reply::Ok(Answer::Alerts(AlertList { hits }))
            }
            r @ Request::Search { .. } => {
                match self
                    .rt
                    .block_on(agent_fleet::fleet_search(&self.cfg, r, self.timeout, &[]))
                {
                    Ok(f) => Reply::Ok(Answer::Search(SearchResults {
                        total: f.total,
                        hits: f.hits.into_iter().map(|h| h.hit).collect(),
                        aggregation: f.aggregation,
                    })),
                    Err(e) => Reply::err(format!("fleet search: {e}")),
                }
            }
            Request::Session { id } => {
                match self
                    .rt
                    .block_on(agent_fleet::fleet_session(&self.cfg, id, self.timeout))
                {
                    Ok(Some(a)) => match a.reply {
                        Reply::Ok(d) => Reply::Ok(Answer::Session(Box::new(d))),
                        Reply::Err(e) => Reply::Err(e),
                    },
                    Ok(None) => {
                        Reply::err(format!("no host of the fleet answered for session `{id}`"))
                    }
                    Err(e) => Reply::err(format!("fleet session: {e}")),
                }
            }
            Request::Triage {
                alert_id,
                state,
                note,
            } => match TriageState::from_name(state) {
                None => Reply::err(format!("`{state}` is not a triage state")),
                Some(s) => match self.triage(alert_id, s, note) {
                    Ok(_) => Reply::Ok(Answer::Done(Done {})),
                    Err(e) => Reply::err(format!("{e:#}")),
                },
            },
            r => Reply::err(format!(
                "`{}` is not available on the fleet console",
                r.op()
            )),
        }
    }

    /// A factory for the TUI: every backend it makes shares this console.
    pub fn factory(self: Arc<Self>) -> tui::BackendFactory {
        Box::new(move || Ok(Box::new(FleetBackend(self.clone())) as Box<dyn tui::Backend>))
    }
}

struct FleetBackend(Arc<FleetConsole>);

impl tui::Backend for FleetBackend {
    fn request(&mut self, req: &Request) -> Result<Reply<Answer>> {
        Ok(self.0.answer(req))
    }

    fn subscribe(&mut self, _req: &Request) -> Result<Option<Box<dyn tui::Subscription>>> {
        Ok(Some(Box::new(FleetLive(self.0.console.live()))))
    }
}

/// New alerts of every host, as the TUI's live stream.
struct FleetLive(std::sync::mpsc::Receiver<agent_model::Alert>);

impl tui::Subscription for FleetLive {
    fn next(&mut self) -> Result<Option<tui::backend::LiveLine>> {
        Ok(self
            .0
            .recv()
            .ok()
            .map(|a| Ok(StreamItem::Alert(Box::new(a)))))
    }
}

/// Who this console's user is, for triage changes: `$USER@host`.
pub fn who() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    format!("{user}@{host}")
}

/// Run the TUI over the fleet until the user quits.
pub fn run(args: crate::fleetsearch::FleetArgs) -> Result<std::process::ExitCode> {
    use crate::BadInput;
    let timeout = crate::fleetsearch::parse_timeout(&args.timeout)
        .map_err(|e| BadInput(anyhow::anyhow!(e)))?;
    let cfg = crate::fleetsearch::client_config(&args)?;
    let console = Arc::new(FleetConsole::connect(cfg, &who(), timeout)?);
    tui::run(
        console.factory(),
        tui::Options {
            fleet: true,
            ..tui::Options::default()
        },
    )?;
    Ok(std::process::ExitCode::SUCCESS)
}
