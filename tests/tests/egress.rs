//! Egress policy end-to-end: the cgroup `sock_addr` programs attached to the real cgroup v2
//! root, a real session (`agentwatch run`) connecting and sending over loopback, and a process
//! outside the session doing the same at the same moment. Nothing leaves the host: every
//! destination is a listener of this test on 127.0.0.1. Root and BTF required; without them
//! each test says why and skips.

use std::net::{TcpListener, UdpSocket};
use std::process::{Command, Output, Stdio};

use agent_model::{Event, Kind};
use tests::{Daemon, bin, require_sensor, workload};

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

fn config(agent: &str, allow_port: u16, mode: &str) -> String {
    format!(
        "[response]\ndefault_mode = \"dry_run\"\n\n[[egress]]\nname = \"egt-net\"\nagent = [\"{agent}\"]\nallow = [\"127.0.0.1:{allow_port}\", \"10.0.0.0/8\", \"localhost:1\"]\nmode = \"{mode}\"\n"
    )
}

fn probe_cmd(dst: &str) -> Vec<String> {
    vec![
        workload().to_str().unwrap().to_owned(),
        "egress-probe".into(),
        dst.into(),
    ]
}

/// `agentwatch run` of the probe (in the session), and the same probe outside any session,
/// started together. Returns (session output, session id, outside output).
fn probe_both(d: &Daemon, agent: &str, dst: &str) -> (String, String, String) {
    let outside = Command::new(workload())
        .args(["egress-probe", dst])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let cmd = probe_cmd(dst);
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let (out, sid) = d.run(agent, &args).unwrap();
    let o: Output = outside.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        sid,
        String::from_utf8_lossy(&o.stdout).trim().to_owned(),
    )
}

fn denials<'a>(evs: &'a [Event], sid: &str, port: u16) -> Vec<&'a Event> {
    evs.iter()
        .filter(|e| {
            e.kind() == Kind::ResponseAction
                && e.session_id() == Some(sid)
                && e.response.as_ref().is_some_and(|r| r.action == "deny")
                && e.net.as_ref().and_then(|n| n.dst_port) == Some(port)
        })
        .collect()
}

#[test]
fn enforce_denies_the_session_only_and_allows_the_allow_list() {
    require_sensor!();
    let (_t_deny, u_deny, deny) = loopback_port();
    let (_t_ok, _u_ok, ok) = loopback_port();
    let d = Daemon::start_with(Some(&config("egt", ok, "enforce")), &[]).unwrap();
    let status = d.status().unwrap();
    let progs = status.to_string();
    assert!(
        progs.contains("cgroup/connect4") && progs.contains("cgroup/sendmsg6"),
        "egress programs not attached: {status}"
    );

    let dst = format!("127.0.0.1:{deny}");
    let (inside, sid, outside) = probe_both(&d, "egt", &dst);
    assert_eq!(
        inside, "tcp=errno=1 udp=errno=1",
        "the session's connect and send to a destination off the allow-list get EPERM"
    );
    assert_eq!(
        outside, "tcp=ok udp=ok",
        "a process outside the session is never denied"
    );
    // The outside datagram arrived; the session's did not.
    u_deny
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 16];
    let mut got = 0;
    while u_deny.recv_from(&mut buf).is_ok() {
        got += 1;
    }
    assert_eq!(got, 1, "exactly the outside process's datagram arrives");

    let evs = d
        .wait_for("the two denials", |evs| denials(evs, &sid, deny).len() >= 2)
        .unwrap();
    let ds = denials(&evs, &sid, deny);
    for e in &ds {
        let r = e.response.as_ref().unwrap();
        assert_eq!(r.mode, "enforce");
        assert_eq!(r.result, "done");
        assert_eq!(r.by, "egress:egt-net");
        assert!(
            r.note.contains(&dst) && r.note.contains("EPERM"),
            "{}",
            r.note
        );
        let n = e.net.as_ref().unwrap();
        assert_eq!(n.dst_ip, Some("127.0.0.1".parse().unwrap()));
    }
    let protos: Vec<_> = ds
        .iter()
        .filter_map(|e| e.net.as_ref()?.protocol.clone())
        .collect();
    assert!(protos.contains(&"tcp".to_owned()) && protos.contains(&"udp".to_owned()));

    // The allow-listed destination works from the session, and leaves no denial.
    let (inside, sid2, _) = probe_both(&d, "egt", &format!("127.0.0.1:{ok}"));
    assert_eq!(
        inside, "tcp=ok udp=ok",
        "an allow-listed destination is reachable"
    );
    d.settle();
    assert!(denials(&d.events(), &sid2, ok).is_empty());

    // Another agent has no policy: not restricted.
    let (inside, _, _) = probe_both(&d, "other-agent", &dst);
    assert_eq!(
        inside, "tcp=ok udp=ok",
        "an agent without a policy is not restricted"
    );

    // The denial is searchable like any event.
    let out = Command::new(bin())
        .args([
            "search",
            "response.action:deny AND response.mode:enforce",
            "--json",
            "--data-dir",
        ])
        .arg(d.data_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("egress:egt-net"),
        "search finds the denial: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dry_run_lets_the_connection_through_and_records_it() {
    require_sensor!();
    let (_t_deny, _u_deny, deny) = loopback_port();
    let (_t_ok, _u_ok, ok) = loopback_port();
    // No `mode`: `[response] default_mode = "dry_run"` applies.
    let cfg = config("egt", ok, "enforce").replace("mode = \"enforce\"\n", "");
    let d = Daemon::start_with(Some(&cfg), &[]).unwrap();
    let dst = format!("127.0.0.1:{deny}");
    let (inside, sid, outside) = probe_both(&d, "egt", &dst);
    assert_eq!(inside, "tcp=ok udp=ok", "a dry run does not deny");
    assert_eq!(outside, "tcp=ok udp=ok");
    let evs = d
        .wait_for("the dry-run records", |evs| {
            denials(evs, &sid, deny).len() >= 2
        })
        .unwrap();
    for e in denials(&evs, &sid, deny) {
        let r = e.response.as_ref().unwrap();
        assert_eq!((r.mode.as_str(), r.result.as_str()), ("dry_run", "dry_run"));
        assert!(r.note.contains("dry run"), "{}", r.note);
    }
}

