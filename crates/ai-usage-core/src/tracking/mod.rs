//! Runtime support for the `#[track_ai_usage]` attribute.
//!
//! The public part is what users implement or pass:
//! - [`UsageContext`]: a parameter type that carries user / anchor / session ids;
//! - [`IntoUsageId`]: what a parameter named `user_id`, `anchor_id` or
//!   `session_id` (or an explicit `user_id = …`) may be;
//! - [`MonitorHandle`]: what `monitor = …` may be.
//!
//! The rest ([`CallGuard`], [`Tracked`], [`run_sync`], …) is called by the
//! generated code only; it is public so the facade can re-export it, and may
//! change without notice.
//!
//! Recording never affects the decorated function: extraction panics are
//! caught, [`UsageMonitor::record`] never panics nor blocks on disk, and the
//! function's value is returned untouched.

mod budget_guard;
pub use budget_guard::{check_budget, refuse, BudgetRefusal};

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::monitor::{get_usage_monitor, UsageMonitor};
use crate::record::usage::{TokenUsage, UsageSource};
use crate::record::UsageEvent;

// ---------------------------------------------------------------------------
// Ids

/// A value that can be recorded as a user, anchor or session id.
///
/// `#[track_ai_usage]` records parameters named `user_id`, `anchor_id` and
/// `session_id` through this trait, and the values of explicit `user_id = …`
/// arguments. Implemented for `&str`, `String`, `Cow<str>`, `Box<str>`,
/// `Arc<str>`, `Rc<str>`, all integer types, `Option` of any of these and
/// references to them. Borrowed strings are recorded without copying.
///
/// The id's lifetime `'a` is that of the data, not of the borrow of the
/// parameter, so the function body stays free to move the parameter.
///
/// ```
/// use std::borrow::Cow;
/// use ai_usage_core::IntoUsageId;
///
/// #[derive(Clone, Copy)]
/// struct UserId(u32);
///
/// impl IntoUsageId<'static> for UserId {
///     fn usage_id(&self) -> Option<Cow<'static, str>> {
///         Some(Cow::Owned(format!("u{}", self.0)))
///     }
/// }
/// assert_eq!(UserId(7).usage_id().as_deref(), Some("u7"));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be recorded as a user, anchor or session id",
    label = "recorded as an id by `#[track_ai_usage]`",
    note = "ids may be `&str`, `String`, integers or `Option`s of them; implement \
            `ai_usage_monitor::IntoUsageId` for `{Self}`, pass the id explicitly \
            (`session_id = …`), or rename the parameter (parameters named `user_id`, \
            `anchor_id` and `session_id` are recorded automatically)"
)]
pub trait IntoUsageId<'a> {
    /// The id as text, or `None` when there is none.
    fn usage_id(&self) -> Option<Cow<'a, str>>;
}

impl<'a> IntoUsageId<'a> for &'a str {
    fn usage_id(&self) -> Option<Cow<'a, str>> {
        Some(Cow::Borrowed(*self))
    }
}

impl<'a> IntoUsageId<'a> for Cow<'a, str> {
    fn usage_id(&self) -> Option<Cow<'a, str>> {
        Some(self.clone())
    }
}

/// Owned strings are copied: the body may move or drop them.
macro_rules! owned_string_ids {
    ($($ty:ty),*) => {$(
        impl<'a> IntoUsageId<'a> for $ty {
            fn usage_id(&self) -> Option<Cow<'a, str>> {
                Some(Cow::Owned(self.to_string()))
            }
        }
    )*};
}

owned_string_ids!(String, Box<str>, Arc<str>, Rc<str>);
owned_string_ids!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

impl<'a, T: IntoUsageId<'a>> IntoUsageId<'a> for Option<T> {
    fn usage_id(&self) -> Option<Cow<'a, str>> {
        self.as_ref().and_then(T::usage_id)
    }
}

impl<'a, T: IntoUsageId<'a> + ?Sized> IntoUsageId<'a> for &T {
    fn usage_id(&self) -> Option<Cow<'a, str>> {
        (**self).usage_id()
    }
}

