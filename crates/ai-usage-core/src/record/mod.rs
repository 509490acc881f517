//! The usage record: one JSON line in a day file, compatible with the seed's
//! Python monitor in both directions, and the event a caller records.

pub mod fields;
mod line;
mod response;
pub mod usage;
mod value;

use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money};
use crate::record::fields::{csv, csv_decimals, record_table, NOT_IN_CSV};
use crate::record::usage::TokenUsage;

record_table! {
/// One recorded AI call, exactly as stored: one JSON object per line.
///
/// The first thirteen fields are the seed's, with its names and types; the
/// optional ones after them are ours and are omitted when empty, so the seed's
/// reader (which ignores unknown keys only when absent) can still load our files
/// written without them.
///
/// Declared as a table (`record_table!`; see [`UsageRecord::FIELDS`] and
/// [`FieldValue`](crate::FieldValue)): each row is a field with its
/// serde attributes, type and records-CSV column (`csv(n)`; `NOT_IN_CSV`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Epoch seconds (float) when the call finished.
    timestamp: f64 => csv_decimals(0, 3),
    /// Paying account, if known.
    #[serde(default)]
    user_id: Option<String> => csv(2),
    /// Streamer (主播), if known.
    #[serde(default)]
    anchor_id: Option<String> => csv(3),
    /// Broadcast session, if known.
    #[serde(default)]
    session_id: Option<String> => csv(4),
    /// Model name as the caller gave it (not normalised).
    model: String => csv(5),
    /// App feature (功能) that made the call.
    #[serde(default)]
    function: String => csv(6),
    /// Prompt tokens.
    #[serde(default)]
    input_tokens: u64 => csv(7),
    /// Completion tokens.
    #[serde(default)]
    output_tokens: u64 => csv(8),
    /// `max(given total, input + output)`.
    #[serde(default)]
    total_tokens: u64 => csv(9),
    /// Exact cost in `currency`; authoritative once stored (never re-priced).
    #[serde(default)]
    cost: Money => csv(12),
    /// Wall time of the call in milliseconds.
    #[serde(default)]
    duration_ms: f64 => csv_decimals(14, 1),
    /// False when the call failed.
    #[serde(default = "default_true")]
    success: bool => csv(15),
    /// Error text of a failed call.
    #[serde(default)]
    error_msg: Option<String> => csv(16),
    /// Cached input tokens (part of `input_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    cached_input_tokens: u64 => csv(10),
    /// Reasoning tokens (part of `output_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    reasoning_tokens: u64 => csv(11),
    /// Currency of `cost`. Absent in the seed's files: the reader then takes the
    /// model's currency from the pricing table (CNY when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    currency: Option<Currency> => csv(13),
    /// `Some(false)` when no price was known for the model (cost 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priced: Option<bool> => NOT_IN_CSV,
    /// Provider or app request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_id: Option<String> => csv(17),
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String> => csv(18),
    /// Input tokens written to the prompt cache (part of `input_tokens`,
    /// apart from `cached_input_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    cache_write_tokens: u64 => csv(19),
    /// Audio input tokens (part of `input_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    input_audio_tokens: u64 => csv(20),
    /// Audio input tokens read from the cache (part of `cached_input_tokens`
    /// and of `input_audio_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    cached_audio_input_tokens: u64 => csv(21),
    /// Audio output tokens (part of `output_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    output_audio_tokens: u64 => csv(22),
    /// The provider that served the call (`anthropic`, `aws`, an API base
    /// URL …), when the caller named one: it picks that provider's price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider: Option<String> => csv(23),
}
}

/// Most tokens of any kind one call may report (10^12: far above any real
/// call, low enough that a year of maximal calls cannot overflow a `u64` sum).
pub const MAX_TOKENS_PER_CALL: u64 = 1_000_000_000_000;
/// Longest duration one call may report, in milliseconds (10^9 ms ≈ 11.6 days).
pub const MAX_DURATION_MS: f64 = 1e9;

