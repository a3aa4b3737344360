//! Real AI agents under the real daemon: Claude Code and Codex (the pinned npm releases that
//! `cargo xtask setup` installs) run scripted tool calls from the `model_api` test server, as an
//! unprivileged user in a network namespace with only `lo` (see `tests/src/agents.rs`). The
//! daemon must recognise each CLI by its built-in config, open a session for it, and attribute
//! what the tools did (reading a planted SSH key, writing a file) to that session; the model
//! server's log shows that the tool results went back to the model. Root required.

use std::path::Path;
use std::time::Duration;

use agent_model::{Event, Kind};
use serde_json::json;
use tests::agents::{AgentHome, AgentRun, Cli, text_turn, tool_turn};
use tests::{Daemon, require_agents};

const KEY: &str =
    "-----BEGIN OPENSSH PRIVATE KEY-----\nFAKE-KEY-7c41e9\n-----END OPENSSH PRIVATE KEY-----\n";
const KEY_MARK: &str = "FAKE-KEY-7c41e9";
const TIMEOUT: Duration = Duration::from_secs(45);

fn path_of(e: &Event) -> String {
    e.file
        .as_ref()
        .map(|f| f.path.to_str_lossy().into_owned())
        .unwrap_or_default()
}

/// The CLI's binary as the kernel reports it (symlinks resolved).
fn exe_of(cli: Cli) -> String {
    let bin = cli.binary();
    bin.canonicalize().unwrap_or(bin).display().to_string()
}

/// The session the daemon opened for `cli`: the one whose `process.exec` is the CLI's binary.
fn session_of(evs: &[Event], cli: Cli) -> Option<String> {
    let bin = exe_of(cli);
    evs.iter()
        .find(|e| {
            e.kind() == Kind::ProcessExec
                && e.agent_name() == Some(cli.agent_name())
                && e.process.exe.to_str_lossy() == bin
        })
        .and_then(|e| e.session_id().map(str::to_owned))
}

/// A `file.open` of `path` by `comm` in `session`, with the given access.
fn opened(evs: &[Event], session: &str, path: &Path, comm: &str, access: &str) -> bool {
    let path = path.display().to_string();
    evs.iter().any(|e| {
        e.kind() == Kind::FileOpen
            && e.session_id() == Some(session)
            && path_of(e) == path
            && e.process.comm.to_str_lossy() == comm
            && e.file.as_ref().and_then(|f| f.access.as_deref()) == Some(access)
    })
}

/// Every event of the session carries the CLI's agent name, and every connection it made went
/// to the scripted model on loopback.
fn assert_session_is_clean(evs: &[Event], session: &str, cli: Cli) {
    let mine = tests::in_session(evs, session);
    assert!(!mine.is_empty());
    for e in &mine {
        assert_eq!(e.agent_name(), Some(cli.agent_name()), "{}", e.to_json());
    }
    let connects: Vec<_> = mine
        .iter()
        .filter(|e| e.kind() == Kind::NetConnect)
        .collect();
    assert!(!connects.is_empty(), "the agent never reached its model");
    for e in connects {
        let dst = e.net.as_ref().and_then(|n| n.dst_ip);
        assert!(
            dst.is_some_and(|ip| ip.is_loopback()),
            "connection off the host: {}",
            e.to_json()
        );
    }
}

fn assert_key_went_back(run: &AgentRun) {
    let results = run.tool_results();
    assert!(
        results.iter().any(|r| r.contains(KEY_MARK)),
        "the shell tool's output (the key) was not sent back to the model: {results:?}"
    );
}

