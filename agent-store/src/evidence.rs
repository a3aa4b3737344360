//! Evidence packs: one session's stored items, exported with the chain values around each one,
//! so that a pack handed to someone else can be checked on its own: each item's link (its bytes
//! hash from the chain value before it to the one after it), items removed from the pack (the
//! header lists every seq of the session and its counts, since a session's items are not
//! contiguous in the spool), and items altered (the link fails, or the readable JSON is not what
//! the stored bytes decode to). The header also carries the store's head (seq and chain value)
//! at export time, to compare with the store, its mark or a later pack.
//!
//! Format: JSON lines. Line 1 is [`PackHeader`], then one [`PackItem`] per item, in seq order.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::chain::{self, Chain};
use crate::spool::{self, HEADER, RecType, io_err};
use crate::{Reader, SearchRequest, StoreError, codec};

/// Version of the pack format.
pub const PACK_VERSION: u32 = 1;

/// The first line of a pack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackHeader {
    /// Pack format version.
    pub evidence: u32,
    pub session: String,
    /// Last seq of the store at export time, and the chain value after it (hex).
    pub head_seq: u64,
    pub head_chain: Option<String>,
    /// Items of the session: all of them, and by kind.
    pub items: u64,
    pub events: u64,
    pub alerts: u64,
    /// Every seq of the session's items, ascending.
    pub seqs: Vec<u64>,
}

/// One stored item of the session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackItem {
    pub seq: u64,
    /// Time field of the record (ns since the epoch).
    pub time: i64,
    /// Type byte of the record as stored.
    pub ty: u8,
    /// Chain value before and after the item (hex); absent for unchained (older format) items.
    pub prev: Option<String>,
    pub chain: Option<String>,
    /// The record's body as stored (hex): what the chain hashes.
    pub body: String,
    /// The item as JSON, for people and tools.
    pub json: String,
}

/// A session's evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidencePack {
    pub header: PackHeader,
    pub items: Vec<PackItem>,
}

impl EvidencePack {
    /// Write the pack as JSON lines.
    pub fn write_jsonl(&self, w: &mut dyn Write) -> io::Result<()> {
        serde_json::to_writer(&mut *w, &self.header)?;
        w.write_all(b"\n")?;
        for it in &self.items {
            serde_json::to_writer(&mut *w, it)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }
}

fn item_json(ty: RecType, body: &[u8]) -> Option<String> {
    match ty {
        RecType::Event => codec::decode_event(body).ok().map(|e| e.to_json()),
        RecType::JsonEvent | RecType::Alert | RecType::Triage => {
            String::from_utf8(body.to_vec()).ok()
        }
        RecType::Anchor | RecType::Pad => None,
    }
}

/// Export the evidence of session `session` from the store `reader` reads.
pub(crate) fn export(reader: &Reader, session: &str) -> Result<EvidencePack, StoreError> {
    let resp = reader.search(&SearchRequest {
        query: format!("session.id:\"{}\"", session.replace('"', "\\\"")),
        limit: reader.num_docs() as usize + 1,
        ..SearchRequest::default()
    })?;
    let wanted: BTreeSet<u64> = resp.hits.iter().map(|h| h.seq).collect();
    let segs = spool::list_segments(reader.spool_dir())?;
    let mut items = Vec::with_capacity(wanted.len());
    let (mut head_seq, mut head_chain) = (0u64, None);
    let (mut events, mut alerts) = (0u64, 0u64);
    for (i, (first, path)) in segs.iter().enumerate() {
        let end = segs.get(i + 1).map_or(u64::MAX, |(f, _)| *f);
        let last = i + 1 == segs.len();
        if !last && wanted.range(*first..end).next().is_none() {
            continue;
        }
        let b = fs::read(path).map_err(io_err(path))?;
        let mut pos = 8;
        let mut prev: Option<Chain> = None;
        while let Some(h) = b.get(pos..).and_then(spool::parse) {
            let rec = &b[pos..pos + HEADER + h.len];
            pos += HEADER + h.len;
            let stored = h.chain(rec);
            if h.ty == RecType::Anchor {
                prev = stored;
                continue;
            }
            if !h.ty.is_data() {
                continue;
            }
            if wanted.contains(&h.seq) {
                let body = &rec[h.body_off()..];
                match h.ty {
                    RecType::Event | RecType::JsonEvent => events += 1,
                    RecType::Alert => alerts += 1,
                    _ => {}
                }
                items.push(PackItem {
                    seq: h.seq,
                    time: h.time,
                    ty: rec[28],
                    prev: stored.and(prev).map(|c| chain::to_hex(&c)),
                    chain: stored.map(|c| chain::to_hex(&c)),
                    body: chain::bytes_hex(body),
                    json: item_json(h.ty, body).unwrap_or_default(),
                });
            }
            if last {
                head_seq = h.seq;
                head_chain = stored.map(|c| chain::to_hex(&c));
            }
            prev = stored;
        }
    }
    items.sort_by_key(|it| it.seq);
    Ok(EvidencePack {
        header: PackHeader {
            evidence: PACK_VERSION,
            session: session.to_string(),
            head_seq,
            head_chain,
            items: items.len() as u64,
            events,
            alerts,
            seqs: items.iter().map(|it| it.seq).collect(),
        },
        items,
    })
}

/// What is wrong with a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PackFindingKind {
    /// The header lists a seq that no line carries: the item was removed from the pack.
    Missing,
    /// The item's link fails or its JSON is not its stored bytes: it was altered.
    Altered,
    /// A line carries a seq the header does not list.
    Unexpected,
    /// The header's counts do not match its items.
    CountMismatch,
    /// A line is not a pack line.
    BadLine,
    /// The item has no chain (stored in an older format): only its JSON could be checked.
    Unchained,
}

