//! The genai-prices catalogue end to end: response bodies written from each
//! provider's API reference → extracted usage → exact cost in nano-USD.
//!
//! Expected costs are computed by hand in the comments (tokens × $/Mtok).

use ai_usage_core::catalogue::{Catalogue, CatalogueQuote, CatalogueUsage, ExtractError, PartCost};
use ai_usage_core::Currency;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

fn catalogue() -> &'static Catalogue {
    Catalogue::builtin().expect("embedded catalogue loads")
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("valid time")
}

/// The snapshot's date, midday.
fn snapshot_day() -> DateTime<Utc> {
    utc(2026, 8, 21, 12, 0, 0)
}

/// Extracts usage from `body` and prices it with the model the body names
/// (or `model` when the body names none, as Bedrock Converse).
fn price_body<'a>(
    c: &'a Catalogue,
    provider: &str,
    flavour: Option<&str>,
    body: &Value,
    model: Option<&str>,
    at: DateTime<Utc>,
) -> (CatalogueUsage, CatalogueQuote<'a>) {
    let extracted = c.extract(provider, flavour, body).expect("usage extracts");
    let name = model
        .map(str::to_owned)
        .or(extracted.model.clone())
        .expect("a model name");
    let quote = c
        .price(Some(provider), &name, &extracted.usage, at)
        .unwrap_or_else(|e| panic!("{provider}/{name}: {e}"));
    let sum: i64 = quote.parts.iter().map(|(_, p)| p.nanos).sum();
    assert_eq!(sum, quote.total_nanos, "parts add up to the total");
    (extracted.usage, quote)
}

fn part(units: u64, nanos: i64) -> PartCost {
    PartCost { units, nanos }
}

#[test]
fn every_model_prices_without_error_at_any_time() {
    let c = catalogue();
    let usage = CatalogueUsage {
        input_tokens: 1_000,
        cache_read_tokens: 300,
        cache_write_tokens: 100,
        input_audio_tokens: 200,
        cache_audio_read_tokens: 50,
        output_tokens: 500,
        output_audio_tokens: 100,
        reasoning_tokens: 200,
        requests: 1,
    };
    let times = [
        utc(2024, 1, 1, 0, 0, 0),
        utc(2026, 8, 21, 3, 0, 0),
        utc(2026, 8, 21, 20, 0, 0),
        utc(2030, 1, 1, 0, 0, 0),
    ];
    let mut models = 0;
    let mut priced_above_zero = 0;
    for m in c.models() {
        models += 1;
        for at in times {
            let q = m
                .quote(&usage, at)
                .unwrap_or_else(|e| panic!("{}/{}: {e}", m.provider_id(), m.model_id()));
            let p = q.parts;
            let input_units = p.uncached_input.units
                + p.cache_read.units
                + p.cache_write.units
                + p.input_audio.units
                + p.cache_audio_read.units;
            assert_eq!(
                input_units,
                1_000,
                "{}: input parts are disjoint",
                m.model_id()
            );
            assert_eq!(p.output.units + p.output_audio.units, 500);
            assert!(q.total_nanos >= 0);
            assert_eq!(q.currency, Currency::USD);
            if at == times[1] && q.total_nanos > 0 {
                priced_above_zero += 1;
            }
        }
    }
    assert!(
        models > 1_200,
        "snapshot has 1,285 model entries, saw {models}"
    );
    assert!(
        priced_above_zero * 10 > models * 9,
        "most models have prices: {priced_above_zero}/{models}"
    );
}

#[test]
fn ten_token_embedding_costs_200_nano_usd() {
    // OpenAI embeddings reference: `usage` has prompt_tokens and total_tokens.
    let body = json!({
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.0023064255, -0.009327292]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 10, "total_tokens": 10}
    });
    let (usage, q) = price_body(
        catalogue(),
        "openai",
        Some("embeddings"),
        &body,
        None,
        snapshot_day(),
    );
    assert_eq!(usage.input_tokens, 10);
    // 10 × $0.02/M = $0.0000002.
    assert_eq!(q.total_nanos, 200);
    assert_eq!(q.currency, Currency::USD);
    assert_eq!(q.model.model_id(), "text-embedding-3-small");
}

