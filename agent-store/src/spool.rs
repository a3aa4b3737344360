//! The spool: append-only segment files of checksummed, hash-chained records.
//!
//! Segment file `spool/<first seq, 20 digits>.spool` starts with the 8-byte magic `AWSPOOL3`
//! (`AWSPOOL1`/`AWSPOOL2` in segments written before events were binary / before the chain;
//! those are still read), then records, little endian:
//!
//! ```text
//! 0  magic u32  0x5053_5741 ("AWSP")
//! 4  len   u32  payload length (chain field included)
//! 8  crc   u32  crc32c of bytes 12 .. 29 + len (seq, time, type, payload)
//! 12 seq   u64  sequence number, +1 per record across segments
//! 20 time  i64  event time (ns since the epoch), for retention
//! 28 type  u8   4 event (binary, see `codec`), 2 alert, 3 triage (JSON), 5 segment anchor,
//!               255 quarantine padding; 1 is an event as JSON, written by format 1 only.
//!               Bit 0x40 set (format 3): the payload starts with the 32-byte chain field
//! 29 payload    [chain 32 bytes] body
//! ```
//!
//! The chain field of a record is `chain::link(previous chain, bytes 12..29, body)`. Each
//! format 3 segment starts with an anchor record (type 5, seq = the seq before the segment's
//! first record, no body) whose chain field is the chain value it continues from, so a segment
//! can be checked on its own and against its predecessor. The chain lives inside the payload so
//! that the framing (magic, length, checksum) is the same in every format: a scanner finds
//! record boundaries without knowing the segment's format. [`scan`] only reads (it serves
//! `verify` and `Reader`); [`scan_and_repair`] applies its plan at open.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::StoreError;
use crate::chain::{self, Chain};

/// Magic of the segments this version writes.
pub(crate) const FILE_MAGIC: &[u8; 8] = b"AWSPOOL3";
/// Magic of format 2 segments (binary events, no chain), still read.
pub(crate) const FILE_MAGIC_V2: &[u8; 8] = b"AWSPOOL2";
/// Magic of format 1 segments (events as JSON), still read.
pub(crate) const FILE_MAGIC_V1: &[u8; 8] = b"AWSPOOL1";
pub(crate) const REC_MAGIC: u32 = 0x5053_5741;
pub(crate) const HEADER: usize = 29;
/// Largest accepted payload (a 128 KiB argv plus a 64 KiB path fit many times over).
pub(crate) const MAX_PAYLOAD: usize = 16 << 20;
/// Type bit of a record whose payload starts with its chain value.
pub(crate) const CHAINED: u8 = 0x40;
/// Bytes of the chain field.
pub(crate) const CHAIN_LEN: usize = 32;

/// What a spool record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecType {
    /// An event as JSON (format 1 segments).
    JsonEvent = 1,
    Alert = 2,
    Triage = 3,
    /// An event in the binary encoding of `codec`.
    Event = 4,
    /// The head of a format 3 segment: the chain value it continues from.
    Anchor = 5,
    Pad = 255,
}

impl RecType {
    fn from_u8(v: u8) -> Option<RecType> {
        match v {
            1 => Some(RecType::JsonEvent),
            2 => Some(RecType::Alert),
            3 => Some(RecType::Triage),
            4 => Some(RecType::Event),
            5 => Some(RecType::Anchor),
            255 => Some(RecType::Pad),
            _ => None,
        }
    }

    /// A record that holds an event, alert or triage change (not padding, not an anchor).
    pub fn is_data(self) -> bool {
        !matches!(self, RecType::Pad | RecType::Anchor)
    }
}

/// A decoded record header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecHeader {
    pub seq: u64,
    pub time: i64,
    pub ty: RecType,
    /// Payload length, chain field included.
    pub len: usize,
    /// The payload starts with a chain field.
    pub chained: bool,
}

impl RecHeader {
    /// Offset of the body (the payload after the chain field) from the record's start.
    pub fn body_off(&self) -> usize {
        HEADER + if self.chained { CHAIN_LEN } else { 0 }
    }

    /// The stored chain value of the record at the start of `rec`.
    pub fn chain(&self, rec: &[u8]) -> Option<Chain> {
        if !self.chained {
            return None;
        }
        rec.get(HEADER..HEADER + CHAIN_LEN)?.try_into().ok()
    }

