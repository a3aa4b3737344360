//! The fleet console's side of NATS (`agentwatch tui --fleet`): the alerts of every host read
//! from the JetStream alerts stream, and triage shared by every console through a JetStream
//! key-value bucket.
//!
//! A [`Console`] keeps two background tasks on the caller's runtime: an ordered consumer of the
//! alerts stream (from `since` ago, then live; it resumes after the last stream sequence it saw
//! when the cluster comes back) and a watch of the triage bucket (every key's latest value,
//! then every change). Both fill one cache that the blocking side reads without waiting on the
//! network, so the TUI's worker answers `alerts` at once. A triage change is written with a
//! revision check (`update` at the revision read, `create` when there is none) and retried on a
//! race; the change with the later time wins (last writer wins), so two consoles acknowledging
//! the same alert at once end with one value that both see, naming who made it.
//!
//! The stream's messages are the daemons' `--alerts-jsonl` lines (Falco-shaped JSON,
//! [`rules::falco_json`]); [`alert_from_payload`] reads them back into [`Alert`]s, and a
//! message that is not one is counted, never trusted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use agent_api::{TriageEntry, TriageState};
use agent_model::{AgentRef, Alert, BStr, SessionRef, Severity, Timestamp};
use async_nats::jetstream::{self, consumer, kv};
use futures_util::StreamExt;
use serde_json::Value;

use crate::FleetError;
use crate::config::NatsConfig;

/// The triage bucket every console of a fleet shares (one per subject prefix).
pub fn triage_bucket(cfg: &NatsConfig) -> String {
    format!(
        "{}_TRIAGE",
        cfg.subject_prefix.replace('.', "_").to_ascii_uppercase()
    )
}

/// An alert id as a key-value key: bytes outside `[-_/.a-zA-Z0-9]` (and `=`) become `=XX`.
pub fn triage_key(alert_id: &str) -> String {
    let mut k = String::with_capacity(alert_id.len());
    for b in alert_id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/') {
            k.push(b as char);
        } else {
            k.push_str(&format!("={b:02X}"));
        }
    }
    if k.is_empty() { "=".into() } else { k }
}

