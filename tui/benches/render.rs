//! Frame render time with 100k alerts in the model and 1k new alerts/s arriving.
//!
//! `cargo bench -p tui --bench render` (or `cargo xtask bench tui`). Simulates 30 frames per
//! second: before each frame, ~33 live alerts (1k/s) go through the same path as the daemon's
//! stream (JSON line -> stream item -> model), then the frame is drawn into a `TestBackend`. Prints p50/p99/max
//! of the draw and of the per-frame ingest, at 80×24 and 160×48, with and without a filter.

use std::time::{Duration, Instant};

use agent_api::{AlertList, Answer, Hit, Item, StreamItem};
use agent_model::{AgentRef, Alert, BStr, SessionRef, Severity, Timestamp};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tui::backend::{Purpose, Update};
use tui::state::App;
use tui::view::{Theme, draw};

const MODEL: usize = 100_000;
const FRAMES: usize = 3_000;
const PER_FRAME: usize = 33; // 1k alerts/s at 30 fps

fn alert(i: usize) -> Alert {
    let t = Timestamp(1_795_600_800_000_000_000 + i as i64 * 1_000_000);
    Alert {
        id: format!("bench-{i}"),
        time: t,
        host: "devbox".into(),
        rule: [
            "secret-read",
            "curl-pipe-shell",
            "egress-volume",
            "new-listener",
        ][i % 4]
            .into(),
        severity: Severity::ALL[i % 5],
        agent: Some(AgentRef {
            name: ["claude", "codex", "aider"][i % 3].into(),
        }),
        session: Some(SessionRef {
            id: format!("{:016x}", i / 100),
        }),
        summary: BStr::from(
            format!("agent read /home/dev/.ssh/id_rsa_{i} and 文件 \x1b[31m").as_str(),
        ),
        tags: vec!["secrets".into()],
        event_ids: vec![format!("e-{i}")],
        count: 1 + (i % 7) as u64,
        first_time: t,
        last_time: t,
        in_loss_window: i.is_multiple_of(50),
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn run(w: u16, h: u16, filter: Option<&str>) {
    let mut app = App::new(Timestamp::now());
    app.outbox.clear();
    let hits: Vec<_> = (0..MODEL)
        .map(|i| Hit {
            item: Item::Alert(Box::new(alert(i))),
            triage: None,
        })
        .collect();
    let t = Instant::now();
    app.on_update(Update::Answer {
        purpose: Purpose::Alerts,
        result: Ok(Answer::Alerts(AlertList { hits })),
    });
    let load = t.elapsed();
    let mut filter_time = Duration::ZERO;
    if let Some(f) = filter {
        let t = Instant::now();
        app.alerts.set_filter(f);
        filter_time = t.elapsed();
    }
    // Scroll somewhere in the middle so the selection has to be kept while alerts arrive.
    app.alerts.cur.sel = 40;
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    let theme = Theme { color: true };
    let mut draws = Vec::with_capacity(FRAMES);
    let mut ingests = Vec::with_capacity(FRAMES);
    let mut next = MODEL;
    let start = Instant::now();
    for _ in 0..FRAMES {
        let live: Vec<_> = (0..PER_FRAME)
            .map(|k| serde_json::to_string(&StreamItem::Alert(Box::new(alert(next + k)))).unwrap())
            .collect();
        next += PER_FRAME;
        let t = Instant::now();
        for l in live {
            let item = serde_json::from_str::<StreamItem>(&l).map_err(|e| e.to_string());
            app.on_update(Update::Live(item));
        }
        ingests.push(t.elapsed());
        let t = Instant::now();
        term.draw(|f| app.page = draw(f, &app, theme)).unwrap();
        draws.push(t.elapsed());
    }
    let wall = start.elapsed();
    println!(
        "tui render {w}x{h}{}: alerts in model {} -> {}; initial load {}{}",
        filter.map(|f| format!(" filter `{f}`")).unwrap_or_default(),
        MODEL,
        app.alerts.rows.len(),
        ms(load),
        if filter.is_some() {
            format!("; filter over 100k {}", ms(filter_time))
        } else {
            String::new()
        }
    );
    println!(
        "  frame draw:   p50 {}  p99 {}  max {}   (target p99 <= 4 ms)",
        ms(pct(&mut draws, 0.5)),
        ms(pct(&mut draws, 0.99)),
        ms(pct(&mut draws, 1.0))
    );
    println!(
        "  ingest {PER_FRAME} alerts/frame: p50 {}  p99 {}  ({:.0} alerts/s sustained by one core)",
        ms(pct(&mut ingests, 0.5)),
        ms(pct(&mut ingests, 0.99)),
        (FRAMES * PER_FRAME) as f64 / ingests.iter().sum::<Duration>().as_secs_f64()
    );
    println!("  {FRAMES} frames in {}", ms(wall));
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: {} cpus, load average {} (wall-clock figures; p99 suffers when the machine is busy)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    run(80, 24, None);
    run(160, 48, None);
    run(160, 48, Some("claude secret"));
}
