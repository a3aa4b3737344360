//! Intent from the hook channel without a real agent: a Python stand-in (in an `agentwatch
//! run` session) reports a Read tool call and an MCP tool call through `agentwatch hook` and
//! does the work itself. The daemon must turn the MCP call into an `mcp.call` event (server,
//! tool, redacted arguments, the call id) and tie the `cat` it caused to it; and when the agent
//! process itself, inside a Read call of file A, opens a credential file B, tag that open with
//! the call and A (`intent.tool_path`), mark it `intent.divergent` and raise
//! `intent.divergent_file_access`, while an agent that opens exactly A raises nothing. Root
//! required.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agent_model::{Event, Kind};
use serde_json::Value;
use tests::Daemon;

struct Run {
    _dir: tempfile::TempDir,
    daemon: Daemon,
    sid: String,
    a: PathBuf,
    b: PathBuf,
}

fn run(mode: &str, agent_extra: &str) -> Run {
    let dir = tempfile::Builder::new()
        .prefix("aw-intent-")
        .tempdir()
        .unwrap();
    let socket = dir.path().join("hook.sock");
    let cfg = format!(
        "[[agent]]\nname = \"claude-code\"\ncomm = [\"claude\"]\n{agent_extra}\n[hooks]\nsocket = \"{}\"\nfail = \"open\"\ntimeout_ms = 10000\n",
        socket.display()
    );
    let daemon = Daemon::start_with(Some(&cfg), &[]).unwrap();
    let a = dir.path().join("README.md");
    std::fs::write(&a, "# readme\n").unwrap();
    std::fs::create_dir_all(dir.path().join("home/.ssh")).unwrap();
    let b = dir.path().join("home/.ssh/id_rsa");
    std::fs::write(&b, "-----BEGIN OPENSSH PRIVATE KEY-----\n").unwrap();
    let script = tests::root().join("tests/scripts/hook_agent.py");
    let bin = tests::bin();
    let (out, sid) = daemon
        .run(
            "claude-code",
            &[
                "python3",
                script.to_str().unwrap(),
                bin.to_str().unwrap(),
                socket.to_str().unwrap(),
                a.to_str().unwrap(),
                b.to_str().unwrap(),
                mode,
            ],
        )
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Run {
        _dir: dir,
        daemon,
        sid,
        a,
        b,
    }
}

/// The daemon's alerts (`agentwatch alerts --json`), polled until `rule` shows up or 30 s pass.
fn wait_alert(data: &Path, rule: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new(tests::bin())
            .args(["alerts", "--json", "--data-dir"])
            .arg(data)
            .output()
            .unwrap();
        let alerts: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if alerts.iter().any(|a| a["alert"]["rule"] == rule) || Instant::now() > deadline {
            return alerts;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn opens_of<'a>(evs: &'a [Event], sid: &str, path: &Path) -> Vec<&'a Event> {
    evs.iter()
        .filter(|e| {
            e.kind() == Kind::FileOpen
                && e.session_id() == Some(sid)
                && e.file
                    .as_ref()
                    .is_some_and(|f| f.path.to_str_lossy() == path.to_str().unwrap())
        })
        .collect()
}

fn mcp_calls<'a>(evs: &'a [Event], sid: &str) -> Vec<&'a Event> {
    evs.iter()
        .filter(|e| e.kind() == Kind::McpCall && e.session_id() == Some(sid))
        .collect()
}

#[test]
fn the_agent_opening_another_secret_inside_a_read_call_is_divergent() {
    tests::require_sensor!();
    let r = run("divergent", "");
    let alerts = wait_alert(&r.daemon.data_dir(), "intent.divergent_file_access");
    let a = alerts
        .iter()
        .find(|a| a["alert"]["rule"] == "intent.divergent_file_access")
        .unwrap_or_else(|| panic!("no divergent alert: {alerts:?}"));
    let text = a.to_string();
    assert!(text.contains(r.a.to_str().unwrap()), "{text}");
    assert!(text.contains(r.b.to_str().unwrap()), "{text}");
    let evs = r.daemon.events();
    // The python process itself opened both; the open of B carries the Read call and A.
    let b_open = opens_of(&evs, &r.sid, &r.b);
    let own = b_open
        .iter()
        .find(|e| e.process.exe.to_str_lossy().contains("python"))
        .unwrap_or_else(|| panic!("no python open of B: {b_open:?}"));
    let i = own.intent.as_ref().unwrap();
    assert_eq!(i.tool_call_id.as_deref(), Some("toolu_read1"));
    assert_eq!(i.tool_name.as_deref(), Some("Read"));
    assert_eq!(
        i.tool_path.as_ref().unwrap().to_str_lossy(),
        r.a.to_str().unwrap()
    );
    assert!(i.divergent);
    // The open of A itself is the call's, not divergent.
    let a_open = opens_of(&evs, &r.sid, &r.a);
    let ia = a_open
        .iter()
        .find_map(|e| {
            e.intent
                .as_ref()
                .filter(|i| i.tool_call_id.as_deref() == Some("toolu_read1"))
        })
        .unwrap_or_else(|| panic!("open of A not tagged: {a_open:?}"));
    assert!(!ia.divergent);
}