#[test]
fn anthropic_messages_input_counts_cache_reads_and_writes() {
    // Messages API reference: input_tokens excludes the cache parts.
    let body = json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {
            "input_tokens": 2095,
            "cache_creation_input_tokens": 1024,
            "cache_read_input_tokens": 10000,
            "cache_creation": {"ephemeral_5m_input_tokens": 1024, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 503,
            "service_tier": "standard"
        }
    });
    let (usage, q) = price_body(catalogue(), "anthropic", None, &body, None, snapshot_day());
    assert_eq!(
        usage.input_tokens,
        2095 + 1024 + 10000,
        "ours counts every input token"
    );
    assert_eq!(
        (
            usage.cache_read_tokens,
            usage.cache_write_tokens,
            usage.output_tokens
        ),
        (10000, 1024, 503)
    );
    assert_eq!(q.model.model_id(), "claude-sonnet-4-5");
    // $3 / $3.75 write / $0.30 read / $15 out per M.
    assert_eq!(q.parts.uncached_input, part(2095, 6_285_000)); // 2095 × 3
    assert_eq!(q.parts.cache_write, part(1024, 3_840_000)); // 1024 × 3.75
    assert_eq!(q.parts.cache_read, part(10000, 3_000_000)); // 10000 × 0.3
    assert_eq!(q.parts.output, part(503, 7_545_000)); // 503 × 15
    assert_eq!(q.total_nanos, 20_670_000);
}

#[test]
fn anthropic_long_context_tier_counts_cached_tokens_too() {
    // 150,000 fresh + 60,000 cached = 210,000 input tokens > 200K: every
    // token pays the long-context rate. Anthropic's own `input_tokens`
    // (150,000) alone would wrongly stay below the tier.
    let body = json!({
        "id": "msg_long", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [], "stop_reason": "end_turn",
        "usage": {"input_tokens": 150000, "cache_read_input_tokens": 60000, "cache_creation_input_tokens": 0, "output_tokens": 1000}
    });
    let (_, q) = price_body(catalogue(), "anthropic", None, &body, None, snapshot_day());
    assert_eq!(q.parts.uncached_input.nanos, 900_000_000); // 150,000 × $6
    assert_eq!(q.parts.cache_read.nanos, 36_000_000); // 60,000 × $0.60
    assert_eq!(q.parts.output.nanos, 22_500_000); // 1,000 × $22.50
    assert_eq!(q.total_nanos, 958_500_000);
}

#[test]
fn cliff_tier_switches_just_after_the_start() {
    // gemini-2.5-pro: $1.25 in / $10 out, above 200K input $2.50 / $15.
    let c = catalogue();
    let at = snapshot_day();
    let usage = |input| CatalogueUsage {
        input_tokens: input,
        output_tokens: 1_000,
        ..CatalogueUsage::default()
    };
    let at_start = c
        .price(Some("google"), "gemini-2.5-pro", &usage(200_000), at)
        .expect("priced");
    assert_eq!(at_start.parts.uncached_input.nanos, 250_000_000); // 200,000 × 1.25
    assert_eq!(at_start.parts.output.nanos, 10_000_000); // 1,000 × 10
    let past = c
        .price(Some("google"), "gemini-2.5-pro", &usage(200_001), at)
        .expect("priced");
    assert_eq!(past.parts.uncached_input.nanos, 500_002_500); // 200,001 × 2.5, all tokens
    assert_eq!(past.parts.output.nanos, 15_000_000); // 1,000 × 15
}

