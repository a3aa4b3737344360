//! The daemon's local API: JSON lines over a unix socket (`<data-dir>/agentwatch.sock`, 0600).
//!
//! A client sends one request object per line; the daemon answers with one object per line, or a
//! stream for `subscribe`. See `docs/api.md` for the protocol. The peer's credentials come from
//! `SO_PEERCRED`: `register` always registers the connecting process itself, never a pid named in
//! the request, so a client cannot put another process into a session it chose.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use crate::pipeline::LiveItem;
use crate::query;
use anyhow::{Context as _, Result, anyhow, bail};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;

use crate::source::Command;

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Put the calling process into a new session of agent `agent`.
    Register {
        agent: String,
    },
    Status,
    /// Loaded rules with hit counts and the policy state.
    Rules,
    /// Stream live events and alerts (optionally of one session) as JSON lines.
    Subscribe {
        #[serde(default)]
        session: Option<String>,
        /// Include events (default true).
        #[serde(default = "yes")]
        events: bool,
        /// Include alerts (default true).
        #[serde(default = "yes")]
        alerts: bool,
    },
    /// Query stored events and alerts.
    Search {
        #[serde(default)]
        query: String,
        #[serde(default)]
        since: Option<String>,
        #[serde(default)]
        until: Option<String>,
        #[serde(default = "default_limit")]
        limit: usize,
        #[serde(default)]
        offset: usize,
    },
    Alerts {
        #[serde(default)]
        since: Option<String>,
        #[serde(default)]
        severity: Option<String>,
        #[serde(default = "default_limit")]
        limit: usize,
    },
    Sessions {
        #[serde(default)]
        since: Option<String>,
    },
    Session {
        id: String,
    },
    /// Set an alert's triage state (`open`, `acknowledged`, `resolved`) with a note.
    Triage {
        alert_id: String,
        state: String,
        #[serde(default)]
        note: String,
    },
}

fn yes() -> bool {
    true
}

fn default_limit() -> usize {
    100
}

#[derive(Clone)]
pub struct Api {
    pub commands: SyncSender<Command>,
    pub live: broadcast::Sender<Arc<LiveItem>>,
    pub store: Option<Arc<agent_store::Store>>,
    pub reader: Option<Arc<agent_store::Reader>>,
}

