//! Tamper evidence: what the spool's chain, its segment anchors and the high-water mark say is
//! missing or altered, as typed [`Finding`]s. One analysis serves both [`crate::Store::open`]
//! (which also repairs, and reports through `OpenReport::findings`) and [`verify`] (read-only,
//! like `Reader`, for the CLI on a live or copied data dir), so both name the same things.
//!
//! What can be told apart: a segment deleted between two others (the later one's anchor names
//! the seq it continues from), a segment cut short (a partial record at its end, and the next
//! anchor), records cut out of a segment (a seq gap), a damaged region (checksums), a record
//! rewritten with a valid checksum (its chain link fails), and, with a mark, a wiped or rolled
//! back spool or one whose history was rewritten wholesale (a different chain at the mark's seq).
//! What cannot: the chain is unkeyed, so a root attacker who rewrites *every* later record and
//! the mark leaves a consistent store; the mark and exported evidence packs kept elsewhere are
//! the answer to that.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::StoreError;
use crate::chain::{self, Chain};
use crate::mark::{self, Mark};
use crate::spool::{self, Scan, io_err};

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A damaged byte region inside a segment (checksums fail); records after it were kept.
    Damaged,
    /// A partial record at the end of the newest segment: the normal trace of a crash.
    TornTail,
    /// A segment ends in a partial record and the next segment continues from a later seq.
    Truncated,
    /// Records missing inside a segment (cut out, no damaged bytes left behind).
    RecordsMissing,
    /// Records missing between two segments: a segment was deleted.
    SegmentsMissing,
    /// A record's chain link fails: it was rewritten (or inserted) after it was chained.
    Altered,
    /// A segment's anchor does not continue its predecessor's chain.
    AnchorMismatch,
    /// The oldest records are gone, beyond what retention deleted (per the mark).
    HeadMissing,
    /// The spool starts after seq 1 and no mark says whether retention did it.
    StartsLater,
    /// A segment of an older format, without a chain to verify.
    Unchained,
    /// The mark says more records were durable than the spool holds.
    RolledBack,
    /// The mark says records were durable and the spool holds none.
    Wiped,
    /// The chain at the mark's seq differs from the mark's: the history was rewritten.
    Rewritten,
    /// A chained store without its mark.
    MarkMissing,
    /// The mark cannot be read.
    MarkInvalid,
}

impl FindingKind {
    pub const fn name(self) -> &'static str {
        match self {
            FindingKind::Damaged => "damaged",
            FindingKind::TornTail => "torn_tail",
            FindingKind::Truncated => "truncated",
            FindingKind::RecordsMissing => "records_missing",
            FindingKind::SegmentsMissing => "segments_missing",
            FindingKind::Altered => "altered",
            FindingKind::AnchorMismatch => "anchor_mismatch",
            FindingKind::HeadMissing => "head_missing",
            FindingKind::StartsLater => "starts_later",
            FindingKind::Unchained => "unchained",
            FindingKind::RolledBack => "rolled_back",
            FindingKind::Wiped => "wiped",
            FindingKind::Rewritten => "rewritten",
            FindingKind::MarkMissing => "mark_missing",
            FindingKind::MarkInvalid => "mark_invalid",
        }
    }

    /// False for what a crash, retention or an upgrade leave behind.
    pub const fn is_tamper(self) -> bool {
        !matches!(
            self,
            FindingKind::TornTail | FindingKind::StartsLater | FindingKind::Unchained
        )
    }
}

/// One finding: what, where, which records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The segment file concerned.
    pub segment: Option<PathBuf>,
    /// Byte offset in the segment.
    pub offset: Option<u64>,
    /// Bytes concerned.
    pub len: Option<u64>,
    /// Sequence numbers concerned (inclusive), when known.
    pub seqs: Option<(u64, u64)>,
    /// One line for an alert or a log.
    pub detail: String,
}

