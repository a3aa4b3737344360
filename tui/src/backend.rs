//! Talking to the daemon without ever blocking the UI.
//!
//! A [`Backend`] answers API requests (an [`agent_api::Request`] in, a typed [`Reply`] of an
//! [`Answer`] out) and may open a live [`Subscription`]. [`SocketBackend`] speaks the daemon's
//! JSON-lines protocol over its unix socket and parses each answer as the type of its request;
//! the offline reader (a data dir opened read-only) implements the same trait in `agent-user`
//! and answers with the same types, without JSON. [`Worker`] owns two background threads, one for requests and one for the live
//! stream, each building its backend from a factory and reconnecting with backoff; the UI only
//! ever touches channels.
//!
//! The worker speaks [`Request`] and [`Update`], defined in [`crate::msg`] (and re-exported here
//! for callers of the worker) so that the model never has to import this module; answers to
//! `alerts` requests are made into rows here, on the request thread, with
//! [`crate::answer::alert_rows`].

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::thread;
use std::time::Duration;

use agent_api::{Answer, Reply, StreamItem};
use serde::Deserialize as _;

use crate::answer::alert_rows;
pub use crate::msg::{LiveLine, Purpose, Request, Update};

/// Errors of the socket backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot connect to `{path}`; hint: start the daemon or use --data-dir")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("daemon connection failed")]
    Io(#[from] std::io::Error),
    #[error("daemon closed the connection")]
    Closed,
    #[error("daemon sent invalid JSON")]
    Json(#[from] serde_json::Error),
}

/// One source of API answers: the live daemon or an offline data dir.
pub trait Backend: Send {
    /// Send one request and return its answer: `Err` when the connection failed, a
    /// [`Reply::Err`] when the daemon refused the request.
    fn request(&mut self, req: &agent_api::Request) -> anyhow::Result<Reply<Answer>>;

    /// Start a live stream (a `subscribe` request). `Ok(None)` means this backend has no live
    /// stream (offline); the UI then polls instead.
    fn subscribe(
        &mut self,
        req: &agent_api::Request,
    ) -> anyhow::Result<Option<Box<dyn Subscription>>>;
}

/// A live stream: events, alerts and lag notices ([`StreamItem`]s).
pub trait Subscription: Send {
    /// The next line; `Ok(None)` when the stream ended.
    fn next(&mut self) -> anyhow::Result<Option<LiveLine>>;
}

/// Builds a fresh backend; called again after every disconnect.
pub type BackendFactory = Box<dyn Fn() -> anyhow::Result<Box<dyn Backend>> + Send + Sync>;

/// The daemon's unix socket, JSON lines.
pub struct SocketBackend {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

/// Longest a single request may take before the connection is considered dead.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

impl SocketBackend {
    pub fn connect(path: &Path) -> Result<SocketBackend, BackendError> {
        let s = UnixStream::connect(path).map_err(|source| BackendError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        s.set_write_timeout(Some(REQUEST_TIMEOUT))?;
        Ok(SocketBackend {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    /// A factory connecting to `path` each time.
    pub fn factory(path: PathBuf) -> BackendFactory {
        Box::new(move || Ok(Box::new(SocketBackend::connect(&path)?) as Box<dyn Backend>))
    }

    fn send(&mut self, req: &agent_api::Request) -> Result<(), BackendError> {
        let mut s = serde_json::to_string(req)?;
        s.push('\n');
        self.writer.write_all(s.as_bytes())?;
        Ok(())
    }

    fn read(&mut self) -> Result<String, BackendError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(BackendError::Closed);
        }
        Ok(line)
    }
}

impl Backend for SocketBackend {
    fn request(&mut self, req: &agent_api::Request) -> anyhow::Result<Reply<Answer>> {
        self.reader
            .get_ref()
            .set_read_timeout(Some(REQUEST_TIMEOUT))?;
        self.send(req)?;
        let line = self.read()?;
        Ok(Answer::read(req, &line).map_err(BackendError::Json)?)
    }

    fn subscribe(
        &mut self,
        req: &agent_api::Request,
    ) -> anyhow::Result<Option<Box<dyn Subscription>>> {
        if let Reply::Err(e) = self.request(req)? {
            anyhow::bail!("subscribe refused: {e}");
        }
        // A live stream may be quiet for a long time.
        self.reader.get_ref().set_read_timeout(None)?;
        // The stream must keep this reader: it may already hold buffered lines of the stream.
        let fresh = BufReader::new(self.reader.get_ref().try_clone()?);
        let s = SocketStream {
            reader: std::mem::replace(&mut self.reader, fresh),
        };
        Ok(Some(Box::new(s)))
    }
}

struct SocketStream {
    reader: BufReader<UnixStream>,
}

impl Subscription for SocketStream {
    fn next(&mut self) -> anyhow::Result<Option<LiveLine>> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            if line.trim().is_empty() {
                continue;
            }
            // A line that is not JSON breaks the stream; JSON that is not a stream item is
            // only counted.
            let v: serde_json::Value = serde_json::from_str(&line)?;
            return Ok(Some(
                StreamItem::deserialize(v).map_err(|e| format!("not a stream item: {e}")),
            ));
        }
    }
}

/// Backoff after failed connections: 250 ms doubling to 5 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((250u64 << attempt.min(5)).min(5000))
}

/// The two background threads. Dropping the worker lets them finish on their own.
pub struct Worker {
    requests: SyncSender<Request>,
    pub updates: Receiver<Update>,
}

/// Requests waiting for the request thread; beyond this the UI drops (and counts) them.
pub const REQUEST_QUEUE: usize = 64;

impl Worker {
    pub fn start(factory: BackendFactory) -> Worker {
        let factory = std::sync::Arc::new(factory);
        let (req_tx, req_rx) = mpsc::sync_channel::<Request>(REQUEST_QUEUE);
        let (up_tx, up_rx) = mpsc::channel::<Update>();
        {
            let factory = factory.clone();
            let up = up_tx.clone();
            thread::Builder::new()
                .name("tui-requests".into())
                .spawn(move || request_loop(&**factory, req_rx, up))
                .expect("spawn request thread");
        }
        thread::Builder::new()
            .name("tui-live".into())
            .spawn(move || live_loop(&**factory, up_tx))
            .expect("spawn live thread");
        Worker {
            requests: req_tx,
            updates: up_rx,
        }
    }

    /// Queue a request without blocking; false when the queue is full (the daemon is slow).
    pub fn send(&self, r: Request) -> bool {
        !matches!(self.requests.try_send(r), Err(TrySendError::Full(_)))
    }
}

fn request_loop(
    factory: &(dyn Fn() -> anyhow::Result<Box<dyn Backend>> + Send + Sync),
    rx: Receiver<Request>,
    up: Sender<Update>,
) {
    let mut backend: Option<Box<dyn Backend>> = None;
    let mut attempt = 0u32;
    let mut retry_at = std::time::Instant::now();
    while let Ok(req) = rx.recv() {
        if backend.is_none() {
            // While backing off, answer at once instead of hammering a dead daemon; every
            // request gets exactly one answer.
            let now = std::time::Instant::now();
            let made = if now < retry_at {
                Err(anyhow::anyhow!(
                    "daemon unreachable; next attempt in {} ms",
                    (retry_at - now).as_millis()
                ))
            } else {
                factory()
            };
            match made {
                Ok(b) => {
                    backend = Some(b);
                    attempt = 0;
                }
                Err(e) => {
                    if now >= retry_at {
                        retry_at = now + backoff(attempt);
                        attempt += 1;
                    }
                    if up
                        .send(Update::Answer {
                            purpose: req.purpose,
                            result: Err(format!("{e:#}")),
                        })
                        .is_err()
                    {
                        return;
                    }
                    continue;
                }
            }
        }
        let Some(b) = backend.as_mut() else { continue };
        let result = match b.request(&req.body) {
            Ok(reply) => reply.into_result().map_err(|e| e.to_string()),
            Err(e) => {
                backend = None;
                Err(format!("{e:#}"))
            }
        };
        let result = match (&req.purpose, result) {
            (Purpose::Alerts, Ok(Answer::Alerts(l))) => {
                if up.send(Update::AlertRows(alert_rows(l))).is_err() {
                    return;
                }
                continue;
            }
            (_, r) => r,
        };
        if up
            .send(Update::Answer {
                purpose: req.purpose,
                result,
            })
            .is_err()
        {
            return;
        }
    }
}

fn live_loop(
    factory: &(dyn Fn() -> anyhow::Result<Box<dyn Backend>> + Send + Sync),
    up: Sender<Update>,
) {
    let req = agent_api::Request::subscribe(None, true, true);
    let mut attempt = 0u32;
    loop {
        let err = match factory().and_then(|mut b| b.subscribe(&req)) {
            Ok(None) => {
                let _ = up.send(Update::NoLiveStream);
                return;
            }
            Ok(Some(mut sub)) => {
                attempt = 0;
                if up.send(Update::Connected).is_err() {
                    return;
                }
                loop {
                    match sub.next() {
                        Ok(Some(v)) => {
                            if up.send(Update::Live(v)).is_err() {
                                return;
                            }
                        }
                        Ok(None) => break "daemon closed the live stream".to_string(),
                        Err(e) => break format!("{e:#}"),
                    }
                }
            }
            Err(e) => format!("{e:#}"),
        };
        let retry = backoff(attempt);
        attempt += 1;
        if up.send(Update::Disconnected { error: err, retry }).is_err() {
            return;
        }
        thread::sleep(retry);
    }
}
