//! The writer side: spool appends, the group-fsync thread and the indexer thread.
//! One file because the three share `Inner` and its locking order (writer, segments, published).

use std::collections::HashMap;
use std::fs::{self, File};
use std::ops::Bound;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use agent_model::{Alert, Event, Timestamp};
use tantivy::query::RangeQuery;
use tantivy::{Index, IndexWriter, ReloadPolicy, Term};

use crate::chain::{self, Chain};
use crate::codec;
use crate::mark::{self, Mark};
use crate::reader::Reader;
use crate::schema::{Fields, SCHEMA_VERSION, TEXT_TOKENIZER, text_analyzer};
use crate::spool::{
    self, FILE_MAGIC, HEADER, RecType, SegmentMeta, create_private, fsync_dir, io_err,
};
use crate::verify::{self, MarkView};
use crate::{
    OpenReport, StoreConfig, StoreError, StoreHealth, StoreStats, TriageEntry, TriageState,
};

/// Bytes buffered before they are written to the segment file.
const FLUSH_BYTES: usize = 1 << 20;
/// Buffered bytes past which appends fail (the disk is not taking writes).
const MAX_BACKLOG: usize = 256 << 20;
/// Records the indexer takes from the spool per round.
const PUMP_RECORDS: usize = 16_384;
/// After a failed spool write, how long before the next try (no busy loop on a full disk).
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// How long the indexer waits after an error before it rolls back to its last commit and retries.
const INDEX_RETRY: Duration = Duration::from_secs(1);
/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, Default)]
struct Published {
    /// Last seq written to the file (visible to the indexer).
    seq: u64,
    seg_first: u64,
    seg_len: u64,
}

struct Writer {
    file: Arc<File>,
    seg: SegmentMeta,
    /// Bytes in the file.
    file_len: u64,
    buf: Vec<u8>,
    next_seq: u64,
    /// Chain value after `next_seq - 1`.
    chain: Chain,
    unsynced: u64,
    /// After a failed write, when appends may try again.
    retry_after: Option<Instant>,
}

struct Inner {
    cfg: StoreConfig,
    spool_dir: PathBuf,
    index_dir: PathBuf,
    writer: Mutex<Writer>,
    /// Every segment, oldest first; the last one is the active segment.
    segments: Mutex<Vec<SegmentMeta>>,
    published: Mutex<Published>,
    durable: AtomicU64,
    indexed: AtomicU64,
    sync_req: Mutex<bool>,
    sync_cv: Condvar,
    shutdown: AtomicBool,
    /// Free space is below the daemon's reserve: only alerts, triage and monitor events are
    /// written (`Store::set_reserve_only`).
    reserve_only: AtomicBool,
    indexer_error: Mutex<Option<String>>,
    /// Disk-full state and drop counts (the indexer error is kept in `indexer_error`).
    health: Mutex<StoreHealth>,
    /// Where the high-water mark is kept, and the seq it was last written for.
    mark: Option<(PathBuf, Mutex<u64>)>,
}

enum Cmd {
    Commit(Sender<Result<u64, String>>),
    Retention(Sender<Result<(), String>>),
}

/// The daemon's handle on its data dir: the only writer.
pub struct Store {
    dir: PathBuf,
    inner: Arc<Inner>,
    index: Index,
    fields: Fields,
    cmd: Mutex<Sender<Cmd>>,
    threads: Vec<JoinHandle<()>>,
    _lock: File,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn private_dir(path: &Path, fixed: &mut Vec<PathBuf>) -> Result<(), StoreError> {
    fs::create_dir_all(path).map_err(io_err(path))?;
    let meta = fs::metadata(path).map_err(io_err(path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io_err(path))?;
        fixed.push(path.to_path_buf());
    }
    Ok(())
}

fn private_files(dir: &Path, fixed: &mut Vec<PathBuf>) -> Result<(), StoreError> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let p = e.path();
        if let Ok(m) = e.metadata()
            && m.is_file()
            && m.permissions().mode() & 0o077 != 0
        {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).map_err(io_err(&p))?;
            fixed.push(p);
        }
    }
    Ok(())
}

/// Create the segment file of `meta` (magic and anchor), durably.
fn new_segment(meta: &mut SegmentMeta, spool_dir: &Path, chain: &Chain) -> Result<(), StoreError> {
    let f = create_private(&meta.path)?;
    let head = spool::segment_head(meta.first_seq - 1, chain);
    f.set_len(0)
        .and_then(|_| f.write_all_at(&head, 0))
        .and_then(|_| f.sync_all())
        .map_err(io_err(&meta.path))?;
    meta.bytes = head.len() as u64;
    meta.last_seq = meta.first_seq - 1;
    fsync_dir(spool_dir)
}

