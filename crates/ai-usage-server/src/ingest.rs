//! `POST /api/ai_usage/record`: validation of records sent by services in
//! other languages, with the same rules as `record_ai_usage` but strict: a bad
//! value is rejected (422 naming the field and index), never sanitised.

use ai_usage_core::UsageEvent;
use ai_usage_core::{Currency, Money};
use ai_usage_core::{TokenUsage, UsageSource};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::ApiError;

/// Most records accepted in one batch.
pub const MAX_BATCH: usize = 1000;
/// Longest accepted id, model or function name (bytes).
pub const MAX_NAME_LEN: usize = 256;
/// Longest accepted error message (bytes).
pub const MAX_ERROR_LEN: usize = 4096;
/// Most tags per record.
pub const MAX_TAGS: usize = 32;
/// How far in the future a timestamp may be (clock skew), in seconds.
pub const MAX_FUTURE_SECS: f64 = 3600.0;
/// Most tokens of one kind in one call: the core's limit, so the API and
/// `UsageEvent::validate` refuse the same values.
pub const MAX_TOKENS: u64 = ai_usage_core::MAX_TOKENS_PER_CALL;
/// Longest accepted `duration_ms`: the core's limit.
pub const MAX_DURATION_MS: f64 = ai_usage_core::MAX_DURATION_MS;

/// One record as sent to `POST /api/ai_usage/record` (the seed's
/// `record_ai_usage` arguments). Its fields are the accepted keys and the
/// OpenAPI schema; the handler validates the JSON by hand so errors name
/// the field and the record's index.
#[allow(dead_code)] // the fields are only read by the OpenAPI generator
#[derive(Debug, serde::Deserialize, ToSchema)]
pub struct RecordInput {
    /// Model name as sent to the provider (non-empty).
    #[schema(example = "qwen-plus")]
    pub model: String,
    /// App feature (功能) that made the call (non-empty).
    #[schema(example = "实时分析")]
    pub function: String,
    /// Prompt tokens (integer ≥ 0).
    #[schema(example = 1200)]
    pub input_tokens: Option<u64>,
    /// Completion tokens (integer ≥ 0).
    #[schema(example = 300)]
    pub output_tokens: Option<u64>,
    /// Provider-reported total (kept as max(total, input + output)).
    pub total_tokens: Option<u64>,
    /// Cached input tokens (part of input_tokens).
    pub cached_input_tokens: Option<u64>,
    /// Reasoning tokens (part of output_tokens).
    pub reasoning_tokens: Option<u64>,
    /// Wall time in ms (≥ 0).
    #[schema(example = 850.0)]
    pub duration_ms: Option<f64>,
    /// False for a failed call (default true).
    pub success: Option<bool>,
    /// Error text of a failed call.
    pub error_msg: Option<String>,
    /// Paying account.
    pub user_id: Option<String>,
    /// Streamer (主播).
    #[schema(example = "anchor_123")]
    pub anchor_id: Option<String>,
    /// Broadcast session.
    #[schema(example = "session_456")]
    pub session_id: Option<String>,
    /// Explicit cost overriding the price table (≥ 0, at most 6 decimals kept).
    pub cost: Option<f64>,
    /// Currency of `cost` (three letters).
    pub currency: Option<String>,
    /// Provider or app request id.
    pub request_id: Option<String>,
    /// Free-form labels.
    pub tags: Option<Vec<String>>,
    /// Epoch seconds (default: now).
    pub timestamp: Option<f64>,
    /// Input tokens written to the prompt cache (part of input_tokens, apart
    /// from cached_input_tokens), priced at the cache-write rate.
    pub cache_write_tokens: Option<u64>,
    /// Audio input tokens (part of input_tokens).
    pub input_audio_tokens: Option<u64>,
    /// Audio input tokens read from the cache (part of cached_input_tokens
    /// and input_audio_tokens).
    pub cached_audio_input_tokens: Option<u64>,
    /// Audio output tokens (part of output_tokens).
    pub output_audio_tokens: Option<u64>,
    /// Provider that served the call (`anthropic`, `aws`, an API base URL …):
    /// picks that provider's catalogue price.
    #[schema(example = "anthropic")]
    pub provider: Option<String>,
    /// The provider's raw response body (Anthropic, OpenAI chat / Responses /
    /// embeddings, Gemini, Bedrock Converse, Groq, OpenRouter, DashScope …):
    /// token counts (and `model`, when not given) are read from it with the
    /// genai-prices extractors. Not allowed together with token counts.
    #[schema(value_type = Option<Object>)]
    pub response: Option<Value>,
}