impl<'a, T: IntoUsageId<'a> + ?Sized> IntoUsageId<'a> for &mut T {
    fn usage_id(&self) -> Option<Cow<'a, str>> {
        (**self).usage_id()
    }
}

// ---------------------------------------------------------------------------
// Context

/// A type that knows who and what an AI call is for: the user, the anchor
/// (主播) and the broadcast session.
///
/// Mark the parameter with `#[usage_context]` (or name it with
/// `context = ctx`) and `#[track_ai_usage]` records its ids. Parameters named
/// `user_id`, `anchor_id` or `session_id` and explicit arguments take
/// precedence over it.
///
/// ```
/// use ai_usage_core::UsageContext;
///
/// struct LiveContext { anchor: String, session: String }
///
/// impl UsageContext for LiveContext {
///     fn anchor_id(&self) -> Option<&str> { Some(&self.anchor) }
///     fn session_id(&self) -> Option<&str> { Some(&self.session) }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a usage context",
    label = "marked as the context of a `#[track_ai_usage]` call",
    note = "implement `ai_usage_monitor::UsageContext` for `{Self}` (its `user_id`, \
            `anchor_id` and `session_id` methods all default to `None`), or remove \
            `#[usage_context]` / `context = …`"
)]
pub trait UsageContext {
    /// The paying user, if known.
    fn user_id(&self) -> Option<&str> {
        None
    }
    /// The anchor (主播), if known.
    fn anchor_id(&self) -> Option<&str> {
        None
    }
    /// The broadcast session, if known.
    fn session_id(&self) -> Option<&str> {
        None
    }
}

macro_rules! forward_context {
    ($($ty:ty),*) => {$(
        impl<T: UsageContext + ?Sized> UsageContext for $ty {
            fn user_id(&self) -> Option<&str> {
                (**self).user_id()
            }
            fn anchor_id(&self) -> Option<&str> {
                (**self).anchor_id()
            }
            fn session_id(&self) -> Option<&str> {
                (**self).session_id()
            }
        }
    )*};
}

forward_context!(&T, &mut T, Box<T>, Arc<T>, Rc<T>);

/// The three ids read from a [`UsageContext`] at the start of a call.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct ContextIds<'a> {
    /// User id.
    pub user_id: Option<Cow<'a, str>>,
    /// Anchor id.
    pub anchor_id: Option<Cow<'a, str>>,
    /// Session id.
    pub session_id: Option<Cow<'a, str>>,
}

impl<'a> ContextIds<'a> {
    /// Borrows the ids of a context passed by shared reference (no copies).
    #[inline]
    pub fn borrowed<C: UsageContext + ?Sized>(cx: &'a C) -> Self {
        ContextIds {
            user_id: cx.user_id().map(Cow::Borrowed),
            anchor_id: cx.anchor_id().map(Cow::Borrowed),
            session_id: cx.session_id().map(Cow::Borrowed),
        }
    }

    /// Copies the ids of a context passed by value or `&mut` (the body may
    /// move or change it).
    #[inline]
    pub fn owned<C: UsageContext + ?Sized>(cx: &C) -> Self {
        let own = |s: &str| Cow::Owned(s.to_owned());
        ContextIds {
            user_id: cx.user_id().map(own),
            anchor_id: cx.anchor_id().map(own),
            session_id: cx.session_id().map(own),
        }
    }
}

// ---------------------------------------------------------------------------
// Monitor

/// What `monitor = …` may be: a [`UsageMonitor`], a reference to one, or a
/// `Box`/`Arc`/`Rc` of one.
#[diagnostic::on_unimplemented(
    message = "`monitor = …` must be a `UsageMonitor`, a reference to one, or an `Arc`/`Box` of one, not `{Self}`",
    label = "not a usage monitor"
)]
pub trait MonitorHandle {
    /// The monitor to record on.
    fn usage_monitor(&self) -> &UsageMonitor;
}

impl MonitorHandle for UsageMonitor {
    #[inline]
    fn usage_monitor(&self) -> &UsageMonitor {
        self
    }
}

