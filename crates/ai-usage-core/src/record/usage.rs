//! Token usage of one call, and how to read it from a provider's response.

use serde::{Deserialize, Serialize};

use crate::pricing::catalogue::CatalogueUsage;

/// Token counts of one AI call, as providers report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Prompt tokens, including cached ones.
    pub input_tokens: u64,
    /// Completion tokens, including reasoning ones.
    pub output_tokens: u64,
    /// A provider-reported total; kept as `max(total, input + output)` like the seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    /// Input tokens served from the provider's prompt cache (part of `input_tokens`).
    #[serde(default)]
    pub cached_input_tokens: u64,
    /// Reasoning ("thinking") tokens (part of `output_tokens`).
    #[serde(default)]
    pub reasoning_tokens: u64,
    /// Input tokens written to the provider's prompt cache (part of
    /// `input_tokens`, apart from `cached_input_tokens`), priced at the
    /// model's cache-write rate.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
    /// Audio input tokens (part of `input_tokens`, cached ones included).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub input_audio_tokens: u64,
    /// Audio input tokens read from the cache (part of both
    /// `cached_input_tokens` and `input_audio_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_audio_input_tokens: u64,
    /// Audio output tokens (part of `output_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub output_audio_tokens: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl TokenUsage {
    /// Plain input/output counts.
    pub const fn new(input_tokens: u64, output_tokens: u64) -> TokenUsage {
        TokenUsage {
            input_tokens,
            output_tokens,
            total_tokens: None,
            cached_input_tokens: 0,
            reasoning_tokens: 0,
            cache_write_tokens: 0,
            input_audio_tokens: 0,
            cached_audio_input_tokens: 0,
            output_audio_tokens: 0,
        }
    }

    /// The first part that exceeds its whole, as (field, what it must not
    /// exceed): cache reads + cache writes + uncached audio within
    /// `input_tokens`, cached audio within both cache reads and audio input,
    /// reasoning + audio output within `output_tokens`. `None` when the
    /// parts fit (what the catalogue needs to price a call).
    pub fn inconsistency(&self) -> Option<(&'static str, &'static str)> {
        let uncached_audio = self
            .input_audio_tokens
            .checked_sub(self.cached_audio_input_tokens);
        let Some(uncached_audio) = uncached_audio else {
            return Some((
                "cached_audio_input_tokens",
                "must not exceed input_audio_tokens",
            ));
        };
        if self.cached_audio_input_tokens > self.cached_input_tokens {
            return Some((
                "cached_audio_input_tokens",
                "must not exceed cached_input_tokens",
            ));
        }
        if self.cached_input_tokens > self.input_tokens {
            return Some(("cached_input_tokens", "must not exceed input_tokens"));
        }
        let parts = u128::from(self.cached_input_tokens)
            + u128::from(self.cache_write_tokens)
            + u128::from(uncached_audio);
        if parts > u128::from(self.input_tokens) {
            let field = if self.cache_write_tokens > 0 {
                "cache_write_tokens"
            } else {
                "input_audio_tokens"
            };
            return Some((
                field,
                "cached_input_tokens + cache_write_tokens + uncached audio input must not exceed input_tokens",
            ));
        }
        if self.reasoning_tokens > self.output_tokens {
            return Some(("reasoning_tokens", "must not exceed output_tokens"));
        }
        if self.output_audio_tokens > self.output_tokens {
            return Some(("output_audio_tokens", "must not exceed output_tokens"));
        }
        None
    }

    /// Every count with its field name (`total_tokens` 0 when absent): what
    /// limits and error messages walk instead of naming each field.
    pub fn named_counts(&self) -> [(&'static str, u64); 9] {
        [
            ("input_tokens", self.input_tokens),
            ("output_tokens", self.output_tokens),
            ("total_tokens", self.total_tokens.unwrap_or(0)),
            ("cached_input_tokens", self.cached_input_tokens),
            ("reasoning_tokens", self.reasoning_tokens),
            ("cache_write_tokens", self.cache_write_tokens),
            ("input_audio_tokens", self.input_audio_tokens),
            ("cached_audio_input_tokens", self.cached_audio_input_tokens),
            ("output_audio_tokens", self.output_audio_tokens),
        ]
    }

    /// The largest count of any kind (`total_tokens` 0 when absent): one
    /// comparison tells whether any count is over a limit.
    pub fn largest_count(&self) -> u64 {
        self.named_counts()
            .into_iter()
            .fold(0, |largest, (_, n)| largest.max(n))
    }

    /// The count named `name` (any but `total_tokens`, which may be
    /// absent), with its name as a static string: how doors that take the
    /// token details as keywords set them without naming each.
    pub fn count_mut(&mut self, name: &str) -> Option<(&'static str, &mut u64)> {
        let counts = [
            ("input_tokens", &mut self.input_tokens),
            ("output_tokens", &mut self.output_tokens),
            ("cached_input_tokens", &mut self.cached_input_tokens),
            ("reasoning_tokens", &mut self.reasoning_tokens),
            ("cache_write_tokens", &mut self.cache_write_tokens),
            ("input_audio_tokens", &mut self.input_audio_tokens),
            (
                "cached_audio_input_tokens",
                &mut self.cached_audio_input_tokens,
            ),
            ("output_audio_tokens", &mut self.output_audio_tokens),
        ];
        counts.into_iter().find(|(n, _)| *n == name)
    }

    /// These counts with `f` applied to each (e.g. a cap).
    pub fn map_counts(self, f: impl Fn(u64) -> u64) -> TokenUsage {
        TokenUsage {
            input_tokens: f(self.input_tokens),
            output_tokens: f(self.output_tokens),
            total_tokens: self.total_tokens.map(&f),
            cached_input_tokens: f(self.cached_input_tokens),
            reasoning_tokens: f(self.reasoning_tokens),
            cache_write_tokens: f(self.cache_write_tokens),
            input_audio_tokens: f(self.input_audio_tokens),
            cached_audio_input_tokens: f(self.cached_audio_input_tokens),
            output_audio_tokens: f(self.output_audio_tokens),
        }
    }

    /// The total as the seed records it: `max(total_tokens, input + output)`.
    pub fn total(&self) -> u64 {
        let sum = self.input_tokens.saturating_add(self.output_tokens);
        self.total_tokens.map_or(sum, |t| t.max(sum))
    }
}