/// The token-count keys a `response` replaces.
const TOKEN_FIELDS: [&str; 9] = [
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cache_write_tokens",
    "input_audio_tokens",
    "cached_audio_input_tokens",
    "output_audio_tokens",
];

/// A single record or a batch of at most 1000.
#[allow(dead_code)] // only read by the OpenAPI generator
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(untagged)]
pub enum RecordBody {
    /// One record.
    One(Box<RecordInput>),
    /// A batch.
    Batch(Vec<RecordInput>),
}

/// What was recorded, one entry per input record in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordedEntry {
    /// Exact cost as stored.
    #[schema(value_type = f64)]
    pub cost: Money,
    /// Currency of the cost.
    #[schema(value_type = String)]
    pub currency: Currency,
    /// False when the model had no price (cost 0).
    pub priced: bool,
    /// Total tokens as stored.
    pub total_tokens: u64,
}

/// The answer of `POST /api/ai_usage/record`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordResponse {
    /// Always true (errors are 4xx JSON).
    pub success: bool,
    /// Records accepted.
    pub recorded: usize,
    /// One entry per record.
    pub records: Vec<RecordedEntry>,
}

/// A validated record, owning its strings (a [`UsageEvent`] borrows them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnedEvent {
    model: String,
    function: String,
    usage: TokenUsage,
    duration_ms: f64,
    success: bool,
    error_msg: Option<String>,
    user_id: Option<String>,
    anchor_id: Option<String>,
    session_id: Option<String>,
    cost: Option<Money>,
    currency: Option<Currency>,
    request_id: Option<String>,
    tags: Vec<String>,
    timestamp: Option<f64>,
    provider: Option<String>,
}

impl OwnedEvent {
    /// Calls `f` with the borrowed event (tags need a slice of `&str`).
    pub fn with_event<R>(&self, f: impl FnOnce(&UsageEvent<'_>) -> R) -> R {
        let tags: Vec<&str> = self.tags.iter().map(String::as_str).collect();
        f(&self.event(&tags))
    }

    /// This event's tags, to borrow as `&str` for [`OwnedEvent::event`].
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The borrowed event, with `tags` (this event's tags as `&str`).
    pub fn event<'a>(&'a self, tags: &'a [&'a str]) -> UsageEvent<'a> {
        UsageEvent {
            model: &self.model,
            function: &self.function,
            usage: self.usage,
            duration_ms: self.duration_ms,
            success: self.success,
            error_msg: self.error_msg.as_deref(),
            user_id: self.user_id.as_deref(),
            anchor_id: self.anchor_id.as_deref(),
            session_id: self.session_id.as_deref(),
            cost: self.cost,
            currency: self.currency,
            request_id: self.request_id.as_deref(),
            tags,
            timestamp: self.timestamp,
            provider: self.provider.as_deref(),
        }
    }
}

/// Validates a body (one object or an array of objects); all or nothing.
pub fn parse_body(body: &Value, now: f64) -> Result<Vec<OwnedEvent>, ApiError> {
    match body {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(field_err(
                    "records",
                    None,
                    "a batch must hold at least one record",
                ));
            }
            if items.len() > MAX_BATCH {
                return Err(field_err(
                    "records",
                    None,
                    &format!(
                        "{} records in one batch; at most {MAX_BATCH} are accepted",
                        items.len()
                    ),
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| parse_one(v, Some(i), now))
                .collect()
        }
        v => Ok(vec![parse_one(v, None, now)?]),
    }
}

fn field_err(field: &str, index: Option<usize>, message: &str) -> ApiError {
    ApiError::InvalidField {
        field: field.to_string(),
        index,
        message: message.to_string(),
    }
}

/// The keys a record may have: the fields of [`RecordInput`], so the
/// documented schema and the accepted keys are one list.
fn known_fields() -> &'static [&'static str] {
    serde_aux::serde_introspection::serde_introspect::<RecordInput>()
}

