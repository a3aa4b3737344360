//! Real AI agent CLIs driven by a scripted model: Claude Code and Codex, as installed by
//! `cargo xtask setup` (pinned npm packages under `/opt/agentwatch-test/agents`), run as the unprivileged user
//! `agentwatch-test` in a fresh network namespace that has only `lo`, against the `model_api`
//! test binary listening on 127.0.0.1 inside that namespace. Nothing can leave the host.
//!
//! The agents' native binaries are run directly (not through their node wrappers) so the kernel
//! comm is exactly `claude` or `codex`, as the daemon's built-in config expects, and node is
//! needed only to install them. A run gets a temporary HOME (owned by the test user, with a
//! `project` work dir inside), a scripted list of turns (see `src/bin/model_api.rs`), and a
//! timeout; it returns the agent's JSON-lines output, its exit status and every request the
//! model server received, so a test can check what the agent sent back.

use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::{Value, json};

/// The unprivileged user the agents run as (Claude Code refuses
/// `--dangerously-skip-permissions` as root).
pub const TEST_USER: &str = "agentwatch-test";

/// The pinned npm packages `cargo xtask setup` installs (keep in step with xtask).
pub const CLAUDE_PACKAGE: &str = "@anthropic-ai/claude-code@2.1.332";
pub const CODEX_PACKAGE: &str = "@openai/codex@0.171.0";

/// Which agent CLI to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cli {
    Claude,
    Codex,
}

impl Cli {
    /// The agent name the daemon's built-in config gives this CLI's sessions.
    pub fn agent_name(self) -> &'static str {
        match self {
            Cli::Claude => "claude-code",
            Cli::Codex => "codex",
        }
    }

    /// The native binary inside the npm install (`$AGENTWATCH_AGENTS_DIR`, else
    /// [`DEFAULT_AGENTS_DIR`]).
    pub fn binary(self) -> PathBuf {
        let (npm_arch, triple_arch) = match std::env::consts::ARCH {
            "aarch64" => ("arm64", "aarch64"),
            _ => ("x64", "x86_64"),
        };
        let modules = agents_dir().join("node_modules");
        match self {
            Cli::Claude => {
                modules.join(format!("@anthropic-ai/claude-code-linux-{npm_arch}/claude"))
            }
            Cli::Codex => modules.join(format!(
                "@openai/codex-linux-{npm_arch}/vendor/{triple_arch}-unknown-linux-musl/bin/codex"
            )),
        }
    }
}

/// Where `cargo xtask setup` installs the agent CLIs by default: outside the checkout, so the
/// unprivileged test user can reach the binaries wherever the repository is cloned (a CI clone
/// under a 0700 home would otherwise hide them). Keep in step with xtask's `AGENTS_DIR`.
pub const DEFAULT_AGENTS_DIR: &str = "/opt/agentwatch-test/agents";

