//! Unit tests of the HTTP door's reading of bodies.
use super::*;
use serde_json::json;

fn detail(e: ApiError) -> String {
    e.to_string()
}

/// The default window around a fixed clock (2001-09-09).
fn window() -> TimeWindow {
    TimeWindow::around(1e9, ai_usage_core::intake::DEFAULT_PAST_DAYS)
}

const MAX_TOKENS: u64 = ai_usage_core::MAX_TOKENS_PER_CALL;
const MAX_DURATION_MS: f64 = ai_usage_core::MAX_DURATION_MS;

#[test]
fn accepts_one_and_batches() {
    let one = parse_body(
        &json!({"model": "qwen-plus", "function": "f", "input_tokens": 10}),
        window(),
    )
    .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].usage.input_tokens, 10);
    assert!(one[0].success);
    let batch = parse_body(&json!([{"model": "m", "function": "f"}, {"model": "m", "function": "g", "success": false}]), window()).unwrap();
    assert_eq!(batch.len(), 2);
    assert!(!batch[1].success);
}

/// Each accepted key is read by `parse_one`, and is a field of the
/// stored record under the same name (`tags` included).
#[test]
fn accepted_keys_are_record_fields_and_all_read() {
    let record = serde_aux::serde_introspection::serde_introspect::<ai_usage_core::UsageRecord>();
    for key in ai_usage_core::intake::input_fields() {
        // `response` is read into the token fields, not stored.
        assert!(
            record.contains(key) || *key == "response",
            "{key} is not a UsageRecord field"
        );
        // A wrong type must be rejected naming the key: proof it is read.
        let mut body = json!({"model": "m", "function": "f"});
        body[*key] = json!({"not": "valid"});
        let e = detail(parse_body(&body, window()).unwrap_err());
        assert!(e.contains(key), "{key} is accepted but not validated: {e}");
    }
}

#[test]
fn cache_write_audio_and_provider_are_read_and_checked() {
    let ok = parse_body(
        &json!({"model": "m", "function": "f", "input_tokens": 100, "cached_input_tokens": 40,
                "cache_write_tokens": 30, "input_audio_tokens": 20, "output_tokens": 10,
                "output_audio_tokens": 4, "provider": "anthropic"}),
        window(),
    )
    .unwrap();
    let e = &ok[0];
    assert_eq!(
        (
            e.usage.cache_write_tokens,
            e.usage.input_audio_tokens,
            e.usage.output_audio_tokens
        ),
        (30, 20, 4)
    );
    assert_eq!(e.provider.as_deref(), Some("anthropic"));
    e.with_event(|ev| assert_eq!(ev.provider, Some("anthropic")));
    let cases = [
        (
            json!({"model": "m", "function": "f", "input_tokens": 100, "cached_input_tokens": 80, "cache_write_tokens": 30}),
            "cache_write_tokens",
        ),
        (
            json!({"model": "m", "function": "f", "output_tokens": 3, "output_audio_tokens": 4}),
            "output_audio_tokens",
        ),
        (
            json!({"model": "m", "function": "f", "input_tokens": 10, "input_audio_tokens": 5, "cached_audio_input_tokens": 6}),
            "cached_audio_input_tokens",
        ),
    ];
    for (body, field) in cases {
        let e = detail(parse_body(&body, window()).unwrap_err());
        assert!(e.contains(field), "{body}: {e}");
    }
}

