//! `agentwatch hook`: the command an agent's hook configuration runs. It reads the hook's JSON
//! on stdin, forwards it to the daemon's hook socket, and answers the agent in the agent's own
//! format within a fixed time, failing open or closed when the daemon does not answer.
//!
//! It runs as the agent's user, once per hook, so it is small and never waits past its bound:
//! the whole exchange (connect, send, answer) shares one deadline. Its output formats:
//! - Claude Code and Codex: a deny of `PreToolUse` is `{"hookSpecificOutput": {"hookEventName":
//!   "PreToolUse", "permissionDecision": "deny", "permissionDecisionReason": R}}` on stdout, exit
//!   0 (the agent shows R to its model); a deny of `UserPromptSubmit` is `{"decision": "block",
//!   "reason": R}`. An allow prints nothing: the hook has no objection and the agent's own
//!   permission rules still apply (printing `allow` would bypass them).
//! - Gemini CLI: a deny of `BeforeTool` or `BeforeAgent` is `{"decision": "deny", "reason": R}`.
//!
//! Hooks that cannot gate anything (`PostToolUse`, `SessionStart`, ...) always exit 0.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use agent_api::{HookAnswer, Reply, Request};
use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};

/// Bytes of stdin read; a bigger payload is refused (and the failure mode applies).
pub const MAX_STDIN: usize = 8 << 20;
/// Strings longer than this are cut before the payload is forwarded (the daemon keeps far
/// less); this keeps a request well under the hook socket's line limit.
const MAX_FORWARDED_STRING: usize = 8192;
const MAX_DEPTH: usize = 32;

/// The hook flavours agentwatch can answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// Claude Code, and Codex (which speaks the same hook protocol).
    Claude,
    Gemini,
}

impl Flavour {
    pub fn of(agent: &str) -> Result<Flavour> {
        match agent {
            "claude-code" | "claude" | "codex" => Ok(Flavour::Claude),
            "gemini-cli" | "gemini" => Ok(Flavour::Gemini),
            other => bail!("unknown agent `{other}`; expected claude-code, codex or gemini-cli"),
        }
    }
}

pub struct HookArgs {
    pub agent: String,
    pub socket: PathBuf,
    pub fail_closed: bool,
    pub timeout: Duration,
}

/// What the hook prints and its exit status.
#[derive(Debug, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

/// Cut long strings and deep nesting so the forwarded payload stays small.
fn shrink(v: &mut Value, depth: usize) {
    match v {
        Value::String(s) if s.len() > MAX_FORWARDED_STRING => {
            let mut end = MAX_FORWARDED_STRING;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
        Value::Array(a) if depth >= MAX_DEPTH => a.clear(),
        Value::Object(m) if depth >= MAX_DEPTH => m.clear(),
        Value::Array(a) => a.iter_mut().for_each(|x| shrink(x, depth + 1)),
        Value::Object(m) => m.values_mut().for_each(|x| shrink(x, depth + 1)),
        _ => {}
    }
}

/// Ask the daemon, within `deadline`.
fn ask(socket: &Path, agent: &str, payload: Value, deadline: Instant) -> Result<HookAnswer> {
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| anyhow!("no answer in time"))
    };
    let s = UnixStream::connect(socket)
        .map_err(|e| anyhow!("cannot reach the daemon on `{}`: {e}", socket.display()))?;
    s.set_write_timeout(Some(left()?))?;
    let mut line = serde_json::to_string(&Request::Hook {
        agent: agent.to_owned(),
        payload,
    })?;
    line.push('\n');
    (&s).write_all(line.as_bytes())?;
    s.set_read_timeout(Some(left()?))?;
    let mut answer = String::new();
    BufReader::new(&s)
        .take(1 << 20)
        .read_line(&mut answer)
        .map_err(|e| anyhow!("no answer from the daemon: {e}"))?;
    left()?;
    match serde_json::from_str::<Reply<HookAnswer>>(&answer)? {
        Reply::Ok(a) => Ok(a),
        Reply::Err(e) => bail!("the daemon refused the hook: {e}"),
    }
}