#[test]
fn kill_switch_leaves_egress_unenforced() {
    require_sensor!();
    let (_t_deny, _u_deny, deny) = loopback_port();
    let cfg = format!(
        "{}[response]\nenabled = false\n",
        config("egt", 1, "enforce").replace("[response]\ndefault_mode = \"dry_run\"\n", "")
    );
    let d = Daemon::start_with(Some(&cfg), &[]).unwrap();
    let (inside, _, _) = probe_both(&d, "egt", &format!("127.0.0.1:{deny}"));
    assert_eq!(
        inside, "tcp=ok udp=ok",
        "`[response] enabled = false` enforces nothing"
    );
}

/// A host name in the allow-list is resolved by the daemon into the kernel's allow-list; IPv6
/// destinations are judged too.
#[test]
fn host_names_and_ipv6_follow_the_policy() {
    require_sensor!();
    let (_t_host, _u_host, host_port) = loopback_port();
    let cfg = format!(
        "[[egress]]\nagent = [\"egt6\"]\nallow = [\"localhost:{host_port}\"]\nmode = \"enforce\"\n"
    );
    let d = Daemon::start_with(Some(&cfg), &[]).unwrap();
    // The resolver answers within the first ticks.
    std::thread::sleep(std::time::Duration::from_millis(600));
    let (inside, _, _) = probe_both(&d, "egt6", &format!("127.0.0.1:{host_port}"));
    assert_eq!(
        inside, "tcp=ok udp=ok",
        "`localhost:PORT` allows 127.0.0.1:PORT"
    );
    let Ok(t6) = TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here: the IPv6 half is skipped");
        return;
    };
    let p6 = t6.local_addr().unwrap().port();
    let _u6 = UdpSocket::bind(("::1", p6));
    let dst = format!("[::1]:{p6}");
    let (inside, sid, outside) = probe_both(&d, "egt6", &dst);
    assert_eq!(
        inside, "tcp=errno=1 udp=errno=1",
        "IPv6 off the allow-list is denied"
    );
    assert!(outside.starts_with("tcp=ok"), "{outside}");
    let evs = d
        .wait_for("the IPv6 denials", |evs| denials(evs, &sid, p6).len() >= 2)
        .unwrap();
    let e = denials(&evs, &sid, p6)[0];
    assert_eq!(e.net.as_ref().unwrap().family, "ipv6");
    assert!(e.response.as_ref().unwrap().note.contains(&dst));
}

