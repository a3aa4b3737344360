//! Where enriched events go, on the sensor thread: the policy engine, the durable store, the
//! JSON-lines files and live subscribers. Every output is buffered or bounded so a slow
//! consumer never stalls the ring buffer; failures are counted and shown in `status`.
//! The JSON-lines files are written from what the store made durable: a line waits until the
//! store's group fsync covers its record, so after a `kill -9` a file never holds an event the
//! store lost (a record the store refused, or with no store, is written at once).

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use agent_api::{PolicyHealth, RuleStatus, RulesListing, Status, StoreStatus};
use agent_model::{Alert, Event, Kind, Timestamp};
use anyhow::Result;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::reload::PolicyState;

/// Capacity of the live broadcast; a subscriber that falls this far behind is told how many
/// items it missed.
pub const LIVE_CAPACITY: usize = 65536;

/// Alerts raised within this long after a loss are marked as possibly incomplete.
const LOSS_WINDOW_NS: i64 = 10_000_000_000;

/// One item on the live stream.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum LiveItem {
    Event(Box<Event>),
    Alert { alert: Box<Alert> },
}

fn open_append(p: &Path, what: &str) -> Result<BufWriter<File>> {
    Ok(BufWriter::with_capacity(
        1 << 20,
        crate::outfile::open_append(p, what)?,
    ))
}

pub struct Pipeline {
    host: String,
    events_jsonl: Option<BufWriter<File>>,
    alerts_jsonl: Option<BufWriter<File>>,
    live: broadcast::Sender<Arc<LiveItem>>,
    engine: rules::Engine,
    pub policy: PolicyState,
    reload: Arc<AtomicBool>,
    store: Option<Arc<agent_store::Store>>,
    output_errors: u64,
    store_errors: u64,
    last_store_error: Option<String>,
    alerts: u64,
    last_loss: Option<Timestamp>,
    /// Time of the newest alert of each rule.
    last_hit: std::collections::HashMap<String, Timestamp>,
    /// Alerts of rules with an `action`, for the sensor loop's responder (`take_triggered`).
    triggered: Vec<Triggered>,
    /// Fleet outputs' status (they ship from the store on the runtime, not from here).
    fleet: Vec<agent_fleet::ShipperHandle>,
    /// The store's disk-full state already alerted.
    disk: crate::diskfull::DiskWatch,
    /// Each fleet output's `dropped` counter as last seen: an increase is an alert.
    fleet_dropped: agent_fleet::DroppedWatch,
    /// Webhook outputs' status (they ship from the store on the runtime).
    webhooks: Vec<crate::spoolout::OutputHandle>,
    /// The store's last appended seq (what the ring's commit waits for, `source::durable`).
    appended: u64,
    /// The data dir's free space against `[store] low_space` (`None`: off).
    space: Option<crate::lowspace::SpaceWatch>,
    /// JSON lines waiting for their record to be durable: (store seq, alert?, line).
    pending_lines: std::collections::VecDeque<(u64, bool, String)>,
}

/// JSON lines held for the store's fsync at most; past this the oldest is written at once.
const MAX_PENDING_LINES: usize = 65536;

/// An alert whose rule asks for a response action.
#[derive(Debug, Clone)]
pub struct Triggered {
    pub rule: String,
    pub alert_id: String,
    /// The alert's session (16 hex digits); rules never act outside sessions.
    pub session: Option<String>,
    /// The process of the event that fired the rule (pid, start), when one event did.
    pub target: Option<(u32, Timestamp)>,
    pub response: rules::RuleResponse,
}

pub struct Outputs<'a> {
    pub events_jsonl: Option<&'a Path>,
    pub alerts_jsonl: Option<&'a Path>,
}

