//! Operating a real daemon (root): local `[[override]]`s in a policy's `local.d/` change shipped
//! rules without editing them (an appended exception, a new severity, a disabled rule), `rules
//! show` prints the effective rule with its overrides and hits, `status` counts them, and
//! Prometheus `/metrics` on loopback moves when a session does something — while malformed,
//! oversized and idle clients get errors, not the daemon's memory.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tests::{Daemon, bin, real_exe, require_sensor};

const LOCAL: &str = r#"# site changes to the shipped policy
[[override]]
rule = "cred.shadow"
severity = "low"
tags = ["site-reviewed"]
[[override.exceptions]]
field = "process.exe"
in = ["TAIL"]

[[override]]
rule = "cred.kube_config"
enabled = false
"#;

fn aw(d: &Daemon, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .arg("--data-dir")
        .arg(d.data_dir())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// One raw HTTP exchange: the status line and the body.
fn http(addr: &str, request: &[u8]) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let t = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = t.split_once("\r\n\r\n").unwrap_or((&t, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

fn scrape(addr: &str) -> String {
    let (status, body) = http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    body
}

/// The value of the sample line `name{labels}` (exactly as rendered), 0 when absent.
fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn events_total(body: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with("agentwatch_events_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One request a receiver got: its head (lowercased header names kept as sent) and body.
#[derive(Clone, Debug)]
struct Received {
    head: String,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// A webhook receiver on loopback: answers `500` to the first request (so the daemon must
/// retry), `200` after; records every request.
fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(i);
                }
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let Some(i) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..i]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            let mut body = buf[i + 4..].to_vec();
            while body.len() < len {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => body.extend_from_slice(&chunk[..n]),
                }
            }
            let first = {
                let mut g = g.lock().unwrap();
                g.push(Received {
                    head,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                g.len() == 1
            };
            let answer: &[u8] = if first {
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
            };
            let _ = s.write_all(answer);
        }
    });
    (addr, got)
}

fn rules_dir(root: &Path, tail: &str) -> std::path::PathBuf {
    let dir = root.join("rules");
    std::fs::create_dir_all(dir.join("local.d")).unwrap();
    for e in std::fs::read_dir(tests::root().join("rules/policy")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(dir.join("local.d/site.toml"), LOCAL.replace("TAIL", tail)).unwrap();
    dir
}

#[test]
fn overrides_rules_show_and_metrics_on_a_real_daemon() {
    require_sensor!();
    let tmp = tempfile::tempdir().unwrap();
    let tail = real_exe("tail");
    let rules = rules_dir(tmp.path(), &tail);
    let shipped_before = std::fs::read(rules.join("credentials.toml")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let (hook_addr, received) = receiver();
    let headers = tmp.path().join("webhook.headers");
    std::fs::write(
        &headers,
        "# the receiver's token\nAuthorization: Bearer t0ken\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &headers,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .unwrap();
    let config = format!(
        "[metrics]\nlisten = \"{addr}\"\n\n[[output]]\ntype = \"webhook\"\nname = \"siem\"\nurl = \"http://{hook_addr}/alerts\"\nheaders_file = \"{}\"\n",
        headers.display()
    );
    let d = Daemon::start_with(Some(&config), &["--rules", rules.to_str().unwrap()]).unwrap();

    // `rules check` on the directory names the overrides; `status` counts them.
    let o = Command::new(bin())
        .args(["rules", "check"])
        .arg(&rules)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("2 rules changed by overrides:"), "{out}");
    assert!(
        out.contains("cred.shadow (low, enabled) by ")
            && out.contains("cred.kube_config (medium, disabled) by "),
        "{out}"
    );
    let o = aw(&d, &["status"]);
    assert!(text(&o).contains("2 overridden"), "{}", text(&o));

    let before = scrape(&addr);
    assert!(
        before.contains("# TYPE agentwatch_events_total counter"),
        "{before}"
    );
    assert_eq!(
        sample(&before, "agentwatch_policy_overridden_rules"),
        2.0,
        "{before}"
    );
    let hits = "agentwatch_rule_hits_total{rule=\"cred.shadow\",severity=\"low\",enabled=\"true\"}";
    assert_eq!(sample(&before, hits), 0.0, "{before}");

    // The appended exception holds for `tail`; `cat` still fires, at the new severity.
    let (o, _) = d.run("ops", &[&tail, "-c", "1", "/etc/shadow"]).unwrap();
    assert!(o.status.success());
    let (o, session) = d.run("ops", &["cat", "/etc/shadow"]).unwrap();
    assert!(o.status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let after = loop {
        let m = scrape(&addr);
        if sample(&m, hits) >= 1.0 || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        sample(&after, hits),
        1.0,
        "one alert, not the excepted `tail`:\n{after}"
    );
    assert!(
        sample(
            &after,
            "agentwatch_rule_alerts_by_severity_total{severity=\"low\"}"
        ) >= 1.0,
        "{after}"
    );
    assert!(events_total(&after) > events_total(&before), "{after}");
    assert!(
        sample(
            &after,
            "agentwatch_events_total{kind=\"file.open\",family=\"file\"}"
        ) >= 1.0,
        "{after}"
    );
    // The stored alert (searchable once the index commits).
    let deadline = Instant::now() + Duration::from_secs(15);
    let (alerts, shadow) = loop {
        let alerts = aw(&d, &["alerts", "--json"]);
        let alerts = String::from_utf8_lossy(&alerts.stdout).into_owned();
        let shadow: Vec<serde_json::Value> = alerts
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.to_string().contains("cred.shadow"))
            .collect();
        if !shadow.is_empty() || Instant::now() > deadline {
            break (alerts, shadow);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(shadow.len(), 1, "{alerts}");
    let s = shadow[0].to_string();
    assert!(
        s.contains("\"low\"") && s.contains("site-reviewed") && s.contains(&session),
        "{s}"
    );

    // `rules show`: the effective rule, its overrides with their text, and its hits.
    let o = aw(&d, &["rules", "show", "cred.shadow"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    for want in [
        "rule        cred.shadow",
        "severity    low",
        "enabled     yes",
        "tags        T1003.008, credential_access, site-reviewed",
        "action      alert",
        "hits        1 (last ",
        "credentials.toml:",
        "local.d/site.toml:2:1",
        "in = [\"/etc/shadow\"",
        "[[override.exceptions]]",
    ] {
        assert!(out.contains(want), "missing `{want}`:\n{out}");
    }
    let o = aw(&d, &["rules", "show", "cred.kube_config", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["enabled"], false, "{v}");
    assert_eq!(v["overrides"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["hits"], 0, "{v}");
    let o = aw(&d, &["rules", "show", "cred.shadw"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("did you mean `cred.shadow`?"),
        "{}",
        text(&o)
    );

    // Hostile clients: wrong path, method, an endless head, idle connections.
    assert_eq!(
        http(&addr, b"GET / HTTP/1.1\r\n\r\n").0,
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        http(&addr, b"POST /metrics HTTP/1.1\r\n\r\n").0,
        "HTTP/1.1 405 Method Not Allowed"
    );
    let (status, body) = http(&addr, &vec![b'A'; 64 * 1024]);
    assert_eq!(status, "HTTP/1.1 400 Bad Request", "{body}");
    assert!(body.contains("longer than 8192 bytes"), "{body}");
    let idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        http(&addr, b"GET /metrics HTTP/1.1\r\n\r\n").0,
        "HTTP/1.1 503 Service Unavailable"
    );
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = http(&addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        if status == "HTTP/1.1 200 OK" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never served again: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The webhook got the alert as Falco-shaped JSON, with the header from the file, after a
    // retry of the request its receiver refused.
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let got = received.lock().unwrap().clone();
        if got.iter().any(|r| r.body.contains("cred.shadow")) || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let shadow: Vec<&Received> = got
        .iter()
        .filter(|r| r.body.contains("cred.shadow"))
        .collect();
    assert!(
        !shadow.is_empty(),
        "no cred.shadow alert posted; got {got:#?}"
    );
    let v: serde_json::Value = serde_json::from_str(&shadow[0].body).unwrap();
    assert_eq!(v["rule"], "cred.shadow", "{v}");
    assert!(v["priority"].is_string() && v["time"].is_string(), "{v}");
    assert!(v["output_fields"].is_object(), "{v}");
    assert!(v["tags"].to_string().contains("site-reviewed"), "{v}");
    assert!(
        shadow[0].head.starts_with("POST /alerts HTTP/1.1"),
        "{}",
        shadow[0].head
    );
    assert_eq!(
        shadow[0].header("Authorization").as_deref(),
        Some("Bearer t0ken")
    );
    let first_id = got[0].header("X-Agentwatch-Id").unwrap();
    assert_eq!(
        got[1].header("X-Agentwatch-Id").as_deref(),
        Some(first_id.as_str()),
        "the refused request was not retried first: {got:#?}"
    );
    let st = d.status().unwrap();
    let siem = st["fleet"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "siem")
        .cloned()
        .unwrap();
    assert!(siem["shipped"].as_u64().unwrap() >= 1, "{siem}");
    let m = scrape(&addr);
    assert!(
        sample(&m, "agentwatch_output_shipped_total{output=\"siem\"}") >= 1.0,
        "{m}"
    );

    // The shipped file was never touched.
    assert_eq!(
        std::fs::read(rules.join("credentials.toml")).unwrap(),
        shipped_before
    );
}

#[test]
fn a_non_loopback_metrics_address_is_refused_at_start() {
    require_sensor!();
    let e = Daemon::start_with(Some("[metrics]\nlisten = \"0.0.0.0:9464\"\n"), &[])
        .err()
        .expect("daemon started with /metrics on every address");
    let e = format!("{e:#}");
    assert!(
        e.contains("config.toml:2:10: `listen` = `0.0.0.0:9464` is not a loopback address"),
        "{e}"
    );
}

/// The octet-counted messages (`LEN SP MSG`, RFC 6587) in `buf`.
fn octet_counted(buf: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = buf;
    while let Some(sp) = rest.iter().position(|&b| b == b' ') {
        let Some(n) = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        if rest.len() < sp + 1 + n {
            break;
        }
        out.push(String::from_utf8_lossy(&rest[sp + 1..sp + 1 + n]).into_owned());
        rest = &rest[sp + 1 + n..];
    }
    out
}

#[test]
fn syslog_outputs_send_rfc5424_over_udp_tcp_and_unix() {
    use std::os::unix::net::UnixDatagram;
    require_sensor!();
    let tmp = tempfile::tempdir().unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let unix_path = tmp.path().join("log.sock");
    let unix = UnixDatagram::bind(&unix_path).unwrap();
    unix.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // The TCP receiver is down when the alert happens: it must arrive once it is up.
    let tcp_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "[[output]]\ntype = \"syslog\"\nname = \"udp\"\naddress = \"udp://{}\"\nfacility = \"local3\"\n\n\
         [[output]]\ntype = \"syslog\"\nname = \"tcp\"\naddress = \"tcp://127.0.0.1:{tcp_port}\"\n\n\
         [[output]]\ntype = \"syslog\"\nname = \"unix\"\naddress = \"unix://{}\"\nfacility = \"auth\"\n",
        udp.local_addr().unwrap(),
        unix_path.display()
    );
    let d = Daemon::start_with(Some(&config), &[]).unwrap();
    let (o, session) = d.run("ops", &["cat", "/etc/shadow"]).unwrap();
    assert!(o.status.success());

    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut from_udp, mut from_unix) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline
        && !(from_udp
            .iter()
            .any(|m: &String| m.contains(" cred.shadow "))
            && from_unix
                .iter()
                .any(|m: &String| m.contains(" cred.shadow ")))
    {
        if let Ok(n) = udp.recv(&mut buf) {
            from_udp.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        if let Ok(n) = unix.recv(&mut buf) {
            from_unix.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let shadow = |msgs: &[String]| -> String {
        msgs.iter()
            .find(|m| m.contains(" cred.shadow "))
            .cloned()
            .unwrap_or_else(|| panic!("no cred.shadow message in {msgs:#?}"))
    };
    // local3 (19) * 8 + err (3, a high alert) = 155; auth (4) * 8 + 3 = 35.
    let m = shadow(&from_udp);
    assert!(m.starts_with("<155>1 "), "{m}");
    let host = m.split(' ').nth(2).unwrap().to_owned();
    assert!(
        m.contains(&format!(
            " agentwatch {} cred.shadow [agentwatch@32473 id=\"",
            d_pid(&d)
        )),
        "{m}"
    );
    assert!(m.contains(&format!("session=\"{session}\"")), "{m}");
    assert!(m.contains("severity=\"high\""), "{m}");
    assert!(m.contains("/etc/shadow"), "{m}");
    assert!(!host.is_empty() && host != "-", "{m}");
    let m = shadow(&from_unix);
    assert!(m.starts_with("<35>1 "), "{m}");

    // Now the TCP receiver comes up; the alert waited in the spool.
    std::thread::sleep(Duration::from_millis(500));
    let listener = std::net::TcpListener::bind(("127.0.0.1", tcp_port)).unwrap();
    listener.set_nonblocking(false).unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline
        && !octet_counted(&got)
            .iter()
            .any(|m| m.contains(" cred.shadow "))
    {
        let mut chunk = [0u8; 8192];
        if let Ok(n) = conn.read(&mut chunk) {
            got.extend_from_slice(&chunk[..n]);
        }
    }
    let msgs = octet_counted(&got);
    let m = shadow(&msgs);
    // authpriv (10) * 8 + 3 = 83: the default facility.
    assert!(m.starts_with("<83>1 "), "{m}");
    let o = aw(&d, &["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let outputs = st["fleet"].as_array().cloned().unwrap_or_default();
    for name in ["udp", "tcp", "unix"] {
        let row = outputs
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no output `{name}` in status: {st}"));
        assert!(row["shipped"].as_u64().unwrap_or(0) >= 1, "{row}");
    }
}

/// The daemon's pid, from `status`.
fn d_pid(d: &Daemon) -> u64 {
    let o = aw(d, &["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    st["pid"].as_u64().unwrap()
}
