//! Intent in the process table: `agent.*` events from an agent's hooks, and the tool-call spans
//! that tie kernel events to the tool call that caused them.
//!
//! A `PreToolUse` hook the policy allowed opens a span on the agent process (the nearest
//! ancestor of the hook command that is not a shell); its `PostToolUse` closes it. A process
//! the agent forks while exactly one of its spans is open is tagged with that call (id and tool
//! name), and so is everything that process forks or execs afterwards: the shell of a Bash tool
//! and its whole subtree, background jobs included. With two spans open at once (parallel tool
//! calls) a fork is ambiguous and is left untagged rather than guessed. Spans are bounded per
//! session and die with it.
//!
//! A file tool call (Read, Write, Edit, ...) also remembers the absolute path it named. While
//! exactly one such call of the agent is open, the agent process's own kernel events carry the
//! call too, with `intent.tool_path`; a file event of the agent that reached another path is
//! `intent.divergent` (the call said one file, the kernel saw another).
//!
//! Once a session's agent has reported a hook, its activity is expected to be explained by tool
//! calls: a kernel event of any other process that works for no call in progress (started
//! outside every call, or left behind by a call that has ended) is marked `intent.undeclared`.
//! The agent processes (those its hooks came from) and agentwatch's own hook command are not.

use std::collections::HashMap;
use std::sync::Arc;

use agent_model::{
    AgentRef, BStr, Event, Intent, Kind, KindField, Mcp, SessionRef, session_id_string,
};

use super::Tracker;
use crate::hooks::HookReport;

/// Open tool calls remembered per session; the oldest goes first.
const MAX_SPANS: usize = 16;
/// Shells (by comm) skipped when looking for the agent above a hook command.
const SHELLS: &[&[u8]] = &[b"sh", b"dash", b"bash", b"zsh", b"fish", b"agentwatch"];

/// The tool call a process works for: (tool call id, tool name).
pub type CallTag = Arc<(String, String)>;

/// A tool call in progress.
#[derive(Debug, Clone)]
pub struct Span {
    pub agent_pid: u32,
    pub tag: CallTag,
    /// The file a file tool call named, as given and canonical (when they differ).
    pub paths: Vec<BStr>,
}

/// Agent processes remembered per session (the processes hooks came from).
const MAX_AGENTS: usize = 8;

/// Open spans and the agent processes, by session.
#[derive(Debug, Default)]
pub struct Spans {
    open: HashMap<u64, Vec<Span>>,
    /// Sessions whose agent reports hooks, with its processes.
    agents: HashMap<u64, Vec<u32>>,
}

impl Spans {
    /// A hook came from agent process `pid` of `session`.
    fn note_agent(&mut self, session: u64, pid: u32) {
        let v = self.agents.entry(session).or_default();
        if !v.contains(&pid) {
            if v.len() >= MAX_AGENTS {
                v.remove(0);
            }
            v.push(pid);
        }
    }

    /// Is activity of process `tgid` working for `call` unexplained? Only in a session whose
    /// agent reports hooks, never for the agent itself; a call that is no longer in progress
    /// explains nothing.
    pub fn undeclared(&self, session: u64, tgid: u32, call: Option<&CallTag>) -> bool {
        let Some(agents) = self.agents.get(&session) else {
            return false;
        };
        if agents.contains(&tgid) {
            return false;
        }
        match call {
            None => true,
            Some(c) => !self
                .open
                .get(&session)
                .is_some_and(|v| v.iter().any(|s| s.tag.0 == c.0)),
        }
    }

    fn open(&mut self, session: u64, span: Span) {
        let v = self.open.entry(session).or_default();
        v.retain(|s| s.tag.0 != span.tag.0);
        if v.len() >= MAX_SPANS {
            v.remove(0);
        }
        v.push(span);
    }

    fn close(&mut self, session: u64, call_id: &str) {
        if let Some(v) = self.open.get_mut(&session) {
            v.retain(|s| s.tag.0 != call_id);
            if v.is_empty() {
                self.open.remove(&session);
            }
        }
    }

    /// The call a new child of `parent` in `session` works for: the only open span of that
    /// parent, if there is exactly one.
    pub fn for_child(&self, session: u64, parent: u32) -> Option<CallTag> {
        let mut it = self
            .open
            .get(&session)?
            .iter()
            .filter(|s| s.agent_pid == parent);
        let first = it.next()?;
        it.next().is_none().then(|| first.tag.clone())
    }

    /// The file tool call the agent process `tgid` itself is in: the only open span of that
    /// process, if there is exactly one and it named a file.
    pub fn for_agent(&self, session: u64, tgid: u32) -> Option<&Span> {
        let mut it = self
            .open
            .get(&session)?
            .iter()
            .filter(|s| s.agent_pid == tgid);
        let first = it.next()?;
        (it.next().is_none() && !first.paths.is_empty()).then_some(first)
    }

