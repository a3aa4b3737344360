//! Throughput of the full default policy over a generated mixed event stream, and memory per
//! tracked session for windowed rules. Prints its figures explicitly:
//! `rules: 2.3 M events/s/core` and `rules: N bytes/session`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use agent_model::{Event, Timestamp};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rules::fixtures::event_from_line;
use rules::{Engine, Policy, default_sources};

const SESSIONS: usize = 64;

/// Nanoseconds this thread has run on a CPU (Linux `schedstat`), if available.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// A mixed stream shaped like an agent at work: opens of project and system files, execs of
/// build tools, connections to registries and local services, forks and exits, a few secrets.
fn stream(n: usize) -> Vec<Event> {
    let mut out = Vec::with_capacity(n);
    let paths = [
        "/home/dev/project/src/main.rs",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/etc/ld.so.cache",
        "/home/dev/project/target/debug/deps/libserde-1.rlib",
        "/home/dev/.cargo/registry/index/x",
        "/proc/self/status",
        "/home/dev/project/node_modules/react/index.js",
        "/tmp/tmp.abc",
    ];
    let exes = [
        "/usr/bin/git",
        "/usr/bin/cargo",
        "/usr/bin/node",
        "/usr/bin/python3.12",
        "/usr/bin/ls",
        "/usr/bin/grep",
    ];
    for i in 0..n {
        let s = format!("{:016x}", i % SESSIONS);
        let t = i as f64 * 0.0005;
        let line = match i % 10 {
            0..=3 => format!(
                r#"{{"@t":{t},"session":{{"id":"{s}"}},"kind":"file.open","process":{{"exe":"{}"}},"file":{{"path":"{}","access":"read","flags":["O_RDONLY","O_CLOEXEC"]}}}}"#,
                exes[i % exes.len()],
                paths[i % paths.len()]
            ),
            4 | 5 => format!(
                r#"{{"@t":{t},"session":{{"id":"{s}"}},"kind":"process.exec","process":{{"exe":"{}","args":["x","--flag","src/lib.rs"]}}}}"#,
                exes[i % exes.len()]
            ),
            6 | 7 => format!(
                r#"{{"@t":{t},"session":{{"id":"{s}"}},"kind":"net.connect","process":{{"exe":"/usr/bin/cargo"}},"net":{{"family":"ipv4","protocol":"tcp","dst_ip":"151.101.{}.{}","dst_port":443}}}}"#,
                i % 7,
                i % 200
            ),
            8 => format!(r#"{{"@t":{t},"session":{{"id":"{s}"}},"kind":"process.fork"}}"#),
            _ => {
                if i % 1000 == 9 {
                    format!(
                        r#"{{"@t":{t},"session":{{"id":"{s}"}},"kind":"file.open","process":{{"exe":"/usr/bin/cat"}},"file":{{"path":"/home/dev/.aws/credentials","access":"read"}}}}"#
                    )
                } else {
                    format!(
                        r#"{{"@t":{t},"session":{{"id":"{s}"}},"kind":"process.exit","ancestry":["/usr/bin/bash"],"exit":{{"code":0}}}}"#
                    )
                }
            }
        };
        out.push(event_from_line(i, &line).expect("valid event"));
    }
    out
}

fn throughput(c: &mut Criterion) {
    let policy = Arc::new(Policy::compile(&default_sources()).expect("default policy"));
    let events = stream(20_000);

    // Explicit figure: several passes, best one, per second of this thread's CPU time (the
    // engine is single-threaded; CPU time keeps the figure honest on a busy machine).
    let mut best_cpu = 0.0f64;
    let mut best_wall = 0.0f64;
    for _ in 0..5 {
        let mut engine = Engine::new(policy.clone());
        let cpu0 = thread_cpu_ns();
        let start = Instant::now();
        let mut alerts = 0usize;
        for _ in 0..10 {
            for ev in &events {
                alerts += engine.process(black_box(ev)).len();
            }
        }
        let wall = start.elapsed().as_secs_f64();
        let cpu = cpu0.and_then(|c0| thread_cpu_ns().map(|c1| (c1 - c0) as f64 / 1e9));
        black_box(alerts);
        let n = (events.len() * 10) as f64;
        best_wall = best_wall.max(n / wall);
        if let Some(cpu) = cpu {
            best_cpu = best_cpu.max(n / cpu);
        }
    }
    let per_core = if best_cpu > 0.0 { best_cpu } else { best_wall };
    println!(
        "rules: {:.2} M events/s/core ({} rules, mixed stream; {:.2} M events/s wall clock)",
        per_core / 1e6,
        policy.len(),
        best_wall / 1e6
    );

    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.sample_size(20);
    g.measurement_time(std::time::Duration::from_secs(4));
    g.bench_function("default_policy_mixed_stream", |b| {
        let mut engine = Engine::new(policy.clone());
        b.iter(|| {
            let mut n = 0;
            for ev in &events {
                n += engine.process(black_box(ev)).len();
            }
            n
        })
    });
    g.finish();
}

fn memory(_c: &mut Criterion) {
    let policy = Arc::new(Policy::compile(&default_sources()).expect("default policy"));
    let mut engine = Engine::new(policy);
    let sessions = 10_000;
    // Every session: a secret read (sequence step 1), 15 ports and 8 hosts (below scan
    // thresholds), 4 secret files (below the collection threshold): the windows stay open.
    for s in 0..sessions {
        let id = format!("{s:016x}");
        let mut n = 0;
        let mut push = |line: String| {
            let ev = event_from_line(n, &line).expect("valid event");
            n += 1;
            black_box(engine.process(&ev));
        };
        for f in [
            "/home/a/.ssh/id_rsa",
            "/home/a/.aws/credentials",
            "/home/a/.kube/config",
            "/home/a/.netrc",
        ] {
            push(format!(
                r#"{{"session":{{"id":"{id}"}},"kind":"file.open","process":{{"exe":"/usr/bin/cat"}},"file":{{"path":"{f}","access":"read"}}}}"#
            ));
        }
        for p in 0..15 {
            push(format!(
                r#"{{"session":{{"id":"{id}"}},"kind":"net.connect","process":{{"exe":"/usr/bin/python3"}},"net":{{"family":"ipv4","dst_ip":"10.0.0.{}","dst_port":{}}}}}"#,
                p % 8,
                2000 + p
            ));
        }
    }
    let windows = engine.window_state_bytes();
    let folds = engine.fold_bytes();
    println!(
        "rules: {} bytes/session of windowed-rule state ({} sessions with open scan, collection and sequence windows); {} bytes/session of open alert folds",
        windows / sessions,
        sessions,
        folds / sessions
    );
    let _ = engine.flush(Timestamp(i64::MAX / 2));
    assert_eq!(engine.tracked_keys(), 0);
}

criterion_group!(benches, throughput, memory);
criterion_main!(benches);