macro_rules! forward_handle {
    ($($ty:ty),*) => {$(
        impl<T: MonitorHandle + ?Sized> MonitorHandle for $ty {
            #[inline]
            fn usage_monitor(&self) -> &UsageMonitor {
                (**self).usage_monitor()
            }
        }
    )*};
}

forward_handle!(&T, &mut T, Box<T>, Arc<T>, Rc<T>);

/// The global monitor (see [`get_usage_monitor`]), used when no `monitor = …`
/// is given.
#[doc(hidden)]
#[inline]
pub fn global_monitor() -> &'static UsageMonitor {
    get_usage_monitor()
}

// ---------------------------------------------------------------------------
// The call guard

/// One tracked call in flight. Records exactly once: through
/// [`finish`](CallGuard::finish) when the function returns, through
/// [`panicked`](CallGuard::panicked) when it panics, or on drop (the future
/// was dropped before completing: `"cancelled"`).
#[doc(hidden)]
#[must_use = "a dropped guard records the call as cancelled"]
pub struct CallGuard<'a> {
    inner: Option<Active<'a>>,
}

struct Active<'a> {
    monitor: &'a UsageMonitor,
    function: &'static str,
    model: Option<&'static str>,
    provider: Option<&'static str>,
    user_id: Option<Cow<'a, str>>,
    anchor_id: Option<Cow<'a, str>>,
    session_id: Option<Cow<'a, str>>,
    /// The call's `tracing` span (disabled when no subscriber wants it):
    /// entered while the body runs, its result fields filled on record.
    span: tracing::Span,
    start: Instant,
}

impl fmt::Debug for CallGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Some(a) => f
                .debug_struct("CallGuard")
                .field("function", &a.function)
                .field("model", &a.model)
                .field("elapsed", &a.start.elapsed())
                .finish_non_exhaustive(),
            None => f.write_str("CallGuard(done)"),
        }
    }
}

impl<'a> CallGuard<'a> {
    /// Starts timing a call of `function` recorded on `monitor`, in `span`
    /// (opened by the generated code, whose name and fields are static per
    /// call site; disabled when no subscriber wants it): entered while the
    /// body runs, and the response model, token counts and `error.type` are
    /// recorded on it when the call is recorded.
    #[inline]
    pub fn start(monitor: &'a UsageMonitor, function: &'static str, span: tracing::Span) -> Self {
        CallGuard {
            inner: Some(Active {
                monitor,
                function,
                model: None,
                provider: None,
                user_id: None,
                anchor_id: None,
                session_id: None,
                span,
                start: Instant::now(),
            }),
        }
    }

    /// A guard that records nothing.
    #[inline]
    pub fn disarmed() -> Self {
        CallGuard { inner: None }
    }

    /// The model named in the attribute (else the response's, else `"unknown"`).
    #[inline]
    pub fn model(mut self, model: &'static str) -> Self {
        if let Some(a) = &mut self.inner {
            a.model = Some(model);
        }
        self
    }

    /// The provider named in the attribute: picks its catalogue price.
    #[inline]
    pub fn provider(mut self, provider: &'static str) -> Self {
        if let Some(a) = &mut self.inner {
            a.provider = Some(provider);
        }
        self
    }

    /// The span to enter while the body runs (none once finished).
    #[inline]
    fn active_span(&self) -> Option<&tracing::Span> {
        self.inner
            .as_ref()
            .map(|a| &a.span)
            .filter(|s| !s.is_disabled())
    }

    /// Sets the user id.
    #[inline]
    pub fn user_id(mut self, id: Option<Cow<'a, str>>) -> Self {
        if let Some(a) = &mut self.inner {
            a.user_id = id;
        }
        self
    }

    /// Sets the anchor id.
    #[inline]
    pub fn anchor_id(mut self, id: Option<Cow<'a, str>>) -> Self {
        if let Some(a) = &mut self.inner {
            a.anchor_id = id;
        }
        self
    }

    /// Sets the session id.
    #[inline]
    pub fn session_id(mut self, id: Option<Cow<'a, str>>) -> Self {
        if let Some(a) = &mut self.inner {
            a.session_id = id;
        }
        self
    }

