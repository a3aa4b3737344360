//! The fleet console's shared triage against a real 3-node NATS cluster (no daemon, no root):
//! alerts as the daemons ship them (their `--alerts-jsonl` lines on
//! `<prefix>.<host>.alerts.<severity>`) are read by two consoles with their hosts; an
//! acknowledgement made on one console shows on the other, naming who made it; two consoles
//! changing the same alert at once end with one value both see (last writer wins, written with
//! a revision check).

use std::time::{Duration, Instant};

use agent_api::TriageState;
use agent_fleet::{Console, NatsConfig};
use agent_model::{Alert, BStr, Severity, Timestamp};
use async_nats::jetstream;
use tests::nats::{Cluster, server_bin};

const TOKEN: &str = "console-test-token";

fn alert(id: &str, host: &str, t: i64) -> Alert {
    Alert {
        id: id.into(),
        time: Timestamp(t),
        host: host.into(),
        rule: "ssh-key-read".into(),
        severity: Severity::High,
        summary: BStr::from("read an ssh key"),
        count: 1,
        first_time: Timestamp(t),
        last_time: Timestamp(t),
        ..Alert::default()
    }
}

/// Wait up to 15 s for `f` to hold.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(15), "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn triage_made_on_one_console_shows_on_the_other() {
    if server_bin().is_none() {
        let why = "no `nats-server`; run `cargo xtask setup`";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("SKIPPED: {why}");
        return;
    }
    let cluster = Cluster::start(3, TOKEN).unwrap();
    let urls = cluster.urls();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut cfg =
            NatsConfig::client(urls.clone(), Some(TOKEN.into()), None, "agentwatch").unwrap();
        cfg.replicas = 3;
        // The alerts stream as a shipping daemon creates it, and two hosts' alerts in it.
        let client = async_nats::ConnectOptions::with_token(TOKEN.into())
            .connect(urls.as_slice())
            .await
            .unwrap();
        let js = jetstream::new(client);
        let t0 = Instant::now();
        loop {
            let r = js
                .get_or_create_stream(jetstream::stream::Config {
                    name: cfg.alerts_stream.clone(),
                    subjects: vec!["agentwatch.*.alerts.>".into()],
                    num_replicas: 3,
                    ..Default::default()
                })
                .await;
            match r {
                Ok(_) => break,
                Err(e) if t0.elapsed() < Duration::from_secs(20) => {
                    eprintln!("stream not ready ({e}); retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("alerts stream: {e}"),
            }
        }
        let now = Timestamp::now().0;
        for a in [
            alert("al-1", "web-1", now - 2_000_000_000),
            alert("al-2", "db.2", now),
        ] {
            let subject = cfg.alert_subject(&agent_fleet::sanitize_token(&a.host), "high");
            js.publish(subject, rules::falco_json(&a).into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        // A message that is not an alert is counted, not shown.
        js.publish("agentwatch.evil.alerts.high", "{\"id\":1}".into())
            .await
            .unwrap()
            .await
            .unwrap();
        let day = Duration::from_secs(86_400);
        let a = Console::connect(&cfg, "ann@soc-1", day).await.unwrap();
        let b = Console::connect(&cfg, "bob@soc-2", day).await.unwrap();
        eventually("both consoles list both hosts' alerts", || {
            a.alerts(10).len() == 2 && b.alerts(10).len() == 2
        })
        .await;
        let listed = b.alerts(10);
        assert_eq!(listed[0].0.id, "al-2", "newest first");
        assert_eq!(listed[0].0.host, "db.2");
        assert_eq!(listed[1].0.host, "web-1");
        assert!(listed.iter().all(|(_, t)| t.is_none()));
        assert_eq!(b.health().0, 1, "the bad message is counted");

        // Ann acknowledges on her console; Bob's console shows it, naming her.
        let set = a
            .triage("al-1", TriageState::Acknowledged, "looking")
            .await
            .unwrap();
        assert_eq!(set.by, "ann@soc-1");
        eventually("bob sees ann's acknowledgement", || {
            b.triage_of("al-1")
                .is_some_and(|t| t.state == TriageState::Acknowledged && t.by == "ann@soc-1")
        })
        .await;
        let listed = b.alerts(10);
        let t = listed
            .iter()
            .find(|(x, _)| x.id == "al-1")
            .unwrap()
            .1
            .clone();
        assert_eq!(t.unwrap().note, "looking");

        // Bob resolves it later: the later change wins on both consoles.
        b.triage("al-1", TriageState::Resolved, "benign")
            .await
            .unwrap();
        eventually("ann sees bob's resolution", || {
            a.triage_of("al-1")
                .is_some_and(|t| t.state == TriageState::Resolved && t.by == "bob@soc-2")
        })
        .await;

        // Both change the other alert at once: one value wins and both consoles agree on it.
        let (ra, rb) = tokio::join!(
            a.triage("al-2", TriageState::Acknowledged, "mine"),
            b.triage("al-2", TriageState::Resolved, "no, mine"),
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let winner = if ra.time > rb.time { ra } else { rb };
        eventually("both consoles agree on the race's winner", || {
            a.triage_of("al-2").as_ref() == Some(&winner)
                && b.triage_of("al-2").as_ref() == Some(&winner)
        })
        .await;
    });
}
