//! The spool: append-only segment files of checksummed records.
//!
//! Segment file `spool/<first seq, 20 digits>.spool` starts with the 8-byte magic `AWSPOOL2`
//! (`AWSPOOL1` in segments written before events were binary; those are still read), then
//! records, little endian:
//!
//! ```text
//! 0  magic u32  0x5053_5741 ("AWSP")
//! 4  len   u32  payload length
//! 8  crc   u32  crc32c of bytes 12 .. 29 + len (seq, time, type, payload)
//! 12 seq   u64  sequence number, +1 per record across segments
//! 20 time  i64  event time (ns since the epoch), for retention
//! 28 type  u8   4 event (binary, see `codec`), 2 alert, 3 triage (JSON), 255 quarantine
//!               padding; 1 is an event as JSON, written by format 1 only
//! 29 payload
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::StoreError;

/// Magic of the segments this version writes.
pub(crate) const FILE_MAGIC: &[u8; 8] = b"AWSPOOL2";
/// Magic of format 1 segments (events as JSON), still read.
pub(crate) const FILE_MAGIC_V1: &[u8; 8] = b"AWSPOOL1";
pub(crate) const REC_MAGIC: u32 = 0x5053_5741;
pub(crate) const HEADER: usize = 29;
/// Largest accepted payload (a 128 KiB argv plus a 64 KiB path fit many times over).
pub(crate) const MAX_PAYLOAD: usize = 16 << 20;

/// What a spool record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecType {
    /// An event as JSON (format 1 segments).
    JsonEvent = 1,
    Alert = 2,
    Triage = 3,
    /// An event in the binary encoding of `codec`.
    Event = 4,
    Pad = 255,
}

impl RecType {
    fn from_u8(v: u8) -> Option<RecType> {
        match v {
            1 => Some(RecType::JsonEvent),
            2 => Some(RecType::Alert),
            3 => Some(RecType::Triage),
            4 => Some(RecType::Event),
            255 => Some(RecType::Pad),
            _ => None,
        }
    }
}

