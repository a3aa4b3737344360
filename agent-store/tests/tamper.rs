//! Tamper evidence: deleting, truncating, zeroing or rewriting spool data, wiping the data dir
//! with the high-water mark kept elsewhere, and altering an exported evidence pack. Each test
//! asserts the exact finding: which segment, which offsets, which sequence numbers.

mod common;

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use agent_store::evidence::{PackFindingKind, verify_pack};
use agent_store::{FindingKind, Store, StoreConfig, verify};
use common::*;

fn small_cfg(mark: Option<PathBuf>) -> StoreConfig {
    StoreConfig {
        segment_bytes: 16 << 10,
        mark,
        ..cfg()
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir.join("spool"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "spool"))
        .collect();
    v.sort();
    v
}

fn first_seq(seg: &Path) -> u64 {
    seg.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// (offset, seq) of the data records of a segment (the anchor, type 0x45, left out).
fn records(path: &Path) -> Vec<(usize, u64)> {
    let b = fs::read(path).unwrap();
    let mut pos = 8;
    let mut out = Vec::new();
    while pos + 29 <= b.len() {
        let len = u32::from_le_bytes(b[pos + 4..pos + 8].try_into().unwrap()) as usize;
        if b[pos + 28] != 0x45 {
            out.push((
                pos,
                u64::from_le_bytes(b[pos + 12..pos + 20].try_into().unwrap()),
            ));
        }
        pos += 29 + len;
    }
    out
}

/// A store of `n` events in several segments, closed.
fn build(dir: &Path, n: usize, mark: Option<PathBuf>) {
    let (s, rep) = Store::open(dir, small_cfg(mark)).unwrap();
    assert!(rep.is_clean(), "{:?}", rep.messages());
    for i in 0..n {
        s.append_event(&open_event(
            &format!("e{i}"),
            i as i64,
            &format!("/data/{i}"),
        ))
        .unwrap();
    }
    s.close().unwrap();
}

fn kinds(f: &[agent_store::Finding]) -> Vec<FindingKind> {
    f.iter().map(|f| f.kind).collect()
}

#[test]
fn an_untouched_store_verifies_clean_with_its_mark() {
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("hwm/store");
    let data = dir.path().join("data");
    build(&data, 400, Some(mark.clone()));
    let rep = verify(&data, Some(&mark)).unwrap();
    assert!(rep.findings.is_empty(), "{:?}", rep.messages());
    assert_eq!(
        (rep.last_seq, rep.mark_seq, rep.records),
        (400, Some(400), 400)
    );
    assert!(segments(&data).len() >= 4);
    let (_s, rep) = Store::open(&data, small_cfg(Some(mark))).unwrap();
    assert!(
        rep.is_clean() && rep.findings.is_empty(),
        "{:?}",
        rep.messages()
    );
}

#[test]
fn deleting_a_middle_segment_names_the_missing_seqs() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 400, None);
    let segs = segments(dir.path());
    let (gone, next) = (first_seq(&segs[1]), first_seq(&segs[2]));
    fs::remove_file(&segs[1]).unwrap();
    let rep = verify(dir.path(), None).unwrap();
    assert_eq!(kinds(&rep.findings), [FindingKind::SegmentsMissing]);
    let f = &rep.findings[0];
    assert_eq!(f.seqs, Some((gone, next - 1)));
    assert_eq!(f.segment.as_deref(), Some(segs[2].as_path()));
    assert!(!rep.is_intact());
    // The store opens, says so, and keeps working.
    let (s, rep) = open(dir.path());
    assert!(!rep.is_clean());
    assert_eq!(kinds(&rep.findings), [FindingKind::SegmentsMissing]);
    assert_eq!(rep.missing_seqs, vec![(gone, next - 1)]);
    assert_eq!(
        s.append_event(&open_event("after", 0, "/after")).unwrap(),
        401
    );
}

#[test]
fn deleting_the_last_segment_is_a_rollback_against_the_mark() {
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("hwm/store");
    let data = dir.path().join("data");
    build(&data, 400, Some(mark.clone()));
    let segs = segments(&data);
    let last = segs.last().unwrap();
    let from = first_seq(last);
    fs::remove_file(last).unwrap();
    let rep = verify(&data, Some(&mark)).unwrap();
    assert_eq!(kinds(&rep.findings), [FindingKind::RolledBack]);
    assert_eq!(rep.findings[0].seqs, Some((from, 400)));
    let (s, rep) = Store::open(&data, small_cfg(Some(mark.clone()))).unwrap();
    assert_eq!(kinds(&rep.findings), [FindingKind::RolledBack]);
    assert!(rep.missing_seqs.contains(&(from, 400)), "{rep:?}");
    // The lost seqs are not reused, and the gap stays visible in the spool itself.
    assert_eq!(
        s.append_event(&open_event("after", 0, "/after")).unwrap(),
        401
    );
    s.close().unwrap();
    let rep = verify(&data, None).unwrap();
    assert_eq!(kinds(&rep.findings), [FindingKind::SegmentsMissing]);
    assert_eq!(rep.findings[0].seqs, Some((from, 400)));
}

