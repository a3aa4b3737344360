#!/usr/bin/env python3
"""`cargo xtask bench intent`: streamed Anthropic Messages calls to the test TLS model API in a
loop for SECS seconds over one keep-alive connection (a fresh one when the server closes it);
prints the calls per second. Usage: tls_loop.py CA PORT SECS."""
import http.client
import json
import ssl
import sys
import time

ca, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ctx = ssl.create_default_context(cafile=ca)
body = json.dumps({"model": "claude-bench", "max_tokens": 100, "stream": True,
                   "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
                   "messages": [{"role": "user", "content": "list the files please"}]})
conn = None
calls = 0
start = time.monotonic()
end = start + secs
while time.monotonic() < end:
    if conn is None:
        conn = http.client.HTTPSConnection("localhost", port, context=ctx)
    conn.request("POST", "/v1/messages", body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    assert r.status == 200, r.status
    if r.getheader("Connection", "").lower() == "close" or r.will_close:
        conn.close()
        conn = None
    calls += 1
print(f"{calls / (time.monotonic() - start):.1f}")
