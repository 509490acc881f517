//! One span → the core's one input ([`UsageInput`]): which spans are LLM
//! calls, and where each record field comes from. Every semantic-conventions
//! release in use is read (v1.36–v1.41, the deprecated names, and the GenAI
//! repository's newest ones); the first name present wins.

use ai_usage_core::intake::{TokenCount, UsageInput};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;

use super::ledger::{key_of, key_text, SPAN_TAG_PREFIX};

/// `gen_ai.operation.name` values that are one call to a model.
pub const INFERENCE_OPERATIONS: &[&str] = &[
    "chat",
    "text_completion",
    "generate_content",
    "embeddings",
    "completion",
    "responses",
    "create_response",
];

/// Operations that wrap other calls (their usage, when present, sums the
/// calls inside them, which are spans of their own): never a record, so
/// nothing is counted twice.
pub const WRAPPING_OPERATIONS: &[&str] = &[
    "invoke_agent",
    "create_agent",
    "execute_tool",
    "invoke_workflow",
];

/// Names of each record field, the preferred first.
const MODEL: &[&str] = &["gen_ai.response.model", "gen_ai.request.model"];
const PROVIDER: &[&str] = &["gen_ai.provider.name", "gen_ai.system"];
const INPUT: &[&str] = &["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"];
const OUTPUT: &[&str] = &[
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
];
const CACHE_READ: &[&str] = &[
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
];
const CACHE_WRITE: &[&str] = &[
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
];
const REASONING: &[&str] = &[
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
];
const TOTAL: &[&str] = &["gen_ai.usage.total_tokens", "llm.usage.total_tokens"];
const FUNCTION: &str = "ai_usage.function";
const USER: &[&str] = &["user.id", "enduser.id"];
const SESSION: &[&str] = &["session.id", "gen_ai.conversation.id"];
const ANCHOR: &str = "ai_usage.anchor_id";
const RESPONSE_ID: &str = "gen_ai.response.id";
const ERROR_TYPE: &str = "error.type";
const COST: &[&str] = &["gen_ai.usage.cost.amount", "gen_ai.usage.cost"];
const COST_CURRENCY: &str = "gen_ai.usage.cost.currency";
/// A cost given without a currency: the convention of the tools that set
/// `gen_ai.usage.cost` (OpenLIT, OpenLLMetry) is US dollars.
pub const DEFAULT_COST_CURRENCY: &str = "USD";
/// The function of a span whose resource names no service either.
pub const UNKNOWN_FUNCTION: &str = "unknown_service";

/// What a span is to us.
#[derive(Debug, Clone, PartialEq)]
pub enum SpanKind {
    /// Not an LLM call (an HTTP span, a tool call, an agent …): ignored.
    NotACall,
    /// A call, as the core's input.
    Call(Box<UsageInput>),
    /// A call whose attributes cannot be taken: why.
    Rejected(String),
}

/// The attributes of a span and of its resource, looked up by name.
struct Attrs<'a> {
    span: &'a [KeyValue],
    resource: &'a [KeyValue],
}

fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::StringValue(s) if !s.is_empty() => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

