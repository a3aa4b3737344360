//! Store benchmark (a plain `main`, `harness = false`): sustained ingest with the commit cadence
//! in force, a 5 s burst at 1 M events/s, index bytes per event, query latency next to `rg` over
//! the same events as JSON lines, and RSS.
//!
//! `STORE_BENCH_EVENTS` sets the size of the query data set (default 1 000 000; `cargo xtask
//! bench store` uses 10 000 000, the issue's figures). `STORE_BENCH_BURST_SECS` (default 5),
//! `STORE_BENCH_DIR` (default a temp dir), `STORE_BENCH_COMMIT_MS`, `STORE_BENCH_COMMIT_EVENTS`,
//! `STORE_BENCH_INDEX_MB` and `STORE_BENCH_INDEX_THREADS` (default: `StoreConfig::default()`)
//! tune the rest.

use std::fs;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use agent_model::{
    AgentRef, BStr, Event, File, Kind, KindField, Net, Parent, Process, SessionRef, Timestamp,
};
use agent_store::{SearchRequest, Store, StoreConfig};

const T0: i64 = 1_795_255_200_000_000_000;
const DAY: i64 = 86_400_000_000_000;

struct Gen {
    i: u64,
    span_ns: i64,
    n: u64,
    ev: Event,
}

impl Gen {
    fn new(n: u64) -> Gen {
        Gen {
            i: 0,
            span_ns: DAY,
            n,
            ev: Event {
                host: "bench1".into(),
                agent: Some(AgentRef {
                    name: "claude".into(),
                }),
                session: Some(SessionRef { id: String::new() }),
                process: Process {
                    uid: 1000,
                    gid: 1000,
                    ..Process::default()
                },
                parent: Some(Parent {
                    pid: 1,
                    start: Some(Timestamp(T0 - DAY)),
                    exe: BStr::from("/usr/bin/bash"),
                }),
                ..Event::default()
            },
        }
    }

    /// The next event (a mix of opens, execs and connects), built in place.
    fn next(&mut self) -> &Event {
        let i = self.i;
        self.i += 1;
        let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20;
        let e = &mut self.ev;
        e.id = format!("b-{i}");
        e.time = Timestamp(T0 + (i as i64).saturating_mul(self.span_ns / self.n.max(1) as i64));
        if let Some(s) = e.session.as_mut() {
            s.id = format!("{:016x}", 0xab00 + (i / 50_000));
        }
        e.process.pid = 1000 + (h % 5000) as u32;
        e.process.tid = e.process.pid;
        e.process.start = Timestamp(T0 - 1000 * h as i64);
        e.file = None;
        e.net = None;
        e.process.args.clear();
        e.process.cmdline = BStr::default();
        match h % 20 {
            0..=11 => {
                e.kind = KindField(Kind::FileOpen);
                e.process.exe = BStr::from("/usr/bin/python3");
                e.process.comm = BStr::from("python3");
                let path = if i.is_multiple_of(997) {
                    "/home/alice/.ssh/id_rsa".to_string()
                } else {
                    format!(
                        "/home/u{}/proj/src/mod{}/file{}.rs",
                        h % 50,
                        h % 300,
                        h % 20_000
                    )
                };
                e.file = Some(File {
                    path: BStr::from(path),
                    access: Some("read".into()),
                    flags: vec!["O_RDONLY".into(), "O_CLOEXEC".into()],
                    fd: Some(3 + (h % 20) as i32),
                    ..File::default()
                });
            }
            12..=14 => {
                e.kind = KindField(Kind::ProcessExec);
                let (exe, args): (&str, Vec<String>) = if i.is_multiple_of(1009) {
                    (
                        "/usr/bin/grep",
                        vec![
                            "grep".into(),
                            "-r".into(),
                            "PRIVATE KEY".into(),
                            "/home".into(),
                        ],
                    )
                } else {
                    (
                        "/usr/bin/git",
                        vec![
                            "git".into(),
                            "status".into(),
                            format!("--porcelain={}", h % 3),
                        ],
                    )
                };
                e.process.exe = BStr::from(exe);
                e.process.comm = BStr::from(exe.rsplit('/').next().unwrap_or(exe));
                e.process.cmdline = BStr::from(args.join(" "));
                e.process.args = args.into_iter().map(BStr::from).collect();
            }
            _ => {
                e.kind = KindField(Kind::NetConnect);
                e.process.exe = BStr::from("/usr/bin/curl");
                e.process.comm = BStr::from("curl");
                let ip = if h.is_multiple_of(3) {
                    Ipv4Addr::new(10, (h >> 8) as u8, (h >> 16) as u8, h as u8)
                } else {
                    Ipv4Addr::new(93, 184, (h >> 8) as u8, h as u8)
                };
                e.net = Some(Net {
                    family: "ipv4".into(),
                    protocol: Some("tcp".into()),
                    dst_ip: Some(IpAddr::V4(ip)),
                    dst_port: Some([443u16, 80, 22, 8080, 53][(h % 5) as usize]),
                    ..Net::default()
                });
            }
        }
        &self.ev
    }
}

