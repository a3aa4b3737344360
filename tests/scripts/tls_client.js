// Calls the test model API over TLS from node (its bundled OpenSSL; the CA comes from
// NODE_EXTRA_CA_CERTS): an Anthropic Messages request, streamed. Usage: node tls_client.js PORT
const https = require("https");
const port = Number(process.argv[2]);
const body = JSON.stringify({
  model: "claude-node-test", max_tokens: 50, stream: true,
  tools: [{ name: "Glob", input_schema: { type: "object" } }],
  messages: [{ role: "user", content: "find the rust files" }],
});
const req = https.request({
  host: "localhost", port, path: "/v1/messages", method: "POST",
  headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
}, (res) => {
  res.on("data", () => {});
  res.on("end", () => { console.log(res.statusCode === 200 ? "ok" : "status " + res.statusCode); });
});
req.on("error", (e) => { console.error(e); process.exit(1); });
req.end(body);
