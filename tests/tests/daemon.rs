//! Daemon end-to-end tests over the live pipeline: policy alerts from real sensor events, policy
//! hot reload, and the durable store searched online and offline. Root required.

use std::process::Command;
use std::time::{Duration, Instant};

use agent_model::Kind;
use tests::{Daemon, bin, require_sensor};

/// A "remote" host in a network namespace this test creates: 198.51.100.2 behind a veth pair.
/// Nothing leaves the machine; the address is outside every internal range of the policy.
struct RemoteHost {
    ns: String,
    veth: String,
}

impl RemoteHost {
    fn create(tag: &str) -> Option<RemoteHost> {
        let ns = format!("aw-{tag}");
        let veth = format!("awv{tag}");
        let peer = format!("awp{tag}");
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        let _ = ip(&["netns", "del", &ns]);
        let _ = ip(&["link", "del", &veth]);
        let ok = ip(&["netns", "add", &ns])
            && ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer])
            && ip(&["link", "set", &peer, "netns", &ns])
            && ip(&["addr", "add", "198.51.100.1/30", "dev", &veth])
            && ip(&["link", "set", &veth, "up"])
            && ip(&[
                "netns",
                "exec",
                &ns,
                "ip",
                "addr",
                "add",
                "198.51.100.2/30",
                "dev",
                &peer,
            ])
            && ip(&["netns", "exec", &ns, "ip", "link", "set", &peer, "up"]);
        ok.then_some(RemoteHost { ns, veth })
    }
}