    /// Records the call from its return value.
    #[inline]
    pub fn finish<S: UsageSource + ?Sized>(self, value: &S) {
        self.finish_with(value, |v, out| out.source(v));
    }

    /// Records the call with a custom extraction (`extract = …`), which fills
    /// `out` from the return value.
    pub fn finish_with<R: ?Sized>(mut self, value: &R, extract: impl FnOnce(&R, &mut Extracted)) {
        let Some(active) = self.inner.take() else {
            return;
        };
        // The call ends here; extraction time is ours, not the caller's.
        let duration_ms = active.elapsed_ms();
        let mut out = Extracted {
            want_model: active.model.is_none(),
            ..Extracted::default()
        };
        // A panicking extractor must neither fail the user's call nor turn it
        // into a failure: record what is known (no tokens) and go on.
        if panic::catch_unwind(AssertUnwindSafe(|| extract(value, &mut out))).is_err() {
            tracing::warn!(
                function = active.function,
                "reading token usage panicked; the call is recorded without tokens"
            );
            out = Extracted::default();
        }
        active.record(
            duration_ms,
            out.usage.unwrap_or_default(),
            out.model.as_deref(),
            out.error.as_deref(),
            out.error.as_deref().map(error_type),
        );
    }

    /// Records the call as failed by a panic with this payload.
    pub fn panicked(mut self, payload: &(dyn Any + Send)) {
        let Some(active) = self.inner.take() else {
            return;
        };
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
        let text = match message {
            Some(m) => format!("panic: {m}"),
            None => "panic".to_owned(),
        };
        active.record(
            active.elapsed_ms(),
            TokenUsage::default(),
            None,
            Some(&text),
            Some("panic"),
        );
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if let Some(active) = self.inner.take() {
            // Not finished: the future was dropped mid-call, or something
            // unwound past the guard without going through `panicked`.
            let why = if std::thread::panicking() {
                "panic"
            } else {
                "cancelled"
            };
            active.record(
                active.elapsed_ms(),
                TokenUsage::default(),
                None,
                Some(why),
                Some(why),
            );
        }
    }
}

impl Active<'_> {
    fn elapsed_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    fn record(
        &self,
        duration_ms: f64,
        usage: TokenUsage,
        model: Option<&str>,
        error: Option<&str>,
        error_type: Option<&str>,
    ) {
        let model = self.model.or(model).unwrap_or("unknown");
        if !self.span.is_disabled() {
            self.record_on_span(model, &usage, error_type);
        }
        let mut ev = UsageEvent::new(model, self.function)
            .usage(usage)
            .duration_ms(duration_ms);
        if let Some(e) = error {
            ev = ev.failed(e);
        }
        ev.user_id = self.user_id.as_deref();
        ev.anchor_id = self.anchor_id.as_deref();
        ev.session_id = self.session_id.as_deref();
        ev.provider = self.provider;
        self.monitor.record(&ev);
    }

    /// The result's GenAI attributes on the call's span (declared `Empty`
    /// by the generated code, so a field recorded here is exported).
    #[cold]
    fn record_on_span(&self, model: &str, usage: &TokenUsage, error_type: Option<&str>) {
        let span = &self.span;
        span.record("gen_ai.response.model", model);
        span.record("gen_ai.usage.input_tokens", usage.input_tokens);
        span.record("gen_ai.usage.output_tokens", usage.output_tokens);
        if let Some(e) = error_type {
            span.record("error.type", e);
            // `tracing-opentelemetry` turns this into the span's ERROR status.
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// A low-cardinality `error.type` from an error's text (the GenAI
/// conventions want a class, not a message): the text itself when it looks
/// like a type name (short, no spaces), else `_OTHER`.
fn error_type(error: &str) -> &str {
    let e = error.trim();
    if !e.is_empty() && e.len() <= 64 && !e.contains(char::is_whitespace) {
        e
    } else {
        "_OTHER"
    }
}

/// What extraction read from a return value.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct Extracted {
    usage: Option<TokenUsage>,
    model: Option<String>,
    error: Option<String>,
    want_model: bool,
}

impl Extracted {
    /// Reads usage, model and error from `source`.
    #[inline]
    pub fn source<S: UsageSource + ?Sized>(&mut self, source: &S) {
        self.usage = source.token_usage();
        if self.want_model {
            self.model = source
                .response_model()
                .filter(|m| !m.trim().is_empty())
                .map(str::to_owned);
        }
        self.error = source.call_error().map(|e| e.to_string());
    }
}

// ---------------------------------------------------------------------------
// Running the body

/// Runs a sync body; a panic is recorded, then resumed unchanged.
#[doc(hidden)]
#[inline]
pub fn run_sync<'a, R>(guard: CallGuard<'a>, body: impl FnOnce() -> R) -> (R, CallGuard<'a>) {
    let entered = guard.active_span().map(tracing::Span::enter);
    let result = panic::catch_unwind(AssertUnwindSafe(body));
    drop(entered);
    match result {
        Ok(value) => (value, guard),
        Err(payload) => {
            guard.panicked(&*payload);
            panic::resume_unwind(payload)
        }
    }
}