fn parse_one(v: &Value, index: Option<usize>, now: f64) -> Result<OwnedEvent, ApiError> {
    let Value::Object(obj) = v else {
        return Err(field_err("record", index, "expected a JSON object"));
    };
    // Unknown keys are rejected: a typo such as `input_token` would otherwise
    // silently record zero tokens.
    if let Some(k) = obj.keys().find(|k| !known_fields().contains(&k.as_str())) {
        return Err(field_err(k, index, "unknown field"));
    }
    let r = Reader { obj, index };
    let response = match obj.get("response") {
        None | Some(Value::Null) => None,
        Some(body @ Value::Object(_)) => Some(body),
        Some(_) => return Err(r.err("response", "expected the provider's JSON response object")),
    };
    let model_given = !matches!(obj.get("model"), None | Some(Value::Null));
    let model = match response.and_then(UsageSource::response_model) {
        Some(m) if !model_given && m.len() <= MAX_NAME_LEN => m.to_owned(),
        _ => r.name("model", MAX_NAME_LEN)?,
    };
    let function = r.name("function", MAX_NAME_LEN)?;
    let usage = match response {
        Some(body) => response_usage(&r, body)?,
        None => given_usage(&r)?,
    };
    finish_event(&r, model, function, usage, now)
}

/// Token counts of a raw provider response.
fn response_usage(r: &Reader<'_>, body: &Value) -> Result<TokenUsage, ApiError> {
    if let Some(k) = TOKEN_FIELDS.iter().find(|k| r.obj.contains_key(**k)) {
        return Err(r.err(
            k,
            "not allowed together with `response` (its counts are used)",
        ));
    }
    let usage = body
        .token_usage()
        .ok_or_else(|| r.err("response", "no token usage found in the response"))?;
    let counts = [
        usage.input_tokens,
        usage.output_tokens,
        usage.total_tokens.unwrap_or(0),
        usage.cached_input_tokens,
        usage.reasoning_tokens,
        usage.cache_write_tokens,
        usage.input_audio_tokens,
        usage.cached_audio_input_tokens,
        usage.output_audio_tokens,
    ];
    if counts.iter().any(|&n| n > MAX_TOKENS) {
        return Err(r.err("response", "token counts must be at most 10^12 per call"));
    }
    if let Some((field, message)) = usage.inconsistency() {
        return Err(r.err("response", &format!("{field} {message}")));
    }
    Ok(usage)
}

/// Token counts given as fields.
fn given_usage(r: &Reader<'_>) -> Result<TokenUsage, ApiError> {
    let index = r.index;
    let input_tokens = r.count("input_tokens")?.unwrap_or(0);
    let output_tokens = r.count("output_tokens")?.unwrap_or(0);
    let cached = r.count("cached_input_tokens")?.unwrap_or(0);
    let reasoning = r.count("reasoning_tokens")?.unwrap_or(0);
    if cached > input_tokens {
        return Err(field_err(
            "cached_input_tokens",
            index,
            "must not exceed input_tokens",
        ));
    }
    if reasoning > output_tokens {
        return Err(field_err(
            "reasoning_tokens",
            index,
            "must not exceed output_tokens",
        ));
    }
    let usage = TokenUsage {
        input_tokens,
        output_tokens,
        total_tokens: r.count("total_tokens")?,
        cached_input_tokens: cached,
        reasoning_tokens: reasoning,
        cache_write_tokens: r.count("cache_write_tokens")?.unwrap_or(0),
        input_audio_tokens: r.count("input_audio_tokens")?.unwrap_or(0),
        cached_audio_input_tokens: r.count("cached_audio_input_tokens")?.unwrap_or(0),
        output_audio_tokens: r.count("output_audio_tokens")?.unwrap_or(0),
    };
    if let Some((field, message)) = usage.inconsistency() {
        return Err(field_err(field, index, message));
    }
    Ok(usage)
}

