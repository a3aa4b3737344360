//! Agent hooks end to end: `agentwatch agents install-hooks` writes Claude Code's settings, the
//! real Claude Code CLI (run as an unprivileged user against the scripted model, see
//! `tests/src/agents.rs`) runs `agentwatch hook` for every tool call, and the daemon records
//! what the agent said (`agent.tool_call`, `agent.tool_result`) in the same session as what the
//! kernel saw, tags the kernel events a tool call caused with its id, and answers a `PreToolUse`
//! with a deny when a `hook.deny` rule matches: the command never runs and the reason reaches
//! the model. A daemon that does not answer costs the hook at most its bound, failing open or
//! closed as configured. Root required.
//!
//! Claude Code reads its managed settings only from `/etc/claude-code`, which a test must not
//! change on a shared host; the settings file is handed to the run with `--settings`, which
//! loads the same `hooks` the managed file would.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent_model::{Event, Kind};
use serde_json::{Value, json};
use tests::agents::{AgentHome, Cli, text_turn, tool_turn};
use tests::{Daemon, require_agents};

const TIMEOUT: Duration = Duration::from_secs(60);
const DENY_MARK: &str = "agentwatch-deny-7f3a";

/// A 0755 directory for the hook socket and the settings (the agent's user must reach both).
fn shared_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("aw-hooks-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    d
}

fn config(socket: &Path, fail: &str) -> String {
    format!(
        "[[agent]]\nname = \"claude-code\"\ncomm = [\"claude\"]\n\n[hooks]\nsocket = \"{}\"\nfail = \"{fail}\"\ntimeout_ms = 2000\n",
        socket.display()
    )
}

/// `agentwatch agents install-hooks --agent claude-code` into `settings`, using `config`.
fn install_hooks(settings: &Path, config: &Path) {
    install_hooks_for("claude-code", settings, config);
}

/// `agentwatch agents install-hooks --agent AGENT` into `settings`, using `config`; then
/// `agents status` must call it covered with a daemon answering.
fn install_hooks_for(agent: &str, settings: &Path, config: &Path) {
    let out = Command::new(tests::bin())
        .args(["agents", "install-hooks", "--agent", agent, "--settings"])
        .arg(settings)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = Command::new(tests::bin())
        .args(["agents", "status", "--json", "--agent", agent, "--settings"])
        .arg(settings)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["covered"], true, "{v}");
    assert_eq!(v["daemon_answers"], true, "{v}");
}

struct Setup {
    _dir: tempfile::TempDir,
    settings: PathBuf,
    socket: PathBuf,
    daemon: Daemon,
}

fn setup(fail: &str, rules: Option<&str>) -> Setup {
    let dir = shared_dir();
    let socket = dir.path().join("hook.sock");
    let cfg_text = config(&socket, fail);
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, &cfg_text).unwrap();
    let mut extra: Vec<String> = Vec::new();
    if let Some(r) = rules {
        let p = dir.path().join("rules.toml");
        std::fs::write(&p, r).unwrap();
        extra = vec!["--rules".into(), p.display().to_string()];
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let daemon = Daemon::start_with(Some(&cfg_text), &extra).unwrap();
    let settings = dir.path().join("managed-settings.json");
    install_hooks(&settings, &cfg);
    Setup {
        _dir: dir,
        settings,
        socket,
        daemon,
    }
}

fn intent_of(e: &Event) -> (Option<&str>, Option<&str>) {
    let i = e.intent.as_ref();
    (
        i.and_then(|i| i.tool_call_id.as_deref()),
        i.and_then(|i| i.tool_name.as_deref()),
    )
}