impl Pipeline {
    pub fn new(
        host: String,
        out: Outputs<'_>,
        live: broadcast::Sender<Arc<LiveItem>>,
        policy: Arc<rules::Policy>,
        policy_state: PolicyState,
        reload: Arc<AtomicBool>,
        store: Option<Arc<agent_store::Store>>,
    ) -> Result<Pipeline> {
        Ok(Pipeline {
            host,
            events_jsonl: out
                .events_jsonl
                .map(|p| open_append(p, "events"))
                .transpose()?,
            alerts_jsonl: out
                .alerts_jsonl
                .map(|p| open_append(p, "alerts"))
                .transpose()?,
            live,
            engine: rules::Engine::new(policy),
            policy: policy_state,
            reload,
            store,
            output_errors: 0,
            store_errors: 0,
            last_store_error: None,
            alerts: 0,
            last_loss: None,
            last_hit: std::collections::HashMap::new(),
            triggered: Vec::new(),
            fleet: Vec::new(),
            disk: crate::diskfull::DiskWatch::default(),
            fleet_dropped: agent_fleet::DroppedWatch::default(),
            webhooks: Vec::new(),
            appended: 0,
            space: None,
            pending_lines: Default::default(),
        })
    }

    /// Watch the data dir's free space against `[store] low_space` (`None`: off).
    pub fn set_low_space(&mut self, t: Option<crate::lowspace::Threshold>) {
        self.space = t.map(crate::lowspace::SpaceWatch::new);
    }

    /// The fleet outputs whose status `status` shows.
    pub fn set_fleet(&mut self, handles: Vec<agent_fleet::ShipperHandle>) {
        self.fleet = handles;
    }

    pub fn set_webhooks(&mut self, handles: Vec<crate::spoolout::OutputHandle>) {
        self.webhooks = handles;
    }

    fn store_failed(&mut self, e: agent_store::StoreError) {
        if matches!(e, agent_store::StoreError::Reserve) {
            // Refused under the low-space reserve: counted by the store (`reserve_dropped`) and
            // alerted by `lowspace`, not a write error.
            return;
        }
        self.store_errors += 1;
        let msg = e.to_string();
        if self.last_store_error.as_deref() != Some(msg.as_str()) {
            tracing::error!(error = %msg, "store write failed");
        }
        self.last_store_error = Some(msg);
    }

    pub fn event(&mut self, ev: Event) {
        if ev.kind() == Kind::MonitorLoss {
            self.last_loss = Some(ev.time);
        }
        let alerts = self.engine.process(&ev);
        if ev.kind() == Kind::SessionEnd
            && let Some(s) = ev.session_id()
        {
            self.engine.end_session(s);
        }
        let seq = match self.store.as_ref().map(|st| st.append_event(&ev)) {
            Some(Ok(seq)) => {
                self.appended = self.appended.max(seq);
                Some(seq)
            }
            Some(Err(e)) => {
                self.store_failed(e);
                None
            }
            None => None,
        };
        if self.events_jsonl.is_some() {
            self.line(seq, false, ev.to_json());
        }
        // No subscriber is not an error.
        let target = (ev.process.pid != 0).then_some((ev.process.pid, ev.process.start));
        let _ = self.live.send(Arc::new(LiveItem::Event(Box::new(ev))));
        for a in alerts {
            self.alert_about(a, target);
        }
    }

    /// The deny rule (tagged `hook.deny`) that matches `ev`, with its rendered output.
    pub fn deny_verdict(&self, ev: &Event) -> Option<(String, String)> {
        self.engine.deny_verdict(ev)
    }

    /// Alerts of rules with an `action` since the last call, oldest first.
    /// The running policy's hash (changes on every swap that changes a rule).
    pub fn policy_hash(&self) -> String {
        self.engine.policy().hash()
    }

    /// Each rule with a response action, with that response.
    pub fn rule_responses(&self) -> Vec<(String, rules::RuleResponse)> {
        self.engine
            .policy()
            .rules()
            .iter()
            .filter_map(|r| Some((r.id.clone(), r.response.clone()?)))
            .collect()
    }

    pub fn take_triggered(&mut self) -> Vec<Triggered> {
        std::mem::take(&mut self.triggered)
    }

    pub fn alert(&mut self, a: Alert) {
        self.alert_about(a, None)
    }