/// Open the index at `path`, or say why it cannot be used. Returns the last seq it holds.
fn open_index(path: &Path, fields: &Fields) -> Result<(Index, u64), String> {
    if !path.join("meta.json").exists() {
        return Err("the index is missing".into());
    }
    let index = Index::open_in_dir(path).map_err(|e| format!("cannot open the index: {e}"))?;
    if index.schema() != fields.schema {
        return Err("the index schema differs from this version's".into());
    }
    let metas = index
        .load_metas()
        .map_err(|e| format!("cannot read index metadata: {e}"))?;
    let seq = match metas.payload.as_deref() {
        None if metas.segments.is_empty() => 0,
        None => return Err("the index has no commit payload".into()),
        Some(p) => {
            let v: serde_json::Value =
                serde_json::from_str(p).map_err(|e| format!("bad commit payload: {e}"))?;
            if v.get("schema").and_then(|s| s.as_u64()) != Some(u64::from(SCHEMA_VERSION)) {
                return Err("the index schema version differs".into());
            }
            v.get("last_seq")
                .and_then(|s| s.as_u64())
                .ok_or("the commit payload has no `last_seq`")?
        }
    };
    index.tokenizers().register(TEXT_TOKENIZER, text_analyzer());
    // Opening every segment reader catches deleted or truncated segment files.
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
        .map_err(|e| format!("cannot open index segments: {e}"))?;
    drop(reader);
    let missing = index
        .validate_checksum()
        .map_err(|e| format!("cannot verify index files: {e}"))?;
    if !missing.is_empty() {
        return Err(format!(
            "`{}` index files fail their checksum",
            missing.len()
        ));
    }
    Ok((index, seq))
}

/// The spool offset the index holds for `seq`, if it has a document for it.
fn indexed_offset(index: &Index, fields: &Fields, seq: u64) -> Option<u64> {
    let reader: tantivy::IndexReader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
        .ok()?;
    let searcher = reader.searcher();
    let q = RangeQuery::new(
        Bound::Included(Term::from_field_u64(fields.seq, seq)),
        Bound::Included(Term::from_field_u64(fields.seq, seq)),
    );
    let docs = searcher
        .search(&q, &tantivy::collector::DocSetCollector)
        .ok()?;
    let addr = docs.into_iter().next()?;
    let ff = searcher.segment_reader(addr.segment_ord).fast_fields();
    ff.u64("_off").ok()?.first(addr.doc_id)
}

fn create_index(path: &Path, fields: &Fields) -> Result<Index, StoreError> {
    if path.exists() {
        fs::remove_dir_all(path).map_err(io_err(path))?;
    }
    fs::create_dir_all(path).map_err(io_err(path))?;
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
    let index = Index::create_in_dir(path, fields.schema.clone())?;
    index.tokenizers().register(TEXT_TOKENIZER, text_analyzer());
    Ok(index)
}

impl Store {
    /// Open (or create) the data dir `dir`: verify and repair the spool, open or rebuild the
    /// index, and start the fsync and indexer threads, which replay the spool tail.
    pub fn open(dir: &Path, cfg: StoreConfig) -> Result<(Store, OpenReport), StoreError> {
        let mut report = OpenReport::default();
        private_dir(dir, &mut report.permissions_fixed)?;
        let spool_dir = dir.join("spool");
        let index_dir = dir.join("index");
        let quarantine_dir = dir.join("quarantine");
        private_dir(&spool_dir, &mut report.permissions_fixed)?;
        let lock_path = dir.join("writer.lock");
        let lock_file = create_private(&lock_path)?;
        if lock_file.try_lock().is_err() {
            return Err(StoreError::Locked(dir.to_path_buf()));
        }
        private_files(&spool_dir, &mut report.permissions_fixed)?;

        // 1. The spool, checked against the chain, its anchors and the mark.
        let mark_read = cfg.mark.as_deref().map(mark::read);
        let mark_now: Option<Mark> = match &mark_read {
            Some(Ok(Some(m))) => Some(m.clone()),
            _ => None,
        };
        let listed = spool::list_segments(&spool_dir)?;
        let mut scans = Vec::with_capacity(listed.len() + 1);
        for (i, (first, path)) in listed.iter().enumerate() {
            let last = i + 1 == listed.len();
            scans.push(spool::scan_and_repair(
                path,
                *first,
                &quarantine_dir,
                last,
                mark_now.as_ref().map(|m| m.last_seq),
                &mut report.damaged,
            )?);
        }
        let view = match &mark_read {
            None => MarkView::NotUsed,
            Some(Ok(None)) => MarkView::Missing,
            Some(Ok(Some(m))) => MarkView::Present(m),
            Some(Err(why)) => MarkView::Invalid(why),
        };
        report.findings = verify::analyze(&scans, view);
        for f in &report.findings {
            if f.kind.is_tamper() {
                tracing::warn!(kind = f.kind.name(), detail = %f.detail, "spool tamper evidence");
            }
        }
        let mut segments: Vec<SegmentMeta> = scans.iter().map(|s| s.meta.clone()).collect();
        let mut expect: Option<u64> = None;
        for s in &segments {
            report.missing_seqs.extend(s.gaps.iter().copied());
            if let Some(e) = expect
                && s.first_seq > e
            {
                report.missing_seqs.push((e, s.first_seq - 1));
            }
            if s.last_seq >= s.first_seq {
                expect = Some(s.last_seq + 1);
            } else {
                expect = Some(expect.unwrap_or(s.first_seq).max(s.first_seq));
            }
        }
        // Records the mark says were durable and the spool lost: their seqs are never reused,
        // and the new segment's anchor continues the chain the mark knew.
        let spool_last = segments.iter().map(|s| s.last_seq).max().unwrap_or(0);
        let floor = mark_now.as_ref().map_or(0, |m| m.last_seq);
        if floor > spool_last {
            report.missing_seqs.push((spool_last + 1, floor));
        }
        let mut chain = match scans.last() {
            Some(s) if s.meta.format == 3 => s.last_chain.unwrap_or(chain::GENESIS),
            _ => chain::GENESIS,
        };
        if let Some(m) = mark_now.as_ref().filter(|_| floor > spool_last) {
            chain = m.last_chain;
        }
        let next_seq = (spool_last + 1)
            .max(floor + 1)
            .max(segments.last().map_or(1, |s| s.first_seq));
        // New records go to a chained segment: one of an older format (from an older version)
        // is closed and stays readable as it is; an empty one is rewritten.
        let keep = scans
            .last()
            .is_some_and(|s| s.meta.format == 3 && s.anchor.is_some() && floor <= spool_last);
        let empty_last = scans
            .last()
            .is_some_and(|s| s.first_rec.is_none() && s.meta.first_seq == next_seq);
        if !keep {
            match segments.last_mut() {
                Some(last) if empty_last => new_segment(last, &spool_dir, &chain)?,
                last => {
                    if let Some(last) = last {
                        File::open(&last.path)
                            .and_then(|f| f.sync_all())
                            .map_err(io_err(&last.path))?;
                    }
                    let mut meta = SegmentMeta::new(&spool_dir, next_seq);
                    new_segment(&mut meta, &spool_dir, &chain)?;
                    segments.push(meta);
                }
            }
        }
        let active = segments
            .last()
            .cloned()
            .unwrap_or_else(|| SegmentMeta::new(&spool_dir, 1));
        report.last_seq = next_seq - 1;
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&active.path)
            .map_err(io_err(&active.path))?;
        // What a crashed process left in the page cache becomes durable before it is indexed.
        file.sync_all().map_err(io_err(&active.path))?;