impl From<&CatalogueUsage> for TokenUsage {
    /// Usage read by a catalogue extractor, with every part kept (the
    /// request count is not: a record is one request).
    fn from(u: &CatalogueUsage) -> TokenUsage {
        TokenUsage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            total_tokens: None,
            cached_input_tokens: u.cache_read_tokens,
            reasoning_tokens: u.reasoning_tokens,
            cache_write_tokens: u.cache_write_tokens,
            input_audio_tokens: u.input_audio_tokens,
            cached_audio_input_tokens: u.cache_audio_read_tokens,
            output_audio_tokens: u.output_audio_tokens,
        }
    }
}

impl From<&TokenUsage> for CatalogueUsage {
    /// A recorded usage: cached input tokens are cache reads and cache-write
    /// and audio tokens are parts of input; reasoning and audio output tokens
    /// parts of output. One request.
    fn from(u: &TokenUsage) -> CatalogueUsage {
        CatalogueUsage {
            input_tokens: u.input_tokens,
            cache_read_tokens: u.cached_input_tokens,
            cache_write_tokens: u.cache_write_tokens,
            input_audio_tokens: u.input_audio_tokens,
            cache_audio_read_tokens: u.cached_audio_input_tokens,
            output_tokens: u.output_tokens,
            output_audio_tokens: u.output_audio_tokens,
            reasoning_tokens: u.reasoning_tokens,
            requests: 1,
        }
    }
}

