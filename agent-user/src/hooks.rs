//! Agent hooks, the daemon's side: one hook payload (the JSON an agent hands its hook command,
//! forwarded by `agentwatch hook`) becomes the kind and the `intent.*` fields of an `agent.*`
//! event.
//!
//! Claude Code, Codex and Gemini CLI send close variants of one shape: `hook_event_name`,
//! `session_id`, `tool_name`, `tool_input`, `tool_use_id`, `tool_response`, `prompt`. The payload
//! comes from the agent's process, so it is hostile input: every text is cut at a bound (on a
//! character boundary) and passes the daemon's argv redactor, ids must be short printable ASCII,
//! and a malformed payload is an error that names the field. Which session the event belongs to
//! is never read from here: the daemon takes it from the calling process.
//!
//! Two things are read beyond the shared shape: a tool named `mcp__<server>__<tool>` (how Claude
//! Code names the tools of its MCP servers) is an MCP call, reported as an `mcp.call` event
//! besides the `agent.tool_call`; and the absolute path a file tool (Read, Write, Edit, ...)
//! names is kept as `intent.tool_path`, so kernel events of the agent inside that call can be
//! compared with it.

use agent_model::{BStr, Intent, Kind, Mcp};
use serde_json::Value;

use crate::redact::Redactor;

/// Bytes kept of a tool input summary, a tool output excerpt or a prompt.
pub const MAX_TEXT: usize = 1024;
/// Bytes of a hook name, a tool name or an id.
pub const MAX_ID: usize = 128;
/// Bytes of one request line on the hook socket.
pub const MAX_HOOK_LINE: usize = 1 << 20;

/// What one hook reported.
#[derive(Clone, Debug, PartialEq)]
pub struct HookReport {
    pub kind: Kind,
    pub intent: Intent,
    /// The MCP call a `PreToolUse` of an `mcp__<server>__<tool>` tool reports.
    pub mcp: Option<Mcp>,
}

/// Tools whose input names one file, and the input keys that hold it (Claude Code, then Gemini
/// CLI names).
const FILE_TOOLS: &[&str] = &[
    "Read",
    "Write",
    "Edit",
    "MultiEdit",
    "NotebookEdit",
    "read_file",
    "write_file",
    "replace",
];
const PATH_KEYS: &[&str] = &["file_path", "notebook_path", "absolute_path", "path"];

/// The absolute path a file tool's input names; none for other tools, relative or oversized
/// paths (the agent's cwd is not known here) or paths with a NUL byte.
fn tool_path(tool: &str, input: &Value) -> Option<BStr> {
    if !FILE_TOOLS.contains(&tool) {
        return None;
    }
    let p = PATH_KEYS
        .iter()
        .find_map(|k| input.get(*k).and_then(Value::as_str))?;
    (p.starts_with('/') && p.len() <= 4096 && !p.contains('\0')).then(|| BStr::from(p))
}

/// Server and tool of an MCP tool name `mcp__<server>__<tool>`; none when either is empty.
pub fn mcp_names(tool: &str) -> Option<(&str, &str)> {
    let (server, tool) = tool.strip_prefix("mcp__")?.split_once("__")?;
    (!server.is_empty() && !tool.is_empty()).then_some((server, tool))
}

/// The event kind of a hook, by its name (Claude Code and Codex names, then Gemini CLI's).
pub fn kind_of(hook: &str) -> Kind {
    match hook {
        "PreToolUse" | "BeforeTool" => Kind::AgentToolCall,
        "PostToolUse" | "PostToolUseFailure" | "AfterTool" => Kind::AgentToolResult,
        "UserPromptSubmit" | "BeforeAgent" => Kind::AgentPrompt,
        _ => Kind::AgentSession,
    }
}