#[test]
fn openai_chat_cache_reasoning_and_price_history() {
    // Chat Completions reference: prompt_tokens includes cached_tokens;
    // completion_tokens includes reasoning_tokens.
    let body = json!({
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "o3-2025-04-16",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "…", "refusal": null, "annotations": []}, "logprobs": null, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 1200,
            "completion_tokens": 900,
            "total_tokens": 2100,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 640, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        },
        "service_tier": "default"
    });
    let c = catalogue();
    let (usage, now) = price_body(c, "openai", Some("chat"), &body, None, snapshot_day());
    assert_eq!(
        (usage.input_tokens, usage.cache_read_tokens),
        (1200, 1024),
        "cached stay inside input"
    );
    assert_eq!((usage.output_tokens, usage.reasoning_tokens), (900, 640));
    // Since 2025-06-10: $2 in, $0.50 cached, $8 out.
    assert_eq!(now.parts.uncached_input, part(176, 352_000));
    assert_eq!(now.parts.cache_read, part(1024, 512_000));
    assert_eq!(now.parts.output, part(900, 7_200_000));
    assert_eq!(now.total_nanos, 8_064_000);
    // Before: $10 in, $0.50 cached, $40 out.
    let (_, before) = price_body(
        c,
        "openai",
        Some("chat"),
        &body,
        None,
        utc(2025, 6, 9, 23, 59, 59),
    );
    assert_eq!(before.total_nanos, 1_760_000 + 512_000 + 36_000_000);
    let (_, first_day) = price_body(
        c,
        "openai",
        Some("chat"),
        &body,
        None,
        utc(2025, 6, 10, 0, 0, 0),
    );
    assert_eq!(first_day.total_nanos, 8_064_000, "start_date is inclusive");
}

#[test]
fn openai_chat_audio_tokens_have_their_own_rates() {
    // gpt-audio: $2.50 text in, $32 audio in, $10 text out, $64 audio out.
    let body = json!({
        "id": "chatcmpl-audio", "object": "chat.completion", "created": 1756339200, "model": "gpt-audio-2025-08-28",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
            "audio": {"id": "audio_abc", "data": "UklGR…", "expires_at": 1756342800, "transcript": "Hi"}}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 320, "completion_tokens": 1500, "total_tokens": 1820,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 300},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 1400, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        }
    });
    let (usage, q) = price_body(
        catalogue(),
        "openai",
        Some("chat"),
        &body,
        None,
        snapshot_day(),
    );
    assert_eq!(
        (usage.input_audio_tokens, usage.output_audio_tokens),
        (300, 1400)
    );
    assert_eq!(q.parts.uncached_input, part(20, 50_000)); // 20 × 2.5
    assert_eq!(q.parts.input_audio, part(300, 9_600_000)); // 300 × 32
    assert_eq!(q.parts.output, part(100, 1_000_000)); // 100 × 10
    assert_eq!(q.parts.output_audio, part(1400, 89_600_000)); // 1400 × 64
    assert_eq!(q.total_nanos, 100_250_000);
}

#[test]
fn openai_responses_cache_and_reasoning() {
    let body = json!({
        "id": "resp_67ccd3a9da748190baa7f1570fe91ac6",
        "object": "response",
        "created_at": 1741476777,
        "status": "completed",
        "model": "gpt-5-2025-08-07",
        "output": [{"type": "reasoning", "id": "rs_1", "summary": []},
                   {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "…", "annotations": []}]}],
        "usage": {
            "input_tokens": 5000,
            "input_tokens_details": {"cached_tokens": 4096},
            "output_tokens": 1500,
            "output_tokens_details": {"reasoning_tokens": 1024},
            "total_tokens": 6500
        }
    });
    let (usage, q) = price_body(
        catalogue(),
        "openai",
        Some("responses"),
        &body,
        None,
        snapshot_day(),
    );
    assert_eq!(usage.reasoning_tokens, 1024);
    assert_eq!(q.model.model_id(), "gpt-5");
    // $1.25 in, $0.125 cached, $10 out.
    assert_eq!(q.parts.uncached_input, part(904, 1_130_000));
    assert_eq!(q.parts.cache_read, part(4096, 512_000));
    assert_eq!(q.parts.output, part(1500, 15_000_000));
    assert_eq!(q.total_nanos, 16_642_000);
}

