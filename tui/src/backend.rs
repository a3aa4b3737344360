//! Talking to the daemon without ever blocking the UI.
//!
//! A [`Backend`] answers API requests (one JSON object in, one out) and may open a live
//! [`Subscription`]. [`SocketBackend`] speaks the daemon's JSON-lines protocol over its unix
//! socket; the offline reader (a data dir opened read-only) implements the same trait in
//! `agent-user`. [`Worker`] owns two background threads, one for requests and one for the live
//! stream, each building its backend from a factory and reconnecting with backoff; the UI only
//! ever touches channels.
//!
//! The worker speaks [`Request`] and [`Update`], defined in [`crate::msg`] (and re-exported here
//! for callers of the worker) so that the model never has to import this module; answers to
//! `alerts` requests are parsed here, on the request thread, with [`crate::answer::alert_rows`].

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use crate::answer::alert_rows;
pub use crate::msg::{Purpose, Request, Update};

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
    /// Send one request object (e.g. `{"op":"status"}`) and return its answer object.
    fn request(&mut self, req: &Value) -> anyhow::Result<Value>;

    /// Start a live stream (`{"op":"subscribe",...}`). `Ok(None)` means this backend has no
    /// live stream (offline); the UI then polls instead.
    fn subscribe(&mut self, req: &Value) -> anyhow::Result<Option<Box<dyn Subscription>>>;
}

/// A live stream of JSON objects: events, `{"alert":{..}}` or `{"lagged":N}`.
pub trait Subscription: Send {
    /// The next object; `Ok(None)` when the stream ended.
    fn next(&mut self) -> anyhow::Result<Option<Value>>;
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

    fn send(&mut self, req: &Value) -> Result<(), BackendError> {
        let mut s = req.to_string();
        s.push('\n');
        self.writer.write_all(s.as_bytes())?;
        Ok(())
    }

    fn read(&mut self) -> Result<Value, BackendError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(BackendError::Closed);
        }
        Ok(serde_json::from_str(&line)?)
    }
}

impl Backend for SocketBackend {
    fn request(&mut self, req: &Value) -> anyhow::Result<Value> {
        self.reader
            .get_ref()
            .set_read_timeout(Some(REQUEST_TIMEOUT))?;
        self.send(req)?;
        Ok(self.read()?)
    }

    fn subscribe(&mut self, req: &Value) -> anyhow::Result<Option<Box<dyn Subscription>>> {
        let first = self.request(req)?;
        if first.get("ok") != Some(&Value::Bool(true)) {
            anyhow::bail!(
                "subscribe refused: {}",
                first.get("error").and_then(Value::as_str).unwrap_or("?")
            );
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
    fn next(&mut self) -> anyhow::Result<Option<Value>> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            if line.trim().is_empty() {
                continue;
            }
            return Ok(Some(serde_json::from_str(&line)?));
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
        let result = b.request(&req.body).map_err(|e| format!("{e:#}"));
        if result.is_err() {
            backend = None;
        }
        if let (Purpose::Alerts, Ok(v)) = (&req.purpose, &result)
            && v.get("ok") != Some(&Value::Bool(false))
        {
            if up.send(Update::AlertRows(alert_rows(v))).is_err() {
                return;
            }
            continue;
        }
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
    let req = json!({"op": "subscribe", "session": null, "events": true, "alerts": true});
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