    /// Record an alert; `target` is the process of the event that raised it.
    fn alert_about(&mut self, mut a: Alert, target: Option<(u32, Timestamp)>) {
        if let Some(response) = self
            .engine
            .policy()
            .rules()
            .iter()
            .find(|r| r.id == a.rule)
            .and_then(|r| r.response.clone())
        {
            self.triggered.push(Triggered {
                rule: a.rule.clone(),
                alert_id: a.id.clone(),
                session: a.session.as_ref().map(|s| s.id.clone()),
                target,
                response,
            });
        }
        if let Some(l) = self.last_loss
            && a.time.0 >= l.0
            && a.time.0 - l.0 <= LOSS_WINDOW_NS
        {
            a.in_loss_window = true;
        }
        self.alerts += 1;
        let last = self.last_hit.entry(a.rule.clone()).or_default();
        *last = (*last).max(a.last_time);
        let seq = match self.store.as_ref().map(|st| st.append_alert(&a)) {
            Some(Ok(seq)) => {
                self.appended = self.appended.max(seq);
                Some(seq)
            }
            Some(Err(e)) => {
                self.store_failed(e);
                None
            }
            None => None,
        };
        if self.alerts_jsonl.is_some() {
            self.line(seq, true, rules::falco_json(&a));
        }
        let _ = self
            .live
            .send(Arc::new(LiveItem::Alert { alert: Box::new(a) }));
    }

    /// Periodic work, every 250 ms: windowed-rule flushes, policy reloads, and an alert for each
    /// increase of a fleet output's count of records deleted before they were shipped.
    pub fn tick(&mut self) {
        for a in self.engine.flush(Timestamp::now()) {
            self.alert(a);
        }
        if let Some(st) = &self.store {
            let h = st.health();
            let mut alerts = self.disk.check(&h, &self.host, Timestamp::now());
            if let Some(w) = &mut self.space
                && let Some((free, total)) = crate::lowspace::free_space(st.dir())
            {
                alerts.extend(w.check(
                    st.dir(),
                    free,
                    total,
                    h.reserve_dropped,
                    &self.host,
                    Timestamp::now(),
                ));
                st.set_reserve_only(w.reserve_only());
            }
            for a in alerts {
                self.alert(a);
            }
        }
        if !self.fleet.is_empty() || !self.webhooks.is_empty() {
            let mut st: Vec<_> = self.fleet.iter().map(|h| h.status()).collect();
            st.extend(self.webhooks.iter().map(|h| h.status()));
            let counters: Vec<u64> = st.iter().map(|s| s.dropped).collect();
            for (i, increase, total) in self.fleet_dropped.increases(&counters) {
                let a = agent_fleet::unshipped_alert(
                    &st[i].name,
                    &self.host,
                    increase,
                    total,
                    Timestamp::now(),
                );
                self.alert(a);
            }
        }
        let hup = self.reload.swap(false, Ordering::Relaxed);
        if hup || self.policy.changed_on_disk() {
            match self.policy.reload(&self.host) {
                Ok(r) => {
                    self.engine.swap_policy(r.policy);
                    if let Some(a) = r.dropped {
                        self.alert(a);
                    }
                }
                Err(alert) => self.alert(*alert),
            }
        }
    }

    /// A JSON line of the record the store gave `seq` (`None`: not in the store): written once
    /// that seq is durable.
    fn line(&mut self, seq: Option<u64>, alert: bool, line: String) {
        // During a disk outage an alert (`monitor.disk_full` first) is written at once.
        let outage = alert && self.store.as_ref().is_some_and(|st| st.health().full);
        match seq {
            Some(seq) if !outage => {
                self.pending_lines.push_back((seq, alert, line));
                if self.pending_lines.len() > MAX_PENDING_LINES
                    && let Some((_, alert, line)) = self.pending_lines.pop_front()
                {
                    self.write_line(alert, &line);
                }
            }
            _ => self.write_line(alert, &line),
        }
    }

    fn write_line(&mut self, alert: bool, line: &str) {
        let w = if alert {
            &mut self.alerts_jsonl
        } else {
            &mut self.events_jsonl
        };
        if let Some(w) = w
            && w.write_all(line.as_bytes())
                .and_then(|_| w.write_all(b"\n"))
                .is_err()
        {
            self.output_errors += 1;
        }
    }