#[test]
fn gemini_generate_content_audio_cache_and_thoughts() {
    // generateContent reference: promptTokenCount includes cached content;
    // candidatesTokenCount excludes thoughtsTokenCount; per-modality details.
    let body = json!({
        "candidates": [{"content": {"parts": [{"text": "…"}], "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {
            "promptTokenCount": 12000,
            "candidatesTokenCount": 800,
            "totalTokenCount": 14000,
            "cachedContentTokenCount": 8000,
            "thoughtsTokenCount": 1200,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 9000}, {"modality": "AUDIO", "tokenCount": 3000}],
            "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 6000}, {"modality": "AUDIO", "tokenCount": 2000}],
            "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 800}]
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "mAitaLmkHPPlz7IPvtfUqQ4"
    });
    let (usage, q) = price_body(catalogue(), "google", None, &body, None, snapshot_day());
    assert_eq!(usage.input_tokens, 12000);
    assert_eq!(
        (
            usage.cache_read_tokens,
            usage.cache_audio_read_tokens,
            usage.input_audio_tokens
        ),
        (8000, 2000, 3000)
    );
    assert_eq!(
        (usage.output_tokens, usage.reasoning_tokens),
        (2000, 1200),
        "thoughts are billed as output"
    );
    // gemini-2.5-flash: $0.30 text, $0.03 cached text, $1 audio, $0.10 cached audio, $2.50 out.
    assert_eq!(q.parts.uncached_input, part(3000, 900_000));
    assert_eq!(q.parts.cache_read, part(6000, 180_000));
    assert_eq!(q.parts.input_audio, part(1000, 1_000_000));
    assert_eq!(q.parts.cache_audio_read, part(2000, 200_000));
    assert_eq!(q.parts.output, part(2000, 5_000_000));
    assert_eq!(q.total_nanos, 7_280_000);
}

#[test]
fn bedrock_converse_has_no_model_field() {
    // Converse reference: usage in camelCase, inputTokens excludes cache parts.
    let body = json!({
        "output": {"message": {"role": "assistant", "content": [{"text": "…"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 1500, "outputTokens": 300, "totalTokens": 5300,
                  "cacheReadInputTokens": 3000, "cacheWriteInputTokens": 500},
        "metrics": {"latencyMs": 1175}
    });
    let c = catalogue();
    let extracted = c.extract("aws", None, &body).expect("extracts");
    assert_eq!(extracted.model, None);
    let (usage, q) = price_body(
        c,
        "https://bedrock-runtime.us-east-1.amazonaws.com",
        None,
        &body,
        Some("us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        snapshot_day(),
    );
    assert_eq!(usage.input_tokens, 5000);
    // Regional endpoint: $3.30 in, $4.125 write, $0.33 read, $16.50 out.
    assert_eq!(
        q.model.model_id(),
        "regional.anthropic.claude-sonnet-4-5-20250929-v1:0"
    );
    assert_eq!(q.parts.uncached_input, part(1500, 4_950_000));
    assert_eq!(q.parts.cache_read, part(3000, 990_000));
    assert_eq!(q.parts.cache_write, part(500, 2_062_500));
    assert_eq!(q.parts.output, part(300, 4_950_000));
    assert_eq!(q.total_nanos, 12_952_500);
}

#[test]
fn mistral_chat_with_cached_prompt() {
    let body = json!({
        "id": "cmpl-e5cc70bb28c444948073e77776eb30ef",
        "object": "chat.completion",
        "model": "mistral-small-2603",
        "created": 1756200000,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "…", "tool_calls": null}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2000, "completion_tokens": 400, "total_tokens": 2400,
                  "prompt_tokens_details": {"cached_tokens": 1500}}
    });
    let (_, q) = price_body(catalogue(), "mistral", None, &body, None, snapshot_day());
    // $0.15 in, $0.015 cached, $0.60 out.
    assert_eq!(q.parts.uncached_input, part(500, 75_000));
    assert_eq!(q.parts.cache_read, part(1500, 22_500));
    assert_eq!(q.parts.output, part(400, 240_000));
    assert_eq!(q.total_nanos, 337_500);
}

#[test]
fn groq_chat_found_by_base_url() {
    let body = json!({
        "id": "chatcmpl-f51b2cd2-bef7-417e-964e-a08f0b513c22",
        "object": "chat.completion",
        "created": 1730241104,
        "model": "openai/gpt-oss-120b",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "…", "reasoning": "…"}, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"queue_time": 0.037, "prompt_tokens": 1800, "prompt_time": 0.000680, "completion_tokens": 700,
                  "completion_time": 0.463, "total_tokens": 2500, "total_time": 0.464,
                  "prompt_tokens_details": {"cached_tokens": 1024},
                  "completion_tokens_details": {"reasoning_tokens": 450}},
        "system_fingerprint": "fp_179b0f92c9",
        "x_groq": {"id": "req_01jbd6g2qdfw2adyrt2az8hz4w"}
    });
    let (usage, q) = price_body(
        catalogue(),
        "https://api.groq.com/openai/v1",
        None,
        &body,
        None,
        snapshot_day(),
    );
    assert_eq!(usage.reasoning_tokens, 450);
    assert_eq!(q.model.provider_id(), "groq");
    // $0.15 in, $0.075 cached, $0.60 out.
    assert_eq!(q.parts.uncached_input, part(776, 116_400));
    assert_eq!(q.parts.cache_read, part(1024, 76_800));
    assert_eq!(q.parts.output, part(700, 420_000));
    assert_eq!(q.total_nanos, 613_200);
}

#[test]
fn openrouter_cache_reads_and_writes() {
    let body = json!({
        "id": "gen-1756300000-abc",
        "provider": "Anthropic",
        "model": "anthropic/claude-sonnet-4.5",
        "object": "chat.completion",
        "created": 1756300000,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "…"}}],
        "usage": {"prompt_tokens": 12000, "completion_tokens": 800, "total_tokens": 12800, "cost": 0.022125,
                  "prompt_tokens_details": {"cached_tokens": 10000, "cache_write_tokens": 1500, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 300}}
    });
    let (usage, q) = price_body(
        catalogue(),
        "https://openrouter.ai/api/v1",
        None,
        &body,
        None,
        snapshot_day(),
    );
    assert_eq!(usage.reasoning_tokens, 300);
    // $3 in, $0.30 read, $3.75 write, $15 out.
    assert_eq!(q.parts.uncached_input, part(500, 1_500_000));
    assert_eq!(q.parts.cache_read, part(10000, 3_000_000));
    assert_eq!(q.parts.cache_write, part(1500, 5_625_000));
    assert_eq!(q.parts.output, part(800, 12_000_000));
    assert_eq!(q.total_nanos, 22_125_000, "matches OpenRouter's own `cost`");
}