/// Bind the socket: 0600, replacing a stale socket file but never a live daemon's.
pub fn bind(path: &Path) -> Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "another daemon is listening on `{}`; hint: stop it or use another --data-dir",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket `{}`", path.display()))?;
    }
    let l =
        UnixListener::bind(path).with_context(|| format!("cannot bind `{}`", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

impl Api {
    pub async fn serve(self, listener: UnixListener) {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let api = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = api.handle(stream).await {
                            tracing::debug!(error = %format!("{e:#}"), "api connection ended");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn handle(self, stream: UnixStream) -> Result<()> {
        let cred = stream.peer_cred()?;
        // Only root and the daemon's own uid may talk to it (the socket is 0600 as well).
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if cred.uid() != 0 && cred.uid() != me {
            bail!("peer uid `{}` refused", cred.uid());
        }
        let (r, mut w) = stream.into_split();
        let mut lines = tokio::io::BufReader::new(r).lines();
        while let Some(line) = lines.next_line().await? {
            let req: Request = match serde_json::from_str(&line) {
                Ok(r) => r,
                Err(e) => {
                    write_line(
                        &mut w,
                        &json!({"ok": false, "error": format!("bad request: {e}")}),
                    )
                    .await?;
                    continue;
                }
            };
            match req {
                Request::Register { agent } => {
                    let pid = cred.pid().ok_or_else(|| anyhow!("peer pid unknown"))? as u32;
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    self.send(Command::Register {
                        pid,
                        agent,
                        reply: tx,
                    })?;
                    let v = match rx.await? {
                        Ok(session) => json!({"ok": true, "session": session, "pid": pid}),
                        Err(e) => json!({"ok": false, "error": e}),
                    };
                    write_line(&mut w, &v).await?;
                }
                Request::Status => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    self.send(Command::Status { reply: tx })?;
                    let mut v = rx.await?;
                    v["ok"] = true.into();
                    write_line(&mut w, &v).await?;
                }
                Request::Rules => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    self.send(Command::Rules { reply: tx })?;
                    write_line(&mut w, &rx.await?).await?;
                }
                Request::Triage {
                    alert_id,
                    state,
                    note,
                } => {
                    let v = match (&self.store, agent_store::TriageState::from_name(&state)) {
                        (None, _) => {
                            json!({"ok": false, "error": "the daemon runs without a store"})
                        }
                        (_, None) => {
                            json!({"ok": false, "error": format!("unknown triage state `{state}`; expected open, acknowledged or resolved")})
                        }
                        (Some(st), Some(ts)) => {
                            let st = st.clone();
                            let by = format!("uid:{}", cred.uid());
                            let r = tokio::task::spawn_blocking(move || {
                                st.set_triage(&alert_id, ts, &note, &by)
                            })
                            .await?;
                            match r {
                                Ok(_) => json!({"ok": true}),
                                Err(e) => json!({"ok": false, "error": e.to_string()}),
                            }
                        }
                    };
                    write_line(&mut w, &v).await?;
                }
                req @ (Request::Search { .. }
                | Request::Alerts { .. }
                | Request::Sessions { .. }
                | Request::Session { .. }) => {
                    let v = match &self.reader {
                        None => json!({"ok": false, "error": "the daemon runs without a store"}),
                        Some(r) => {
                            let r = r.clone();
                            tokio::task::spawn_blocking(move || query::answer(&r, req)).await?
                        }
                    };
                    write_line(&mut w, &v).await?;
                }
                Request::Subscribe {
                    session,
                    events,
                    alerts,
                } => {
                    let mut rx = self.live.subscribe();
                    write_line(&mut w, &json!({"ok": true})).await?;
                    loop {
                        match rx.recv().await {
                            Ok(item) => {
                                let (sid, wanted) = match &*item {
                                    LiveItem::Event(e) => (e.session_id(), events),
                                    LiveItem::Alert { alert } => {
                                        (alert.session.as_ref().map(|s| s.id.as_str()), alerts)
                                    }
                                };
                                if !wanted || session.as_deref().is_some_and(|s| sid != Some(s)) {
                                    continue;
                                }
                                let mut line = serde_json::to_string(&*item)?;
                                line.push('\n');
                                w.write_all(line.as_bytes()).await?;
                            }
                            Err(broadcast::error::RecvError::Lagged(n)) => {
                                write_line(&mut w, &json!({"lagged": n})).await?;
                            }
                            Err(broadcast::error::RecvError::Closed) => return Ok(()),
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn send(&self, c: Command) -> Result<()> {
        self.commands
            .try_send(c)
            .map_err(|_| anyhow!("daemon busy: command queue full"))
    }
}

async fn write_line(w: &mut tokio::net::unix::OwnedWriteHalf, v: &serde_json::Value) -> Result<()> {
    let mut s = v.to_string();
    s.push('\n');
    w.write_all(s.as_bytes()).await?;
    Ok(())
}

/// Blocking client used by the CLI.
pub struct Client {
    reader: BufReader<std::os::unix::net::UnixStream>,
    writer: std::os::unix::net::UnixStream,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client> {
        let s = std::os::unix::net::UnixStream::connect(path).with_context(|| {
            format!(
                "no daemon answers on `{}`; hint: start it with `agentwatch daemon` (as root)",
                path.display()
            )
        })?;
        Ok(Client {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    pub fn request(&mut self, req: &serde_json::Value) -> Result<serde_json::Value> {
        let mut s = req.to_string();
        s.push('\n');
        self.writer.write_all(s.as_bytes())?;
        self.next_line()?
            .ok_or_else(|| anyhow!("daemon closed the connection"))
    }

    pub fn next_line(&mut self) -> Result<Option<serde_json::Value>> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        Ok(Some(
            serde_json::from_str(&line).context("daemon sent invalid JSON")?,
        ))
    }

    /// Raw next line (for streaming events without re-parsing).
    pub fn next_raw(&mut self) -> Result<Option<String>> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        Ok(Some(line))
    }
}