    /// The store's last appended seq (0 before the first).
    pub fn appended_seq(&self) -> u64 {
        self.appended
    }

    /// The store's durable seq; `None` when there is nothing to wait for (no store, or a store
    /// that takes no writes now and counts what it refuses).
    pub fn durable_seq(&self) -> Option<u64> {
        let st = self.store.as_ref()?;
        if st.health().full {
            return None;
        }
        Some(st.durable_seq())
    }

    /// The store, for reading its spool tail.
    pub fn store(&self) -> Option<&agent_store::Store> {
        self.store.as_deref()
    }

    /// Make everything appended durable now (at stop).
    pub fn sync(&mut self) {
        if let Some(st) = &self.store
            && let Err(e) = st.sync()
        {
            self.store_failed(e);
        }
    }

    /// Write the JSON lines whose records are durable (all of them while the store takes no
    /// writes: they are kept in memory or refused, and the files are then the only record),
    /// then flush the files. Returns the durable seq it wrote up to (`None`: everything), which
    /// is what the ring may be committed to: a record durable after this read still has its
    /// line in memory, and a daemon killed then must re-read it.
    pub fn flush(&mut self) -> Option<u64> {
        let durable = self.durable_seq();
        while let Some(&(seq, ..)) = self.pending_lines.front() {
            if durable.is_some_and(|d| seq > d) {
                break;
            }
            let Some((_, alert, line)) = self.pending_lines.pop_front() else {
                break;
            };
            self.write_line(alert, &line);
        }
        for w in [&mut self.events_jsonl, &mut self.alerts_jsonl]
            .into_iter()
            .flatten()
        {
            if w.flush().is_err() {
                self.output_errors += 1;
            }
        }
        durable
    }

    /// The pipeline's part of `status`: outputs, subscribers, the policy and the store.
    pub fn status_into(&self, st: &mut Status) {
        st.output_errors = self.output_errors;
        st.live_subscribers = self.live.receiver_count() as u64;
        let mut hits = self.engine.hit_counts();
        hits.retain(|h| h.1 > 0);
        hits.sort_by_key(|h| std::cmp::Reverse(h.1));
        st.policy = Some(PolicyHealth {
            policy: self.policy.status(),
            state_bytes: self.engine.state_bytes() as u64,
            alerts: self.alerts,
            hits,
        });
        st.store = self.store.as_ref().map(|s| StoreStatus {
            stats: s.stats(),
            errors: self.store_errors,
            last_error: self.last_store_error.clone(),
            dir: s.dir().display().to_string(),
        });
        st.fleet = self.fleet.iter().map(|h| h.status()).collect();
        st.fleet.extend(self.webhooks.iter().map(|h| h.status()));
    }

    /// The answer to `rules`: the running policy and each rule with its hits.
    pub fn rules_listing(&self) -> RulesListing {
        let hits: std::collections::HashMap<String, u64> =
            self.engine.hit_counts().into_iter().collect();
        let rules = self
            .engine
            .policy()
            .rules()
            .iter()
            .map(|r| RuleStatus {
                id: r.id.clone(),
                severity: r.severity,
                enabled: r.enabled,
                description: r.description.clone(),
                kinds: r.kinds.clone(),
                tags: r.tags.clone(),
                mode: r.mode.to_owned(),
                defined_at: r.defined_at.clone(),
                hits: hits.get(&r.id).copied().unwrap_or(0),
                last_hit: self.last_hit.get(&r.id).copied(),
                overrides: r.overrides.clone(),
                action: r.response.as_ref().map(|x| x.action.name().to_owned()),
                action_mode: r.response.as_ref().map(|x| {
                    match x.dry_run {
                        Some(true) => "dry_run",
                        Some(false) => "enforce",
                        None => "default",
                    }
                    .to_owned()
                }),
            })
            .collect();
        RulesListing {
            policy: self.policy.status(),
            rules,
        }
    }
}
