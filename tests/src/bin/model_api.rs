//! A scripted model API for the real-agent tests: it stands in for the Anthropic Messages API
//! (`POST /v1/messages`, what Claude Code calls) and the OpenAI Responses API
//! (`POST /v1/responses`, what Codex calls) and answers with scripted tool calls, so a real agent
//! CLI runs real tools on this machine without any network or model.
//!
//! `model_api --script FILE --log-dir DIR` binds `127.0.0.1:0`, prints `listening ADDR` on stdout
//! and serves until killed. The script is JSON: `{"turns": [{"tool_calls": [{"name": "Bash",
//! "input": {...}}]}, {"text": "done"}]}`. Which turn answers a request is read from the
//! conversation the agent sends back, not from a request counter: every tool call id this server
//! hands out carries its turn (`awturn{K}x{I}`), so the answer is turn `1 + the highest K in the
//! request` (0 when there is none). A retried request therefore gets the same answer, and the
//! tool results of turn K are always in the request that gets turn K+1. Past the last turn the
//! answer is a plain `end_turn` text. Every request (method, path, headers, body) is written to
//! `DIR/NNN.json` so a test can assert what the agent sent back, e.g. the tool results.
//!
//! Plain std TCP and one thread per connection: the agents make a handful of requests per run,
//! and the responses are closed-delimited SSE streams (`Connection: close`).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

/// The tool call id marker; the turn number and the call's index follow it.
const MARK: &str = "awturn";

struct Server {
    turns: Vec<Value>,
    log_dir: PathBuf,
    seq: AtomicUsize,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("model_api: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut script = None;
    let mut log_dir = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--script" => script = args.next().map(PathBuf::from),
            "--log-dir" => log_dir = args.next().map(PathBuf::from),
            _ => bail!("unknown argument `{a}`; usage: model_api --script FILE --log-dir DIR"),
        }
    }
    let (Some(script), Some(log_dir)) = (script, log_dir) else {
        bail!("usage: model_api --script FILE --log-dir DIR");
    };
    let text = std::fs::read_to_string(&script)
        .with_context(|| format!("cannot read `{}`", script.display()))?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("`{}` is not JSON", script.display()))?;
    let turns = v["turns"]
        .as_array()
        .with_context(|| format!("`{}` has no `turns` array", script.display()))?
        .clone();
    std::fs::create_dir_all(&log_dir)?;
    let server = Arc::new(Server {
        turns,
        log_dir,
        seq: AtomicUsize::new(0),
    });
    let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    println!("listening {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let server = Arc::clone(&server);
        std::thread::spawn(move || {
            if let Err(e) = serve(&server, stream) {
                eprintln!("model_api: connection: {e:#}");
            }
        });
    }
    Ok(())
}

/// One request, logged as it came.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(stream: &TcpStream) -> Result<Option<Request>> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let mut body = Vec::new();
    if let Some(n) = header("content-length") {
        let n: usize = n.parse().context("content-length")?;
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .context("chunk size")?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

fn serve(server: &Server, mut stream: TcpStream) -> Result<()> {
    let Some(req) = read_request(&stream)? else {
        return Ok(());
    };
    let seq = server.seq.fetch_add(1, Ordering::SeqCst);
    let body: Value = serde_json::from_slice(&req.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&req.body).into_owned()));
    let raw = String::from_utf8_lossy(&req.body);
    let turn = turn_of(&raw);
    let route = req.path.split('?').next().unwrap_or_default();
    let answered = match (req.method.as_str(), route) {
        ("POST", p) if p.ends_with("/messages") => Some("anthropic"),
        ("POST", p) if p.ends_with("/responses") => Some("openai"),
        _ => None,
    };
    log_request(&server.log_dir, seq, &req, &body, answered.map(|_| turn))?;
    let script_turn = server.turns.get(turn).cloned().unwrap_or_else(
        || json!({"text": format!("(model_api: the script has no turn {turn}; ending)")}),
    );
    let events = match answered {
        Some("anthropic") => anthropic_events(&body, turn, &script_turn),
        Some(_) => openai_events(&body, turn, &script_turn),
        None => {
            let msg = format!("model_api: no route for {} {}", req.method, req.path);
            write!(
                stream,
                "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{msg}",
                msg.len()
            )?;
            return Ok(());
        }
    };
    stream.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
          connection: close\r\n\r\n",
    )?;
    for (name, data) in events {
        write!(stream, "event: {name}\ndata: {data}\n\n")?;
        stream.flush()?;
    }
    Ok(())
}

