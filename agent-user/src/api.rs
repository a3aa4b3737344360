//! The daemon's local API: JSON lines over a unix socket (`<data-dir>/agentwatch.sock`, 0600;
//! 0660 with `[daemon] read_group`, whose members may read but not register, triage or act).
//!
//! A client sends one request object per line; the daemon answers with one object per line, or a
//! stream for `subscribe`. Requests and answers are the `agent-api` types (see `docs/api.md`);
//! this module only serves them. The peer's credentials come from `SO_PEERCRED`: `register`
//! always registers the connecting process itself, never a pid named in the request, so a client
//! cannot put another process into a session it chose.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use agent_api::{
    Done, HookAnswer, Registered, Reply, Request, Responded, SessionAction, StreamItem,
};
use anyhow::{Context as _, Result, anyhow, bail};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;

use crate::pipeline::LiveItem;
use crate::query;
use crate::response::Verb;
use crate::source::Command;

const NO_STORE: &str = "the daemon runs without a store";

#[derive(Clone)]
pub struct Api {
    pub commands: SyncSender<Command>,
    pub live: broadcast::Sender<Arc<LiveItem>>,
    pub store: Option<Arc<agent_store::Store>>,
    pub reader: Option<Arc<agent_store::Reader>>,
    /// `[daemon] read_group`: its members may read, not act.
    pub read_gid: Option<u32>,
}

/// Open the socket to `[daemon] read_group`: the socket becomes 0660 with that group, and the
/// data dir gains group search permission (`g+x`, not `g+r`: members reach the socket by its name
/// and cannot list or read the store).
pub fn grant_read_group(socket: &Path, data_dir: &Path, gid: u32) -> Result<()> {
    let mut paths = vec![(socket, None)];
    // Only the daemon's own directory is changed, never a shared one a `--socket` points into.
    if socket.parent() == Some(data_dir) {
        paths.push((data_dir, Some(0o010)));
    }
    for (path, mode) in paths {
        std::os::unix::fs::chown(path, None, Some(gid))
            .with_context(|| format!("cannot give `{}` to gid `{gid}`", path.display()))?;
        let perm = match mode {
            None => 0o660,
            Some(bits) => std::fs::metadata(path)?.permissions().mode() & 0o7777 | bits,
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(perm))?;
    }
    Ok(())
}

/// The peer's supplementary groups (`SO_PEERGROUPS`, the groups it had when it connected).
fn peer_groups(stream: &UnixStream) -> Vec<u32> {
    use std::os::fd::AsRawFd as _;
    let fd = stream.as_raw_fd();
    let mut buf = vec![0u32; 64];
    loop {
        let mut len = (buf.len() * 4) as libc::socklen_t;
        // SAFETY: `buf` holds `len` writable bytes; the kernel writes at most that many and
        // sets `len` to what it wrote (or needs, with ERANGE).
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                buf.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let need = len as usize / 4;
        if r == 0 {
            buf.truncate(need);
            return buf;
        }
        let range = std::io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE);
        if !range || need <= buf.len() || need > 65_536 {
            return Vec::new();
        }
        buf.resize(need, 0);
    }
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

/// Bind the hook socket: mode 0666 (agents run their hooks as their own user), in a directory
/// created 0755 if missing. A live daemon on it is never displaced.
pub fn bind_hooks(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    let l = bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(l)
}