/// A decoded record header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecHeader {
    pub seq: u64,
    pub time: i64,
    pub ty: RecType,
    pub len: usize,
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Append one encoded record to `buf`. The payload is produced by `fill` straight into `buf`.
pub(crate) fn encode_into(
    buf: &mut Vec<u8>,
    seq: u64,
    time: i64,
    ty: RecType,
    fill: impl FnOnce(&mut Vec<u8>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let start = buf.len();
    buf.extend_from_slice(&REC_MAGIC.to_le_bytes());
    buf.extend_from_slice(&[0; 8]);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&time.to_le_bytes());
    buf.push(ty as u8);
    if let Err(e) = fill(buf) {
        buf.truncate(start);
        return Err(e);
    }
    let len = buf.len() - start - HEADER;
    if len > MAX_PAYLOAD {
        buf.truncate(start);
        return Err(StoreError::TooLarge { seq, len });
    }
    let crc = crc32c::crc32c(&buf[start + 12..]);
    buf[start + 4..start + 8].copy_from_slice(&(len as u32).to_le_bytes());
    buf[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Parse a record at the start of `b`. `None` when it is incomplete or fails its checks.
pub(crate) fn parse(b: &[u8]) -> Option<RecHeader> {
    if b.len() < HEADER {
        return None;
    }
    let magic = u32::from_le_bytes(b[0..4].try_into().ok()?);
    if magic != REC_MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(b[4..8].try_into().ok()?) as usize;
    if len > MAX_PAYLOAD || b.len() < HEADER + len {
        return None;
    }
    let crc = u32::from_le_bytes(b[8..12].try_into().ok()?);
    if crc32c::crc32c(&b[12..HEADER + len]) != crc {
        return None;
    }
    Some(RecHeader {
        seq: u64::from_le_bytes(b[12..20].try_into().ok()?),
        time: i64::from_le_bytes(b[20..28].try_into().ok()?),
        ty: RecType::from_u8(b[28])?,
        len,
    })
}

/// Bookkeeping of one segment file.
#[derive(Clone, Debug)]
pub(crate) struct SegmentMeta {
    pub first_seq: u64,
    pub path: PathBuf,
    /// Last record seq (first_seq - 1 when empty).
    pub last_seq: u64,
    pub bytes: u64,
    pub events: u64,
    pub alerts: u64,
    pub max_time: i64,
    /// Sequence ranges missing inside the segment (quarantined records).
    pub gaps: Vec<(u64, u64)>,
    /// Format of the segment file: 1 (events as JSON) or 2 (binary events).
    pub format: u8,
}

impl SegmentMeta {
    pub fn new(dir: &Path, first_seq: u64) -> SegmentMeta {
        SegmentMeta {
            first_seq,
            path: segment_path(dir, first_seq),
            last_seq: first_seq.saturating_sub(1),
            bytes: FILE_MAGIC.len() as u64,
            events: 0,
            alerts: 0,
            max_time: i64::MIN,
            gaps: Vec::new(),
            format: 2,
        }
    }

    pub fn count(&mut self, h: &RecHeader) {
        let expect = self.last_seq + 1;
        if h.seq > expect && expect >= self.first_seq {
            self.gaps.push((expect, h.seq - 1));
        }
        self.last_seq = h.seq;
        self.max_time = self.max_time.max(h.time);
        match h.ty {
            RecType::Event | RecType::JsonEvent => self.events += 1,
            RecType::Alert => self.alerts += 1,
            _ => {}
        }
    }
}

pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.spool"))
}

/// Segment files of a spool dir, sorted by first seq.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in rd {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".spool") else {
            continue;
        };
        if let Ok(first) = stem.parse::<u64>() {
            out.push((first, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// A damaged region found while scanning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Segment file.
    pub segment: PathBuf,
    /// Byte offset of the region.
    pub offset: u64,
    /// Length of the region.
    pub len: u64,
    /// Where the bytes were saved.
    pub quarantine: PathBuf,
    /// `true` for a torn tail (truncated), `false` for a corrupted record inside the file.
    pub torn_tail: bool,
}

pub(crate) fn create_private(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir))
}