/// A tiny DNS responder on `addr:53`: every A question gets `answer` (TTL 300), every other
/// question an empty NOERROR answer. Runs until the test process ends.
fn dns_responder(addr: &str, answer: [u8; 4]) -> std::io::Result<()> {
    let sock = UdpSocket::bind((addr, 53))?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let q = &buf[..n];
            // Header (12) + question name + type + class.
            let Some(end) = q[12..].iter().position(|b| *b == 0).map(|p| 12 + p + 5) else {
                continue;
            };
            if end > n {
                continue;
            }
            let qtype = u16::from_be_bytes([q[end - 4], q[end - 3]]);
            let mut r = q[..end].to_vec();
            r[2] = 0x81;
            r[3] = 0x80;
            r[6] = 0;
            r[7] = u8::from(qtype == 1);
            r[8..12].fill(0);
            if qtype == 1 {
                r.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4]);
                r.extend(answer);
            }
            let _ = sock.send_to(&r, from);
        }
    });
    Ok(())
}

/// Issue #15: allow-listed host names are resolved through the session's own DNS answers. The
/// session resolves a name through glibc (`getaddrinfo`) against a resolver on loopback (its
/// own `/etc/resolv.conf` in a mount namespace) that gives an address the daemon's resolver
/// would not: that address becomes reachable for the session after the answer and not before;
/// an address in no answer stays denied.
#[test]
fn host_names_follow_the_sessions_own_dns_answers() {
    require_sensor!();
    let t_answered = TcpListener::bind("127.0.0.88:0").unwrap();
    let port = t_answered.local_addr().unwrap().port();
    let Ok(_t_other) = TcpListener::bind(("127.0.0.89", port)) else {
        eprintln!("port {port} taken on 127.0.0.89; skipped");
        return;
    };
    dns_responder("127.0.0.77", [127, 0, 0, 88]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.77\noptions attempts:1 timeout:2\n",
    )
    .unwrap();
    let script = dir.path().join("probe.py");
    std::fs::write(
        &script,
        format!(
            r#"import socket, sys, time
def conn(ip):
    s = socket.socket()
    try:
        s.connect((ip, {port}))
        return "ok"
    except OSError as e:
        return "errno=%d" % e.errno
    finally:
        s.close()
before = conn("127.0.0.88")
ips = sorted({{a[4][0] for a in socket.getaddrinfo("svc.agentwatch.test", {port}, socket.AF_INET, socket.SOCK_STREAM)}})
# The daemon writes the kernel map from the answer's record, woken at once; give it a moment.
time.sleep(0.3)
print("before=%s resolved=%s answered=%s other=%s" % (before, ",".join(ips), conn("127.0.0.88"), conn("127.0.0.89")))
"#
        ),
    )
    .unwrap();
    let cfg = format!(
        "[[egress]]\nname = \"egt-dns\"\nagent = [\"egtdns\"]\nallow = [\"127.0.0.77:53\", \"svc.agentwatch.test:{port}\"]\nmode = \"enforce\"\n"
    );
    let d = Daemon::start_with(Some(&cfg), &[]).unwrap();
    let inner = format!(
        "mount --bind {} /etc/resolv.conf && exec /usr/bin/python3 {}",
        resolv.display(),
        script.display()
    );
    let (out, sid) = d
        .run(
            "egtdns",
            &[
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                &inner,
            ],
        )
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        text,
        "before=errno=1 resolved=127.0.0.88 answered=ok other=errno=1",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The address answered to this session is not allowed to another session of the agent.
    let (out2, _) = d
        .run(
            "egtdns",
            &[
                "/usr/bin/python3",
                "-c",
                &format!(
                    "import socket\ns=socket.socket()\ntry:\n s.connect(('127.0.0.88',{port}))\n print('ok')\nexcept OSError as e:\n print('errno=%d'%e.errno)"
                ),
            ],
        )
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out2.stdout).trim(),
        "errno=1",
        "another session without that answer is still denied"
    );
    let evs = d
        .wait_for("the denials", |evs| denials(evs, &sid, port).len() >= 2)
        .unwrap();
    let ips: Vec<_> = denials(&evs, &sid, port)
        .iter()
        .filter_map(|e| e.net.as_ref()?.dst_ip)
        .collect();
    assert!(ips.contains(&"127.0.0.89".parse().unwrap()), "{ips:?}");
    // `status` counts the policy's denials and the answer's allowed destination.
    let st = d.status().unwrap();
    let e = &st["egress"];
    assert!(e["dns_allowed"].as_u64() >= Some(1), "{st}");
    assert!(e["denied"].as_u64() >= Some(3), "{st}");
    assert_eq!(e["policies"][0]["name"], "egt-dns", "{st}");
    assert_eq!(e["policies"][0]["mode"], "enforce", "{st}");
    assert!(e["policies"][0]["denied"].as_u64() >= Some(3), "{st}");
}

