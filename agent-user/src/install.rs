//! `agentwatch agents install-hooks` and `agentwatch agents status`: put `agentwatch hook` into
//! each agent's system-wide settings, and show which agents on the host are covered.
//!
//! - Claude Code reads `/etc/claude-code/managed-settings.json` on Linux (managed settings: a
//!   user cannot override them). Its `hooks` map an event name to matcher groups, each with a
//!   list of `{"type": "command", "command": ...}` hooks.
//! - Gemini CLI reads system settings from `/etc/gemini-cli/settings.json`, with the same shape
//!   of `hooks` under its own event names (`BeforeTool`, `AfterTool`, `BeforeAgent`, ...).
//! - Codex 0.171 runs Claude-compatible command hooks (`PreToolUse` and `PostToolUse` for its
//!   shell, `apply_patch` and MCP tools, `UserPromptSubmit`, `SessionStart`, `SessionEnd`) from
//!   `hooks.json` or inline `[hooks]` tables of each config layer. A hook from a user or project
//!   layer runs only once the user has trusted its hash (`/hooks`), and any user can switch all
//!   hooks off with `-c features.hooks=false`. Hooks in the admin requirements file
//!   `/etc/codex/requirements.toml` are managed: trusted by policy, not shown for review, and with
//!   `[features] hooks = true` there a user cannot switch them off (checked with the real 0.171.0
//!   binary: `-c features.hooks=false` silences `~/.codex` hooks but not these). So that is the
//!   file written for Codex, as TOML: the `hooks` table and `features.hooks` are set, every other
//!   key and comment is kept. Earlier agentwatch entries in a sibling `hooks.json` (what older
//!   versions installed) are removed so no hook runs twice.
//!
//! Installing is idempotent and never clobbers: the file is parsed, every other key is kept,
//! earlier agentwatch entries (a hook whose command runs `agentwatch`'s `hook` subcommand) are
//! replaced, and the result is written atomically (temporary file, then rename). A file that is
//! not a JSON object is refused, not overwritten. `--settings PATH` (or
//! `AGENTWATCH_<AGENT>_SETTINGS`) points at another file, for tests and unusual installs.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde_json::{Map, Value, json};

/// An agent whose hooks agentwatch can install.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookAgent {
    ClaudeCode,
    Codex,
    GeminiCli,
}

impl HookAgent {
    pub const ALL: [HookAgent; 3] = [
        HookAgent::ClaudeCode,
        HookAgent::Codex,
        HookAgent::GeminiCli,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HookAgent::ClaudeCode => "claude-code",
            HookAgent::Codex => "codex",
            HookAgent::GeminiCli => "gemini-cli",
        }
    }

    pub fn from_name(s: &str) -> Result<HookAgent> {
        HookAgent::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .with_context(|| {
                format!("unknown agent `{s}`; expected claude-code, codex or gemini-cli")
            })
    }

    /// The system-wide settings file, unless overridden by `AGENTWATCH_<AGENT>_SETTINGS`.
    pub fn default_path(self) -> PathBuf {
        let (var, path) = match self {
            HookAgent::ClaudeCode => (
                "AGENTWATCH_CLAUDE_CODE_SETTINGS",
                "/etc/claude-code/managed-settings.json",
            ),
            HookAgent::Codex => ("AGENTWATCH_CODEX_SETTINGS", "/etc/codex/requirements.toml"),
            HookAgent::GeminiCli => (
                "AGENTWATCH_GEMINI_CLI_SETTINGS",
                "/etc/gemini-cli/settings.json",
            ),
        };
        std::env::var_os(var).map_or_else(|| PathBuf::from(path), PathBuf::from)
    }

    /// The hook events installed, and whether each takes a tool matcher.
    fn events(self) -> &'static [(&'static str, bool)] {
        match self {
            HookAgent::ClaudeCode => &[
                ("PreToolUse", true),
                ("PostToolUse", true),
                ("UserPromptSubmit", false),
                ("SessionStart", false),
                ("SessionEnd", false),
            ],
            HookAgent::Codex => &[
                ("PreToolUse", true),
                ("PostToolUse", true),
                ("UserPromptSubmit", false),
                ("SessionStart", false),
                ("SessionEnd", false),
            ],
            HookAgent::GeminiCli => &[
                ("BeforeTool", true),
                ("AfterTool", true),
                ("BeforeAgent", false),
                ("SessionStart", false),
                ("SessionEnd", false),
            ],
        }
    }

    /// Whether the settings file is TOML (Codex's requirements) rather than JSON.
    fn toml(self) -> bool {
        self == HookAgent::Codex
    }
}

