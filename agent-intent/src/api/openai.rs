//! OpenAI Chat Completions (`/v1/chat/completions`: request, response, streamed
//! `chat.completion.chunk` with `tool_calls` deltas) and Responses (`/v1/responses`: request,
//! response, streamed `response.*` events with `function_call` and `custom_tool_call` items).

use serde_json::Value;

use super::{RequestBuilder, ResponseAcc, append, json_text, str_of, text_blocks, u64_of};
use crate::limits::Stats;

pub fn chat_request(v: &Value, b: &mut RequestBuilder) {
    b.model = str_of(v, "model");
    b.max_tokens = u64_of(v, "max_completion_tokens").or_else(|| u64_of(v, "max_tokens"));
    b.stream = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
    for t in v
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(n) = str_of(&t["function"], "name").or_else(|| str_of(t, "name")) {
            b.tools.push(n);
        }
    }
    let msgs: &[Value] = v
        .get("messages")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    b.messages = msgs.len() as u64;
    for m in msgs {
        if matches!(m["role"].as_str(), Some("system" | "developer")) {
            text_blocks(&m["content"], &mut b.system, b.window);
        }
    }
    let last_user = msgs.iter().rposition(|m| m["role"] == "user");
    if let Some(i) = last_user {
        text_blocks(&msgs[i]["content"], &mut b.prompt, b.window);
    }
    for m in &msgs[last_user.map_or(0, |i| i + 1)..] {
        if m["role"] == "tool"
            && let Some(id) = str_of(m, "tool_call_id")
        {
            b.tool_results.push(id);
        }
    }
}

fn chat_usage(acc: &mut ResponseAcc, u: &Value) {
    acc.usage.input_tokens = u64_of(u, "prompt_tokens").or(acc.usage.input_tokens);
    acc.usage.output_tokens = u64_of(u, "completion_tokens").or(acc.usage.output_tokens);
    acc.usage.total_tokens = u64_of(u, "total_tokens").or(acc.usage.total_tokens);
    if let Some(n) = u
        .get("prompt_tokens_details")
        .and_then(|d| u64_of(d, "cached_tokens"))
    {
        acc.usage.cache_read_tokens = Some(n);
    }
    if let Some(n) = u
        .get("completion_tokens_details")
        .and_then(|d| u64_of(d, "reasoning_tokens"))
    {
        acc.usage.reasoning_tokens = Some(n);
    }
}

pub fn chat_response(acc: &mut ResponseAcc, v: &Value, stats: &mut Stats) {
    acc.id = str_of(v, "id");
    acc.model = str_of(v, "model");
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        chat_usage(acc, u);
    }
    let window = acc.window();
    for choice in v
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(1)
    {
        let msg = &choice["message"];
        if let Some(t) = msg["content"].as_str() {
            acc.push_text(t);
        }
        for tc in msg
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(c) = acc.new_call(stats) {
                c.id = str_of(tc, "id").unwrap_or_default();
                c.name = str_of(&tc["function"], "name").unwrap_or_default();
                ResponseAcc::push_input(c, &json_text(&tc["function"]["arguments"]), window);
            }
        }
        if let Some(r) = str_of(choice, "finish_reason") {
            acc.stop_reason = Some(r);
        }
    }
}

pub fn chat_chunk(acc: &mut ResponseAcc, v: &Value, stats: &mut Stats) {
    if let Some(e) = v.get("error") {
        acc.error = str_of(e, "message").or_else(|| Some(e.to_string()));
        return;
    }
    if acc.id.is_none() {
        acc.id = str_of(v, "id");
    }
    if acc.model.is_none() {
        acc.model = str_of(v, "model");
    }
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        chat_usage(acc, u);
    }
    let window = acc.window();
    for choice in v
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if u64_of(choice, "index").unwrap_or(0) != 0 {
            continue;
        }
        let d = &choice["delta"];
        if let Some(t) = d["content"].as_str() {
            acc.push_text(t);
        }
        for tc in d
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = u64_of(tc, "index").unwrap_or(0);
            if let Some(c) = acc.call(key, stats) {
                if let Some(id) = str_of(tc, "id") {
                    c.id = id;
                }
                if let Some(n) = str_of(&tc["function"], "name") {
                    c.name.push_str(crate::excerpt::cut(&n, 256));
                }
                if let Some(a) = tc["function"]["arguments"].as_str() {
                    ResponseAcc::push_input(c, a, window);
                }
            }
        }
        if let Some(r) = str_of(choice, "finish_reason") {
            acc.stop_reason = Some(r);
        }
    }
}

