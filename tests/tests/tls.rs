//! TLS plaintext through uprobes, end to end (issue #16): a local TLS model API
//! (`tests/scripts/tls_model_server.py`, a self-signed CA made with the `openssl` CLI, loopback
//! only) answers the Anthropic Messages and OpenAI Chat Completions streaming formats; a Python
//! client (system `libssl.so.3`) and a node client (node's bundled OpenSSL) call it from inside a
//! daemon session, and the daemon reports `llm.request` / `llm.response` with model, offered
//! tools, the tool calls the model decided on and token counts, attributed to the session. The
//! same client outside a session produces no llm event. A copy of node at a new path is
//! attached when a session first execs it, and its next run is seen. Root required.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use agent_model::{Event, Kind};
use tests::tls::{TlsServer, tls_model_server};
use tests::{Daemon, require_sensor};

fn server() -> TlsServer {
    tls_model_server().unwrap()
}

fn scripts() -> PathBuf {
    tests::tls::scripts()
}

fn llm<'a>(evs: &'a [Event], session: Option<&str>, exe_has: &str) -> Vec<&'a Event> {
    evs.iter()
        .filter(|e| matches!(e.kind(), Kind::LlmRequest | Kind::LlmResponse))
        .filter(|e| e.session_id() == session)
        .filter(|e| e.process.exe.to_str_lossy().contains(exe_has))
        .collect()
}

fn find<'a>(evs: &[&'a Event], kind: Kind, provider: &str) -> Option<&'a Event> {
    evs.iter()
        .copied()
        .find(|e| e.kind() == kind && e.llm.as_ref().is_some_and(|l| l.provider == provider))
}

