//! Capture of raw ring records, and their replay: the way the daemon's decoding and tracking
//! are tested without root.
//!
//! With `AGENTWATCH_CAPTURE_RECORDS=PATH`, the sensor thread appends every record it drains
//! from the ring to `PATH`, each as a little-endian `u32` length and the bytes. When the
//! variable is unset this costs one branch per drained batch. [`records`] reads such a file
//! back, and [`replay`] runs the records through the same decoder, io_uring pairing and tracker
//! as the sensor thread.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;

use agent_model::Event;
use agent_model::decode::decode;
use anyhow::{Context as _, Result, anyhow};

use crate::iopair::IoPairs;
use crate::tracker::{Action, Agents, Tracker};

/// The environment variable that names the capture file.
pub const CAPTURE_ENV: &str = "AGENTWATCH_CAPTURE_RECORDS";

/// An open capture file.
pub struct Capture {
    out: BufWriter<File>,
}

impl Capture {
    /// The capture asked for by [`CAPTURE_ENV`], if any (appending to the file).
    pub fn from_env() -> Result<Option<Capture>> {
        let Some(path) = std::env::var_os(CAPTURE_ENV) else {
            return Ok(None);
        };
        Capture::open(Path::new(&path)).map(Some)
    }

    pub fn open(path: &Path) -> Result<Capture> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the capture file `{}`", path.display()))?;
        Ok(Capture {
            out: BufWriter::new(f),
        })
    }

    /// Append the records of one drained batch: `buf` holds them back to back and `ends` says
    /// where each ends. Write errors are logged once per batch and otherwise ignored: a capture
    /// never stops the sensor.
    pub fn write_batch(&mut self, buf: &[u8], ends: &[usize]) {
        let mut start = 0;
        let mut res = Ok(());
        for &end in ends {
            let rec = &buf[start..end];
            res = res
                .and_then(|_| self.out.write_all(&(rec.len() as u32).to_le_bytes()))
                .and_then(|_| self.out.write_all(rec));
            start = end;
        }
        if let Err(e) = res.and_then(|_| self.out.flush()) {
            tracing::warn!(error = %e, "writing the record capture failed");
        }
    }
}

/// The records of a capture file, in order.
pub fn records(bytes: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| anyhow!("capture ends inside a length prefix"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Err(anyhow!(
                "capture record of `{len}` bytes runs past the end ({} left)",
                tail.len()
            ));
        }
        let (rec, tail) = tail.split_at(len);
        out.push(rec);
        rest = tail;
    }
    Ok(out)
}

/// What replaying records gave: the events, the kernel actions asked for, and the records that
/// did not decode.
#[derive(Debug, Default)]
pub struct Replay {
    pub events: Vec<Event>,
    pub actions: Vec<Action>,
    pub decode_errors: usize,
}

/// Run raw records through the decoder, the io_uring pairing and `tracker`, as the sensor
/// thread does.
pub fn replay<'a>(
    raw: impl IntoIterator<Item = &'a [u8]>,
    tracker: &mut Tracker,
    agents: &dyn Agents,
) -> Replay {
    let mut pairs = IoPairs::default();
    let mut out = Replay::default();
    for r in raw {
        let Ok(rec) = decode(r) else {
            out.decode_errors += 1;
            continue;
        };
        let Some(rec) = pairs.pair(rec) else {
            continue;
        };
        let (evs, acts) = tracker.on_record(rec, agents);
        out.events.extend(evs);
        out.actions.extend(acts);
    }
    out
}
