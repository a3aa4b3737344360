// Over 800 lines: the four kinds of windowed state (count, distinct, sum, joined sequence) share the key, fold and bound machinery kept here.
//! The engine: runs a compiled [`Policy`] over events, keeps the bounded state of windowed
//! rules and de-duplicates alerts.
//!
//! # Alerts, folds and how the daemon treats them
//! The first hit of a rule for a (session, key) returns a fresh alert (`count == 1`). Repeats
//! within the rule's dedup window (default 60 s, measured from the first hit) return nothing but
//! are counted. When the window is over — seen on the next hit after it, on [`Engine::flush`], or
//! at `session.end` — the engine returns the alert again, **with the same `id`**, a higher `count`
//! and a later `last_time`. The daemon stores and forwards every alert it gets; an alert whose
//! `id` it has seen supersedes the earlier one (an upsert). Call `flush(now)` about once a second.
//!
//! # Bounds
//! Per session and windowed rule, state is at most `threshold` timestamps or value hashes, 65
//! slices of a sum, or one chain per sequence step (64 per joined step, oldest dropped), plus 16
//! event ids. Per session, at most `MAX_CHANGED_PATHS` changed files (`changed_by_session`),
//! kept only when a rule asks and recorded after the event's own rules ran. At most [`MAX_TRACKED_KEYS`] sessions/agents
//! are tracked (the least recently seen is evicted beyond that) and at most [`MAX_FOLDS`] open
//! folds (beyond that alerts are returned without folding). State of a session is dropped at
//! `session.end`, when the session root exits, on [`Engine::end_session`], and when idle longer
//! than the policy's longest window at `flush`.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::mem::size_of;
use std::sync::Arc;

use agent_model::{Alert, BStr, Event, Kind, Timestamp, Value};

use crate::changed::{ChangedPaths, changed_path, created_path};
use crate::cond::{Cx, Fx, FxBuild};
use crate::output::render;
use crate::policy::MAX_JOIN_KEYS;
use crate::policy::{Mode, Part, Per, Policy, Rule, kind_bit};

/// Most sessions and agents with windowed state.
pub const MAX_TRACKED_KEYS: usize = 65_536;
/// Most open de-duplication folds.
pub const MAX_FOLDS: usize = 65_536;
/// Most event ids kept on an alert.
pub const MAX_EVENT_IDS: usize = 16;
/// An alert within this long after a `monitor.loss` is marked `in_loss_window`.
pub const LOSS_WINDOW_NS: i64 = 10_000_000_000;
/// A single-event rule with this tag that matches an `agent.tool_call` (or `agent.prompt`)
/// makes the daemon answer the agent's hook with a deny, the rule's output as the reason
/// (see [`Engine::deny_verdict`]). It still raises its alert like any rule.
pub const DENY_TAG: &str = "hook.deny";

enum WinState {
    Count {
        times: VecDeque<i64>,
        ids: VecDeque<(i64, Box<str>)>,
    },
    Distinct {
        seen: HashMap<u64, i64, FxBuild>,
        first: i64,
        ids: VecDeque<(i64, Box<str>)>,
    },
    Sum {
        /// `(start, sum)` of slices of `within / 64`, oldest first.
        slices: VecDeque<(i64, i64)>,
        total: i64,
        ids: VecDeque<(i64, Box<str>)>,
    },
    Seq {
        /// `chains[i]`: the chains that completed step `i`.
        chains: Vec<Slot>,
    },
}

/// Start time and event ids of a sequence chain.
type Chain = (i64, Vec<Box<str>>);

/// The chains that completed one step: the newest one, or for a joined step the newest per
/// key (at most [`MAX_JOIN_KEYS`]).
#[derive(Clone)]
enum Slot {
    One(Option<Chain>),
    Keyed(HashMap<u64, Chain, FxBuild>),
}

impl Slot {
    fn chains(&self) -> impl Iterator<Item = &Chain> {
        let (one, keyed) = match self {
            Slot::One(c) => (c.as_ref(), None),
            Slot::Keyed(m) => (None, Some(m.values())),
        };
        one.into_iter().chain(keyed.into_iter().flatten())
    }