/// Polls an async body: a panic is recorded and resumed; dropping this
/// future before it completes records the call as `"cancelled"` (through
/// the guard it owns).
#[doc(hidden)]
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Tracked<'a, F> {
    future: F,
    guard: Option<CallGuard<'a>>,
}

impl<'a, F: Future + Unpin> Tracked<'a, F> {
    /// Tracks `future` (pinned by the caller) with `guard`.
    #[inline]
    pub fn new(future: F, guard: CallGuard<'a>) -> Self {
        Tracked {
            future,
            guard: Some(guard),
        }
    }
}

impl<'a, F: Future + Unpin> Future for Tracked<'a, F> {
    type Output = (F::Output, CallGuard<'a>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // Entered for each poll only (what `tracing::Instrument` does), so
        // the span is current exactly while the body runs, across awaits.
        let entered = this
            .guard
            .as_ref()
            .and_then(CallGuard::active_span)
            .map(tracing::Span::enter);
        let future = &mut this.future;
        let polled = panic::catch_unwind(AssertUnwindSafe(|| Pin::new(future).poll(cx)));
        drop(entered);
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => {
                let guard = this.guard.take().unwrap_or_else(CallGuard::disarmed);
                Poll::Ready((value, guard))
            }
            Err(payload) => {
                if let Some(guard) = this.guard.take() {
                    guard.panicked(&*payload);
                }
                panic::resume_unwind(payload)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_borrow_or_copy() {
        let s = String::from("s1");
        let borrowed: &str = &s;
        assert!(matches!(borrowed.usage_id(), Some(Cow::Borrowed("s1"))));
        assert!(matches!(s.usage_id(), Some(Cow::Owned(_))));
        assert_eq!(Some(42u64).usage_id().as_deref(), Some("42"));
        assert_eq!(None::<&str>.usage_id(), None);
        assert_eq!((&&s).usage_id().as_deref(), Some("s1"));
        assert_eq!((-3i32).usage_id().as_deref(), Some("-3"));
    }

    #[test]
    fn span_error_types_stay_few() {
        assert_eq!(error_type("RateLimitError"), "RateLimitError");
        assert_eq!(error_type(" timeout "), "timeout");
        assert_eq!(error_type("api error: 429 too many requests"), "_OTHER");
        assert_eq!(error_type(&"x".repeat(65)), "_OTHER");
        assert_eq!(error_type(""), "_OTHER");
    }

    struct Ctx {
        session: String,
    }

    impl UsageContext for Ctx {
        fn session_id(&self) -> Option<&str> {
            Some(&self.session)
        }
    }

    #[test]
    fn context_ids() {
        let cx = Ctx {
            session: "live".into(),
        };
        let ids = ContextIds::borrowed(&cx);
        assert!(matches!(ids.session_id, Some(Cow::Borrowed("live"))));
        assert_eq!(ids.user_id, None);
        let ids = ContextIds::owned(&Arc::new(cx));
        assert!(matches!(ids.session_id, Some(Cow::Owned(_))));
    }
}
