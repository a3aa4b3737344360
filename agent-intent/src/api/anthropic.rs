//! Anthropic Messages API (`POST /v1/messages`): request body, response body, and the streamed
//! events `message_start`, `content_block_start`, `content_block_delta` (`text_delta`,
//! `input_json_delta`), `message_delta`, `message_stop` and `error`.

use serde_json::Value;

use super::{RequestBuilder, ResponseAcc, append, json_text, str_of, text_blocks, u64_of};
use crate::limits::Stats;

pub fn request(v: &Value, b: &mut RequestBuilder) {
    b.model = str_of(v, "model");
    b.max_tokens = u64_of(v, "max_tokens");
    b.stream = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if let Some(sys) = v.get("system") {
        text_blocks(sys, &mut b.system, b.window);
    }
    for t in v
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(n) = str_of(t, "name").or_else(|| str_of(t, "type")) {
            b.tools.push(n);
        }
    }
    let msgs = v.get("messages").and_then(Value::as_array);
    b.messages = msgs.map_or(0, |m| m.len() as u64);
    // The last user message: its text is the prompt, its tool_result blocks the results.
    if let Some(last) = msgs.and_then(|m| m.iter().rev().find(|m| m["role"] == "user")) {
        match &last["content"] {
            Value::String(s) => append(&mut b.prompt, s, b.window),
            Value::Array(blocks) => {
                for blk in blocks {
                    match blk["type"].as_str() {
                        Some("text") => append(
                            &mut b.prompt,
                            blk["text"].as_str().unwrap_or_default(),
                            b.window,
                        ),
                        Some("tool_result") => {
                            if let Some(id) = str_of(blk, "tool_use_id") {
                                b.tool_results.push(id);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}

fn usage(acc: &mut ResponseAcc, u: &Value) {
    if let Some(n) = u64_of(u, "input_tokens") {
        acc.usage.input_tokens = Some(n);
    }
    if let Some(n) = u64_of(u, "output_tokens") {
        acc.usage.output_tokens = Some(n);
    }
    if let Some(n) = u64_of(u, "cache_read_input_tokens") {
        acc.usage.cache_read_tokens = Some(n);
    }
    if let Some(n) = u64_of(u, "cache_creation_input_tokens") {
        acc.usage.cache_creation_tokens = Some(n);
    }
}

/// A whole `message` object.
pub fn response(acc: &mut ResponseAcc, v: &Value, stats: &mut Stats) {
    acc.id = str_of(v, "id").or(acc.id.take());
    acc.model = str_of(v, "model").or(acc.model.take());
    if let Some(r) = str_of(v, "stop_reason") {
        acc.stop_reason = Some(r);
    }
    if let Some(u) = v.get("usage") {
        usage(acc, u);
    }
    let window = acc.window();
    for blk in v
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match blk["type"].as_str() {
            Some("text") => acc.push_text(blk["text"].as_str().unwrap_or_default()),
            Some("tool_use" | "server_tool_use") => {
                if let Some(c) = acc.new_call(stats) {
                    c.id = str_of(blk, "id").unwrap_or_default();
                    c.name = str_of(blk, "name").unwrap_or_default();
                    ResponseAcc::push_input(c, &json_text(&blk["input"]), window);
                }
            }
            _ => {}
        }
    }
}

pub fn stream_event(acc: &mut ResponseAcc, name: &str, v: &Value, stats: &mut Stats) {
    let ty = v["type"].as_str().unwrap_or(name);
    let index = u64_of(v, "index").unwrap_or(0);
    let window = acc.window();
    match ty {
        "message_start" => response(acc, &v["message"], stats),
        "content_block_start" => {
            let blk = &v["content_block"];
            match blk["type"].as_str() {
                Some("text") => acc.push_text(blk["text"].as_str().unwrap_or_default()),
                Some("tool_use" | "server_tool_use") => {
                    if let Some(c) = acc.call(index, stats) {
                        c.id = str_of(blk, "id").unwrap_or_default();
                        c.name = str_of(blk, "name").unwrap_or_default();
                        // `input` is `{}` here; the arguments follow as input_json_delta.
                        if blk["input"].as_object().is_some_and(|o| !o.is_empty()) {
                            ResponseAcc::push_input(c, &json_text(&blk["input"]), window);
                        }
                    }
                }
                _ => {}
            }
        }
        "content_block_delta" => {
            let d = &v["delta"];
            match d["type"].as_str() {
                Some("text_delta") => acc.push_text(d["text"].as_str().unwrap_or_default()),
                Some("input_json_delta") => {
                    if acc.calls.iter().any(|c| c.key == index)
                        && let Some(c) = acc.call(index, stats)
                    {
                        ResponseAcc::push_input(
                            c,
                            d["partial_json"].as_str().unwrap_or_default(),
                            window,
                        );
                    }
                }
                _ => {}
            }
        }
        "message_delta" => {
            if let Some(r) = str_of(&v["delta"], "stop_reason") {
                acc.stop_reason = Some(r);
            }
            if let Some(u) = v.get("usage") {
                usage(acc, u);
            }
        }
        "message_stop" => acc.done = true,
        "error" => {
            acc.error = str_of(&v["error"], "message").or_else(|| Some(v["error"].to_string()));
            acc.done = true;
        }
        _ => {}
    }
}
