//! `cargo xtask bench tui` (second half): end-to-end latency from an agent's action in the kernel
//! to its alert on the screen of a real terminal. tmux runs `agentwatch tui` against a live
//! daemon; each round an agent session opens a fresh fake SSH key and the bench polls
//! `capture-pane` until that key's alert is drawn. Prints p50/p99 (target p99 ≤ 100 ms).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 30;

fn bin() -> String {
    std::env::var("AGENTWATCH_BIN").unwrap_or_else(|_| "target/release/agentwatch".into())
}

fn screen(name: &str) -> String {
    let out = Command::new("tmux")
        .args(["capture-pane", "-p", "-t", name])
        .output()
        .expect("tmux capture-pane");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("tui latency bench needs root (it runs the daemon)");
        std::process::exit(1);
    }
    let dir = tempfile::Builder::new()
        .prefix("awl")
        .tempdir()
        .expect("tempdir");
    let data = dir.path().join("data");
    let mut daemon = Command::new(bin())
        .args(["daemon", "--data-dir"])
        .arg(&data)
        .stderr(Stdio::null())
        .spawn()
        .expect("daemon");
    let sock = data.join("agentwatch.sock");
    let t = Instant::now();
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let name = "aw-tui-latency";
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", name])
        .status();
    let cmd = format!("{} tui --data-dir {}", bin(), data.display());
    let ok = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "200",
            "-y",
            "50",
            &cmd,
        ])
        .status()
        .expect("tmux")
        .success();
    assert!(ok, "tmux failed");
    std::thread::sleep(Duration::from_secs(2));
    let ssh = dir.path().join(".ssh");
    std::fs::create_dir_all(&ssh).expect("mkdir");
    let mut lat = Vec::new();
    for i in 0..ROUNDS {
        let key = ssh.join(format!("id_rsa_l{i:03}"));
        std::fs::write(&key, "FAKE").expect("key");
        let marker = format!("id_rsa_l{i:03}");
        let t0 = Instant::now();
        let st = Command::new(bin())
            .args(["run", "--agent", "lat", "--data-dir"])
            .arg(&data)
            .args(["--", "/bin/cat"])
            .arg(&key)
            .env("AGENTWATCH_QUIET", "1")
            .stdout(Stdio::null())
            .status()
            .expect("run");
        assert!(st.success());
        loop {
            if screen(name).contains(&marker) {
                lat.push(t0.elapsed());
                break;
            }
            if t0.elapsed() > Duration::from_secs(5) {
                eprintln!("round {i}: alert not on screen after 5 s");
                lat.push(Duration::from_secs(5));
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", name])
        .status();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    println!();
    println!(
        "kernel event -> alert on a real terminal ({ROUNDS} rounds; includes starting the agent process)"
    );
    println!(
        "  p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms   target p99 <= 100 ms",
        p(0.5).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() * 1e3,
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
}