    /// The chain value this record's bytes link to from `prev`.
    pub fn link(&self, prev: &Chain, rec: &[u8]) -> Chain {
        chain::link(
            prev,
            &rec[12..HEADER],
            &rec[self.body_off()..HEADER + self.len],
        )
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Append one encoded record to `buf`. The payload is produced by `fill` straight into `buf`.
/// With `chain`, the record is chained: its chain field links from `*chain`, which is then
/// advanced to the record's chain value.
pub(crate) fn encode_into(
    buf: &mut Vec<u8>,
    seq: u64,
    time: i64,
    ty: RecType,
    chain: Option<&mut Chain>,
    fill: impl FnOnce(&mut Vec<u8>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let start = buf.len();
    buf.extend_from_slice(&REC_MAGIC.to_le_bytes());
    buf.extend_from_slice(&[0; 8]);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&time.to_le_bytes());
    let chained = chain.is_some() && ty != RecType::Pad;
    buf.push(ty as u8 | if chained { CHAINED } else { 0 });
    if chained {
        buf.extend_from_slice(&[0; CHAIN_LEN]);
    }
    if let Err(e) = fill(buf) {
        buf.truncate(start);
        return Err(e);
    }
    let len = buf.len() - start - HEADER;
    if len > MAX_PAYLOAD {
        buf.truncate(start);
        return Err(StoreError::TooLarge { seq, len });
    }
    if let Some(prev) = chain.filter(|_| chained) {
        let c = chain::link(
            prev,
            &buf[start + 12..start + HEADER],
            &buf[start + HEADER + CHAIN_LEN..],
        );
        buf[start + HEADER..start + HEADER + CHAIN_LEN].copy_from_slice(&c);
        *prev = c;
    }
    let crc = crc32c::crc32c(&buf[start + 12..]);
    buf[start + 4..start + 8].copy_from_slice(&(len as u32).to_le_bytes());
    buf[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Append the anchor record of a new segment: it continues the chain from `prev` after
/// `prev_seq`.
pub(crate) fn encode_anchor(buf: &mut Vec<u8>, prev_seq: u64, prev: &Chain) {
    let start = buf.len();
    buf.extend_from_slice(&REC_MAGIC.to_le_bytes());
    buf.extend_from_slice(&(CHAIN_LEN as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&prev_seq.to_le_bytes());
    buf.extend_from_slice(&0i64.to_le_bytes());
    buf.push(RecType::Anchor as u8 | CHAINED);
    buf.extend_from_slice(prev);
    let crc = crc32c::crc32c(&buf[start + 12..]);
    buf[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

/// The first bytes of a new segment: magic and anchor.
pub(crate) fn segment_head(prev_seq: u64, prev: &Chain) -> Vec<u8> {
    let mut b = FILE_MAGIC.to_vec();
    encode_anchor(&mut b, prev_seq, prev);
    b
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
    let (ty, chained) = match b[28] {
        255 => (RecType::Pad, false),
        t => (RecType::from_u8(t & !CHAINED)?, t & CHAINED != 0),
    };
    if (chained && len < CHAIN_LEN) || (ty == RecType::Anchor && !chained) {
        return None;
    }
    Some(RecHeader {
        seq: u64::from_le_bytes(b[12..20].try_into().ok()?),
        time: i64::from_le_bytes(b[20..28].try_into().ok()?),
        ty,
        len,
        chained,
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
    /// Format of the segment file: 1 (events as JSON), 2 (binary events), 3 (chained).
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
            format: 3,
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

/// A damaged byte region found by [`scan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Region {
    pub offset: usize,
    /// End (exclusive): the next valid record, or the end of the file.
    pub end: usize,
    /// A valid record follows (the region was salvaged around, not cut).
    pub followed: bool,
    /// Sequence numbers missing across the region (inclusive), when records follow it.
    pub seqs: Option<(u64, u64)>,
}

/// What reading a segment found, without changing it.
#[derive(Clone, Debug)]
pub(crate) struct Scan {
    pub meta: SegmentMeta,
    /// The magic was missing or damaged (the segment's first region starts at 0).
    pub bad_magic: bool,
    /// The file is shorter than a magic and a prefix of it: a creation cut short by a crash.
    pub torn_head: bool,
    /// The segment's anchor: (seq before its first record, chain value it continues from).
    pub anchor: Option<(u64, Chain)>,
    /// Seq of the first record.
    pub first_rec: Option<u64>,
    /// Stored chain value of the last chained record (or of the anchor when there is none).
    pub last_chain: Option<Chain>,
    /// Damaged regions, in file order.
    pub regions: Vec<Region>,
    /// Records whose chain link fails: (seq, offset). They were rewritten after they were
    /// chained (or inserted without a chain into a chained segment).
    pub altered: Vec<(u64, u64)>,
    /// Records of a chained segment that carry no chain: (seq, offset).
    pub unchained: Vec<(u64, u64)>,
    /// (seq, offset) of the first record after each anomaly (damage, a seq gap, a rewritten
    /// record): where index documents may point at offsets that moved.
    pub resync: Vec<(u64, u64)>,
    /// Stored chain value at the seq asked for (a record's, or an anchor's continuing from it).
    pub want_chain: Option<Chain>,
    /// Offsets of the records (data records only), when asked for.
    pub offsets: Vec<(u64, usize)>,
}

/// Read a segment's bytes `b` and check every record and link. `want` asks for the chain value
/// stored at that seq; `keep_offsets` lists every data record.
pub(crate) fn scan(
    path: &Path,
    b: &[u8],
    first_seq: u64,
    want: Option<u64>,
    keep_offsets: bool,
) -> Result<Scan, StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut meta = SegmentMeta::new(dir, first_seq);
    meta.path = path.to_path_buf();
    meta.bytes = b.len() as u64;
    let mut sc = Scan {
        meta,
        bad_magic: false,
        torn_head: false,
        anchor: None,
        first_rec: None,
        last_chain: None,
        regions: Vec::new(),
        altered: Vec::new(),
        unchained: Vec::new(),
        resync: Vec::new(),
        want_chain: None,
        offsets: Vec::new(),
    };
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
    let head = &b[..b.len().min(8)];
    sc.meta.format = if head == FILE_MAGIC_V1 {
        1
    } else if head == FILE_MAGIC_V2 {
        2
    } else if head == FILE_MAGIC {
        3
    } else if b.len() < FILE_MAGIC.len() && FILE_MAGIC.starts_with(b) {
        sc.torn_head = true;
        return Ok(sc);
    } else {
        sc.bad_magic = true;
        0
    };
    let mut pos = FILE_MAGIC.len();
    let mut damage_from: Option<usize> = sc.bad_magic.then_some(0);
    // Chain value and seq of the previous record, when the next one can be checked against it.
    let mut prev: Option<(u64, Chain)> = None;
    let mut anomaly = false;
    let mut saw_chained = false;
    let mut saw_binary = false;
    let valid = |p: usize, last: u64, any: bool| {
        parse(&b[p..]).filter(|h| {
            h.ty == RecType::Pad
                || (h.ty == RecType::Anchor && !any)
                || (h.ty.is_data() && h.seq > last)
        })
    };
    while pos < b.len() {
        let any = sc.first_rec.is_some() || sc.anchor.is_some();
        let Some(h) = valid(pos, sc.meta.last_seq, any) else {
            damage_from.get_or_insert(pos);
            let last = sc.meta.last_seq;
            let next = (pos + 1..b.len().saturating_sub(HEADER - 1)).find(|&p| {
                b[p..p + 4] == REC_MAGIC.to_le_bytes()
                    && valid(p, last, any).is_some_and(|h| h.ty != RecType::Pad)
            });
            match next {
                Some(n) => pos = n,
                None => {
                    let from = damage_from.take().unwrap_or(pos);
                    sc.regions.push(Region {
                        offset: from,
                        end: b.len(),
                        followed: false,
                        seqs: None,
                    });
                    break;
                }
            }
            continue;
        };
        let rec = &b[pos..pos + HEADER + h.len];
        if let Some(from) = damage_from.take() {
            let before = sc.meta.last_seq;
            sc.regions.push(Region {
                offset: from,
                end: pos,
                followed: true,
                seqs: (h.ty.is_data() && h.seq > before + 1).then(|| (before + 1, h.seq - 1)),
            });
            anomaly = true;
            if !(h.ty.is_data() && h.seq == before + 1) {
                prev = None;
            }
        }
        match h.ty {
            RecType::Pad => {}
            RecType::Anchor => {
                let c = h.chain(rec).unwrap_or(chain::GENESIS);
                sc.anchor = Some((h.seq, c));
                sc.last_chain = Some(c);
                prev = Some((h.seq, c));
                if want == Some(h.seq) {
                    sc.want_chain = Some(c);
                }
                if h.seq >= sc.meta.last_seq {
                    sc.meta.last_seq = h.seq;
                }
            }
            _ => {
                let expect = sc.meta.last_seq + 1;
                if h.seq > expect && (sc.first_rec.is_some() || sc.anchor.is_some()) {
                    anomaly = true;
                }
                if anomaly {
                    sc.resync.push((h.seq, pos as u64));
                    anomaly = false;
                }
                // `count` records in-segment gaps against the previous record (or, for the
                // first record, against the anchor or the file name).
                if sc.first_rec.is_none() {
                    if let Some((p, _)) = sc.anchor {
                        sc.meta.last_seq = p;
                    }
                    sc.first_rec = Some(h.seq);
                }
                sc.meta.count(&h);
                if keep_offsets {
                    sc.offsets.push((h.seq, pos));
                }
                match h.chain(rec) {
                    Some(stored) => {
                        saw_chained = true;
                        if let Some((pseq, pc)) = prev
                            && pseq + 1 == h.seq
                            && h.link(&pc, rec) != stored
                        {
                            sc.altered.push((h.seq, pos as u64));
                            // A rewrite of another length moves the records after it.
                            anomaly = true;
                        }
                        prev = Some((h.seq, stored));
                        sc.last_chain = Some(stored);
                        if want == Some(h.seq) {
                            sc.want_chain = Some(stored);
                        }
                    }
                    None => {
                        prev = None;
                        if sc.meta.format == 3 {
                            sc.unchained.push((h.seq, pos as u64));
                        }
                    }
                }
                saw_binary |= h.ty == RecType::Event;
            }
        }
        pos += HEADER + h.len;
    }
    if sc.bad_magic {
        sc.meta.format = if saw_chained || sc.anchor.is_some() {
            3
        } else if saw_binary {
            2
        } else if sc.first_rec.is_some() {
            1
        } else {
            3
        };
    }
    Ok(sc)
}

/// Scan a segment at open and repair it: damaged regions followed by valid records are copied
/// to `quarantine/` and replaced in place by a padding record (later offsets stay valid, the
/// records after them are kept); a damaged tail is copied and cut; a damaged magic is
/// rewritten.
pub(crate) fn scan_and_repair(
    path: &Path,
    first_seq: u64,
    quarantine_dir: &Path,
    last_segment: bool,
    want: Option<u64>,
    damage: &mut Vec<Damage>,
) -> Result<Scan, StoreError> {
    let mut b = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut b))
        .map_err(io_err(path))?;
    let mut sc = scan(path, &b, first_seq, want, false)?;
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    if sc.torn_head {
        // A segment whose creation was torn before its magic reached the disk.
        file.write_all_at(FILE_MAGIC, 0).map_err(io_err(path))?;
        file.set_len(FILE_MAGIC.len() as u64)
            .map_err(io_err(path))?;
        file.sync_all().map_err(io_err(path))?;
        sc.meta.bytes = FILE_MAGIC.len() as u64;
        sc.meta.format = 3;
        return Ok(sc);
    }
    let mut repaired = false;
    let mut len = b.len();
    for r in sc.regions.clone() {
        if r.offset >= len {
            break;
        }
        let q = quarantine(quarantine_dir, path, r.offset as u64, &b[r.offset..r.end])?;
        // The magic of a segment whose head was damaged is rewritten: its records stay.
        let from = if r.offset == 0 {
            let magic: &[u8; 8] = match sc.meta.format {
                1 => FILE_MAGIC_V1,
                2 => FILE_MAGIC_V2,
                _ => FILE_MAGIC,
            };
            file.write_all_at(magic, 0).map_err(io_err(path))?;
            FILE_MAGIC.len().min(r.end)
        } else {
            r.offset
        };
        let gap = r.end - from;
        if r.followed && (gap == 0 || gap >= HEADER) {
            if gap > 0 {
                let mut pad = Vec::with_capacity(gap);
                encode_into(&mut pad, 0, 0, RecType::Pad, None, |buf| {
                    buf.resize(gap, 0);
                    Ok(())
                })?;
                file.write_all_at(&pad, from as u64).map_err(io_err(path))?;
            }
            damage.push(Damage {
                segment: path.to_path_buf(),
                offset: r.offset as u64,
                len: (r.end - r.offset) as u64,
                quarantine: q,
                torn_tail: false,
            });
        } else {
            // Nothing valid follows (or the gap is too small to pad): cut the file here.
            // Records after a too-small gap are lost with the cut (a gap is smaller than a
            // record header only when fewer than 29 bytes were inserted between records).
            damage.push(Damage {
                segment: path.to_path_buf(),
                offset: r.offset as u64,
                len: (b.len() - r.offset) as u64,
                quarantine: q,
                torn_tail: last_segment && !r.followed,
            });
            file.set_len(from as u64).map_err(io_err(path))?;
            len = from;
            if r.followed {
                // Recount what is left.
                b.truncate(from);
                let again = scan(path, &b, first_seq, want, false)?;
                sc.meta = again.meta;
                sc.last_chain = again.last_chain;
                sc.want_chain = again.want_chain;
                sc.altered = again.altered;
                sc.unchained = again.unchained;
            }
        }
        repaired = true;
    }
    if repaired {
        file.sync_all().map_err(io_err(path))?;
    }
    sc.meta.bytes = len as u64;
    Ok(sc)
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
        Some(h) if h.seq == seq && h.ty.is_data() => {
            b.drain(..h.body_off());
            Ok((h, b))
        }
        _ => Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            offset,
        }),
    }
}
