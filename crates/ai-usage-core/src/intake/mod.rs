//! Intake: what every door hands to the core before a call is priced and
//! counted.
//!
//! - [`UsageInput`] is the one input type: the keys of `POST /record` (its
//!   OpenAPI schema, with the `openapi` feature), the fields the CLI's
//!   `record` and Python's `record_usage` fill in, and what an OTLP span
//!   maps to. Reading JSON names the field of any error
//!   ([`UsageInput::from_json`], with `serde_path_to_error`).
//! - [`UsageInput::into_event`] resolves it into an [`OwnedEvent`] (token
//!   counts from a raw provider `response`, the model it names).
//! - [`check`] is the one set of rules every door applies; the monitor's
//!   validating calls and [`OwnedEvent::validate`] run it.

mod rules;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::money::{Currency, Money};
use crate::record::usage::{TokenUsage, UsageSource};
use crate::record::{RecordError, UsageEvent, MAX_TOKENS_PER_CALL};

pub(crate) use rules::cut;
pub use rules::{
    check, check_id_text, TimeWindow, DEFAULT_PAST_DAYS, MAX_ERROR_LEN, MAX_FUTURE_SECS,
    MAX_ID_LEN, MAX_TAGS,
};

/// Most records accepted in one batch.
pub const MAX_BATCH: usize = 1000;

/// Why an input cannot be taken: the field (a JSON key, `record` for the
/// whole value) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct IntakeError {
    /// The field, e.g. `input_tokens`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl IntakeError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> IntakeError {
        IntakeError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<RecordError> for IntakeError {
    fn from(e: RecordError) -> IntakeError {
        IntakeError::new(e.field(), e.to_string())
    }
}

/// A token count as input: a whole number from 0 to
/// [`MAX_TOKENS_PER_CALL`]. `12.0` is a whole number; `12.5` and `-1` are
/// refused, here and in a raw `response` body alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCount(pub u64);

impl TokenCount {
    /// A count given as a signed integer (Python's `int`), or why not.
    pub fn from_i64(field: &'static str, n: i64) -> Result<TokenCount, RecordError> {
        u64::try_from(n)
            .map(TokenCount)
            .map_err(|_| RecordError::Invalid {
                field,
                message: format!("must not be negative, got {n}"),
            })
    }
}

/// The one rule for a token count read as a float (JSON numbers): whole,
/// not negative, at most [`MAX_TOKENS_PER_CALL`]. The message names no field.
pub fn whole_tokens(f: f64) -> Result<u64, String> {
    if !f.is_finite() {
        Err("expected a non-negative integer".to_owned())
    } else if f < 0.0 {
        Err("must not be negative".to_owned())
    } else if f > MAX_TOKENS_PER_CALL as f64 {
        Err("must be at most 10^12 tokens per call".to_owned())
    } else if f.fract() != 0.0 {
        Err(format!("expected a whole number of tokens, got {f}"))
    } else {
        // Exact: a whole float below 2^53.
        Ok(f as u64)
    }
}

impl<'de> Deserialize<'de> for TokenCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TokenCount, D::Error> {
        struct Count;
        impl Visitor<'_> for Count {
            type Value = TokenCount;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a non-negative integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TokenCount, E> {
                if v > MAX_TOKENS_PER_CALL {
                    return Err(E::custom("must be at most 10^12 tokens per call"));
                }
                Ok(TokenCount(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TokenCount, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::custom("must not be negative")),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TokenCount, E> {
                whole_tokens(v).map(TokenCount).map_err(E::custom)
            }
        }
        d.deserialize_any(Count)
    }
}

