//! The read side: searches, alert listings, sessions, and loading hits back from the spool.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use agent_model::{Kind, Severity, Timestamp};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocAddress, Index, IndexReader, Order, ReloadPolicy, Searcher, Term};

use crate::codec;
use crate::query::{self, AggSpec};
use crate::schema::{Fields, TEXT_TOKENIZER, text_analyzer};
use crate::search::{BuildCtx, HistogramCollector, SessionsCollector, TermKey, TermsCollector};
use crate::spool::{self, RecType, io_err};
use crate::{
    Aggregation, Hit, Item, ProcessNode, SessionDetail, SessionSummary, StoreError, TriageEntry,
    TriageState,
};

/// Below this many documents, "newest N" sorts everything in one pass.
const PROBE_MIN_DOCS: u64 = if cfg!(test) { 0 } else { 100_000 };

/// Below this many matches, sorting them all is cheaper than probing time windows.
const PROBE_MIN_MATCHES: usize = if cfg!(test) { 0 } else { 20_000 };

/// Most records a session timeline loads.
const MAX_SESSION_RECORDS: usize = 200_000;

/// A search.
#[derive(Clone, Debug, Default)]
pub struct SearchRequest {
    pub query: String,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub limit: usize,
    pub offset: usize,
}

/// One result as loaded from the spool: the [`Hit`] and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredHit {
    /// Spool sequence number.
    pub seq: u64,
    /// The item's JSON: as stored for alerts; for events, `serde_json` of the stored event
    /// (the spool encoding is lossless, so these are the bytes it was appended as).
    pub json: String,
    pub hit: Hit,
}

/// Results of a search, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchResponse {
    pub total: u64,
    pub hits: Vec<StoredHit>,
    pub aggregation: Option<Aggregation>,
}

/// Read-only access to a data dir. Never writes, so it works on a copied data dir.
pub struct Reader {
    spool_dir: PathBuf,
    fields: Fields,
    reader: IndexReader,
    /// Open segment files by first seq.
    files: Mutex<BTreeMap<u64, Arc<File>>>,
    /// Segment files by first seq, as last listed.
    segs: Mutex<Vec<(u64, PathBuf)>>,
    triage: RwLock<HashMap<String, TriageEntry>>,
}

impl Reader {
    /// Open the data dir `dir` read-only.
    pub fn open(dir: &Path) -> Result<Reader, StoreError> {
        let index_dir = dir.join("index");
        if !index_dir.join("meta.json").exists() {
            return Err(StoreError::NoIndex(dir.to_path_buf()));
        }
        let index = Index::open_in_dir(&index_dir)?;
        Reader::from_index(dir, index, Fields::build())
    }

    /// The evidence pack of session `session`: its stored items with their chain values (see
    /// [`crate::evidence`]).
    pub fn export_evidence(
        &self,
        session: &str,
    ) -> Result<crate::evidence::EvidencePack, StoreError> {
        crate::evidence::export(self, session)
    }

    pub(crate) fn spool_dir(&self) -> &Path {
        &self.spool_dir
    }

