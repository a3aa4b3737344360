//! Reading the spool forward from a sequence number, for shippers (the fleet's NATS output).
//!
//! A shipper keeps its own cursor (the last seq the far side acknowledged) and asks for the
//! records after it, up to the store's durable seq: what leaves the host is exactly what the
//! spool holds, in spool order, and nothing that could still vanish in a crash. The tail keeps
//! its segment file open and reads in chunks, so following a busy spool costs a few large reads
//! per batch. Triage records, anchors and padding advance the position without an item. When
//! retention has deleted the records after the cursor, the tail jumps to the oldest segment and
//! counts what it skipped, so the loss is named rather than silent.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use agent_api::Item;
use agent_model::{Alert, Event};

use crate::spool::{self, FILE_MAGIC, HEADER, MAX_PAYLOAD, RecType, io_err};
use crate::{StoreError, codec};

/// Bytes read from the segment file at a time.
const CHUNK: usize = 1 << 20;

/// One spooled event or alert and its sequence number.
#[derive(Clone, Debug)]
pub struct TailItem {
    pub seq: u64,
    pub item: Item,
}

/// A forward reader of a data dir's spool. See the module doc.
pub struct SpoolTail {
    spool_dir: PathBuf,
    /// Last seq consumed (an item or not).
    pos: u64,
    /// Open segment: first seq, file, path.
    seg: Option<(u64, File, PathBuf)>,
    /// File offset of `buf[0]`.
    buf_off: u64,
    buf: Vec<u8>,
    /// Next unread byte in `buf`.
    at: usize,
    skipped: u64,
}

impl SpoolTail {
    /// A tail of the store in data dir `dir` that starts after seq `after`.
    pub fn new(dir: &Path, after: u64) -> SpoolTail {
        SpoolTail {
            spool_dir: dir.join("spool"),
            pos: after,
            seg: None,
            buf_off: 0,
            buf: Vec::new(),
            at: 0,
            skipped: 0,
        }
    }

    /// The last seq consumed.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Records retention deleted before this tail read them.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Start again after seq `after` (a shipper whose batch was not acknowledged).
    pub fn rewind(&mut self, after: u64) {
        self.pos = after;
        self.seg = None;
    }