#[test]
fn dashscope_compatible_mode_reads_like_openai_chat() {
    // DashScope's OpenAI-compatible endpoint returns the chat.completion shape.
    // The snapshot has no DashScope provider: the body is read with OpenAI's
    // chat extractor, and `qwen-plus` is left to the built-in CNY table.
    let body = json!({
        "id": "chatcmpl-0da38de9-5d2f-9a4d-ab2e-8c4e5c0e6c45",
        "object": "chat.completion",
        "created": 1756280000,
        "model": "qwen-plus",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "…"}, "finish_reason": "stop", "logprobs": null}],
        "usage": {"prompt_tokens": 3019, "completion_tokens": 104, "total_tokens": 3123,
                  "prompt_tokens_details": {"cached_tokens": 2048}},
        "system_fingerprint": null
    });
    let c = catalogue();
    let extracted = c
        .extract("openai", Some("chat"), &body)
        .expect("OpenAI shape");
    assert_eq!(extracted.model.as_deref(), Some("qwen-plus"));
    assert_eq!(
        (
            extracted.usage.input_tokens,
            extracted.usage.cache_read_tokens,
            extracted.usage.output_tokens
        ),
        (3019, 2048, 104)
    );
    assert!(c
        .lookup(
            Some("https://dashscope.aliyuncs.com/compatible-mode/v1"),
            "qwen-plus"
        )
        .is_none());
    // The same model through OpenRouter is in the catalogue: $0.40 in, $0.16 cached, $1.20 out.
    let q = c
        .price(
            Some("openrouter"),
            "qwen/qwen-plus",
            &extracted.usage,
            snapshot_day(),
        )
        .expect("priced");
    assert_eq!(q.parts.uncached_input, part(971, 388_400));
    assert_eq!(q.parts.cache_read, part(2048, 327_680));
    assert_eq!(q.parts.output, part(104, 124_800));
    assert_eq!(q.total_nanos, 840_880);
}