/// The agent-facing output of a decision for hook `event`.
pub fn render(flavour: Flavour, event: &str, deny: Option<&str>) -> Output {
    let ok = |stderr: String| Output {
        stdout: String::new(),
        stderr,
        code: 0,
    };
    let Some(reason) = deny else {
        return ok(String::new());
    };
    let stdout = match (flavour, event) {
        (Flavour::Claude, "PreToolUse") => json!({"hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        }}),
        (Flavour::Claude, "UserPromptSubmit") => json!({"decision": "block", "reason": reason}),
        (Flavour::Gemini, "BeforeTool" | "BeforeAgent") => {
            json!({"decision": "deny", "reason": reason})
        }
        // Nothing left to gate: say why on stderr, let the agent go on.
        _ => return ok(format!("agentwatch: {reason}\n")),
    };
    Output {
        stdout: format!("{stdout}\n"),
        stderr: String::new(),
        code: 0,
    }
}

/// Run one hook: `input` is the agent's stdin.
pub fn run_hook(args: &HookArgs, input: &[u8], started: Instant) -> Output {
    let deadline = started + args.timeout;
    let flavour = match Flavour::of(&args.agent) {
        Ok(f) => f,
        Err(e) => {
            return Output {
                stdout: String::new(),
                stderr: format!("agentwatch hook: {e:#}\n"),
                code: 2,
            };
        }
    };
    let parsed: Result<Value> = if input.len() > MAX_STDIN {
        Err(anyhow!("hook payload larger than {MAX_STDIN} bytes"))
    } else {
        serde_json::from_slice(input).map_err(|e| anyhow!("hook payload is not JSON: {e}"))
    };
    let event = parsed
        .as_ref()
        .ok()
        .and_then(|v| v.get("hook_event_name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let result = parsed.and_then(|mut v| {
        shrink(&mut v, 0);
        ask(&args.socket, &args.agent, v, deadline)
    });
    match result {
        Ok(a) if a.is_deny() => {
            let reason = a
                .reason
                .unwrap_or_else(|| "denied by agentwatch policy".into());
            render(flavour, &event, Some(&format!("agentwatch: {reason}")))
        }
        Ok(_) => render(flavour, &event, None),
        Err(e) if args.fail_closed => {
            let why = format!(
                "agentwatch could not check this action ({e:#}) and is configured to fail closed"
            );
            render(flavour, &event, Some(&why))
        }
        Err(e) => Output {
            stdout: String::new(),
            stderr: format!("agentwatch hook: {e:#}; failing open\n"),
            code: 0,
        },
    }
}

/// `agentwatch hook`: stdin in, the agent's answer out.
pub fn hook(args: &HookArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let mut input = Vec::new();
    std::io::stdin()
        .take(MAX_STDIN as u64 + 1)
        .read_to_end(&mut input)?;
    let out = run_hook(args, &input, started);
    std::io::stdout().write_all(out.stdout.as_bytes())?;
    std::io::stderr().write_all(out.stderr.as_bytes())?;
    Ok(ExitCode::from(out.code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(socket: &str, closed: bool) -> HookArgs {
        HookArgs {
            agent: "claude-code".into(),
            socket: socket.into(),
            fail_closed: closed,
            timeout: Duration::from_millis(300),
        }
    }

    const PRE: &[u8] =
        br#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls"}}"#;

    #[test]
    fn no_daemon_fails_open_or_closed_as_configured() {
        let open = run_hook(&args("/nonexistent/h.sock", false), PRE, Instant::now());
        assert_eq!(open.code, 0);
        assert!(open.stdout.is_empty(), "{open:?}");
        assert!(open.stderr.contains("failing open"), "{open:?}");
        let closed = run_hook(&args("/nonexistent/h.sock", true), PRE, Instant::now());
        assert_eq!(closed.code, 0);
        let v: Value = serde_json::from_str(&closed.stdout).unwrap();
        assert_eq!(v["hookSpecificOutput"]["permissionDecision"], "deny");
        assert!(
            v["hookSpecificOutput"]["permissionDecisionReason"]
                .as_str()
                .unwrap()
                .contains("fail closed")
        );
    }

    #[test]
    fn a_silent_daemon_is_bounded_by_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sock");
        // Accepts, reads, never answers.
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            std::thread::sleep(Duration::from_secs(2));
        });
        let start = Instant::now();
        let out = run_hook(&args(path.to_str().unwrap(), true), PRE, start);
        let took = start.elapsed();
        assert!(took < Duration::from_millis(1000), "{took:?}");
        assert!(out.stdout.contains("\"deny\""), "{out:?}");
        drop(t);
    }

    #[test]
    fn outputs_match_each_agent_protocol() {
        let o = render(Flavour::Claude, "UserPromptSubmit", Some("no"));
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v, json!({"decision": "block", "reason": "no"}));
        let o = render(Flavour::Gemini, "BeforeTool", Some("no"));
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v, json!({"decision": "deny", "reason": "no"}));
        let o = render(Flavour::Claude, "PostToolUse", Some("no"));
        assert_eq!((o.code, o.stdout.as_str()), (0, ""));
        assert_eq!(render(Flavour::Claude, "PreToolUse", None).stdout, "");
    }

    #[test]
    fn bad_payloads_take_the_failure_mode() {
        let out = run_hook(
            &args("/nonexistent/h.sock", true),
            b"not json",
            Instant::now(),
        );
        // Without a hook name nothing can be gated: the reason goes to stderr.
        assert_eq!(out.code, 0);
        assert!(out.stderr.contains("not JSON"), "{out:?}");
        let mut big = Value::String("x".repeat(100_000));
        shrink(&mut big, 0);
        assert_eq!(big.as_str().unwrap().len(), MAX_FORWARDED_STRING);
    }
}