pub fn responses_request(v: &Value, b: &mut RequestBuilder) {
    b.model = str_of(v, "model");
    b.max_tokens = u64_of(v, "max_output_tokens");
    b.stream = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if let Some(s) = v["instructions"].as_str() {
        append(&mut b.system, s, b.window);
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
    match &v["input"] {
        Value::String(s) => {
            b.messages = 1;
            append(&mut b.prompt, s, b.window);
        }
        Value::Array(items) => {
            b.messages = items.len() as u64;
            let is_user = |it: &Value| {
                it["role"] == "user" && it["type"].as_str().is_none_or(|t| t == "message")
            };
            for it in items {
                if matches!(it["role"].as_str(), Some("system" | "developer")) {
                    text_blocks(&it["content"], &mut b.system, b.window);
                }
            }
            let last_user = items.iter().rposition(is_user);
            if let Some(i) = last_user {
                text_blocks(&items[i]["content"], &mut b.prompt, b.window);
            }
            for it in &items[last_user.map_or(0, |i| i + 1)..] {
                if matches!(
                    it["type"].as_str(),
                    Some("function_call_output" | "custom_tool_call_output")
                ) && let Some(id) = str_of(it, "call_id")
                {
                    b.tool_results.push(id);
                }
            }
        }
        _ => {}
    }
}

fn responses_usage(acc: &mut ResponseAcc, u: &Value) {
    acc.usage.input_tokens = u64_of(u, "input_tokens");
    acc.usage.output_tokens = u64_of(u, "output_tokens");
    acc.usage.total_tokens = u64_of(u, "total_tokens");
    acc.usage.cache_read_tokens = u
        .get("input_tokens_details")
        .and_then(|d| u64_of(d, "cached_tokens"));
    acc.usage.reasoning_tokens = u
        .get("output_tokens_details")
        .and_then(|d| u64_of(d, "reasoning_tokens"));
}

/// One output item: a function or custom tool call (text items are read from deltas or,
/// for whole bodies, here too when `text` is set).
fn item(acc: &mut ResponseAcc, key: u64, it: &Value, stats: &mut Stats, with_text: bool) {
    let window = acc.window();
    match it["type"].as_str() {
        Some("function_call" | "custom_tool_call") => {
            if let Some(c) = acc.call(key, stats) {
                c.id = str_of(it, "call_id")
                    .or_else(|| str_of(it, "id"))
                    .unwrap_or_default();
                c.name = str_of(it, "name").unwrap_or_default();
                let input = it.get("arguments").or_else(|| it.get("input"));
                if let Some(i) = input.filter(|i| i.as_str().is_none_or(|s| !s.is_empty())) {
                    c.input.set(&json_text(i), window);
                }
            }
        }
        Some("message") if with_text => {
            for part in it["content"].as_array().into_iter().flatten() {
                if let Some(t) = part["text"].as_str() {
                    acc.push_text(t);
                }
            }
        }
        _ => {}
    }
}

pub fn responses_response(acc: &mut ResponseAcc, v: &Value, stats: &mut Stats) {
    acc.id = str_of(v, "id");
    acc.model = str_of(v, "model");
    acc.stop_reason = str_of(v, "status");
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        responses_usage(acc, u);
    }
    for (i, it) in v["output"].as_array().into_iter().flatten().enumerate() {
        item(acc, i as u64, it, stats, true);
    }
}

pub fn responses_event(acc: &mut ResponseAcc, v: &Value, stats: &mut Stats) {
    let key = u64_of(v, "output_index").unwrap_or(0);
    let window = acc.window();
    match v["type"].as_str().unwrap_or_default() {
        "response.created" | "response.in_progress" => {
            acc.id = str_of(&v["response"], "id").or(acc.id.take());
            acc.model = str_of(&v["response"], "model").or(acc.model.take());
        }
        "response.output_item.added" | "response.output_item.done" => {
            item(acc, key, &v["item"], stats, false)
        }
        "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
            if acc.calls.iter().any(|c| c.key == key)
                && let Some(c) = acc.call(key, stats)
            {
                ResponseAcc::push_input(c, v["delta"].as_str().unwrap_or_default(), window);
            }
        }
        "response.output_text.delta" => acc.push_text(v["delta"].as_str().unwrap_or_default()),
        "response.completed" | "response.incomplete" | "response.failed" => {
            let r = &v["response"];
            acc.id = str_of(r, "id").or(acc.id.take());
            acc.model = str_of(r, "model").or(acc.model.take());
            acc.stop_reason = str_of(r, "status");
            if let Some(u) = r.get("usage").filter(|u| u.is_object()) {
                responses_usage(acc, u);
            }
            if let Some(e) = r.get("error").filter(|e| e.is_object()) {
                acc.error = str_of(e, "message");
            }
            // Calls only listed in the final output (no item events seen) still count.
            for (i, it) in r["output"].as_array().into_iter().flatten().enumerate() {
                if !acc.calls.iter().any(|c| c.key == i as u64) {
                    item(acc, i as u64, it, stats, false);
                }
            }
            acc.done = true;
        }
        "error" => {
            acc.error = str_of(v, "message").or_else(|| Some(v.to_string()));
            acc.done = true;
        }
        _ => {}
    }
}
