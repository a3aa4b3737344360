//! Crash test: a child process ingests steadily and prints the ids it has seen acknowledged
//! (fsynced); the parent `kill -9`s it at random points, many times, then checks that every
//! acknowledged event is present exactly once after a restart.
//!
//! The child is this test binary re-executed with `AW_CRASH_DIR` set.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent_store::{Reader, SearchRequest, Store, StoreConfig};
use common::*;

fn crash_cfg() -> StoreConfig {
    StoreConfig {
        commit_every_events: 3000,
        commit_every: Duration::from_millis(30),
        sync_every_events: 500,
        sync_every: Duration::from_millis(5),
        segment_bytes: 256 << 10,
        index_memory_bytes: 15 << 20,
        index_threads: 1,
        ..cfg()
    }
}

/// The child: runs only when re-executed by the parent.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("AW_CRASH_DIR") else {
        return;
    };
    let round = std::env::var("AW_CRASH_ROUND").unwrap_or_default();
    let (store, _) = Store::open(std::path::Path::new(&dir), crash_cfg()).unwrap();
    let mut seqs: Vec<u64> = Vec::new();
    let mut acked = 0usize;
    for i in 0.. {
        let e = open_event(
            &format!("{round}-{i}"),
            i as i64,
            &format!("/data/{round}/{i}"),
        );
        seqs.push(store.append_event(&e).unwrap());
        let durable = store.durable_seq();
        // Everything up to the durable seq is acknowledged.
        let n = seqs.partition_point(|s| *s <= durable);
        if n > acked {
            acked = n;
            println!("ack {round} {}", n - 1);
        }
        if i % 16 == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

#[test]
fn kill_9_during_ingest_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let rounds: usize = std::env::var("AW_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut acked: HashMap<usize, usize> = HashMap::new();
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("AW_CRASH_DIR", dir.path())
            .env("AW_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut it = line.split_whitespace();
                if it.next() == Some("ack") {
                    let _round = it.next();
                    last = it.next().and_then(|n| n.parse::<usize>().ok());
                }
            }
            last
        });
        // Kill somewhere between 150 ms and 1.2 s in (after start-up and replay).
        let wait = Duration::from_millis(150 + next() % 1050);
        let started = Instant::now();
        while started.elapsed() < wait {
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if let Some(n) = reader.join().unwrap() {
            acked.insert(round, n);
        }
    }
    assert!(
        acked.len() >= rounds / 2,
        "children acknowledged too little: {acked:?}"
    );
    // Restart: replay the spool tail, then check.
    let (store, report) = Store::open(dir.path(), crash_cfg()).unwrap();
    assert!(report.missing_seqs.is_empty(), "{report:?}");
    store.commit().unwrap();
    let st = store.stats();
    assert_eq!(st.indexed_seq, st.last_seq);
    let r = store.reader().unwrap();
    let resp = r
        .search(&SearchRequest {
            query: "*".into(),
            limit: 10_000_000,
            ..SearchRequest::default()
        })
        .unwrap();
    assert_eq!(
        resp.total, st.events,
        "index and spool agree: nothing indexed twice"
    );
    let mut seen: HashMap<String, u32> = HashMap::new();
    for h in &resp.hits {
        *seen.entry(h.hit.item.id().to_string()).or_default() += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(dups.is_empty(), "indexed twice: {dups:?}");
    let mut total_acked = 0;
    for (round, last) in &acked {
        for i in 0..=*last {
            let id = format!("{round}-{i}");
            assert_eq!(seen.get(&id), Some(&1), "acknowledged `{id}` lost");
            total_acked += 1;
        }
        // And by id, through the index.
        let id = format!("{round}-{last}");
        assert_eq!(r.by_id(&id).unwrap().len(), 1, "`{id}` by id");
    }
    println!(
        "crash test: {rounds} kills, {total_acked} acknowledged events all present once, {} stored",
        st.events
    );
    drop(r);
    store.close().unwrap();
    let r = Reader::open(dir.path()).unwrap();
    assert_eq!(r.num_docs(), st.events);
}