/// Whether a hook command is one of ours.
fn is_ours(cmd: &str) -> bool {
    let mut words = cmd.split_whitespace();
    words.next().is_some_and(|w| w.ends_with("agentwatch")) && words.next() == Some("hook")
}

/// `settings` with agentwatch's hooks for `agent` (replacing earlier ones) calling `command`.
pub fn merge(agent: HookAgent, settings: &mut Map<String, Value>, command: &str) -> Result<()> {
    let hooks = settings
        .entry("hooks")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(hooks) = hooks else {
        bail!("`hooks` is not a JSON object");
    };
    for (event, matcher) in agent.events() {
        let groups = hooks
            .entry(*event)
            .or_insert_with(|| Value::Array(Vec::new()));
        let Value::Array(groups) = groups else {
            bail!("`hooks.{event}` is not a JSON array");
        };
        // Drop our earlier hooks, and groups left empty by that.
        for g in groups.iter_mut() {
            if let Some(Value::Array(list)) = g.get_mut("hooks") {
                list.retain(|h| !h["command"].as_str().is_some_and(is_ours));
            }
        }
        groups.retain(|g| g["hooks"].as_array().is_none_or(|l| !l.is_empty()));
        let hook = json!({"type": "command", "command": command, "timeout": 10});
        groups.push(if *matcher {
            json!({"matcher": "*", "hooks": [hook]})
        } else {
            json!({"hooks": [hook]})
        });
    }
    Ok(())
}

/// Which of `agent`'s events in `settings` run agentwatch.
pub fn covered(agent: HookAgent, settings: &Value) -> Vec<&'static str> {
    agent
        .events()
        .iter()
        .filter(|(event, _)| {
            settings["hooks"][*event]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["hooks"].as_array().into_iter().flatten())
                .any(|h| h["command"].as_str().is_some_and(is_ours))
        })
        .map(|(e, _)| *e)
        .collect()
}

fn read_settings(path: &Path) -> Result<Map<String, Value>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => bail!("`{}` is not a JSON object; not touching it", path.display()),
            Err(e) => bail!(
                "`{}` is not valid JSON ({e}); not touching it",
                path.display()
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read `{}`", path.display())),
    }
}

/// A TOML settings file: its document (kept for writing back with its comments) and its JSON
/// view (what [`merge`] and [`covered`] read).
fn read_toml(path: &Path) -> Result<(toml_edit::DocumentMut, Map<String, Value>)> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read `{}`", path.display())),
    };
    let bad = |e: &dyn std::fmt::Display| {
        anyhow::anyhow!(
            "`{}` is not valid TOML; not touching it: {}",
            path.display(),
            e.to_string().trim_end()
        )
    };
    let doc: toml_edit::DocumentMut = text.parse().map_err(|e| bad(&e))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| bad(&e))?;
    let Value::Object(m) = serde_json::to_value(table)? else {
        bail!("`{}`: a TOML document is a table", path.display());
    };
    Ok((doc, m))
}

/// `doc` with its `hooks` table replaced by `settings["hooks"]` and `features.hooks = true`
/// (hooks pinned on, so a user's `-c features.hooks=false` cannot switch them off).
fn write_toml(doc: &mut toml_edit::DocumentMut, settings: &Map<String, Value>) -> Result<String> {
    let hooks = settings.get("hooks").cloned().unwrap_or_else(|| json!({}));
    let wrapped = toml::Value::try_from(json!({ "hooks": hooks }))
        .context("the `hooks` table has a value TOML cannot hold")?;
    let fresh: toml_edit::DocumentMut = toml::to_string(&wrapped)?.parse()?;
    doc.remove("hooks");
    if let Some(item) = fresh.get("hooks") {
        doc.insert("hooks", item.clone());
    }
    let features = doc.entry("features").or_insert(toml_edit::table());
    let Some(f) = features.as_table_like_mut() else {
        bail!("`features` is not a TOML table");
    };
    f.insert("hooks", toml_edit::value(true));
    Ok(doc.to_string())
}

/// `settings` without agentwatch's hooks; true when any was removed.
fn strip_ours(settings: &mut Map<String, Value>) -> bool {
    let mut removed = false;
    let Some(Value::Object(hooks)) = settings.get_mut("hooks") else {
        return false;
    };
    for groups in hooks.values_mut() {
        let Value::Array(groups) = groups else {
            continue;
        };
        for g in groups.iter_mut() {
            if let Some(Value::Array(list)) = g.get_mut("hooks") {
                let before = list.len();
                list.retain(|h| !h["command"].as_str().is_some_and(is_ours));
                removed |= list.len() != before;
            }
        }
        groups.retain(|g| g["hooks"].as_array().is_none_or(|l| !l.is_empty()));
    }
    removed
}

