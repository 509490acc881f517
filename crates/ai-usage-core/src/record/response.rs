//! Reading token usage from provider JSON: by the genai-prices catalogue's
//! extractors when the body shows which API answered, else by shape.

use crate::record::usage::{TokenUsage, UsageSource};

/// Provider JSON as returned over HTTP. Recognised shapes:
///
/// | provider | where | fields |
/// | --- | --- | --- |
/// | OpenAI chat completions (and DashScope/DeepSeek compatible mode) | `usage` | `prompt_tokens`, `completion_tokens`, `total_tokens`, `prompt_tokens_details.cached_tokens`, `completion_tokens_details.reasoning_tokens` |
/// | OpenAI Responses | `usage` | `input_tokens`, `output_tokens`, `total_tokens`, `input_tokens_details.cached_tokens`, `output_tokens_details.reasoning_tokens` |
/// | Anthropic Messages | `usage` | `input_tokens`, `output_tokens`, `cache_read_input_tokens`, `cache_creation_input_tokens` (both added to input, as Anthropic's `input_tokens` excludes them; cache reads count as cached) |
/// | Gemini | `usageMetadata` | `promptTokenCount` (+ `toolUsePromptTokenCount`), `candidatesTokenCount` + `thoughtsTokenCount`, `cachedContentTokenCount`, `totalTokenCount` |
/// | DashScope native | `usage` | `input_tokens`, `output_tokens`, `total_tokens` |
///
/// A bare usage object (the `usage` value itself) is read the same way. The
/// model comes from `model`, else Gemini's `modelVersion`.
///
/// When the body shows which API answered (Anthropic `"type": "message"`,
/// OpenAI `"object"` of `chat.completion`, `response` or an embeddings
/// `list`, Groq's `x_groq`, OpenRouter's `gen-` ids, Gemini's
/// `usageMetadata`, Bedrock Converse's `output.message`), the genai-prices
/// catalogue's extractor for that provider and flavour reads it; otherwise,
/// or when that extractor fails, the table above. Cache-write tokens
/// (Anthropic `cache_creation_input_tokens`, Bedrock `cacheWriteInputTokens`,
/// OpenAI/OpenRouter `cache_write_tokens`) are part of `input_tokens` and
/// kept apart in `cache_write_tokens`; audio tokens likewise.
impl UsageSource for serde_json::Value {
    fn token_usage(&self) -> Option<TokenUsage> {
        let fallback = json_usage(self);
        match catalogue_usage(self) {
            Some(mut u) => {
                u.total_tokens = fallback.and_then(|f| f.total_tokens);
                Some(u)
            }
            None => fallback,
        }
    }
    fn response_model(&self) -> Option<&str> {
        ["model", "modelVersion"]
            .iter()
            .find_map(|k| self.get(*k).and_then(serde_json::Value::as_str))
            .filter(|m| !m.trim().is_empty())
    }
}

/// The provider and API flavour a response body comes from, by its shape.
pub(crate) fn detect_flavour(v: &serde_json::Value) -> Option<(&'static str, &'static str)> {
    let str_of = |k: &str| v.get(k).and_then(serde_json::Value::as_str);
    if v.get("usageMetadata")
        .is_some_and(serde_json::Value::is_object)
    {
        return Some(("google", "default"));
    }
    if v.pointer("/output/message").is_some() && v.pointer("/usage/inputTokens").is_some() {
        return Some(("aws", "default"));
    }
    match (str_of("type"), str_of("object")) {
        (Some("message"), _) => Some(("anthropic", "default")),
        (_, Some("chat.completion")) => {
            if v.get("x_groq").is_some() {
                Some(("groq", "default"))
            } else if str_of("id").is_some_and(|id| id.starts_with("gen-")) {
                Some(("openrouter", "chat"))
            } else {
                Some(("openai", "chat"))
            }
        }
        (_, Some("response")) => Some(("openai", "responses")),
        (_, Some("list")) if v.get("data").is_some_and(serde_json::Value::is_array) => {
            Some(("openai", "embeddings"))
        }
        _ => None,
    }
}

/// Usage read by the catalogue's extractor for the body's flavour.
fn catalogue_usage(v: &serde_json::Value) -> Option<TokenUsage> {
    let (provider, flavour) = detect_flavour(v)?;
    let catalogue = crate::pricing::catalogue::Catalogue::builtin().ok()?;
    match catalogue.extract(provider, Some(flavour), v) {
        Ok(e) => Some(TokenUsage::from(&e.usage)),
        Err(error) => {
            tracing::debug!(provider, flavour, %error, "catalogue extractor failed; reading usage by shape");
            None
        }
    }
}