/// One call as any door gives it (the original's `record_ai_usage`
/// arguments plus our token details). Absent and `null` are the same.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UsageInput {
    /// Model name as sent to the provider (non-empty; may come from `response`).
    #[cfg_attr(feature = "openapi", schema(example = "qwen-plus"))]
    pub model: Option<String>,
    /// App feature (功能) that made the call (non-empty).
    #[cfg_attr(feature = "openapi", schema(example = "实时分析", required = true))]
    pub function: Option<String>,
    /// Prompt tokens (integer ≥ 0).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, example = 1200))]
    pub input_tokens: Option<TokenCount>,
    /// Completion tokens (integer ≥ 0).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, example = 300))]
    pub output_tokens: Option<TokenCount>,
    /// Provider-reported total (kept as max(total, input + output)).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub total_tokens: Option<TokenCount>,
    /// Cached input tokens (part of input_tokens).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub cached_input_tokens: Option<TokenCount>,
    /// Reasoning tokens (part of output_tokens).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub reasoning_tokens: Option<TokenCount>,
    /// Wall time in ms (0 to 1e9).
    #[cfg_attr(feature = "openapi", schema(example = 850.0))]
    pub duration_ms: Option<f64>,
    /// False for a failed call (default true).
    pub success: Option<bool>,
    /// Error text of a failed call (at most 4096 bytes).
    pub error_msg: Option<String>,
    /// Paying account (at most 256 bytes, no control characters; so are
    /// the other ids).
    pub user_id: Option<String>,
    /// Streamer (主播).
    #[cfg_attr(feature = "openapi", schema(example = "anchor_123"))]
    pub anchor_id: Option<String>,
    /// Broadcast session.
    #[cfg_attr(feature = "openapi", schema(example = "session_456"))]
    pub session_id: Option<String>,
    /// Explicit cost overriding the price table (≥ 0, exact to 9 decimals).
    pub cost: Option<f64>,
    /// Currency of `cost` (three letters; only with `cost`).
    pub currency: Option<String>,
    /// Provider or app request id.
    pub request_id: Option<String>,
    /// Free-form labels (at most 32).
    pub tags: Option<Vec<String>>,
    /// Epoch seconds (default: now); from the retention window's first day
    /// (93 days by default) to one hour ahead of the clock.
    pub timestamp: Option<f64>,
    /// Input tokens written to the prompt cache (part of input_tokens, apart
    /// from cached_input_tokens), priced at the cache-write rate.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub cache_write_tokens: Option<TokenCount>,
    /// Audio input tokens (part of input_tokens).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub input_audio_tokens: Option<TokenCount>,
    /// Audio input tokens read from the cache (part of cached_input_tokens
    /// and input_audio_tokens).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub cached_audio_input_tokens: Option<TokenCount>,
    /// Audio output tokens (part of output_tokens).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub output_audio_tokens: Option<TokenCount>,
    /// Provider that served the call (`anthropic`, `aws`, an API base URL …):
    /// picks that provider's catalogue price.
    #[cfg_attr(feature = "openapi", schema(example = "anthropic"))]
    pub provider: Option<String>,
    /// The provider's raw response body (Anthropic, OpenAI chat / Responses /
    /// embeddings, Gemini, Bedrock Converse, Groq, OpenRouter, DashScope …):
    /// token counts (and `model`, when not given) are read from it with the
    /// genai-prices extractors. Not allowed together with token counts.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub response: Option<Value>,
}

/// The keys a [`UsageInput`] accepts, in declaration order.
pub fn input_fields() -> &'static [&'static str] {
    serde_aux::serde_introspection::serde_introspect::<UsageInput>()
}

impl UsageInput {
    /// Reads one input from a JSON value; an error names the key (an
    /// unknown key is refused: a typo such as `input_token` would otherwise
    /// record zero tokens).
    pub fn from_json(v: &Value) -> Result<UsageInput, IntakeError> {
        let Value::Object(obj) = v else {
            return Err(IntakeError::new("record", "expected a JSON object"));
        };
        if let Some(k) = obj.keys().find(|k| !input_fields().contains(&k.as_str())) {
            return Err(IntakeError::new(k.as_str(), "unknown field"));
        }
        serde_path_to_error::deserialize(v).map_err(|e| {
            let field = e
                .path()
                .iter()
                .find_map(|s| match s {
                    serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| "record".to_owned());
            IntakeError::new(field, e.into_inner().to_string())
        })
    }

    /// Resolves the input into an event: token counts from `response` when
    /// given (then token fields are refused), the model from it when none
    /// is named, the cost and currency parsed. The intake rules are checked
    /// by [`OwnedEvent::validate`].
    pub fn into_event(mut self) -> Result<OwnedEvent, IntakeError> {
        let given = self.token_fields_given();
        let response = match self.response.take() {
            None | Some(Value::Null) => None,
            Some(body @ Value::Object(_)) => Some(body),
            Some(_) => {
                return Err(IntakeError::new(
                    "response",
                    "expected the provider's JSON response object",
                ))
            }
        };
        let count = |c: Option<TokenCount>| c.map_or(0, |c| c.0);
        let usage = match &response {
            Some(body) => {
                if let Some(k) = given {
                    return Err(IntakeError::new(
                        k,
                        "not allowed together with `response` (its counts are used)",
                    ));
                }
                response_usage(body)?
            }
            None => TokenUsage {
                input_tokens: count(self.input_tokens),
                output_tokens: count(self.output_tokens),
                total_tokens: self.total_tokens.map(|c| c.0),
                cached_input_tokens: count(self.cached_input_tokens),
                reasoning_tokens: count(self.reasoning_tokens),
                cache_write_tokens: count(self.cache_write_tokens),
                input_audio_tokens: count(self.input_audio_tokens),
                cached_audio_input_tokens: count(self.cached_audio_input_tokens),
                output_audio_tokens: count(self.output_audio_tokens),
            },
        };
        let model = match (
            self.model,
            response.as_ref().and_then(|r| r.response_model()),
        ) {
            (Some(m), _) => m,
            (None, Some(m)) => m.to_owned(),
            (None, None) => return Err(IntakeError::new("model", "required")),
        };
        let function = self
            .function
            .ok_or_else(|| IntakeError::new("function", "required"))?;
        let cost = match self.cost {
            Some(c) => Some(
                Money::from_f64(c)
                    .ok_or_else(|| IntakeError::new("cost", "must be a finite amount"))?,
            ),
            None => None,
        };
        let currency = match self.currency {
            Some(c) => Some(Currency::new(&c).ok_or_else(|| {
                IntakeError::new("currency", "expected a three-letter code such as CNY")
            })?),
            None => None,
        };
        Ok(OwnedEvent {
            model,
            function,
            usage,
            duration_ms: self.duration_ms.unwrap_or(0.0),
            success: self.success.unwrap_or(true),
            error_msg: self.error_msg,
            user_id: self.user_id,
            anchor_id: self.anchor_id,
            session_id: self.session_id,
            cost,
            currency,
            request_id: self.request_id,
            tags: self.tags.unwrap_or_default(),
            timestamp: self.timestamp,
            provider: self.provider.filter(|p| !p.trim().is_empty()),
        })
    }

    /// The first token field given, if any.
    fn token_fields_given(&self) -> Option<&'static str> {
        [
            ("input_tokens", self.input_tokens),
            ("output_tokens", self.output_tokens),
            ("total_tokens", self.total_tokens),
            ("cached_input_tokens", self.cached_input_tokens),
            ("reasoning_tokens", self.reasoning_tokens),
            ("cache_write_tokens", self.cache_write_tokens),
            ("input_audio_tokens", self.input_audio_tokens),
            ("cached_audio_input_tokens", self.cached_audio_input_tokens),
            ("output_audio_tokens", self.output_audio_tokens),
        ]
        .into_iter()
        .find_map(|(k, v)| v.map(|_| k))
    }
}

