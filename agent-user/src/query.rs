//! Read-side queries over the store, shared by the API (daemon) and the CLI (offline, on a data
//! dir): one function per request, answering the JSON the API documents.

use agent_model::{Severity, Timestamp};
use agent_store::{Aggregation, Hit, Reader, SearchRequest};
use serde_json::{Value, json};

use crate::api::Request;

fn bound(s: Option<&str>) -> Result<Option<Timestamp>, String> {
    s.map(|s| agent_store::parse_time_bound(s, Timestamp::now()).map_err(|e| e.to_string()))
        .transpose()
}

/// A hit as JSON: the stored object, plus `triage` for alerts.
pub fn hit_json(h: &Hit) -> Value {
    let mut v: Value = serde_json::from_str(&h.json).unwrap_or(Value::Null);
    if let agent_store::Record::Alert(_) = h.record {
        v = json!({"alert": v});
        v["triage"] = match &h.triage {
            Some(t) => serde_json::to_value(t).unwrap_or_default(),
            None => json!({"state": "open"}),
        };
    }
    v
}

fn err(e: impl std::fmt::Display) -> Value {
    json!({"ok": false, "error": e.to_string()})
}

/// Answer a read request.
pub fn answer(r: &Reader, req: Request) -> Value {
    if let Err(e) = r.reload() {
        return err(e);
    }
    match req {
        Request::Search {
            query,
            since,
            until,
            limit,
            offset,
        } => {
            let (since, until) = match (bound(since.as_deref()), bound(until.as_deref())) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return err(e),
            };
            match r.search(&SearchRequest {
                query,
                since,
                until,
                limit: limit.min(10_000),
                offset,
            }) {
                Ok(res) => json!({
                    "ok": true,
                    "total": res.total,
                    "hits": res.hits.iter().map(hit_json).collect::<Vec<_>>(),
                    "aggregation": res.aggregation.as_ref().map(agg_json),
                }),
                Err(e) => err(e),
            }
        }
        Request::Alerts {
            since,
            severity,
            limit,
        } => {
            let since = match bound(since.as_deref()) {
                Ok(s) => s,
                Err(e) => return err(e),
            };
            let sev = match severity.as_deref().map(Severity::from_name) {
                None => Severity::Info,
                Some(Some(s)) => s,
                Some(None) => {
                    return err(format!(
                        "unknown severity `{}`; expected info, low, medium, high or critical",
                        severity.unwrap_or_default()
                    ));
                }
            };
            match r.alerts(since, sev, limit.min(10_000)) {
                Ok(hits) => {
                    json!({"ok": true, "hits": hits.iter().map(hit_json).collect::<Vec<_>>()})
                }
                Err(e) => err(e),
            }
        }
        Request::Sessions { since } => {
            let since = match bound(since.as_deref()) {
                Ok(s) => s,
                Err(e) => return err(e),
            };
            match r.sessions(since) {
                Ok(s) => json!({"ok": true, "sessions": s}),
                Err(e) => err(e),
            }
        }
        Request::Session { id } => match r.session(&id) {
            Ok(Some(d)) => json!({
                "ok": true,
                "id": d.id,
                "events": d.events.iter().map(hit_json).collect::<Vec<_>>(),
                "alerts": d.alerts.iter().map(hit_json).collect::<Vec<_>>(),
                "processes": d.processes,
                "roots": d.roots,
            }),
            Ok(None) => err(format!("no session `{id}`")),
            Err(e) => err(e),
        },
        _ => err("not a read request"),
    }
}

pub fn agg_json(a: &Aggregation) -> Value {
    serde_json::to_value(a).unwrap_or_default()
}