/// A non-negative token count; tolerates floats like `12.0` that some
/// gateways emit.
fn count(v: &serde_json::Value, key: &str) -> Option<u64> {
    let n = v.get(key)?;
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            // Truncation is intended: counts are integral.
            .map(|f| f as u64)
    })
}

fn nested(v: &serde_json::Value, outer: &str, key: &str) -> Option<u64> {
    v.get(outer).and_then(|o| count(o, key))
}

fn json_usage(v: &serde_json::Value) -> Option<TokenUsage> {
    if let Some(meta) = v.get("usageMetadata") {
        return gemini_usage(meta);
    }
    match v.get("usage") {
        Some(u) if u.is_object() => usage_object(u),
        // No usage block: maybe the value is the usage object itself.
        _ => usage_object(v),
    }
}

fn usage_object(u: &serde_json::Value) -> Option<TokenUsage> {
    if let Some(prompt) = count(u, "prompt_tokens") {
        return Some(TokenUsage {
            input_tokens: prompt,
            output_tokens: count(u, "completion_tokens").unwrap_or(0),
            total_tokens: count(u, "total_tokens"),
            cached_input_tokens: nested(u, "prompt_tokens_details", "cached_tokens").unwrap_or(0),
            reasoning_tokens: nested(u, "completion_tokens_details", "reasoning_tokens")
                .unwrap_or(0),
            cache_write_tokens: nested(u, "prompt_tokens_details", "cache_write_tokens")
                .unwrap_or(0),
            input_audio_tokens: nested(u, "prompt_tokens_details", "audio_tokens").unwrap_or(0),
            output_audio_tokens: nested(u, "completion_tokens_details", "audio_tokens")
                .unwrap_or(0),
            // No cached-audio count in this shape.
            ..TokenUsage::default()
        });
    }
    let input = count(u, "input_tokens");
    let output = count(u, "output_tokens");
    if input.is_none() && output.is_none() {
        return None;
    }
    let mut usage = TokenUsage {
        input_tokens: input.unwrap_or(0),
        output_tokens: output.unwrap_or(0),
        total_tokens: count(u, "total_tokens"),
        cached_input_tokens: nested(u, "input_tokens_details", "cached_tokens")
            .or_else(|| nested(u, "prompt_tokens_details", "cached_tokens"))
            .unwrap_or(0),
        reasoning_tokens: nested(u, "output_tokens_details", "reasoning_tokens").unwrap_or(0),
        cache_write_tokens: nested(u, "input_tokens_details", "cache_write_tokens").unwrap_or(0),
        ..TokenUsage::default()
    };
    // Anthropic's `input_tokens` excludes cache reads and writes; ours
    // includes them (cached tokens are part of input).
    let read = count(u, "cache_read_input_tokens");
    let created = count(u, "cache_creation_input_tokens");
    if read.is_some() || created.is_some() {
        let read = read.unwrap_or(0);
        usage.input_tokens = usage
            .input_tokens
            .saturating_add(read)
            .saturating_add(created.unwrap_or(0));
        usage.cached_input_tokens = usage.cached_input_tokens.max(read);
        usage.cache_write_tokens = usage.cache_write_tokens.max(created.unwrap_or(0));
    }
    Some(usage)
}

fn gemini_usage(m: &serde_json::Value) -> Option<TokenUsage> {
    let prompt = count(m, "promptTokenCount");
    let total = count(m, "totalTokenCount");
    if prompt.is_none() && total.is_none() {
        return None;
    }
    let thoughts = count(m, "thoughtsTokenCount").unwrap_or(0);
    Some(TokenUsage {
        input_tokens: prompt
            .unwrap_or(0)
            .saturating_add(count(m, "toolUsePromptTokenCount").unwrap_or(0)),
        // Gemini reports thoughts beside the candidates; ours are part of output.
        output_tokens: count(m, "candidatesTokenCount")
            .unwrap_or(0)
            .saturating_add(thoughts),
        total_tokens: total,
        cached_input_tokens: count(m, "cachedContentTokenCount").unwrap_or(0),
        reasoning_tokens: thoughts,
        ..TokenUsage::default()
    })
}

#[cfg(test)]
mod source_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_provider_shapes() {
        let openai = json!({"model": "gpt-4o", "usage": {"prompt_tokens": 100, "completion_tokens": 20,
            "total_tokens": 120, "prompt_tokens_details": {"cached_tokens": 40},
            "completion_tokens_details": {"reasoning_tokens": 5}}});
        let u = openai.token_usage().unwrap();
        assert_eq!(
            (
                u.input_tokens,
                u.output_tokens,
                u.cached_input_tokens,
                u.reasoning_tokens
            ),
            (100, 20, 40, 5)
        );
        assert_eq!(u.total_tokens, Some(120));
        assert_eq!(openai.response_model(), Some("gpt-4o"));