/// How to read token usage (and the answering model) from a value: what
/// `#[track_ai_usage]` calls on a decorated function's return value.
///
/// Implemented for [`TokenUsage`], provider JSON as [`serde_json::Value`]
/// (OpenAI chat completions and Responses, Anthropic, Gemini, DashScope),
/// `Result<T, E>` (an `Err` is a failed call, its message the error's
/// `Display`), `Option<T>`, `Box<T>`, `Arc<T>`, `Rc<T>`, `&T`, `&mut T` and
/// `(T, TokenUsage)`; with the `async-openai` feature, for that crate's chat
/// completion and Responses types. Implement it for your own response types:
///
/// ```
/// use ai_usage_core::{TokenUsage, UsageSource};
///
/// struct ChatResponse { model: String, prompt: u64, completion: u64 }
///
/// impl UsageSource for ChatResponse {
///     fn token_usage(&self) -> Option<TokenUsage> {
///         Some(TokenUsage::new(self.prompt, self.completion))
///     }
///     fn response_model(&self) -> Option<&str> {
///         Some(&self.model)
///     }
/// }
/// ```
///
/// Implementations must not fail or panic on odd values: return `None` for
/// what they cannot read (a panic is caught and the call recorded without
/// tokens, but never as a failure).
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not say how many tokens the call used",
    label = "`#[track_ai_usage]` reads token usage from this type",
    note = "implement `ai_usage_monitor::UsageSource` for `{Self}`, or read the usage yourself with \
            `extract = path::to_fn`, a `fn(&ReturnType) -> Option<TokenUsage>` (what it returns \
            must itself be a `UsageSource`)"
)]
pub trait UsageSource {
    /// Token counts this value reports, if any.
    fn token_usage(&self) -> Option<TokenUsage>;

    /// The model that answered, if the value says (used when the attribute
    /// names no model).
    fn response_model(&self) -> Option<&str> {
        None
    }

    /// The error, when this value is a failed call (recorded as
    /// `success: false` with this message).
    fn call_error(&self) -> Option<&dyn std::fmt::Display> {
        None
    }
}

impl UsageSource for TokenUsage {
    fn token_usage(&self) -> Option<TokenUsage> {
        Some(*self)
    }
}

/// A value with its usage beside it, e.g. `(String, TokenUsage)` from a
/// client that returns the text and the counts separately.
impl<T> UsageSource for (T, TokenUsage) {
    fn token_usage(&self) -> Option<TokenUsage> {
        Some(self.1)
    }
}

impl<T: UsageSource, E: std::fmt::Display> UsageSource for Result<T, E> {
    fn token_usage(&self) -> Option<TokenUsage> {
        self.as_ref().ok().and_then(T::token_usage)
    }
    fn response_model(&self) -> Option<&str> {
        self.as_ref().ok().and_then(T::response_model)
    }
    fn call_error(&self) -> Option<&dyn std::fmt::Display> {
        match self {
            Ok(v) => v.call_error(),
            Err(e) => Some(e),
        }
    }
}

impl<T: UsageSource> UsageSource for Option<T> {
    fn token_usage(&self) -> Option<TokenUsage> {
        self.as_ref().and_then(T::token_usage)
    }
    fn response_model(&self) -> Option<&str> {
        self.as_ref().and_then(T::response_model)
    }
    fn call_error(&self) -> Option<&dyn std::fmt::Display> {
        self.as_ref().and_then(T::call_error)
    }
}

/// Forwards all three methods through a pointer type.
macro_rules! forward_usage_source {
    ($($ty:ty),* $(,)?) => {$(
        impl<T: UsageSource + ?Sized> UsageSource for $ty {
            fn token_usage(&self) -> Option<TokenUsage> {
                (**self).token_usage()
            }
            fn response_model(&self) -> Option<&str> {
                (**self).response_model()
            }
            fn call_error(&self) -> Option<&dyn std::fmt::Display> {
                (**self).call_error()
            }
        }
    )*};
}

forward_usage_source!(&T, &mut T, Box<T>, std::sync::Arc<T>, std::rc::Rc<T>);

