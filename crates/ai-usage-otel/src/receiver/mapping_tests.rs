use super::*;
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::trace::v1::Status;

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..KeyValue::default()
    }
}

fn s(key: &str, v: &str) -> KeyValue {
    kv(key, Value::StringValue(v.into()))
}

fn i(key: &str, v: i64) -> KeyValue {
    kv(key, Value::IntValue(v))
}

const START: u64 = 1_780_000_000_123_456_789;

fn span(attrs: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![0xab; 16],
        span_id: vec![0xcd; 8],
        name: "chat gpt-4o".into(),
        start_time_unix_nano: START,
        end_time_unix_nano: START + 1_500_000_000,
        attributes: attrs,
        ..Span::default()
    }
}

fn call(resource: &[KeyValue], sp: &Span) -> UsageInput {
    match map_span(resource, sp) {
        SpanKind::Call(input) => *input,
        other => panic!("expected a call, got {other:?}"),
    }
}

#[test]
fn current_names_map_to_every_field() {
    let sp = span(vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.provider.name", "openai"),
        s("gen_ai.request.model", "gpt-4o"),
        s("gen_ai.response.model", "gpt-4o-2024-08-06"),
        i("gen_ai.usage.input_tokens", 1000),
        i("gen_ai.usage.output_tokens", 200),
        i("gen_ai.usage.cache_read.input_tokens", 300),
        i("gen_ai.usage.cache_creation.input_tokens", 50),
        i("gen_ai.usage.reasoning.output_tokens", 80),
        s("gen_ai.response.id", "chatcmpl-1"),
        s("user.id", "u1"),
        s("session.id", "live-9"),
        s("ai_usage.anchor_id", "anchor-7"),
        s("ai_usage.function", "弹幕回复"),
    ]);
    let resource = [s("service.name", "svc")];
    let input = call(&resource, &sp);
    assert_eq!(
        input.model.as_deref(),
        Some("gpt-4o-2024-08-06"),
        "response model first"
    );
    assert_eq!(input.provider.as_deref(), Some("openai"));
    assert_eq!(input.input_tokens, Some(TokenCount(1000)));
    assert_eq!(input.output_tokens, Some(TokenCount(200)));
    assert_eq!(input.cached_input_tokens, Some(TokenCount(300)));
    assert_eq!(input.cache_write_tokens, Some(TokenCount(50)));
    assert_eq!(input.reasoning_tokens, Some(TokenCount(80)));
    assert_eq!(input.request_id.as_deref(), Some("chatcmpl-1"));
    assert_eq!(input.user_id.as_deref(), Some("u1"));
    assert_eq!(input.session_id.as_deref(), Some("live-9"));
    assert_eq!(input.anchor_id.as_deref(), Some("anchor-7"));
    assert_eq!(
        input.function.as_deref(),
        Some("弹幕回复"),
        "the span's own function wins"
    );
    assert_eq!(input.duration_ms, Some(1500.0));
    assert_eq!(input.success, Some(true));
    assert_eq!(input.error_msg, None);
    assert_eq!(input.cost, None, "priced by us");
    let t = input.timestamp.expect("timestamp");
    assert!((t - 1_780_000_000.123_457).abs() < 1e-5, "{t}");
    assert_eq!(
        input.tags,
        Some(vec![format!(
            "{SPAN_TAG_PREFIX}{}/{}",
            "ab".repeat(16),
            "cd".repeat(8)
        )])
    );
}

#[test]
fn deprecated_names_are_read() {
    let sp = span(vec![
        s("gen_ai.system", "anthropic"),
        s("gen_ai.request.model", "claude-sonnet-4-5"),
        i("gen_ai.usage.prompt_tokens", 10),
        i("gen_ai.usage.completion_tokens", 20),
        i("gen_ai.usage.cache_write.input_tokens", 4),
        s("enduser.id", "e1"),
        s("gen_ai.conversation.id", "conv-1"),
    ]);
    let input = call(&[], &sp);
    assert_eq!(input.model.as_deref(), Some("claude-sonnet-4-5"));
    assert_eq!(input.provider.as_deref(), Some("anthropic"));
    assert_eq!(input.input_tokens, Some(TokenCount(10)));
    assert_eq!(input.output_tokens, Some(TokenCount(20)));
    assert_eq!(input.cache_write_tokens, Some(TokenCount(4)));
    assert_eq!(input.user_id.as_deref(), Some("e1"));
    assert_eq!(input.session_id.as_deref(), Some("conv-1"));
    assert_eq!(input.function.as_deref(), Some(UNKNOWN_FUNCTION));
}

#[test]
fn function_falls_back_to_the_resource() {
    let sp = span(vec![
        s("gen_ai.operation.name", "embeddings"),
        s("gen_ai.request.model", "text-embedding-3-small"),
    ]);
    let with_fn = [s("service.name", "svc"), s("ai_usage.function", "search")];
    assert_eq!(call(&with_fn, &sp).function.as_deref(), Some("search"));
    let svc = [s("service.name", "svc")];
    assert_eq!(call(&svc, &sp).function.as_deref(), Some("svc"));
}

#[test]
fn a_non_chat_operation_is_kept_as_a_tag() {
    let op_tags = |op: &str| {
        let sp = span(vec![
            s("gen_ai.operation.name", op),
            s("gen_ai.request.model", "m"),
        ]);
        let tags = call(&[], &sp).tags.unwrap_or_default();
        let kept: Vec<String> = tags
            .iter()
            .filter(|t| t.starts_with(crate::OPERATION_TAG_PREFIX))
            .cloned()
            .collect();
        (kept, crate::record_operation(&tags).to_owned())
    };
    assert_eq!(
        op_tags("embeddings"),
        (
            vec!["gen_ai.operation.name:embeddings".to_owned()],
            "embeddings".to_owned()
        )
    );
    // Chat, the default, adds no bytes to the record.
    assert_eq!(op_tags("chat"), (vec![], "chat".to_owned()));
    assert_eq!(crate::record_operation(&[]), "chat");
}

