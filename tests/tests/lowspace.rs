//! Low space before disk full (issue 19): the daemon's data dir is a 20 MB tmpfs with
//! `[store] low_space = "8M"`. A filler file takes the free space under 8 MiB: one
//! `monitor.low_space` alert; under the 4 MiB reserve: one `monitor.space_reserve` alert, and
//! session events are refused (counted in `reserve_dropped`, not as store errors) while alerts
//! are still written; the
//! filler removed: `monitor.space_recovered`, and events are stored again.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tests::{Daemon, require_sensor};

struct Unmount(PathBuf, PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn rules_in(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["rule"].as_str().map(str::to_owned))
        .collect()
}

fn wait(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Free bytes of the filesystem of `p`.
fn free(p: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Grow `filler` until `p`'s filesystem has less than `left` bytes free.
fn fill_to(filler: &Path, p: &Path, left: u64) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(filler)
        .unwrap();
    let chunk = vec![0x5au8; 256 << 10];
    while free(p) >= left {
        f.write_all(&chunk).unwrap();
        f.flush().unwrap();
    }
}

#[test]
fn low_space_is_alerted_once_the_reserve_keeps_alerts_and_recovery_is_alerted() {
    require_sensor!();
    let dir = tempfile::Builder::new()
        .prefix("aw-lowspace-")
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
    let d = Daemon::start_in(
        dir,
        Some("[store]\nlow_space = \"8M\"\n"),
        &["--alerts-jsonl", alerts.to_str().unwrap()],
    )
    .unwrap();
    let filler = data.join("filler");
    let count = |rule: &str| rules_in(&alerts).iter().filter(|r| *r == rule).count();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(count("monitor.low_space"), 0, "alerted with space left");

    fill_to(&filler, &data, 7 << 20);
    wait("monitor.low_space", 10, || count("monitor.low_space") == 1);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(count("monitor.low_space"), 1, "once per crossing");
    assert_eq!(
        count("monitor.space_reserve"),
        0,
        "reserve engaged above it"
    );

    fill_to(&filler, &data, 3 << 20);
    wait("monitor.space_reserve", 10, || {
        count("monitor.space_reserve") == 1
    });
    // Session events are refused and counted; the alerts above are in the store.
    let (out, _) = d.run("t-low", &["/bin/true"]).unwrap();
    assert!(out.status.success());
    wait("refused events counted in reserve_dropped", 10, || {
        d.status()
            .ok()
            .is_some_and(|s| s["store"]["reserve_dropped"].as_u64().unwrap_or(0) > 0)
    });
    let st = d.status().unwrap();
    assert_eq!(
        st["store"]["errors"].as_u64(),
        Some(0),
        "reserve refusals are not write errors: {st}"
    );
    let o = Command::new(tests::bin())
        .args(["status", "--data-dir"])
        .arg(d.data_dir())
        .output()
        .unwrap();
    let plain = String::from_utf8_lossy(&o.stdout);
    assert!(
        plain.contains("refused under the low-space reserve"),
        "{plain}"
    );

    std::fs::remove_file(&filler).unwrap();
    wait("monitor.space_recovered", 10, || {
        count("monitor.space_recovered") == 1
    });
    let refused = d.status().unwrap()["store"]["reserve_dropped"]
        .as_u64()
        .unwrap();
    let (out, _) = d.run("t-low", &["/bin/true"]).unwrap();
    assert!(out.status.success());
    std::thread::sleep(Duration::from_secs(1));
    let st = d.status().unwrap();
    assert_eq!(
        st["store"]["reserve_dropped"].as_u64().unwrap(),
        refused,
        "events refused after the space came back"
    );
    assert_eq!(st["store"]["errors"].as_u64(), Some(0), "{st}");
}