    pub fn end_session(&mut self, session: u64) {
        self.open.remove(&session);
        self.agents.remove(&session);
    }

    pub fn open_count(&self, session: u64) -> usize {
        self.open.get(&session).map_or(0, Vec::len)
    }
}

/// The `intent` of the agent's own kernel event inside file tool call `span`.
pub fn agent_intent(span: &Span) -> Intent {
    Intent {
        tool_path: span.paths.first().cloned(),
        ..kernel_intent(&span.tag)
    }
}

/// Mark a file event of the agent inside a file tool call `divergent` when it reached a path
/// other than the one the call named (as given or canonical).
pub fn mark_divergent(ev: &mut Event, span_paths: &[BStr]) {
    let (Some(file), Some(intent)) = (&ev.file, &mut ev.intent) else {
        return;
    };
    if intent.tool_path.is_some() && !span_paths.contains(&file.path) {
        intent.divergent = true;
    }
}

/// The `intent` of a kernel event caused by `tag`.
pub fn kernel_intent(tag: &CallTag) -> Intent {
    Intent {
        tool_call_id: Some(tag.0.clone()),
        tool_name: Some(tag.1.clone()),
        ..Default::default()
    }
}

impl Tracker {
    /// The agent process above a hook command `pid`: the nearest ancestor that is not a shell
    /// (the hook command itself is skipped), within four levels; `pid` when none is known.
    pub fn agent_above(&self, pid: u32) -> u32 {
        let mut cur = self.procs.by_tgid(pid);
        for _ in 0..4 {
            let Some(p) = cur else { break };
            if p.tgid != pid && !SHELLS.contains(&p.comm.as_bytes()) {
                return p.tgid;
            }
            cur = self.procs.parent_of(p);
        }
        cur.map_or(pid, |p| p.tgid)
    }

    /// The `agent.*` event of a hook reported by process `pid` of `session`. Its process is the
    /// agent above the hook command (see [`Tracker::agent_above`]).
    pub fn hook_event(&mut self, pid: u32, session: u64, agent: &str, r: HookReport) -> Event {
        let agent_pid = self.agent_above(pid);
        self.spans.note_agent(session, agent_pid);
        let mut ev = Event {
            id: self.next_id(),
            time: self.clock.now(),
            host: self.host.clone(),
            kind: KindField(r.kind),
            agent: Some(AgentRef {
                name: self
                    .sessions
                    .get(&session)
                    .map_or_else(|| agent.to_owned(), |s| s.agent.clone()),
            }),
            session: Some(SessionRef {
                id: session_id_string(session),
            }),
            intent: Some(r.intent),
            ..Default::default()
        };
        if let Some(p) = self.procs.by_tgid(agent_pid).cloned() {
            ev.process = self.process_of(&p, agent_pid);
            let (parent, ancestry) = self.lineage(&p, session);
            ev.parent = parent;
            ev.ancestry = ancestry;
        } else {
            ev.process.pid = agent_pid;
            ev.process.tid = agent_pid;
        }
        *self.delivered.entry(r.kind.id()).or_default() += 1;
        if let Some(s) = self.sessions.get_mut(&session) {
            s.events += 1;
        }
        ev
    }

    /// The `mcp.call` event of an MCP tool call whose `agent.tool_call` is `call`: same process,
    /// session and call id, the hook, the decision, and the MCP server, tool and arguments.
    pub fn mcp_event(&mut self, session: u64, call: &Event, mcp: Mcp) -> Event {
        let i = call.intent.clone().unwrap_or_default();
        let ev = Event {
            id: self.next_id(),
            kind: KindField(Kind::McpCall),
            intent: Some(Intent {
                hook: i.hook,
                agent_session: i.agent_session,
                tool_name: i.tool_name,
                tool_call_id: i.tool_call_id,
                decision: i.decision,
                reason: i.reason,
                redacted: i.redacted,
                ..Default::default()
            }),
            mcp: Some(mcp),
            ..call.clone()
        };
        *self.delivered.entry(Kind::McpCall.id()).or_default() += 1;
        if let Some(s) = self.sessions.get_mut(&session) {
            s.events += 1;
        }
        ev
    }

    /// An allowed tool call starts: children of `agent_pid` work for it until it ends; a file
    /// tool call (`path`) also explains the agent's own access to that file.
    pub fn open_span(
        &mut self,
        session: u64,
        agent_pid: u32,
        call_id: &str,
        tool: &str,
        path: Option<&BStr>,
    ) {
        let mut paths = Vec::new();
        if let Some(p) = path {
            paths.push(p.clone());
            // The kernel reports the canonical path; the agent may have named a link to it.
            if let Ok(c) = std::fs::canonicalize(p.to_str_lossy().as_ref()) {
                let c = BStr::from(c.to_string_lossy().as_ref());
                if c != *p {
                    paths.push(c);
                }
            }
        }
        self.spans.open(
            session,
            Span {
                agent_pid,
                tag: Arc::new((call_id.to_owned(), tool.to_owned())),
                paths,
            },
        );
    }