#[test]
fn python_and_node_model_calls_in_a_session_become_llm_events() {
    require_sensor!();
    let srv = server();
    let d = Daemon::start().unwrap();
    let ca = srv.dir.path().join("ca.pem");
    let port = srv.port.to_string();
    let script = format!(
        "python3 {} {} {port} && NODE_EXTRA_CA_CERTS={} node {} {port}",
        scripts().join("tls_client.py").display(),
        ca.display(),
        ca.display(),
        scripts().join("tls_client.js").display(),
    );
    let (out, sid) = d.run("t-tls", &["/bin/sh", "-c", &script]).unwrap();
    assert!(
        out.status.success(),
        "clients failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evs = d
        .wait_for("python and node llm events", |evs| {
            llm(evs, Some(&sid), "python").len() >= 4 && !llm(evs, Some(&sid), "node").is_empty()
        })
        .unwrap();

    let py = llm(&evs, Some(&sid), "python");
    let req = find(&py, Kind::LlmRequest, "anthropic").expect("anthropic request");
    let l = req.llm.as_ref().unwrap();
    assert_eq!(l.model.as_deref(), Some("claude-tls-test"));
    assert_eq!(l.path, "/v1/messages");
    assert_eq!(l.tools, vec!["Bash".to_string(), "Read".to_string()]);
    assert_eq!(
        l.excerpt
            .as_ref()
            .map(|b| b.to_str_lossy().into_owned())
            .as_deref(),
        Some("list the files please")
    );
    assert_eq!(req.agent_name(), Some("t-tls"));
    let resp = find(&py, Kind::LlmResponse, "anthropic").expect("anthropic response");
    let l = resp.llm.as_ref().unwrap();
    assert_eq!(l.tool_calls, vec!["Bash".to_string()]);
    assert_eq!(l.tool_call_ids, vec!["toolu_tls1".to_string()]);
    assert_eq!(l.input_tokens, Some(321));
    assert_eq!(l.output_tokens, Some(45));
    assert_eq!(l.stop_reason.as_deref(), Some("tool_use"));
    assert_eq!(l.status, Some(200));
    assert_eq!(
        l.conn,
        req.llm.as_ref().unwrap().conn,
        "one exchange pairs up"
    );

    let req = find(&py, Kind::LlmRequest, "open_ai_chat").expect("openai request");
    assert_eq!(
        req.llm.as_ref().unwrap().model.as_deref(),
        Some("gpt-tls-test")
    );
    assert_eq!(
        req.llm.as_ref().unwrap().tools,
        vec!["read_file".to_string()]
    );
    let resp = find(&py, Kind::LlmResponse, "open_ai_chat").expect("openai response");
    let l = resp.llm.as_ref().unwrap();
    assert_eq!(l.tool_calls, vec!["read_file".to_string()]);
    assert_eq!(l.input_tokens, Some(77));
    assert_eq!(l.output_tokens, Some(12));
    assert_eq!(l.stop_reason.as_deref(), Some("tool_calls"));

    // node: its bundled OpenSSL (attached at start, node is on PATH).
    let evs = d
        .wait_for("node's response", |evs| {
            find(
                &llm(evs, Some(&sid), "node"),
                Kind::LlmResponse,
                "anthropic",
            )
            .is_some()
        })
        .unwrap();
    let node = llm(&evs, Some(&sid), "node");
    let req = find(&node, Kind::LlmRequest, "anthropic").expect("node request");
    assert_eq!(
        req.llm.as_ref().unwrap().model.as_deref(),
        Some("claude-node-test")
    );
    assert_eq!(req.llm.as_ref().unwrap().tools, vec!["Glob".to_string()]);
    let l = find(&node, Kind::LlmResponse, "anthropic")
        .unwrap()
        .llm
        .clone()
        .unwrap();
    assert_eq!(l.tool_calls, vec!["Bash".to_string()]);
    assert_eq!(l.output_tokens, Some(45));

    // The fields are searchable in the store.
    let q = Command::new(tests::bin())
        .args(["search", "--json", "--data-dir"])
        .arg(d.data_dir())
        .arg("kind:llm.response AND llm.tool_calls:read_file AND llm.input_tokens:77")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&q.stdout);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = text.into_owned();
    while !text.contains("call_tls1") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        let q = Command::new(tests::bin())
            .args(["search", "--json", "--data-dir"])
            .arg(d.data_dir())
            .arg("kind:llm.response AND llm.tool_calls:read_file AND llm.input_tokens:77")
            .output()
            .unwrap();
        text = String::from_utf8_lossy(&q.stdout).into_owned();
    }
    assert!(text.contains("call_tls1"), "search found: {text}");

    // Outside a session: the same client, no llm event.
    let before = d.events().len();
    let out = Command::new("python3")
        .arg(scripts().join("tls_client.py"))
        .arg(&ca)
        .arg(&port)
        .output()
        .unwrap();
    assert!(out.status.success());
    // A marker session after it: once its events are in, the outside run has been drained.
    let (_, mark) = d.run("t-mark", &["/bin/true"]).unwrap();
    let evs = d
        .wait_for("the marker session", |evs| {
            evs.iter().any(|e| e.session_id() == Some(&mark))
        })
        .unwrap();
    d.settle();
    let evs_after = d.events();
    let outside: Vec<_> = evs_after[before.min(evs_after.len())..]
        .iter()
        .filter(|e| matches!(e.kind(), Kind::LlmRequest | Kind::LlmResponse))
        .collect();
    assert!(
        outside.is_empty(),
        "llm events outside a session: {outside:?}"
    );
    drop(evs);
}