impl Finding {
    fn new(kind: FindingKind, detail: String) -> Finding {
        Finding {
            kind,
            segment: None,
            offset: None,
            len: None,
            seqs: None,
            detail,
        }
    }

    fn at(mut self, seg: &Path, offset: Option<u64>, len: Option<u64>) -> Finding {
        self.segment = Some(seg.to_path_buf());
        self.offset = offset;
        self.len = len;
        self
    }

    fn seqs(mut self, a: u64, b: u64) -> Finding {
        self.seqs = Some((a, b));
        self
    }
}

/// The mark as the analysis sees it.
pub(crate) enum MarkView<'a> {
    /// No mark path given: nothing to compare.
    NotUsed,
    Missing,
    Invalid(&'a str),
    Present(&'a Mark),
}

fn range(a: u64, b: u64) -> String {
    if a == b {
        format!("`{a}`")
    } else {
        format!("`{a}`..=`{b}`")
    }
}

/// Cross-check scanned segments (oldest first) and the mark.
pub(crate) fn analyze(segs: &[Scan], mark: MarkView<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let n = segs.len();
    for (i, s) in segs.iter().enumerate() {
        let path = &s.meta.path;
        let name = path.display();
        let last = i + 1 == n;
        if matches!(s.meta.format, 1 | 2) {
            out.push(
                Finding::new(
                    FindingKind::Unchained,
                    format!(
                        "segment `{name}` has format {} (written before the chain): its records cannot be checked against rewriting",
                        s.meta.format
                    ),
                )
                .at(path, None, None),
            );
        }
        let mut covered: Vec<(u64, u64)> = Vec::new();
        for r in &s.regions {
            let (off, len) = (r.offset as u64, (r.end - r.offset) as u64);
            if r.followed {
                let mut f = Finding::new(
                    FindingKind::Damaged,
                    match r.seqs {
                        Some((a, b)) => format!(
                            "segment `{name}` bytes {off}..{} are damaged: records {} are gone, the records after them were kept",
                            r.end,
                            range(a, b)
                        ),
                        None => format!(
                            "segment `{name}` bytes {off}..{} are damaged; the records after them were kept",
                            r.end
                        ),
                    },
                )
                .at(path, Some(off), Some(len));
                if let Some((a, b)) = r.seqs {
                    f = f.seqs(a, b);
                    covered.push((a, b));
                }
                out.push(f);
            } else if last {
                out.push(
                    Finding::new(
                        FindingKind::TornTail,
                        format!(
                            "segment `{name}` ends in a partial record at offset {off} ({len} bytes)"
                        ),
                    )
                    .at(path, Some(off), Some(len)),
                );
            }
            // A damaged end of an older segment is named below, with the seqs its successor
            // says it lost.
        }
        for &(a, b) in &s.meta.gaps {
            if covered.contains(&(a, b)) {
                continue;
            }
            out.push(
                Finding::new(
                    FindingKind::RecordsMissing,
                    format!("records {} are missing from segment `{name}`", range(a, b)),
                )
                .at(path, None, None)
                .seqs(a, b),
            );
        }
        for &(seq, off) in &s.altered {
            out.push(
                Finding::new(
                    FindingKind::Altered,
                    format!(
                        "record `{seq}` at offset {off} of segment `{name}` fails its chain link: it was rewritten"
                    ),
                )
                .at(path, Some(off), None)
                .seqs(seq, seq),
            );
        }
        for &(seq, off) in &s.unchained {
            out.push(
                Finding::new(
                    FindingKind::Altered,
                    format!(
                        "record `{seq}` at offset {off} of chained segment `{name}` has no chain: it was inserted or rewritten"
                    ),
                )
                .at(path, Some(off), None)
                .seqs(seq, seq),
            );
        }
        // Against the predecessor.
        let Some(p) = i.checked_sub(1).map(|j| &segs[j]) else {
            continue;
        };
        let pname = p.meta.path.display();
        let plast = p.meta.last_seq;
        // Where the segment says it starts: its anchor; without one (an older format, or a
        // damaged head, already reported with its seqs), its file name.
        let head_damaged = s.regions.first().is_some_and(|r| r.offset <= 8);
        let starts = s
            .anchor
            .map(|(a, _)| a)
            .or(s.first_rec.filter(|_| !head_damaged).map(|f| f - 1))
            .unwrap_or(s.meta.first_seq - 1);
        if starts > plast {
            let tail = p.regions.iter().find(|r| !r.followed);
            out.push(match tail {
                Some(t) => Finding::new(
                    FindingKind::Truncated,
                    format!(
                        "segment `{pname}` was truncated at offset {}: records {} are gone",
                        t.offset,
                        range(plast + 1, starts)
                    ),
                )
                .at(&p.meta.path, Some(t.offset as u64), Some((t.end - t.offset) as u64))
                .seqs(plast + 1, starts),
                None => Finding::new(
                    FindingKind::SegmentsMissing,
                    format!(
                        "records {} between segments `{pname}` and `{name}` are missing: a segment was deleted (or `{pname}` was cut at a record boundary, offset {})",
                        range(plast + 1, starts),
                        p.meta.bytes
                    ),
                )
                .at(path, None, None)
                .seqs(plast + 1, starts),
            });
        } else if let Some((a, c)) = s.anchor {
            let expect = if p.meta.format == 3 {
                p.last_chain
            } else {
                Some(chain::GENESIS)
            };
            if a < plast || expect.is_some_and(|e| e != c) {
                out.push(
                    Finding::new(
                        FindingKind::AnchorMismatch,
                        format!(
                            "segment `{name}` continues from seq `{a}` chain `{}`, but `{pname}` ends at seq `{plast}` chain `{}`: the end of `{pname}` was rewritten",
                            chain::to_hex(&c),
                            expect.map(|e| chain::to_hex(&e)).unwrap_or_default()
                        ),
                    )
                    .at(path, None, None)
                    .seqs(a.min(plast), plast),
                );
            }
        }
    }
    // The head of the spool.
    let first = segs.first().map(|s| {
        s.anchor
            .map(|(a, _)| a + 1)
            .or(s.first_rec)
            .unwrap_or(s.meta.first_seq)
    });
    let last_seq = segs.iter().map(|s| s.meta.last_seq).max().unwrap_or(0);
    let has_records = segs.iter().any(|s| s.first_rec.is_some());
    let chained = segs
        .iter()
        .any(|s| s.meta.format == 3 && s.last_chain.is_some());
    match mark {
        MarkView::Present(m) => {
            if let Some(f) = first
                && f > m.first_seq
                && f <= m.last_seq
            {
                out.push(
                    Finding::new(
                        FindingKind::HeadMissing,
                        format!(
                            "records {} at the start of the spool are gone; retention kept them (the mark starts at `{}`)",
                            range(m.first_seq, f - 1),
                            m.first_seq
                        ),
                    )
                    .seqs(m.first_seq, f - 1),
                );
            }
            if !has_records && m.last_seq >= m.first_seq && m.last_seq > 0 && last_seq < m.last_seq
            {
                out.push(
                    Finding::new(
                        FindingKind::Wiped,
                        format!(
                            "the spool holds no records, but the mark says records {} in {} segments were durable",
                            range(m.first_seq, m.last_seq),
                            m.segments
                        ),
                    )
                    .seqs(m.first_seq, m.last_seq),
                );
            } else if last_seq < m.last_seq {
                let mut f = Finding::new(
                    FindingKind::RolledBack,
                    format!(
                        "the spool ends at seq `{last_seq}`, but the mark says records up to `{}` were durable: records {} are gone",
                        m.last_seq,
                        range(last_seq + 1, m.last_seq)
                    ),
                )
                .seqs(last_seq + 1, m.last_seq);
                if let Some(s) = segs.last() {
                    f = f.at(&s.meta.path, Some(s.meta.bytes), None);
                }
                out.push(f);
            } else if let Some(c) = segs.iter().find_map(|s| s.want_chain)
                && c != m.last_chain
            {
                out.push(
                    Finding::new(
                        FindingKind::Rewritten,
                        format!(
                            "the chain at seq `{}` is `{}` but the mark says `{}`: the history up to it was rewritten",
                            m.last_seq,
                            chain::to_hex(&c),
                            chain::to_hex(&m.last_chain)
                        ),
                    )
                    .seqs(m.last_seq, m.last_seq),
                );
            }
        }
        MarkView::Missing if chained || has_records => {
            out.push(Finding::new(
                FindingKind::MarkMissing,
                format!(
                    "the spool holds records up to `{last_seq}` but there is no high-water mark (first run with a mark, or the mark was deleted)"
                ),
            ));
        }
        MarkView::Invalid(why) => {
            out.push(Finding::new(FindingKind::MarkInvalid, why.to_string()));
        }
        _ => {}
    }
    if let Some(f) = first
        && f > 1
        && !matches!(mark, MarkView::Present(_))
    {
        out.push(
            Finding::new(
                FindingKind::StartsLater,
                format!(
                    "the spool starts at seq `{f}`: records {} were deleted (by retention, or not: no mark to tell)",
                    range(1, f - 1)
                ),
            )
            .seqs(1, f - 1),
        );
    }
    out
}

/// What [`verify`] found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    pub findings: Vec<Finding>,
    /// Segment files checked.
    pub segments: usize,
    /// Events and alerts found.
    pub records: u64,
    /// Last seq in the spool.
    pub last_seq: u64,
    /// Chain value of the last chained record, hex.
    pub head: Option<String>,
    /// The mark compared against, when one was given and readable.
    pub mark_seq: Option<u64>,
}