/// `s` cut to at most `max` bytes on a character boundary; true when it was cut.
fn cut(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// A name or id: non-empty printable ASCII without spaces, at most [`MAX_ID`] bytes.
fn id(payload: &Value, field: &str) -> Result<Option<String>, String> {
    match payload.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= MAX_ID && s.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(format!(
            "hook payload: `{field}` must be printable ASCII without spaces, 1 to {MAX_ID} bytes"
        )),
    }
}

/// Bounded, redacted text; sets `*flag` when anything was cut or masked.
fn text(raw: &str, redactor: &Redactor, flag: &mut bool) -> BStr {
    // Redact the whole text first (a secret cut in half would no longer match), then cut.
    let (masked, hit) = redactor.redact_text(cut(raw, MAX_TEXT * 4).0);
    let (kept, was_cut) = cut(&masked, MAX_TEXT);
    *flag |= hit || was_cut || raw.len() > MAX_TEXT;
    BStr::from(kept)
}

/// The part of a tool input worth showing: the shell command, the path, the pattern, the URL;
/// else the compact JSON of the input.
fn input_summary(input: &Value) -> String {
    for key in [
        "command",
        "cmd",
        "file_path",
        "path",
        "pattern",
        "url",
        "query",
    ] {
        if let Some(v) = input.get(key) {
            return match v {
                Value::String(s) => s.clone(),
                Value::Array(a) => a
                    .iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(" "),
                other => other.to_string(),
            };
        }
    }
    match input {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A tool output: stdout and stderr of a shell, the text of a result, or its compact JSON.
fn output_excerpt(resp: &Value) -> String {
    match resp {
        Value::String(s) => s.clone(),
        Value::Object(m) if m.contains_key("stdout") || m.contains_key("stderr") => {
            let part = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let (out, err) = (part("stdout"), part("stderr"));
            if err.is_empty() {
                out
            } else {
                format!("{out}\n{err}")
            }
        }
        Value::Object(m) => ["output", "content", "result", "text"]
            .iter()
            .find_map(|k| m.get(*k))
            .map_or_else(|| resp.to_string(), output_excerpt),
        Value::Array(a) => a
            .iter()
            .map(|b| {
                b.get("text")
                    .and_then(Value::as_str)
                    .map_or_else(|| output_excerpt(b), str::to_owned)
            })
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

/// Whether the tool said it succeeded, when it said so.
fn success(hook: &str, resp: Option<&Value>) -> Option<bool> {
    if hook == "PostToolUseFailure" {
        return Some(false);
    }
    let r = resp?;
    if let Some(b) = r.get("success").and_then(Value::as_bool) {
        return Some(b);
    }
    if let Some(b) = r.get("is_error").and_then(Value::as_bool) {
        return Some(!b);
    }
    if r.get("interrupted").and_then(Value::as_bool) == Some(true) {
        return Some(false);
    }
    if let Some(c) = r.get("exit_code").and_then(Value::as_i64) {
        return Some(c == 0);
    }
    None
}

/// Read one hook payload.
pub fn parse(payload: &Value, redactor: &Redactor) -> Result<HookReport, String> {
    if !payload.is_object() {
        return Err("hook payload: expected a JSON object".into());
    }
    let hook =
        id(payload, "hook_event_name")?.ok_or("hook payload: `hook_event_name` is missing")?;
    let kind = kind_of(&hook);
    let mut intent = Intent {
        agent_session: id(payload, "session_id")?,
        ..Default::default()
    };
    let mut flag = false;
    let mut mcp = None;
    match kind {
        Kind::AgentToolCall | Kind::AgentToolResult => {
            intent.tool_name = id(payload, "tool_name")?;
            intent.tool_call_id = id(payload, "tool_use_id")?;
            if let Some(input) = payload.get("tool_input") {
                intent.tool_input = Some(text(&input_summary(input), redactor, &mut flag));
                intent.tool_path = intent
                    .tool_name
                    .as_deref()
                    .and_then(|t| tool_path(t, input));
            }
            if kind == Kind::AgentToolCall
                && let Some((server, tool)) = intent.tool_name.as_deref().and_then(mcp_names)
            {
                let args = payload
                    .get("tool_input")
                    .map(|i| (i.to_string(), i))
                    .filter(|(_, i)| !i.is_null());
                mcp = Some(Mcp {
                    server: server.to_owned(),
                    tool: tool.to_owned(),
                    bytes: args.as_ref().map(|(a, _)| a.len() as u64),
                    arguments: args.map(|(a, _)| text(&a, redactor, &mut flag)),
                });
            }
            if kind == Kind::AgentToolResult {
                let resp = payload.get("tool_response");
                if let Some(r) = resp {
                    intent.tool_output = Some(text(&output_excerpt(r), redactor, &mut flag));
                }
                intent.tool_success = success(&hook, resp);
            }
        }
        Kind::AgentPrompt => {
            if let Some(p) = payload.get("prompt") {
                let raw = p.as_str().map_or_else(|| p.to_string(), str::to_owned);
                intent.prompt = Some(text(&raw, redactor, &mut flag));
            }
        }
        _ => {}
    }
    intent.hook = Some(hook);
    intent.redacted = flag;
    Ok(HookReport { kind, intent, mcp })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Result<HookReport, String> {
        parse(&v, &Redactor::defaults())
    }

    #[test]
    fn a_claude_pre_tool_use_becomes_a_tool_call() {
        let r = p(json!({
            "session_id": "0b1c", "hook_event_name": "PreToolUse", "tool_name": "Bash",
            "tool_input": {"command": "cat ~/.ssh/id_rsa", "description": "Show"},
            "tool_use_id": "toolu_01", "cwd": "/home/a", "transcript_path": "/x"
        }))
        .unwrap();
        assert_eq!(r.kind, Kind::AgentToolCall);
        let i = r.intent;
        assert_eq!(i.hook.as_deref(), Some("PreToolUse"));
        assert_eq!(i.tool_name.as_deref(), Some("Bash"));
        assert_eq!(i.tool_call_id.as_deref(), Some("toolu_01"));
        assert_eq!(i.tool_input, Some(BStr::from("cat ~/.ssh/id_rsa")));
        assert_eq!(i.agent_session.as_deref(), Some("0b1c"));
        assert!(!i.redacted);
    }

    #[test]
    fn a_post_tool_use_keeps_a_bounded_redacted_excerpt() {
        let long = "y".repeat(5000);
        let r = p(json!({
            "hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_use_id": "t1",
            "tool_input": {"command": "curl -H 'Authorization: Bearer abcdefgh12345678' x"},
            "tool_response": {"stdout": long, "stderr": "", "interrupted": false}
        }))
        .unwrap();
        assert_eq!(r.kind, Kind::AgentToolResult);
        let i = r.intent;
        assert_eq!(i.tool_output.as_ref().unwrap().as_bytes().len(), MAX_TEXT);
        let input = i.tool_input.unwrap().to_str_lossy().into_owned();
        assert!(!input.contains("abcdefgh12345678"), "{input}");
        assert!(i.redacted);
    }

    #[test]
    fn prompts_and_lifecycle_hooks() {
        let r = p(json!({"hook_event_name": "UserPromptSubmit", "prompt": "fix the bug"})).unwrap();
        assert_eq!(r.kind, Kind::AgentPrompt);
        assert_eq!(r.intent.prompt, Some(BStr::from("fix the bug")));
        let r = p(json!({"hook_event_name": "SessionStart", "source": "startup"})).unwrap();
        assert_eq!(r.kind, Kind::AgentSession);
        let r = p(
            json!({"hook_event_name": "BeforeTool", "tool_name": "run_shell_command",
            "tool_input": {"command": "ls"}}),
        )
        .unwrap();
        assert_eq!(r.kind, Kind::AgentToolCall);
    }

    #[test]
    fn hostile_payloads_are_refused_with_the_field_named() {
        for (v, field) in [
            (json!([1, 2]), "JSON object"),
            (json!({"tool_name": "Bash"}), "hook_event_name"),
            (json!({"hook_event_name": "Pre Tool"}), "hook_event_name"),
            (
                json!({"hook_event_name": "PreToolUse", "tool_use_id": "x".repeat(500)}),
                "tool_use_id",
            ),
            (
                json!({"hook_event_name": "PreToolUse", "tool_name": 7}),
                "tool_name",
            ),
            (
                json!({"hook_event_name": "PreToolUse", "session_id": "\u{1b}[2J"}),
                "session_id",
            ),
        ] {
            let e = p(v).unwrap_err();
            assert!(e.contains(field), "{e}");
        }
    }

    #[test]
    fn an_mcp_tool_call_names_its_server_and_tool_with_bounded_redacted_arguments() {
        let r = p(json!({
            "hook_event_name": "PreToolUse", "tool_name": "mcp__git_hub__search_code",
            "tool_use_id": "toolu_9",
            "tool_input": {"q": "x", "token": "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "pad": "z".repeat(4000)}
        }))
        .unwrap();
        assert_eq!(r.kind, Kind::AgentToolCall);
        let m = r.mcp.unwrap();
        assert_eq!(
            (m.server.as_str(), m.tool.as_str()),
            ("git_hub", "search_code")
        );
        let args = m.arguments.unwrap().to_str_lossy().into_owned();
        assert!(args.len() <= MAX_TEXT, "{}", args.len());
        assert!(
            !args.contains("ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
            "{args}"
        );
        assert!(m.bytes.unwrap() > 4000);
        assert!(r.intent.redacted);
        // The result of that call, other tools and malformed names are no MCP call.
        for v in [
            json!({"hook_event_name": "PostToolUse", "tool_name": "mcp__a__b", "tool_use_id": "t"}),
            json!({"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {}}),
            json!({"hook_event_name": "PreToolUse", "tool_name": "mcp__a"}),
            json!({"hook_event_name": "PreToolUse", "tool_name": "mcp____b"}),
            json!({"hook_event_name": "PreToolUse", "tool_name": "mcp__a__"}),
        ] {
            assert_eq!(p(v.clone()).unwrap().mcp, None, "{v}");
        }
    }

    #[test]
    fn a_file_tool_keeps_the_absolute_path_it_names() {
        let path = |v: Value| p(v).unwrap().intent.tool_path;
        assert_eq!(
            path(json!({"hook_event_name": "PreToolUse", "tool_name": "Read",
                "tool_input": {"file_path": "/home/a/README.md"}})),
            Some(BStr::from("/home/a/README.md"))
        );
        assert_eq!(
            path(
                json!({"hook_event_name": "BeforeTool", "tool_name": "read_file",
                "tool_input": {"absolute_path": "/w/x.rs"}})
            ),
            Some(BStr::from("/w/x.rs"))
        );
        for v in [
            json!({"hook_event_name": "PreToolUse", "tool_name": "Read", "tool_input": {"file_path": "rel.md"}}),
            json!({"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"file_path": "/x"}}),
            json!({"hook_event_name": "PreToolUse", "tool_name": "Read", "tool_input": {"file_path": 7}}),
            json!({"hook_event_name": "PreToolUse", "tool_name": "Read", "tool_input": {"file_path": "/a\u{0}b"}}),
        ] {
            assert_eq!(path(v.clone()), None, "{v}");
        }
    }

    #[test]
    fn cuts_on_character_boundaries() {
        let s = "é".repeat(MAX_TEXT);
        let r = p(json!({"hook_event_name": "UserPromptSubmit", "prompt": s})).unwrap();
        let kept = r.intent.prompt.unwrap();
        assert!(kept.as_bytes().len() <= MAX_TEXT);
        assert!(std::str::from_utf8(kept.as_bytes()).is_ok());
        assert!(r.intent.redacted);
    }
}
