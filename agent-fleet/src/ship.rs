//! The shipper: one task per NATS output on the daemon's runtime. It connects (retrying with a
//! backoff and saying why in its status), creates the streams if missing, then loops: read a
//! batch of durable spool records after the cursor, publish each with its id as `Nats-Msg-Id`,
//! wait for every JetStream acknowledgement, and only then advance the cursor. A batch that is
//! not wholly acknowledged is read again from the cursor and resent; the duplicate window keeps
//! JetStream from storing a message twice.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_api::{FleetOutputStatus, Item};
use agent_model::Timestamp;
use agent_store::{SpoolTail, Store, TailItem};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};

use crate::FleetError;
use crate::config::{NatsConfig, sanitize_token};
use crate::cursor::Cursor;

/// How long a batch waits for its acknowledgements before it is resent.
const ACK_TIMEOUT: Duration = Duration::from_secs(3);
/// How often an idle shipper looks at the spool.
const IDLE: Duration = Duration::from_millis(20);
/// The cursor file is rewritten at most this often.
const PERSIST_EVERY: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The message payload of an item: the JSON line `--events-jsonl` or `--alerts-jsonl` writes.
pub fn payload(item: &Item) -> String {
    match item {
        Item::Event(e) => e.to_json(),
        Item::Alert(a) => rules::falco_json(a),
    }
}

/// The message id of an item: the event id; for an alert its id, plus `#count` for the re-emits
/// of a folded alert (each carries new information and must not be deduplicated away).
fn msg_id(item: &Item) -> String {
    match item {
        Item::Event(e) => e.id.clone(),
        Item::Alert(a) if a.count > 1 => format!("{}#{}", a.id, a.count),
        Item::Alert(a) => a.id.clone(),
    }
}

/// The status side of a running shipper, cheap to clone; `status` reads it.
/// It holds the store weakly, so the daemon's store closes once the shipper tasks are gone.
#[derive(Clone)]
pub struct ShipperHandle {
    state: Arc<Mutex<FleetOutputStatus>>,
    store: std::sync::Weak<Store>,
}

impl ShipperHandle {
    /// The output's status now; the backlog counts from the store's durable seq even while the
    /// shipper is still trying to connect.
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

/// One NATS output, ready to run.
pub struct Shipper {
    cfg: NatsConfig,
    host: String,
    store: Arc<Store>,
    data_dir: PathBuf,
    cursor: Cursor,
    state: Arc<Mutex<FleetOutputStatus>>,
    search: Option<crate::SearchFn>,
    sessions: Option<crate::SessionFn>,
}

impl Shipper {
    /// Check `cfg`, read the cursor, and prepare to ship the spool of `store` (in `data_dir`)
    /// under host name `host`. Nothing touches the network yet.
    pub fn new(
        cfg: NatsConfig,
        host: &str,
        store: Arc<Store>,
        data_dir: PathBuf,
    ) -> Result<Shipper, FleetError> {
        cfg.validate()?;
        let cursor = Cursor::new(&data_dir, &cfg.name);
        let acked = cursor.load()?;
        let state = FleetOutputStatus {
            name: cfg.name.clone(),
            servers: cfg.servers.clone(),
            acked_seq: acked,
            last_error: Some("not connected yet".into()),
            ..FleetOutputStatus::default()
        };
        Ok(Shipper {
            host: sanitize_token(host),
            cfg,
            store,
            data_dir,
            cursor,
            state: Arc::new(Mutex::new(state)),
            search: None,
            sessions: None,
        })
    }

    /// Answer fleet session look-ups (`session --fleet`) on this output's connection with `f`.
    pub fn answer_sessions(&mut self, f: crate::SessionFn) {
        self.sessions = Some(f);
    }

    /// Answer fleet searches on this output's connection with `f` (the API's `search`).
    pub fn answer_searches(&mut self, f: crate::SearchFn) {
        self.search = Some(f);
    }

    pub fn handle(&self) -> ShipperHandle {
        ShipperHandle {
            state: self.state.clone(),
            store: Arc::downgrade(&self.store),
        }
    }

    fn error(&self, msg: String) {
        let mut st = lock(&self.state);
        if st.last_error.as_deref() != Some(msg.as_str()) {
            tracing::warn!(output = %self.cfg.name, error = %msg, "fleet shipping stalled");
        }
        st.last_error = Some(msg);
    }

    async fn connect(&self) -> Result<async_nats::Client, String> {
        let mut opts = self.cfg.connect_options().await?;
        let state = self.state.clone();
        let name = self.cfg.name.clone();
        opts = opts
            .name(format!("agentwatch@{}", self.host))
            .connection_timeout(Duration::from_secs(3))
            .max_reconnects(None)
            .event_callback(move |ev| {
                let state = state.clone();
                let name = name.clone();
                async move {
                    let mut st = lock(&state);
                    match ev {
                        async_nats::Event::Connected => st.connected = true,
                        async_nats::Event::Disconnected | async_nats::Event::Closed => {
                            st.connected = false;
                            st.last_error = Some(format!("nats connection {ev}"));
                            tracing::warn!(output = %name, "fleet output disconnected");
                        }
                        async_nats::Event::ServerError(_) | async_nats::Event::ClientError(_) => {
                            st.last_error = Some(ev.to_string());
                            tracing::warn!(output = %name, event = %ev, "fleet output error");
                        }
                        _ => {}
                    }
                }
            });
        opts.connect(self.cfg.servers.as_slice())
            .await
            .map_err(|e| format!("cannot connect to `{}`: {e}", self.cfg.servers.join(",")))
    }

