//! Self-protection of the egress deny (issue 19), root required: the cgroup `sock_addr` links,
//! the TLS uprobe links and the egress maps are agentwatch's own. From inside a real session, a
//! raw bpf() deletion of the session's `EGRESS_AGENTS` entry is reported (`kernel.bpf` aimed at
//! the daemon), alerted (`monitor.map_tamper`) and put back by the 1 s integrity check, and the
//! deny holds afterwards; opening the pinned links is reported as aimed at the daemon. The links
//! are pinned: with the daemon killed (SIGKILL) the deny still holds, and after a restart too,
//! with the downtime's denials attributed to the session and its agent name; a clean stop
//! removes every pin. Destinations are listeners of the test on 127.0.0.1.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agent_model::{Event, Kind};
use tests::{Daemon, in_session, require_sensor, workload};

/// A TCP listener and a UDP socket on the same free loopback port.
fn loopback_port() -> (TcpListener, UdpSocket, u16) {
    loop {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if let Ok(u) = UdpSocket::bind(("127.0.0.1", port)) {
            return (t, u, port);
        }
    }
}

fn config(agent: &str, allow_port: u16) -> String {
    format!(
        "[[egress]]\nname = \"egp\"\nagent = [\"{agent}\"]\nallow = [\"127.0.0.1:{allow_port}\"]\nmode = \"enforce\"\n"
    )
}

/// `agentwatch run` in the background; returns the child and the session id it printed.
fn wait_alert(path: &Path, rule: &str, texts: &[&str]) -> serde_json::Value {
    tests::wait_alert_with(path, rule, texts, Duration::from_secs(20))
}