impl<'a> Attrs<'a> {
    /// The first of `names` set on the span, with its name.
    fn first(&self, names: &[&'static str]) -> Option<(&'static str, &'a Value)> {
        names
            .iter()
            .find_map(|n| find(self.span, n).map(|v| (*n, v)))
    }

    fn text(&self, names: &[&str]) -> Option<String> {
        names.iter().find_map(|n| find(self.span, n).and_then(text))
    }

    fn tokens(&self, names: &[&'static str]) -> Result<Option<TokenCount>, String> {
        match self.first(names) {
            None => Ok(None),
            Some((name, v)) => token_count(v)
                .map(|n| Some(TokenCount(n)))
                .map_err(|m| format!("{name}: {m}")),
        }
    }
}

/// A token count from an attribute: an integer, a whole double or a
/// decimal string, from 0 to the core's per-call limit.
fn token_count(v: &Value) -> Result<u64, String> {
    let n = match v {
        Value::IntValue(i) if *i < 0 => return Err(format!("must not be negative, got {i}")),
        // Exact: the limit (10^12) is far below 2^53.
        Value::IntValue(i) => *i as f64,
        Value::DoubleValue(d) => *d,
        Value::StringValue(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("expected a token count, got {s:?}"))?,
        _ => return Err("expected an integer token count".into()),
    };
    ai_usage_core::intake::whole_tokens(n)
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::DoubleValue(d) => Some(*d),
        Value::IntValue(i) => Some(*i as f64),
        Value::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// True when the span carries any `gen_ai.usage.*` token count.
fn has_usage(span: &[KeyValue]) -> bool {
    span.iter()
        .any(|kv| kv.key.starts_with("gen_ai.usage.") && kv.key.ends_with("tokens"))
}

/// The attribute `#[track_ai_usage]` puts on its spans: the call is already
/// a record (the app's own monitor wrote it), so its span is not one more.
pub const RECORDED_MARK: &str = "ai_usage.recorded";

/// Whether the span says its call was recorded where it was made.
fn recorded_at_source(attributes: &[KeyValue]) -> bool {
    attributes.iter().any(|kv| {
        kv.key == RECORDED_MARK
            && matches!(
                kv.value.as_ref().and_then(|v| v.value.as_ref()),
                Some(Value::BoolValue(true))
            )
    })
}

/// Maps one span (with its resource's attributes) to the core's input.
pub fn map_span(resource: &[KeyValue], span: &Span) -> SpanKind {
    let attrs = Attrs {
        span: &span.attributes,
        resource,
    };
    if recorded_at_source(&span.attributes) {
        return SpanKind::NotACall;
    }
    let operation = attrs.text(&["gen_ai.operation.name"]);
    let op = operation.as_deref().unwrap_or("");
    if WRAPPING_OPERATIONS.contains(&op) {
        return SpanKind::NotACall;
    }
    if !INFERENCE_OPERATIONS.contains(&op) && !has_usage(&span.attributes) {
        return SpanKind::NotACall;
    }
    match build_input(&attrs, span) {
        Ok(mut input) => {
            // Kept on the record for the metrics export (chat is the default).
            if INFERENCE_OPERATIONS.contains(&op) && op != crate::DEFAULT_OPERATION {
                if let Some(tags) = input.tags.as_mut() {
                    tags.push(format!("{}{op}", crate::OPERATION_TAG_PREFIX));
                }
            }
            SpanKind::Call(Box::new(input))
        }
        Err(message) => SpanKind::Rejected(message),
    }
}

fn build_input(attrs: &Attrs<'_>, span: &Span) -> Result<UsageInput, String> {
    let model = attrs
        .text(MODEL)
        .ok_or("no model: neither gen_ai.response.model nor gen_ai.request.model is set")?;
    if span.start_time_unix_nano == 0 {
        return Err("startTimeUnixNano is not set".into());
    }
    if span.end_time_unix_nano < span.start_time_unix_nano {
        return Err("the span ends before it starts".into());
    }
    let function = attrs
        .text(&[FUNCTION])
        .or_else(|| find(attrs.resource, FUNCTION).and_then(text))
        .or_else(|| find(attrs.resource, "service.name").and_then(text))
        .unwrap_or_else(|| UNKNOWN_FUNCTION.to_owned());
    let failed = span
        .status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32);
    let error_msg = failed.then(|| {
        attrs
            .text(&[ERROR_TYPE])
            .or_else(|| {
                span.status
                    .as_ref()
                    .map(|s| s.message.clone())
                    .filter(|m| !m.is_empty())
            })
            .unwrap_or_else(|| "error".to_owned())
    });
    let (cost, currency) = match attrs.first(COST) {
        None => (None, None),
        Some((name, v)) => {
            let amount = number(v).ok_or_else(|| format!("{name}: expected a number"))?;
            let currency = attrs
                .text(&[COST_CURRENCY])
                .unwrap_or_else(|| DEFAULT_COST_CURRENCY.to_owned())
                .to_ascii_uppercase();
            (Some(amount), Some(currency))
        }
    };
    let mut tags = Vec::new();
    if let Some(key) = key_of(&span.trace_id, &span.span_id) {
        tags.push(format!("{SPAN_TAG_PREFIX}{}", key_text(&key)));
    }
    let start = span.start_time_unix_nano;
    Ok(UsageInput {
        model: Some(model),
        function: Some(function),
        input_tokens: attrs.tokens(INPUT)?,
        output_tokens: attrs.tokens(OUTPUT)?,
        total_tokens: attrs.tokens(TOTAL)?,
        cached_input_tokens: attrs.tokens(CACHE_READ)?,
        reasoning_tokens: attrs.tokens(REASONING)?,
        cache_write_tokens: attrs.tokens(CACHE_WRITE)?,
        duration_ms: Some((span.end_time_unix_nano - start) as f64 / 1e6),
        success: Some(!failed),
        error_msg,
        user_id: attrs.text(USER),
        anchor_id: attrs.text(&[ANCHOR]),
        session_id: attrs.text(SESSION),
        cost,
        currency,
        request_id: attrs.text(&[RESPONSE_ID]),
        tags: Some(tags),
        // Whole seconds and nanoseconds apart: exact to the microsecond.
        timestamp: Some((start / 1_000_000_000) as f64 + (start % 1_000_000_000) as f64 / 1e9),
        provider: attrs.text(PROVIDER),
        ..UsageInput::default()
    })
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
