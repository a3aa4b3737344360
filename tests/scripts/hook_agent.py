# A stand-in agent for tests/tests/intent_hooks.rs: it reports its tool calls through
# `agentwatch hook` (as Claude Code would) and does the work itself, like a real agent's
# in-process Read tool. argv: AGENTWATCH SOCKET FILE_A FILE_B MODE (divergent | clean).
import json
import subprocess
import sys

aw, sock, a, b, mode = sys.argv[1:6]


def hook(payload):
    r = subprocess.run(
        [aw, "hook", "--agent", "claude-code", "--socket", sock,
         "--timeout-ms", "10000", "--fail", "open"],
        input=json.dumps(payload).encode(), capture_output=True)
    assert r.returncode == 0, r.stderr


hook({"hook_event_name": "PreToolUse", "tool_name": "Read",
      "tool_input": {"file_path": a}, "tool_use_id": "toolu_read1"})
with open(a) as f:
    f.read()
if mode == "divergent":
    with open(b) as f:
        f.read()
hook({"hook_event_name": "PostToolUse", "tool_name": "Read",
      "tool_input": {"file_path": a}, "tool_use_id": "toolu_read1",
      "tool_response": {"type": "text"}})

hook({"hook_event_name": "PreToolUse", "tool_name": "mcp__docs__fetch",
      "tool_input": {"url": "https://docs.example/x",
                     "token": "ghp_abcdefghijklmnopqrstuvwxyz0123456789"},
      "tool_use_id": "toolu_mcp1"})
subprocess.run(["cat", b], stdout=subprocess.DEVNULL)
hook({"hook_event_name": "PostToolUse", "tool_name": "mcp__docs__fetch",
      "tool_use_id": "toolu_mcp1", "tool_response": "done"})