/// Where `cargo xtask setup` installs the agent CLIs.
pub fn agents_dir() -> PathBuf {
    std::env::var_os("AGENTWATCH_AGENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_AGENTS_DIR))
}

/// The scripted model server built with these tests.
pub fn model_api() -> PathBuf {
    crate::workload().with_file_name("model_api")
}

/// Why the real-agent tests cannot run here, if they cannot (on top of [`crate::skip_reason`]).
pub fn skip_reason() -> Option<String> {
    if let Some(why) = crate::skip_reason() {
        return Some(why);
    }
    for cli in [Cli::Claude, Cli::Codex] {
        if !cli.binary().is_file() {
            return Some(format!(
                "`{}` is not installed; run `cargo xtask setup` ({CLAUDE_PACKAGE}, {CODEX_PACKAGE})",
                cli.binary().display()
            ));
        }
    }
    if !model_api().exists() {
        return Some(format!("`{}` not built", model_api().display()));
    }
    None
}

/// Skip the calling test with a clear message when real agents cannot run; in CI, fail instead.
#[macro_export]
macro_rules! require_agents {
    () => {
        if let Some(why) = $crate::agents::skip_reason() {
            if std::env::var_os("CI").is_some() {
                panic!("real-agent test cannot run in CI: {why}");
            }
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
}

/// One scripted model turn: tool calls (name, input) run by the agent.
pub fn tool_turn(calls: &[(&str, Value)]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(name, input)| json!({"name": name, "input": input}))
        .collect();
    json!({ "tool_calls": calls })
}

/// The last scripted model turn: a final text.
pub fn text_turn(text: &str) -> Value {
    json!({ "text": text })
}

/// The uid and gid of [`TEST_USER`], created (a system user, no home) on first use.
pub fn test_user() -> Result<(u32, u32)> {
    static USER: OnceLock<std::result::Result<(u32, u32), String>> = OnceLock::new();
    USER.get_or_init(|| ensure_user().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn ensure_user() -> Result<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let o = Command::new("id").args([flag, TEST_USER]).output().ok()?;
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        // A concurrent test may win the race; the second look below settles it.
        let _ = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/bin/bash",
                TEST_USER,
            ])
            .status();
    }
    match (id("-u"), id("-g")) {
        (Some(u), Some(g)) => Ok((u, g)),
        _ => bail!("cannot create the user `{TEST_USER}` (useradd)"),
    }
}

/// A temporary home for one agent run: `home/` (HOME, owned by the test user) with
/// `home/project/` (the agent's working directory), and the model server's request log.
pub struct AgentHome {
    dir: tempfile::TempDir,
    uid: u32,
    gid: u32,
    runs: std::cell::Cell<usize>,
    codex_etc: std::cell::RefCell<Option<PathBuf>>,
}

impl AgentHome {
    pub fn new() -> Result<AgentHome> {
        let (uid, gid) = test_user()?;
        let dir = tempfile::Builder::new().prefix("aw-agent-").tempdir()?;
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        let h = AgentHome {
            dir,
            uid,
            gid,
            runs: std::cell::Cell::new(0),
            codex_etc: std::cell::RefCell::new(None),
        };
        h.mkdir("project")?;
        Ok(h)
    }

    /// HOME, canonical (the path the kernel reports).
    pub fn home(&self) -> PathBuf {
        self.dir
            .path()
            .canonicalize()
            .expect("temp dir")
            .join("home")
    }

    /// The agent's working directory.
    pub fn project(&self) -> PathBuf {
        self.home().join("project")
    }

    /// Create `HOME/rel` (and its parents) owned by the test user.
    pub fn mkdir(&self, rel: &str) -> Result<PathBuf> {
        let mut p = self.home();
        self.own(&p)?;
        for c in Path::new(rel).components() {
            p.push(c);
            self.own(&p)?;
        }
        Ok(p)
    }