    fn bytes(&self) -> usize {
        let chain = |(_, v): &Chain| {
            8 + v
                .iter()
                .map(|s| s.len() + size_of::<Box<str>>())
                .sum::<usize>()
        };
        let own = match self {
            Slot::One(_) => 0,
            Slot::Keyed(m) => m.capacity() * (8 + size_of::<Chain>() + 1),
        };
        own + self.chains().map(chain).sum::<usize>()
    }

    /// Keep `c` as the chain of `key` (`None`: unkeyed) unless a newer one is there.
    fn put(&mut self, key: Option<u64>, c: Chain) {
        match (self, key) {
            (Slot::One(o), _) => {
                if o.as_ref().is_none_or(|x| x.0 <= c.0) {
                    *o = Some(c);
                }
            }
            (Slot::Keyed(m), Some(k)) => {
                if let Some(x) = m.get(&k) {
                    if x.0 <= c.0 {
                        m.insert(k, c);
                    }
                    return;
                }
                if m.len() >= MAX_JOIN_KEYS
                    && let Some(old) = m.iter().min_by_key(|(_, x)| x.0).map(|(k, _)| *k)
                {
                    m.remove(&old);
                }
                m.insert(k, c);
            }
            (Slot::Keyed(_), None) => {}
        }
    }
}

impl WinState {
    fn bytes(&self) -> usize {
        let ids = |v: &VecDeque<(i64, Box<str>)>| {
            v.iter()
                .map(|(_, s)| 8 + s.len() + size_of::<Box<str>>())
                .sum::<usize>()
        };
        match self {
            WinState::Count { times, ids: i } => times.capacity() * 8 + ids(i),
            WinState::Distinct { seen, ids: i, .. } => seen.capacity() * (8 + 8 + 1) + ids(i),
            WinState::Sum { slices, ids: i, .. } => slices.capacity() * 16 + ids(i),
            WinState::Seq { chains } => {
                chains.iter().map(Slot::bytes).sum::<usize>()
                    + chains.capacity() * size_of::<Slot>()
            }
        }
    }

    fn newest(&self) -> i64 {
        match self {
            WinState::Count { times, .. } => times.back().copied().unwrap_or(i64::MIN),
            WinState::Distinct { seen, .. } => seen.values().copied().max().unwrap_or(i64::MIN),
            WinState::Sum { slices, .. } => slices.back().map_or(i64::MIN, |s| s.0),
            WinState::Seq { chains } => chains
                .iter()
                .flat_map(Slot::chains)
                .map(|c| c.0)
                .max()
                .unwrap_or(i64::MIN),
        }
    }
}

#[derive(Default)]
struct KeyState {
    windows: Vec<(u32, WinState)>,
    last_seen: i64,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct FoldKey {
    rule: u32,
    /// Hash of the session id (the id itself is on the alert).
    session: u64,
    key: u64,
}

fn hash_str(s: &str) -> u64 {
    let mut h = Fx::default();
    s.hash(&mut h);
    h.finish()
}

struct Fold {
    alert: Alert,
    emitted: u64,
    dedup_ns: i64,
}

/// Runs a policy over events. Not `Sync`: one engine per pipeline thread.
pub struct Engine {
    policy: Arc<Policy>,
    hits: Vec<u64>,
    sessions: HashMap<Box<str>, KeyState, FxBuild>,
    agents: HashMap<Box<str>, KeyState, FxBuild>,
    folds: HashMap<FoldKey, Fold, FxBuild>,
    last_loss: Option<i64>,
    max_within: i64,
    /// Candidate rules of the current event (kept to reuse its allocation).
    scratch: Vec<u32>,
    /// Session root (pid, start) by session-id hash, from `session.start`.
    roots: HashMap<u64, (u32, i64), FxBuild>,
    /// Files each session created or changed, kept only when a rule asks
    /// (`changed_by_session`); at most [`MAX_TRACKED_KEYS`] sessions.
    changed: HashMap<Box<str>, ChangedPaths, FxBuild>,
}

const NO_SESSION: &str = "-";

fn push_id(ids: &mut VecDeque<(i64, Box<str>)>, t: i64, id: &str) {
    if ids.len() == MAX_EVENT_IDS {
        ids.pop_front();
    }
    ids.push_back((t, id.into()));
}

/// The ids of the events at or after `first` (the ones inside the window that fired).
fn ids_since(ids: &mut VecDeque<(i64, Box<str>)>, first: i64) -> Vec<String> {
    ids.drain(..)
        .filter(|(t, _)| *t >= first)
        .map(|(_, id)| String::from(id))
        .collect()
}

fn hash_value(v: &Value<'_>) -> u64 {
    let mut h = Fx::default();
    match v {
        Value::Str(s) => s.hash(&mut h),
        Value::List(l) => l.hash(&mut h),
        Value::Int(i) | Value::Time(i) => i.hash(&mut h),
        Value::Ip(ip) => ip.hash(&mut h),
        Value::Bool(b) => b.hash(&mut h),
    }
    h.finish()
}

fn max_within(p: &Policy) -> i64 {
    p.rules.iter().map(|r| r.within_ns).max().unwrap_or(0)
}

impl Engine {
    pub fn new(policy: Arc<Policy>) -> Engine {
        Engine {
            hits: vec![0; policy.rules.len()],
            max_within: max_within(&policy),
            policy,
            sessions: HashMap::default(),
            agents: HashMap::default(),
            folds: HashMap::default(),
            last_loss: None,
            scratch: Vec::new(),
            roots: HashMap::default(),
            changed: HashMap::default(),
        }
    }

