//! Fleet-wide search over NATS request/reply. Each daemon with a NATS output answers search
//! requests on `<prefix>.search` (every host answers one request there: a plain subscription,
//! no queue group) and on `<prefix>.<host>.search` (that host only), by running the query
//! against its own store through the same function as the API's `search` request. A client
//! ([`fleet_search`]) publishes one request, gathers every host's answer until a timeout, and
//! merges them ([`merge`]): hits newest first within the limit, totals and aggregations summed,
//! and the hosts that answered, failed or stayed silent named.
//!
//! The request is the API's `search` request as JSON; the answer is the API's answer line
//! (`{"ok": true, "total": ..., "hits": [...], "aggregation": ...}` or `{"ok": false, "error":
//! ...}`) plus `host`, and `truncated` when hits were cut to fit the server's payload limit.
//! The daemons stay the source of truth: nothing here reads the JetStream streams.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use agent_api::{Aggregation, Hit, Reply, Request, SearchResults};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::FleetError;
use crate::config::NatsConfig;

/// Runs a `search` request against the local store (blocking; called off the async threads).
pub type SearchFn = Arc<dyn Fn(Request) -> Reply<SearchResults> + Send + Sync>;

/// One host's answer on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub struct HostAnswer {
    pub host: String,
    #[serde(flatten)]
    pub reply: Reply<SearchResults>,
    /// Hits were cut to fit the NATS payload limit (`total` still counts them all).
    #[serde(default)]
    pub truncated: bool,
}

/// The encoded answer to one request body, at most `max_payload` bytes.
pub fn answer_bytes(host: &str, body: &[u8], search: &SearchFn, max_payload: usize) -> Vec<u8> {
    let reply = match serde_json::from_slice::<Request>(body) {
        Ok(req @ Request::Search { .. }) => search(req),
        Ok(other) => Reply::err(format!(
            "fleet search takes a `search` request, not `{}`",
            other.op()
        )),
        Err(e) => Reply::err(format!("bad fleet search request: {e}")),
    };
    let mut a = HostAnswer {
        host: host.to_owned(),
        reply,
        truncated: false,
    };
    loop {
        let bytes = serde_json::to_vec(&a).unwrap_or_default();
        if bytes.len() <= max_payload {
            return bytes;
        }
        match &mut a.reply {
            Reply::Ok(r) if !r.hits.is_empty() => {
                let keep = r.hits.len() / 2;
                r.hits.truncate(keep);
                a.truncated = true;
            }
            _ => {
                a.reply = Reply::err("the answer does not fit the NATS payload limit");
                a.truncated = true;
            }
        }
    }
}

/// Answer fleet searches for `host` until the connection closes.
pub(crate) async fn serve(client: async_nats::Client, cfg: NatsConfig, host: String, f: SearchFn) {
    let subs = async {
        let all = client.subscribe(cfg.search_subject()).await?;
        let one = client.subscribe(cfg.host_search_subject(&host)).await?;
        Ok::<_, async_nats::SubscribeError>(futures_util::stream::select(all, one))
    };
    let mut subs = match subs.await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "fleet search: cannot subscribe; this host will not answer");
            return;
        }
    };
    // One request at a time: a flood of requests queues in NATS, not in this process.
    while let Some(msg) = subs.next().await {
        let Some(reply) = msg.reply else { continue };
        let max = client.server_info().max_payload.max(1024);
        let (h, f2) = (host.clone(), f.clone());
        let body = msg.payload;
        let Ok(bytes) =
            tokio::task::spawn_blocking(move || answer_bytes(&h, &body, &f2, max)).await
        else {
            continue;
        };
        if let Err(e) = client.publish(reply, bytes.into()).await {
            tracing::debug!(error = %e, "fleet search: cannot publish an answer");
        }
    }
}

/// One hit and the host that answered it (`answered_by` on the wire: the hit's own `host`
/// field is the host name as the daemon records it, not necessarily its subject token).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FleetHit {
    #[serde(rename = "answered_by")]
    pub host: String,
    #[serde(flatten)]
    pub hit: Hit,
}

/// The merged answer of a fleet search.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FleetResults {
    /// Matches in all, summed over the hosts that answered.
    pub total: u64,
    /// Newest first, at most the request's limit.
    pub hits: Vec<FleetHit>,
    pub aggregation: Option<Aggregation>,
    /// Hosts that answered with results, sorted.
    pub answered: Vec<String>,
    /// Hosts that answered with an error, and the error.
    pub failed: Vec<(String, String)>,
    /// Hosts expected (named by the caller) that did not answer in time.
    pub missing: Vec<String>,
    /// Hosts whose hits were cut to fit the payload limit.
    pub truncated: Vec<String>,
}