/// Wait until `p` holds a complete line; return it.
fn wait_line(p: &Path, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let s = std::fs::read_to_string(p).unwrap_or_default();
        if s.ends_with('\n') {
            return s.trim().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "nothing written to `{}` within {within:?}",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The agent id the daemon gave `agent` (its id table in the data dir).
fn agent_id(d: &Daemon, agent: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(d.data_dir().join("agent-ids.json")).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(id) = v["agents"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["name"] == agent)
                .and_then(|e| e["id"].as_u64())
        {
            return id as u32;
        }
        assert!(Instant::now() < deadline, "no id for `{agent}`: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `kernel.bpf` events of the session aimed at the daemon, with command `op`.
fn own_bpf<'a>(evs: &'a [Event], sid: &str, op: &str) -> Vec<&'a Event> {
    in_session(evs, sid)
        .into_iter()
        .filter(|e| e.kind() == Kind::KernelBpf)
        .filter(|e| e.op.as_ref().is_some_and(|o| o.name == op))
        .filter(|e| e.target.as_ref().is_some_and(|t| t.relation == "daemon"))
        .collect()
}

fn field(out: &str, name: &str) -> u64 {
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no `{name}=` in {out:?}"))
}

#[test]
fn an_egress_entry_deleted_from_a_session_is_alerted_and_repaired_and_the_deny_holds() {
    require_sensor!();
    let (_t_deny, _u_deny, deny) = loopback_port();
    let (_t_ok, _u_ok, ok) = loopback_port();
    let work = tempfile::tempdir().unwrap();
    let alerts = work.path().join("alerts.jsonl");
    let d = Daemon::start_with(
        Some(&config("egp-tamper", ok)),
        &["--alerts-jsonl", alerts.to_str().unwrap()],
    )
    .unwrap();
    let dir = std::fs::canonicalize(work.path()).unwrap();
    let (go1, go2, out1, out2) = (
        dir.join("go1"),
        dir.join("go2"),
        dir.join("out1"),
        dir.join("out2"),
    );
    let w = workload();
    let script = format!(
        "while [ ! -s {g1} ]; do sleep 0.05; done; {w} bpf-delete {pid} EGRESS_AGENTS $(cat {g1}) >{o1}; \
         while [ ! -e {g2} ]; do sleep 0.05; done; {w} egress-probe 127.0.0.1:{deny} >{o2}",
        g1 = go1.display(),
        g2 = go2.display(),
        o1 = out1.display(),
        o2 = out2.display(),
        w = w.display(),
        pid = d.pid(),
    );
    let (mut child, sid) = tests::run_bg(&d, "egp-tamper", &script);
    let id = agent_id(&d, "egp-tamper");
    std::fs::write(&go1, id.to_string()).unwrap();
    let deleted = wait_line(&out1, Duration::from_secs(10));
    assert!(
        deleted.contains("delete=0"),
        "the entry was not deleted: {deleted}"
    );
    let map_id = field(&deleted, "map_id");
    // Alerted and put back by the integrity check.
    let a = wait_alert(
        &alerts,
        "monitor.map_tamper",
        &[
            "`EGRESS_AGENTS`",
            &format!("entry of agent id `{id}` missing (restored)"),
        ],
    );
    assert_eq!(a["priority"], "Critical", "{a}");
    // The deny holds afterwards.
    std::fs::write(&go2, "").unwrap();
    let probed = wait_line(&out2, Duration::from_secs(10));
    assert_eq!(
        probed, "tcp=errno=1 udp=errno=1",
        "the deny does not hold after the repair"
    );
    assert!(child.wait().unwrap().success());
    // The bpf() call itself was reported as aimed at the daemon's map, and alerted.
    let evs = d
        .wait_for("the bpf() deletion, aimed at the daemon", |evs| {
            !own_bpf(evs, &sid, "bpf_map_delete_elem").is_empty()
        })
        .unwrap();
    let e = own_bpf(&evs, &sid, "bpf_map_delete_elem")[0];
    let op = e.op.as_ref().unwrap();
    assert_eq!(op.object_id, Some(map_id), "{e:?}");
    assert_eq!(op.result, Some(0), "{e:?}");
    assert_eq!(e.target.as_ref().unwrap().pid, d.pid() as u32);
    wait_alert(&alerts, "evasion.kernel_tamper", &["kernel tampering"]);
    let st = d.status().unwrap();
    assert!(
        st["integrity"]["repairs"].as_u64().unwrap() >= 1,
        "{}",
        st["integrity"]
    );
}

/// The pinned links of the daemon: egress and, when the host has a libssl with `SSL_write`,
/// TLS uprobes.
fn pinned_links(d: &Daemon) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(d.pin_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("link_"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn opening_the_egress_and_tls_links_from_a_session_is_aimed_at_the_daemon() {
    require_sensor!();
    let (_t_ok, _u_ok, ok) = loopback_port();
    let d = Daemon::start_with(Some(&config("egp-links", ok)), &[]).unwrap();
    let links = pinned_links(&d);
    let egress = d.pin_dir().join("link_egress_connect4");
    assert!(links.contains(&egress), "egress link not pinned: {links:?}");
    let tls = links
        .iter()
        .find(|p| p.to_string_lossy().contains("link_tls_"))
        .cloned();
    if tls.is_none() {
        eprintln!("no TLS uprobe pinned (no libssl.so.3 with SSL_write): only egress is checked");
    }
    let w = workload();
    let mut script = format!("{} bpf-obj-get {}", w.display(), egress.display());
    if let Some(t) = &tls {
        script.push_str(&format!("; {} bpf-obj-get {}", w.display(), t.display()));
    }
    let (out, sid) = d.run("egp-links", &["/bin/sh", "-c", &script]).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    let ids: Vec<u64> = stdout.lines().map(|l| field(l, "link_id")).collect();
    let evs = d
        .wait_for("the link opens, aimed at the daemon", |evs| {
            own_bpf(evs, &sid, "bpf_obj_get").len() >= ids.len()
        })
        .unwrap_or_else(|e| {
            let bpf: Vec<String> = in_session(&d.events(), &sid)
                .iter()
                .filter(|e| e.kind() == Kind::KernelBpf)
                .map(|e| format!("{:?} {:?}", e.op, e.target))
                .collect();
            panic!("{e}\nrun printed {stdout}\nsession bpf events: {bpf:#?}")
        });
    let seen: Vec<Option<u64>> = own_bpf(&evs, &sid, "bpf_obj_get")
        .iter()
        .map(|e| e.op.as_ref().unwrap().object_id)
        .collect();
    for id in ids {
        assert!(
            seen.contains(&Some(id)),
            "link `{id}` not reported as the daemon's: {seen:?}"
        );
    }
}

#[test]
fn the_egress_deny_outlives_a_killed_daemon_and_holds_after_the_restart() {
    require_sensor!();
    let (_t_deny, _u_deny, deny) = loopback_port();
    let (_t_ok, _u_ok, ok) = loopback_port();
    let mut d = Daemon::start_with(Some(&config("egp-pin", ok)), &[]).unwrap();
    let work = std::fs::canonicalize(d.dir.path()).unwrap();
    let (go1, go2, out1, out2) = (
        work.join("go1"),
        work.join("go2"),
        work.join("out1"),
        work.join("out2"),
    );
    let w = workload();
    let script = format!(
        "while [ ! -e {g1} ]; do sleep 0.05; done; {w} egress-probe 127.0.0.1:{deny} >{o1}; \
         while [ ! -e {g2} ]; do sleep 0.05; done; {w} egress-probe 127.0.0.1:{deny} >{o2}",
        g1 = go1.display(),
        g2 = go2.display(),
        o1 = out1.display(),
        o2 = out2.display(),
        w = w.display(),
    );
    let (mut child, sid) = tests::run_bg(&d, "egp-pin", &script);
    d.wait_for("the session's start", |evs| {
        !in_session(evs, &sid).is_empty()
    })
    .unwrap();
    for n in [
        "egress_connect4",
        "egress_connect6",
        "egress_sendmsg4",
        "egress_sendmsg6",
    ] {
        assert!(
            d.pin_dir().join(format!("link_{n}")).exists(),
            "link `{n}` not pinned"
        );
    }

    d.kill9();
    std::fs::write(&go1, "").unwrap();
    let during = wait_line(&out1, Duration::from_secs(10));
    assert_eq!(
        during, "tcp=errno=1 udp=errno=1",
        "the deny did not hold while no daemon ran"
    );
    let outside = Command::new(workload())
        .args(["egress-probe", &format!("127.0.0.1:{deny}")])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&outside.stdout).trim(),
        "tcp=ok udp=ok",
        "a process outside the session was denied"
    );

    d.restart(&[]).unwrap();
    // The denials of the downtime were buffered in the pinned ring: they arrive, in the session,
    // with its agent name.
    let denied = |evs: &[Event]| -> Vec<Event> {
        in_session(evs, &sid)
            .into_iter()
            .filter(|e| e.kind() == Kind::ResponseAction)
            .filter(|e| e.net.as_ref().and_then(|n| n.dst_port) == Some(deny))
            .cloned()
            .collect()
    };
    let evs = d
        .wait_for("the downtime's denials", |evs| denied(evs).len() >= 2)
        .unwrap();
    for e in denied(&evs) {
        assert_eq!(e.agent.as_ref().unwrap().name, "egp-pin", "{e:?}");
        assert_eq!(e.response.as_ref().unwrap().mode, "enforce");
    }
    std::fs::write(&go2, "").unwrap();
    let after = wait_line(&out2, Duration::from_secs(10));
    assert_eq!(
        after, "tcp=errno=1 udp=errno=1",
        "the deny did not hold after the restart"
    );
    assert!(child.wait().unwrap().success());
    // No tamper finding from the adoption itself.
    let st = d.status().unwrap();
    assert_eq!(st["integrity"]["repairs"], 0, "{}", st["integrity"]);

    let pins = d.pin_dir();
    d.stop();
    let deadline = Instant::now() + Duration::from_secs(5);
    while pins.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!pins.exists(), "pins left after a clean stop");
}