/// Write `text` to `path` atomically (temporary file, then rename), 0644.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".agentwatch-tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).with_context(|| format!("cannot write `{}`", tmp.display()))?;
    // Readable by the agents' users, writable by root only.
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace `{}`", path.display()))
}

/// Install (or, with `dry_run`, show) agentwatch's hooks for `agent` in `path`. Returns the
/// new settings text.
pub fn install(agent: HookAgent, path: &Path, command: &str, dry_run: bool) -> Result<String> {
    let merged = |settings: &mut Map<String, Value>| {
        merge(agent, settings, command)
            .with_context(|| format!("cannot merge hooks into `{}`", path.display()))
    };
    let text = if agent.toml() {
        let (mut doc, mut settings) = read_toml(path)?;
        merged(&mut settings)?;
        write_toml(&mut doc, &settings)
            .with_context(|| format!("cannot merge hooks into `{}`", path.display()))?
    } else {
        let mut settings = read_settings(path)?;
        merged(&mut settings)?;
        let mut text = serde_json::to_string_pretty(&Value::Object(settings))?;
        text.push('\n');
        text
    };
    if !dry_run {
        write_atomically(path, &text)?;
    }
    Ok(text)
}

/// Remove agentwatch's entries from an older install's `hooks.json` (Codex's system layer
/// runs it too, so the hook would run twice). Returns whether the file changed.
fn remove_stale_json(path: &Path) -> Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let mut settings = read_settings(path)?;
    if !strip_ours(&mut settings) {
        return Ok(false);
    }
    let mut text = serde_json::to_string_pretty(&Value::Object(settings))?;
    text.push('\n');
    write_atomically(path, &text)?;
    Ok(true)
}