/// Read one alerts-stream message (a Falco-shaped `--alerts-jsonl` line) back into an alert.
pub fn alert_from_payload(bytes: &[u8]) -> Result<Alert, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str);
    let time = |k: &str| {
        s(k).and_then(Timestamp::parse_rfc3339)
            .ok_or_else(|| format!("`{k}` is not an RFC 3339 time"))
    };
    let id = s("id").filter(|i| !i.is_empty()).ok_or("no `id`")?;
    let severity = s("severity")
        .and_then(Severity::from_name)
        .ok_or("no valid `severity`")?;
    let strings = |k: &str| -> Vec<String> {
        v.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Alert {
        id: id.to_owned(),
        time: time("time")?,
        host: s("hostname").unwrap_or("").to_owned(),
        rule: s("rule").unwrap_or("").to_owned(),
        severity,
        agent: s("agent").map(|n| AgentRef { name: n.into() }),
        session: s("session").map(|i| SessionRef { id: i.into() }),
        summary: BStr::from(s("output").unwrap_or("")),
        tags: strings("tags"),
        event_ids: strings("event_ids"),
        count: v.get("count").and_then(Value::as_u64).unwrap_or(1),
        first_time: time("first_time")?,
        last_time: time("last_time")?,
        in_loss_window: v
            .get("in_loss_window")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// What the background tasks have seen.
#[derive(Default)]
struct Cache {
    alerts: HashMap<String, Alert>,
    triage: HashMap<String, TriageEntry>,
    /// Receivers of new alerts (the TUI's live stream).
    live: Vec<std::sync::mpsc::SyncSender<Alert>>,
    /// Stream messages that were not alerts.
    bad: u64,
    /// The last error of a background task, cleared when it recovers.
    error: Option<String>,
}

fn lock(c: &Mutex<Cache>) -> MutexGuard<'_, Cache> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// A connection to the fleet for one console.
pub struct Console {
    kv: kv::Store,
    cache: Arc<Mutex<Cache>>,
    who: String,
    client: async_nats::Client,
}

impl Console {
    /// Connect, create the triage bucket if missing, and start following the alerts stream
    /// from `since` ago and the bucket. `who` names this console's user in triage changes.
    pub async fn connect(
        cfg: &NatsConfig,
        who: &str,
        since: Duration,
    ) -> Result<Console, FleetError> {
        let net = FleetError::Net;
        let opts = cfg.connect_options().await.map_err(net)?;
        let client = opts
            .connection_timeout(Duration::from_secs(3))
            .connect(cfg.servers.as_slice())
            .await
            .map_err(|e| {
                net(format!(
                    "cannot connect to `{}`: {e}",
                    cfg.servers.join(",")
                ))
            })?;
        let js = jetstream::new(client.clone());
        let bucket = triage_bucket(cfg);
        let store = match js.get_key_value(&bucket).await {
            Ok(s) => s,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: bucket.clone(),
                    description: "agentwatch alert triage shared by every fleet console".into(),
                    history: 5,
                    num_replicas: cfg.replicas,
                    storage: jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| net(format!("cannot create key-value bucket `{bucket}`: {e}")))?,
        };
        let cache = Arc::new(Mutex::new(Cache::default()));
        tokio::spawn(follow_alerts(
            js.clone(),
            cfg.alerts_stream.clone(),
            since,
            cache.clone(),
        ));
        tokio::spawn(follow_triage(store.clone(), cache.clone()));
        Ok(Console {
            kv: store,
            cache,
            who: who.to_owned(),
            client,
        })
    }

    /// The alerts seen, newest first (by last time), at most `limit`, each with its triage.
    pub fn alerts(&self, limit: usize) -> Vec<(Alert, Option<TriageEntry>)> {
        let c = lock(&self.cache);
        let mut v: Vec<(Alert, Option<TriageEntry>)> = c
            .alerts
            .values()
            .map(|a| (a.clone(), c.triage.get(&a.id).cloned()))
            .collect();
        v.sort_by(|a, b| (b.0.last_time, &b.0.id).cmp(&(a.0.last_time, &a.0.id)));
        v.truncate(limit);
        v
    }

    /// The triage of one alert as this console last saw it.
    pub fn triage_of(&self, alert_id: &str) -> Option<TriageEntry> {
        lock(&self.cache).triage.get(alert_id).cloned()
    }

    /// Messages of the alerts stream that were not alerts, and the last error of a background
    /// task (none once it recovered).
    pub fn health(&self) -> (u64, Option<String>) {
        let c = lock(&self.cache);
        (c.bad, c.error.clone())
    }

    /// New alerts as they arrive (bounded: a receiver that falls behind misses alerts, which
    /// the next `alerts` call still lists).
    pub fn live(&self) -> std::sync::mpsc::Receiver<Alert> {
        let (tx, rx) = std::sync::mpsc::sync_channel(4096);
        lock(&self.cache).live.push(tx);
        rx
    }

    /// The connection (for fleet searches on the same connection).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Set an alert's triage for every console. Returns the value that holds afterwards:
    /// this change, or a later one made meanwhile by another console (last writer wins).
    pub async fn triage(
        &self,
        alert_id: &str,
        state: TriageState,
        note: &str,
    ) -> Result<TriageEntry, FleetError> {
        let mine = TriageEntry {
            alert_id: alert_id.to_owned(),
            state,
            note: note.to_owned(),
            by: self.who.clone(),
            time: Timestamp::now(),
        };
        let key = triage_key(alert_id);
        let bytes: bytes::Bytes = serde_json::to_vec(&mine)
            .map_err(|e| FleetError::Net(e.to_string()))?
            .into();
        let net = |m: String| FleetError::Net(format!("triage of `{alert_id}`: {m}"));
        for _ in 0..8 {
            let cur = self
                .kv
                .entry(key.clone())
                .await
                .map_err(|e| net(e.to_string()))?;
            let cur = cur.filter(|e| e.operation == kv::Operation::Put);
            let written = match &cur {
                Some(e) => {
                    if let Ok(old) = serde_json::from_slice::<TriageEntry>(&e.value)
                        && old.time > mine.time
                    {
                        lock(&self.cache)
                            .triage
                            .insert(alert_id.into(), old.clone());
                        return Ok(old);
                    }
                    match self.kv.update(&key, bytes.clone(), e.revision).await {
                        Ok(_) => true,
                        Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => false,
                        Err(err) => return Err(net(err.to_string())),
                    }
                }
                None => match self.kv.create(&key, bytes.clone()).await {
                    Ok(_) => true,
                    Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => false,
                    Err(err) => return Err(net(err.to_string())),
                },
            };
            if written {
                lock(&self.cache)
                    .triage
                    .insert(alert_id.into(), mine.clone());
                return Ok(mine);
            }
        }
        Err(net("the key changed under every attempt".into()))
    }
}

/// Follow the alerts stream into the cache, from `since` ago; after an error, resume after the
/// last sequence seen.
async fn follow_alerts(
    js: jetstream::Context,
    stream: String,
    since: Duration,
    cache: Arc<Mutex<Cache>>,
) {
    let start = time::OffsetDateTime::now_utc() - since;
    let mut next_seq: Option<u64> = None;
    loop {
        let err = async {
            let s = js
                .get_stream(&stream)
                .await
                .map_err(|e| format!("alerts stream `{stream}`: {e}"))?;
            let deliver_policy = match next_seq {
                Some(seq) => consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: seq,
                },
                None => consumer::DeliverPolicy::ByStartTime { start_time: start },
            };
            let c = s
                .create_consumer(consumer::pull::OrderedConfig {
                    deliver_policy,
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("alerts consumer: {e}"))?;
            let mut msgs = c
                .messages()
                .await
                .map_err(|e| format!("alerts consumer: {e}"))?;
            lock(&cache).error = None;
            while let Some(m) = msgs.next().await {
                let m = m.map_err(|e| format!("alerts consumer: {e}"))?;
                if let Ok(info) = m.info() {
                    next_seq = Some(info.stream_sequence + 1);
                }
                let mut c = lock(&cache);
                match alert_from_payload(&m.payload) {
                    Ok(a) => {
                        c.live.retain(|tx| {
                            !matches!(
                                tx.try_send(a.clone()),
                                Err(std::sync::mpsc::TrySendError::Disconnected(_))
                            )
                        });
                        // A folded re-emit carries a higher count; keep the newest copy.
                        let keep = c.alerts.get(&a.id).is_none_or(|old| old.count <= a.count);
                        if keep {
                            c.alerts.insert(a.id.clone(), a);
                        }
                    }
                    Err(_) => c.bad += 1,
                }
            }
            Err::<(), String>("alerts consumer ended".into())
        }
        .await;
        if let Err(e) = err {
            tracing::debug!(error = %e, "fleet console: alerts");
            lock(&cache).error = Some(e);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Follow the triage bucket into the cache: every key's latest value, then every change.
async fn follow_triage(store: kv::Store, cache: Arc<Mutex<Cache>>) {
    loop {
        let err = async {
            let mut w = store
                .watch_with_history(">")
                .await
                .map_err(|e| format!("triage watch: {e}"))?;
            while let Some(e) = w.next().await {
                let e = e.map_err(|e| format!("triage watch: {e}"))?;
                if e.operation != kv::Operation::Put {
                    continue;
                }
                let Ok(t) = serde_json::from_slice::<TriageEntry>(&e.value) else {
                    lock(&cache).bad += 1;
                    continue;
                };
                // The key must be the alert's own: a value naming another alert is not trusted.
                if triage_key(&t.alert_id) != e.key {
                    lock(&cache).bad += 1;
                    continue;
                }
                let mut c = lock(&cache);
                let newer = c.triage.get(&t.alert_id).is_none_or(|o| o.time <= t.time);
                if newer {
                    c.triage.insert(t.alert_id.clone(), t);
                }
            }
            Err::<(), String>("triage watch ended".into())
        }
        .await;
        if let Err(e) = err {
            tracing::debug!(error = %e, "fleet console: triage");
            lock(&cache).error = Some(e);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_read_back_from_their_stream_payload() {
        let a = Alert {
            id: "a1b2".into(),
            time: Timestamp(1_700_000_000_000_000_000),
            host: "web-1".into(),
            rule: "ssh-key-read".into(),
            severity: Severity::High,
            agent: Some(AgentRef {
                name: "claude".into(),
            }),
            session: Some(SessionRef {
                id: "00112233aabbccdd".into(),
            }),
            summary: BStr::from("read ~/.ssh/id_rsa"),
            tags: vec!["credentials".into()],
            event_ids: vec!["e1".into()],
            count: 3,
            first_time: Timestamp(1_699_999_999_000_000_000),
            last_time: Timestamp(1_700_000_000_000_000_000),
            in_loss_window: true,
        };
        let back = alert_from_payload(rules::falco_json(&a).as_bytes()).unwrap();
        assert_eq!(back, a);
        assert!(alert_from_payload(b"{\"id\":\"x\"}").is_err());
        assert!(alert_from_payload(b"not json").is_err());
    }

    #[test]
    fn alert_ids_make_valid_distinct_keys() {
        assert_eq!(triage_key("abc-123"), "abc-123");
        assert_eq!(triage_key("a.b"), "a=2Eb");
        assert_eq!(triage_key("a=2Eb"), "a=3D2Eb");
        assert_eq!(triage_key("a b>*"), "a=20b=3E=2A");
    }
}