#[test]
fn truncating_a_segment_names_the_offset_and_seqs() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 400, None);
    let segs = segments(dir.path());
    let recs = records(&segs[1]);
    let (off, seq) = recs[recs.len() / 2];
    let next = first_seq(&segs[2]);
    let f = fs::OpenOptions::new().write(true).open(&segs[1]).unwrap();
    f.set_len(off as u64 + 10).unwrap();
    drop(f);
    let rep = verify(dir.path(), None).unwrap();
    assert_eq!(kinds(&rep.findings), [FindingKind::Truncated]);
    let t = &rep.findings[0];
    assert_eq!(t.segment.as_deref(), Some(segs[1].as_path()));
    assert_eq!(t.offset, Some(off as u64));
    assert_eq!(t.seqs, Some((seq, next - 1)));
}

#[test]
fn a_zeroed_region_costs_only_its_own_records() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 400, None);
    let segs = segments(dir.path());
    let seg = segs.last().unwrap();
    let recs = records(seg);
    assert!(recs.len() > 8, "{}", recs.len());
    let (from, s_from) = recs[2];
    let (to, s_to) = recs[5];
    let mut b = fs::read(seg).unwrap();
    b[from..to].fill(0);
    fs::write(seg, &b).unwrap();
    let rep = verify(dir.path(), None).unwrap();
    assert_eq!(kinds(&rep.findings), [FindingKind::Damaged]);
    let d = &rep.findings[0];
    assert_eq!(
        (d.offset, d.len),
        (Some(from as u64), Some((to - from) as u64))
    );
    assert_eq!(d.seqs, Some((s_from, s_to - 1)));
    // Open keeps every record after the zeroed bytes.
    let (s, rep) = open(dir.path());
    assert_eq!(rep.missing_seqs, vec![(s_from, s_to - 1)]);
    assert_eq!(rep.damaged.len(), 1);
    s.commit().unwrap();
    let r = s.reader().unwrap();
    assert_eq!(ids(&r, "*").len() as u64, 400 - (s_to - s_from));
    assert_eq!(r.by_id(&format!("e{}", s_to - 1)).unwrap().len(), 1);
    assert_eq!(r.by_id("e399").unwrap().len(), 1);
}

#[test]
fn a_zeroed_segment_head_keeps_the_records_after_it() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 400, None);
    let segs = segments(dir.path());
    let seg = &segs[1];
    let recs = records(seg);
    let (to, s_to) = recs[3];
    let mut b = fs::read(seg).unwrap();
    b[..to].fill(0);
    fs::write(seg, &b).unwrap();
    let (s, rep) = open(dir.path());
    let first = first_seq(seg);
    assert_eq!(
        rep.missing_seqs,
        vec![(first, s_to - 1)],
        "{:?}",
        rep.messages()
    );
    assert!(
        kinds(&rep.findings).contains(&FindingKind::Damaged),
        "{:?}",
        rep.findings
    );
    s.commit().unwrap();
    let r = s.reader().unwrap();
    assert_eq!(ids(&r, "*").len() as u64, 400 - (s_to - first));
    assert_eq!(&fs::read(seg).unwrap()[..8], b"AWSPOOL3");
}

#[test]
fn a_rewritten_record_with_a_valid_checksum_fails_its_chain_link() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 400, None);
    let segs = segments(dir.path());
    let seg = &segs[2];
    let recs = records(seg);
    let (off, seq) = recs[4];
    let mut b = fs::read(seg).unwrap();
    let len = u32::from_le_bytes(b[off + 4..off + 8].try_into().unwrap()) as usize;
    // Flip a byte of the body (after the 32-byte chain field), then fix the checksum.
    b[off + 29 + 32 + 20] ^= 0x01;
    let crc = crc32c::crc32c(&b[off + 12..off + 29 + len]);
    b[off + 8..off + 12].copy_from_slice(&crc.to_le_bytes());
    fs::write(seg, &b).unwrap();
    let rep = verify(dir.path(), None).unwrap();
    assert_eq!(kinds(&rep.findings), [FindingKind::Altered]);
    let a = &rep.findings[0];
    assert_eq!((a.seqs, a.offset), (Some((seq, seq)), Some(off as u64)));
    assert_eq!(a.segment.as_deref(), Some(seg.as_path()));
    let (_s, rep) = open(dir.path());
    assert_eq!(kinds(&rep.findings), [FindingKind::Altered]);
    assert!(!rep.is_clean());
}