    /// Up to `max` events and alerts with `position() < seq <= upto`, in spool order.
    pub fn read(&mut self, upto: u64, max: usize) -> Result<Vec<TailItem>, StoreError> {
        let mut out = Vec::new();
        while self.pos < upto && out.len() < max {
            if self.seg.is_none() && !self.open_segment()? {
                break;
            }
            match self.next_record(upto) {
                Ok(Some(Some(item))) => out.push(item),
                Ok(Some(None)) => {}
                Ok(None) => {
                    // End of this segment's bytes: go on in the next one, if there is one.
                    if !self.next_segment()? {
                        break;
                    }
                }
                Err(e) => {
                    self.seg = None;
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    /// Open the segment that holds `pos + 1` (or the oldest one, when retention removed it).
    fn open_segment(&mut self) -> Result<bool, StoreError> {
        let segs = spool::list_segments(&self.spool_dir)?;
        let want = self.pos + 1;
        let pick = segs
            .iter()
            .rev()
            .find(|(first, _)| *first <= want)
            .or_else(|| segs.first());
        let Some((first, path)) = pick.cloned() else {
            return Ok(false);
        };
        if first > want {
            self.skipped += first - want;
            tracing::warn!(
                from = want,
                to = first - 1,
                "spool records removed by retention before they were shipped"
            );
            self.pos = first - 1;
        }
        self.open(first, path)?;
        Ok(true)
    }

    fn open(&mut self, first: u64, path: PathBuf) -> Result<(), StoreError> {
        let f = File::open(&path).map_err(io_err(&path))?;
        self.seg = Some((first, f, path));
        self.buf.clear();
        self.at = 0;
        self.buf_off = FILE_MAGIC.len() as u64;
        Ok(())
    }

    /// Move to the segment after the open one. False when there is none yet.
    fn next_segment(&mut self) -> Result<bool, StoreError> {
        let cur = self.seg.as_ref().map_or(0, |s| s.0);
        let segs = spool::list_segments(&self.spool_dir)?;
        match segs.into_iter().find(|(first, _)| *first > cur) {
            Some((first, path)) => {
                self.open(first, path)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Make `n` bytes from `at` available, reading more of the file. False at its end.
    fn fill(&mut self, n: usize) -> Result<bool, StoreError> {
        if self.buf.len() - self.at >= n {
            return Ok(true);
        }
        let Some((_, file, path)) = &self.seg else {
            return Ok(false);
        };
        self.buf.drain(..self.at);
        self.buf_off += self.at as u64;
        self.at = 0;
        let have = self.buf.len();
        let want = n.max(CHUNK);
        self.buf.resize(want, 0);
        let mut got = have;
        while got < want {
            match file.read_at(&mut self.buf[got..], self.buf_off + got as u64) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let e = io_err(path)(e);
                    self.buf.truncate(have);
                    return Err(e);
                }
            }
        }
        self.buf.truncate(got);
        Ok(got >= n)
    }

    /// The next record: `Some(Some(item))`, `Some(None)` for a record that is not an item (or
    /// is at or before the position), `None` at the end of the segment's readable bytes or at a
    /// record past `upto`.
    fn next_record(&mut self, upto: u64) -> Result<Option<Option<TailItem>>, StoreError> {
        if !self.fill(HEADER)? {
            return Ok(None);
        }
        let b = &self.buf[self.at..];
        let seq = u64::from_le_bytes(b[12..20].try_into().unwrap_or_default());
        let len = u32::from_le_bytes(b[4..8].try_into().unwrap_or_default()) as usize;
        let ty = b[28];
        let offset = self.buf_off + self.at as u64;
        let path = self.seg.as_ref().map(|s| s.2.clone()).unwrap_or_default();
        let corrupt = || StoreError::Corrupt {
            path: path.clone(),
            offset,
        };
        // Padding carries no meaningful seq; anything else past `upto` is not durable yet.
        if ty != RecType::Pad as u8 && seq > upto {
            return Ok(None);
        }
        if len > MAX_PAYLOAD {
            return Err(corrupt());
        }
        if !self.fill(HEADER + len)? {
            // A durable record cut short: the file is damaged (the store repairs it at open).
            return Err(corrupt());
        }
        let rec = &self.buf[self.at..self.at + HEADER + len];
        let h = spool::parse(rec).ok_or_else(corrupt)?;
        self.at += HEADER + len;
        if !h.ty.is_data() || h.seq <= self.pos {
            return Ok(Some(None));
        }
        self.pos = h.seq;
        let body = &rec[h.body_off()..];
        let bad = |e: String| {
            tracing::warn!(seq = h.seq, error = %e, "spool record does not decode; not shipped");
        };
        let item = match h.ty {
            RecType::Event => match codec::decode_event(body) {
                Ok(e) => Item::Event(Box::new(e)),
                Err(e) => {
                    bad(format!("{e:?}"));
                    return Ok(Some(None));
                }
            },
            RecType::JsonEvent => match serde_json::from_slice::<Event>(body) {
                Ok(e) => Item::Event(Box::new(e)),
                Err(e) => {
                    bad(e.to_string());
                    return Ok(Some(None));
                }
            },
            RecType::Alert => match serde_json::from_slice::<Alert>(body) {
                Ok(a) => Item::Alert(Box::new(a)),
                Err(e) => {
                    bad(e.to_string());
                    return Ok(Some(None));
                }
            },
            _ => return Ok(Some(None)),
        };
        Ok(Some(Some(TailItem { seq: h.seq, item })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Store, StoreConfig};
    use agent_model::{Kind, KindField, Severity, Timestamp};

    fn ev(i: u64) -> Event {
        Event {
            id: format!("e{i}"),
            time: Timestamp(1_800_000_000_000_000_000 + i as i64),
            kind: KindField(Kind::FileOpen),
            ..Event::default()
        }
    }

    /// Every event and alert comes back once, in order, across segment rotations; triage
    /// records are passed over; nothing past `upto` is handed out.
    #[test]
    fn tail_reads_items_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            segment_bytes: 4096,
            ..StoreConfig::default()
        };
        let (s, _) = Store::open(dir.path(), cfg).unwrap();
        let mut want = Vec::new();
        for i in 0..300 {
            s.append_event(&ev(i)).unwrap();
            want.push(format!("e{i}"));
            if i % 50 == 0 {
                let a = Alert {
                    id: format!("a{i}"),
                    severity: Severity::High,
                    count: 1,
                    ..Alert::default()
                };
                s.append_alert(&a).unwrap();
                want.push(format!("a{i}"));
                s.set_triage(&a.id, crate::TriageState::Acknowledged, "", "t")
                    .unwrap();
            }
        }
        let durable = s.sync().unwrap();
        let mut t = SpoolTail::new(dir.path(), 0);
        let first = t.read(5, 1000).unwrap();
        assert!(first.iter().all(|i| i.seq <= 5));
        let mut seen: Vec<(u64, String)> = first
            .iter()
            .map(|i| (i.seq, i.item.id().to_owned()))
            .collect();
        loop {
            let batch = t.read(durable, 37).unwrap();
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() <= 37);
            seen.extend(batch.iter().map(|i| (i.seq, i.item.id().to_owned())));
        }
        let got: Vec<String> = seen.iter().map(|s| s.1.clone()).collect();
        assert_eq!(got, want);
        assert_eq!(t.position(), durable);
        assert!(
            spool::list_segments(&dir.path().join("spool"))
                .unwrap()
                .len()
                > 3
        );
        // A tail restarted from a cursor in the middle resumes after it.
        let mut t2 = SpoolTail::new(dir.path(), 100);
        let rest: Vec<(u64, String)> = t2
            .read(durable, 10_000)
            .unwrap()
            .into_iter()
            .map(|i| (i.seq, i.item.id().to_owned()))
            .collect();
        let after: Vec<(u64, String)> = seen.into_iter().filter(|s| s.0 > 100).collect();
        assert_eq!(rest, after);
        assert_eq!(t2.skipped(), 0);
    }
}