/// Why an event cannot be recorded as given (names the field).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    /// A token count above [`MAX_TOKENS_PER_CALL`].
    #[error("{field} is {value}, above the limit of {limit} per call")]
    TooManyTokens {
        /// The field, e.g. `input_tokens`.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The limit.
        limit: u64,
    },
    /// A number that is NaN, infinite, negative or above its limit.
    #[error("{field} must be a finite number from 0 to {limit}, got {value}")]
    OutOfRange {
        /// The field, e.g. `duration_ms`.
        field: &'static str,
        /// The value given.
        value: f64,
        /// The largest value allowed.
        limit: f64,
    },
    /// A timestamp outside the accepted window around the clock.
    #[error("timestamp {value} is outside the accepted window: epoch seconds from {earliest:.0} to {latest:.0} (now + 1 h); milliseconds or a far past are refused")]
    Timestamp {
        /// The value given.
        value: f64,
        /// Oldest accepted.
        earliest: f64,
        /// Newest accepted.
        latest: f64,
    },
    /// Any other broken intake rule (a negative cost, an id with control
    /// characters or over the length limit, an empty model …).
    #[error("{field} {message}")]
    Invalid {
        /// The field, e.g. `cost`.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl RecordError {
    /// The field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            RecordError::TooManyTokens { field, .. }
            | RecordError::OutOfRange { field, .. }
            | RecordError::Invalid { field, .. } => field,
            RecordError::Timestamp { .. } => "timestamp",
        }
    }
}

fn default_true() -> bool {
    true
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl UsageRecord {
    /// The currency and priced flag of this record as stored in a day file:
    /// its own fields when it has them (our files). A record without
    /// `currency` was written by the seed, which priced every model in CNY
    /// (OpenAI ones at ¥7/$), so its cost is CNY whatever currency the table
    /// prices that model in today; `model_known` (does the pricing table
    /// know the model?) only decides whether a ¥0 seed record counts as
    /// priced. Replay, the follower and the ClickHouse shipper all read
    /// records through this one rule.
    pub fn stored_currency(&self, model_known: bool) -> (Currency, bool) {
        (
            self.currency.unwrap_or(Currency::CNY),
            self.priced
                .unwrap_or(model_known || self.cost != Money::ZERO),
        )
    }

    /// The token counts of this record.
    pub fn usage(&self) -> TokenUsage {
        TokenUsage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            total_tokens: Some(self.total_tokens),
            cached_input_tokens: self.cached_input_tokens,
            reasoning_tokens: self.reasoning_tokens,
            cache_write_tokens: self.cache_write_tokens,
            input_audio_tokens: self.input_audio_tokens,
            cached_audio_input_tokens: self.cached_audio_input_tokens,
            output_audio_tokens: self.output_audio_tokens,
        }
    }

    /// Sets the token counts (the total as the seed records it).
    pub fn set_usage(&mut self, u: &TokenUsage) {
        self.input_tokens = u.input_tokens;
        self.output_tokens = u.output_tokens;
        self.total_tokens = u.total();
        self.cached_input_tokens = u.cached_input_tokens;
        self.reasoning_tokens = u.reasoning_tokens;
        self.cache_write_tokens = u.cache_write_tokens;
        self.input_audio_tokens = u.input_audio_tokens;
        self.cached_audio_input_tokens = u.cached_audio_input_tokens;
        self.output_audio_tokens = u.output_audio_tokens;
    }

    /// Appends this record as one JSON line (with the trailing `\n`) to `out`:
    /// byte for byte `serde_json`'s serialisation of it, written by the
    /// table's own line writer (`record/line.rs`), which is several times
    /// cheaper than serde's per-byte escaping.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        // Writing plain strings, numbers and bools into a Vec cannot fail;
        // should it ever, the half-written bytes are dropped, never a torn line.
        let start = out.len();
        match self.write_json_object(out) {
            Ok(()) => out.push(b'\n'),
            Err(e) => {
                out.truncate(start);
                tracing::error!(error = %e, "could not serialise a usage record");
            }
        }
    }
}

/// What a caller records about one AI call; priced and stamped by the monitor.
///
/// Borrowed strings keep the common call free of allocations until the record
/// is built. The common call is a one-liner:
///
/// ```
/// use ai_usage_core::UsageEvent;
/// let ev = UsageEvent::new("qwen-plus", "实时分析").tokens(1200, 300).duration_ms(850.0);
/// assert_eq!(ev.usage.input_tokens, 1200);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct UsageEvent<'a> {
    /// Model name as sent to the provider.
    pub model: &'a str,
    /// App feature (功能).
    pub function: &'a str,
    /// Token counts.
    pub usage: TokenUsage,
    /// Wall time in milliseconds.
    pub duration_ms: f64,
    /// False for a failed call.
    pub success: bool,
    /// Error text of a failed call.
    pub error_msg: Option<&'a str>,
    /// Paying account.
    pub user_id: Option<&'a str>,
    /// Streamer (主播).
    pub anchor_id: Option<&'a str>,
    /// Broadcast session.
    pub session_id: Option<&'a str>,
    /// An explicit cost that overrides the price table (in `currency`, or the
    /// model's currency, or CNY).
    pub cost: Option<Money>,
    /// Currency of an explicit `cost`.
    pub currency: Option<Currency>,
    /// Provider or app request id.
    pub request_id: Option<&'a str>,
    /// Free-form labels.
    pub tags: &'a [&'a str],
    /// Epoch seconds; `None` means now.
    pub timestamp: Option<f64>,
    /// The provider that served the call (id such as `anthropic`, API base
    /// URL or name); picks that provider's catalogue price.
    pub provider: Option<&'a str>,
}