    /// The running policy.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// The first enabled single-event rule tagged [`DENY_TAG`] that matches `ev` (its condition
    /// holds and no exception does): its id and its rendered output. Pure, and independent of
    /// alert folding, so a repeated request gets the same answer as the first. The daemon uses
    /// it to answer an agent's `PreToolUse` hook with a deny.
    pub fn deny_verdict(&self, ev: &Event) -> Option<(String, String)> {
        let mut cands = Vec::new();
        self.policy.index[ev.kind() as usize].candidates(ev, &mut cands);
        let cx = Cx {
            changed: ev.session_id().and_then(|s| self.changed.get(s)),
        };
        cands.into_iter().find_map(|ri| {
            let rule = &self.policy.rules[ri as usize];
            (matches!(rule.mode, Mode::Event)
                && rule.tags.iter().any(|t| t == DENY_TAG)
                && rule.cond.eval(ev, cx)
                && !rule.exceptions.iter().any(|x| x.eval(ev, cx)))
            .then(|| (rule.id.clone(), render(&rule.output, ev)))
        })
    }

    /// Run every rule for the event's kind; returns new alerts and closed folds.
    pub fn process(&mut self, ev: &Event) -> Vec<Alert> {
        let mut out = Vec::new();
        let kind = ev.kind();
        let t = ev.time.0;
        if kind == Kind::MonitorLoss {
            self.last_loss = Some(t);
        }
        let policy = Arc::clone(&self.policy);
        let mut cands = std::mem::take(&mut self.scratch);
        policy.index[kind as usize].candidates(ev, &mut cands);
        // The session's changed files are read by the conditions while rules update other
        // state: take the map out for the loop and put it back after.
        let changed = std::mem::take(&mut self.changed);
        let cx = Cx {
            changed: ev.session_id().and_then(|s| changed.get(s)),
        };
        for &ri in &cands {
            let rule = &policy.rules[ri as usize];
            match &rule.mode {
                Mode::Event => {
                    if rule.cond.eval(ev, cx) && !rule.exceptions.iter().any(|x| x.eval(ev, cx)) {
                        self.hit(ri, rule, ev, None, t, &mut out);
                    }
                }
                Mode::Sequence { .. } => {
                    if !rule.exceptions.iter().any(|x| x.eval(ev, cx)) {
                        self.windowed(ri, rule, ev, cx, &mut out);
                    }
                }
                _ => {
                    if rule.cond.eval(ev, cx) && !rule.exceptions.iter().any(|x| x.eval(ev, cx)) {
                        self.windowed(ri, rule, ev, cx, &mut out);
                    }
                }
            }
        }
        self.changed = changed;
        self.scratch = cands;
        if policy.uses_changed
            && let (Some(p), Some(s)) = (changed_path(ev), ev.session_id())
        {
            if !self.changed.contains_key(s) {
                if self.changed.len() >= MAX_TRACKED_KEYS
                    && let Some(oldest) = self
                        .changed
                        .iter()
                        .min_by_key(|(_, c)| c.last)
                        .map(|(k, _)| k.clone())
                {
                    self.changed.remove(&oldest);
                }
                self.changed.insert(s.into(), ChangedPaths::default());
            }
            if let Some(c) = self.changed.get_mut(s) {
                c.insert(p, t);
                if let Some((p, from)) = created_path(ev)
                    && from.is_none_or(|f| c.created(f))
                {
                    c.insert_created(p, t);
                }
            }
        }
        match kind {
            Kind::SessionEnd => {
                if let Some(s) = ev.session_id() {
                    self.end_session(s);
                    self.close_folds(
                        |f| f.alert.session.as_ref().is_some_and(|x| x.id == s),
                        &mut out,
                    );
                }
            }
            Kind::SessionStart => {
                // Remember the root so its exit retires the session's state. Keyed by
                // (pid, start), never pid alone; bounded like the session map.
                if let Some(s) = ev.session_id() {
                    if self.roots.len() >= MAX_TRACKED_KEYS {
                        self.roots.clear();
                    }
                    self.roots
                        .insert(hash_str(s), (ev.process.pid, ev.process.start.0));
                }
            }
            Kind::ProcessExit => {
                if let Some(s) = ev.session_id() {
                    let h = hash_str(s);
                    if self.roots.get(&h) == Some(&(ev.process.pid, ev.process.start.0)) {
                        self.end_session(s);
                    }
                }
            }
            _ => {}
        }
        out
    }