    /// Write `HOME/rel` owned by the test user.
    pub fn plant(&self, rel: &str, contents: &str) -> Result<PathBuf> {
        let p = self.home().join(rel);
        if let Some(parent) = Path::new(rel)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            self.mkdir(&parent.to_string_lossy())?;
        }
        std::fs::write(&p, contents)?;
        std::os::unix::fs::chown(&p, Some(self.uid), Some(self.gid))?;
        Ok(p)
    }

    fn own(&self, dir: &Path) -> Result<()> {
        if !dir.exists() {
            std::fs::create_dir(dir)?;
        }
        std::os::unix::fs::chown(dir, Some(self.uid), Some(self.gid))
            .with_context(|| format!("chown `{}`", dir.display()))
    }

    /// Codex runs of this home see `dir` as `/etc/codex` (its system config and admin
    /// requirements), through a bind mount in a private mount namespace: the host's `/etc/codex`
    /// is never changed, and other tests' agents never see it. `/etc/codex` is created (empty)
    /// when missing, as the mount point.
    pub fn codex_system_dir(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all("/etc/codex")
            .context("cannot create the `/etc/codex` mount point")?;
        *self.codex_etc.borrow_mut() = Some(dir.to_path_buf());
        Ok(())
    }

    /// Run `cli` on `prompt` against a model that answers with `turns`; kill it after `timeout`.
    pub fn run(
        &self,
        cli: Cli,
        prompt: &str,
        turns: &[Value],
        timeout: Duration,
    ) -> Result<AgentRun> {
        self.run_with(cli, prompt, turns, timeout, &[])
    }

    /// [`AgentHome::run`] with extra arguments for the CLI, e.g. Claude Code's
    /// `--settings FILE` (hooks for one run, where its managed settings path cannot move).
    pub fn run_with(
        &self,
        cli: Cli,
        prompt: &str,
        turns: &[Value],
        timeout: Duration,
        extra: &[&str],
    ) -> Result<AgentRun> {
        let base = self.dir.path().canonicalize()?;
        let n = self.runs.get();
        self.runs.set(n + 1);
        let log_dir = base.join(format!("requests-{n}"));
        let script = log_dir.with_extension("json");
        std::fs::write(&script, serde_json::to_vec(&json!({ "turns": turns }))?)?;
        let server = ModelServer::start(&script, &log_dir)?;
        let home = self.home();
        // Scratch files (Claude Code's task outputs, ...) stay in the temporary dir.
        let tmp = self.mkdir("tmp")?;
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/proc/{}/ns/net", server.pid()))
            .arg("--");
        if let (Cli::Codex, Some(etc)) = (cli, self.codex_etc.borrow().as_ref()) {
            cmd.args([
                "unshare",
                "-m",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
            ])
            .arg("mount --bind \"$0\" /etc/codex && exec \"$@\"")
            .arg(etc);
        }
        cmd.arg("setpriv")
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .args(["--clear-groups", "--"])
            .arg(cli.binary())
            .current_dir(self.project())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &home)
            .env("USER", TEST_USER)
            .env("LOGNAME", TEST_USER)
            .env("SHELL", "/bin/bash")
            .env("LANG", "C.UTF-8")
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills the tools it spawned too.
            .process_group(0);
        match cli {
            Cli::Claude => {
                cmd.env("ANTHROPIC_BASE_URL", format!("http://{}", server.addr))
                    .env("ANTHROPIC_API_KEY", "sk-ant-scripted")
                    .env("DISABLE_TELEMETRY", "1")
                    .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
                    .env("DISABLE_AUTOUPDATER", "1")
                    .env("DISABLE_NON_ESSENTIAL_MODEL_CALLS", "1")
                    .arg("-p")
                    .arg(prompt)
                    .args([
                        "--dangerously-skip-permissions",
                        "--output-format",
                        "stream-json",
                        "--verbose",
                    ])
                    .args(extra);
            }
            Cli::Codex => {
                let codex_home = home.join(".codex");
                self.mkdir(".codex")?;
                let config = codex_config(&server.addr);
                std::fs::write(codex_home.join("config.toml"), config)?;
                std::os::unix::fs::chown(
                    codex_home.join("config.toml"),
                    Some(self.uid),
                    Some(self.gid),
                )?;
                cmd.env("CODEX_HOME", &codex_home)
                    .env("SCRIPTED_API_KEY", "sk-scripted")
                    .args(["exec", "--json", "--skip-git-repo-check"])
                    .args(extra)
                    .arg(prompt);
            }
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start `{}`", cli.binary().display()))?;
        let (status, stdout, stderr, timed_out) = wait_with_timeout(child, timeout)?;
        drop(server);
        let mut requests: Vec<(PathBuf, Value)> = std::fs::read_dir(&log_dir)?
            .flatten()
            .filter_map(|e| {
                let text = std::fs::read_to_string(e.path()).ok()?;
                Some((e.path(), serde_json::from_str(&text).ok()?))
            })
            .collect();
        requests.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(AgentRun {
            cli,
            status,
            stdout,
            stderr,
            timed_out,
            requests: requests.into_iter().map(|(_, v)| v).collect(),
        })
    }
}

