//! Where enriched events go: the JSON-lines file, live subscribers, and (as later stages land)
//! the policy engine and the store. Runs on the sensor thread; every output is buffered or
//! bounded so a slow consumer never stalls the ring buffer.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::sync::Arc;

use agent_model::Event;
use anyhow::{Context as _, Result};
use tokio::sync::broadcast;

/// Capacity of the live broadcast; a subscriber that falls this far behind is told how many
/// events it missed.
pub const LIVE_CAPACITY: usize = 65536;

pub struct Pipeline {
    events_jsonl: Option<BufWriter<File>>,
    live: broadcast::Sender<Arc<Event>>,
    jsonl_errors: u64,
}

impl Pipeline {
    pub fn new(
        events_jsonl: Option<&Path>,
        live: broadcast::Sender<Arc<Event>>,
    ) -> Result<Pipeline> {
        let events_jsonl = match events_jsonl {
            Some(p) => Some(BufWriter::with_capacity(
                1 << 20,
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("cannot open events file `{}`", p.display()))?,
            )),
            None => None,
        };
        Ok(Pipeline {
            events_jsonl,
            live,
            jsonl_errors: 0,
        })
    }

    pub fn event(&mut self, ev: Event) {
        if let Some(w) = &mut self.events_jsonl {
            let line = ev.to_json();
            if w.write_all(line.as_bytes())
                .and_then(|_| w.write_all(b"\n"))
                .is_err()
            {
                self.jsonl_errors += 1;
            }
        }
        // No subscriber is not an error.
        let _ = self.live.send(Arc::new(ev));
    }

    /// Periodic work (windowed rules, store cadence) — every 250 ms.
    pub fn tick(&mut self) {}

    pub fn flush(&mut self) {
        if let Some(w) = &mut self.events_jsonl
            && w.flush().is_err()
        {
            self.jsonl_errors += 1;
        }
    }

    pub fn status_into(&self, v: &mut serde_json::Value) {
        v["output_errors"] = self.jsonl_errors.into();
        v["live_subscribers"] = self.live.receiver_count().into();
    }
}
