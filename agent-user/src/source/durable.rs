//! The ring's consumer position follows the store's durability, so a `kill -9` of the daemon
//! loses no record the kernel produced.
//!
//! The sensor thread reads records ahead of the kernel's consumer position (`loader::ring`);
//! after each batch it notes the store's last appended seq with the ring position reached, and
//! commits a position once the store's group fsync has made that seq durable. What a killed
//! daemon read but had not made durable stays in the pinned ring, and the next daemon reads it
//! again. Events of a ring record are named after the record (ring tag and position, see
//! `Tracker::set_record`), so the next daemon finds the last one the store holds (the spool's
//! tail) and drops the events it already has: every record's events are stored exactly once.
//! When the store takes no writes (disk full, no store) or holds an acknowledgement back for
//! longer than [`STUCK`], positions are committed anyway (the store counts what it refuses):
//! a stuck disk must not turn into kernel losses for every session.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::loader::ring::Ring;

/// How long a read batch may wait for the store's acknowledgement before it is committed
/// without one.
pub const STUCK: Duration = Duration::from_secs(3);

/// Batches read from the ring and waiting for the store, and the duplicate floor.
pub struct Durability {
    /// The id tag of this ring's events (a hash of the boot id and the ring's map id).
    tag: String,
    /// `(store seq appended, ring position reached, when)`, oldest first.
    acks: VecDeque<(u64, u64, Instant)>,
    /// Events of this ring with an id seq at or below this are already stored.
    floor: Option<u64>,
    /// Events dropped as already stored, and commits made without an acknowledgement.
    pub duplicates: u64,
    pub forced: u64,
}

fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

impl Durability {
    /// For the ring with kernel map id `map_id`.
    pub fn new(map_id: u32) -> Durability {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let h = fnv(
            &map_id.to_le_bytes(),
            fnv(boot.trim().as_bytes(), 0xcbf2_9ce4_8422_2325),
        );
        Durability {
            tag: format!("r{:08x}", (h ^ (h >> 32)) as u32),
            acks: VecDeque::new(),
            floor: None,
            duplicates: 0,
            forced: 0,
        }
    }

    /// The id tag of this ring's events.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The id seq of an event of this ring (`None`: not named after one of its records).
    fn ring_seq(&self, id: &str) -> Option<u64> {
        let rest = id.strip_prefix(self.tag.as_str())?.strip_prefix('-')?;
        u64::from_str_radix(rest, 16).ok()
    }

    /// Find the newest event of this ring among the last `lookback` records of the store in
    /// `dir` up to `durable`: events at or before it are not stored again.
    pub fn load_floor(&mut self, dir: &Path, durable: u64, lookback: u64) {
        let mut tail = agent_store::SpoolTail::new(dir, durable.saturating_sub(lookback));
        let mut floor = None;
        loop {
            match tail.read(durable, 4096) {
                Ok(items) if items.is_empty() => break,
                Ok(items) => {
                    for it in items {
                        if let agent_api::Item::Event(e) = &it.item
                            && let Some(s) = self.ring_seq(&e.id)
                        {
                            floor = Some(floor.map_or(s, |f: u64| f.max(s)));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the spool tail: re-read records may be stored twice");
                    break;
                }
            }
        }
        if let Some(f) = floor {
            tracing::info!(tag = %self.tag, floor = f, "events of re-read ring records up to this are already stored");
        }
        self.floor = floor;
    }

    /// Whether the event `id` is one the store already holds (a re-read record's).
    pub fn is_duplicate(&mut self, id: &str) -> bool {
        let Some(floor) = self.floor else {
            return false;
        };
        match self.ring_seq(id) {
            Some(s) if s <= floor => {
                self.duplicates += 1;
                true
            }
            _ => false,
        }
    }

    /// A batch was handled: the store's last appended seq then, and the ring position reached.
    pub fn batch(&mut self, appended: u64, ring_pos: u64) {
        match self.acks.back_mut() {
            Some(last) if last.0 == appended => last.1 = last.1.max(ring_pos),
            _ => self.acks.push_back((appended, ring_pos, Instant::now())),
        }
    }

    /// Commit the ring up to the newest batch the store made durable (`durable`: its durable
    /// seq; `None`: no store, or one that takes no writes now, so nothing to wait for).
    pub fn commit(&mut self, ring: &mut Ring, durable: Option<u64>) {
        let mut to = None;
        while let Some(&(seq, pos, at)) = self.acks.front() {
            let acked = durable.is_none_or(|d| seq <= d);
            if !acked && at.elapsed() < STUCK {
                break;
            }
            if !acked {
                self.forced += 1;
                tracing::warn!(
                    seq,
                    "the store has not acknowledged records for {}s: ring space released without it",
                    STUCK.as_secs()
                );
            }
            to = Some(pos);
            self.acks.pop_front();
        }
        if let Some(pos) = to {
            ring.commit(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_this_rings_events_up_to_the_floor_only() {
        let mut d = Durability::new(7);
        let tag = d.tag().to_owned();
        assert_ne!(tag, Durability::new(8).tag(), "tags name the ring");
        d.floor = Some(0x1200);
        assert!(d.is_duplicate(&format!("{tag}-1100")));
        assert!(d.is_duplicate(&format!("{tag}-1200")));
        assert!(!d.is_duplicate("0badcafe-1100"), "another daemon's own ids");
        assert!(!d.is_duplicate(&format!("{tag}-1201")));
        assert_eq!(d.duplicates, 2);
    }
}
