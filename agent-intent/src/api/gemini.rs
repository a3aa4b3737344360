//! Gemini `models/{model}:generateContent` and `:streamGenerateContent`: request `contents`,
//! `systemInstruction`, `tools[].functionDeclarations`, `generationConfig`; responses
//! `candidates[].content.parts[]` (`text`, `functionCall`), `finishReason` and `usageMetadata`.
//! A streamed response is a sequence of such objects (SSE `data:` with `alt=sse`, else a JSON
//! array), each merged into the same response.

use serde_json::Value;

use super::{RequestBuilder, ResponseAcc, append, json_text, str_of, u64_of};
use crate::limits::Stats;

/// Field names are camelCase in the REST API, but the API also accepts snake_case.
fn get<'a>(v: &'a Value, camel: &str, snake: &str) -> &'a Value {
    v.get(camel)
        .or_else(|| v.get(snake))
        .unwrap_or(&Value::Null)
}

fn parts_text(content: &Value, out: &mut String, window: usize) {
    for p in content["parts"].as_array().into_iter().flatten() {
        if let Some(t) = p["text"].as_str() {
            append(out, t, window);
        }
    }
}

pub fn request(path: &str, v: &Value, b: &mut RequestBuilder) {
    let route = path.split('?').next().unwrap_or_default();
    b.model = route
        .rsplit('/')
        .next()
        .and_then(|last| last.split(':').next())
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .or_else(|| str_of(v, "model"));
    b.stream = route.ends_with(":streamGenerateContent");
    b.max_tokens = u64_of(
        get(v, "generationConfig", "generation_config"),
        "maxOutputTokens",
    )
    .or_else(|| {
        u64_of(
            get(v, "generationConfig", "generation_config"),
            "max_output_tokens",
        )
    });
    parts_text(
        get(v, "systemInstruction", "system_instruction"),
        &mut b.system,
        b.window,
    );
    for t in v
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let decls = get(t, "functionDeclarations", "function_declarations");
        for d in decls.as_array().into_iter().flatten() {
            if let Some(n) = str_of(d, "name") {
                b.tools.push(n);
            }
        }
        if let Some(o) = t.as_object() {
            // Built-in tools (googleSearch, codeExecution...) are named by their key.
            b.tools.extend(
                o.keys()
                    .filter(|k| *k != "functionDeclarations" && *k != "function_declarations")
                    .cloned(),
            );
        }
    }
    let contents: &[Value] = v
        .get("contents")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    b.messages = contents.len() as u64;
    if let Some(last) = contents
        .iter()
        .rev()
        .find(|c| c["role"].as_str().is_none_or(|r| r == "user"))
    {
        parts_text(last, &mut b.prompt, b.window);
        for p in last["parts"].as_array().into_iter().flatten() {
            let fr = get(p, "functionResponse", "function_response");
            if let Some(id) = str_of(fr, "id").or_else(|| str_of(fr, "name")) {
                b.tool_results.push(id);
            }
        }
    }
}

pub fn response(acc: &mut ResponseAcc, v: &Value, stats: &mut Stats) {
    if let Some(e) = v.get("error") {
        acc.error = str_of(e, "message").or_else(|| Some(e.to_string()));
    }
    if let Some(id) = str_of(v, "responseId") {
        acc.id = Some(id);
    }
    if let Some(m) = str_of(v, "modelVersion") {
        acc.model = Some(m);
    }
    let u = get(v, "usageMetadata", "usage_metadata");
    if u.is_object() {
        acc.usage.input_tokens = u64_of(u, "promptTokenCount");
        acc.usage.output_tokens = u64_of(u, "candidatesTokenCount");
        acc.usage.total_tokens = u64_of(u, "totalTokenCount");
        acc.usage.cache_read_tokens = u64_of(u, "cachedContentTokenCount");
        acc.usage.reasoning_tokens = u64_of(u, "thoughtsTokenCount");
    }
    let window = acc.window();
    for cand in v["candidates"].as_array().into_iter().flatten().take(1) {
        for p in cand["content"]["parts"].as_array().into_iter().flatten() {
            if p["thought"].as_bool() == Some(true) {
                continue;
            }
            if let Some(t) = p["text"].as_str() {
                acc.push_text(t);
            }
            let fc = get(p, "functionCall", "function_call");
            if fc.is_object()
                && let Some(c) = acc.new_call(stats)
            {
                c.name = str_of(fc, "name").unwrap_or_default();
                c.id = str_of(fc, "id").unwrap_or_else(|| c.name.clone());
                ResponseAcc::push_input(c, &json_text(&fc["args"]), window);
            }
        }
        if let Some(r) = str_of(cand, "finishReason") {
            acc.stop_reason = Some(r);
            acc.done = true;
        }
    }
}