/// The turn to answer: one past the highest turn named by a tool call id in the conversation.
fn turn_of(raw: &str) -> usize {
    raw.match_indices(MARK)
        .filter_map(|(i, _)| {
            let digits: String = raw[i + MARK.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<usize>().ok()
        })
        .max()
        .map_or(0, |k| k + 1)
}

fn log_request(
    dir: &Path,
    seq: usize,
    req: &Request,
    body: &Value,
    turn: Option<usize>,
) -> Result<()> {
    let headers: serde_json::Map<String, Value> = req
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let entry = json!({
        "method": req.method,
        "path": req.path,
        "headers": headers,
        "answered_turn": turn,
        "body": body,
    });
    let path = dir.join(format!("{seq:03}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&entry)?)
        .with_context(|| format!("cannot write `{}`", path.display()))
}

fn calls(turn: &Value) -> Vec<(String, Value)> {
    turn["tool_calls"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or_default().to_owned(),
                        c["input"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn text_of(turn: &Value) -> String {
    turn["text"].as_str().unwrap_or("done").to_owned()
}

/// Anthropic Messages streaming events for one scripted turn.
fn anthropic_events(req: &Value, turn: usize, script: &Value) -> Vec<(&'static str, Value)> {
    let model = req["model"].as_str().unwrap_or("claude-scripted");
    let usage = json!({"input_tokens": 10, "output_tokens": 1,
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0});
    let mut ev = vec![(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": format!("msg_{MARK}{turn}"), "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": usage}}),
    )];
    let calls = calls(script);
    let stop = if calls.is_empty() {
        ev.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
        ));
        ev.push((
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": text_of(script)}}),
        ));
        ev.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ));
        "end_turn"
    } else {
        for (i, (name, input)) in calls.into_iter().enumerate() {
            ev.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": i,
                    "content_block": {"type": "tool_use", "id": format!("toolu_{MARK}{turn}x{i}"),
                        "name": name, "input": {}}}),
            ));
            ev.push((
                "content_block_delta",
                json!({"type": "content_block_delta", "index": i,
                    "delta": {"type": "input_json_delta", "partial_json": input.to_string()}}),
            ));
            ev.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": i}),
            ));
        }
        "tool_use"
    };
    ev.push((
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {"output_tokens": 5}}),
    ));
    ev.push(("message_stop", json!({"type": "message_stop"})));
    ev
}

/// OpenAI Responses streaming events for one scripted turn. A call to a tool the request offers
/// as `custom` (freeform, e.g. Codex's `apply_patch`) becomes a `custom_tool_call` whose input is
/// the script's string; any other call a `function_call` with the input as JSON arguments.
fn openai_events(req: &Value, turn: usize, script: &Value) -> Vec<(&'static str, Value)> {
    let model = req["model"].as_str().unwrap_or("gpt-scripted");
    let id = format!("resp_{MARK}{turn}");
    let is_custom = |name: &str| {
        req["tools"].as_array().is_some_and(|t| {
            t.iter()
                .any(|t| t["name"] == name && t["type"].as_str() == Some("custom"))
        })
    };
    let mut items = Vec::new();
    let calls = calls(script);
    if calls.is_empty() {
        items.push(json!({"type": "message", "id": format!("msg_{MARK}{turn}"),
            "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text_of(script), "annotations": []}]}));
    }
    for (i, (name, input)) in calls.into_iter().enumerate() {
        let call_id = format!("call_{MARK}{turn}x{i}");
        let as_text = match &input {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        items.push(if is_custom(&name) {
            json!({"type": "custom_tool_call", "id": format!("ctc_{MARK}{turn}x{i}"),
                "call_id": call_id, "name": name, "input": as_text, "status": "completed"})
        } else {
            json!({"type": "function_call", "id": format!("fc_{MARK}{turn}x{i}"),
                "call_id": call_id, "name": name, "arguments": as_text, "status": "completed"})
        });
    }
    let response = |status: &str, output: &[Value]| {
        json!({"id": id, "object": "response", "created_at": 1_700_000_000, "status": status,
            "model": model, "output": output,
            "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 15}})
    };
    let mut seq = 0u64;
    let mut next = || {
        seq += 1;
        seq - 1
    };
    let mut ev = vec![(
        "response.created",
        json!({"type": "response.created", "sequence_number": next(),
            "response": response("in_progress", &[])}),
    )];
    for (i, item) in items.iter().enumerate() {
        ev.push((
            "response.output_item.added",
            json!({"type": "response.output_item.added", "sequence_number": next(),
                "output_index": i, "item": item}),
        ));
        ev.push((
            "response.output_item.done",
            json!({"type": "response.output_item.done", "sequence_number": next(),
                "output_index": i, "item": item}),
        ));
    }
    ev.push((
        "response.completed",
        json!({"type": "response.completed", "sequence_number": next(),
            "response": response("completed", &items)}),
    ));
    ev
}
