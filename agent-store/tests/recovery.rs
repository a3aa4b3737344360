//! Recovery: torn tails, corrupted records, damaged or deleted indexes, retention, permissions,
//! a full disk, and read-only readers on a copied data dir.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use agent_store::{Reader, Store, StoreConfig};
use common::*;

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir.join("spool"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "spool"))
        .collect();
    v.sort();
    v
}

/// Offsets of the records of a segment file (not counting a format 3 segment's anchor).
fn record_offsets(path: &Path) -> Vec<usize> {
    let b = fs::read(path).unwrap();
    let mut pos = 8;
    let mut out = Vec::new();
    while pos + 29 <= b.len() {
        if b[pos + 28] != 0x45 {
            out.push(pos);
        }
        let len = u32::from_le_bytes(b[pos + 4..pos + 8].try_into().unwrap()) as usize;
        pos += 29 + len;
    }
    out
}

fn fill(store: &Store, prefix: &str, n: usize) {
    for i in 0..n {
        store
            .append_event(&open_event(
                &format!("{prefix}{i}"),
                i as i64,
                &format!("/data/{prefix}/{i}"),
            ))
            .unwrap();
    }
}

#[test]
fn torn_tail_is_cut_and_writing_resumes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (s, rep) = open(dir.path());
        assert!(rep.is_clean());
        fill(&s, "t", 50);
        s.close().unwrap();
    }
    let seg = segments(dir.path()).pop().unwrap();
    let offs = record_offsets(&seg);
    let full = fs::read(&seg).unwrap();
    // Half of a copy of the last record, as a crash mid-write leaves it.
    let last = &full[*offs.last().unwrap()..];
    let mut f = fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &last[..last.len() / 2]).unwrap();
    drop(f);
    let (s, rep) = open(dir.path());
    assert_eq!(rep.damaged.len(), 1, "{rep:?}");
    assert!(rep.damaged[0].torn_tail);
    assert!(rep.is_clean(), "a torn tail is the normal trace of a crash");
    assert!(rep.messages()[0].contains("torn spool tail"));
    assert_eq!(fs::metadata(&seg).unwrap().len() as usize, full.len());
    assert_eq!(rep.last_seq, 50);
    fill(&s, "u", 10);
    s.commit().unwrap();
    let r = s.reader().unwrap();
    assert_eq!(ids(&r, "path:/data/t/*").len(), 50);
    assert_eq!(ids(&r, "path:/data/u/*").len(), 10);
    assert_eq!(s.stats().last_seq, 60);
}

#[test]
fn corrupted_middle_record_is_quarantined_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (s, _) = open(dir.path());
        fill(&s, "c", 40);
        s.close().unwrap();
    }
    let seg = segments(dir.path()).pop().unwrap();
    let offs = record_offsets(&seg);
    let mut b = fs::read(&seg).unwrap();
    // Flip a payload byte of record 10 (seq 10).
    let at = offs[9] + 29 + 5;
    b[at] ^= 0x55;
    let original_region = b[offs[9]..offs[10]].to_vec();
    fs::write(&seg, &b).unwrap();
    let (s, rep) = open(dir.path());
    assert!(!rep.is_clean());
    assert_eq!(rep.damaged.len(), 1, "{rep:?}");
    let d = &rep.damaged[0];
    assert!(!d.torn_tail);
    assert_eq!(d.offset as usize, offs[9]);
    assert_eq!(
        fs::read(&d.quarantine).unwrap(),
        original_region,
        "quarantine holds the bytes"
    );
    assert_eq!(rep.missing_seqs, vec![(10, 10)]);
    assert!(rep.messages().iter().any(|m| m.contains("quarantined")));
    // File size unchanged: the region is now padding, later offsets still valid.
    assert_eq!(fs::metadata(&seg).unwrap().len() as usize, b.len());
    s.commit().unwrap();
    let r = s.reader().unwrap();
    let got = sids(&r, "path:/data/c/*");
    assert_eq!(got.len(), 39);
    assert!(!got.contains(&"c9".to_string()));
    // A second open finds nothing new.
    drop(r);
    s.close().unwrap();
    let (_s, rep) = open(dir.path());
    assert!(rep.damaged.is_empty(), "{rep:?}");
}

#[test]
fn deleted_index_segment_files_rebuild_from_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (s, _) = open(dir.path());
        fill(&s, "d", 300);
        s.append_alert(&alert("al1", 400, "r", agent_model::Severity::High, "x"))
            .unwrap();
        s.close().unwrap();
    }
    let mut removed = 0;
    for e in fs::read_dir(dir.path().join("index")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "idx" || x == "term") {
            fs::remove_file(p).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 0);
    let (s, rep) = open(dir.path());
    assert!(rep.index_rebuilt.is_some(), "{rep:?}");
    assert!(!rep.is_clean());
    s.commit().unwrap();
    let r = s.reader().unwrap();
    assert_eq!(ids(&r, "path:/data/d/*").len(), 300);
    assert_eq!(ids(&r, "kind:alert").len(), 1);
    assert_eq!(r.by_id("d7").unwrap().len(), 1);
}