/// Codex's config: a custom Responses provider on the scripted server, no approvals, no
/// sandbox, and the features that reach the internet (plugins, apps, model discovery,
/// analytics) off.
fn codex_config(addr: &str) -> String {
    format!(
        r#"model = "gpt-5.5"
model_provider = "scripted"
approval_policy = "never"
sandbox_mode = "danger-full-access"

[model_providers.scripted]
name = "scripted"
base_url = "http://{addr}/v1"
env_key = "SCRIPTED_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
supports_websockets = false

[analytics]
enabled = false

[features]
plugins = false
remote_plugin = false
apps = false
api_key_model_discovery = false
enable_request_compression = false
"#
    )
}

/// The finished run of one agent.
#[derive(Debug)]
pub struct AgentRun {
    pub cli: Cli,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    /// Every request the model server got, in order: `{method, path, headers, answered_turn,
    /// body}`.
    pub requests: Vec<Value>,
}

impl AgentRun {
    /// The agent's JSON-lines output (Claude's `stream-json`, Codex's `exec --json`).
    pub fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Succeeded within the timeout; otherwise an error that shows what the agent said.
    pub fn check(&self) -> Result<()> {
        if self.timed_out || !self.status.success() {
            bail!(
                "{:?} {} (timed out: {}); stdout:\n{}\nstderr:\n{}\nrequests: {}",
                self.cli,
                self.status,
                self.timed_out,
                self.stdout,
                self.stderr,
                self.requests.len()
            );
        }
        Ok(())
    }

    /// The tool results the agent sent back to the model in its last request, as text.
    pub fn tool_results(&self) -> Vec<String> {
        let Some(last) = self.requests.last() else {
            return Vec::new();
        };
        let body = &last["body"];
        let mut out = Vec::new();
        // Anthropic Messages: user messages holding `tool_result` blocks.
        for m in body["messages"].as_array().into_iter().flatten() {
            for block in m["content"].as_array().into_iter().flatten() {
                if block["type"] == "tool_result" {
                    out.push(text_of(&block["content"]));
                }
            }
        }
        // OpenAI Responses: `function_call_output` / `custom_tool_call_output` items.
        for item in body["input"].as_array().into_iter().flatten() {
            if matches!(
                item["type"].as_str(),
                Some("function_call_output" | "custom_tool_call_output")
            ) {
                out.push(text_of(&item["output"]));
            }
        }
        out
    }
}

/// A tool result's content: a string or a list of text blocks.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .map(|b| {
                b["text"]
                    .as_str()
                    .map_or_else(|| b.to_string(), str::to_owned)
            })
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

/// The model server in its own network namespace (`unshare -n`, `lo` up), killed on drop.
struct ModelServer {
    child: Child,
    addr: String,
}

impl ModelServer {
    fn start(script: &Path, log_dir: &Path) -> Result<ModelServer> {
        let mut child = Command::new("unshare")
            .args([
                "-n",
                "--",
                "sh",
                "-c",
                "ip link set lo up && exec \"$@\"",
                "sh",
            ])
            .arg(model_api())
            .arg("--script")
            .arg(script)
            .arg("--log-dir")
            .arg(log_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the model server (`unshare -n`, util-linux)")?;
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        let mut r = BufReader::new(stdout);
        r.read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("listening ") else {
            let _ = child.kill();
            let st = child.wait()?;
            bail!("the model server did not start ({st}): `{}`", line.trim());
        };
        Ok(ModelServer {
            addr: addr.to_owned(),
            child,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait for `child` (its own process group) up to `timeout`, reading its output meanwhile;
/// on timeout kill the whole group.
fn wait_with_timeout(
    mut child: Child,
    timeout: Duration,
) -> Result<(ExitStatus, String, String, bool)> {
    let read = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                s = String::from_utf8_lossy(&buf).into_owned();
            }
            s
        })
    };
    let out = read(child.stdout.take().map(|s| Box::new(s) as _));
    let err = read(child.stderr.take().map(|s| Box::new(s) as _));
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            timed_out = true;
            // SAFETY: kill(2) on the process group of our own child.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Tools left running in the group would hold the pipes open: end them too.
    // SAFETY: kill(2) on the process group of our own (finished) child.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok((status, stdout, stderr, timed_out))
}