#[test]
fn wiping_spool_and_index_is_reported_from_the_mark() {
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("hwm/store");
    let data = dir.path().join("data");
    build(&data, 300, Some(mark.clone()));
    for sub in ["spool", "index"] {
        for e in fs::read_dir(data.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                fs::remove_dir_all(p).unwrap();
            } else {
                fs::remove_file(p).unwrap();
            }
        }
    }
    let rep = verify(&data, Some(&mark)).unwrap();
    assert_eq!(kinds(&rep.findings), [FindingKind::Wiped]);
    assert_eq!(rep.findings[0].seqs, Some((1, 300)));
    let (s, rep) = Store::open(&data, small_cfg(Some(mark.clone()))).unwrap();
    assert!(!rep.is_clean());
    assert_eq!(kinds(&rep.findings), [FindingKind::Wiped]);
    assert!(
        rep.messages().iter().any(|m| m.contains("(wiped)")),
        "{:?}",
        rep.messages()
    );
    // The store keeps working, after the seqs it lost.
    assert_eq!(s.append_event(&open_event("w", 0, "/w")).unwrap(), 301);
    s.commit().unwrap();
    assert_eq!(ids(&s.reader().unwrap(), "*"), ["w"]);
}

#[test]
fn a_deleted_mark_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("hwm/store");
    let data = dir.path().join("data");
    build(&data, 50, Some(mark.clone()));
    fs::remove_file(&mark).unwrap();
    let (_s, rep) = Store::open(&data, small_cfg(Some(mark.clone()))).unwrap();
    assert_eq!(kinds(&rep.findings), [FindingKind::MarkMissing]);
    assert!(mark.exists(), "the mark is written again");
}

fn pack_lines(dir: &Path) -> Vec<String> {
    let (s, _) = open(dir);
    for i in 0..30 {
        let mut e = open_event(&format!("p{i}"), i, &format!("/p/{i}"));
        if i % 3 == 0 {
            e.session = Some(agent_model::SessionRef { id: "other".into() });
        }
        s.append_event(&e).unwrap();
    }
    s.append_alert(&alert("al", 40, "r", agent_model::Severity::High, "x"))
        .unwrap();
    s.commit().unwrap();
    let pack = s
        .reader()
        .unwrap()
        .export_evidence("00000000000000ab")
        .unwrap();
    assert_eq!(
        (pack.header.items, pack.header.events, pack.header.alerts),
        (21, 20, 1)
    );
    assert_eq!(pack.header.head_seq, 31);
    let mut out = Vec::new();
    pack.write_jsonl(&mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn check(lines: &[String]) -> agent_store::evidence::PackReport {
    verify_pack(&mut BufReader::new(lines.join("\n").as_bytes())).unwrap()
}

#[test]
fn an_evidence_pack_verifies_and_names_removed_and_altered_items() {
    let dir = tempfile::tempdir().unwrap();
    let lines = pack_lines(dir.path());
    let rep = check(&lines);
    assert!(rep.findings.is_empty(), "{:?}", rep.findings);
    assert_eq!(rep.items, 21);

    // A line removed (item seq 5: `p4`).
    let mut removed = lines.clone();
    let at = removed
        .iter()
        .position(|l| l.contains("\"seq\":5,"))
        .unwrap();
    removed.remove(at);
    let rep = check(&removed);
    let got: Vec<_> = rep.findings.iter().map(|f| (f.kind, f.seq)).collect();
    assert_eq!(
        got,
        [
            (PackFindingKind::Missing, Some(5)),
            (PackFindingKind::CountMismatch, None)
        ]
    );

    // A line altered: its JSON, then (consistently) its body too.
    let mut altered = lines.clone();
    altered[at] = altered[at].replace("/p/4", "/p/X");
    let rep = check(&altered);
    let got: Vec<_> = rep.findings.iter().map(|f| (f.kind, f.seq)).collect();
    assert_eq!(got, [(PackFindingKind::Altered, Some(5))]);
    let line: serde_json::Value = serde_json::from_str(&lines[at]).unwrap();
    let body = line["body"].as_str().unwrap();
    let hex_of = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let mut v = line.clone();
    v["body"] = body.replace(&hex_of("/p/4"), &hex_of("/p/X")).into();
    v["json"] = line["json"]
        .as_str()
        .unwrap()
        .replace("/p/4", "/p/X")
        .into();
    altered[at] = v.to_string();
    let rep = check(&altered);
    let got: Vec<_> = rep.findings.iter().map(|f| (f.kind, f.seq)).collect();
    assert_eq!(
        got,
        [(PackFindingKind::Altered, Some(5))],
        "{:?}",
        rep.findings
    );
}