    pub(crate) fn from_index(
        dir: &Path,
        index: Index,
        fields: Fields,
    ) -> Result<Reader, StoreError> {
        index.tokenizers().register(TEXT_TOKENIZER, text_analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let r = Reader {
            spool_dir: dir.join("spool"),
            fields,
            reader,
            files: Mutex::new(BTreeMap::new()),
            segs: Mutex::new(Vec::new()),
            triage: RwLock::new(HashMap::new()),
        };
        r.refresh_segments()?;
        r.load_triage()?;
        Ok(r)
    }

    /// See commits made since the reader was opened or last reloaded.
    pub fn reload(&self) -> Result<(), StoreError> {
        self.reader.reload()?;
        self.files.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.load_triage()
    }

    fn load_triage(&self) -> Result<(), StoreError> {
        let searcher = self.reader.searcher();
        let q = TermQuery::new(
            Term::from_field_text(self.fields.get("kind"), "triage"),
            IndexRecordOption::Basic,
        );
        let n = searcher.search(&q, &Count)?;
        let mut map: HashMap<String, TriageEntry> = HashMap::new();
        if n > 0 {
            let top = searcher.search(
                &q,
                &TopDocs::with_limit(n).order_by_fast_field::<u64>("_seq", Order::Asc),
            )?;
            for (_, addr) in top {
                let (seq, off) = self.pointer(&searcher, addr)?;
                let Ok((h, payload)) = self.read(seq, off) else {
                    continue;
                };
                if h.ty != RecType::Triage {
                    continue;
                }
                if let Ok(mut t) = serde_json::from_slice::<TriageEntry>(&payload) {
                    // A change without a note keeps the note before it (a resolve does not
                    // wipe the acknowledgement's reason).
                    if t.note.is_empty()
                        && let Some(prev) = map.get(&t.alert_id)
                    {
                        t.note = prev.note.clone();
                    }
                    map.insert(t.alert_id.clone(), t);
                }
            }
        }
        *self.triage.write().unwrap_or_else(|p| p.into_inner()) = map;
        Ok(())
    }

    fn pointer(&self, searcher: &Searcher, addr: DocAddress) -> Result<(u64, u64), StoreError> {
        let seg = searcher.segment_reader(addr.segment_ord);
        let ff = seg.fast_fields();
        let seq = ff.u64("_seq")?.first(addr.doc_id).unwrap_or(0);
        let off = ff.u64("_off")?.first(addr.doc_id).unwrap_or(0);
        Ok((seq, off))
    }

    fn segment_file(&self, seq: u64) -> Result<(u64, Arc<File>), StoreError> {
        let (first, path) = {
            let segs = self.segs.lock().unwrap_or_else(|p| p.into_inner());
            match segs.iter().rev().find(|(f, _)| *f <= seq) {
                Some((f, p)) => (*f, p.clone()),
                None => {
                    return Err(StoreError::Corrupt {
                        path: self.spool_dir.clone(),
                        offset: seq,
                    });
                }
            }
        };
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = files.get(&first) {
            return Ok((first, f.clone()));
        }
        let f = Arc::new(File::open(&path).map_err(io_err(&path))?);
        files.insert(first, f.clone());
        Ok((first, f))
    }

    fn refresh_segments(&self) -> Result<(), StoreError> {
        let listed = spool::list_segments(&self.spool_dir)?;
        *self.segs.lock().unwrap_or_else(|p| p.into_inner()) = listed;
        self.files.lock().unwrap_or_else(|p| p.into_inner()).clear();
        Ok(())
    }

    fn read(&self, seq: u64, off: u64) -> Result<(spool::RecHeader, Vec<u8>), StoreError> {
        let attempt = || {
            let (first, file) = self.segment_file(seq)?;
            let path = spool::segment_path(&self.spool_dir, first);
            spool::read_at(&file, &path, off, seq)
        };
        match attempt() {
            Ok(r) => Ok(r),
            Err(_) => {
                // A segment created (or deleted by retention) since the listing was taken.
                self.refresh_segments()?;
                attempt()
            }
        }
    }

    fn load_hit(&self, seq: u64, off: u64) -> Result<StoredHit, StoreError> {
        let (h, payload) = self.read(seq, off)?;
        let corrupt = || StoreError::Corrupt {
            path: self.spool_dir.clone(),
            offset: off,
        };
        let (item, json) = match h.ty {
            RecType::Event => {
                let e = codec::decode_event(&payload).map_err(|_| corrupt())?;
                // The JSON the record would have held: the encoding is lossless.
                let json = e.to_json();
                (Item::Event(Box::new(e)), json)
            }
            RecType::JsonEvent => (
                Item::Event(Box::new(
                    serde_json::from_slice(&payload)
                        .map_err(|source| StoreError::Json { seq, source })?,
                )),
                String::from_utf8(payload).map_err(|_| corrupt())?,
            ),
            RecType::Alert => (
                Item::Alert(Box::new(
                    serde_json::from_slice(&payload)
                        .map_err(|source| StoreError::Json { seq, source })?,
                )),
                String::from_utf8(payload).map_err(|_| corrupt())?,
            ),
            _ => return Err(corrupt()),
        };
        let triage = match &item {
            Item::Alert(a) => self
                .triage
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&a.id)
                .cloned(),
            Item::Event(_) => None,
        };
        Ok(StoredHit {
            seq,
            json,
            hit: Hit { item, triage },
        })
    }

    fn load_hits(&self, searcher: &Searcher, addrs: &[DocAddress]) -> Vec<StoredHit> {
        let mut out = Vec::with_capacity(addrs.len());
        for addr in addrs {
            match self
                .pointer(searcher, *addr)
                .and_then(|(seq, off)| self.load_hit(seq, off))
            {
                Ok(h) => out.push(h),
                // Deleted by retention between the index and the spool, or damaged.
                Err(e) => tracing::debug!(error = %e, "hit could not be loaded from the spool"),
            }
        }
        out
    }

