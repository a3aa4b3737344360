//! `cargo xtask bench response`: what response costs, and how fast it acts.
//!
//! (a) A loopback TCP connect loop (`workload loop-connect`) of a process outside every session,
//! with the daemon running and its egress programs not attached (no `[[egress]]`) vs attached
//! (an enforcing `[[egress]]` table): the ratio attached / not attached per round, its median
//! and spread over the rounds (target ≥ 0.98: the programs return at once for processes outside
//! sessions). Rounds alternate the two daemons.
//! (b) Time from an offending open to the kill under an inline kill rule: a session process
//! forks children that each note the time and open the protected file; the parent takes the
//! time when `waitpid` reports the SIGKILL (so it includes the exit and the wake-up: an upper
//! bound). p50 and p99 over the children.

use std::process::Command;

use anyhow::{Context as _, Result, bail};
use tests::{Daemon, bin};

/// The workload binary beside this one (`target/release/workload`).
fn workload() -> std::path::PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.join("workload")))
        .unwrap_or_else(|| "workload".into())
}

const ROUNDS: usize = 5;
const SECS: &str = "2";
const KILLS: usize = 300;

fn connect_rate(port: u16) -> Result<f64> {
    let out = Command::new(workload())
        .args(["loop-connect", &port.to_string(), SECS])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("loop-connect printed `{text}`"))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn pct(v: &[u64], p: f64) -> u64 {
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn egress_overhead() -> Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut b = [0u8; 1];
                let _ = std::io::Read::read(&mut &s, &mut b);
                let _ = std::io::Write::write_all(&mut &s, b"y");
            });
        }
    });
    let attached_cfg = "[[egress]]\nname = \"bench\"\nagent = [\"*\"]\nallow = [\"127.0.0.1:1\"]\nmode = \"enforce\"\n";
    let mut ratios = Vec::new();
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // The order alternates so that a drift of the machine does not favour one side.
        let (mut a, mut b) = (0.0, 0.0);
        for attached in [round % 2 == 1, round % 2 == 0] {
            let mut d = Daemon::start_with(attached.then_some(attached_cfg), &[])?;
            let st = d.status()?.to_string();
            if st.contains("cgroup/connect4") != attached {
                bail!(
                    "egress programs attached: {}, expected {attached}: {st}",
                    !attached
                );
            }
            *(if attached { &mut b } else { &mut a }) = connect_rate(port)?;
            d.stop();
        }
        eprintln!("round {round}: not attached {a:.0}/s, attached {b:.0}/s");
        ratios.push(b / a);
        off.push(a);
        on.push(b);
    }
    let lo = ratios.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = ratios.iter().cloned().fold(0.0, f64::max);
    let r = median(&mut ratios);
    println!(
        "egress, connect loop outside sessions: not attached {:.0}/s, attached {:.0}/s, ratio {r:.3} (min {lo:.3}, max {hi:.3}, {ROUNDS} rounds; target >= 0.98) {}",
        median(&mut off),
        median(&mut on),
        if r >= 0.98 { "ok" } else { "BELOW TARGET" }
    );
    Ok(())
}

fn kill_latency() -> Result<()> {
    let work = tempfile::tempdir()?;
    let w = work.path();
    let secret = w.join("secret");
    std::fs::write(&secret, "TOPSECRET")?;
    let rules_dir = w.join("rules");
    std::fs::create_dir_all(&rules_dir)?;
    std::fs::write(
        rules_dir.join("kill.toml"),
        format!(
            "[[rule]]\nid = \"bench.inline\"\ndescription = \"bench\"\nkinds = [\"file.open\"]\n\
             severity = \"high\"\noutput = \"{{file.path}}\"\n\
             condition = {{ field = \"file.path\", equals = \"{}\" }}\n\
             action = \"kill\"\nmode = \"enforce\"\ninline = true\n",
            secret.display()
        ),
    )?;
    let d = Daemon::start_with(None, &["--rules", rules_dir.to_str().unwrap_or_default()])?;
    // The daemon fills the kernel's kill map at start and every few seconds.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let out = Command::new(bin())
        .args(["run", "--agent", "bench", "--data-dir"])
        .arg(d.data_dir())
        .arg("--")
        .arg(workload())
        .args([
            "kill-latency",
            &secret.display().to_string(),
            &KILLS.to_string(),
        ])
        .output()?;
    let mut ns: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if ns.len() < KILLS / 2 {
        bail!(
            "only {} of {KILLS} children were killed: {}",
            ns.len(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    ns.sort_unstable();
    println!(
        "inline kill, offending open to the SIGKILL seen by waitpid: p50 {:.1} us, p99 {:.1} us ({} of {KILLS} killed)",
        pct(&ns, 0.5) as f64 / 1e3,
        pct(&ns, 0.99) as f64 / 1e3,
        ns.len()
    );
    Ok(())
}

fn main() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the response bench loads the sensor: run it as root");
    }
    if !workload().exists() {
        bail!("`{}` is not built", workload().display());
    }
    kill_latency()?;
    egress_overhead()?;
    Ok(())
}