    fn windowed(&mut self, ri: u32, rule: &Rule, ev: &Event, cx: Cx<'_>, out: &mut Vec<Alert>) {
        let t = ev.time.0;
        let (map, key) = match rule.per {
            Per::Session => (&mut self.sessions, ev.session_id().unwrap_or(NO_SESSION)),
            Per::Agent => (&mut self.agents, ev.agent_name().unwrap_or(NO_SESSION)),
        };
        // Sequences look at every event of their kinds; only create state when a step matches.
        if let Mode::Sequence { steps } = &rule.mode {
            let kind = kind_bit(ev.kind());
            let mut matched = 0u32;
            for (i, st) in steps.iter().enumerate() {
                if st.kinds & kind != 0 && st.cond.eval(ev, cx) {
                    matched |= 1 << i;
                }
            }
            if matched == 0 {
                return;
            }
            let ks = Self::key_state(map, key, t);
            let st = Self::win(ks, ri, || WinState::Seq {
                chains: steps
                    .iter()
                    .map(|s| {
                        if s.join.is_empty() {
                            Slot::One(None)
                        } else {
                            Slot::Keyed(HashMap::default())
                        }
                    })
                    .collect(),
            });
            let WinState::Seq { chains } = st else { return };
            if let Some((start, ids, k)) = Self::advance(steps, chains, matched, ev, rule.within_ns)
            {
                // The chains of the key that fired (all of them when unkeyed) start over.
                for c in chains.iter_mut() {
                    match (c, k) {
                        (Slot::One(o), _) => *o = None,
                        (Slot::Keyed(m), Some(k)) => {
                            m.remove(&k);
                        }
                        (Slot::Keyed(m), None) => m.clear(),
                    }
                }
                let ids = ids.into_iter().map(String::from).collect();
                self.hit(ri, rule, ev, Some(ids), start, out);
            }
            return;
        }
        let ks = Self::key_state(map, key, t);
        let within = rule.within_ns;
        let fired: Option<(i64, Vec<String>)> = match rule.mode {
            Mode::Count { threshold } => {
                let st = Self::win(ks, ri, || WinState::Count {
                    times: VecDeque::new(),
                    ids: VecDeque::new(),
                });
                let WinState::Count { times, ids } = st else {
                    return;
                };
                times.push_back(t);
                push_id(ids, t, &ev.id);
                while times.front().is_some_and(|&f| f < t - within) || times.len() > threshold {
                    times.pop_front();
                }
                if times.len() >= threshold {
                    let first = times.front().copied().unwrap_or(t);
                    let v = ids_since(ids, first);
                    times.clear();
                    Some((first, v))
                } else {
                    None
                }
            }
            Mode::Distinct { field, threshold } => {
                let Some(v) = ev.get(field) else { return };
                let h = hash_value(&v);
                let st = Self::win(ks, ri, || WinState::Distinct {
                    seen: HashMap::default(),
                    first: t,
                    ids: VecDeque::new(),
                });
                let WinState::Distinct { seen, first, ids } = st else {
                    return;
                };
                if seen.is_empty() {
                    *first = t;
                }
                if seen.insert(h, t).is_none() {
                    push_id(ids, t, &ev.id);
                }
                if seen.len() >= threshold {
                    let before = seen.len();
                    seen.retain(|_, &mut s| s >= t - within);
                    if seen.len() != before {
                        *first = seen.values().copied().min().unwrap_or(t);
                    }
                }
                if seen.len() >= threshold {
                    let f = *first;
                    seen.clear();
                    Some((f, ids_since(ids, f)))
                } else {
                    None
                }
            }
            Mode::Sum { field, threshold } => {
                let v = match ev.get(field) {
                    Some(Value::Int(v)) => v.max(0),
                    _ => return,
                };
                let slice = (within / 64).max(1);
                let st = Self::win(ks, ri, || WinState::Sum {
                    slices: VecDeque::new(),
                    total: 0,
                    ids: VecDeque::new(),
                });
                let WinState::Sum { slices, total, ids } = st else {
                    return;
                };
                while let Some(&(s, x)) = slices.front()
                    && s < t - within
                {
                    *total -= x;
                    slices.pop_front();
                }
                match slices.back_mut() {
                    Some((s, x)) if t >= *s && t - *s < slice => *x = x.saturating_add(v),
                    _ => slices.push_back((t, v)),
                }
                *total = total.saturating_add(v);
                push_id(ids, t, &ev.id);
                if *total >= threshold {
                    let first = slices.front().map_or(t, |s| s.0);
                    slices.clear();
                    *total = 0;
                    Some((first, ids_since(ids, first)))
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some((first, ids)) = fired {
            self.hit(ri, rule, ev, Some(ids), first, out);
        }
    }

    /// Advance the chains of a sequence with an event that matched the steps in `matched`;
    /// the completed chain (start, ids, join key) when the last step matched.
    fn advance(
        steps: &[crate::policy::Step],
        chains: &mut [Slot],
        matched: u32,
        ev: &Event,
        within: i64,
    ) -> Option<(i64, Vec<Box<str>>, Option<u64>)> {
        let t = ev.time.0;
        let n = steps.len();
        let value_hash = |f: &agent_model::Field| ev.get(*f).map(|v| hash_value(&v));
        for i in (0..n).rev().filter(|i| matched & (1 << i) != 0) {
            let join = &steps[i].join;
            let own_key = || join.iter().find_map(value_hash);
            if i == 0 {
                let k = if join.is_empty() { None } else { own_key() };
                if join.is_empty() || k.is_some() {
                    chains[0].put(k, (t, vec![ev.id.as_str().into()]));
                }
                continue;
            }
            // The chain this event continues, and the key it carries on with.
            let (prev, key) = match &mut chains[i - 1] {
                Slot::One(o) => {
                    let k = if join.is_empty() { None } else { own_key() };
                    if !join.is_empty() && k.is_none() {
                        continue;
                    }
                    match o.as_ref() {
                        Some(c) if t - c.0 > within => {
                            *o = None;
                            continue;
                        }
                        Some(c) => (c.clone(), k),
                        None => continue,
                    }
                }
                Slot::Keyed(m) => {
                    let found = join
                        .iter()
                        .filter_map(value_hash)
                        .find_map(|k| m.get(&k).map(|c| (k, c.0)));
                    let Some((k, start)) = found else { continue };
                    if t - start > within {
                        m.remove(&k);
                        continue;
                    }
                    let Some(c) = m.get(&k) else { continue };
                    (c.clone(), Some(k))
                }
            };
            let (start, mut ids) = prev;
            ids.push(ev.id.as_str().into());
            if i == n - 1 {
                return Some((start, ids, key));
            }
            chains[i].put(key, (start, ids));
        }
        None
    }

    fn key_state<'m>(
        map: &'m mut HashMap<Box<str>, KeyState, FxBuild>,
        key: &str,
        t: i64,
    ) -> &'m mut KeyState {
        if !map.contains_key(key) {
            if map.len() >= MAX_TRACKED_KEYS
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, s)| s.last_seen)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
            map.insert(key.into(), KeyState::default());
        }
        let ks = map.get_mut(key).expect("inserted above");
        ks.last_seen = ks.last_seen.max(t);
        ks
    }