#[test]
fn which_spans_are_calls() {
    let http = span(vec![s("http.request.method", "POST")]);
    assert_eq!(map_span(&[], &http), SpanKind::NotACall);
    let tool = span(vec![s("gen_ai.operation.name", "execute_tool")]);
    assert_eq!(map_span(&[], &tool), SpanKind::NotACall);
    let agent = span(vec![
        s("gen_ai.operation.name", "invoke_agent"),
        s("gen_ai.request.model", "gpt-4o"),
        i("gen_ai.usage.input_tokens", 5),
    ]);
    assert_eq!(
        map_span(&[], &agent),
        SpanKind::NotACall,
        "its calls are spans of their own"
    );
    // Usage alone makes a call (libraries that set no operation name).
    let usage_only = span(vec![
        s("gen_ai.request.model", "qwen-plus"),
        i("gen_ai.usage.input_tokens", 5),
    ]);
    assert!(matches!(map_span(&[], &usage_only), SpanKind::Call(_)));
    for op in ["chat", "text_completion", "generate_content", "embeddings"] {
        let sp = span(vec![
            s("gen_ai.operation.name", op),
            s("gen_ai.request.model", "m"),
        ]);
        assert!(matches!(map_span(&[], &sp), SpanKind::Call(_)), "{op}");
    }
}

#[test]
fn bad_spans_are_rejected_with_the_reason() {
    let no_model = span(vec![s("gen_ai.operation.name", "chat")]);
    let SpanKind::Rejected(why) = map_span(&[], &no_model) else {
        panic!("no model must be rejected")
    };
    assert!(why.contains("gen_ai.request.model"), "{why}");
    let negative = span(vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.request.model", "m"),
        i("gen_ai.usage.input_tokens", -3),
    ]);
    let SpanKind::Rejected(why) = map_span(&[], &negative) else {
        panic!("a negative count must be rejected")
    };
    assert!(why.starts_with("gen_ai.usage.input_tokens"), "{why}");
    let fraction = span(vec![
        s("gen_ai.request.model", "m"),
        kv("gen_ai.usage.output_tokens", Value::DoubleValue(2.5)),
    ]);
    assert!(matches!(map_span(&[], &fraction), SpanKind::Rejected(_)));
    let mut backwards = span(vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.request.model", "m"),
    ]);
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
    assert!(matches!(map_span(&[], &backwards), SpanKind::Rejected(_)));
}

#[test]
fn failures_and_costs() {
    let mut sp = span(vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.request.model", "m"),
        s("error.type", "RateLimitError"),
        kv("gen_ai.usage.cost.amount", Value::DoubleValue(0.0125)),
        s("gen_ai.usage.cost.currency", "eur"),
    ]);
    sp.status = Some(Status {
        message: "429 Too Many Requests".into(),
        code: StatusCode::Error as i32,
    });
    let input = call(&[], &sp);
    assert_eq!(input.success, Some(false));
    assert_eq!(input.error_msg.as_deref(), Some("RateLimitError"));
    assert_eq!(input.cost, Some(0.0125));
    assert_eq!(input.currency.as_deref(), Some("EUR"));

    // The status message when no error.type; the older cost name in USD.
    let mut sp = span(vec![
        s("gen_ai.request.model", "m"),
        i("gen_ai.usage.input_tokens", 1),
        kv("gen_ai.usage.cost", Value::DoubleValue(0.5)),
    ]);
    sp.status = Some(Status {
        message: "boom".into(),
        code: StatusCode::Error as i32,
    });
    let input = call(&[], &sp);
    assert_eq!(input.error_msg.as_deref(), Some("boom"));
    assert_eq!(input.currency.as_deref(), Some(DEFAULT_COST_CURRENCY));
    // An OK status is a success.
    sp.status = Some(Status {
        message: String::new(),
        code: StatusCode::Ok as i32,
    });
    assert_eq!(call(&[], &sp).success, Some(true));
}

#[test]
fn token_counts_as_strings_and_doubles() {
    let sp = span(vec![
        s("gen_ai.request.model", "m"),
        s("gen_ai.usage.input_tokens", "42"),
        kv("gen_ai.usage.output_tokens", Value::DoubleValue(7.0)),
    ]);
    let input = call(&[], &sp);
    assert_eq!(input.input_tokens, Some(TokenCount(42)));
    assert_eq!(input.output_tokens, Some(TokenCount(7)));
}

#[test]
fn a_span_marked_as_recorded_by_the_attribute_is_not_a_second_call() {
    let attrs = || {
        vec![
            s("gen_ai.operation.name", "chat"),
            s("gen_ai.request.model", "qwen-plus"),
            i("gen_ai.usage.input_tokens", 10),
            i("gen_ai.usage.output_tokens", 5),
        ]
    };
    let mut marked = attrs();
    marked.push(kv(RECORDED_MARK, Value::BoolValue(true)));
    assert_eq!(map_span(&[], &span(marked)), SpanKind::NotACall);
    // Only a true mark counts: false (or no mark) is an ordinary call.
    let mut unmarked = attrs();
    unmarked.push(kv(RECORDED_MARK, Value::BoolValue(false)));
    assert_eq!(
        call(&[], &span(unmarked)).model.as_deref(),
        Some("qwen-plus")
    );
    assert_eq!(
        call(&[], &span(attrs())).model.as_deref(),
        Some("qwen-plus")
    );
}