/// The first number in a response's usage block that is not a whole token
/// count, as (path, message); the same rule as the token fields.
fn bad_count(v: &Value, path: &mut String) -> Option<(String, String)> {
    match v {
        Value::Number(n) if n.as_u64().is_none() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            whole_tokens(f).err().map(|m| (path.clone(), m))
        }
        Value::Object(o) => o.iter().find_map(|(k, v)| {
            let len = path.len();
            path.push('.');
            path.push_str(k);
            let found = bad_count(v, path);
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

/// Token counts of a raw provider response.
fn response_usage(body: &Value) -> Result<TokenUsage, IntakeError> {
    for block in ["usage", "usageMetadata"] {
        if let Some(u) = body.get(block) {
            let mut path = format!("response.{block}");
            if let Some((path, message)) = bad_count(u, &mut path) {
                return Err(IntakeError::new("response", format!("{path}: {message}")));
            }
        }
    }
    let usage = body
        .token_usage()
        .ok_or_else(|| IntakeError::new("response", "no token usage found in the response"))?;
    let largest = usage
        .named_counts()
        .into_iter()
        .map(|(_, n)| n)
        .max()
        .unwrap_or(0);
    if largest > MAX_TOKENS_PER_CALL {
        return Err(IntakeError::new(
            "response",
            "token counts must be at most 10^12 per call",
        ));
    }
    if let Some((field, message)) = usage.inconsistency() {
        return Err(IntakeError::new("response", format!("{field} {message}")));
    }
    Ok(usage)
}

/// A resolved input owning its strings (a [`UsageEvent`] borrows them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnedEvent {
    /// Model name.
    pub model: String,
    /// App feature (功能).
    pub function: String,
    /// Token counts.
    pub usage: TokenUsage,
    /// Wall time in milliseconds.
    pub duration_ms: f64,
    /// False for a failed call.
    pub success: bool,
    /// Error text of a failed call.
    pub error_msg: Option<String>,
    /// Paying account.
    pub user_id: Option<String>,
    /// Streamer (主播).
    pub anchor_id: Option<String>,
    /// Broadcast session.
    pub session_id: Option<String>,
    /// Explicit cost.
    pub cost: Option<Money>,
    /// Currency of the explicit cost.
    pub currency: Option<Currency>,
    /// Provider or app request id.
    pub request_id: Option<String>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// Epoch seconds; `None` means now.
    pub timestamp: Option<f64>,
    /// Provider whose price applies.
    pub provider: Option<String>,
}

impl OwnedEvent {
    /// Calls `f` with the borrowed event.
    pub fn with_event<R>(&self, f: impl FnOnce(&UsageEvent<'_>) -> R) -> R {
        let tags = self.tag_refs();
        f(&self.event(&tags))
    }

    /// This event's tags as `&str`, to pass to [`OwnedEvent::event`].
    pub fn tag_refs(&self) -> Vec<&str> {
        self.tags.iter().map(String::as_str).collect()
    }

    /// The borrowed event, with `tags` from [`OwnedEvent::tag_refs`].
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

    /// The intake rules ([`check`]) with timestamps limited to `window`.
    pub fn validate(&self, window: TimeWindow) -> Result<(), RecordError> {
        self.with_event(|ev| check(ev, window))
    }
}

#[cfg(test)]
mod tests;