#[test]
fn deepseek_off_peak_window_in_utc() {
    let body = json!({
        "id": "930c60df-bf64-41c9-a88e-3ec75f81e00e",
        "object": "chat.completion",
        "created": 1756300000,
        "model": "deepseek-chat",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "…"}, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10000, "completion_tokens": 2000, "total_tokens": 12000,
                  "prompt_tokens_details": {"cached_tokens": 6000},
                  "prompt_cache_hit_tokens": 6000, "prompt_cache_miss_tokens": 4000},
        "system_fingerprint": "fp_3a5770e1b4"
    });
    let c = catalogue();
    let cost_at = |h, m, s| {
        price_body(c, "deepseek", None, &body, None, utc(2026, 8, 21, h, m, s))
            .1
            .total_nanos
    };
    // Standard 00:30–16:30 UTC: $0.27 in, $0.07 cached, $1.10 out.
    let standard = 1_080_000 + 420_000 + 2_200_000;
    // Off-peak: $0.135, $0.035, $0.55.
    let off_peak = 540_000 + 210_000 + 1_100_000;
    assert_eq!(cost_at(12, 0, 0), standard);
    assert_eq!(cost_at(0, 30, 0), standard, "window start is inclusive");
    assert_eq!(cost_at(16, 29, 59), standard);
    assert_eq!(cost_at(16, 30, 0), off_peak, "window end is exclusive");
    assert_eq!(cost_at(0, 29, 59), off_peak);
    assert_eq!(cost_at(20, 0, 0), off_peak);
}

#[test]
fn per_request_fee_and_providers_without_extractors() {
    let c = catalogue();
    let usage = CatalogueUsage {
        input_tokens: 100,
        output_tokens: 200,
        ..CatalogueUsage::default()
    };
    // Perplexity sonar: $1 in, $1 out, $12 per thousand requests.
    let q = c
        .price(Some("perplexity"), "sonar", &usage, snapshot_day())
        .expect("priced");
    assert_eq!(q.parts.requests, part(1, 12_000_000));
    assert_eq!(q.total_nanos, 100_000 + 200_000 + 12_000_000);
    let err = c
        .extract("perplexity", None, &json!({"usage": {}}))
        .expect_err("no extractors");
    assert_eq!(err, ExtractError::NoExtractors("perplexity".to_owned()));
}

#[test]
fn start_date_changes_future_prices() {
    // claude-sonnet-5: $2/$10 until 2026-08-31, $3/$15 from 2026-09-01.
    let c = catalogue();
    let usage = CatalogueUsage {
        input_tokens: 1_000_000,
        output_tokens: 100_000,
        ..CatalogueUsage::default()
    };
    let before = c
        .price(
            None,
            "claude-sonnet-5",
            &usage,
            utc(2026, 8, 31, 23, 59, 59),
        )
        .expect("priced");
    let after = c
        .price(None, "claude-sonnet-5", &usage, utc(2026, 9, 1, 0, 0, 0))
        .expect("priced");
    assert_eq!(before.total_nanos, 2_000_000_000 + 1_000_000_000);
    assert_eq!(after.total_nanos, 3_000_000_000 + 1_500_000_000);
}

#[test]
fn flavour_selection_and_errors() {
    let c = catalogue();
    let body = json!({"model": "gpt-4o", "usage": {"prompt_tokens": 1, "completion_tokens": 1}});
    assert!(matches!(
        c.extract("openai", None, &body),
        Err(ExtractError::AmbiguousFlavour { .. })
    ));
    let err = c
        .extract("openai", Some("completions"), &body)
        .expect_err("no such flavour");
    assert_eq!(
        err.to_string(),
        "provider \"openai\" has no API flavour \"completions\"; it has: chat, responses, embeddings"
    );
    assert!(matches!(
        c.extract("nobody", None, &body),
        Err(ExtractError::UnknownProvider(_))
    ));
    // A Responses body read as chat misses its required fields.
    let responses = json!({"model": "gpt-5", "usage": {"input_tokens": 1, "output_tokens": 1}});
    assert_eq!(
        c.extract("openai", Some("chat"), &responses)
            .expect_err("wrong flavour")
            .to_string(),
        "missing value at `usage.prompt_tokens`"
    );
}