impl Default for UsageEvent<'_> {
    fn default() -> Self {
        UsageEvent {
            model: "",
            function: "",
            usage: TokenUsage::default(),
            duration_ms: 0.0,
            success: true,
            error_msg: None,
            user_id: None,
            anchor_id: None,
            session_id: None,
            cost: None,
            currency: None,
            request_id: None,
            tags: &[],
            timestamp: None,
            provider: None,
        }
    }
}

impl<'a> UsageEvent<'a> {
    /// A successful call of `model` for `function`, no tokens yet.
    pub fn new(model: &'a str, function: &'a str) -> Self {
        UsageEvent {
            model,
            function,
            ..UsageEvent::default()
        }
    }

    /// Sets input and output tokens.
    pub fn tokens(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.usage.input_tokens = input_tokens;
        self.usage.output_tokens = output_tokens;
        self
    }

    /// Sets all token counts at once.
    pub fn usage(mut self, usage: TokenUsage) -> Self {
        self.usage = usage;
        self
    }

    /// Sets the provider-reported total (kept as `max(total, in + out)`).
    pub fn total_tokens(mut self, total: u64) -> Self {
        self.usage.total_tokens = Some(total);
        self
    }

    /// Sets cached input tokens.
    pub fn cached_tokens(mut self, cached: u64) -> Self {
        self.usage.cached_input_tokens = cached;
        self
    }

    /// Sets cache-write tokens (part of input, priced at the cache-write rate).
    pub fn cache_write_tokens(mut self, written: u64) -> Self {
        self.usage.cache_write_tokens = written;
        self
    }

    /// Sets audio input and output tokens (parts of input and output).
    pub fn audio_tokens(mut self, input_audio: u64, output_audio: u64) -> Self {
        self.usage.input_audio_tokens = input_audio;
        self.usage.output_audio_tokens = output_audio;
        self
    }

    /// Sets the provider (id, API base URL or name) whose price applies.
    pub fn provider(mut self, provider: &'a str) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Sets reasoning tokens.
    pub fn reasoning_tokens(mut self, reasoning: u64) -> Self {
        self.usage.reasoning_tokens = reasoning;
        self
    }

    /// Sets the duration in milliseconds.
    pub fn duration_ms(mut self, ms: f64) -> Self {
        self.duration_ms = ms;
        self
    }

    /// Marks the call failed with an error message.
    pub fn failed(mut self, error_msg: &'a str) -> Self {
        self.success = false;
        self.error_msg = Some(error_msg);
        self
    }

    /// Sets the user id.
    pub fn user(mut self, user_id: &'a str) -> Self {
        self.user_id = Some(user_id);
        self
    }

    /// Sets the anchor (主播) id.
    pub fn anchor(mut self, anchor_id: &'a str) -> Self {
        self.anchor_id = Some(anchor_id);
        self
    }

    /// Sets the session (broadcast) id.
    pub fn session(mut self, session_id: &'a str) -> Self {
        self.session_id = Some(session_id);
        self
    }

    /// Sets an explicit cost in the model's currency (CNY for unknown models).
    pub fn cost(mut self, cost: Money) -> Self {
        self.cost = Some(cost);
        self
    }

    /// Sets an explicit cost in a given currency.
    pub fn cost_in(mut self, cost: Money, currency: Currency) -> Self {
        self.cost = Some(cost);
        self.currency = Some(currency);
        self
    }

    /// Sets the request id.
    pub fn request_id(mut self, id: &'a str) -> Self {
        self.request_id = Some(id);
        self
    }

    /// Sets free-form tags.
    pub fn tags(mut self, tags: &'a [&'a str]) -> Self {
        self.tags = tags;
        self
    }

    /// Sets the timestamp (epoch seconds) instead of now.
    pub fn at(mut self, timestamp: f64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }
}