#[test]
fn deleted_index_dir_rebuilds_and_corrupt_meta_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (s, _) = open(dir.path());
        fill(&s, "m", 100);
        s.close().unwrap();
    }
    fs::remove_dir_all(dir.path().join("index")).unwrap();
    {
        let (s, rep) = open(dir.path());
        assert_eq!(rep.index_rebuilt.as_deref(), Some("the index is missing"));
        s.commit().unwrap();
        assert_eq!(ids(&s.reader().unwrap(), "*").len(), 100);
        s.close().unwrap();
    }
    fs::write(dir.path().join("index/meta.json"), b"{not json").unwrap();
    let (s, rep) = open(dir.path());
    assert!(rep.index_rebuilt.is_some());
    s.commit().unwrap();
    assert_eq!(ids(&s.reader().unwrap(), "*").len(), 100);
}

#[test]
fn reopen_replays_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..4 {
        let (s, _) = open(dir.path());
        fill(&s, &format!("r{round}-"), 500);
        s.close().unwrap();
    }
    let r = Reader::open(dir.path()).unwrap();
    assert_eq!(r.num_docs(), 2000);
    assert_eq!(ids(&r, "*").len(), 2000);
}

#[test]
fn second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, _) = open(dir.path());
    let e = Store::open(dir.path(), cfg()).err().expect("second writer");
    assert!(e.to_string().contains("in use by another writer"), "{e}");
}

#[test]
fn files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
    let (s, rep) = open(&data);
    assert!(rep.permissions_fixed.contains(&data));
    fill(&s, "p", 10);
    s.commit().unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("spool")), 0o700);
    assert_eq!(mode(&data.join("index")), 0o700);
    for seg in segments(&data) {
        assert_eq!(mode(&seg), 0o600, "{}", seg.display());
    }
    for e in fs::read_dir(data.join("index")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
}

#[test]
fn retention_by_size_deletes_whole_old_segments_and_their_docs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        segment_bytes: 64 << 10,
        retention_bytes: Some(256 << 10),
        ..cfg()
    };
    let (s, _) = Store::open(dir.path(), cfg).unwrap();
    fill(&s, "k", 5000);
    s.commit().unwrap();
    let before = segments(dir.path()).len();
    s.enforce_retention().unwrap();
    let after = segments(dir.path());
    assert!(after.len() < before, "{before} -> {}", after.len());
    let st = s.stats();
    assert!(st.spool_bytes <= (256 << 10) + (64 << 10), "{st:?}");
    let r = s.reader().unwrap();
    let got = ids(&r, "*");
    assert_eq!(got.len() as u64, st.events, "index and spool agree");
    assert_eq!(got[0], "k4999", "the newest stay");
    assert!(r.by_id("k0").unwrap().is_empty(), "the oldest are gone");
}

#[test]
fn retention_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        segment_bytes: 32 << 10,
        retention_age: Some(std::time::Duration::from_secs(3600)),
        ..cfg()
    };
    let (s, _) = Store::open(dir.path(), cfg).unwrap();
    // Old events (2026-11-21T10:00Z is long past by now or far from the present clock).
    fill(&s, "old", 500);
    let now = agent_model::Timestamp::now().0;
    for i in 0..200 {
        let mut e = open_event(&format!("new{i}"), 0, "/data/new");
        e.time = agent_model::Timestamp(now);
        s.append_event(&e).unwrap();
    }
    s.commit().unwrap();
    s.enforce_retention().unwrap();
    let r = s.reader().unwrap();
    assert_eq!(ids(&r, "path:/data/new").len(), 200);
    if now - T0 > 3_600_000_000_000 + 600_000_000_000 {
        assert!(ids(&r, "path:/data/old/*").len() < 500);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

fn listing(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(listing(&p));
        } else {
            let len = fs::metadata(&p).unwrap().len();
            out.push((p, len));
        }
    }
    out.sort();
    out
}

#[test]
fn reader_works_on_a_copied_data_dir_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let copy = dir.path().join("copy");
    let (s, _) = open(&live);
    fill(&s, "cp", 100);
    s.commit().unwrap();
    copy_dir(&live, &copy);
    let before = listing(&copy);
    let r = Reader::open(&copy).unwrap();
    assert_eq!(ids(&r, "path:/data/cp/*").len(), 100);
    assert_eq!(r.sessions(None).unwrap().len(), 1);
    r.reload().unwrap();
    assert_eq!(listing(&copy), before, "a reader must not write");
    // The live store keeps going while a reader is open.
    fill(&s, "cq", 10);
    s.commit().unwrap();
    let r2 = Reader::open(&live).unwrap();
    assert_eq!(ids(&r2, "path:/data/cq/*").len(), 10);
}