impl PackFindingKind {
    /// False for what is not a sign of tampering.
    pub const fn is_tamper(self) -> bool {
        !matches!(self, PackFindingKind::Unchained)
    }
}

/// One finding about a pack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PackFinding {
    pub kind: PackFindingKind,
    pub seq: Option<u64>,
    /// 1-based line of the pack.
    pub line: Option<usize>,
    pub detail: String,
}

/// What [`verify_pack`] found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PackReport {
    pub session: String,
    pub items: usize,
    pub head_seq: u64,
    pub head_chain: Option<String>,
    pub findings: Vec<PackFinding>,
}

impl PackReport {
    pub fn is_intact(&self) -> bool {
        self.findings.iter().all(|f| !f.kind.is_tamper())
    }
}

fn check_item(it: &PackItem) -> Result<bool, String> {
    let body = chain::hex_bytes(&it.body).ok_or("the body is not hex")?;
    let ty = match it.ty {
        255 => RecType::Pad,
        t => match t & !spool::CHAINED {
            1 => RecType::JsonEvent,
            2 => RecType::Alert,
            3 => RecType::Triage,
            4 => RecType::Event,
            _ => return Err(format!("type `{t}` is not an item type")),
        },
    };
    if item_json(ty, &body).as_deref() != Some(it.json.as_str()) {
        return Err("its JSON is not what its stored bytes decode to".into());
    }
    let (Some(prev), Some(after)) = (&it.prev, &it.chain) else {
        return Ok(false);
    };
    let prev = chain::from_hex(prev).ok_or("`prev` is not a chain value")?;
    let after = chain::from_hex(after).ok_or("`chain` is not a chain value")?;
    let mut head = Vec::with_capacity(17);
    head.extend_from_slice(&it.seq.to_le_bytes());
    head.extend_from_slice(&it.time.to_le_bytes());
    head.push(it.ty);
    if chain::link(&prev, &head, &body) != after {
        return Err("its bytes do not link `prev` to `chain`".into());
    }
    Ok(true)
}

/// Check a pack read from `r`.
pub fn verify_pack(r: &mut dyn BufRead) -> io::Result<PackReport> {
    let mut rep = PackReport::default();
    let mut lines = r.lines();
    let header: PackHeader = match lines.next() {
        Some(l) => match serde_json::from_str(&l?) {
            Ok(h) => h,
            Err(e) => {
                rep.findings.push(PackFinding {
                    kind: PackFindingKind::BadLine,
                    seq: None,
                    line: Some(1),
                    detail: format!("line 1 is not a pack header: {e}"),
                });
                return Ok(rep);
            }
        },
        None => return Ok(rep),
    };
    rep.session = header.session.clone();
    rep.head_seq = header.head_seq;
    rep.head_chain = header.head_chain.clone();
    let listed: BTreeSet<u64> = header.seqs.iter().copied().collect();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let (mut events, mut alerts) = (0u64, 0u64);
    let mut last: Option<PackItem> = None;
    for (i, l) in lines.enumerate() {
        let line = i + 2;
        let l = l?;
        let it: PackItem = match serde_json::from_str(&l) {
            Ok(it) => it,
            Err(e) => {
                rep.findings.push(PackFinding {
                    kind: PackFindingKind::BadLine,
                    seq: None,
                    line: Some(line),
                    detail: format!("line {line} is not a pack item: {e}"),
                });
                continue;
            }
        };
        rep.items += 1;
        match it.ty & !spool::CHAINED {
            1 | 4 => events += 1,
            2 => alerts += 1,
            _ => {}
        }
        let mut find = |kind, detail: String| {
            rep.findings.push(PackFinding {
                kind,
                seq: Some(it.seq),
                line: Some(line),
                detail,
            })
        };
        if !listed.contains(&it.seq) {
            find(
                PackFindingKind::Unexpected,
                format!(
                    "item `{}` (line {line}) is not listed in the header",
                    it.seq
                ),
            );
        }
        if seen.insert(it.seq, line).is_some() {
            find(
                PackFindingKind::Unexpected,
                format!("item `{}` appears twice (line {line})", it.seq),
            );
        }
        match check_item(&it) {
            Ok(true) => {}
            Ok(false) => find(
                PackFindingKind::Unchained,
                format!("item `{}` was stored without a chain", it.seq),
            ),
            Err(why) => find(
                PackFindingKind::Altered,
                format!("item `{}` (line {line}) was altered: {why}", it.seq),
            ),
        }
        // Adjacent items share a chain value.
        if let Some(p) = &last
            && p.seq + 1 == it.seq
            && p.chain.is_some()
            && it.prev.is_some()
            && p.chain != it.prev
        {
            find(
                PackFindingKind::Altered,
                format!(
                    "item `{}` does not continue the chain of item `{}`",
                    it.seq, p.seq
                ),
            );
        }
        last = Some(it);
    }
    for seq in listed.iter().filter(|s| !seen.contains_key(s)) {
        rep.findings.push(PackFinding {
            kind: PackFindingKind::Missing,
            seq: Some(*seq),
            line: None,
            detail: format!("item `{seq}` is listed in the header but not in the pack"),
        });
    }
    if header.items != header.seqs.len() as u64
        || header.items != rep.items as u64
        || header.events != events
        || header.alerts != alerts
    {
        rep.findings.push(PackFinding {
            kind: PackFindingKind::CountMismatch,
            seq: None,
            line: Some(1),
            detail: format!(
                "the header counts {} items ({} events, {} alerts, {} seqs) but the pack holds {} ({events} events, {alerts} alerts)",
                header.items,
                header.events,
                header.alerts,
                header.seqs.len(),
                rep.items
            ),
        });
    }
    Ok(rep)
}
