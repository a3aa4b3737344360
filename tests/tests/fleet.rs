//! Fleet shipping against real NATS servers (a 3-node JetStream cluster on loopback, started
//! here): a daemon ships a real session's events and alerts from its spool; a NATS node is
//! killed while it ships; the cluster is down when the daemon starts and comes up later; the
//! token is wrong. In every case the messages in the streams are counted by message id against
//! what the daemon recorded locally: nothing lost, nothing stored twice.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures_util::StreamExt as _;
use tests::nats::{Cluster, server_bin};
use tests::{Daemon, require_sensor};

const TOKEN: &str = "fleet-test-token";

/// Skip (or fail in CI) without a `nats-server`.
macro_rules! require_nats {
    () => {
        require_sensor!();
        if server_bin().is_none() {
            let why = "no `nats-server`; run `cargo xtask setup`";
            if std::env::var_os("CI").is_some() {
                panic!("{why}");
            }
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
}

fn config(host: &str, urls: &[String], token: &str, replicas: usize) -> String {
    let servers: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "[daemon]\nhost = \"{host}\"\n\n[[output]]\ntype = \"nats\"\nservers = [{}]\ntoken = \"{token}\"\nreplicas = {replicas}\nbatch = 256\n",
        servers.join(", ")
    )
}

fn start_daemon(cfg: &str, alerts: &Path) -> Daemon {
    Daemon::start_with(Some(cfg), &["--alerts-jsonl", alerts.to_str().unwrap()]).unwrap()
}

/// A session that keeps producing events for about `secs` seconds (execs, opens) and reads a
/// planted SSH key, which raises an alert.
fn busy_session(d: &Daemon, secs: u32) -> std::thread::JoinHandle<()> {
    // Under `.ssh/`, where `cred.ssh_private_key` looks.
    let key = d.dir.path().join(".ssh/id_rsa");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    std::fs::write(&key, "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n").unwrap();
    let script = format!(
        "end=$(( $(date +%s) + {secs} )); cat {} >/dev/null; while [ $(date +%s) -lt $end ]; do for i in 1 2 3 4 5 6 7 8; do cat /etc/hostname >/dev/null; done; sleep 0.05; done",
        key.display()
    );
    let data = d.data_dir();
    std::thread::spawn(move || {
        let out = std::process::Command::new(tests::bin())
            .args(["run", "--agent", "fleet-agent", "--data-dir"])
            .arg(&data)
            .args(["--", "sh", "-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
}

fn fleet_status(d: &Daemon) -> serde_json::Value {
    let st = d.status().unwrap();
    st["fleet"][0].clone()
}

/// Wait until the output has acknowledged everything durable (backlog 0 after the store has
/// synced the last record), or fail with its status.
fn wait_shipped(d: &Daemon, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let st = d.status().unwrap();
        let f = &st["fleet"][0];
        let durable = st["store"]["durable_seq"].as_u64().unwrap_or(0);
        let last = st["store"]["last_seq"].as_u64().unwrap_or(0);
        if durable == last && f["acked_seq"].as_u64() >= Some(durable) && f["backlog"] == 0 {
            return f.clone();
        }
        assert!(
            Instant::now() < deadline,
            "not shipped within {within:?}: store {} fleet {f}",
            st["store"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every message of `stream`: message id → how many times it is stored.
fn stream_ids(urls: &[String], stream: &str) -> HashMap<String, usize> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::ConnectOptions::with_token(TOKEN.into())
            .connect(urls)
            .await
            .unwrap();
        let js = jetstream::new(client);
        // After a node is killed the cluster may still be electing leaders: JetStream API
        // calls time out for a few seconds. Retry them, for up to 20 s.
        let mut tries = 0;
        let (total, consumer) = loop {
            let attempt = async {
                let mut s = js.get_stream(stream).await.map_err(|e| e.to_string())?;
                let total = s.info().await.map_err(|e| e.to_string())?.state.messages as usize;
                let c = s
                    .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((total, c))
            };
            match attempt.await {
                Ok(v) => break v,
                Err(e) if tries < 20 => {
                    tries += 1;
                    eprintln!("stream {stream} not ready ({e}); retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => panic!("stream {stream}: {e}"),
            }
        };
        let mut msgs = consumer.messages().await.unwrap();
        let mut ids: HashMap<String, usize> = HashMap::new();
        let mut n = 0;
        while n < total {
            let m = tokio::time::timeout(Duration::from_secs(10), msgs.next())
                .await
                .expect("stream read timed out")
                .expect("stream ended")
                .unwrap();
            let id = m
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.to_string())
                .expect("message without Nats-Msg-Id");
            *ids.entry(id).or_default() += 1;
            n += 1;
        }
        ids
    })
}

/// The ids the daemon recorded locally (its JSON-lines outputs), as the shipper names them.
fn local_ids(d: &Daemon, alerts: &Path) -> (Vec<String>, Vec<String>) {
    let events: Vec<String> = d.events().into_iter().map(|e| e.id).collect();
    let alerts: Vec<String> = std::fs::read_to_string(alerts)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let id = v["id"].as_str().unwrap().to_owned();
            match v["count"].as_u64() {
                Some(c) if c > 1 => format!("{id}#{c}"),
                _ => id,
            }
        })
        .collect();
    (events, alerts)
}

fn assert_exactly_once(stored: &HashMap<String, usize>, local: &[String], what: &str) {
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{what} stored more than once: {twice:?}");
    let missing: Vec<_> = local
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} {what} missing: {:?}",
        missing.len(),
        local.len(),
        &missing[..missing.len().min(10)]
    );
    // The daemon keeps recording (and shipping) after `local` was read: the stream may hold
    // newer records, never older ones the host did not record.
    // `instance-seq`, `rule:instance-seq` or a folded alert's `...#count`.
    let seq = |id: &str| {
        let id = id.split('#').next().unwrap_or(id);
        u64::from_str_radix(id.rsplit('-').next().unwrap_or(""), 16).ok()
    };
    if let Some(newest) = local.iter().filter_map(|id| seq(id)).max() {
        let strangers: Vec<_> = stored
            .keys()
            .filter(|id| !local.contains(id))
            .filter(|id| seq(id).is_none_or(|n| n <= newest))
            .take(10)
            .collect();
        assert!(
            strangers.is_empty(),
            "{what}: the stream holds records the host never recorded: {strangers:?}"
        );
    }
}

#[test]
fn cluster_node_killed_while_shipping_loses_and_duplicates_nothing() {
    require_nats!();
    let t0 = Instant::now();
    let mut cluster = Cluster::start(3, TOKEN).unwrap();
    let alerts = tempfile::NamedTempFile::new().unwrap();
    let d = start_daemon(
        &config("fleet-h1", &cluster.urls(), TOKEN, 3),
        alerts.path(),
    );
    let session = busy_session(&d, 6);
    std::thread::sleep(Duration::from_secs(2));
    let before = fleet_status(&d);
    assert!(
        before["shipped"].as_u64() > Some(0),
        "nothing shipped before the kill: {before}"
    );
    cluster.kill_node(0);
    session.join().unwrap();
    d.settle();
    let f = wait_shipped(&d, Duration::from_secs(30));
    assert!(f["last_ack"].is_string(), "{f}");
    let (events, alert_ids) = local_ids(&d, alerts.path());
    assert!(
        events.len() > 200,
        "the session made only {} events",
        events.len()
    );
    assert!(!alert_ids.is_empty(), "the SSH key read raised no alert");
    let urls: Vec<String> = cluster.urls()[1..].to_vec();
    assert_exactly_once(&stream_ids(&urls, "AGENTWATCH_EVENTS"), &events, "events");
    assert_exactly_once(
        &stream_ids(&urls, "AGENTWATCH_ALERTS"),
        &alert_ids,
        "alerts",
    );
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t0.elapsed()
    );
}

#[test]
fn daemon_started_with_nats_down_catches_up_when_the_cluster_starts() {
    require_nats!();
    let t0 = Instant::now();
    let mut cluster = Cluster::configure(3, TOKEN).unwrap();
    let alerts = tempfile::NamedTempFile::new().unwrap();
    let d = start_daemon(
        &config("fleet-h2", &cluster.urls(), TOKEN, 3),
        alerts.path(),
    );
    busy_session(&d, 2).join().unwrap();
    d.settle();
    // The host works on: events are recorded locally, status says why nothing ships.
    let f = fleet_status(&d);
    assert_eq!(f["connected"], false, "{f}");
    assert!(f["backlog"].as_u64() > Some(100), "{f}");
    assert!(
        f["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("cannot connect"),
        "{f}"
    );
    assert!(d.events().len() > 100);
    cluster.start_all().unwrap();
    wait_shipped(&d, Duration::from_secs(30));
    let (events, alert_ids) = local_ids(&d, alerts.path());
    assert_exactly_once(
        &stream_ids(&cluster.urls(), "AGENTWATCH_EVENTS"),
        &events,
        "events",
    );
    assert_exactly_once(
        &stream_ids(&cluster.urls(), "AGENTWATCH_ALERTS"),
        &alert_ids,
        "alerts",
    );
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t0.elapsed()
    );
}

#[test]
fn wrong_token_keeps_the_daemon_running_and_says_why() {
    require_nats!();
    let cluster = Cluster::start(1, TOKEN).unwrap();
    let alerts = tempfile::NamedTempFile::new().unwrap();
    let d = start_daemon(
        &config("fleet-h3", &cluster.urls(), "wrong-token", 1),
        alerts.path(),
    );
    busy_session(&d, 1).join().unwrap();
    d.settle();
    let deadline = Instant::now() + Duration::from_secs(10);
    let f = loop {
        let f = fleet_status(&d);
        let err = f["last_error"].as_str().unwrap_or("").to_lowercase();
        if err.contains("authorization") {
            break f;
        }
        assert!(
            Instant::now() < deadline,
            "no authorization error in status: {f}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(f["connected"], false, "{f}");
    assert_eq!(f["shipped"], 0, "{f}");
    assert!(f["backlog"].as_u64() > Some(0), "{f}");
    assert!(!d.events().is_empty(), "the host stopped recording");
}

/// `agentwatch search --fleet` with the token in the environment; the JSON lines it prints.
fn fleet_search(urls: &[String], args: &[&str]) -> (bool, Vec<serde_json::Value>, String) {
    let out = std::process::Command::new(tests::bin())
        .args(["search", "--json", "--fleet", &urls.join(",")])
        .args(args)
        .env("AGENTWATCH_FLEET_TOKEN", TOKEN)
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (
        out.status.success(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn fleet_search_merges_every_hosts_answer_newest_first_and_names_the_silent() {
    require_nats!();
    let cluster = Cluster::start(3, TOKEN).unwrap();
    let urls = cluster.urls();
    let a_alerts = tempfile::NamedTempFile::new().unwrap();
    let b_alerts = tempfile::NamedTempFile::new().unwrap();
    let a = start_daemon(&config("fs-a", &urls, TOKEN, 3), a_alerts.path());
    let b = start_daemon(&config("fs-b", &urls, TOKEN, 3), b_alerts.path());
    let marker = a.dir.path().join("needle-9c41d");
    std::fs::write(&marker, "x").unwrap();
    let open = |d: &Daemon| {
        let (out, _) = d
            .run(
                "fleet-agent",
                &[
                    tests::workload().to_str().unwrap(),
                    "open",
                    marker.to_str().unwrap(),
                ],
            )
            .unwrap();
        assert!(out.status.success());
    };
    // A's session first, B's later: B's hit is the newest.
    open(&a);
    std::thread::sleep(Duration::from_millis(50));
    open(&b);
    let query = "kind:file.open AND file.path:*needle-9c41d*";
    let hosts_of = |lines: &[serde_json::Value]| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l["answered_by"].as_str().map(str::to_owned))
            .collect()
    };
    // Both daemons must have committed the open to their stores and connected to NATS.
    let t0 = Instant::now();
    let lines = loop {
        let (ok, lines, err) = fleet_search(&urls, &["--fleet-hosts", "fs-a,fs-b", query]);
        let hosts = hosts_of(&lines);
        if ok && hosts.contains(&"fs-a".into()) && hosts.contains(&"fs-b".into()) {
            break lines;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no hits from both hosts: ok={ok} {lines:?} {err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let hits: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["answered_by"].is_string())
        .collect();
    let times: Vec<&str> = hits.iter().map(|h| h["time"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(times, sorted, "hits not newest first: {hits:?}");
    for h in &hits {
        assert_eq!(
            h["host"], h["answered_by"],
            "a host answered another's hit: {h}"
        );
        assert!(
            h["file"]["path"].as_str().unwrap().contains("needle-9c41d"),
            "{h}"
        );
    }
    let summary = &lines.last().unwrap()["fleet"];
    assert_eq!(
        summary["answered"],
        serde_json::json!(["fs-a", "fs-b"]),
        "{summary}"
    );
    assert_eq!(summary["missing"], serde_json::json!([]), "{summary}");
    assert_eq!(
        summary["total"].as_u64(),
        Some(hits.len() as u64),
        "{summary}"
    );

    // --limit applies to the merged hits: the newest of all, which is B's session's open.
    let (ok, lines, err) = fleet_search(
        &urls,
        &["--limit", "1", "--fleet-hosts", "fs-a,fs-b", query],
    );
    assert!(ok, "{err}");
    let one: Vec<_> = lines
        .iter()
        .filter(|l| l["answered_by"].is_string())
        .collect();
    assert_eq!(one.len(), 1, "{lines:?}");
    assert_eq!(one[0]["answered_by"], "fs-b", "{lines:?}");
    assert_eq!(one[0]["time"].as_str(), Some(times[0]));

    // Aggregations are summed; a host named but absent is named as missing after the timeout.
    let (ok, lines, err) = fleet_search(
        &urls,
        &[
            "--fleet-timeout",
            "1s",
            "--fleet-hosts",
            "fs-a,fs-b,fs-gone",
            &format!("{query} | count"),
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        lines
            .iter()
            .find_map(|l| l["aggregation"]["count"].as_u64()),
        Some(hits.len() as u64),
        "{lines:?}"
    );
    let summary = &lines.last().unwrap()["fleet"];
    assert_eq!(
        summary["missing"],
        serde_json::json!(["fs-gone"]),
        "{summary}"
    );
}
