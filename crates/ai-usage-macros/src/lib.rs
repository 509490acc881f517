//! The `#[track_ai_usage]` attribute of `ai-usage-monitor`.
//!
//! Use it through the facade crate, `ai_usage_monitor::track_ai_usage`: the
//! generated code refers to `::ai_usage_monitor::__private`, which this crate
//! cannot provide on its own.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use proc_macro::TokenStream;

mod attr;
mod expand;

/// Records every call of the function it decorates: tokens, cost, duration,
/// success, and the user / anchor / session ids.
///
/// Add one line above an AI-calling function:
///
/// ```ignore
/// use ai_usage_monitor::track_ai_usage;
///
/// #[track_ai_usage("实时分析", "qwen-plus")]
/// async fn generate_analysis(ctx: &LiveContext, session_id: &str) -> Result<ChatResponse, ApiError> {
///     client.chat(ctx.prompt()).await
/// }
/// ```
///
/// # Arguments
///
/// | form | meaning |
/// | --- | --- |
/// | `"功能"` (first positional) or `function = "…"` | the app feature; defaults to the function's name |
/// | `"model"` (second positional) or `model = "…"` | the model; defaults to the response's model, else `"unknown"` |
/// | `provider = "…"` | the provider whose catalogue price applies (`"anthropic"`, `"aws"`, an API base URL …) |
/// | `user_id = expr`, `anchor_id = expr`, `session_id = expr` | ids, evaluated once when the call starts |
/// | `extract = path::to_fn` | custom extraction: `fn(&Ret) -> X` where `X: UsageSource` (e.g. `Option<TokenUsage>` or `Result<TokenUsage, &E>`) |
/// | `monitor = expr` | a non-global monitor: a `UsageMonitor`, a reference to one, or an `Arc`/`Box` of one |
/// | `context = param` | a parameter whose type implements `UsageContext` (same as `#[usage_context]` on it) |
/// | `crate = "path"` | where the facade lives when the dependency is renamed |
/// | `budget_guard` | refuse the call before it is made when a matching budget is at its hard limit (`block_at`): returns `Err(BudgetExceeded.into())`, so the function must return `Result<_, E>` with `E: From<BudgetExceeded>`; a refusal is recorded as neither a call nor a cost |
///
/// `function`, `model` and `provider` must be non-empty string literals. Every misuse
/// (an unknown or repeated key, a missing value, a `context` naming no
/// parameter, the attribute on something other than a function with a body,
/// …) is a compile error that points at the offending tokens and says how to
/// fix them; the repository's `tests/ui/fail` holds one example of each.
///
/// # What is recorded
///
/// The returned value is read through the `UsageSource` trait (implemented for
/// `TokenUsage`, provider JSON as `serde_json::Value`, `Result`, `Option`,
/// `Box`, `Arc`, `&T`, `(T, TokenUsage)`, and your own types). A `Result::Err`
/// is recorded as a failure with the error's `Display`; reading usage never
/// changes the returned value and never turns a success into a failure.
///
/// Ids come from, in order: an explicit `user_id = …` argument; a parameter
/// named `user_id`, `anchor_id` or `session_id` (`&str`, `String`, integers,
/// `Option` of those, or any type implementing `IntoUsageId`); the context
/// parameter (`#[usage_context] ctx: &LiveContext` or `context = ctx`).
///
/// A panic in the body is recorded as a failure (`"panic: …"`) and keeps
/// unwinding. An `async` call whose future is dropped before it completes is
/// recorded as a failure `"cancelled"` with the time it ran.
///
/// # The call's `tracing` span
///
/// Each call runs in an INFO span of target `ai_usage_monitor`, named
/// `chat {model}` (`chat` alone when the model comes from the response), with
/// the GenAI semantic-convention attribute names: `gen_ai.operation.name`
/// (`chat`), `gen_ai.request.model` and `gen_ai.provider.name` (when the
/// attribute names them), `ai_usage.function`, `otel.kind = "client"`; when
/// the call is recorded, `gen_ai.response.model`,
/// `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`, and on failure
/// `error.type` (the error's text when it looks like a type name, else
/// `_OTHER`; `panic`, `cancelled`) with `otel.status_code = "ERROR"`. An app
/// with a `tracing-opentelemetry` layer exports it as a standard GenAI span.
/// The span is entered while the body runs (on every poll of an `async`
/// body); with no subscriber it is never opened. A call refused by
/// `budget_guard` has no span.
///
/// # Where it works
///
/// Sync and `async` functions, methods (`&self`, `&mut self`, `self`), generics
/// and where-clauses, `impl Trait` arguments and returns, methods in
/// `#[async_trait]` impls, bodies with early `return` and `?`. Not on `const fn`.
///
/// # Borrowing
///
/// Explicit id and `monitor = …` expressions are evaluated before the body
/// runs and kept until it returns: they must not borrow a parameter the body
/// moves or mutates (write `.to_string()`/`.clone()` then). The sync body runs
/// in a closure, so a function returning a `&mut` borrowed from a `&mut`
/// parameter is not supported.
#[proc_macro_attribute]
pub fn track_ai_usage(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::track(args.into(), item.into()).into()
}