        // 2. The index.
        let fields = Fields::build();
        let (index, indexed_seq) = match open_index(&index_dir, &fields) {
            Ok((index, seq)) if seq <= report.last_seq => (index, seq),
            Ok((_, seq)) => {
                let why = format!(
                    "the index holds records up to `{seq}` but the spool ends at `{}`",
                    report.last_seq
                );
                report.index_rebuilt = Some(why);
                (create_index(&index_dir, &fields)?, 0)
            }
            Err(why) => {
                let had_data = report.last_seq > 0;
                let idx = create_index(&index_dir, &fields)?;
                if had_data {
                    report.index_rebuilt = Some(why);
                }
                (idx, 0)
            }
        };
        if let Some(why) = &report.index_rebuilt {
            tracing::warn!(reason = %why, "rebuilding the index from the spool");
        }
        let mut indexed_seq = indexed_seq;
        let mut writer: IndexWriter =
            index.writer_with_num_threads(cfg.index_threads.max(1), cfg.index_memory_bytes)?;
        // Documents of quarantined records point at padding now: drop them.
        for (a, b) in &report.missing_seqs {
            writer.delete_query(Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_u64(fields.seq, *a)),
                Bound::Included(Term::from_field_u64(fields.seq, *b)),
            )))?;
        }
        // Where records were cut out or rewritten with another length, index documents point at
        // offsets that moved: from the first such record on, they are deleted and indexed again.
        let resync = scans
            .iter()
            .flat_map(|s| s.resync.iter().copied())
            .filter(|&(seq, off)| {
                seq <= indexed_seq && indexed_offset(&index, &fields, seq) != Some(off)
            })
            .map(|(seq, _)| seq)
            .min();
        if let Some(r) = resync {
            // Committed at once: the spool repair above is already durable, so a crash now
            // must not leave documents pointing at moved records.
            writer.delete_query(Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_u64(fields.seq, r)),
                Bound::Unbounded,
            )))?;
            indexed_seq = r - 1;
            let payload = serde_json::json!({ "last_seq": indexed_seq, "schema": SCHEMA_VERSION });
            let mut pc = writer.prepare_commit()?;
            pc.set_payload(&payload.to_string());
            pc.commit()?;
        }
        report.replayed = report.last_seq.saturating_sub(indexed_seq);
        let mark = cfg.mark.clone().map(|p| {
            let first = segments.first().map_or(1, |s| s.first_seq);
            let m = Mark {
                last_seq: next_seq - 1,
                last_chain: chain,
                segments: segments.len() as u64,
                first_seq: first,
            };
            if let Err(e) = mark::write(&p, &m) {
                tracing::warn!(mark = %p.display(), error = %e, "cannot write the high-water mark");
            }
            (p, Mutex::new(next_seq - 1))
        });

        let cursor_seg = segments
            .iter()
            .find(|s| s.last_seq > indexed_seq || s.first_seq > indexed_seq)
            .map(|s| s.first_seq)
            .unwrap_or(active.first_seq);
        let inner = Arc::new(Inner {
            cfg: cfg.clone(),
            spool_dir: spool_dir.clone(),
            index_dir: index_dir.clone(),
            writer: Mutex::new(Writer {
                file: Arc::new(file),
                file_len: active.bytes,
                seg: active.clone(),
                buf: Vec::with_capacity(FLUSH_BYTES + (64 << 10)),
                next_seq,
                chain,
                unsynced: 0,
                retry_after: None,
            }),
            segments: Mutex::new(segments),
            published: Mutex::new(Published {
                seq: next_seq - 1,
                seg_first: active.first_seq,
                seg_len: active.bytes,
            }),
            durable: AtomicU64::new(next_seq - 1),
            indexed: AtomicU64::new(indexed_seq),
            sync_req: Mutex::new(false),
            sync_cv: Condvar::new(),
            shutdown: AtomicBool::new(false),
            reserve_only: AtomicBool::new(false),
            indexer_error: Mutex::new(None),
            health: Mutex::new(StoreHealth::default()),
            mark,
        });
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::new();
        {
            let inner = inner.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("store-sync".into())
                    .spawn(move || sync_loop(&inner))
                    .map_err(io_err(dir))?,
            );
        }
        {
            let mut ix = Indexer {
                inner: inner.clone(),
                fields: fields.clone(),
                writer,
                rx,
                cursor_seg,
                cursor_off: FILE_MAGIC.len() as u64,
                file: None,
                last_added: indexed_seq,
                committed: indexed_seq,
                first_uncommitted: (!report.missing_seqs.is_empty()).then(Instant::now),
                last_retention: Instant::now(),
                chunk: Vec::new(),
                event: Event::default(),
            };
            threads.push(
                std::thread::Builder::new()
                    .name("store-index".into())
                    .spawn(move || ix.run())
                    .map_err(io_err(dir))?,
            );
        }
        tracing::info!(dir = %dir.display(), last_seq = report.last_seq, indexed_seq, "store opened");
        Ok((
            Store {
                dir: dir.to_path_buf(),
                inner,
                index,
                fields,
                cmd: Mutex::new(tx),
                threads,
                _lock: lock_file,
            },
            report,
        ))
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn append(
        &self,
        ty: RecType,
        reserved: bool,
        time: i64,
        fill: impl FnOnce(&mut Vec<u8>) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let inner = &*self.inner;
        let mut w = lock(&inner.writer);
        if !reserved && w.retry_after.is_none() && inner.reserve_only.load(Ordering::Relaxed) {
            // The disk's last space is kept for alerts and monitor events: refused, counted.
            // (In an outage the backlog below decides, as without a reserve.)
            lock(&inner.health).reserve_dropped += 1;
            return Err(StoreError::Reserve);
        }
        if w.retry_after.is_some() {
            // The disk does not take writes: keep records in memory up to the backlog (alerts,
            // triage and monitor events up to the larger reserve), then refuse and count them.
            // A refused record gets no seq, so the chain has no hole; the gap is counted.
            let limit = if reserved {
                MAX_BACKLOG
            } else {
                inner.cfg.backlog_bytes.min(MAX_BACKLOG)
            };
            if w.buf.len() >= limit && try_flush(inner, &mut w).is_err() {
                let mut h = lock(&inner.health);
                h.dropped += 1;
                h.outage_dropped += 1;
                return Err(StoreError::Backlog(w.buf.len()));
            }
        }
        if w.retry_after.is_none()
            && w.file_len + w.buf.len() as u64 >= inner.cfg.segment_bytes
            && w.seg.last_seq >= w.seg.first_seq
            && let Err(e) = rotate(inner, &mut w)
        {
            // The record goes on into the current segment; the next flush retries.
            failed(inner, &mut w, &e);
        }
        let seq = w.next_seq;
        let start = w.buf.len();
        let wr = &mut *w;
        spool::encode_into(&mut wr.buf, seq, time, ty, Some(&mut wr.chain), fill)?;
        let len = w.buf.len() - start - HEADER;
        w.seg.count(&spool::RecHeader {
            seq,
            time,
            ty,
            len,
            chained: true,
        });
        w.next_seq += 1;
        w.unsynced += 1;
        if w.buf.len() >= FLUSH_BYTES {
            // A failed write keeps the bytes buffered; retried after a pause, not on every append.
            let _ = try_flush(inner, &mut w);
        }
        if w.unsynced >= inner.cfg.sync_every_events {
            w.unsynced = 0;
            drop(w);
            *lock(&inner.sync_req) = true;
            inner.sync_cv.notify_one();
        }
        Ok(seq)
    }

    /// Append an event to the spool. Returns its sequence number; it is acknowledged (durable)
    /// once [`Store::durable_seq`] reaches it (group fsync) or after [`Store::sync`].
    pub fn append_event(&self, e: &Event) -> Result<u64, StoreError> {
        let reserved = e.kind().name().starts_with("monitor.");
        self.append(RecType::Event, reserved, e.time.0, |buf| {
            codec::encode_event(buf, e);
            Ok(())
        })
    }

    /// Append an alert (indexed with `kind:alert`).
    pub fn append_alert(&self, a: &Alert) -> Result<u64, StoreError> {
        self.append(RecType::Alert, true, a.time.0, |buf| {
            serde_json::to_writer(&mut *buf, a)
                .map_err(|source| StoreError::Json { seq: 0, source })
        })
    }

    /// Record a triage change of an alert, durably (fsynced before returning).
    pub fn set_triage(
        &self,
        alert_id: &str,
        state: TriageState,
        note: &str,
        by: &str,
    ) -> Result<u64, StoreError> {
        let rec = TriageEntry {
            alert_id: alert_id.to_string(),
            state,
            note: note.to_string(),
            by: by.to_string(),
            time: Timestamp::now(),
        };
        let seq = self.append(RecType::Triage, true, rec.time.0, |buf| {
            serde_json::to_writer(&mut *buf, &rec)
                .map_err(|source| StoreError::Json { seq: 0, source })
        })?;
        self.sync()?;
        Ok(seq)
    }

    /// Write and fsync everything appended so far. Returns the durable seq.
    pub fn sync(&self) -> Result<u64, StoreError> {
        do_sync(&self.inner)
    }

    /// Keep the disk's remaining space for alerts, triage and monitor events (`true`), refusing
    /// other events (counted in [`StoreHealth::reserve_dropped`]), or write everything again.
    pub fn set_reserve_only(&self, on: bool) {
        self.inner.reserve_only.store(on, Ordering::Relaxed);
    }

    /// Last fsynced (acknowledged) sequence.
    pub fn durable_seq(&self) -> u64 {
        self.inner.durable.load(Ordering::Acquire)
    }

    /// Index everything appended so far and commit now. Returns the indexed seq.
    pub fn commit(&self) -> Result<u64, StoreError> {
        do_sync(&self.inner)?;
        let (tx, rx) = mpsc::channel();
        lock(&self.cmd)
            .send(Cmd::Commit(tx))
            .map_err(|_| self.indexer_gone())?;
        rx.recv()
            .map_err(|_| self.indexer_gone())?
            .map_err(StoreError::Indexer)
    }

    /// Apply retention now (it also runs every few seconds in the background).
    pub fn enforce_retention(&self) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::channel();
        lock(&self.cmd)
            .send(Cmd::Retention(tx))
            .map_err(|_| self.indexer_gone())?;
        rx.recv()
            .map_err(|_| self.indexer_gone())?
            .map_err(StoreError::Indexer)
    }

    fn indexer_gone(&self) -> StoreError {
        StoreError::Indexer(
            lock(&self.inner.indexer_error)
                .clone()
                .unwrap_or_else(|| "stopped".into()),
        )
    }

    /// Whether the spool takes writes, what was dropped, and the indexer's pending error.
    pub fn health(&self) -> StoreHealth {
        let mut h = lock(&self.inner.health).clone();
        h.index_error = lock(&self.inner.indexer_error).clone();
        h
    }

    /// Counters for `agentwatch status`.
    pub fn stats(&self) -> StoreStats {
        let segs = lock(&self.inner.segments).clone();
        let (last_seq, active_events, active_alerts, active_bytes, active_first) = {
            let w = lock(&self.inner.writer);
            (
                w.next_seq - 1,
                w.seg.events,
                w.seg.alerts,
                w.file_len + w.buf.len() as u64,
                w.seg.first_seq,
            )
        };
        let mut st = StoreStats {
            last_seq,
            durable_seq: self.durable_seq(),
            indexed_seq: self.inner.indexed.load(Ordering::Acquire),
            ..StoreStats::default()
        };
        for s in &segs {
            if s.first_seq == active_first {
                continue;
            }
            st.events += s.events;
            st.alerts += s.alerts;
            st.spool_bytes += s.bytes;
        }
        st.events += active_events;
        st.alerts += active_alerts;
        st.spool_bytes += active_bytes;
        st.lag = st.last_seq.saturating_sub(st.indexed_seq);
        let h = self.health();
        st.full = h.full;
        st.space_error = h.error;
        st.dropped = h.dropped;
        st.outages = h.outages;
        st.reserve_dropped = h.reserve_dropped;
        st.index_error = h.index_error;
        st.index_bytes = dir_size(&self.dir.join("index"));
        st
    }

    /// A reader for the daemon's own queries (sees commits after [`Reader::reload`]).
    pub fn reader(&self) -> Result<Reader, StoreError> {
        Reader::from_index(&self.dir, self.index.clone(), self.fields.clone())
    }

    /// Flush, fsync, commit and stop the background threads.
    pub fn close(mut self) -> Result<(), StoreError> {
        let r = self.sync().and_then(|_| self.commit());
        self.stop();
        r.map(|_| ())
    }

    fn stop(&mut self) {
        self.inner.shutdown.store(true, Ordering::Release);
        self.inner.sync_cv.notify_all();
        // Dropping the sender wakes the indexer.
        let (dead, _) = mpsc::channel();
        *lock(&self.cmd) = dead;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            let _ = self.sync();
            self.stop();
        }
    }
}

