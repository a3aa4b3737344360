//! What a rule asks the daemon to do when it fires, beyond alerting: the `action`, its `mode`,
//! and its rate limit ([`RuleResponse`]).
//!
//! Plain data, shown in listings and read by the daemon's responder; the policy compiler
//! (`compile::rule`) builds it from a rule's `action`, `mode` and `rate_limit` keys. Rules stay pure: nothing here acts.

use serde::Serialize;

/// A rule's `action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// SIGKILL the process whose event fired the rule.
    Kill,
    /// Kill every process of the session.
    KillSession,
    /// Freeze every process of the session (cgroup v2 freezer).
    FreezeSession,
    /// Deny what the event did (recorded; egress is denied in the kernel by the egress policy).
    Deny,
}

impl Action {
    pub const NAMES: [&'static str; 5] =
        ["alert", "kill", "kill_session", "freeze_session", "deny"];

    /// `None` for `alert` (no action) and for unknown names (`Err`).
    pub(crate) fn parse(s: &str) -> Result<Option<Action>, ()> {
        Ok(Some(match s {
            "alert" => return Ok(None),
            "kill" => Action::Kill,
            "kill_session" => Action::KillSession,
            "freeze_session" => Action::FreezeSession,
            "deny" => Action::Deny,
            _ => return Err(()),
        }))
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Kill => "kill",
            Action::KillSession => "kill_session",
            Action::FreezeSession => "freeze_session",
            Action::Deny => "deny",
        }
    }
}

/// The response part of a rule whose `action` is not `alert`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleResponse {
    pub action: Action,
    /// `Some(true)`: `mode = "dry_run"`; `Some(false)`: `"enforce"`; `None`: the daemon's
    /// `[response] default_mode`.
    pub dry_run: Option<bool>,
    /// At most `limit` actions per `per_ns` (per rule); more are recorded as refused.
    pub limit: u32,
    pub per_ns: i64,
    /// `inline = true`: the kill is done in the kernel, at the open itself (see
    /// [`InlineTargets`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inline: Option<InlineTargets>,
}

/// What an `inline` kill rule protects: the files the daemon resolves to `(dev, inode)` for the
/// kernel, which SIGKILLs a session process that opens one before the open returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct InlineTargets {
    /// Exact paths.
    pub paths: Vec<String>,
    /// Directory prefixes (each ends with `/`): every file below them.
    pub prefixes: Vec<String>,
}

/// The rate limit of a rule that names none: 10 actions a minute.
pub const DEFAULT_RATE_LIMIT: (u32, i64) = (10, 60_000_000_000);