#[test]
fn disk_full_is_a_clear_error_and_loses_nothing_acknowledged() {
    if !is_root() {
        println!("skipped: disk-full test needs root to mount a tmpfs");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
        .arg(&mnt)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        println!("skipped: could not mount a tmpfs (not allowed in this container?)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let ballast = mnt.join("ballast");
    fs::write(&ballast, vec![0u8; 1 << 20]).unwrap();
    let data = mnt.join("data");
    let cfg = StoreConfig {
        index_memory_bytes: 15 << 20,
        index_threads: 1,
        commit_every: std::time::Duration::from_secs(3600),
        commit_every_events: u64::MAX,
        ..cfg()
    };
    let mut acked = 0usize;
    let err;
    {
        let (s, _) = Store::open(&data, cfg.clone()).unwrap();
        let big = "x".repeat(2000);
        let mut i = 0usize;
        err = loop {
            let e = open_event(&format!("f{i}"), 0, &format!("/data/{big}/{i}"));
            if let Err(e) = s.append_event(&e) {
                break e;
            }
            i += 1;
            if i.is_multiple_of(100) {
                match s.sync() {
                    Ok(_) => acked = i,
                    Err(e) => break e,
                }
            }
            assert!(i < 1_000_000, "the disk never filled");
        };
        drop(s);
    }
    let chain = format!("{err} / {:?}", std::error::Error::source(&err));
    assert!(
        chain.contains("No space left") || chain.contains("disk may be full"),
        "{chain}"
    );
    assert!(acked > 0);
    fs::remove_file(&ballast).unwrap();
    let (s, rep) = Store::open(&data, cfg).unwrap();
    s.commit().unwrap();
    let r = s.reader().unwrap();
    let got: std::collections::HashSet<String> = ids(&r, "*").into_iter().collect();
    for i in 0..acked {
        assert!(
            got.contains(&format!("f{i}")),
            "acknowledged f{i} lost; {rep:?}"
        );
    }
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A format 1 spool record: the event's JSON, as versions before the binary encoding wrote it.
fn v1_record(seq: u64, e: &agent_model::Event) -> Vec<u8> {
    let json = e.to_json();
    let mut body = Vec::new();
    body.extend_from_slice(&seq.to_le_bytes());
    body.extend_from_slice(&e.time.0.to_le_bytes());
    body.push(1);
    body.extend_from_slice(json.as_bytes());
    let mut r = Vec::new();
    r.extend_from_slice(&0x5053_5741u32.to_le_bytes());
    r.extend_from_slice(&(json.len() as u32).to_le_bytes());
    r.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    r.extend_from_slice(&body);
    r
}

#[test]
fn format_1_spool_is_read_and_new_records_go_to_a_format_3_segment() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    fs::create_dir_all(&spool).unwrap();
    let old: Vec<_> = (0..3)
        .map(|i| open_event(&format!("v1-{i}"), i, &format!("/old/{i}")))
        .collect();
    let mut seg = b"AWSPOOL1".to_vec();
    for (i, e) in old.iter().enumerate() {
        seg.extend_from_slice(&v1_record(i as u64 + 1, e));
    }
    fs::write(spool.join("00000000000000000001.spool"), &seg).unwrap();
    {
        // (No index was written here, so it is built from the spool.)
        let (s, rep) = open(dir.path());
        assert!(
            rep.damaged.is_empty() && rep.missing_seqs.is_empty(),
            "{:?}",
            rep.messages()
        );
        assert_eq!((rep.last_seq, rep.replayed), (3, 3));
        s.append_event(&open_event("v2-0", 10, "/new/0")).unwrap();
        s.close().unwrap();
    }
    // The old segment is left as it was; new records start a (chained) format 3 segment.
    let segs = segments(dir.path());
    assert_eq!(segs.len(), 2, "{segs:?}");
    assert_eq!(fs::read(&segs[0]).unwrap(), seg);
    assert!(segs[1].ends_with("00000000000000000004.spool"));
    assert_eq!(&fs::read(&segs[1]).unwrap()[..8], b"AWSPOOL3");
    let (s, rep) = open(dir.path());
    assert!(rep.is_clean() && rep.replayed == 0, "{:?}", rep);
    let r = s.reader().unwrap();
    assert_eq!(ids(&r, "path:/old/*").len(), 3);
    assert_eq!(ids(&r, "path:/new/0"), ["v2-0"]);
    let hits = r
        .search(&agent_store::SearchRequest {
            query: "path:/old/1".into(),
            limit: 10,
            ..Default::default()
        })
        .unwrap()
        .hits;
    assert_eq!(
        hits[0].json,
        old[1].to_json(),
        "format 1 JSON is served as stored"
    );
}

#[test]
fn spool_of_a_newer_format_is_refused_not_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    fs::create_dir_all(&spool).unwrap();
    let seg = spool.join("00000000000000000001.spool");
    fs::write(&seg, b"AWSPOOL4 records of a later version").unwrap();
    let err = Store::open(dir.path(), cfg()).err().expect("refused");
    let msg = err.to_string();
    assert!(
        msg.contains(&seg.display().to_string()) && msg.contains("newer"),
        "{msg}"
    );
    assert_eq!(
        fs::read(&seg).unwrap(),
        b"AWSPOOL4 records of a later version"
    );
    assert!(!dir.path().join("quarantine").exists());
}