/// Poll `status` until `pred` holds for its `egress` part (`null` when not attached).
fn wait_egress(d: &Daemon, what: &str, pred: impl Fn(&serde_json::Value) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let st = d.status().unwrap();
        if pred(&st["egress"]) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within 30 s: {}",
            st["egress"]
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn sighup(d: &Daemon) {
    // SAFETY: kill has no memory preconditions; the pid is the test's own daemon child.
    assert_eq!(unsafe { libc::kill(d.pid(), libc::SIGHUP) }, 0);
}

/// Issue #15: a SIGHUP that adds, changes or removes `[[egress]]` tables takes effect without a
/// restart. The daemon starts with no egress policy (programs not attached); a reload with a
/// deny attaches them and the session's connect is refused; a reload that changes the
/// allow-list lets it through; a reload without the table allows everything again; a config
/// that does not parse keeps the running tables and raises `config.reload_rejected`.
#[test]
fn sighup_adds_changes_and_removes_egress_tables() {
    require_sensor!();
    let (_t_deny, _u_deny, deny) = loopback_port();
    let (_t_ok, _u_ok, ok) = loopback_port();
    let plain = "[response]\ndefault_mode = \"dry_run\"\n";
    let d = Daemon::start_with(Some(plain), &[]).unwrap();
    let cfg_path = d.dir.path().join("config.toml");
    let dst = format!("127.0.0.1:{deny}");
    assert!(
        d.status().unwrap()["egress"].is_null(),
        "no `[[egress]]`: the programs start unattached"
    );
    let (inside, _, _) = probe_both(&d, "egr", &dst);
    assert_eq!(inside, "tcp=ok udp=ok", "no policy yet: not restricted");

    // Add a table: the programs get attached and the deny applies.
    std::fs::write(&cfg_path, config("egr", ok, "enforce")).unwrap();
    sighup(&d);
    wait_egress(&d, "the reloaded table", |e| {
        e["policies"][0]["name"] == "egt-net"
    });
    let progs = d.status().unwrap()["programs"].to_string();
    assert!(
        progs.contains("cgroup/connect4") && progs.contains("cgroup/sendmsg6"),
        "attached by the reload: {progs}"
    );
    let (inside, sid, outside) = probe_both(&d, "egr", &dst);
    assert_eq!(
        inside, "tcp=errno=1 udp=errno=1",
        "denied after the reload, no restart"
    );
    assert_eq!(outside, "tcp=ok udp=ok");
    d.wait_for("the denials after the reload", |evs| {
        denials(evs, &sid, deny).len() >= 2
    })
    .unwrap();
    let (inside, _, _) = probe_both(&d, "egr", &format!("127.0.0.1:{ok}"));
    assert_eq!(inside, "tcp=ok udp=ok", "the allow-list applies");

    // Change it: the denied port is now allowed, the other one is not.
    std::fs::write(
        &cfg_path,
        config("egr", deny, "enforce").replace("egt-net", "egt-changed"),
    )
    .unwrap();
    sighup(&d);
    wait_egress(&d, "the changed table", |e| {
        e["policies"][0]["name"] == "egt-changed"
    });
    let (inside, _, _) = probe_both(&d, "egr", &dst);
    assert_eq!(inside, "tcp=ok udp=ok", "allowed by the changed table");
    let (inside, _, _) = probe_both(&d, "egr", &format!("127.0.0.1:{ok}"));
    assert_eq!(
        inside, "tcp=errno=1 udp=errno=1",
        "no longer on the changed allow-list"
    );

    // A config that does not parse: the running table stays, and an alert says why.
    std::fs::write(
        &cfg_path,
        "[[egress]]\nagent = [\"egr\"]\nallow = [\"10.0.0.300\"]\n",
    )
    .unwrap();
    sighup(&d);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let alerts_path = d.data_dir();
    loop {
        let out = Command::new(bin())
            .args(["alerts", "--json", "--data-dir"])
            .arg(&alerts_path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.contains("config.reload_rejected") {
            assert!(text.contains("10.0.0.300"), "{text}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no config.reload_rejected alert: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (inside, _, _) = probe_both(&d, "egr", &format!("127.0.0.1:{ok}"));
    assert_eq!(
        inside, "tcp=errno=1 udp=errno=1",
        "a rejected reload keeps the running table"
    );

    // Remove it: allowed again.
    std::fs::write(&cfg_path, plain).unwrap();
    sighup(&d);
    wait_egress(&d, "no tables", |e| {
        e["policies"].as_array().is_some_and(|p| p.is_empty())
    });
    let (inside, _, _) = probe_both(&d, "egr", &format!("127.0.0.1:{ok}"));
    assert_eq!(
        inside, "tcp=ok udp=ok",
        "a reload without the table lifts the deny"
    );
}

/// Every stored alert of `rule` (`alerts --json`), the last write of each id (an alert written
/// again with the same id is an update).
pub fn alerts_of(d: &Daemon, rule: &str) -> Vec<serde_json::Value> {
    let out = Command::new(bin())
        .args(["alerts", "--json", "--limit", "1000", "--data-dir"])
        .arg(d.data_dir())
        .output()
        .unwrap();
    let mut by_id: std::collections::BTreeMap<String, serde_json::Value> = Default::default();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(mut v) = serde_json::from_str::<serde_json::Value>(l) else {
            continue;
        };
        let v = v["alert"].take();
        if v["rule"] != rule {
            continue;
        }
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        let newer = by_id
            .get(&id)
            .is_none_or(|o| o["count"].as_u64() < v["count"].as_u64());
        if newer {
            by_id.insert(id, v);
        }
    }
    by_id.into_values().collect()
}

/// Issue #15: a session looping on a denied connect does not flood the store or the alerts.
/// 10,000 denied connects from one session (each from a fresh socket) give a bounded number of
/// `response.action` events and `egress.denied` alerts (the first at once, then the same alert
/// written again with the count when its window closes), and the counts add up to exactly the
/// denials the session saw, which the kernel counted too.
#[test]
fn ten_thousand_denied_connects_fold_into_counted_alerts() {
    require_sensor!();
    let (_t_deny, _u_deny, deny) = loopback_port();
    let d = Daemon::start_with(Some(&config("egflood", 1, "enforce")), &[]).unwrap();
    let script = format!(
        "import socket\nn = 0\nfor _ in range(10000):\n    s = socket.socket()\n    try:\n        s.connect(('127.0.0.1', {deny}))\n    except PermissionError:\n        n += 1\n    finally:\n        s.close()\nprint(n)\n"
    );
    let t0 = std::time::Instant::now();
    let (out, sid) = d
        .run("egflood", &["/usr/bin/python3", "-c", &script])
        .unwrap();
    let loop_time = t0.elapsed();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "10000",
        "every connect is denied: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The folded alert is written again once its window (5 s) closes after the loop.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (alerts, lost) = loop {
        let st = d.status().unwrap();
        let lost = st["egress"]["lost"].as_u64().unwrap();
        let alerts: Vec<_> = alerts_of(&d, "egress.denied")
            .into_iter()
            .filter(|a| a["session"]["id"] == sid.as_str())
            .collect();
        let total: u64 = alerts.iter().filter_map(|a| a["count"].as_u64()).sum();
        if total + lost >= 10_000 {
            break (alerts, lost);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the alert counts reach only {total} (+{lost} lost) of 10000: {alerts:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    let total: u64 = alerts.iter().filter_map(|a| a["count"].as_u64()).sum();
    assert_eq!(
        total + lost,
        10_000,
        "the counts are the denials, no more (lost records: {lost})"
    );
    // One group per 5 s window of the loop, at most.
    let windows = loop_time.as_secs() / 5 + 2;
    assert!(
        (alerts.len() as u64) <= windows,
        "{} alerts for a {loop_time:?} loop",
        alerts.len()
    );
    let st = d.status().unwrap();
    assert!(
        st["egress"]["denied"].as_u64() >= Some(10_000),
        "the kernel counted every denial: {}",
        st["egress"]
    );
    assert!(
        st["egress"]["policies"][0]["denied"].as_u64() >= Some(10_000 - lost),
        "{}",
        st["egress"]
    );
    let evs = d.events();
    let stored = denials(&evs, &sid, deny).len() as u64;
    assert!(
        stored >= 1 && stored <= windows,
        "{stored} deny events stored for 10000 denials"
    );
    let a = &alerts[0];
    assert_eq!(a["severity"], "medium");
    assert!(
        a["summary"]
            .as_str()
            .unwrap()
            .contains("egress policy `egt-net`"),
        "{a}"
    );
}
