//! Disk full (issue 19): the daemon's data dir is a 20 MB tmpfs that the test fills with a filler
//! file while a session floods file opens. The daemon must keep running and answering `status`,
//! say the store is out of space, raise one critical `monitor.disk_full` (to `--alerts-jsonl`
//! outside the full fs and to live subscribers), keep what was durable intact (`verify`), and,
//! once the filler is deleted, store new events again by itself and record how many it dropped.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::{Daemon, bin, require_sensor};

/// Unmounts the tmpfs and removes the test dir, even when the test fails.
struct Unmount(PathBuf, PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn wait<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Fill the filesystem of `path` until a write fails with ENOSPC.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5au8; 64 << 10];
    loop {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return,
            Err(e) => panic!("filler write: {e}"),
        }
    }
}

#[test]
fn a_full_data_dir_is_alerted_counted_and_recovered_from() {
    require_sensor!();
    let dir = tempfile::Builder::new()
        .prefix("aw-diskfull-")
        .tempdir()
        .unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=20m", "tmpfs"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "mount a 20 MB tmpfs on {}",
        data.display()
    );
    let _guard = Unmount(data.clone(), dir.path().to_path_buf());
    let alerts = dir.path().join("alerts.jsonl");
    let base = dir.path().to_path_buf();
    let mut d = Daemon::start_in(
        dir,
        // The low-space reserve (tests/tests/lowspace.rs) would refuse events before the disk
        // is full; this test is about the disk-full path itself.
        Some("[store]\nbacklog = \"2M\"\nlow_space = \"off\"\n"),
        &["--alerts-jsonl", alerts.to_str().unwrap()],
    )
    .unwrap();
    let live_path = base.join("live.jsonl");
    let mut live = Command::new(bin())
        .args(["events", "--json", "--data-dir"])
        .arg(d.data_dir())
        .stdout(Stdio::from(std::fs::File::create(&live_path).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let wl = tests::workload().to_str().unwrap().to_owned();
    let target = base.join("flood.txt");
    std::fs::write(&target, "x").unwrap();
    let t = target.to_str().unwrap().to_owned();

    // Durable before the disk fills.
    d.run("t-disk", &[&wl, "flood", &t, "200"]).unwrap();
    let before = wait("the first records durable and indexed", 20, || {
        let s = d.status().ok()?;
        let st = &s["store"];
        (st["durable_seq"].as_u64()? > 0 && st["lag"].as_u64()? == 0)
            .then(|| st["durable_seq"].as_u64().unwrap())
    });

    // Fill the tmpfs, then flood until the store refuses records.
    let filler = data.join("filler");
    fill(&filler);
    let mut rounds = 0;
    let status = loop {
        d.run("t-disk", &[&wl, "flood", &t, "20000"]).unwrap();
        rounds += 1;
        std::thread::sleep(Duration::from_millis(500));
        let s = d
            .status()
            .expect("the daemon answers `status` with a full disk");
        if s["store"]["dropped"].as_u64().unwrap_or(0) > 0 {
            break s;
        }
        assert!(rounds < 40, "the store never dropped: {s:#}");
    };
    let st = &status["store"];
    eprintln!("full after {rounds} floods: {st}");
    assert_eq!(st["full"], true, "{st:#}");
    let why = st["space_error"].as_str().unwrap_or_default();
    assert!(why.contains("No space left"), "status names ENOSPC: {st:#}");

    // Plain `status` says it too.
    let plain = Command::new(bin())
        .args(["status", "--data-dir"])
        .arg(d.data_dir())
        .output()
        .unwrap();
    let plain = String::from_utf8_lossy(&plain.stdout);
    assert!(plain.contains("OUT OF SPACE"), "{plain}");
    assert!(plain.contains("records not stored"), "{plain}");

    // One critical alert, outside the full fs and on the live stream.
    let full_alerts = || {
        lines(&alerts)
            .into_iter()
            .filter(|a| a["rule"] == "monitor.disk_full")
            .collect::<Vec<_>>()
    };
    let a = wait("a monitor.disk_full alert in --alerts-jsonl", 10, || {
        full_alerts().into_iter().next()
    });
    assert_eq!(a["priority"], "Critical", "{a:#}");
    wait("the alert on the live stream", 10, || {
        std::fs::read_to_string(&live_path)
            .ok()?
            .contains("monitor.disk_full")
            .then_some(())
    });
    // Still full a while later: not raised again, and the daemon is alive.
    d.run("t-disk", &[&wl, "flood", &t, "5000"]).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(full_alerts().len(), 1, "raised once per outage");
    assert!(d.status().is_ok());

    // Space returns: the daemon stores again by itself and records the gap.
    std::fs::remove_file(&filler).unwrap();
    let resumed = wait("monitor.disk_resumed", 20, || {
        lines(&alerts)
            .into_iter()
            .find(|a| a["rule"] == "monitor.disk_resumed")
    });
    let out = resumed["output"].as_str().unwrap_or_default().to_owned();
    assert!(out.contains("records were not stored"), "{resumed:#}");
    let s = d.status().unwrap();
    let dropped = s["store"]["dropped"].as_u64().unwrap();
    assert!(dropped > 0);
    assert!(
        out.contains(&format!("{dropped} records")),
        "gap count {dropped}: {out}"
    );
    assert_eq!(s["store"]["full"], false, "{s:#}");
    eprintln!("resumed: {out}");

    // New events after recovery are durable and searchable again (the indexer resumed).
    let (_, sid) = d.run("t-disk", &[&wl, "flood", &t, "50"]).unwrap();
    wait("post-recovery events indexed", 30, || {
        let s = d.status().ok()?;
        let st = &s["store"];
        (st["durable_seq"].as_u64()? > before
            && st["lag"].as_u64()? == 0
            && st["index_error"].is_null())
        .then_some(())
    });
    let q = Command::new(bin())
        .args(["search", "--json", "--data-dir"])
        .arg(d.data_dir())
        .arg(format!("session.id:{sid}"))
        .output()
        .unwrap();
    let hits = String::from_utf8_lossy(&q.stdout).lines().count();
    assert!(
        hits > 0,
        "post-recovery session searchable: {}",
        String::from_utf8_lossy(&q.stderr)
    );

    // Nothing durable was damaged: the store verifies intact with the daemon stopped.
    let mark = d.mark_path();
    d.stop();
    let _ = live.kill();
    let _ = live.wait();
    let v = Command::new(bin())
        .args(["verify", "--data-dir"])
        .arg(&data)
        .arg("--mark")
        .arg(&mark)
        .output()
        .unwrap();
    assert_eq!(
        v.status.code(),
        Some(0),
        "verify: {}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    drop(d);
}