#[test]
fn a_claude_tool_call_is_recorded_and_tags_the_processes_it_caused() {
    require_agents!();
    let s = setup("open", None);
    let h = AgentHome::new().unwrap();
    let marker = h.project().join("marker-1");
    let run = h
        .run_with(
            Cli::Claude,
            "make a marker",
            &[
                tool_turn(&[(
                    "Bash",
                    json!({"command": format!("touch {}", marker.display()), "description": "Make a marker"}),
                )]),
                text_turn("done"),
            ],
            TIMEOUT,
            &["--settings", &s.settings.display().to_string()],
        )
        .unwrap();
    run.check().unwrap();
    assert!(marker.exists(), "the allowed tool call ran");
    // The scripted model's id of turn 0's first call. Daemons of tests running at once all see
    // every claude session: pick this test's events by the call's input.
    let id = "toolu_awturn0x0";
    let ours = |e: &Event| {
        e.intent
            .as_ref()
            .and_then(|i| i.tool_input.as_ref())
            .is_some_and(|t| t.to_str_lossy().contains("marker-1"))
    };
    let evs = s
        .daemon
        .wait_for("the tool call, its result and the tagged touch", |evs| {
            evs.iter()
                .any(|e| e.kind() == Kind::AgentToolResult && ours(e))
                && evs.iter().any(|e| {
                    e.kind() == Kind::ProcessExec
                        && e.process.exe.to_str_lossy().ends_with("/touch")
                })
        })
        .unwrap();
    let call = evs
        .iter()
        .find(|e| e.kind() == Kind::AgentToolCall && ours(e))
        .expect("agent.tool_call");
    let sid = call.session_id().unwrap().to_owned();
    let i = call.intent.as_ref().unwrap();
    assert_eq!(i.tool_call_id.as_deref(), Some(id), "{}", call.to_json());
    assert_eq!(i.tool_name.as_deref(), Some("Bash"));
    assert_eq!(i.decision.as_deref(), Some("allow"));
    assert!(
        i.tool_input
            .as_ref()
            .is_some_and(|t| t.to_str_lossy().contains("marker-1")),
        "{}",
        call.to_json()
    );
    // The hook's event is the agent's: its process is the claude binary, in claude's session.
    assert_eq!(call.agent_name(), Some("claude-code"));
    assert_eq!(
        call.process.comm.to_str_lossy(),
        "claude",
        "{}",
        call.to_json()
    );
    let claude_exec = evs
        .iter()
        .find(|e| {
            e.kind() == Kind::ProcessExec
                && e.process.comm.to_str_lossy() == "claude"
                && e.session_id() == Some(sid.as_str())
        })
        .expect("claude's exec in the call's session");
    let result = evs
        .iter()
        .find(|e| e.kind() == Kind::AgentToolResult && ours(e))
        .unwrap();
    assert_eq!(result.session_id(), Some(sid.as_str()));
    assert_eq!(intent_of(result).0, Some(id));
    // The kernel's view of the tool: touch ran in the same session, tagged with the call.
    let touch = evs
        .iter()
        .find(|e| {
            e.kind() == Kind::ProcessExec
                && e.process.exe.to_str_lossy().ends_with("/touch")
                && e.process.cmdline.to_str_lossy().contains("marker-1")
        })
        .unwrap();
    assert_eq!(touch.session_id(), Some(sid.as_str()));
    assert_eq!(
        intent_of(touch),
        (Some(id), Some("Bash")),
        "{}",
        touch.to_json()
    );
    let created = evs.iter().find(|e| {
        e.kind() == Kind::FileOpen
            && e.file
                .as_ref()
                .is_some_and(|f| f.path.to_str_lossy() == marker.display().to_string())
    });
    assert_eq!(created.map(intent_of), Some((Some(id), Some("Bash"))));
    // The agent's own events outside the call are not tagged.
    assert_eq!(intent_of(claude_exec), (None, None));
    // Searchable in the store by the call id, once the index has committed.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = Command::new(tests::bin())
            .args(["search", "--json", "--limit", "1000", "--data-dir"])
            .arg(s.daemon.data_dir())
            .arg(format!("intent.tool_call_id:{id}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("agent.tool_call") && text.contains("process.exec") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status {}: {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A daemon whose config knows Codex (`agent_extra` appended to its `[[agent]]`), Codex's
/// managed hooks installed by `install-hooks --agent codex`, and one real Codex run that touches
/// `project/MARKER` through its shell tool. Returns the shared dir (keep it), the daemon and
/// the marker's path.
fn run_codex_with_hooks(agent_extra: &str, marker: &str) -> (tempfile::TempDir, Daemon, PathBuf) {
    let dir = shared_dir();
    let socket = dir.path().join("hook.sock");
    let cfg_text = format!(
        "{}\n[[agent]]\nname = \"codex\"\ncomm = [\"codex\"]\n{agent_extra}",
        config(&socket, "open")
    );
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, &cfg_text).unwrap();
    let daemon = Daemon::start_with(Some(&cfg_text), &[]).unwrap();
    let etc = dir.path().join("etc-codex");
    std::fs::create_dir(&etc).unwrap();
    std::fs::set_permissions(&etc, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let req = etc.join("requirements.toml");
    install_hooks_for("codex", &req, &cfg);
    let text = std::fs::read_to_string(&req).unwrap();
    assert!(text.contains("[[hooks.PreToolUse]]"), "{text}");
    let h = AgentHome::new().unwrap();
    h.codex_system_dir(&etc).unwrap();
    let marker = h.project().join(marker);
    let run = h
        .run_with(
            Cli::Codex,
            "make a marker",
            &[
                tool_turn(&[(
                    "exec_command",
                    json!({"cmd": format!("touch {}", marker.display())}),
                )]),
                text_turn("done"),
            ],
            TIMEOUT,
            // A user's attempt to switch hooks off does not reach managed hooks.
            &["-c", "features.hooks=false"],
        )
        .unwrap();
    run.check().unwrap();
    assert!(marker.exists(), "the allowed tool call ran");
    (dir, daemon, marker)
}

/// Codex 0.171 with the hooks `install-hooks --agent codex` writes: its admin requirements file
/// (seen by the run as `/etc/codex/requirements.toml` through a private bind mount, see
/// `AgentHome::codex_system_dir`), managed hooks that run without any trust step. A shell tool
/// call (`exec_command`, which Codex's hooks name `Bash`) becomes an `agent.tool_call` and an
/// `agent.tool_result` with Codex's call id, and the command it ran carries that id.
#[test]
fn a_codex_tool_call_is_recorded_and_tags_the_processes_it_caused() {
    require_agents!();
    let (_dir, daemon, marker) = run_codex_with_hooks("", "codex-marker-1");
    let id = "call_awturn0x0";
    let ours = |e: &Event| {
        e.intent
            .as_ref()
            .and_then(|i| i.tool_input.as_ref())
            .is_some_and(|t| t.to_str_lossy().contains("codex-marker-1"))
    };
    let evs = daemon
        .wait_for(
            "codex's tool call, its result and the tagged touch",
            |evs| {
                evs.iter()
                    .any(|e| e.kind() == Kind::AgentToolResult && ours(e))
                    && evs.iter().any(|e| {
                        e.kind() == Kind::ProcessExec
                            && e.process.cmdline.to_str_lossy().contains("codex-marker-1")
                            && e.process.exe.to_str_lossy().ends_with("/touch")
                    })
            },
        )
        .unwrap();
    let call = evs
        .iter()
        .find(|e| e.kind() == Kind::AgentToolCall && ours(e))
        .expect("agent.tool_call");
    let i = call.intent.as_ref().unwrap();
    assert_eq!(i.tool_call_id.as_deref(), Some(id), "{}", call.to_json());
    assert_eq!(i.tool_name.as_deref(), Some("Bash"));
    assert_eq!(i.hook.as_deref(), Some("PreToolUse"));
    assert_eq!(call.agent_name(), Some("codex"), "{}", call.to_json());
    assert_eq!(call.process.comm.to_str_lossy(), "codex");
    let sid = call.session_id().unwrap().to_owned();
    let result = evs
        .iter()
        .find(|e| e.kind() == Kind::AgentToolResult && ours(e))
        .unwrap();
    assert_eq!(result.session_id(), Some(sid.as_str()));
    assert_eq!(intent_of(result).0, Some(id));
    let touch = evs
        .iter()
        .find(|e| {
            e.kind() == Kind::ProcessExec
                && e.process.exe.to_str_lossy().ends_with("/touch")
                && e.process.cmdline.to_str_lossy().contains("codex-marker-1")
        })
        .unwrap();
    assert_eq!(touch.session_id(), Some(sid.as_str()));
    assert_eq!(
        intent_of(touch),
        (Some(id), Some("Bash")),
        "{}",
        touch.to_json()
    );
    let created = evs.iter().find(|e| {
        e.kind() == Kind::FileOpen
            && e.file
                .as_ref()
                .is_some_and(|f| f.path.to_str_lossy() == marker.display().to_string())
    });
    assert_eq!(created.map(intent_of), Some((Some(id), Some("Bash"))));
    // The prompt came through `UserPromptSubmit` too.
    assert!(
        evs.iter().any(|e| e.kind() == Kind::AgentPrompt
            && e.session_id() == Some(sid.as_str())
            && e.intent
                .as_ref()
                .and_then(|i| i.prompt.as_ref())
                .is_some_and(|p| p.to_str_lossy() == "make a marker")),
        "no agent.prompt in the codex session"
    );
}

/// The privacy switch: a `metadata_only` agent's hook events keep the tool name, the call id
/// and the decision, and no prompt, tool input or tool output text; the kernel events of the
/// call still carry its id.
#[test]
fn a_metadata_only_codex_keeps_no_hook_text() {
    require_agents!();
    let (_dir, daemon, marker) = run_codex_with_hooks("metadata_only = true\n", "meta-marker-2");
    let id = "call_awturn0x0";
    let evs = daemon
        .wait_for("the metadata-only tool result and the touch", |evs| {
            evs.iter().any(|e| e.kind() == Kind::AgentToolResult)
                && evs.iter().any(|e| {
                    e.kind() == Kind::ProcessExec
                        && e.process.cmdline.to_str_lossy().contains("meta-marker-2")
                })
        })
        .unwrap();
    let agent_evs: Vec<&Event> = evs
        .iter()
        .filter(|e| {
            matches!(
                e.kind(),
                Kind::AgentToolCall | Kind::AgentToolResult | Kind::AgentPrompt
            )
        })
        .collect();
    let call = agent_evs
        .iter()
        .find(|e| e.kind() == Kind::AgentToolCall)
        .expect("agent.tool_call");
    assert_eq!(
        intent_of(call),
        (Some(id), Some("Bash")),
        "{}",
        call.to_json()
    );
    assert!(agent_evs.iter().any(|e| e.kind() == Kind::AgentPrompt));
    for e in &agent_evs {
        let i = e.intent.as_ref().unwrap();
        assert!(
            i.tool_input.is_none() && i.tool_output.is_none() && i.prompt.is_none(),
            "a metadata-only agent's hook kept text: {}",
            e.to_json()
        );
        assert!(!e.to_json().contains("meta-marker-2"), "{}", e.to_json());
    }
    let touch = evs
        .iter()
        .find(|e| {
            e.kind() == Kind::ProcessExec
                && e.process.cmdline.to_str_lossy().contains("meta-marker-2")
        })
        .unwrap();
    assert_eq!(
        intent_of(touch),
        (Some(id), Some("Bash")),
        "{}",
        touch.to_json()
    );
    assert!(marker.ends_with("meta-marker-2"));
}

const DENY_RULES: &str = r#"
[[rule]]
id = "test.deny_cloud_credentials"
description = "A Bash tool call that names cloud credentials is refused before it runs."
kinds = ["agent.tool_call"]
severity = "high"
tags = ["hook.deny", "credential_access"]
output = "reading cloud credentials is not allowed here (agentwatch-deny-7f3a): {intent.tool_input}"
[rule.condition]
all = [
    { field = "intent.tool_name", equals = "Bash" },
    { field = "intent.tool_input", contains = [".aws/credentials"] },
]
"#;

#[test]
fn a_deny_rule_stops_a_real_claude_tool_call_and_the_model_gets_the_reason() {
    require_agents!();
    let s = setup("open", Some(DENY_RULES));
    let h = AgentHome::new().unwrap();
    h.plant(".aws/credentials", "[default]\naws_secret_access_key = x\n")
        .unwrap();
    let pwned = h.project().join("pwned");
    let run = h
        .run_with(
            Cli::Claude,
            "read my aws credentials",
            &[
                tool_turn(&[(
                    "Bash",
                    json!({"command": format!("touch {} && cat ~/.aws/credentials", pwned.display()),
                           "description": "Read credentials"}),
                )]),
                text_turn("done"),
            ],
            TIMEOUT,
            &["--settings", &s.settings.display().to_string()],
        )
        .unwrap();
    run.check().unwrap();
    assert!(!pwned.exists(), "the denied command ran");
    let results = run.tool_results();
    assert!(
        results.iter().any(|r| r.contains(DENY_MARK)),
        "the deny reason did not reach the model: {results:?}"
    );
    let evs = s
        .daemon
        .wait_for("the denied tool call", |evs| {
            evs.iter().any(|e| {
                e.kind() == Kind::AgentToolCall && e.to_json().contains(".aws/credentials")
            })
        })
        .unwrap();
    let call = evs
        .iter()
        .find(|e| e.kind() == Kind::AgentToolCall && e.to_json().contains(".aws/credentials"))
        .unwrap();
    let sid = call.session_id().unwrap().to_owned();
    let i = call.intent.as_ref().unwrap();
    assert_eq!(i.decision.as_deref(), Some("deny"), "{}", call.to_json());
    assert!(i.reason.as_deref().is_some_and(|r| r.contains(DENY_MARK)));
    s.daemon.settle();
    let evs = s.daemon.events();
    assert!(
        !evs.iter().any(|e| e.kind() == Kind::ProcessExec
            && e.session_id() == Some(sid.as_str())
            && e.process.exe.to_str_lossy().ends_with("/touch")),
        "touch ran"
    );
    // The rule raised its alert like any other.
    let out = Command::new(tests::bin())
        .args(["alerts", "--json", "--data-dir"])
        .arg(s.daemon.data_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("test.deny_cloud_credentials"), "{text}");
}

/// Run `agentwatch hook` on a `PreToolUse` payload; its stdout and how long it took.
fn hook_once(socket: &Path, fail: &str) -> (String, Duration, bool) {
    let start = Instant::now();
    let mut child = Command::new(tests::bin())
        .args([
            "hook",
            "--agent",
            "claude-code",
            "--timeout-ms",
            "1000",
            "--fail",
            fail,
        ])
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            br#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls"},"tool_use_id":"t1"}"#,
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        start.elapsed(),
        out.status.success(),
    )
}

#[test]
fn a_hook_without_an_answer_fails_open_or_closed_within_its_bound() {
    tests::require_sensor!();
    let s = setup("closed", None);
    // A frozen daemon accepts the connection and never answers.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(s.daemon.pid(), libc::SIGSTOP) };
    let closed = hook_once(&s.socket, "closed");
    let open = hook_once(&s.socket, "open");
    // SAFETY: as above.
    unsafe { libc::kill(s.daemon.pid(), libc::SIGCONT) };
    for (what, (_, took, ok)) in [("closed", &closed), ("open", &open)] {
        assert!(*ok, "fail {what}: the hook must exit 0");
        assert!(
            *took < Duration::from_millis(1800),
            "fail {what}: took {took:?} for a 1000 ms bound"
        );
        assert!(*took >= Duration::from_millis(900), "fail {what}: {took:?}");
    }
    let v: Value = serde_json::from_str(&closed.0).unwrap();
    assert_eq!(v["hookSpecificOutput"]["permissionDecision"], "deny", "{v}");
    assert_eq!(open.0, "", "failing open prints no decision");
    // A live daemon answers a caller in no session with a plain allow, at once (once it has
    // caught up after SIGCONT: it answers `status` again).
    let resumed = std::time::Instant::now();
    while s.daemon.status().is_err() && resumed.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (out, took, ok) = hook_once(&s.socket, "closed");
    assert!(ok && out.is_empty(), "{out}");
    assert!(took < Duration::from_millis(900), "{took:?}");
}

/// A tool call that leaves a job behind: the read inside the call is declared, the job's read
/// after the call ended is undeclared, and the shipped rule says so.
#[test]
fn a_job_left_behind_by_a_real_claude_tool_call_is_undeclared() {
    require_agents!();
    let s = setup("open", None);
    let h = AgentHome::new().unwrap();
    let config = h.plant(".aws/config", "[default]\nregion = x\n").unwrap();
    let creds = h
        .plant(".aws/credentials", "[default]\naws_secret_access_key = x\n")
        .unwrap();
    let command = format!(
        "cat {} > /dev/null; setsid sh -c 'sleep 3; cat {}' > /dev/null 2>&1 < /dev/null &",
        config.display(),
        creds.display()
    );
    let run = h
        .run_with(
            Cli::Claude,
            "check the aws setup",
            &[
                tool_turn(&[(
                    "Bash",
                    json!({"command": command, "description": "Check setup"}),
                )]),
                text_turn("done"),
            ],
            TIMEOUT,
            &["--settings", &s.settings.display().to_string()],
        )
        .unwrap();
    run.check().unwrap();
    // `cat`'s opens (claude itself may read `~/.aws/config` as it starts).
    let opened = |evs: &[Event], p: &Path| -> Option<Event> {
        evs.iter()
            .find(|e| {
                e.kind() == Kind::FileOpen
                    && e.process.exe.to_str_lossy().ends_with("/cat")
                    && e.file
                        .as_ref()
                        .is_some_and(|f| f.path.to_str_lossy() == p.display().to_string())
            })
            .cloned()
    };
    let evs = s
        .daemon
        .wait_for("the job's read", |evs| opened(evs, &creds).is_some())
        .unwrap();
    let declared = opened(&evs, &config).expect("the read inside the call");
    let i = declared.intent.as_ref().expect("tagged with its call");
    assert_eq!(
        i.tool_name.as_deref(),
        Some("Bash"),
        "{}",
        declared.to_json()
    );
    assert!(!i.undeclared, "{}", declared.to_json());
    let job = opened(&evs, &creds).unwrap();
    let i = job.intent.as_ref().expect("intent on the job's read");
    assert!(i.undeclared, "{}", job.to_json());
    assert_eq!(
        i.tool_call_id,
        declared.intent.as_ref().unwrap().tool_call_id,
        "the call that left the job behind"
    );
    assert_eq!(job.session_id(), declared.session_id());
    // Alerts are searchable once the store commits: poll.
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let out = Command::new(tests::bin())
            .args(["alerts", "--json", "--data-dir"])
            .arg(s.daemon.data_dir())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("intent.undeclared_secret_read") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let undeclared: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("intent.undeclared_secret_read"))
        .collect();
    assert!(
        undeclared.iter().any(|l| l.contains(".aws/credentials")),
        "{text}"
    );
    assert!(
        !undeclared.iter().any(|l| l.contains(".aws/config")),
        "the declared read raised the undeclared rule: {text}"
    );
}
