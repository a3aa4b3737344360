//! `cargo xtask bench intent`: what the TLS plaintext uprobes cost.
//!
//! A Python client (`tests/scripts/tls_loop.py`, the system `libssl.so.3`) makes streamed
//! Anthropic Messages calls to the local TLS model API over a keep-alive connection for a few
//! seconds and prints calls per second. Every case runs with a daemon, so the syscall
//! tracepoints' slow-path floor (`bench sensor`) is in every figure and the ratios price the
//! uprobes alone:
//! (a) Outside every session: a daemon with `[intent] tls = false` (no uprobes) vs the default
//! daemon, whose uprobes are attached to that libssl and return at once for processes outside
//! sessions (target ≥ 0.98).
//! (b) Inside a session (`agentwatch run`: every `SSL_write`/`SSL_read` copied and decoded into
//! `llm.*` events) vs outside, same daemon: the cost for an agent making many model calls. The
//! daemon's `status` intent counters must show the session's requests.
//! A run with no daemon at all is printed for reference. Rounds alternate the order; each ratio
//! is the median over the rounds with the spread (min–max).

use std::process::Command;

use anyhow::{Context as _, Result, bail};
use tests::Daemon;
use tests::tls::{TlsServer, scripts, tls_model_server};

const ROUNDS: usize = 5;
const SECS: &str = "3";

fn loop_cmd(srv: &TlsServer) -> Vec<String> {
    vec![
        "python3".into(),
        scripts().join("tls_loop.py").display().to_string(),
        srv.ca().display().to_string(),
        srv.port.to_string(),
        SECS.into(),
    ]
}

fn rate(out: &std::process::Output) -> Result<f64> {
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "tls_loop.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    text.trim()
        .parse()
        .with_context(|| format!("tls_loop.py printed `{text}`"))
}

fn outside(srv: &TlsServer) -> Result<f64> {
    let cmd = loop_cmd(srv);
    rate(&Command::new(&cmd[0]).args(&cmd[1..]).output()?)
}

fn median_spread(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// A daemon with or without the TLS uprobes, checked.
fn daemon(uprobes: bool) -> Result<Daemon> {
    let d = Daemon::start_with((!uprobes).then_some("[intent]\ntls = false\n"), &[])?;
    let st = d.status()?;
    if st["programs"].to_string().contains("uprobe/") != uprobes {
        bail!(
            "TLS uprobes attached: expected {uprobes}: {}",
            st["programs"]
        );
    }
    Ok(d)
}

fn main() -> Result<()> {
    let srv = tls_model_server()?;
    // Warm-up: the first run pays for imports and the page cache.
    outside(&srv)?;
    let (mut attached_ratio, mut session_ratio) = (Vec::new(), Vec::new());
    let (mut none, mut off, mut on, mut inside) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let n = outside(&srv)?;
        let (mut a, mut b, mut c, mut requests) = (0.0, 0.0, 0.0, 0);
        for uprobes in [round % 2 == 1, round % 2 == 0] {
            let mut d = daemon(uprobes)?;
            if !uprobes {
                a = outside(&srv)?;
            } else {
                b = outside(&srv)?;
                let owned = loop_cmd(&srv);
                let args: Vec<&str> = owned.iter().map(String::as_str).collect();
                let (out, _) = d.run("bench-intent", &args)?;
                c = rate(&out)?;
                let st = d.status()?;
                requests = st["intent"]["requests"]["anthropic"].as_u64().unwrap_or(0);
                if requests == 0 {
                    bail!("the session's calls were not decoded: {}", st["intent"]);
                }
            }
            d.stop();
        }
        println!(
            "round {round}: no daemon {n:.1} calls/s; outside a session: daemon without uprobes {a:.1}, with {b:.1}; in a session {c:.1} ({requests} requests decoded)"
        );
        none.push(n);
        off.push(a);
        on.push(b);
        inside.push(c);
        attached_ratio.push(b / a);
        session_ratio.push(c / b);
    }
    let (m, lo, hi) = median_spread(&mut attached_ratio);
    println!(
        "non-agent TLS, uprobes attached / not attached: median {m:.3} (spread {lo:.3}–{hi:.3}; target ≥ 0.98)"
    );
    let (m2, lo2, hi2) = median_spread(&mut session_ratio);
    println!(
        "model calls in a session / outside, uprobes attached (decoded into llm.* events): median {m2:.3} (spread {lo2:.3}–{hi2:.3})"
    );
    let (n, _, _) = median_spread(&mut none);
    let (a, _, _) = median_spread(&mut off);
    let (b, _, _) = median_spread(&mut on);
    let (i, _, _) = median_spread(&mut inside);
    println!(
        "medians, calls/s: no daemon {n:.1}; daemon without uprobes {a:.1} (the syscall tracepoint floor: {:.3} of no daemon); with uprobes {b:.1}; in a session {i:.1}",
        a / n
    );
    Ok(())
}