impl Drop for RemoteHost {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn alerts_of(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn wait_alert(path: &std::path::Path, rule: &str) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = alerts_of(path);
        if a.iter().any(|a| a["rule"] == rule) || Instant::now() > deadline {
            return a;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ssh_key_read_then_egress_raises_the_expected_alerts() {
    require_sensor!();
    let Some(_remote) = RemoteHost::create("t1") else {
        panic!("cannot create a network namespace (iproute2 `ip` needed)");
    };
    let work = tempfile::tempdir().unwrap();
    let home = work.path().canonicalize().unwrap();
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(
        home.join(".ssh/id_ed25519"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\nFAKE\n",
    )
    .unwrap();
    let alerts = work.path().join("alerts.jsonl");
    let d = Daemon::start_with(None, &["--alerts-jsonl", alerts.to_str().unwrap()]).unwrap();
    let script = format!(
        "cat {k} > /dev/null; {w} connect 198.51.100.2:8443",
        k = home.join(".ssh/id_ed25519").display(),
        w = tests::workload().display()
    );
    let (_, sid) = d.run("claude", &["/bin/sh", "-c", &script]).unwrap();
    let got = wait_alert(&alerts, "exfil.secret_read_then_egress");
    let rules: Vec<&str> = got.iter().filter_map(|a| a["rule"].as_str()).collect();
    for want in ["cred.ssh_private_key", "exfil.secret_read_then_egress"] {
        assert!(rules.contains(&want), "{want} missing; got {rules:?}");
    }
    let seq = got
        .iter()
        .find(|a| a["rule"] == "exfil.secret_read_then_egress")
        .unwrap();
    assert_eq!(seq["session"], sid.as_str());
    assert_eq!(seq["agent"], "claude");
    assert!(
        seq["event_ids"].as_array().unwrap().len() >= 2,
        "the sequence names both events: {seq}"
    );
    assert!(
        seq["output"].as_str().unwrap().contains("198.51.100.2"),
        "{seq}"
    );
    // Benign activity in the same daemon raises nothing above low.
    let (_, benign) = d
        .run(
            "claude",
            &[
                "/bin/sh",
                "-c",
                "ls / > /dev/null; cat /etc/hostname > /dev/null",
            ],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let noisy: Vec<_> = alerts_of(&alerts)
        .into_iter()
        .filter(|a| {
            a["session"] == benign.as_str()
                && !matches!(
                    a["priority"].as_str(),
                    Some("Debug" | "Informational" | "Notice")
                )
        })
        .collect();
    assert!(noisy.is_empty(), "benign session raised {noisy:?}");
}

#[test]
fn bpf_loads_and_module_load_attempts_raise_kernel_tamper_alerts() {
    require_sensor!();
    let work = tempfile::tempdir().unwrap();
    let bogus = work.path().canonicalize().unwrap().join("rootkit.ko");
    std::fs::write(&bogus, b"not a module").unwrap();
    let alerts = work.path().join("alerts.jsonl");
    let d = Daemon::start_with(None, &["--alerts-jsonl", alerts.to_str().unwrap()]).unwrap();
    let w = tests::workload();
    let script = format!(
        "{w} bpf-load aw_hide && {w} finit-module {b}",
        w = w.display(),
        b = bogus.display()
    );
    let (_, sid) = d.run("claude", &["/bin/sh", "-c", &script]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let tamper = loop {
        let got: Vec<_> = alerts_of(&alerts)
            .into_iter()
            .filter(|a| a["rule"] == "evasion.kernel_tamper" && a["session"] == sid.as_str())
            .collect();
        if got.len() >= 2 || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // One alert for the BPF program load, one for the refused module load.
    assert_eq!(tamper.len(), 2, "{tamper:?}");
    for a in &tamper {
        assert_eq!(a["priority"], "Critical", "{a}");
        assert!(a["output"].as_str().unwrap().contains("workload"), "{a}");
    }
}

#[test]
fn policy_reload_swaps_valid_sets_and_rejects_broken_ones() {
    require_sensor!();
    let work = tempfile::tempdir().unwrap();
    let rules_dir = work.path().join("rules");
    std::fs::create_dir_all(&rules_dir).unwrap();
    for (name, text) in rules::DEFAULT_POLICY {
        std::fs::write(rules_dir.join(name), text).unwrap();
    }
    let alerts = work.path().join("alerts.jsonl");
    let d = Daemon::start_with(
        None,
        &[
            "--rules",
            rules_dir.to_str().unwrap(),
            "--alerts-jsonl",
            alerts.to_str().unwrap(),
        ],
    )
    .unwrap();
    let st = d.status().unwrap();
    let gen1 = st["policy"]["generation"].as_u64().unwrap();
    let hash1 = st["policy"]["hash"].as_str().unwrap().to_owned();
    // A broken file: the running policy stays, an alert says why.
    std::fs::write(
        rules_dir.join("zz-broken.toml"),
        "[[rule]]\nid = \"x\"\nseverity = \"bogus\"\n",
    )
    .unwrap();
    let got = wait_alert(&alerts, "policy.reload_rejected");
    let rej = got
        .iter()
        .find(|a| a["rule"] == "policy.reload_rejected")
        .expect("reload_rejected alert");
    assert!(
        rej["output"].as_str().unwrap().contains("zz-broken.toml"),
        "{rej}"
    );
    let st = d.status().unwrap();
    assert_eq!(st["policy"]["generation"].as_u64().unwrap(), gen1);
    assert_eq!(st["policy"]["hash"].as_str().unwrap(), hash1);
    assert!(
        st["policy"]["last_error"]
            .as_str()
            .unwrap()
            .contains("zz-broken.toml")
    );
    // Fixing it (here: removing it) and sending SIGHUP swaps a new generation in.
    std::fs::remove_file(rules_dir.join("zz-broken.toml")).unwrap();
    // SAFETY: kill(2) on the daemon we started.
    assert_eq!(unsafe { libc::kill(d.pid(), libc::SIGHUP) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = d.status().unwrap();
        if st["policy"]["generation"].as_u64().unwrap() > gen1 {
            assert!(st["policy"]["last_error"].is_null());
            break;
        }
        assert!(Instant::now() < deadline, "reload never happened: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn events_are_searchable_within_a_second_online_and_offline() {
    require_sensor!();
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().canonicalize().unwrap().join("needle-7f3a.txt");
    std::fs::write(&marker, "x").unwrap();
    let d = Daemon::start().unwrap();
    let (_, sid) = d
        .run(
            "t-store",
            &[
                tests::workload().to_str().unwrap(),
                "open",
                marker.to_str().unwrap(),
            ],
        )
        .unwrap();
    let t0 = Instant::now();
    let query = "kind:file.open AND file.path:*needle-7f3a*";
    let search = |data: &std::path::Path| -> Vec<serde_json::Value> {
        let out = Command::new(bin())
            .args(["search", query, "--json", "--data-dir"])
            .arg(data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let hits = loop {
        let h = search(&d.data_dir());
        if !h.is_empty() || t0.elapsed() > Duration::from_secs(5) {
            break h;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "searchable after {:?}",
        t0.elapsed()
    );
    assert_eq!(hits[0]["session"]["id"], sid.as_str());
    // Sessions and the session timeline.
    let out = Command::new(bin())
        .args(["sessions", "--json", "--data-dir"])
        .arg(d.data_dir())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&sid));
    let out = Command::new(bin())
        .args(["session", &sid, "--json", "--data-dir"])
        .arg(d.data_dir())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == Kind::ProcessExec.name())
    );
    assert!(!v["processes"].as_array().unwrap().is_empty());
    // Offline: stop the daemon, copy the data dir, search the copy without any daemon.
    let data = d.data_dir();
    let mut d = d;
    d.stop();
    let copy = work.path().join("copy");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&data)
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let _ = std::fs::remove_file(copy.join("agentwatch.sock"));
    let hits = search(&copy);
    assert_eq!(hits.len(), 1, "offline search on the copy: {hits:?}");
    let out = Command::new(bin())
        .args(["export", "--format", "ocsf", "--data-dir"])
        .arg(&copy)
        .arg(query)
        .output()
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(v["class_uid"], 1001, "File System Activity: {v}");
}