    fn win(ks: &mut KeyState, ri: u32, make: impl FnOnce() -> WinState) -> &mut WinState {
        let pos = match ks.windows.iter().position(|(r, _)| *r == ri) {
            Some(p) => p,
            None => {
                ks.windows.push((ri, make()));
                ks.windows.len() - 1
            }
        };
        &mut ks.windows[pos].1
    }

    /// Record a hit. `event_ids` is `None` for a single-event rule (the id is `ev.id`). The
    /// fold lookup hashes values instead of rendering the summary, so repeats cost no
    /// allocation beyond their first 16 event ids.
    fn hit(
        &mut self,
        ri: u32,
        rule: &Rule,
        ev: &Event,
        event_ids: Option<Vec<String>>,
        first: i64,
        out: &mut Vec<Alert>,
    ) {
        self.hits[ri as usize] += 1;
        let t = ev.time.0;
        let key = match (&rule.dedup_key, &rule.mode) {
            (Some(fields), _) => {
                let mut h = Fx::default();
                for f in fields {
                    ev.get(*f).map(|v| hash_value(&v)).hash(&mut h);
                }
                h.finish()
            }
            (None, Mode::Event) => {
                let mut h = Fx::default();
                for p in &rule.output {
                    if let Part::Field(f) = p {
                        ev.get(*f).map(|v| hash_value(&v)).hash(&mut h);
                    }
                }
                h.finish()
            }
            (None, _) => 0,
        };
        let fk = FoldKey {
            rule: ri,
            session: hash_str(ev.session_id().unwrap_or(NO_SESSION)),
            key,
        };
        if let Some(f) = self.folds.get_mut(&fk) {
            if t - f.alert.first_time.0 <= rule.dedup_ns {
                let a = &mut f.alert;
                a.count += 1;
                a.time = ev.time;
                a.last_time = Timestamp(a.last_time.0.max(t));
                match event_ids {
                    None => {
                        if a.event_ids.len() < MAX_EVENT_IDS && !a.event_ids.contains(&ev.id) {
                            a.event_ids.push(ev.id.clone());
                        }
                    }
                    Some(ids) => {
                        for id in ids {
                            if a.event_ids.len() < MAX_EVENT_IDS && !a.event_ids.contains(&id) {
                                a.event_ids.push(id);
                            }
                        }
                    }
                }
                return;
            }
            if let Some(old) = self.folds.remove(&fk)
                && old.alert.count > old.emitted
            {
                out.push(old.alert);
            }
        }
        let alert = Alert {
            id: format!("{}:{}", rule.id, ev.id),
            time: ev.time,
            host: ev.host.clone(),
            rule: rule.id.clone(),
            severity: rule.severity,
            agent: ev.agent.clone(),
            session: ev.session.clone(),
            summary: BStr::from(render(&rule.output, ev)),
            tags: rule.tags.clone(),
            event_ids: event_ids.unwrap_or_else(|| vec![ev.id.clone()]),
            count: 1,
            first_time: Timestamp(first.min(t)),
            last_time: ev.time,
            in_loss_window: self
                .last_loss
                .is_some_and(|l| t >= l && t - l <= LOSS_WINDOW_NS),
        };
        if rule.dedup_ns > 0 && self.folds.len() < MAX_FOLDS {
            self.folds.insert(
                fk,
                Fold {
                    alert: alert.clone(),
                    emitted: 1,
                    dedup_ns: rule.dedup_ns,
                },
            );
        }
        out.push(alert);
    }