/// One line of `agents status`.
#[derive(Debug, serde::Serialize)]
pub struct Coverage {
    pub agent: &'static str,
    pub settings: String,
    pub exists: bool,
    /// Hook events that run agentwatch.
    pub hooks: Vec<&'static str>,
    /// Every event agentwatch installs is covered.
    pub covered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the hooks present do not run, when the file itself says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

pub fn status(agent: HookAgent, path: &Path) -> Coverage {
    let exists = path.exists();
    let read = if agent.toml() {
        read_toml(path).map(|(_, m)| m)
    } else {
        read_settings(path)
    };
    let (hooks, error, note) = match read {
        Ok(m) => {
            let v = Value::Object(m);
            // Codex: `[features] hooks = false` in its requirements switches every hook off.
            let off = agent.toml() && v["features"]["hooks"] == Value::Bool(false);
            let note = off.then(|| "`[features] hooks = false` switches them off".to_owned());
            (covered(agent, &v), None, note)
        }
        Err(e) => (Vec::new(), Some(format!("{e:#}")), None),
    };
    Coverage {
        agent: agent.name(),
        settings: path.display().to_string(),
        exists,
        covered: note.is_none() && hooks.len() == agent.events().len(),
        hooks,
        error,
        note,
    }
}

/// A word quoted for `sh` when it needs it.
fn sh_quote(w: &str) -> String {
    if !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-=:@+,".contains(&b))
    {
        w.to_owned()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// The hook command line for `agent`: this binary, with the hook settings spelled out so the
/// agent's hook does not depend on reading the daemon's config.
pub fn hook_command(exe: &Path, agent: HookAgent, hooks: &crate::config::HooksConfig) -> String {
    [
        sh_quote(&exe.display().to_string()),
        "hook".into(),
        "--agent".into(),
        agent.name().into(),
        "--socket".into(),
        sh_quote(&hooks.socket.display().to_string()),
        "--fail".into(),
        if hooks.fail_closed { "closed" } else { "open" }.into(),
        "--timeout-ms".into(),
        hooks.timeout_ms.to_string(),
    ]
    .join(" ")
}

/// `agentwatch agents install-hooks`.
pub fn install_cmd(
    agents: &[HookAgent],
    settings: Option<&Path>,
    hooks: &crate::config::HooksConfig,
    dry_run: bool,
) -> Result<()> {
    if settings.is_some() && agents.len() != 1 {
        bail!(crate::BadInput(anyhow::anyhow!(
            "`--settings` needs exactly one `--agent`"
        )));
    }
    let exe = std::env::current_exe().context("cannot find this binary's path")?;
    for &a in agents {
        let path = settings.map_or_else(|| a.default_path(), Path::to_path_buf);
        let text = install(a, &path, &hook_command(&exe, a, hooks), dry_run)?;
        let stale = path.with_file_name("hooks.json");
        if a.toml() && !dry_run && remove_stale_json(&stale)? {
            println!(
                "{}: removed older agentwatch hooks from {}",
                a.name(),
                stale.display()
            );
        }
        if dry_run {
            println!("# {} ({}):\n{text}", a.name(), path.display());
        } else {
            println!("{}: hooks installed in {}", a.name(), path.display());
        }
    }
    Ok(())
}

/// `agentwatch agents status`.
pub fn status_cmd(
    agents: &[HookAgent],
    settings: Option<&Path>,
    hook_socket: &Path,
    json: bool,
) -> Result<()> {
    let answering = std::os::unix::net::UnixStream::connect(hook_socket).is_ok();
    for &a in agents {
        let path = settings.map_or_else(|| a.default_path(), Path::to_path_buf);
        let c = status(a, &path);
        if json {
            let mut v = serde_json::to_value(&c)?;
            v["hook_socket"] = hook_socket.display().to_string().into();
            v["daemon_answers"] = answering.into();
            println!("{v}");
        } else {
            let state = match (&c.error, c.covered, c.hooks.is_empty()) {
                (Some(e), ..) => format!("unreadable: {e}"),
                (None, false, _) if c.note.is_some() => {
                    format!("not covered: {}", c.note.as_deref().unwrap_or_default())
                }
                (None, true, _) => "covered".to_owned(),
                (None, false, true) => "not covered".to_owned(),
                (None, false, false) => format!("partly covered ({})", c.hooks.join(", ")),
            };
            println!("{:<12} {:<15} {}", c.agent, state, c.settings);
        }
    }
    if !json {
        println!(
            "hook socket {} ({})",
            hook_socket.display(),
            if answering {
                "a daemon answers"
            } else {
                "no daemon answers"
            }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_command_is_shell_safe() {
        let h = crate::config::HooksConfig::default();
        let c = hook_command(
            Path::new("/opt/my tools/agentwatch"),
            HookAgent::ClaudeCode,
            &h,
        );
        assert_eq!(
            c,
            "'/opt/my tools/agentwatch' hook --agent claude-code --socket /run/agentwatch/hook.sock --fail open --timeout-ms 2000"
        );
        assert!(is_ours(
            &c.replace("'/opt/my tools/agentwatch'", "/usr/bin/agentwatch")
        ));
    }

    const CMD: &str = "/usr/bin/agentwatch hook --agent claude-code";

    #[test]
    fn merging_keeps_other_keys_and_hooks_and_is_idempotent() {
        let mut m: Map<String, Value> = serde_json::from_value(json!({
            "permissions": {"deny": ["Read(./.env)"]},
            "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [
                {"type": "command", "command": "/opt/corp/audit.sh"}]}]}
        }))
        .unwrap();
        merge(HookAgent::ClaudeCode, &mut m, CMD).unwrap();
        let once = Value::Object(m.clone());
        merge(HookAgent::ClaudeCode, &mut m, CMD).unwrap();
        assert_eq!(
            Value::Object(m.clone()),
            once,
            "a second install changes nothing"
        );
        assert_eq!(m["permissions"]["deny"][0], "Read(./.env)");
        let pre = m["hooks"]["PreToolUse"].as_array().unwrap();
        assert_eq!(pre.len(), 2);
        assert_eq!(pre[0]["hooks"][0]["command"], "/opt/corp/audit.sh");
        assert_eq!(pre[1]["hooks"][0]["command"], CMD);
        assert_eq!(
            covered(HookAgent::ClaudeCode, &once),
            [
                "PreToolUse",
                "PostToolUse",
                "UserPromptSubmit",
                "SessionStart",
                "SessionEnd"
            ]
        );
        // A new binary path replaces the old entry instead of adding a second one.
        merge(
            HookAgent::ClaudeCode,
            &mut m,
            "/opt/aw/agentwatch hook --agent claude-code",
        )
        .unwrap();
        assert_eq!(m["hooks"]["PreToolUse"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_file_that_is_not_an_object_is_not_touched() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        std::fs::write(&p, "[1,2]").unwrap();
        let e = install(HookAgent::ClaudeCode, &p, CMD, false).unwrap_err();
        assert!(format!("{e:#}").contains("not a JSON object"), "{e:#}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "[1,2]");
        std::fs::write(&p, "{\"hooks\": 3}").unwrap();
        assert!(install(HookAgent::ClaudeCode, &p, CMD, false).is_err());
    }

    #[test]
    fn install_then_status() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("etc/managed-settings.json");
        assert!(!status(HookAgent::ClaudeCode, &p).covered);
        let dry = install(HookAgent::ClaudeCode, &p, CMD, true).unwrap();
        assert!(dry.contains(CMD));
        assert!(!p.exists(), "a dry run writes nothing");
        install(HookAgent::ClaudeCode, &p, CMD, false).unwrap();
        let st = status(HookAgent::ClaudeCode, &p);
        assert!(st.covered && st.exists, "{st:?}");
        let g = status(HookAgent::GeminiCli, &p);
        assert!(!g.covered, "{g:?}");
    }

    #[test]
    fn codex_requirements_keep_other_keys_pin_hooks_on_and_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("codex/requirements.toml");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(
            &p,
            "# corp policy\nallowed_approval_policies = [\"never\"]\n\n[features]\nhooks = false # off for now\nweb_search = false\n\n[[hooks.PreToolUse]]\nmatcher = \"Bash\"\n[[hooks.PreToolUse.hooks]]\ntype = \"command\"\ncommand = \"/opt/corp/audit.sh\"\n",
        )
        .unwrap();
        let st = status(HookAgent::Codex, &p);
        assert!(!st.covered, "{st:?}");
        let cmd = "/usr/bin/agentwatch hook --agent codex";
        let once = install(HookAgent::Codex, &p, cmd, false).unwrap();
        assert!(once.contains("# corp policy"), "{once}");
        let v: toml::Table = toml::from_str(&once).unwrap();
        assert_eq!(v["allowed_approval_policies"][0].as_str(), Some("never"));
        assert_eq!(v["features"]["hooks"].as_bool(), Some(true), "{once}");
        assert_eq!(v["features"]["web_search"].as_bool(), Some(false));
        let pre = v["hooks"]["PreToolUse"].as_array().unwrap();
        assert_eq!(pre.len(), 2, "{once}");
        assert_eq!(
            pre[0]["hooks"][0]["command"].as_str(),
            Some("/opt/corp/audit.sh")
        );
        assert_eq!(pre[1]["hooks"][0]["command"].as_str(), Some(cmd));
        assert_eq!(pre[1]["matcher"].as_str(), Some("*"));
        let st = status(HookAgent::Codex, &p);
        assert!(st.covered, "{st:?}");
        assert_eq!(
            st.hooks,
            [
                "PreToolUse",
                "PostToolUse",
                "UserPromptSubmit",
                "SessionStart",
                "SessionEnd"
            ]
        );
        let twice = install(HookAgent::Codex, &p, cmd, false).unwrap();
        assert_eq!(once, twice, "a second install changes nothing");
        // An admin who switches hooks off is told so by `status`.
        std::fs::write(&p, once.replace("hooks = true", "hooks = false")).unwrap();
        let st = status(HookAgent::Codex, &p);
        assert!(!st.covered && st.note.is_some(), "{st:?}");
    }

    #[test]
    fn bad_codex_toml_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("requirements.toml");
        std::fs::write(&p, "a = 1\nfeatures = [\n").unwrap();
        let e = format!(
            "{:#}",
            install(HookAgent::Codex, &p, CMD, false).unwrap_err()
        );
        assert!(e.contains("not valid TOML") && e.contains("line 2"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "a = 1\nfeatures = [\n"
        );
        std::fs::write(&p, "features = 3\n").unwrap();
        assert!(install(HookAgent::Codex, &p, CMD, false).is_err());
    }

    #[test]
    fn a_stale_codex_hooks_json_loses_only_our_entries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hooks.json");
        let mut m = Map::new();
        merge(
            HookAgent::Codex,
            &mut m,
            "/usr/bin/agentwatch hook --agent codex",
        )
        .unwrap();
        m["hooks"]["Stop"] = json!([{"hooks": [{"type": "command", "command": "/opt/x"}]}]);
        std::fs::write(&p, serde_json::to_string(&m).unwrap()).unwrap();
        assert!(remove_stale_json(&p).unwrap());
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert!(covered(HookAgent::Codex, &v).is_empty(), "{v}");
        assert_eq!(v["hooks"]["Stop"][0]["hooks"][0]["command"], "/opt/x");
        assert!(!remove_stale_json(&p).unwrap());
    }
}