#[cfg(feature = "async-openai")]
mod async_openai_impls {
    use crate::record::usage::{TokenUsage, UsageSource};
    use async_openai::types::responses::{Response, Usage};
    use async_openai::types::{
        CompletionUsage, CreateChatCompletionResponse, CreateChatCompletionStreamResponse,
    };

    impl UsageSource for CompletionUsage {
        fn token_usage(&self) -> Option<TokenUsage> {
            Some(TokenUsage {
                input_tokens: u64::from(self.prompt_tokens),
                output_tokens: u64::from(self.completion_tokens),
                total_tokens: Some(u64::from(self.total_tokens)),
                cached_input_tokens: self
                    .prompt_tokens_details
                    .as_ref()
                    .and_then(|d| d.cached_tokens)
                    .map_or(0, u64::from),
                reasoning_tokens: self
                    .completion_tokens_details
                    .as_ref()
                    .and_then(|d| d.reasoning_tokens)
                    .map_or(0, u64::from),
                input_audio_tokens: self
                    .prompt_tokens_details
                    .as_ref()
                    .and_then(|d| d.audio_tokens)
                    .map_or(0, u64::from),
                output_audio_tokens: self
                    .completion_tokens_details
                    .as_ref()
                    .and_then(|d| d.audio_tokens)
                    .map_or(0, u64::from),
                ..TokenUsage::default()
            })
        }
    }

    impl UsageSource for CreateChatCompletionResponse {
        fn token_usage(&self) -> Option<TokenUsage> {
            self.usage.as_ref().and_then(UsageSource::token_usage)
        }
        fn response_model(&self) -> Option<&str> {
            Some(&self.model)
        }
    }

    /// The last chunk of a stream requested with `include_usage` carries it.
    impl UsageSource for CreateChatCompletionStreamResponse {
        fn token_usage(&self) -> Option<TokenUsage> {
            self.usage.as_ref().and_then(UsageSource::token_usage)
        }
        fn response_model(&self) -> Option<&str> {
            Some(&self.model)
        }
    }

    impl UsageSource for Usage {
        fn token_usage(&self) -> Option<TokenUsage> {
            Some(TokenUsage {
                input_tokens: u64::from(self.input_tokens),
                output_tokens: u64::from(self.output_tokens),
                total_tokens: Some(u64::from(self.total_tokens)),
                cached_input_tokens: self.input_tokens_details.cached_tokens.map_or(0, u64::from),
                reasoning_tokens: self
                    .output_tokens_details
                    .reasoning_tokens
                    .map_or(0, u64::from),
                ..TokenUsage::default()
            })
        }
    }

    /// A Responses API response; its `error` object (a failed response
    /// returned with HTTP 200) is not treated as a failure of the call.
    impl UsageSource for Response {
        fn token_usage(&self) -> Option<TokenUsage> {
            self.usage.as_ref().and_then(UsageSource::token_usage)
        }
        fn response_model(&self) -> Option<&str> {
            Some(&self.model)
        }
    }
}

#[cfg(all(test, feature = "async-openai"))]
mod async_openai_tests {
    use crate::record::usage::UsageSource;
    use async_openai::types::CreateChatCompletionResponse;

    #[test]
    fn chat_completion_response_usage() {
        // A chat completion as OpenAI returns it (ids shortened).
        let body = serde_json::json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1761403494,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "好的"}}],
            "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
                      "prompt_tokens_details": {"cached_tokens": 1024},
                      "completion_tokens_details": {"reasoning_tokens": 64}}
        });
        let r: CreateChatCompletionResponse = serde_json::from_value(body).expect("valid response");
        let u = r.token_usage().expect("usage present");
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.total()),
            (1200, 300, 1500)
        );
        assert_eq!((u.cached_input_tokens, u.reasoning_tokens), (1024, 64));
        assert_eq!(r.response_model(), Some("gpt-4o-mini-2024-07-18"));
    }
}
