//! Alert outputs shipped from the durable spool with a persisted cursor: the loop the webhook and
//! syslog outputs share.
//!
//! Each output reads alerts from the spool ([`agent_store::SpoolTail`]) up to what the store made
//! durable, hands them one by one to its [`AlertSink`], and keeps a cursor
//! (`<data-dir>/outputs/<name>.cursor`, replaced atomically) so an alert is sent at least once
//! across a receiver outage or a daemon restart: a failed send is retried with exponential backoff
//! (up to 30 s) and the cursor only moves past what the sink accepted. Its state (sent, backlog,
//! lag, last error) is shown with the fleet outputs in `status` and `/metrics`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_api::{FleetOutputStatus, Item};
use agent_model::{Alert, Timestamp};
use agent_store::{SpoolTail, Store};

const BACKOFF_MAX: Duration = Duration::from_secs(30);
const IDLE: Duration = Duration::from_millis(200);
/// Spool records read per batch.
const BATCH: usize = 256;

/// Where one output sends an alert. `id` is the alert id, with `#count` for a folded alert's
/// re-emits, so a receiver can drop duplicates.
pub trait AlertSink: Send + Sync + 'static {
    /// One alert; `Ok` once the receiver took it.
    fn send(&mut self, id: &str, alert: &Alert) -> impl Future<Output = Result<(), String>> + Send;
}

/// The status side of a running output (shown with the fleet outputs in `status`).
#[derive(Clone)]
pub struct OutputHandle {
    state: Arc<Mutex<FleetOutputStatus>>,
    store: std::sync::Weak<Store>,
}

impl OutputHandle {
    pub fn status(&self) -> FleetOutputStatus {
        let mut st = lock(&self.state).clone();
        if let Some(store) = self.store.upgrade() {
            st.backlog = store.durable_seq().saturating_sub(st.acked_seq);
        }
        if st.backlog == 0 {
            st.lag_ms = 0;
        }
        st
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One output, ready to run.
pub struct SpoolOutput<S> {
    name: String,
    kind: &'static str,
    sink: S,
    store: Arc<Store>,
    data_dir: PathBuf,
    state: Arc<Mutex<FleetOutputStatus>>,
}

impl<S: AlertSink> SpoolOutput<S> {
    /// An output named `name` (its cursor file and its row in `status`) of `kind` (for logs),
    /// sending to `servers` (shown in `status`); reads its cursor from the spool dir `data_dir`.
    pub fn new(
        name: &str,
        kind: &'static str,
        servers: Vec<String>,
        sink: S,
        store: Arc<Store>,
        data_dir: &Path,
    ) -> Result<(SpoolOutput<S>, OutputHandle), String> {
        let acked = load_cursor(&cursor_path(data_dir, name))?;
        let state = Arc::new(Mutex::new(FleetOutputStatus {
            name: name.to_owned(),
            servers,
            acked_seq: acked,
            ..Default::default()
        }));
        let handle = OutputHandle {
            state: state.clone(),
            store: Arc::downgrade(&store),
        };
        Ok((
            SpoolOutput {
                name: name.to_owned(),
                kind,
                sink,
                store,
                data_dir: data_dir.to_path_buf(),
                state,
            },
            handle,
        ))
    }

    fn error(&self, e: String) {
        tracing::warn!(output = %self.name, kind = self.kind, error = %e, "output");
        let mut st = lock(&self.state);
        st.last_error = Some(e);
        st.connected = false;
    }

    /// Run until the runtime shuts down.
    pub async fn run(mut self) {
        let cursor = cursor_path(&self.data_dir, &self.name);
        let mut acked = lock(&self.state).acked_seq;
        let mut tail = Some(SpoolTail::new(&self.data_dir, acked));
        let mut backoff = Duration::from_millis(250);
        loop {
            let durable = self.store.durable_seq();
            let Some(mut t) = tail.take() else { return };
            if t.position() >= durable {
                tail = Some(t);
                tokio::time::sleep(IDLE).await;
                continue;
            }
            let read = tokio::task::spawn_blocking(move || {
                let r = t.read(durable, BATCH);
                (t, r)
            })
            .await;
            let Ok((t, batch)) = read else { return };
            let end = t.position();
            lock(&self.state).dropped = t.skipped();
            tail = Some(t);
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    self.error(format!("cannot read the spool: {e}"));
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            let mut failed = false;
            for item in &batch {
                let Item::Alert(a) = &item.item else {
                    continue;
                };
                let age = Timestamp::now().0.saturating_sub(a.time.0);
                lock(&self.state).lag_ms = (age.max(0) / 1_000_000) as u64;
                let id = if a.count > 1 {
                    format!("{}#{}", a.id, a.count)
                } else {
                    a.id.clone()
                };
                match self.sink.send(&id, a).await {
                    Ok(()) => {
                        acked = item.seq;
                        let mut st = lock(&self.state);
                        st.acked_seq = acked;
                        st.shipped += 1;
                        st.last_ack = Some(Timestamp::now());
                        st.last_error = None;
                        st.connected = true;
                        backoff = Duration::from_millis(250);
                    }
                    Err(e) => {
                        self.error(e);
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                if let Some(t) = &mut tail {
                    t.rewind(acked);
                }
                if let Err(e) = store_cursor(&cursor, acked) {
                    self.error(format!("cannot save the cursor: {e}"));
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
            acked = end;
            lock(&self.state).acked_seq = acked;
            if let Err(e) = store_cursor(&cursor, acked) {
                self.error(format!("cannot save the cursor: {e}"));
            }
        }
    }
}

/// An output name: names its cursor file, so letters, digits, `-` or `_` only.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    {
        return Err(format!(
            "{kind} `name` = `{}` must be letters, digits, `-` or `_`",
            name.escape_debug()
        ));
    }
    Ok(())
}

fn cursor_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("outputs").join(format!("{name}.cursor"))
}

/// The stored seq; 0 when there is none yet. A damaged file is an error, not a silent 0 (which
/// would resend every alert the spool holds).
fn load_cursor(p: &Path) -> Result<u64, String> {
    match std::fs::read_to_string(p) {
        Ok(t) => t.trim().parse().map_err(|_| {
            format!(
                "cursor file `{}` does not hold a sequence number",
                p.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(format!("cannot read `{}`: {e}", p.display())),
    }
}

/// Replace the cursor atomically (write, fsync, rename).
fn store_cursor(p: &Path, seq: u64) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = p.with_extension("cursor.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(format!("{seq}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, p)
}
