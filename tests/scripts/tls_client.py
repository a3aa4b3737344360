#!/usr/bin/env python3
"""Calls the test model API over TLS (http.client with the test CA): an Anthropic Messages
request, then an OpenAI Chat Completions request, both streamed. Usage: tls_client.py CA PORT."""
import http.client
import json
import ssl
import sys

ca, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context(cafile=ca)
for path, body in [
    ("/v1/messages", {"model": "claude-tls-test", "max_tokens": 100, "stream": True,
                      "system": "You are a test agent.",
                      "tools": [{"name": "Bash", "input_schema": {"type": "object"}},
                                {"name": "Read", "input_schema": {"type": "object"}}],
                      "messages": [{"role": "user", "content": "list the files please"}]}),
    ("/v1/chat/completions", {"model": "gpt-tls-test", "stream": True,
                              "stream_options": {"include_usage": True},
                              "tools": [{"type": "function", "function": {"name": "read_file", "parameters": {}}}],
                              "messages": [{"role": "user", "content": "read the hostname"}]}),
]:
    c = http.client.HTTPSConnection("localhost", port, context=ctx)
    c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    assert r.status == 200, (path, r.status)
    c.close()
print("ok")