/// How long a hook connection may take to send its request line.
const HOOK_READ_TIMEOUT: Duration = Duration::from_secs(5);

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

    /// Serve the hook socket: any local user, `hook` requests only, one bounded line each.
    pub async fn serve_hooks(self, listener: UnixListener) {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let api = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = api.handle_hooks(stream).await {
                            tracing::debug!(error = %format!("{e:#}"), "hook connection ended");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "hook accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn handle_hooks(self, stream: UnixStream) -> Result<()> {
        let cred = stream.peer_cred()?;
        let (r, mut w) = stream.into_split();
        let mut r = tokio::io::BufReader::new(r);
        loop {
            let mut buf = Vec::new();
            let max = crate::hooks::MAX_HOOK_LINE as u64;
            let n = tokio::time::timeout(
                HOOK_READ_TIMEOUT,
                (&mut r).take(max + 1).read_until(b'\n', &mut buf),
            )
            .await
            .map_err(|_| anyhow!("hook request not sent within {HOOK_READ_TIMEOUT:?}"))??;
            if n == 0 {
                return Ok(());
            }
            if buf.len() as u64 > max {
                let e = format!("bad request: longer than {max} bytes");
                write_line(&mut w, &Reply::<Done>::err(e)).await?;
                return Ok(());
            }
            let reply = match serde_json::from_slice::<Request>(&buf) {
                Ok(Request::Hook { payload, .. }) => self.hook(&cred, payload).await?,
                Ok(other) => Reply::err(format!(
                    "bad request: only `hook` is served on the hook socket, not `{}`",
                    other.op()
                )),
                Err(e) => Reply::err(format!("bad request: {e}")),
            };
            write_line(&mut w, &reply).await?;
        }
    }

    /// Forward a hook to the sensor thread, for the peer's own process.
    async fn hook(
        &self,
        cred: &tokio::net::unix::UCred,
        payload: serde_json::Value,
    ) -> Result<Reply<HookAnswer>> {
        let pid = cred.pid().ok_or_else(|| anyhow!("peer pid unknown"))? as u32;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Command::Hook {
            pid,
            payload,
            reply: tx,
        })?;
        Ok(rx.await?.into())
    }

    async fn handle(self, stream: UnixStream) -> Result<()> {
        let cred = stream.peer_cred()?;
        // Root and the daemon's own uid may do everything; members of `[daemon] read_group` may
        // only read; nobody else may talk to it (the socket is 0600, or 0660 with that group).
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        let full = cred.uid() == 0 || cred.uid() == me;
        let read_only = !full
            && self
                .read_gid
                .is_some_and(|g| cred.gid() == g || peer_groups(&stream).contains(&g));
        if !full && !read_only {
            bail!("peer uid `{}` refused", cred.uid());
        }
        let (r, mut w) = stream.into_split();
        let mut reader = tokio::io::BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            let line = match read_request(&mut reader, &mut buf).await? {
                RequestLine::End => break,
                RequestLine::TooLong => {
                    write_line(
                        &mut w,
                        &Reply::<Done>::err(format!(
                            "bad request: longer than `{MAX_REQUEST_BYTES}` bytes without a newline; closing"
                        )),
                    )
                    .await?;
                    w.shutdown().await.ok();
                    return Ok(());
                }
                RequestLine::Line => match std::str::from_utf8(&buf) {
                    Ok(l) => l,
                    Err(e) => {
                        write_line(
                            &mut w,
                            &Reply::<Done>::err(format!(
                                "bad request: not UTF-8 (invalid byte at offset `{}`)",
                                e.valid_up_to()
                            )),
                        )
                        .await?;
                        continue;
                    }
                },
            };
            if line.trim().is_empty() {
                continue;
            }
            let req: Request = match serde_json::from_str(line) {
                Ok(r) => r,
                Err(e) => {
                    write_line(&mut w, &Reply::<Done>::err(format!("bad request: {e}"))).await?;
                    continue;
                }
            };
            if read_only
                && matches!(
                    req,
                    Request::Register { .. }
                        | Request::Hook { .. }
                        | Request::Respond { .. }
                        | Request::Triage { .. }
                )
            {
                let e = format!(
                    "uid `{}` may only read (`[daemon] read_group`): `{}` needs root or the daemon's uid",
                    cred.uid(),
                    req.op()
                );
                write_line(&mut w, &Reply::<Done>::err(e)).await?;
                continue;
            }
            match req {
                Request::Register { agent } => {
                    let pid = cred.pid().ok_or_else(|| anyhow!("peer pid unknown"))? as u32;
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    self.send(Command::Register {
                        pid,
                        agent,
                        reply: tx,
                    })?;
                    let reply: Reply<Registered> =
                        rx.await?.map(|session| Registered { session, pid }).into();
                    write_line(&mut w, &reply).await?;
                }
                Request::Status => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    self.send(Command::Status { reply: tx })?;
                    write_line(&mut w, &Reply::Ok(rx.await?)).await?;
                }
                Request::Rules => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    self.send(Command::Rules { reply: tx })?;
                    write_line(&mut w, &Reply::Ok(rx.await?)).await?;
                }
                Request::Hook { payload, .. } => {
                    let reply = self.hook(&cred, payload).await?;
                    write_line(&mut w, &reply).await?;
                }
                Request::Respond {
                    session,
                    action,
                    note,
                } => {
                    // Checked again here, whatever the connection check above becomes: only
                    // root and the daemon's uid may act on a session.
                    let reply: Reply<Responded> = if cred.uid() != 0 && cred.uid() != me {
                        Reply::err(format!(
                            "uid `{}` may not act on sessions (root or the daemon's uid only)",
                            cred.uid()
                        ))
                    } else {
                        let verb = match action {
                            SessionAction::Kill => Verb::KillSession,
                            SessionAction::Freeze => Verb::FreezeSession,
                            SessionAction::Thaw => Verb::ThawSession,
                        };
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        self.send(Command::Respond {
                            verb,
                            session,
                            note,
                            by: format!("uid:{}", cred.uid()),
                            reply: tx,
                        })?;
                        rx.await?.into()
                    };
                    write_line(&mut w, &reply).await?;
                }
                Request::Triage {
                    alert_id,
                    state,
                    note,
                } => {
                    let reply = self.triage(alert_id, &state, note, cred.uid()).await?;
                    write_line(&mut w, &reply).await?;
                }
                req @ (Request::Search { .. }
                | Request::Alerts { .. }
                | Request::Sessions { .. }
                | Request::Session { .. }) => {
                    let reply = match &self.reader {
                        None => Reply::err(NO_STORE),
                        Some(r) => {
                            let r = r.clone();
                            tokio::task::spawn_blocking(move || query::answer(&r, req)).await?
                        }
                    };
                    write_line(&mut w, &reply).await?;
                }
                Request::Subscribe {
                    session,
                    events,
                    alerts,
                } => {
                    let mut rx = self.live.subscribe();
                    write_line(&mut w, &Reply::Ok(Done {})).await?;
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
                                write_line(&mut w, &*item).await?;
                            }
                            Err(broadcast::error::RecvError::Lagged(n)) => {
                                write_line(&mut w, &StreamItem::Lagged(n)).await?;
                            }
                            Err(broadcast::error::RecvError::Closed) => return Ok(()),
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Persist a triage change, recorded with the caller's uid.
    async fn triage(
        &self,
        alert_id: String,
        state: &str,
        note: String,
        uid: u32,
    ) -> Result<Reply<Done>> {
        let Some(st) = &self.store else {
            return Ok(Reply::err(NO_STORE));
        };
        let Some(ts) = agent_api::TriageState::from_name(state) else {
            return Ok(Reply::err(format!(
                "unknown triage state `{state}`; expected open, acknowledged or resolved"
            )));
        };
        let st = st.clone();
        let reader = self.reader.clone();
        let by = format!("uid:{uid}");
        let r = tokio::task::spawn_blocking(move || -> Result<Reply<Done>> {
            // An unknown id is an error, not a silent "acknowledged": look it up, and if it is
            // not indexed yet (raised in the last second), commit and look again.
            if let Some(reader) = &reader {
                let is_alert = |r: &agent_store::Reader| -> Result<bool> {
                    Ok(r.by_id(&alert_id)?
                        .iter()
                        .any(|h| matches!(h.hit.item, agent_api::Item::Alert(_))))
                };
                if !is_alert(reader)? {
                    st.commit()?;
                    reader.reload()?;
                    if !is_alert(reader)? {
                        return Ok(Reply::err(format!("no alert with id `{alert_id}`")));
                    }
                }
            }
            st.set_triage(&alert_id, ts, &note, &by)?;
            // Readers see the new state at once (`alerts` right after `ack`).
            st.commit()?;
            if let Some(reader) = &reader {
                reader.reload()?;
            }
            Ok(Reply::Ok(Done {}))
        })
        .await??;
        Ok(r)
    }

    fn send(&self, c: Command) -> Result<()> {
        self.commands
            .try_send(c)
            .map_err(|_| anyhow!("daemon busy: command queue full"))
    }
}