/// Scan a segment at open: verify every record, quarantine damaged regions (replacing them in
/// place with a padding record so later offsets stay valid), truncate a torn tail.
pub(crate) fn scan_and_repair(
    path: &Path,
    first_seq: u64,
    quarantine_dir: &Path,
    last_segment: bool,
    damage: &mut Vec<Damage>,
) -> Result<SegmentMeta, StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut meta = SegmentMeta::new(dir, first_seq);
    meta.path = path.to_path_buf();
    let mut b = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut b))
        .map_err(io_err(path))?;
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    if b.len() >= FILE_MAGIC.len()
        && b[..7] == FILE_MAGIC[..7]
        && b[7].is_ascii_digit()
        && b[7] > FILE_MAGIC[7]
    {
        // Written by a newer version: quarantining it would throw its records away.
        return Err(StoreError::SpoolFormat {
            path: path.to_path_buf(),
            magic: String::from_utf8_lossy(&b[..FILE_MAGIC.len()]).into_owned(),
        });
    }
    if b.starts_with(FILE_MAGIC_V1) {
        meta.format = 1;
    } else if b.len() < FILE_MAGIC.len() || &b[..FILE_MAGIC.len()] != FILE_MAGIC {
        // A segment whose creation was torn before its magic reached the disk.
        if b.len() < FILE_MAGIC.len() && FILE_MAGIC.starts_with(&b) {
            file.write_all_at(FILE_MAGIC, 0).map_err(io_err(path))?;
            file.set_len(FILE_MAGIC.len() as u64)
                .map_err(io_err(path))?;
            file.sync_all().map_err(io_err(path))?;
            return Ok(meta);
        }
        let q = quarantine(quarantine_dir, path, 0, &b)?;
        damage.push(Damage {
            segment: path.to_path_buf(),
            offset: 0,
            len: b.len() as u64,
            quarantine: q,
            torn_tail: false,
        });
        file.write_all_at(FILE_MAGIC, 0).map_err(io_err(path))?;
        file.set_len(FILE_MAGIC.len() as u64)
            .map_err(io_err(path))?;
        file.sync_all().map_err(io_err(path))?;
        return Ok(meta);
    }
    let mut pos = FILE_MAGIC.len();
    let mut repaired = false;
    while pos < b.len() {
        if let Some(h) = parse(&b[pos..]).filter(|h| h.ty == RecType::Pad || h.seq > meta.last_seq)
        {
            if h.ty != RecType::Pad {
                meta.count(&h);
            }
            pos += HEADER + h.len;
            continue;
        }
        // Look for the next valid record after the damage.
        let next = (pos + 1..b.len().saturating_sub(HEADER - 1)).find(|&p| {
            b[p..p + 4] == REC_MAGIC.to_le_bytes()
                && parse(&b[p..]).is_some_and(|h| h.ty != RecType::Pad && h.seq > meta.last_seq)
        });
        match next {
            Some(next) if next - pos >= HEADER => {
                let q = quarantine(quarantine_dir, path, pos as u64, &b[pos..next])?;
                let mut pad = Vec::with_capacity(next - pos);
                encode_into(&mut pad, 0, 0, RecType::Pad, |buf| {
                    buf.resize(next - pos, 0);
                    Ok(())
                })?;
                file.write_all_at(&pad, pos as u64).map_err(io_err(path))?;
                b[pos..next].copy_from_slice(&pad);
                damage.push(Damage {
                    segment: path.to_path_buf(),
                    offset: pos as u64,
                    len: (next - pos) as u64,
                    quarantine: q,
                    torn_tail: false,
                });
                repaired = true;
                pos = next;
            }
            _ => {
                // Nothing valid follows (or the gap is too small to pad): cut the file here.
                let q = quarantine(quarantine_dir, path, pos as u64, &b[pos..])?;
                damage.push(Damage {
                    segment: path.to_path_buf(),
                    offset: pos as u64,
                    len: (b.len() - pos) as u64,
                    quarantine: q,
                    torn_tail: last_segment && next.is_none(),
                });
                file.set_len(pos as u64).map_err(io_err(path))?;
                b.truncate(pos);
                repaired = true;
                // Records after a too-small gap are lost with the cut; they were never more
                // than a header long, which no valid record is.
            }
        }
    }
    if repaired {
        file.sync_all().map_err(io_err(path))?;
    }
    meta.bytes = b.len() as u64;
    Ok(meta)
}

fn quarantine(dir: &Path, seg: &Path, offset: u64, bytes: &[u8]) -> Result<PathBuf, StoreError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let stem = seg
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("segment");
    let path = dir.join(format!("{stem}-{offset}.bin"));
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err(&path))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(io_err(&path))?;
    tracing::warn!(segment = %seg.display(), offset, len = bytes.len(), quarantine = %path.display(), "damaged spool region quarantined");
    Ok(path)
}

/// Read one record at `offset` of an open segment, checking its seq.
pub(crate) fn read_at(
    file: &File,
    path: &Path,
    offset: u64,
    seq: u64,
) -> Result<(RecHeader, Vec<u8>), StoreError> {
    let mut head = [0u8; HEADER];
    file.read_exact_at(&mut head, offset)
        .map_err(io_err(path))?;
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            offset,
        });
    }
    let mut b = vec![0u8; HEADER + len];
    b[..HEADER].copy_from_slice(&head);
    file.read_exact_at(&mut b[HEADER..], offset + HEADER as u64)
        .map_err(io_err(path))?;
    match parse(&b) {
        Some(h) if h.seq == seq => {
            b.drain(..HEADER);
            Ok((h, b))
        }
        _ => Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            offset,
        }),
    }
}