    async fn ensure_streams(&self, js: &jetstream::Context) -> Result<(), String> {
        let p = &self.cfg.subject_prefix;
        let mut want = Vec::new();
        if self.cfg.events {
            want.push((&self.cfg.events_stream, format!("{p}.*.events.>")));
        }
        if self.cfg.alerts {
            want.push((&self.cfg.alerts_stream, format!("{p}.*.alerts.>")));
        }
        for (name, subject) in want {
            js.get_or_create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![subject],
                num_replicas: self.cfg.replicas,
                duplicate_window: Duration::from_secs(self.cfg.duplicate_window_secs),
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("cannot create or find stream `{name}`: {e}"))?;
        }
        Ok(())
    }

    /// Run until the runtime shuts down.
    pub async fn run(self) {
        let mut backoff = Duration::from_millis(250);
        let client = loop {
            match self.connect().await {
                Ok(c) => break c,
                Err(e) => {
                    self.error(e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        };
        lock(&self.state).connected = true;
        tracing::info!(output = %self.cfg.name, servers = %self.cfg.servers.join(","), "fleet output connected");
        if let Some(f) = self.sessions.clone() {
            tokio::spawn(crate::session::serve(
                client.clone(),
                self.cfg.clone(),
                self.host.clone(),
                f,
            ));
        }
        if let Some(f) = self.search.clone() {
            tokio::spawn(crate::search::serve(
                client.clone(),
                self.cfg.clone(),
                self.host.clone(),
                f,
            ));
        }
        let mut js = jetstream::new(client);
        js.set_timeout(ACK_TIMEOUT);
        self.ship(js).await;
    }

    async fn ship(self, js: jetstream::Context) {
        let mut acked = lock(&self.state).acked_seq;
        let mut persisted = acked;
        let mut last_persist = Instant::now();
        let mut tail = Some(SpoolTail::new(&self.data_dir, acked));
        let mut streams_ok = false;
        let mut backoff = Duration::from_millis(100);
        loop {
            if !streams_ok {
                match self.ensure_streams(&js).await {
                    Ok(()) => streams_ok = true,
                    Err(e) => {
                        self.error(e);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                }
            }
            if persisted != acked && last_persist.elapsed() >= PERSIST_EVERY {
                match self.cursor.store(acked) {
                    Ok(()) => persisted = acked,
                    Err(e) => self.error(format!("cannot save the cursor: {e}")),
                }
                last_persist = Instant::now();
            }
            let durable = self.store.durable_seq();
            {
                let mut st = lock(&self.state);
                st.backlog = durable.saturating_sub(acked);
                if st.backlog == 0 {
                    st.lag_ms = 0;
                }
            }
            let Some(mut t) = tail.take() else { return };
            if t.position() >= durable {
                tail = Some(t);
                tokio::time::sleep(IDLE).await;
                continue;
            }
            let max = self.cfg.batch;
            let read = tokio::task::spawn_blocking(move || {
                let r = t.read(durable, max);
                (t, r)
            })
            .await;
            let Ok((t, batch)) = read else { return };
            let dropped = t.skipped();
            let end = t.position();
            tail = Some(t);
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    self.error(format!("cannot read the spool: {e}"));
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            lock(&self.state).dropped = dropped;
            if let Some(first) = batch.first() {
                let age = Timestamp::now().0.saturating_sub(first.item.time().0);
                lock(&self.state).lag_ms = (age.max(0) / 1_000_000) as u64;
            }
            match self.publish(&js, &batch).await {
                Ok(n) => {
                    acked = end;
                    backoff = Duration::from_millis(100);
                    let mut st = lock(&self.state);
                    st.acked_seq = acked;
                    st.shipped += n;
                    if n > 0 {
                        st.last_ack = Some(Timestamp::now());
                    }
                    st.last_error = None;
                    st.connected = true;
                }
                Err(e) => {
                    self.error(e);
                    streams_ok = false;
                    if let Some(t) = &mut tail {
                        t.rewind(acked);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Publish every item of `batch` that this output ships and wait for all acknowledgements.
    /// Returns how many were acknowledged.
    async fn publish(&self, js: &jetstream::Context, batch: &[TailItem]) -> Result<u64, String> {
        let mut acks = Vec::with_capacity(batch.len());
        for t in batch {
            let subject = match &t.item {
                Item::Event(e) if self.cfg.events => {
                    self.cfg.event_subject(&self.host, e.kind().name())
                }
                Item::Alert(a) if self.cfg.alerts => {
                    self.cfg.alert_subject(&self.host, a.severity.name())
                }
                _ => continue,
            };
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", msg_id(&t.item).as_str());
            let ack = js
                .publish_with_headers(subject, headers, payload(&t.item).into())
                .await
                .map_err(|e| format!("publish failed: {e}"))?;
            acks.push(ack);
        }
        let n = acks.len() as u64;
        for r in futures_util::future::join_all(acks.into_iter().map(|a| a.into_future())).await {
            r.map_err(|e| format!("no acknowledgement: {e}"))?;
        }
        Ok(n)
    }
}