/// Merge per-host answers: hits newest first (ties by host) cut to `limit`, totals summed,
/// aggregations merged; `expected` hosts absent from `answers` are `missing`.
pub fn merge(answers: Vec<HostAnswer>, limit: usize, expected: &[String]) -> FleetResults {
    let mut out = FleetResults::default();
    let mut seen = BTreeSet::new();
    let mut aggs = Vec::new();
    for a in answers {
        if !seen.insert(a.host.clone()) {
            continue; // one answer per host; a second is a duplicate delivery
        }
        if a.truncated {
            out.truncated.push(a.host.clone());
        }
        match a.reply {
            Reply::Ok(r) => {
                out.total += r.total;
                out.hits.extend(r.hits.into_iter().map(|hit| FleetHit {
                    host: a.host.clone(),
                    hit,
                }));
                if let Some(g) = r.aggregation {
                    aggs.push(g);
                }
                out.answered.push(a.host);
            }
            Reply::Err(e) => out.failed.push((a.host, e)),
        }
    }
    out.hits.sort_by(|a, b| {
        b.hit
            .item
            .time()
            .cmp(&a.hit.item.time())
            .then_with(|| a.host.cmp(&b.host))
    });
    out.hits.truncate(limit);
    out.answered.sort();
    out.failed.sort();
    out.truncated.sort();
    out.aggregation = merge_aggregations(aggs);
    out.missing = expected
        .iter()
        .filter(|h| !seen.contains(*h))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    out
}

/// Sum aggregations of the same shape; terms keep as many buckets as the largest answer and
/// count the rest in `other`. An answer of another shape than the first is ignored (every host
/// ran the same query, so that does not happen with honest hosts).
pub fn merge_aggregations(aggs: Vec<Aggregation>) -> Option<Aggregation> {
    let mut it = aggs.into_iter();
    let first = it.next()?;
    Some(match first {
        Aggregation::Count { mut count } => {
            for a in it {
                if let Aggregation::Count { count: c } = a {
                    count += c;
                }
            }
            Aggregation::Count { count }
        }
        Aggregation::Terms {
            field,
            buckets,
            mut other,
        } => {
            let mut keep = buckets.len();
            let mut sums: HashMap<String, u64> = HashMap::new();
            for (v, n) in buckets {
                *sums.entry(v).or_default() += n;
            }
            for a in it {
                if let Aggregation::Terms {
                    field: f,
                    buckets: b,
                    other: o,
                } = a
                    && f == field
                {
                    keep = keep.max(b.len());
                    other += o;
                    for (v, n) in b {
                        *sums.entry(v).or_default() += n;
                    }
                }
            }
            let mut buckets: Vec<(String, u64)> = sums.into_iter().collect();
            buckets.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            other += buckets.iter().skip(keep).map(|b| b.1).sum::<u64>();
            buckets.truncate(keep);
            Aggregation::Terms {
                field,
                buckets,
                other,
            }
        }
        Aggregation::Histogram {
            interval_ns,
            buckets,
        } => {
            let mut sums: BTreeMap<agent_model::Timestamp, u64> = buckets.into_iter().collect();
            for a in it {
                if let Aggregation::Histogram {
                    interval_ns: i,
                    buckets: b,
                } = a
                    && i == interval_ns
                {
                    for (t, n) in b {
                        *sums.entry(t).or_default() += n;
                    }
                }
            }
            Aggregation::Histogram {
                interval_ns,
                buckets: sums.into_iter().collect(),
            }
        }
    })
}