    /// A tool call ended (its `PostToolUse`).
    pub fn close_span(&mut self, session: u64, call_id: &str) {
        self.spans.close(session, call_id);
    }

    /// Open tool calls of a session (for tests and status).
    pub fn open_spans(&self, session: u64) -> usize {
        self.spans.open_count(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(pid: u32, id: &str) -> Span {
        Span {
            agent_pid: pid,
            tag: Arc::new((id.into(), "Bash".into())),
            paths: Vec::new(),
        }
    }

    #[test]
    fn the_agent_is_in_a_call_only_when_one_file_call_of_it_is_open() {
        let mut s = Spans::default();
        let file = |pid, id: &str| Span {
            paths: vec![BStr::from("/w/a.md")],
            ..span(pid, id)
        };
        s.open(1, span(10, "bash"));
        assert!(s.for_agent(1, 10).is_none(), "a shell call names no file");
        s.close(1, "bash");
        s.open(1, file(10, "read"));
        assert_eq!(s.for_agent(1, 10).unwrap().tag.0, "read");
        assert!(s.for_agent(1, 11).is_none(), "another process");
        s.open(1, file(10, "read2"));
        assert!(s.for_agent(1, 10).is_none(), "two open calls: ambiguous");
    }

    #[test]
    fn only_a_file_event_off_the_named_path_is_divergent() {
        let sp = Span {
            paths: vec![BStr::from("/w/a.md"), BStr::from("/real/a.md")],
            ..span(10, "r")
        };
        let ev = |path: &str| Event {
            file: Some(agent_model::File {
                path: BStr::from(path),
                ..Default::default()
            }),
            intent: Some(agent_intent(&sp)),
            ..Default::default()
        };
        for (path, divergent) in [
            ("/w/a.md", false),
            ("/real/a.md", false),
            ("/home/u/.ssh/id_rsa", true),
        ] {
            let mut e = ev(path);
            mark_divergent(&mut e, &sp.paths);
            let i = e.intent.unwrap();
            assert_eq!(i.divergent, divergent, "{path}");
            assert_eq!(i.tool_path, Some(BStr::from("/w/a.md")));
        }
        // An event without a file, or outside a file call, is never divergent.
        let mut e = ev("/x");
        e.file = None;
        mark_divergent(&mut e, &sp.paths);
        assert!(!e.intent.unwrap().divergent);
    }

    #[test]
    fn a_child_is_tagged_only_when_one_span_of_its_parent_is_open() {
        let mut s = Spans::default();
        assert!(s.for_child(1, 10).is_none());
        s.open(1, span(10, "a"));
        assert_eq!(s.for_child(1, 10).unwrap().0, "a");
        assert!(s.for_child(1, 11).is_none(), "another parent");
        assert!(s.for_child(2, 10).is_none(), "another session");
        s.open(1, span(10, "b"));
        assert!(s.for_child(1, 10).is_none(), "two open calls: ambiguous");
        s.close(1, "a");
        assert_eq!(s.for_child(1, 10).unwrap().0, "b");
        s.close(1, "b");
        assert!(s.for_child(1, 10).is_none());
    }

    #[test]
    fn only_activity_outside_the_calls_in_progress_is_undeclared() {
        let mut s = Spans::default();
        let call = Arc::new(("a".to_owned(), "Bash".to_owned()));
        assert!(
            !s.undeclared(1, 20, None),
            "no hooks yet: nothing is expected"
        );
        s.note_agent(1, 10);
        assert!(s.undeclared(1, 20, None), "a process outside every call");
        assert!(!s.undeclared(1, 10, None), "the agent itself");
        assert!(!s.undeclared(2, 20, None), "another session");
        s.open(1, span(10, "a"));
        assert!(
            !s.undeclared(1, 20, Some(&call)),
            "works for a call in progress"
        );
        assert!(s.undeclared(1, 20, None));
        s.close(1, "a");
        assert!(
            s.undeclared(1, 20, Some(&call)),
            "left behind by an ended call"
        );
        s.end_session(1);
        assert!(!s.undeclared(1, 20, None));
    }

    #[test]
    fn spans_are_bounded_per_session() {
        let mut s = Spans::default();
        for i in 0..100 {
            s.open(1, span(i, &i.to_string()));
        }
        assert_eq!(s.open_count(1), MAX_SPANS);
        s.end_session(1);
        assert_eq!(s.open_count(1), 0);
    }
}