#[test]
fn raw_responses_give_tokens_and_model() {
    // Anthropic Messages: input_tokens excludes cache reads and writes.
    let anthropic = json!({"id": "msg_1", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5", "content": [], "usage": {"input_tokens": 1000,
        "cache_creation_input_tokens": 2000, "cache_read_input_tokens": 4000, "output_tokens": 200}});
    let ev = parse_body(
        &json!({"function": "f", "provider": "anthropic", "response": anthropic}),
        window(),
    )
    .unwrap();
    let e = &ev[0];
    assert_eq!(e.model, "claude-sonnet-4-5");
    assert_eq!(
        (
            e.usage.input_tokens,
            e.usage.cached_input_tokens,
            e.usage.cache_write_tokens
        ),
        (7000, 4000, 2000)
    );
    // Bedrock Converse names no model: `model` is then required.
    let bedrock = json!({"output": {"message": {"role": "assistant", "content": []}},
        "usage": {"inputTokens": 30, "outputTokens": 10, "totalTokens": 40}});
    let e =
        detail(parse_body(&json!({"function": "f", "response": bedrock}), window()).unwrap_err());
    assert!(e.contains("model"), "{e}");
    let ok = parse_body(
        &json!({"model": "anthropic.claude-3-haiku", "function": "f", "response": bedrock}),
        window(),
    )
    .unwrap();
    assert_eq!(
        (ok[0].usage.input_tokens, ok[0].usage.output_tokens),
        (30, 10)
    );
    for (body, field) in [
        (
            json!({"model": "m", "function": "f", "response": "text"}),
            "response",
        ),
        (
            json!({"model": "m", "function": "f", "response": {"choices": []}}),
            "response",
        ),
        (
            json!({"model": "m", "function": "f", "input_tokens": 3, "response": anthropic}),
            "input_tokens",
        ),
    ] {
        let e = detail(parse_body(&body, window()).unwrap_err());
        assert!(e.contains(field), "{body}: {e}");
    }
}

#[test]
fn limits_name_the_field() {
    let cases = [
        (
            json!({"model": "m", "function": "f", "input_tokens": 18446744073709551615u64}),
            "input_tokens",
        ),
        (
            json!({"model": "m", "function": "f", "output_tokens": 1_000_000_000_001u64}),
            "output_tokens",
        ),
        (
            json!({"model": "m", "function": "f", "total_tokens": 1e13}),
            "total_tokens",
        ),
        (
            json!({"model": "m", "function": "f", "input_tokens": 5, "cached_input_tokens": 1e300}),
            "cached_input_tokens",
        ),
        (
            json!({"model": "m", "function": "f", "duration_ms": 1e306}),
            "duration_ms",
        ),
        (
            json!({"model": "m", "function": "f", "duration_ms": 1_000_000_001}),
            "duration_ms",
        ),
    ];
    for (body, field) in cases {
        let e = detail(parse_body(&body, window()).unwrap_err());
        assert!(e.contains(field), "{body}: {e}");
    }
    // The limits themselves are accepted.
    let ok = parse_body(
        &json!({"model": "m", "function": "f", "input_tokens": MAX_TOKENS, "duration_ms": MAX_DURATION_MS}),
        window(),
    )
    .unwrap();
    assert_eq!(ok[0].usage.input_tokens, MAX_TOKENS);
}

#[test]
fn rejections_name_field_and_index() {
    let e = detail(
        parse_body(
            &json!([{"model": "m", "function": "f"}, {"model": " ", "function": "f"}]),
            window(),
        )
        .unwrap_err(),
    );
    assert!(e.contains("model") && e.contains("record 1"), "{e}");
    let e = detail(
        parse_body(
            &json!({"model": "m", "function": "f", "output_tokens": -1}),
            window(),
        )
        .unwrap_err(),
    );
    assert!(e.contains("output_tokens") && e.contains("negative"), "{e}");
    let e = detail(
        parse_body(
            &json!({"model": "m", "function": "f", "duration_ms": -0.5}),
            window(),
        )
        .unwrap_err(),
    );
    assert!(e.contains("duration_ms"), "{e}");
    let e = detail(
        parse_body(
            &json!({"model": "m", "function": "f", "input_token": 3}),
            window(),
        )
        .unwrap_err(),
    );
    assert!(e.contains("input_token"), "{e}");
    let e = detail(parse_body(&json!({"model": "m"}), window()).unwrap_err());
    assert!(e.contains("function"), "{e}");
    let big: Vec<Value> = (0..=MAX_BATCH)
        .map(|_| json!({"model": "m", "function": "f"}))
        .collect();
    let e = detail(parse_body(&Value::Array(big), window()).unwrap_err());
    assert!(e.contains("records") && e.contains("1001"), "{e}");
    let e = detail(
        parse_body(
            &json!({"model": "m", "function": "f", "cost": 1.5, "currency": "yuan"}),
            window(),
        )
        .unwrap_err(),
    );
    assert!(e.contains("currency"), "{e}");
    let e = detail(
        parse_body(
            &json!({"model": "m", "function": "f", "timestamp": 2e9}),
            window(),
        )
        .unwrap_err(),
    );
    assert!(e.contains("timestamp"), "{e}");
}