    fn close_folds(&mut self, pred: impl Fn(&Fold) -> bool, out: &mut Vec<Alert>) {
        let keys: Vec<FoldKey> = self
            .folds
            .iter()
            .filter(|(_, f)| pred(f))
            .map(|(k, _)| *k)
            .collect();
        let mut closed = Vec::new();
        for k in keys {
            if let Some(f) = self.folds.remove(&k)
                && f.alert.count > f.emitted
            {
                closed.push(f.alert);
            }
        }
        closed.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
        out.extend(closed);
    }

    /// Close de-duplication windows that ended before `now` (returning the updated alerts of
    /// those that folded repeats) and drop windowed state idle for longer than any window.
    pub fn flush(&mut self, now: Timestamp) -> Vec<Alert> {
        let now = now.0;
        let mut out = Vec::new();
        let expired: Vec<FoldKey> = self
            .folds
            .iter()
            .filter(|(_, f)| now - f.alert.first_time.0 > f.dedup_ns)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            if let Some(f) = self.folds.remove(&k)
                && f.alert.count > f.emitted
            {
                out.push(f.alert);
            }
        }
        out.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
        let horizon = now.saturating_sub(self.max_within);
        for map in [&mut self.sessions, &mut self.agents] {
            map.retain(|_, ks| {
                ks.windows.retain(|(_, w)| w.newest() >= horizon);
                !ks.windows.is_empty()
            });
            if map.is_empty() {
                *map = HashMap::default();
            }
        }
        if self.folds.is_empty() {
            self.folds = HashMap::default();
        }
        if self.sessions.is_empty() && self.roots.capacity() > 0 && self.roots.is_empty() {
            self.roots = HashMap::default();
        }
        out
    }

    /// Forget the windowed state of a session (the daemon calls this when it retires one).
    pub fn end_session(&mut self, id: &str) {
        self.sessions.remove(id);
        self.changed.remove(id);
        self.roots.remove(&hash_str(id));
    }

    /// Swap in a new policy. Windowed state and open folds survive for rules whose id and
    /// definition are unchanged; hit counts survive by id.
    pub fn swap_policy(&mut self, policy: Arc<Policy>) {
        let old = &self.policy;
        let mut map: HashMap<u32, u32> = HashMap::new();
        let by_id: HashMap<&str, usize> = policy
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        let mut hits = vec![0; policy.rules.len()];
        for (oi, r) in old.rules.iter().enumerate() {
            if let Some(&ni) = by_id.get(r.id.as_str()) {
                hits[ni] = self.hits[oi];
                if policy.rules[ni].fingerprint == r.fingerprint {
                    map.insert(oi as u32, ni as u32);
                }
            }
        }
        for m in [&mut self.sessions, &mut self.agents] {
            m.retain(|_, ks| {
                ks.windows.retain_mut(|(r, _)| match map.get(r) {
                    Some(&n) => {
                        *r = n;
                        true
                    }
                    None => false,
                });
                !ks.windows.is_empty()
            });
        }
        let folds = std::mem::take(&mut self.folds);
        self.folds = folds
            .into_iter()
            .filter_map(|(mut k, f)| {
                let n = *map.get(&k.rule)?;
                k.rule = n;
                Some((k, f))
            })
            .collect();
        self.hits = hits;
        self.max_within = max_within(&policy);
        self.policy = policy;
    }

    /// Approximate bytes held by windowed state and open folds.
    pub fn state_bytes(&self) -> usize {
        self.window_state_bytes() + self.fold_bytes()
    }

    /// Approximate bytes held by windowed rules (counts, distinct values, sequence chains).
    pub fn window_state_bytes(&self) -> usize {
        let mut n = self.roots.capacity() * (8 + 16 + 1);
        n += self.changed.capacity() * (size_of::<Box<str>>() + size_of::<ChangedPaths>() + 1);
        n += self
            .changed
            .iter()
            .map(|(k, c)| k.len() + c.bytes())
            .sum::<usize>();
        for m in [&self.sessions, &self.agents] {
            n += m.capacity() * (size_of::<Box<str>>() + size_of::<KeyState>() + 1);
            for (k, ks) in m.iter() {
                n += k.len() + ks.windows.capacity() * size_of::<(u32, WinState)>();
                n += ks.windows.iter().map(|(_, w)| w.bytes()).sum::<usize>();
            }
        }
        n
    }

    /// Approximate bytes held by open de-duplication folds (alerts waiting for their window).
    pub fn fold_bytes(&self) -> usize {
        let mut n = self.folds.capacity() * (size_of::<FoldKey>() + size_of::<Fold>() + 1);
        for f in self.folds.values() {
            let a = &f.alert;
            n += a.id.len() + a.host.len() + a.rule.len() + a.summary.0.len();
            n += a
                .tags
                .iter()
                .chain(&a.event_ids)
                .map(|s| s.len() + size_of::<String>())
                .sum::<usize>();
        }
        n
    }

    /// Sessions and agents with windowed state.
    pub fn tracked_keys(&self) -> usize {
        self.sessions.len() + self.agents.len()
    }

    /// Hits per rule id (events that matched, windows that fired), in policy order.
    pub fn hit_counts(&self) -> Vec<(String, u64)> {
        self.policy
            .rules
            .iter()
            .zip(&self.hits)
            .map(|(r, &h)| (r.id.clone(), h))
            .collect()
    }
}