/// Longest request line the daemon reads; a longer one is answered with an error and the
/// connection closed, so a client cannot make the daemon buffer without bound.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

enum RequestLine {
    /// A line (without its newline) is in the buffer.
    Line,
    /// The client closed the connection.
    End,
    /// More than [`MAX_REQUEST_BYTES`] without a newline.
    TooLong,
}

/// Read one request line into `buf` (cleared first), never holding more than
/// [`MAX_REQUEST_BYTES`] of it. A last line without a newline counts as a line.
async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<RequestLine> {
    buf.clear();
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(if buf.is_empty() {
                RequestLine::End
            } else {
                RequestLine::Line
            });
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if buf.len() + take > MAX_REQUEST_BYTES {
            buf.clear();
            return Ok(RequestLine::TooLong);
        }
        buf.extend_from_slice(&chunk[..take]);
        r.consume(if done { take + 1 } else { take });
        if done {
            return Ok(RequestLine::Line);
        }
    }
}

async fn write_line(w: &mut tokio::net::unix::OwnedWriteHalf, v: &impl Serialize) -> Result<()> {
    let mut s = serde_json::to_string(v)?;
    s.push('\n');
    w.write_all(s.as_bytes()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_model::{Alert, Event};

    async fn lines_of(input: &[u8]) -> Vec<String> {
        let mut r = tokio::io::BufReader::with_capacity(7, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            match read_request(&mut r, &mut buf).await.unwrap() {
                RequestLine::End => return out,
                RequestLine::TooLong => {
                    out.push("<too long>".into());
                    return out;
                }
                RequestLine::Line => out.push(String::from_utf8_lossy(&buf).into_owned()),
            }
        }
    }

    /// A request line is read whole, however the reads split it; the last one may lack its
    /// newline; one longer than the cap is refused without being buffered whole.
    #[test]
    fn request_lines_are_bounded() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(
                lines_of(b"{\"op\":\"status\"}\n\nabc").await,
                ["{\"op\":\"status\"}", "", "abc"]
            );
            let mut big = vec![b'x'; MAX_REQUEST_BYTES + 1];
            big.push(b'\n');
            assert_eq!(lines_of(&big).await, ["<too long>"]);
            let mut exact = vec![b'x'; MAX_REQUEST_BYTES];
            exact.push(b'\n');
            assert_eq!(lines_of(&exact).await.len(), 1);
        });
    }

    /// The live stream's items, as the pipeline makes them, are the API's stream items.
    #[test]
    fn live_items_are_written_as_stream_items() {
        let e = Event {
            id: "e-1".into(),
            ..Default::default()
        };
        let a = Alert {
            id: "a-1".into(),
            ..Default::default()
        };
        for (item, want) in [
            (
                LiveItem::Event(Box::new(e.clone())),
                StreamItem::Event(Box::new(e)),
            ),
            (
                LiveItem::Alert {
                    alert: Box::new(a.clone()),
                },
                StreamItem::Alert(Box::new(a)),
            ),
        ] {
            let line = serde_json::to_string(&item).unwrap();
            assert_eq!(serde_json::from_str::<StreamItem>(&line).unwrap(), want);
            assert_eq!(line, serde_json::to_string(&want).unwrap());
        }
    }
}
