//! A local TLS model API for the tests and `cargo xtask bench intent`: a CA and a localhost
//! certificate made with the `openssl` CLI in a temporary dir, and `scripts/tls_model_server.py`
//! serving the Anthropic and OpenAI streaming formats on a free loopback port until dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// The running server; killed on drop.
pub struct TlsServer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TlsServer {
    /// The CA certificate clients trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

/// `tests/scripts/`.
pub fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("the openssl CLI")?;
    if !out.status.success() {
        bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A CA, a server certificate for localhost signed by it, and the server running.
pub fn tls_model_server() -> Result<TlsServer> {
    let dir = tempfile::Builder::new().prefix("aw-tls-").tempdir()?;
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=agentwatch test CA",
        ],
    )?;
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=localhost",
        ],
    )?;
    std::fs::write(d.join("ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n")?;
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    )?;
    let portfile = d.join("port");
    let child = Command::new("python3")
        .arg(scripts().join("tls_model_server.py"))
        .arg(d.join("srv.pem"))
        .arg(d.join("srv.key"))
        .arg(&portfile)
        .stdout(Stdio::null())
        .spawn()
        .context("python3 tls_model_server.py")?;
    let mut srv = TlsServer {
        child,
        port: 0,
        dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    srv.port = loop {
        if let Ok(p) = std::fs::read_to_string(&portfile)
            && let Ok(p) = p.trim().parse()
        {
            break p;
        }
        if Instant::now() > deadline {
            bail!("the TLS server did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(srv)
}