fn finish_event(
    r: &Reader<'_>,
    model: String,
    function: String,
    usage: TokenUsage,
    now: f64,
) -> Result<OwnedEvent, ApiError> {
    let (obj, index) = (r.obj, r.index);
    let duration_ms = r.non_negative("duration_ms")?.unwrap_or(0.0);
    if duration_ms > MAX_DURATION_MS {
        return Err(field_err(
            "duration_ms",
            index,
            "must be at most 1e9 (milliseconds)",
        ));
    }
    let cost = match r.non_negative("cost")? {
        Some(c) => {
            Some(Money::from_f64(c).ok_or_else(|| field_err("cost", index, "out of range"))?)
        }
        None => None,
    };
    let currency = match r.opt_str("currency", 3)? {
        Some(c) => Some(Currency::new(&c).ok_or_else(|| {
            field_err(
                "currency",
                index,
                "expected a three-letter code such as CNY",
            )
        })?),
        None => None,
    };
    if currency.is_some() && cost.is_none() {
        return Err(field_err(
            "currency",
            index,
            "only allowed together with cost",
        ));
    }
    let timestamp = r.non_negative("timestamp")?;
    if let Some(t) = timestamp {
        if t <= 0.0 || t > now + MAX_FUTURE_SECS {
            return Err(field_err(
                "timestamp",
                index,
                "must be epoch seconds, not in the future",
            ));
        }
    }
    let success = match obj.get("success") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(field_err("success", index, "expected true or false")),
    };
    let tags = match obj.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.len() <= MAX_TAGS => a
            .iter()
            .map(|t| match t {
                Value::String(s) if s.len() <= MAX_NAME_LEN => Ok(s.clone()),
                _ => Err(field_err(
                    "tags",
                    index,
                    "expected strings of at most 256 bytes",
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(field_err(
                "tags",
                index,
                "expected an array of at most 32 strings",
            ))
        }
    };
    Ok(OwnedEvent {
        model,
        function,
        usage,
        duration_ms,
        success,
        error_msg: r.opt_str("error_msg", MAX_ERROR_LEN)?,
        user_id: r.opt_str("user_id", MAX_NAME_LEN)?,
        anchor_id: r.opt_str("anchor_id", MAX_NAME_LEN)?,
        session_id: r.opt_str("session_id", MAX_NAME_LEN)?,
        cost,
        currency,
        request_id: r.opt_str("request_id", MAX_NAME_LEN)?,
        tags,
        timestamp,
        provider: r
            .opt_str("provider", MAX_NAME_LEN)?
            .filter(|p| !p.trim().is_empty()),
    })
}

struct Reader<'a> {
    obj: &'a Map<String, Value>,
    index: Option<usize>,
}