impl VerifyReport {
    /// Nothing missing or altered (older-format segments and a torn tail are allowed).
    pub fn is_intact(&self) -> bool {
        self.findings.iter().all(|f| !f.kind.is_tamper())
    }

    /// One line per finding.
    pub fn messages(&self) -> Vec<String> {
        self.findings.iter().map(|f| f.detail.clone()).collect()
    }
}

/// Check the store in `dir` without writing anything: every segment, the chain, the anchors,
/// and the mark at `mark` when given.
pub fn verify(dir: &Path, mark: Option<&Path>) -> Result<VerifyReport, StoreError> {
    let spool_dir = dir.join("spool");
    if !spool_dir.is_dir() {
        return Err(StoreError::NoIndex(dir.to_path_buf()));
    }
    let m = mark.map(mark::read);
    let want = match &m {
        Some(Ok(Some(m))) => Some(m.last_seq),
        _ => None,
    };
    let mut scans = Vec::new();
    for (first, path) in spool::list_segments(&spool_dir)? {
        let b = fs::read(&path).map_err(io_err(&path))?;
        scans.push(spool::scan(&path, &b, first, want, false)?);
    }
    let view = match &m {
        None => MarkView::NotUsed,
        Some(Ok(None)) => MarkView::Missing,
        Some(Ok(Some(m))) => MarkView::Present(m),
        Some(Err(why)) => MarkView::Invalid(why),
    };
    let findings = analyze(&scans, view);
    Ok(VerifyReport {
        findings,
        segments: scans.len(),
        records: scans
            .iter()
            .map(|s| s.meta.events + s.meta.alerts)
            .sum::<u64>(),
        last_seq: scans.iter().map(|s| s.meta.last_seq).max().unwrap_or(0),
        head: scans
            .iter()
            .rev()
            .find_map(|s| s.last_chain)
            .map(|c: Chain| chain::to_hex(&c)),
        mark_seq: match &m {
            Some(Ok(Some(m))) => Some(m.last_seq),
            _ => None,
        },
    })
}
