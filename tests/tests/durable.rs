//! Nothing the kernel produced is lost or stored twice across a `kill -9` of the daemon (issue
//! 19), root required. A session creates thousands of files, each named by a unique marker,
//! while the daemon is killed with SIGKILL mid-stream: records are then read and not yet
//! durable, fsynced and not yet released to the kernel, and still in the ring. A new daemon
//! adopts the pinned ring; after a clean stop the spool holds the `file.open` event of every
//! marker exactly once, and the events file holds none the spool lacks, none twice.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent_model::Kind;
use tests::{Daemon, bin, require_sensor};

/// Markers created by the workload.
const FILES: usize = 20_000;

/// `m-<n>` of a path `.../m-<n>` in the work dir, if it is one.
fn marker(path: &str, work: &Path) -> Option<usize> {
    path.strip_prefix(work.to_str()?)?
        .strip_prefix("/m-")?
        .parse()
        .ok()
}

/// Each marker's `file.open` events in the spool of `data`.
fn stored_markers(data: &Path, work: &Path) -> HashMap<usize, usize> {
    let mut tail = agent_store::SpoolTail::new(data, 0);
    let mut n: HashMap<usize, usize> = HashMap::new();
    loop {
        let items = tail.read(u64::MAX, 4096).expect("reading the spool");
        if items.is_empty() {
            break;
        }
        for it in items {
            if let agent_api::Item::Event(e) = it.item
                && e.kind() == Kind::FileOpen
                && let Some(m) = e
                    .file
                    .as_ref()
                    .and_then(|f| marker(&f.path.to_str_lossy(), work))
            {
                *n.entry(m).or_default() += 1;
            }
        }
    }
    n
}

#[test]
fn a_sigkill_mid_stream_loses_and_duplicates_no_event() {
    require_sensor!();
    let mut d = Daemon::start().unwrap();
    let work = std::fs::canonicalize(d.dir.path()).unwrap().join("w");
    std::fs::create_dir(&work).unwrap();
    let script = format!(
        "i=0; while [ $i -lt {FILES} ]; do i=$((i+1)); : > {w}/m-$i; done",
        w = work.display()
    );
    let mut child = Command::new(bin())
        .args(["run", "--agent", "t-durable", "--data-dir"])
        .arg(d.data_dir())
        .args(["--", "/bin/sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill while the stream flows: some markers are in the events file, the workload goes on.
    d.wait_for("the first markers", |evs| {
        evs.iter()
            .filter(|e| {
                e.kind() == Kind::FileOpen
                    && e.file
                        .as_ref()
                        .is_some_and(|f| marker(&f.path.to_str_lossy(), &work).is_some())
            })
            .count()
            >= 500
    })
    .unwrap();
    d.kill9();
    let written_at_kill = d.events().len();
    let deadline = Instant::now() + Duration::from_secs(120);
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the workload did not finish");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(st.success(), "workload failed: {st}");

    d.restart(&[]).unwrap();
    let n_markers = |evs: &[agent_model::Event]| {
        evs.iter()
            .filter(|e| {
                e.kind() == Kind::FileOpen
                    && e.file
                        .as_ref()
                        .is_some_and(|f| marker(&f.path.to_str_lossy(), &work) == Some(FILES))
            })
            .count()
    };
    d.wait_for("the last marker", |evs| n_markers(evs) > 0)
        .unwrap();
    d.stop();

    let stored = stored_markers(&d.data_dir().join("store"), &work);
    let missing: Vec<usize> = (1..=FILES).filter(|m| !stored.contains_key(m)).collect();
    let twice: Vec<(&usize, &usize)> = stored.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        missing.is_empty(),
        "{} of {FILES} markers missing from the store after the SIGKILL, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        twice.is_empty(),
        "{} markers stored more than once, e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(10)]
    );

    // The events file: written from durable records only, so nothing the store lacks and
    // nothing twice, across both daemons. It may lack the lines of records that were durable
    // but not yet written when the daemon died: the next daemon drops their re-read records
    // as already stored (README "Self-protection": the files are not fed from the spool yet).
    let mut in_file: HashMap<usize, usize> = HashMap::new();
    for e in d.events() {
        if e.kind() == Kind::FileOpen
            && let Some(m) = e
                .file
                .as_ref()
                .and_then(|f| marker(&f.path.to_str_lossy(), &work))
        {
            *in_file.entry(m).or_default() += 1;
        }
    }
    let twice: Vec<_> = in_file.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        twice.is_empty(),
        "markers twice in the events file: {:?}",
        &twice[..twice.len().min(10)]
    );
    let not_stored: Vec<_> = in_file.keys().filter(|m| !stored.contains_key(m)).collect();
    assert!(
        not_stored.is_empty(),
        "the events file holds markers the store lacks: {:?}",
        &not_stored[..not_stored.len().min(10)]
    );
    eprintln!(
        "events file: {} of {FILES} markers ({written_at_kill} lines at the kill)",
        in_file.len()
    );
}