pub(crate) fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Write the buffer to the segment file and publish it to the indexer.
fn flush_locked(inner: &Inner, w: &mut Writer) -> Result<(), StoreError> {
    if w.buf.is_empty() {
        return Ok(());
    }
    if let Err(e) = w.file.write_all_at(&w.buf, w.file_len) {
        // Cut whatever part reached the file so the segment stays a clean series of records.
        let _ = w.file.set_len(w.file_len);
        if w.buf.len() >= MAX_BACKLOG {
            return Err(StoreError::Backlog(w.buf.len()));
        }
        return Err(io_err(&w.seg.path)(e));
    }
    w.file_len += w.buf.len() as u64;
    w.buf.clear();
    w.seg.bytes = w.file_len;
    {
        let mut segs = lock(&inner.segments);
        if let Some(last) = segs.last_mut()
            && last.first_seq == w.seg.first_seq
        {
            *last = w.seg.clone();
        }
    }
    Ok(())
}

/// The error and its causes on one line.
fn chain_text(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Enter (or stay in) the failing state after a spool write error: retries wait `RETRY_EVERY`.
fn failed(inner: &Inner, w: &mut Writer, e: &StoreError) {
    w.retry_after = Some(Instant::now() + RETRY_EVERY);
    let msg = chain_text(e);
    let mut h = lock(&inner.health);
    if !h.full {
        h.full = true;
        h.outages += 1;
        h.outage_dropped = 0;
        h.full_since = Some(Timestamp::now());
        tracing::error!(error = %msg, buffered = w.buf.len(), "spool writes fail; buffering in memory, then dropping and counting");
    }
    h.error = Some(msg);
}

/// Flush unless a failed write is waiting for its retry time; track the failing state.
fn try_flush(inner: &Inner, w: &mut Writer) -> Result<(), StoreError> {
    if let Some(t) = w.retry_after
        && Instant::now() < t
    {
        let cause = lock(&inner.health).error.clone().unwrap_or_default();
        return Err(StoreError::NoSpace {
            buffered: w.buf.len(),
            cause,
        });
    }
    match flush_locked(inner, w) {
        Ok(()) => {
            if w.retry_after.take().is_some() {
                let mut h = lock(&inner.health);
                h.full = false;
                h.error = None;
                h.resumed_at = Some(Timestamp::now());
                tracing::info!(dropped = h.outage_dropped, "spool writes resumed");
            }
            Ok(())
        }
        Err(e) => {
            failed(inner, w, &e);
            Err(e)
        }
    }
}

/// Let the indexer see records up to `p`, never moving backwards. Only fsynced records are
/// published, so an index commit never claims a record a power loss could take away.
fn publish(inner: &Inner, p: Published) {
    let mut cur = lock(&inner.published);
    if p.seq > cur.seq || (p.seq == cur.seq && p.seg_first >= cur.seg_first) {
        *cur = p;
    }
}

fn rotate(inner: &Inner, w: &mut Writer) -> Result<(), StoreError> {
    flush_locked(inner, w)?;
    w.file.sync_data().map_err(io_err(&w.seg.path))?;
    inner.durable.fetch_max(w.next_seq - 1, Ordering::AcqRel);
    let mut meta = SegmentMeta::new(&inner.spool_dir, w.next_seq);
    let f = create_private(&meta.path)?;
    let head = spool::segment_head(w.next_seq - 1, &w.chain);
    if let Err(e) = f.write_all_at(&head, 0).and_then(|_| f.sync_data()) {
        let _ = fs::remove_file(&meta.path);
        return Err(io_err(&meta.path)(e));
    }
    fsync_dir(&inner.spool_dir)?;
    meta.bytes = head.len() as u64;
    lock(&inner.segments).push(meta.clone());
    w.file = Arc::new(f);
    w.file_len = head.len() as u64;
    w.seg = meta;
    publish(
        inner,
        Published {
            seq: w.next_seq - 1,
            seg_first: w.seg.first_seq,
            seg_len: w.file_len,
        },
    );
    Ok(())
}

fn do_sync(inner: &Inner) -> Result<u64, StoreError> {
    let (file, path, chain, target) = {
        let mut w = lock(&inner.writer);
        try_flush(inner, &mut w)?;
        w.unsynced = 0;
        (
            w.file.clone(),
            w.seg.path.clone(),
            w.chain,
            Published {
                seq: w.next_seq - 1,
                seg_first: w.seg.first_seq,
                seg_len: w.file_len,
            },
        )
    };
    if inner.durable.load(Ordering::Acquire) < target.seq {
        file.sync_data().map_err(io_err(&path))?;
        inner.durable.fetch_max(target.seq, Ordering::AcqRel);
    }
    publish(inner, target);
    write_mark(inner, target.seq, chain);
    Ok(target.seq)
}

/// Record `seq` and its chain value in the high-water mark, once durable. A failure is logged,
/// not returned: the spool is what must not fail.
fn write_mark(inner: &Inner, seq: u64, chain: Chain) {
    let Some((path, written)) = &inner.mark else {
        return;
    };
    let mut written = lock(written);
    if *written >= seq {
        return;
    }
    let (segments, first_seq) = {
        let segs = lock(&inner.segments);
        (segs.len() as u64, segs.first().map_or(1, |s| s.first_seq))
    };
    let m = Mark {
        last_seq: seq,
        last_chain: chain,
        segments,
        first_seq,
    };
    match mark::write(path, &m) {
        Ok(()) => *written = seq,
        Err(e) => {
            tracing::warn!(mark = %path.display(), error = %e, "cannot write the high-water mark")
        }
    }
}

/// After retention: the mark's first seq and segment count follow, so that the next open does
/// not take retention for a deletion.
fn refresh_mark(inner: &Inner) {
    let Some((path, written)) = &inner.mark else {
        return;
    };
    let _written = lock(written);
    if let Ok(Some(mut m)) = mark::read(path) {
        let segs = lock(&inner.segments);
        m.segments = segs.len() as u64;
        m.first_seq = segs.first().map_or(m.first_seq, |s| s.first_seq);
        drop(segs);
        if let Err(e) = mark::write(path, &m) {
            tracing::warn!(mark = %path.display(), error = %e, "cannot write the high-water mark");
        }
    }
}

fn sync_loop(inner: &Inner) {
    loop {
        {
            let mut req = lock(&inner.sync_req);
            if !*req && !inner.shutdown.load(Ordering::Acquire) {
                req = inner
                    .sync_cv
                    .wait_timeout(req, inner.cfg.sync_every)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            *req = false;
        }
        if let Err(e) = do_sync(inner) {
            // A failing disk is reported once by `failed`, not every period.
            if !lock(&inner.health).full {
                tracing::warn!(error = %e, "spool fsync failed");
            }
        }
        if inner.shutdown.load(Ordering::Acquire) {
            return;
        }
    }
}

struct Indexer {
    inner: Arc<Inner>,
    fields: Fields,
    writer: IndexWriter,
    rx: Receiver<Cmd>,
    cursor_seg: u64,
    cursor_off: u64,
    file: Option<(u64, File)>,
    last_added: u64,
    committed: u64,
    first_uncommitted: Option<Instant>,
    last_retention: Instant,
    chunk: Vec<u8>,
    /// The event records are decoded into, reused to spare allocations.
    event: Event,
}

impl Indexer {
    /// Index until shutdown. An error (a full disk, mostly) does not stop the thread: it waits,
    /// rolls the writer back to its last commit and indexes again from there.
    fn run(&mut self) {
        loop {
            let Err(e) = self.run_inner() else { return };
            let msg = chain_text(&e);
            let mut cur = lock(&self.inner.indexer_error);
            if cur.as_deref() != Some(msg.as_str()) {
                tracing::error!(error = %msg, "indexer failed; will roll back and retry");
            }
            *cur = Some(msg);
            drop(cur);
            let until = Instant::now() + INDEX_RETRY;
            while Instant::now() < until {
                if self.inner.shutdown.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if let Err(e) = self.restart() {
                *lock(&self.inner.indexer_error) = Some(chain_text(&e));
            }
        }
    }

    /// Drop what was added since the last commit and read the spool again from there.
    fn restart(&mut self) -> Result<(), StoreError> {
        self.writer.rollback()?;
        self.last_added = self.committed;
        self.first_uncommitted = None;
        self.file = None;
        let segs = lock(&self.inner.segments);
        self.cursor_seg = segs
            .iter()
            .find(|s| s.last_seq > self.committed || s.first_seq > self.committed)
            .or(segs.last())
            .map_or(self.cursor_seg, |s| s.first_seq);
        self.cursor_off = FILE_MAGIC.len() as u64;
        Ok(())
    }

    fn run_inner(&mut self) -> Result<(), StoreError> {
        loop {
            let pumped = self.pump(PUMP_RECORDS)?;
            let uncommitted = self.last_added - self.committed;
            let pending = uncommitted > 0 || self.first_uncommitted.is_some();
            if pending
                && (uncommitted >= self.inner.cfg.commit_every_events
                    || self
                        .first_uncommitted
                        .is_some_and(|t| t.elapsed() >= self.inner.cfg.commit_every))
            {
                self.commit()?;
            }
            if self.last_retention.elapsed() >= RETENTION_EVERY {
                self.last_retention = Instant::now();
                if let Err(e) = self.retention() {
                    tracing::warn!(error = %e, "retention failed");
                }
            }
            let wait = if pumped > 0 {
                Duration::ZERO
            } else {
                Duration::from_millis(20)
            };
            match self.rx.recv_timeout(wait) {
                Ok(Cmd::Commit(reply)) => {
                    let r = self.catch_up().and_then(|_| self.commit());
                    let _ = reply.send(r.map(|_| self.committed).map_err(|e| e.to_string()));
                }
                Ok(Cmd::Retention(reply)) => {
                    let r = self.catch_up().and_then(|_| self.retention());
                    let _ = reply.send(r.map_err(|e| e.to_string()));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if self.inner.shutdown.load(Ordering::Acquire) {
                        self.catch_up()?;
                        if self.last_added > self.committed || self.first_uncommitted.is_some() {
                            self.commit()?;
                        }
                        return Ok(());
                    }
                }
            }
        }
    }

    fn catch_up(&mut self) -> Result<(), StoreError> {
        let target = lock(&self.inner.published).seq;
        while self.last_added < target {
            if self.pump(PUMP_RECORDS)? == 0 {
                break;
            }
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        let payload = serde_json::json!({ "last_seq": self.last_added, "schema": SCHEMA_VERSION });
        let mut pc = self.writer.prepare_commit()?;
        pc.set_payload(&payload.to_string());
        pc.commit()?;
        self.committed = self.last_added;
        self.first_uncommitted = None;
        self.inner.indexed.store(self.committed, Ordering::Release);
        if lock(&self.inner.indexer_error).take().is_some() {
            tracing::info!(indexed_seq = self.committed, "indexer resumed");
        }
        // tantivy creates its files with the process umask; keep them private.
        let mut fixed = Vec::new();
        let _ = private_files(&self.inner.index_dir, &mut fixed);
        tracing::debug!(indexed_seq = self.committed, "index committed");
        Ok(())
    }

    /// Index up to `max` fsynced records. Returns how many were read.
    fn pump(&mut self, max: usize) -> Result<usize, StoreError> {
        let published = *lock(&self.inner.published);
        if self.last_added >= published.seq {
            return Ok(0);
        }
        let mut n = 0;
        while n < max {
            let (end, next_seg) = if self.cursor_seg == published.seg_first {
                (published.seg_len, None)
            } else {
                let segs = lock(&self.inner.segments);
                let cur = segs.iter().find(|s| s.first_seq == self.cursor_seg);
                let next = segs
                    .iter()
                    .find(|s| s.first_seq > self.cursor_seg)
                    .map(|s| s.first_seq);
                match cur {
                    Some(c) => (c.bytes, next),
                    None => (0, next),
                }
            };
            if self.cursor_off >= end {
                match next_seg {
                    Some(next) => {
                        self.cursor_seg = next;
                        self.cursor_off = FILE_MAGIC.len() as u64;
                        continue;
                    }
                    None => break,
                }
            }
            let got = self.read_chunk(end)?;
            if got == 0 {
                break;
            }
            n += got;
        }
        if n > 0 && self.first_uncommitted.is_none() && self.last_added > self.committed {
            self.first_uncommitted = Some(Instant::now());
        }
        Ok(n)
    }

    fn open_cursor_file(&mut self) -> Result<(), StoreError> {
        if self
            .file
            .as_ref()
            .is_some_and(|(s, _)| *s == self.cursor_seg)
        {
            return Ok(());
        }
        let path = spool::segment_path(&self.inner.spool_dir, self.cursor_seg);
        let f = File::open(&path).map_err(io_err(&path))?;
        self.file = Some((self.cursor_seg, f));
        Ok(())
    }

    /// Read and index records of the cursor segment up to `end`.
    fn read_chunk(&mut self, end: u64) -> Result<usize, StoreError> {
        self.open_cursor_file()?;
        let Some((seg, file)) = self.file.take() else {
            return Ok(0);
        };
        let r = self.read_chunk_from(&file, end);
        self.file = Some((seg, file));
        r
    }

    fn read_chunk_from(&mut self, file: &File, end: u64) -> Result<usize, StoreError> {
        let path = spool::segment_path(&self.inner.spool_dir, self.cursor_seg);
        let want = (end - self.cursor_off).min(8 << 20) as usize;
        let mut chunk = std::mem::take(&mut self.chunk);
        chunk.resize(want, 0);
        file.read_exact_at(&mut chunk[..want], self.cursor_off)
            .map_err(io_err(&path))?;
        let mut pos = 0usize;
        let mut n = 0;
        let mut result = Ok(());
        while pos + HEADER <= want {
            let b = &chunk[pos..want];
            let len = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
            if pos + HEADER + len > want {
                if pos == 0 {
                    // One record bigger than the chunk: read it whole.
                    let mut big = vec![0u8; HEADER + len];
                    let off = self.cursor_off;
                    result = file
                        .read_exact_at(&mut big, off)
                        .map_err(io_err(&path))
                        .and_then(|_| self.index_record(&big, off, &path))
                        .map(|used| {
                            pos = used;
                            n += 1;
                        });
                }
                break;
            }
            let off = self.cursor_off + pos as u64;
            match self.index_record(&chunk[pos..pos + HEADER + len], off, &path) {
                Ok(used) => pos += used,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            n += 1;
        }
        self.cursor_off += pos as u64;
        self.chunk = chunk;
        result.map(|_| n)
    }

    fn index_record(&mut self, rec: &[u8], off: u64, path: &Path) -> Result<usize, StoreError> {
        let Some(h) = spool::parse(rec) else {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                offset: off,
            });
        };
        let used = HEADER + h.len;
        if !h.ty.is_data() || h.seq <= self.last_added {
            return Ok(used);
        }
        let payload = &rec[h.body_off()..used];
        let doc = match h.ty {
            RecType::Event => match codec::decode_event_into(payload, &mut self.event) {
                Ok(()) => Ok(self.fields.event_doc(&self.event, h.seq, off)),
                Err(_) => Err("the event does not decode".to_string()),
            },
            RecType::JsonEvent => serde_json::from_slice::<Event>(payload)
                .map(|e| self.fields.event_doc(&e, h.seq, off))
                .map_err(|e| e.to_string()),
            RecType::Alert => serde_json::from_slice::<Alert>(payload)
                .map(|a| {
                    // The engine re-emits a folded alert with the same id, a higher count and a
                    // later last time: the newest copy replaces the older ones in the index.
                    self.writer.delete_term(Term::from_field_text(
                        self.fields.at(const { crate::schema::spec_index("id") }),
                        &a.id,
                    ));
                    self.fields.alert_doc(&a, h.seq, off)
                })
                .map_err(|e| e.to_string()),
            RecType::Triage => serde_json::from_slice::<TriageEntry>(payload)
                .map(|t| self.fields.triage_doc(&t, h.seq, off))
                .map_err(|e| e.to_string()),
            RecType::Pad | RecType::Anchor => return Ok(used),
        };
        match doc {
            Ok(doc) => {
                self.writer.add_document(doc)?;
            }
            Err(e) => {
                tracing::warn!(seq = h.seq, error = %e, "spool record does not decode; not indexed")
            }
        }
        self.last_added = h.seq;
        Ok(used)
    }

    /// Delete whole old segments (and their documents) past the age or size limit.
    fn retention(&mut self) -> Result<(), StoreError> {
        let cfg = &self.inner.cfg;
        if cfg.retention_age.is_none() && cfg.retention_bytes.is_none() {
            return Ok(());
        }
        let segs = lock(&self.inner.segments).clone();
        let now = Timestamp::now().0;
        let mut remaining: u64 = segs.iter().map(|s| s.bytes).sum();
        let mut remove = Vec::new();
        for s in segs.iter().take(segs.len().saturating_sub(1)) {
            let old = cfg
                .retention_age
                .is_some_and(|a| s.max_time < now.saturating_sub(a.as_nanos() as i64));
            let big = cfg.retention_bytes.is_some_and(|b| remaining > b);
            if !(old || big) || s.last_seq > self.last_added {
                break;
            }
            remaining -= s.bytes;
            remove.push(s.clone());
        }
        let Some(upto) = remove.last().map(|s| s.last_seq) else {
            return Ok(());
        };
        self.writer.delete_query(Box::new(RangeQuery::new(
            Bound::Unbounded,
            Bound::Included(Term::from_field_u64(self.fields.seq, upto)),
        )))?;
        self.commit()?;
        let gone: HashMap<u64, ()> = remove.iter().map(|s| (s.first_seq, ())).collect();
        for s in &remove {
            fs::remove_file(&s.path).map_err(io_err(&s.path))?;
        }
        lock(&self.inner.segments).retain(|s| !gone.contains_key(&s.first_seq));
        fsync_dir(&self.inner.spool_dir)?;
        refresh_mark(&self.inner);
        tracing::info!(
            segments = remove.len(),
            upto_seq = upto,
            "retention deleted old spool segments"
        );
        Ok(())
    }
}