/// The privacy switch reaches the model traffic: an agent configured `metadata_only` gets
/// `llm.request`/`llm.response` events with model, tool names, call ids and tokens, and no
/// prompt, system prompt, response text or tool input.
#[test]
fn a_metadata_only_agent_keeps_no_llm_text() {
    require_sensor!();
    let srv = server();
    let cfg = "[[agent]]\nname = \"t-meta\"\ncomm = [\"t-meta-none\"]\nmetadata_only = true\n";
    let d = Daemon::start_with(Some(cfg), &[]).unwrap();
    let ca = srv.dir.path().join("ca.pem");
    let (out, sid) = d
        .run(
            "t-meta",
            &[
                "python3",
                &scripts().join("tls_client.py").display().to_string(),
                &ca.display().to_string(),
                &srv.port.to_string(),
            ],
        )
        .unwrap();
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evs = d
        .wait_for("the python llm events", |evs| {
            llm(evs, Some(&sid), "python").len() >= 4
        })
        .unwrap();
    let py = llm(&evs, Some(&sid), "python");
    let req = find(&py, Kind::LlmRequest, "anthropic").expect("anthropic request");
    let l = req.llm.as_ref().unwrap();
    assert_eq!(req.agent_name(), Some("t-meta"));
    assert_eq!(l.model.as_deref(), Some("claude-tls-test"));
    assert_eq!(l.tools, vec!["Bash".to_string(), "Read".to_string()]);
    assert!(l.bytes.is_some_and(|b| b > 0), "the size stays: {l:?}");
    assert_eq!(l.excerpt, None, "no prompt text: {l:?}");
    assert_eq!(l.system, None, "no system prompt: {l:?}");
    let resp = find(&py, Kind::LlmResponse, "anthropic").expect("anthropic response");
    let l = resp.llm.as_ref().unwrap();
    assert_eq!(l.tool_calls, vec!["Bash".to_string()]);
    assert_eq!(l.tool_call_ids, vec!["toolu_tls1".to_string()]);
    assert_eq!(l.input_tokens, Some(321));
    assert_eq!(l.output_tokens, Some(45));
    assert_eq!(l.excerpt, None, "no response text or tool input: {l:?}");
    // `status` counts what the parsers saw, per API.
    let st = d.status().unwrap();
    let intent = &st["intent"];
    assert!(intent["tls_records"].as_u64().unwrap_or(0) >= 4, "{st}");
    assert!(
        intent["requests"]["anthropic"].as_u64().unwrap_or(0) >= 1,
        "{st}"
    );
    assert!(
        intent["responses"]["open_ai_chat"].as_u64().unwrap_or(0) >= 1,
        "{st}"
    );
    assert_eq!(intent["parse_failures"].as_u64(), Some(0), "{st}");
    // Nothing of the texts reached the events file either.
    let text = std::fs::read_to_string(&d.events_path).unwrap();
    for secret in [
        "list the files please",
        "You are a test agent",
        "read the hostname",
        "Listing the files.",
    ] {
        assert!(!text.contains(secret), "`{secret}` was stored");
    }
}

#[test]
fn an_executable_exporting_ssl_is_attached_when_a_session_first_runs_it() {
    require_sensor!();
    let Ok(node) = which("node") else {
        eprintln!("SKIPPED: no node on PATH");
        return;
    };
    let srv = server();
    // A copy at a new inode: not attached at start.
    let copy = srv.dir.path().join("node-copy");
    std::fs::copy(&node, &copy).unwrap();
    let d = Daemon::start().unwrap();
    let ca = srv.dir.path().join("ca.pem");
    let script = format!(
        "NODE_EXTRA_CA_CERTS={} {} {} {}",
        ca.display(),
        copy.display(),
        scripts().join("tls_client.js").display(),
        srv.port
    );
    // First run: the exec makes the daemon attach (the run itself may be over by then).
    let (out, _) = d.run("t-tls", &["/bin/sh", "-c", &script]).unwrap();
    assert!(out.status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let copy_s = copy.display().to_string();
    loop {
        let st = d.status().unwrap();
        if st.to_string().contains(&format!("uprobe/{copy_s}")) {
            break;
        }
        assert!(Instant::now() < deadline, "not attached: {st}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (out, sid) = d.run("t-tls", &["/bin/sh", "-c", &script]).unwrap();
    assert!(out.status.success());
    let evs = d
        .wait_for("the copy's llm response", |evs| {
            find(
                &llm(evs, Some(&sid), "node-copy"),
                Kind::LlmResponse,
                "anthropic",
            )
            .is_some()
        })
        .unwrap();
    let l = find(
        &llm(&evs, Some(&sid), "node-copy"),
        Kind::LlmResponse,
        "anthropic",
    )
    .unwrap()
    .llm
    .clone()
    .unwrap();
    assert_eq!(l.input_tokens, Some(321));
}

fn which(name: &str) -> Result<PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .ok_or(())
}