    fn full_query(
        &self,
        q: &str,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> Result<(Box<dyn Query>, Option<AggSpec>), StoreError> {
        let parsed = query::parse(q)?;
        let states: HashMap<String, TriageState> = self
            .triage
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.state))
            .collect();
        let mut ctx = BuildCtx {
            fields: &self.fields,
            analyzer: text_analyzer(),
            now: Timestamp::now(),
            triage: &states,
        };
        let built = ctx.build(&parsed.ast)?;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, built)];
        let triage = Term::from_field_text(self.fields.get("kind"), "triage");
        if self.reader.searcher().doc_freq(&triage)? > 0 {
            clauses.push((
                Occur::MustNot,
                Box::new(TermQuery::new(triage, IndexRecordOption::Basic)),
            ));
        }
        if since.is_some() || until.is_some() {
            let t = self.fields.get("time");
            let lo = since.map_or(Bound::Unbounded, |s| {
                Bound::Included(Term::from_field_i64(t, s.0))
            });
            let hi = until.map_or(Bound::Unbounded, |u| {
                Bound::Included(Term::from_field_i64(t, u.0))
            });
            clauses.push((Occur::Must, Box::new(RangeQuery::new(lo, hi))));
        }
        if clauses.len() == 1 {
            let (_, q) = clauses.remove(0);
            return Ok((q, parsed.agg));
        }
        Ok((Box::new(BooleanQuery::new(clauses)), parsed.agg))
    }

    /// Run a query: newest first, `limit` hits after skipping `offset`, plus the aggregation
    /// named after a `|`.
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResponse, StoreError> {
        let (q, agg) = self.full_query(&req.query, req.since, req.until)?;
        let searcher = self.reader.searcher();
        // Counting alone lets tantivy answer from posting lengths where it can.
        let total = searcher.search(&q, &Count)?;
        let addrs = if req.limit > 0 && total > req.offset {
            self.newest(&searcher, &*q, req, total)?
        } else {
            Vec::new()
        };
        let aggregation = match agg {
            None => None,
            Some(AggSpec::Count) => Some(Aggregation::Count {
                count: total as u64,
            }),
            Some(AggSpec::Terms { field, limit }) => {
                let counts = searcher.search(&q, &TermsCollector { field })?;
                let all: u64 = counts.values().sum();
                let mut raw: Vec<(TermKey, u64)> = counts.into_iter().collect();
                if raw.len() > limit {
                    raw.select_nth_unstable_by(limit, |a, b| {
                        b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0))
                    });
                    raw.truncate(limit);
                }
                let mut buckets: Vec<(String, u64)> =
                    raw.into_iter().map(|(k, c)| (k.render(), c)).collect();
                buckets.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let other = all - buckets.iter().map(|b| b.1).sum::<u64>();
                Some(Aggregation::Terms {
                    field: field.name.to_string(),
                    buckets,
                    other,
                })
            }
            Some(AggSpec::Histogram { interval_ns }) => {
                let counts = searcher.search(&q, &HistogramCollector { interval_ns })?;
                let mut buckets: Vec<(Timestamp, u64)> =
                    counts.into_iter().map(|(k, v)| (Timestamp(k), v)).collect();
                buckets.sort();
                Some(Aggregation::Histogram {
                    interval_ns,
                    buckets,
                })
            }
        };
        let hits = self.load_hits(&searcher, &addrs);
        Ok(SearchResponse {
            total: total as u64,
            hits,
            aggregation,
        })
    }

    /// The newest `limit` matches after `offset`. Looks in a recent time window first and widens
    /// it until it holds enough matches, so "newest 20" does not sort the whole history.
    fn newest(
        &self,
        searcher: &Searcher,
        q: &dyn Query,
        req: &SearchRequest,
        total: usize,
    ) -> Result<Vec<DocAddress>, StoreError> {
        let top = || {
            TopDocs::with_limit(req.limit)
                .and_offset(req.offset)
                .order_by_fast_field::<i64>("time", Order::Desc)
        };
        let want = req.offset + req.limit;
        let mut t_max = i64::MIN;
        let mut t_min = i64::MAX;
        for seg in searcher.segment_readers() {
            if seg.num_docs() == 0 {
                continue;
            }
            let col = seg.fast_fields().i64("time")?;
            t_max = t_max.max(col.max_value());
            t_min = t_min.min(col.min_value());
        }
        let hi = req.until.map_or(t_max, |u| u.0.min(t_max));
        let floor = req.since.map_or(t_min, |s| s.0.max(t_min));
        let time = self.fields.get("time");
        let mut window: i64 = 60_000_000_000;
        // Small result sets and small indexes: one pass is cheaper than probing.
        if total > want.saturating_mul(4)
            && total > PROBE_MIN_MATCHES
            && searcher.num_docs() > PROBE_MIN_DOCS
        {
            while hi.saturating_sub(window) > floor {
                let lo = hi.saturating_sub(window);
                let windowed = BooleanQuery::new(vec![
                    (Occur::Must, q.box_clone()),
                    (
                        Occur::Must,
                        Box::new(RangeQuery::new(
                            Bound::Included(Term::from_field_i64(time, lo)),
                            Bound::Unbounded,
                        )),
                    ),
                ]);
                let found = searcher.search(&windowed, &top())?;
                if found.len() >= req.limit {
                    return Ok(found.into_iter().map(|(_, a)| a).collect());
                }
                window = window.saturating_mul(16);
            }
        }
        let found = searcher.search(q, &top())?;
        Ok(found.into_iter().map(|(_, a)| a).collect())
    }

    /// Alerts at or above `min_severity`, newest first.
    pub fn alerts(
        &self,
        since: Option<Timestamp>,
        min_severity: Severity,
        limit: usize,
    ) -> Result<Vec<StoredHit>, StoreError> {
        let sev: Vec<&str> = Severity::ALL
            .into_iter()
            .filter(|s| *s >= min_severity)
            .map(|s| s.name())
            .collect();
        let q = format!("kind:alert AND severity:({})", sev.join(" OR "));
        Ok(self
            .search(&SearchRequest {
                query: q,
                since,
                until: None,
                limit,
                offset: 0,
            })?
            .hits)
    }

    /// Sessions with records since `since`, most recently started first.
    pub fn sessions(&self, since: Option<Timestamp>) -> Result<Vec<SessionSummary>, StoreError> {
        let (q, _) = self.full_query("session.id:*", since, None)?;
        let searcher = self.reader.searcher();
        let accs = searcher.search(&q, &SessionsCollector)?;
        let mut out = Vec::with_capacity(accs.len());
        for (id, acc) in accs {
            let first = acc
                .first
                .and_then(|(_, seq, off)| self.load_hit(seq, off).ok());
            let (agent, root_exe, root_pid) = match first.as_ref().map(|h| &h.hit.item) {
                Some(Item::Event(e)) => (
                    e.agent_name().map(str::to_string),
                    Some(e.process.exe.to_str_lossy().into_owned()),
                    Some(e.process.pid),
                ),
                _ => (None, None, None),
            };
            out.push(SessionSummary {
                id,
                agent,
                start: Timestamp(acc.start),
                end: Timestamp(acc.end),
                events: acc.events,
                alerts: acc.alerts,
                root_exe,
                root_pid,
            });
        }
        out.sort_by(|a, b| b.start.cmp(&a.start).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// The timeline and process tree of session `id`; `None` when nothing is stored for it.
    pub fn session(&self, id: &str) -> Result<Option<SessionDetail>, StoreError> {
        let escaped: String = id
            .chars()
            .flat_map(|c| {
                if c == '"' || c == '\\' {
                    vec!['\\', c]
                } else {
                    vec![c]
                }
            })
            .collect();
        let (q, _) = self.full_query(&format!("session.id:\"{escaped}\""), None, None)?;
        let searcher = self.reader.searcher();
        let top = searcher.search(
            &q,
            &TopDocs::with_limit(MAX_SESSION_RECORDS)
                .order_by_fast_field::<i64>("time", Order::Asc),
        )?;
        if top.is_empty() {
            return Ok(None);
        }
        let addrs: Vec<DocAddress> = top.into_iter().map(|(_, a)| a).collect();
        let mut hits = self.load_hits(&searcher, &addrs);
        hits.sort_by_key(|h| (h.hit.item.time(), h.seq));
        let (alerts, events): (Vec<Hit>, Vec<Hit>) = hits
            .into_iter()
            .map(|h| h.hit)
            .partition(|h| matches!(h.item, Item::Alert(_)));
        let mut processes: Vec<ProcessNode> = Vec::new();
        let mut by_key: HashMap<(u32, i64), usize> = HashMap::new();
        for h in &events {
            let Item::Event(e) = &h.item else {
                continue;
            };
            if !matches!(
                e.kind(),
                Kind::ProcessExec | Kind::ProcessFork | Kind::SessionStart
            ) {
                continue;
            }
            let key = (e.process.pid, e.process.start.0);
            let exe = e.process.exe.to_str_lossy().into_owned();
            match by_key.get(&key) {
                Some(&i) => {
                    // A later exec replaces the image of the same process.
                    if e.kind() == Kind::ProcessExec {
                        processes[i].exe = exe;
                    }
                }
                None => {
                    by_key.insert(key, processes.len());
                    processes.push(ProcessNode {
                        pid: e.process.pid,
                        start: e.process.start,
                        exe,
                        parent_pid: e.parent.as_ref().map(|p| p.pid),
                        parent_start: e.parent.as_ref().and_then(|p| p.start),
                        children: Vec::new(),
                    });
                }
            }
        }
        let mut roots = Vec::new();
        for i in 0..processes.len() {
            let parent = match (processes[i].parent_pid, processes[i].parent_start) {
                (Some(pid), Some(start)) => by_key.get(&(pid, start.0)).copied(),
                (Some(pid), None) => processes
                    .iter()
                    .position(|p| p.pid == pid && p.start <= processes[i].start),
                _ => None,
            };
            match parent.filter(|&p| p != i) {
                Some(p) => processes[p].children.push(i),
                None => roots.push(i),
            }
        }
        Ok(Some(SessionDetail {
            id: id.to_string(),
            events,
            alerts,
            processes,
            roots,
        }))
    }

    /// Load hits by id (exact), for tests and tools.
    pub fn by_id(&self, id: &str) -> Result<Vec<StoredHit>, StoreError> {
        let q = TermQuery::new(
            Term::from_field_text(self.fields.get("id"), crate::schema::clip(id)),
            IndexRecordOption::Basic,
        );
        let searcher = self.reader.searcher();
        let top = searcher.search(
            &q,
            &TopDocs::with_limit(1000).order_by_fast_field::<u64>("_seq", Order::Asc),
        )?;
        let addrs: Vec<DocAddress> = top.into_iter().map(|(_, a)| a).collect();
        Ok(self.load_hits(&searcher, &addrs))
    }

    /// Number of documents in the index (including triage records).
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Store, StoreConfig};
    use agent_model::{Event, File, Kind, KindField};

    #[test]
    fn newest_first_probing_matches_a_full_sort() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(dir.path(), StoreConfig::default()).unwrap();
        // 600 events over three days, appended out of time order.
        let base = 1_795_255_200_000_000_000i64;
        for i in 0..600i64 {
            let t = base + ((i * 7919) % 600) * 431_000_000_000;
            let e = Event {
                id: format!("n{i}"),
                time: Timestamp(t),
                kind: KindField(Kind::FileOpen),
                file: Some(File {
                    path: if i % 3 == 0 { "/a".into() } else { "/b".into() },
                    ..File::default()
                }),
                ..Event::default()
            };
            s.append_event(&e).unwrap();
        }
        s.commit().unwrap();
        let r = s.reader().unwrap();
        for (q, offset, limit) in [
            ("*", 0, 5),
            ("*", 37, 10),
            ("path:/a", 0, 3),
            ("path:/a", 150, 60),
        ] {
            let got = r
                .search(&SearchRequest {
                    query: q.into(),
                    limit,
                    offset,
                    ..SearchRequest::default()
                })
                .unwrap();
            let all = r
                .search(&SearchRequest {
                    query: q.into(),
                    limit: 10_000,
                    ..SearchRequest::default()
                })
                .unwrap();
            let times: Vec<Timestamp> = all.hits.iter().map(|h| h.hit.item.time()).collect();
            assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
            let want: Vec<Timestamp> = times.into_iter().skip(offset).take(limit).collect();
            let have: Vec<Timestamp> = got.hits.iter().map(|h| h.hit.item.time()).collect();
            assert_eq!(have, want, "{q} offset {offset} limit {limit}");
            assert_eq!(got.total, all.total);
        }
    }
}