fn rss_mb() -> f64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn wait_indexed(store: &Store) -> Duration {
    let t = Instant::now();
    store.commit().expect("commit");
    t.elapsed()
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3;
    (p(0.5), p(0.99))
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The daemon's allocator, so that ingest speed and RSS are the daemon's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let n = env_u64("STORE_BENCH_EVENTS", 1_000_000);
    let burst_secs = env_u64("STORE_BENCH_BURST_SECS", 5);
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = std::env::var("STORE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| tmp.path().to_path_buf());
    println!(
        "agent-store bench: {n} events for queries, burst {burst_secs} s, dir {}",
        base.display()
    );
    let defaults = StoreConfig::default();
    let cfg = StoreConfig {
        retention_age: None,
        commit_every_events: env_u64("STORE_BENCH_COMMIT_EVENTS", defaults.commit_every_events),
        commit_every: Duration::from_millis(env_u64(
            "STORE_BENCH_COMMIT_MS",
            defaults.commit_every.as_millis() as u64,
        )),
        index_memory_bytes: env_u64(
            "STORE_BENCH_INDEX_MB",
            (defaults.index_memory_bytes >> 20) as u64,
        ) as usize
            * (1 << 20),
        index_threads: env_u64("STORE_BENCH_INDEX_THREADS", defaults.index_threads as u64) as usize,
        ..defaults
    };
    println!(
        "cadence: commit every {} events or {:?}; fsync every {} events or {:?}",
        cfg.commit_every_events, cfg.commit_every, cfg.sync_every_events, cfg.sync_every
    );

    // 1. Sustained ingest into spool + index, cadence in force, and the query data set.
    let dir = base.join("sustained");
    let _ = fs::remove_dir_all(&dir);
    let (store, _) = Store::open(&dir, cfg.clone()).expect("open");
    let mut g = Gen::new(n);
    let t = Instant::now();
    let mut max_lag = 0;
    for i in 0..n {
        store.append_event(g.next()).expect("append");
        if i % 100_000 == 0 {
            max_lag = max_lag.max(store.stats().lag);
        }
    }
    let appended = t.elapsed();
    let catch_up = wait_indexed(&store);
    let total = t.elapsed();
    println!(
        "sustained ingest: {:.0} events/s end to end (spool + index, {n} events in {:.2} s; appends alone {:.0}/s; final catch-up {:.2} s; max lag seen {max_lag})",
        n as f64 / total.as_secs_f64(),
        total.as_secs_f64(),
        n as f64 / appended.as_secs_f64(),
        catch_up.as_secs_f64()
    );
    let st = store.stats();
    println!(
        "index bytes/event: {:.1} (index {} MB, spool {} MB = {:.0} bytes/event)",
        st.index_bytes as f64 / st.events as f64,
        st.index_bytes >> 20,
        st.spool_bytes >> 20,
        st.spool_bytes as f64 / st.events as f64
    );
    println!("RSS after ingest of {n} events: {:.0} MB", rss_mb());

    // 2. Queries, next to rg over the same events as JSON lines.
    let reader = store.reader().expect("reader");
    let jsonl = base.join("events.jsonl");
    {
        let mut w = BufWriter::new(fs::File::create(&jsonl).expect("jsonl"));
        let mut g = Gen::new(n);
        for _ in 0..n {
            writeln!(w, "{}", g.next().to_json()).expect("write");
        }
    }
    let mid = Timestamp(T0 + DAY / 2);
    let win = 600_000_000_000; // 10 minutes: 22:00 to 22:10
    let queries: Vec<(&str, SearchRequest, Vec<&str>)> = vec![
        (
            "term",
            SearchRequest {
                query: "path:/home/alice/.ssh/id_rsa".into(),
                limit: 20,
                ..Default::default()
            },
            vec!["-c", "\"path\":\"/home/alice/.ssh/id_rsa\""],
        ),
        (
            "boolean",
            SearchRequest {
                query: "exe:/usr/bin/grep AND NOT session:00000000000000ab".into(),
                limit: 20,
                ..Default::default()
            },
            vec!["-c", "\"exe\":\"/usr/bin/grep\""],
        ),
        (
            "phrase",
            SearchRequest {
                query: "\"PRIVATE KEY\"".into(),
                limit: 20,
                ..Default::default()
            },
            vec!["-c", "PRIVATE KEY"],
        ),
        (
            "term+time range",
            SearchRequest {
                query: "path:/home/alice/.ssh/id_rsa".into(),
                since: Some(mid),
                until: Some(Timestamp(mid.0 + win)),
                limit: 20,
                ..Default::default()
            },
            vec![
                "-c",
                "\"time\":\"2026-11-21T22:0.*\"path\":\"/home/alice/.ssh/id_rsa\"",
            ],
        ),
        (
            "newest-20",
            SearchRequest {
                query: "*".into(),
                limit: 20,
                ..Default::default()
            },
            vec!["-c", "\"id\""],
        ),
        (
            "top-10 aggregation",
            SearchRequest {
                query: "kind:net.connect | top 10 net.dst_ip".into(),
                limit: 0,
                ..Default::default()
            },
            vec!["-c", "net.connect"],
        ),
    ];
    let rg = have("rg");
    if !rg {
        println!("rg not installed: comparing with `grep` instead where noted");
    }
    let reps = 60;
    for (name, req, rg_args) in &queries {
        let mut lat = Vec::with_capacity(reps);
        let mut total = 0;
        for _ in 0..reps {
            let t = Instant::now();
            let r = reader.search(req).expect("search");
            lat.push(t.elapsed());
            total = r.total;
        }
        let (p50, p99) = percentiles(lat);
        let tool = if rg { "rg" } else { "grep" };
        let t = Instant::now();
        let out = Command::new(tool)
            .args(rg_args)
            .arg(&jsonl)
            .output()
            .expect("grep");
        let tool_ms = t.elapsed().as_secs_f64() * 1e3;
        let tool_count = String::from_utf8_lossy(&out.stdout).trim().to_string();
        println!(
            "query {name:<20} p50 {p50:>8.3} ms  p99 {p99:>8.3} ms  ({total} matches) | {tool} {tool_ms:>9.1} ms ({tool_count} lines) = {:.0}x",
            tool_ms / p50.max(1e-6)
        );
    }
    drop(reader);
    store.close().expect("close");
    println!("RSS after queries: {:.0} MB", rss_mb());
    let _ = fs::remove_file(&jsonl);

    // 3. A burst at 1 M events/s for `burst_secs`, absorbed by the spool; the index catches up.
    let dir = base.join("burst");
    let _ = fs::remove_dir_all(&dir);
    let (store, _) = Store::open(&dir, cfg).expect("open");
    let target = 1_000_000u64 * burst_secs;
    let mut g = Gen::new(target);
    let t = Instant::now();
    let mut sent = 0u64;
    while sent < target {
        // Pace at 1 M/s in 1 ms steps; if we fall behind, we simply keep appending.
        let due = ((t.elapsed().as_secs_f64() * 1e6) as u64).min(target);
        if sent >= due {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        for _ in sent..due {
            store.append_event(g.next()).expect("append");
        }
        sent = due;
    }
    let burst = t.elapsed();
    let st = store.stats();
    store.sync().expect("sync");
    let synced = t.elapsed();
    let catch_up = wait_indexed(&store);
    let st2 = store.stats();
    let r = store.reader().expect("reader");
    let found = r
        .search(&SearchRequest {
            query: "*".into(),
            limit: 0,
            ..Default::default()
        })
        .expect("count")
        .total;
    println!(
        "burst: {target} events offered at 1 M/s took {:.2} s to append ({:.0} events/s achieved), durable after {:.2} s; index lag at end of burst {} ; caught up {:.1} s later; {found} of {target} searchable, {} lost",
        burst.as_secs_f64(),
        target as f64 / burst.as_secs_f64(),
        synced.as_secs_f64(),
        st.lag,
        catch_up.as_secs_f64(),
        target - found.min(target)
    );
    assert_eq!(st2.indexed_seq, st2.last_seq);
    println!("RSS at end: {:.0} MB", rss_mb());
    drop(r);
    store.close().expect("close");
    let _ = Path::new(&base);
}
