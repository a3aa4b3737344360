//! Adoption of a pinned sensor (see `pin`): what a daemon started on an earlier daemon's pins
//! does before it reads the ring like any other.
//!
//! The kernel kept tracking sessions in the pinned `SESSIONS` map while no daemon ran; the
//! user-space session table is rebuilt from it (and `/proc`), keeping each session's id, so the
//! records buffered meanwhile, and every later one, are attributed to the same session. Then the
//! buffered records are handled, in order; the events of those the earlier daemon already
//! stored are dropped (`durable`). The fail-closed heartbeat is written here too.

use std::collections::BTreeMap;

use agent_model::{Monitor, session_id_string};

use super::{SourceLoop, proc_info};
use crate::tracker::{Agents as _, Proc};

impl SourceLoop {
    /// What `monitor.start` says about the adoption (`None`: nothing was adopted): its message
    /// tail, and the records lost, the downtime and the records buffered as fields.
    pub(super) fn adoption_note(&self) -> Option<(String, Monitor)> {
        let a = self.sensor.adopted.as_ref()?;
        Some((
            format!(
                "; adopted the pinned sensor after {:.1}s without a daemon (downtime_ms {}): {} records buffered ({} bytes), {} lost",
                a.downtime_ns as f64 / 1e9,
                a.downtime_ns / 1_000_000,
                a.backlog.len(),
                a.buffered_bytes,
                a.lost
            ),
            Monitor {
                loss_count: Some(a.lost),
                downtime_ms: Some(a.downtime_ns / 1_000_000),
                buffered: Some(a.backlog.len() as u64),
                ..Default::default()
            },
        ))
    }

    /// Rebuild the session table from the adopted `SESSIONS` map, then handle the records the
    /// ring buffered while no daemon ran. Does nothing when no pins were adopted.
    pub fn adopt(&mut self) {
        let Some(adopted) = self.sensor.adopted.as_mut() else {
            return;
        };
        let backlog = std::mem::take(&mut adopted.backlog);
        // Every entry of a live process, by session.
        let entries: Vec<(u32, agent_common::SessionInfo)> = self
            .sensor
            .sessions
            .iter()
            .filter_map(|e| e.ok())
            .take(65_536)
            .collect();
        let mut by_session: BTreeMap<u64, Vec<(u32, u32, Proc)>> = BTreeMap::new();
        for (pid, info) in entries {
            match proc_info(pid) {
                Some((p, ppid, ..)) => by_session.entry(info.session_id).or_default().push((
                    pid,
                    ppid,
                    Proc {
                        session: info.session_id,
                        ..p
                    },
                )),
                None => self.sensor.remove_from_session(pid),
            }
        }
        // Agent ids of the adopted entries, named from the earlier daemon's id table
        // (`agentids`); an id this daemon numbers otherwise is rewritten in the kernel map.
        let mut agent_of: BTreeMap<u64, u32> = BTreeMap::new();
        let mut renumber = Vec::new();
        for (pid, mut info) in self.sensor.sessions.iter().filter_map(|e| e.ok()) {
            if let Some(new) = self.agents.remap.get(&info.agent_id) {
                info.agent_id = *new;
                renumber.push((pid, info));
            }
            agent_of.entry(info.session_id).or_insert(info.agent_id);
        }
        for (pid, info) in renumber {
            if let Err(e) = self.sensor.add_to_session(pid, info) {
                tracing::warn!(error = %format!("{e:#}"), pid, "adopted session entry not renumbered");
            }
        }
        for (sid, mut members) in by_session {
            if self.tracker.sessions.contains_key(&sid) {
                continue;
            }
            // The root: a member whose parent is not in the session (the oldest such).
            members.sort_by_key(|(pid, ..)| *pid);
            let pids: Vec<u32> = members.iter().map(|(p, ..)| *p).collect();
            let root_at = members
                .iter()
                .position(|(_, ppid, _)| !pids.contains(ppid))
                .unwrap_or(0);
            let (_, _, root) = members.remove(root_at);
            let agent = self.agents.name(agent_of.get(&sid).copied().unwrap_or(0));
            let mut ev = self.tracker.open_session(sid, &agent, root);
            ev.monitor = Some(Monitor {
                message: Some(format!(
                    "session `{}` adopted from the pinned sensor",
                    session_id_string(sid)
                )),
                ..Default::default()
            });
            self.emit(ev);
            for (_, _, p) in members {
                self.tracker.adopt(p);
            }
        }
        // The earlier daemon may have stored the events of some of these records (the ring is
        // committed only after the store's fsync): find the last one so they are not stored again.
        if let Some((dir, durable)) = self
            .pipeline
            .store()
            .map(|st| (st.dir().to_path_buf(), st.durable_seq()))
        {
            let lookback = backlog.len() as u64 * 4 + 10_000;
            self.durable.load_floor(&dir, durable, lookback);
        }
        for (pos, r) in &backlog {
            self.handle_at(*pos, r);
        }
        if !backlog.is_empty() {
            self.durable
                .batch(self.pipeline.appended_seq(), self.sensor.ring.read_pos());
        }
        if self.durable.duplicates > 0 {
            tracing::info!(
                events = self.durable.duplicates,
                "events of re-read ring records were already stored"
            );
        }
        tracing::info!(records = backlog.len(), "adopted the pinned sensor");
    }

    /// The fail-closed setting from the config, and the first heartbeat.
    pub(super) fn arm_fail_closed(&mut self) -> anyhow::Result<()> {
        let (mode, after) = (
            self.agents.cfg.fail_closed,
            self.agents.cfg.fail_closed_after_secs,
        );
        self.sensor.set_fail_closed(mode, after)?;
        self.sensor.heartbeat();
        Ok(())
    }
}