/// Send `req` (a `search` request) to every host of the fleet reachable through `cfg` and
/// gather the answers for `timeout` (less if every `expected` host answered first).
pub async fn fleet_search(
    cfg: &NatsConfig,
    req: &Request,
    timeout: Duration,
    expected: &[String],
) -> Result<FleetResults, FleetError> {
    let Request::Search { limit, .. } = req else {
        return Err(FleetError::Config(format!(
            "fleet search takes a `search` request, not `{}`",
            req.op()
        )));
    };
    let net = |m: String| FleetError::Net(m);
    let opts = cfg.connect_options().await.map_err(net)?;
    let client = opts
        .connection_timeout(Duration::from_secs(3))
        .connect(cfg.servers.as_slice())
        .await
        .map_err(|e| {
            net(format!(
                "cannot connect to `{}`: {e}",
                cfg.servers.join(",")
            ))
        })?;
    let inbox = client.new_inbox();
    let mut sub = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| net(format!("cannot subscribe to `{inbox}`: {e}")))?;
    let body = serde_json::to_vec(req).map_err(|e| net(e.to_string()))?;
    client
        .publish_with_reply(cfg.search_subject(), inbox, body.into())
        .await
        .map_err(|e| net(format!("cannot publish on `{}`: {e}", cfg.search_subject())))?;
    client
        .flush()
        .await
        .map_err(|e| net(format!("cannot flush: {e}")))?;
    let deadline = tokio::time::Instant::now() + timeout;
    let want: BTreeSet<&String> = expected.iter().collect();
    let mut answers: Vec<HostAnswer> = Vec::new();
    let mut bad = 0usize;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, sub.next()).await {
        match serde_json::from_slice::<HostAnswer>(&msg.payload) {
            Ok(a) => answers.push(a),
            Err(e) => {
                bad += 1;
                tracing::warn!(error = %e, "fleet search: an answer is not a host answer");
            }
        }
        if !want.is_empty() && want.iter().all(|h| answers.iter().any(|a| &&a.host == h)) {
            break;
        }
    }
    let mut out = merge(answers, *limit, expected);
    if bad > 0 {
        out.failed
            .push(("?".into(), format!("{bad} answers were not host answers")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_api::Item;
    use agent_model::{Event, Timestamp};

    fn hit(id: &str, t: i64) -> Hit {
        let e = Event {
            id: id.into(),
            time: Timestamp(t),
            ..Event::default()
        };
        Hit {
            item: Item::Event(Box::new(e)),
            triage: None,
        }
    }

    fn ok(host: &str, total: u64, hits: Vec<Hit>, agg: Option<Aggregation>) -> HostAnswer {
        HostAnswer {
            host: host.into(),
            reply: Reply::Ok(SearchResults {
                total,
                hits,
                aggregation: agg,
            }),
            truncated: false,
        }
    }

    #[test]
    fn hits_merge_newest_first_within_the_limit_and_silent_hosts_are_named() {
        let a = ok("a", 3, vec![hit("a3", 30), hit("a1", 10)], None);
        let b = ok("b", 2, vec![hit("b4", 40), hit("b2", 20)], None);
        let c = HostAnswer {
            host: "c".into(),
            reply: Reply::err("no store"),
            truncated: false,
        };
        let dup = ok("a", 9, vec![hit("x", 99)], None);
        let r = merge(vec![a, b, c, dup], 3, &["a".into(), "d".into(), "b".into()]);
        let ids: Vec<_> = r.hits.iter().map(|h| h.hit.item.id().to_owned()).collect();
        assert_eq!(ids, ["b4", "a3", "b2"]);
        assert_eq!(r.hits[0].host, "b");
        assert_eq!(r.total, 5);
        assert_eq!(r.answered, ["a", "b"]);
        assert_eq!(r.failed, [("c".to_owned(), "no store".to_owned())]);
        assert_eq!(r.missing, ["d"]);
    }

    #[test]
    fn aggregations_are_summed() {
        let t = |b: &[(&str, u64)], other| Aggregation::Terms {
            field: "kind".into(),
            buckets: b.iter().map(|(v, n)| (v.to_string(), *n)).collect(),
            other,
        };
        let m = merge_aggregations(vec![
            t(&[("x", 5), ("y", 1)], 2),
            t(&[("y", 7), ("z", 3)], 0),
        ]);
        assert_eq!(m, Some(t(&[("y", 8), ("x", 5)], 5)));
        let m = merge_aggregations(vec![
            Aggregation::Count { count: 2 },
            Aggregation::Count { count: 5 },
        ]);
        assert_eq!(m, Some(Aggregation::Count { count: 7 }));
        let h = |b: &[(i64, u64)]| Aggregation::Histogram {
            interval_ns: 60,
            buckets: b.iter().map(|(t, n)| (Timestamp(*t), *n)).collect(),
        };
        let m = merge_aggregations(vec![h(&[(0, 1), (60, 2)]), h(&[(60, 3), (120, 1)])]);
        assert_eq!(m, Some(h(&[(0, 1), (60, 5), (120, 1)])));
    }

    #[test]
    fn hostile_requests_get_a_clear_error_and_big_answers_fit() {
        let f: SearchFn = Arc::new(|_| {
            Reply::Ok(SearchResults {
                total: 1000,
                hits: (0..1000).map(|i| hit(&format!("id-{i}"), i)).collect(),
                aggregation: None,
            })
        });
        let bytes = answer_bytes("h", b"{not json", &f, 1 << 20);
        let a: HostAnswer = serde_json::from_slice(&bytes).unwrap();
        assert!(matches!(&a.reply, Reply::Err(e) if e.starts_with("bad fleet search request")));
        let bytes = answer_bytes("h", br#"{"op":"status"}"#, &f, 1 << 20);
        let a: HostAnswer = serde_json::from_slice(&bytes).unwrap();
        assert!(
            matches!(&a.reply, Reply::Err(e) if e.contains("`status`")),
            "{a:?}"
        );
        let bytes = answer_bytes("h", br#"{"op":"search","query":"x"}"#, &f, 20_000);
        assert!(bytes.len() <= 20_000);
        let a: HostAnswer = serde_json::from_slice(&bytes).unwrap();
        assert!(a.truncated);
        let Reply::Ok(r) = a.reply else {
            panic!("not ok")
        };
        assert!(!r.hits.is_empty() && r.hits.len() < 1000 && r.total == 1000);
    }
}