impl Reader<'_> {
    fn err(&self, field: &str, message: &str) -> ApiError {
        field_err(field, self.index, message)
    }

    fn name(&self, field: &str, max: usize) -> Result<String, ApiError> {
        match self.obj.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= max => Ok(s.clone()),
            Some(Value::String(s)) if s.len() > max => {
                Err(self.err(field, &format!("longer than {max} bytes")))
            }
            Some(Value::String(_)) => Err(self.err(field, "must not be empty")),
            None | Some(Value::Null) => Err(self.err(field, "required")),
            Some(_) => Err(self.err(field, "expected a string")),
        }
    }

    fn opt_str(&self, field: &str, max: usize) -> Result<Option<String>, ApiError> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
            Some(Value::String(_)) => Err(self.err(field, &format!("longer than {max} bytes"))),
            Some(_) => Err(self.err(field, "expected a string")),
        }
    }

    /// A token count: a non-negative integer (`12.0` is accepted, `12.5` not).
    fn count(&self, field: &str) -> Result<Option<u64>, ApiError> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => {
                let too_big = || self.err(field, "must be at most 10^12 tokens per call");
                if let Some(u) = n.as_u64() {
                    return if u > MAX_TOKENS {
                        Err(too_big())
                    } else {
                        Ok(Some(u))
                    };
                }
                match n.as_f64() {
                    Some(f) if f.is_finite() && f > MAX_TOKENS as f64 => Err(too_big()),
                    Some(f) if f.is_finite() && f >= 0.0 && f.fract() == 0.0 => Ok(Some(f as u64)),
                    Some(f) if f < 0.0 => Err(self.err(field, "must not be negative")),
                    _ => Err(self.err(field, "expected a non-negative integer")),
                }
            }
            Some(_) => Err(self.err(field, "expected a non-negative integer")),
        }
    }

    fn non_negative(&self, field: &str) -> Result<Option<f64>, ApiError> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f)),
                Some(f) if f < 0.0 => Err(self.err(field, "must not be negative")),
                _ => Err(self.err(field, "must be a finite number")),
            },
            Some(_) => Err(self.err(field, "expected a number")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn detail(e: ApiError) -> String {
        e.to_string()
    }

    #[test]
    fn accepts_one_and_batches() {
        let one = parse_body(
            &json!({"model": "qwen-plus", "function": "f", "input_tokens": 10}),
            1e9,
        )
        .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].usage.input_tokens, 10);
        assert!(one[0].success);
        let batch = parse_body(&json!([{"model": "m", "function": "f"}, {"model": "m", "function": "g", "success": false}]), 1e9).unwrap();
        assert_eq!(batch.len(), 2);
        assert!(!batch[1].success);
    }

    /// Each accepted key is read by `parse_one`, and is a field of the
    /// stored record under the same name (`tags` included).
    #[test]
    fn accepted_keys_are_record_fields_and_all_read() {
        let record =
            serde_aux::serde_introspection::serde_introspect::<ai_usage_core::UsageRecord>();
        for key in known_fields() {
            // `response` is read into the token fields, not stored.
            assert!(
                record.contains(key) || *key == "response",
                "{key} is not a UsageRecord field"
            );
            // A wrong type must be rejected naming the key: proof it is read.
            let mut body = json!({"model": "m", "function": "f"});
            body[*key] = json!({"not": "valid"});
            let e = detail(parse_body(&body, 1e9).unwrap_err());
            assert!(e.contains(key), "{key} is accepted but not validated: {e}");
        }
    }

    #[test]
    fn cache_write_audio_and_provider_are_read_and_checked() {
        let ok = parse_body(
            &json!({"model": "m", "function": "f", "input_tokens": 100, "cached_input_tokens": 40,
                    "cache_write_tokens": 30, "input_audio_tokens": 20, "output_tokens": 10,
                    "output_audio_tokens": 4, "provider": "anthropic"}),
            1e9,
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
            let e = detail(parse_body(&body, 1e9).unwrap_err());
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
            1e9,
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
            detail(parse_body(&json!({"function": "f", "response": bedrock}), 1e9).unwrap_err());
        assert!(e.contains("model"), "{e}");
        let ok = parse_body(
            &json!({"model": "anthropic.claude-3-haiku", "function": "f", "response": bedrock}),
            1e9,
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
            let e = detail(parse_body(&body, 1e9).unwrap_err());
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
            let e = detail(parse_body(&body, 1e9).unwrap_err());
            assert!(e.contains(field), "{body}: {e}");
        }
        // The limits themselves are accepted.
        let ok = parse_body(
            &json!({"model": "m", "function": "f", "input_tokens": MAX_TOKENS, "duration_ms": MAX_DURATION_MS}),
            1e9,
        )
        .unwrap();
        assert_eq!(ok[0].usage.input_tokens, MAX_TOKENS);
    }

    #[test]
    fn rejections_name_field_and_index() {
        let e = detail(
            parse_body(
                &json!([{"model": "m", "function": "f"}, {"model": " ", "function": "f"}]),
                1e9,
            )
            .unwrap_err(),
        );
        assert!(e.contains("model") && e.contains("record 1"), "{e}");
        let e = detail(
            parse_body(
                &json!({"model": "m", "function": "f", "output_tokens": -1}),
                1e9,
            )
            .unwrap_err(),
        );
        assert!(e.contains("output_tokens") && e.contains("negative"), "{e}");
        let e = detail(
            parse_body(
                &json!({"model": "m", "function": "f", "duration_ms": -0.5}),
                1e9,
            )
            .unwrap_err(),
        );
        assert!(e.contains("duration_ms"), "{e}");
        let e = detail(
            parse_body(
                &json!({"model": "m", "function": "f", "input_token": 3}),
                1e9,
            )
            .unwrap_err(),
        );
        assert!(e.contains("input_token"), "{e}");
        let e = detail(parse_body(&json!({"model": "m"}), 1e9).unwrap_err());
        assert!(e.contains("function"), "{e}");
        let big: Vec<Value> = (0..=MAX_BATCH)
            .map(|_| json!({"model": "m", "function": "f"}))
            .collect();
        let e = detail(parse_body(&Value::Array(big), 1e9).unwrap_err());
        assert!(e.contains("records") && e.contains("1001"), "{e}");
        let e = detail(
            parse_body(
                &json!({"model": "m", "function": "f", "cost": 1.5, "currency": "yuan"}),
                1e9,
            )
            .unwrap_err(),
        );
        assert!(e.contains("currency"), "{e}");
        let e = detail(
            parse_body(
                &json!({"model": "m", "function": "f", "timestamp": 2e9}),
                1e9,
            )
            .unwrap_err(),
        );
        assert!(e.contains("timestamp"), "{e}");
    }
}