        let responses = json!({"object": "response", "model": "gpt-4.1", "usage": {"input_tokens": 50,
            "output_tokens": 10, "total_tokens": 60, "input_tokens_details": {"cached_tokens": 8},
            "output_tokens_details": {"reasoning_tokens": 3}}});
        let u = responses.token_usage().unwrap();
        assert_eq!(
            (
                u.input_tokens,
                u.output_tokens,
                u.cached_input_tokens,
                u.reasoning_tokens
            ),
            (50, 10, 8, 3)
        );

        let anthropic = json!({"type": "message", "model": "claude-sonnet-4", "usage": {"input_tokens": 30,
            "output_tokens": 7, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20}});
        let u = anthropic.token_usage().unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.cached_input_tokens),
            (150, 7, 100)
        );

        let gemini = json!({"modelVersion": "gemini-2.5-flash", "usageMetadata": {"promptTokenCount": 12,
            "candidatesTokenCount": 4, "thoughtsTokenCount": 6, "cachedContentTokenCount": 2,
            "totalTokenCount": 22}});
        let u = gemini.token_usage().unwrap();
        assert_eq!(
            (
                u.input_tokens,
                u.output_tokens,
                u.cached_input_tokens,
                u.reasoning_tokens
            ),
            (12, 10, 2, 6)
        );
        assert_eq!(gemini.response_model(), Some("gemini-2.5-flash"));

        let dashscope = json!({"request_id": "r", "output": {"text": "hi"},
            "usage": {"input_tokens": 9, "output_tokens": 3, "total_tokens": 12}});
        let u = dashscope.token_usage().unwrap();
        assert_eq!((u.input_tokens, u.output_tokens, u.total()), (9, 3, 12));
        assert_eq!(dashscope.response_model(), None);

        assert_eq!(json!({"choices": []}).token_usage(), None);
        assert_eq!(json!("text").token_usage(), None);
        assert_eq!(
            json!({"prompt_tokens": 1.0, "completion_tokens": 2}).token_usage(),
            Some(TokenUsage::new(1, 2))
        );
    }

    /// Bodies written from each provider's API reference; the flavour is
    /// detected and the catalogue's extractor reads them.
    #[test]
    fn catalogue_extractors_read_provider_bodies() {
        let counts = |u: TokenUsage| {
            (
                u.input_tokens,
                u.output_tokens,
                u.cached_input_tokens,
                u.reasoning_tokens,
            )
        };
        // Bedrock Converse: camelCase usage, cache reads and writes apart from
        // `inputTokens` (the shape-based reader does not know it).
        let bedrock = json!({"output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
            "stopReason": "end_turn", "usage": {"inputTokens": 30, "outputTokens": 10,
            "totalTokens": 160, "cacheReadInputTokens": 100, "cacheWriteInputTokens": 20},
            "metrics": {"latencyMs": 120}});
        assert_eq!(detect_flavour(&bedrock), Some(("aws", "default")));
        assert_eq!(json_usage(&bedrock), None);
        assert_eq!(counts(bedrock.token_usage().unwrap()), (150, 10, 100, 0));
        assert_eq!(bedrock.token_usage().unwrap().cache_write_tokens, 20);

        // Anthropic: input_tokens excludes cache reads and writes.
        let anthropic = json!({"id": "msg_1", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": [], "usage": {"input_tokens": 5,
            "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 4000, "output_tokens": 50}});
        assert_eq!(detect_flavour(&anthropic), Some(("anthropic", "default")));
        assert_eq!(
            counts(anthropic.token_usage().unwrap()),
            (5005, 50, 4000, 0)
        );
        assert_eq!(anthropic.token_usage().unwrap().cache_write_tokens, 1000);
        // An Anthropic-shaped body the flavour detection does not recognise
        // (no `type`) is read by shape, cache writes kept apart too.
        let bare = json!({"model": "claude-sonnet-4-5", "usage": {"input_tokens": 5,
            "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 4000, "output_tokens": 50}});
        let u = bare.token_usage().unwrap();
        assert_eq!((u.input_tokens, u.cache_write_tokens), (5005, 1000));

        // OpenAI chat with cached and reasoning tokens (prompt_tokens includes cached).
        let chat = json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "o3-mini",
            "choices": [], "usage": {"prompt_tokens": 2000, "completion_tokens": 300,
            "total_tokens": 2300, "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 256, "audio_tokens": 0}}});
        assert_eq!(detect_flavour(&chat), Some(("openai", "chat")));
        let u = chat.token_usage().unwrap();
        assert_eq!(counts(u), (2000, 300, 1024, 256));
        assert_eq!(u.total_tokens, Some(2300));

        // OpenAI Responses and embeddings.
        let responses = json!({"id": "resp_1", "object": "response", "model": "gpt-4.1",
            "usage": {"input_tokens": 80, "input_tokens_details": {"cached_tokens": 64},
            "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 12}, "total_tokens": 100}});
        assert_eq!(detect_flavour(&responses), Some(("openai", "responses")));
        assert_eq!(counts(responses.token_usage().unwrap()), (80, 20, 64, 12));
        let embeddings = json!({"object": "list", "data": [{"object": "embedding", "index": 0,
            "embedding": [0.1]}], "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 10, "total_tokens": 10}});
        assert_eq!(detect_flavour(&embeddings), Some(("openai", "embeddings")));
        assert_eq!(counts(embeddings.token_usage().unwrap()), (10, 0, 0, 0));

        // Groq (x_groq), OpenRouter (gen- ids) and Mistral (plain chat shape).
        let groq = json!({"id": "chatcmpl-g", "object": "chat.completion", "model": "llama-3.3-70b-versatile",
            "choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49,
            "prompt_time": 0.01, "completion_time": 0.02}, "x_groq": {"id": "req_1"}});
        assert_eq!(detect_flavour(&groq), Some(("groq", "default")));
        assert_eq!(counts(groq.token_usage().unwrap()), (40, 9, 0, 0));
        let openrouter = json!({"id": "gen-123", "object": "chat.completion", "provider": "Anthropic",
            "model": "anthropic/claude-sonnet-4.5", "choices": [], "usage": {"prompt_tokens": 500,
            "completion_tokens": 20, "total_tokens": 520,
            "prompt_tokens_details": {"cached_tokens": 300, "cache_write_tokens": 100}}});
        assert_eq!(detect_flavour(&openrouter), Some(("openrouter", "chat")));
        assert_eq!(counts(openrouter.token_usage().unwrap()), (500, 20, 300, 0));
        assert_eq!(openrouter.token_usage().unwrap().cache_write_tokens, 100);
        // OpenAI chat with audio in and out (gpt-4o-audio-preview).
        let audio = json!({"id": "chatcmpl-a", "object": "chat.completion", "model": "gpt-audio",
            "choices": [], "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 400},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 300}}});
        let u = audio.token_usage().unwrap();
        assert_eq!((u.input_audio_tokens, u.output_audio_tokens), (400, 300));
        let mistral = json!({"id": "cmpl-m", "object": "chat.completion", "model": "mistral-large-latest",
            "choices": [], "usage": {"prompt_tokens": 16, "completion_tokens": 34, "total_tokens": 50}});
        assert_eq!(counts(mistral.token_usage().unwrap()), (16, 34, 0, 0));

        // Gemini with thoughts (part of output here) and cached content.
        let gemini = json!({"modelVersion": "gemini-2.5-pro", "usageMetadata": {"promptTokenCount": 1000,
            "cachedContentTokenCount": 600, "candidatesTokenCount": 50, "thoughtsTokenCount": 200,
            "totalTokenCount": 1250}});
        assert_eq!(detect_flavour(&gemini), Some(("google", "default")));
        assert_eq!(counts(gemini.token_usage().unwrap()), (1000, 250, 600, 200));
    }

    /// Every count but the optional total is reachable by its name, and
    /// setting it sets that count.
    #[test]
    fn counts_by_name() {
        let names = TokenUsage::default().named_counts().map(|(n, _)| n);
        for (i, name) in names.iter().enumerate() {
            let mut u = TokenUsage::default();
            match u.count_mut(name) {
                None => assert_eq!(*name, "total_tokens"),
                Some((field, slot)) => {
                    assert_eq!(field, *name);
                    *slot = 7;
                    assert_eq!(u.named_counts()[i], (*name, 7));
                }
            }
        }
        assert!(TokenUsage::default().count_mut("cached_tokens").is_none());
    }

    #[test]
    fn wrappers_forward() {
        let ok: Result<TokenUsage, String> = Ok(TokenUsage::new(1, 2));
        assert_eq!(ok.token_usage(), Some(TokenUsage::new(1, 2)));
        assert!(ok.call_error().is_none());
        let err: Result<TokenUsage, String> = Err("boom".into());
        assert_eq!(
            err.call_error().map(|e| e.to_string()).as_deref(),
            Some("boom")
        );
        let boxed: Box<dyn UsageSource> = Box::new(Some(TokenUsage::new(3, 4)));
        assert_eq!(boxed.token_usage(), Some(TokenUsage::new(3, 4)));
        assert_eq!(
            ("text", TokenUsage::new(5, 6)).token_usage(),
            Some(TokenUsage::new(5, 6))
        );
    }
}