#[test]
fn unknown_models_and_inconsistent_usage_are_errors() {
    let c = catalogue();
    let usage = CatalogueUsage {
        input_tokens: 10,
        cache_read_tokens: 20,
        ..CatalogueUsage::default()
    };
    assert!(c.price(None, "gpt-4o", &usage, snapshot_day()).is_err());
    let fine = CatalogueUsage {
        input_tokens: 10,
        ..CatalogueUsage::default()
    };
    let err = c
        .price(None, "no-such-model-x", &fine, snapshot_day())
        .expect_err("unknown");
    assert!(err.to_string().contains("no-such-model-x"), "{err}");
}

/// A record made from an Anthropic body keeps its cache writes apart, is
/// priced at the cache-write rate, carries its provider, and round-trips
/// through the day file and the records CSV; a line without the new fields
/// loads with zeros.
#[test]
fn recorded_body_keeps_cache_writes_and_provider() {
    use ai_usage_core::dayfile::{parse_record, read_day_file};
    use ai_usage_core::{Money, UsageEvent, UsageRecord, UsageSource};

    let (dir, m, ts) = crate::common::setup();
    // Anthropic Messages: input_tokens excludes cache reads and writes.
    let body = json!({"id": "msg_1", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5", "content": [], "usage": {"input_tokens": 1000,
        "cache_creation_input_tokens": 2000, "cache_read_input_tokens": 4000,
        "output_tokens": 200}});
    let usage = body.token_usage().expect("usage");
    assert_eq!(
        (
            usage.input_tokens,
            usage.cached_input_tokens,
            usage.cache_write_tokens
        ),
        (7000, 4000, 2000)
    );
    let model = body.response_model().expect("model");
    let rec = m.record(
        &UsageEvent::new(model, "问答")
            .usage(usage)
            .provider("anthropic")
            .at(ts),
    );
    // $3 × 1000 + $3.75 × 2000 + $0.30 × 4000 + $15 × 200, per M tokens:
    // 3,000 + 7,500 + 1,200 + 3,000 = 14,700 micro-USD.
    assert_eq!(rec.currency, Some(Currency::USD));
    assert_eq!(rec.cost, Money::from_micros(14_700));
    assert_eq!(rec.cache_write_tokens, 2000);
    assert_eq!(rec.provider.as_deref(), Some("anthropic"));
    // Without the split, the cache writes would be priced as plain input.
    let plain = m.record(
        &UsageEvent::new(model, "问答")
            .usage(ai_usage_core::TokenUsage {
                cache_write_tokens: 0,
                ..usage
            })
            .at(ts),
    );
    assert_eq!(plain.cost, Money::from_micros(13_200));
    m.flush().expect("flush");

    let mut stored: Vec<UsageRecord> = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            read_day_file(&path, |r| stored.push(r)).expect("reads");
        }
    }
    let first = stored
        .iter()
        .find(|r| r.provider.is_some())
        .expect("stored with provider");
    assert_eq!(first, &rec);

    let old = br#"{"timestamp": 1761403494.6, "model": "qwen-plus", "function": "f", "input_tokens": 3, "output_tokens": 4, "total_tokens": 7, "cost": 0.5, "duration_ms": 1.0, "success": true, "error_msg": null}"#;
    let old = parse_record(old).expect("an old line loads");
    assert_eq!(
        (old.cache_write_tokens, old.input_audio_tokens, old.provider),
        (0, 0, None)
    );

    let out = dir.path().join("records.csv");
    m.export_records_csv(Some(&out), m.today(), m.today(), false)
        .expect("export");
    let text = std::fs::read_to_string(&out).expect("csv");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().expect("header").clone();
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let row = rows
        .iter()
        .find(|r| &r[col("provider")] == "anthropic")
        .expect("row with provider");
    assert_eq!(&row[col("cache_write_tokens")], "2000");
    assert_eq!(
        row[col("cost")].parse::<Money>(),
        Ok(Money::from_micros(14_700))
    );
}