#[test]
fn an_agent_reading_exactly_the_named_file_and_an_mcp_call_are_recorded() {
    tests::require_sensor!();
    let r = run("clean", "");
    // The MCP call's rule comes after the Read call: once it is there, so would be any
    // divergent alert.
    let alerts = wait_alert(&r.daemon.data_dir(), "intent.mcp_call_then_secret_read");
    assert!(
        alerts
            .iter()
            .any(|a| a["alert"]["rule"] == "intent.mcp_call_then_secret_read"),
        "{alerts:?}"
    );
    assert!(
        !alerts
            .iter()
            .any(|a| a["alert"]["rule"] == "intent.divergent_file_access"),
        "{alerts:?}"
    );
    let evs = r.daemon.events();
    assert!(
        opens_of(&evs, &r.sid, &r.a)
            .iter()
            .all(|e| !e.intent.as_ref().is_some_and(|i| i.divergent))
    );
    // mcp.call: server, tool, call id, decision, arguments without the token.
    let calls = mcp_calls(&evs, &r.sid);
    assert_eq!(calls.len(), 1, "{calls:?}");
    let m = calls[0].mcp.as_ref().unwrap();
    assert_eq!((m.server.as_str(), m.tool.as_str()), ("docs", "fetch"));
    let args = m.arguments.as_ref().unwrap().to_str_lossy().into_owned();
    assert!(args.contains("docs.example"), "{args}");
    assert!(
        !args.contains("ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
        "{args}"
    );
    let i = calls[0].intent.as_ref().unwrap();
    assert_eq!(i.tool_call_id.as_deref(), Some("toolu_mcp1"));
    assert_eq!(i.decision.as_deref(), Some("allow"));
    assert!(calls[0].process.exe.to_str_lossy().contains("python"));
    // It comes with the agent.tool_call of the same id, and the cat it caused carries that id.
    assert!(evs.iter().any(|e| e.kind() == Kind::AgentToolCall
        && e.intent.as_ref().and_then(|i| i.tool_call_id.as_deref()) == Some("toolu_mcp1")));
    let cat = opens_of(&evs, &r.sid, &r.b);
    assert!(
        cat.iter()
            .any(|e| e.process.exe.to_str_lossy().ends_with("/cat")
                && e.intent.as_ref().and_then(|i| i.tool_call_id.as_deref()) == Some("toolu_mcp1")),
        "{cat:?}"
    );
}

#[test]
fn a_metadata_only_agent_keeps_no_mcp_arguments_or_tool_path() {
    tests::require_sensor!();
    let r = run("divergent", "metadata_only = true\n");
    // Detection works on what the daemon keeps in memory; the stored text does not.
    let alerts = wait_alert(&r.daemon.data_dir(), "intent.mcp_call_then_secret_read");
    assert!(
        alerts
            .iter()
            .any(|a| a["alert"]["rule"] == "intent.divergent_file_access"),
        "{alerts:?}"
    );
    let evs = r.daemon.events();
    let calls = mcp_calls(&evs, &r.sid);
    assert_eq!(calls.len(), 1, "{calls:?}");
    let m = calls[0].mcp.as_ref().unwrap();
    assert_eq!(m.arguments, None);
    assert!(m.bytes.unwrap() > 0);
    let tc = evs
        .iter()
        .find(|e| {
            e.kind() == Kind::AgentToolCall
                && e.intent.as_ref().and_then(|i| i.tool_call_id.as_deref()) == Some("toolu_read1")
        })
        .unwrap();
    let i = tc.intent.as_ref().unwrap();
    assert_eq!((i.tool_input.as_ref(), i.tool_path.as_ref()), (None, None));
}
