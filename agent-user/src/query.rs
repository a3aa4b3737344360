//! Read-side queries over the store, shared by the daemon's API and the CLI's offline mode (on a
//! data dir): one function per read request, answering with the `agent-api` types.
//!
//! It takes an [`agent_api::Request`] and knows nothing of sockets, so the API module uses it and
//! it uses nothing of the API module.

use agent_api::{AlertList, Reply, Request, SearchResults, SessionDetail, SessionList};
use agent_model::{Severity, Timestamp};
use agent_store::{Reader, SearchRequest};
use serde::Serialize;

/// Most results one request returns, whatever its `limit`.
pub const MAX_LIMIT: usize = 10_000;

/// `--since` later than `--until` would silently match nothing: say so.
pub fn check_range(since: Option<Timestamp>, until: Option<Timestamp>) -> Result<(), String> {
    match (since, until) {
        (Some(s), Some(u)) if s > u => Err(format!(
            "`--since` ({}) is later than `--until` ({}); nothing can match",
            s.to_rfc3339(),
            u.to_rfc3339()
        )),
        _ => Ok(()),
    }
}

/// A limit over the cap is refused rather than cut silently.
pub fn check_limit(limit: usize) -> Result<(), String> {
    if limit > MAX_LIMIT {
        return Err(format!(
            "`--limit` = `{limit}` is over the cap of {MAX_LIMIT} results a request; use `--offset` to page, or `export` for everything"
        ));
    }
    Ok(())
}

/// The answer to a read request: written as the answer type of its op.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ReadAnswer {
    Search(SearchResults),
    Alerts(AlertList),
    Sessions(SessionList),
    Session(Box<SessionDetail>),
}

fn bound(s: Option<&str>) -> Result<Option<Timestamp>, String> {
    s.map(|s| agent_store::parse_time_bound(s, Timestamp::now()).map_err(|e| e.to_string()))
        .transpose()
}

/// Answer a read request (`search`, `alerts`, `sessions`, `session`) from the store.
pub fn answer(r: &Reader, req: Request) -> Reply<ReadAnswer> {
    if let Err(e) = r.reload() {
        return Reply::err(e);
    }
    match req {
        Request::Search {
            query,
            since,
            until,
            limit,
            offset,
        } => search(r, query, since.as_deref(), until.as_deref(), limit, offset)
            .map(ReadAnswer::Search)
            .into(),
        Request::Alerts {
            since,
            severity,
            limit,
        } => alerts(r, since.as_deref(), severity.as_deref(), limit)
            .map(ReadAnswer::Alerts)
            .into(),
        Request::Sessions { since } => sessions(r, since.as_deref())
            .map(ReadAnswer::Sessions)
            .into(),
        Request::Session { id } => session(r, &id)
            .map(|d| ReadAnswer::Session(Box::new(d)))
            .into(),
        _ => Reply::err("not a read request"),
    }
}

fn search(
    r: &Reader,
    query: String,
    since: Option<&str>,
    until: Option<&str>,
    limit: usize,
    offset: usize,
) -> Result<SearchResults, String> {
    let since = bound(since)?;
    let until = bound(until)?;
    check_range(since, until)?;
    check_limit(limit)?;
    let res = r
        .search(&SearchRequest {
            query,
            since,
            until,
            limit: limit.min(MAX_LIMIT),
            offset,
        })
        .map_err(|e| e.to_string())?;
    Ok(SearchResults {
        total: res.total,
        hits: res.hits.into_iter().map(|h| h.hit).collect(),
        aggregation: res.aggregation,
    })
}

fn alerts(
    r: &Reader,
    since: Option<&str>,
    severity: Option<&str>,
    limit: usize,
) -> Result<AlertList, String> {
    let since = bound(since)?;
    check_limit(limit)?;
    let min = match severity {
        None => Severity::Info,
        Some(s) => Severity::from_name(s).ok_or_else(|| {
            format!("unknown severity `{s}`; expected info, low, medium, high or critical")
        })?,
    };
    let hits = r
        .alerts(since, min, limit.min(MAX_LIMIT))
        .map_err(|e| e.to_string())?;
    Ok(AlertList {
        hits: hits.into_iter().map(|h| h.hit).collect(),
    })
}

fn sessions(r: &Reader, since: Option<&str>) -> Result<SessionList, String> {
    let since = bound(since)?;
    Ok(SessionList {
        sessions: r.sessions(since).map_err(|e| e.to_string())?,
    })
}

fn session(r: &Reader, id: &str) -> Result<SessionDetail, String> {
    if let Some(d) = r.session(id).map_err(|e| e.to_string())? {
        return Ok(d);
    }
    // The timeline and `events` show the last 8 hex digits of a session id: accept any unique
    // prefix or suffix of at least 4 hex digits.
    if id.len() >= 4 && id.len() < 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        let id = id.to_ascii_lowercase();
        let all = r.sessions(None).map_err(|e| e.to_string())?;
        let matches: Vec<&str> = all
            .iter()
            .map(|s| s.id.as_str())
            .filter(|s| s.ends_with(id.as_str()) || s.starts_with(id.as_str()))
            .collect();
        match matches.as_slice() {
            [one] => {
                return r
                    .session(one)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no session `{one}`"));
            }
            [] => {}
            many => {
                return Err(format!(
                    "session id `{id}` is ambiguous: {}",
                    many.join(", ")
                ));
            }
        }
    }
    Err(format!("no session `{id}`"))
}