#[test]
fn claude_code_session_reads_a_planted_key_and_writes_a_file() {
    require_agents!();
    let h = AgentHome::new().unwrap();
    let key = h.plant(".ssh/id_rsa", KEY).unwrap();
    let notes = h.project().join("notes.txt");
    let d = Daemon::start().unwrap();
    let run = h
        .run(
            Cli::Claude,
            "look at my ssh key and write notes",
            &[
                tool_turn(&[(
                    "Bash",
                    json!({"command": "cat ~/.ssh/id_rsa", "description": "Show the key"}),
                )]),
                tool_turn(&[(
                    "Write",
                    json!({"file_path": notes, "content": "written by claude\n"}),
                )]),
                text_turn("done"),
            ],
            TIMEOUT,
        )
        .unwrap();
    run.check().unwrap();
    // The agent did what the model asked, and said so in its stream-json output.
    assert_eq!(
        std::fs::read_to_string(&notes).unwrap(),
        "written by claude\n"
    );
    let out = run.events();
    let result = out.iter().find(|e| e["type"] == "result").expect("result");
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["num_turns"], 3, "{result}");
    assert_eq!(run.requests.len(), 3, "one model request per turn");
    assert_key_went_back(&run);

    let tmp_prefix = format!("{}.tmp.", notes.display());
    let evs = d
        .wait_for("the claude-code session's key read and write", |evs| {
            session_of(evs, Cli::Claude).is_some_and(|s| {
                opened(evs, &s, &key, "cat", "read")
                    && evs.iter().any(|e| {
                        e.kind() == Kind::FileRename
                            && e.session_id() == Some(s.as_str())
                            && path_of(e).contains("notes.txt.tmp.")
                    })
            })
        })
        .unwrap();
    let sid = session_of(&evs, Cli::Claude).unwrap();
    assert_session_is_clean(&evs, &sid, Cli::Claude);
    // The Bash tool's `cat` read the key inside the session.
    assert!(opened(&evs, &sid, &key, "cat", "read"));
    // The Write tool: Claude Code writes NAME.tmp.PID.HEX, then renames it onto NAME.
    let tmp_open = evs.iter().find(|e| {
        e.kind() == Kind::FileOpen
            && e.session_id() == Some(sid.as_str())
            && path_of(e).starts_with(&tmp_prefix)
            && e.file.as_ref().and_then(|f| f.access.as_deref()) == Some("write")
    });
    assert!(tmp_open.is_some(), "no write open of `{tmp_prefix}*`");
    let rename = evs
        .iter()
        .find(|e| {
            e.kind() == Kind::FileRename
                && e.session_id() == Some(sid.as_str())
                && path_of(e).contains("notes.txt.tmp.")
        })
        .unwrap();
    let target = rename.file.as_ref().and_then(|f| f.target.as_ref());
    assert!(
        target.is_some_and(|t| t.to_str_lossy().ends_with("/notes.txt")),
        "{}",
        rename.to_json()
    );
}

#[test]
fn codex_session_reads_a_planted_key_and_applies_a_patch() {
    require_agents!();
    let h = AgentHome::new().unwrap();
    let key = h.plant(".ssh/id_rsa", KEY).unwrap();
    let notes = h.project().join("notes.txt");
    let patch = format!(
        "*** Begin Patch\n*** Add File: {}\n+written by codex\n*** End Patch\n",
        notes.display()
    );
    let d = Daemon::start().unwrap();
    let run = h
        .run(
            Cli::Codex,
            "look at my ssh key and write notes",
            &[
                tool_turn(&[("exec_command", json!({"cmd": "cat ~/.ssh/id_rsa"}))]),
                tool_turn(&[("apply_patch", json!(patch))]),
                text_turn("done"),
            ],
            TIMEOUT,
        )
        .unwrap();
    run.check().unwrap();
    assert_eq!(
        std::fs::read_to_string(&notes).unwrap(),
        "written by codex\n"
    );
    let out = run.events();
    assert!(
        out.iter().any(|e| e["type"] == "item.completed"
            && e["item"]["type"] == "command_execution"
            && e["item"]["exit_code"] == 0),
        "{}",
        run.stdout
    );
    assert!(
        out.iter().any(|e| e["type"] == "item.completed"
            && e["item"]["type"] == "file_change"
            && e["item"]["status"] == "completed"),
        "{}",
        run.stdout
    );
    assert_eq!(run.requests.len(), 3, "one model request per turn");
    assert_key_went_back(&run);
    // apply_patch's own result went back too.
    assert!(
        run.tool_results()
            .iter()
            .any(|r| r.contains("Success") && r.contains("notes.txt")),
        "{:?}",
        run.tool_results()
    );

    let evs = d
        .wait_for("the codex session's key read and write", |evs| {
            session_of(evs, Cli::Codex).is_some_and(|s| {
                opened(evs, &s, &key, "cat", "read")
                    && evs.iter().any(|e| {
                        e.kind() == Kind::FileOpen
                            && e.session_id() == Some(s.as_str())
                            && path_of(e) == notes.display().to_string()
                    })
            })
        })
        .unwrap();
    let sid = session_of(&evs, Cli::Codex).unwrap();
    assert_session_is_clean(&evs, &sid, Cli::Codex);
    assert!(opened(&evs, &sid, &key, "cat", "read"));
    // apply_patch runs inside the codex process: a write open of the file itself.
    let write = evs
        .iter()
        .find(|e| {
            e.kind() == Kind::FileOpen
                && e.session_id() == Some(sid.as_str())
                && path_of(e) == notes.display().to_string()
        })
        .unwrap();
    let f = write.file.as_ref().unwrap();
    assert_eq!(f.access.as_deref(), Some("write"), "{}", write.to_json());
    assert!(
        f.flags.iter().any(|x| x == "O_CREAT"),
        "{}",
        write.to_json()
    );
    assert_eq!(write.process.exe.to_str_lossy(), exe_of(Cli::Codex));
}
