//! The `tracing` span `#[track_ai_usage]` opens per call: its GenAI name and
//! attributes, seen by a small in-test layer that keeps every span's fields.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use ai_usage_monitor::{track_ai_usage, TokenUsage, UsageMonitor};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::common::TestMonitor;

/// One span as the layer saw it: name, target, level, and every field that
/// was given a value (at creation or recorded later).
#[derive(Debug, Clone, Default)]
struct SeenSpan {
    name: &'static str,
    target: &'static str,
    level: String,
    /// Every declared field name, valued or not.
    declared: Vec<&'static str>,
    fields: BTreeMap<&'static str, String>,
    closed: bool,
}

#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<SeenSpan>>>);

impl Spans {
    fn all(&self) -> Vec<SeenSpan> {
        self.0.lock().unwrap().clone()
    }

    /// The one span seen so far.
    fn only(&self) -> SeenSpan {
        let all = self.all();
        assert_eq!(all.len(), 1, "one span per call: {all:?}");
        all.into_iter().next().unwrap()
    }
}

struct Fields<'a>(&'a mut BTreeMap<&'static str, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
}

/// The index of a span's entry in `Spans`, kept in the registry's extensions.
struct Slot(usize);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let meta = attrs.metadata();
        let mut seen = SeenSpan {
            name: meta.name(),
            target: meta.target(),
            level: meta.level().to_string(),
            declared: meta.fields().iter().map(|f| f.name()).collect(),
            ..SeenSpan::default()
        };
        attrs.record(&mut Fields(&mut seen.fields));
        let mut all = self.0.lock().unwrap();
        all.push(seen);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Slot(all.len() - 1));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let ext = span.extensions();
        let Some(Slot(i)) = ext.get::<Slot>() else {
            return;
        };
        values.record(&mut Fields(&mut self.0.lock().unwrap()[*i].fields));
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let ext = span.extensions();
        if let Some(Slot(i)) = ext.get::<Slot>() {
            self.0.lock().unwrap()[*i].closed = true;
        }
    }
}

/// Runs `f` with a subscriber that keeps spans (this thread only).
fn with_spans<T>(f: impl FnOnce() -> T) -> (T, Spans) {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let out = tracing::subscriber::with_default(subscriber, f);
    (out, spans)
}

/// The name of the span current where it is called.
fn current_span_name() -> Option<&'static str> {
    tracing::Span::current().metadata().map(|m| m.name())
}

#[derive(Debug)]
struct RateLimitError;

impl fmt::Display for RateLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RateLimitError")
    }
}

#[track_ai_usage("实时分析", "qwen-plus", provider = "dashscope", monitor = mon)]
fn sync_call(mon: &UsageMonitor, fail: bool) -> Result<(Option<&'static str>, TokenUsage), String> {
    let inside = current_span_name();
    if fail {
        return Err("connection reset by peer".to_owned());
    }
    Ok((inside, TokenUsage::new(1200, 300)))
}

#[test]
fn sync_call_opens_a_genai_span() {
    let t = TestMonitor::new();
    let (ret, spans) = with_spans(|| sync_call(&t.monitor, false));
    let (inside, usage) = ret.expect("success");
    assert_eq!(usage, TokenUsage::new(1200, 300), "value untouched");
    assert_eq!(
        inside,
        Some("chat qwen-plus"),
        "entered while the body runs"
    );
    assert_eq!(current_span_name(), None, "exited after the call");

    let s = spans.only();
    assert_eq!(s.name, "chat qwen-plus");
    assert_eq!(s.target, "ai_usage_monitor");
    assert_eq!(s.level, "INFO");
    assert!(s.closed, "the span ends with the call");
    let f = &s.fields;
    assert_eq!(f["otel.kind"], "client", "a GenAI client span");
    assert_eq!(
        f["ai_usage.recorded"], "true",
        "marked as recorded, so an OTLP receiver of ours does not count it again"
    );
    assert_eq!(f["gen_ai.operation.name"], "chat");
    assert_eq!(f["gen_ai.request.model"], "qwen-plus");
    assert_eq!(f["gen_ai.provider.name"], "dashscope");
    assert_eq!(f["ai_usage.function"], "实时分析");
    assert_eq!(f["gen_ai.response.model"], "qwen-plus");
    assert_eq!(f["gen_ai.usage.input_tokens"], "1200");
    assert_eq!(f["gen_ai.usage.output_tokens"], "300");
    assert!(
        !f.contains_key("error.type"),
        "a success has no error.type: {f:?}"
    );
    assert!(!f.contains_key("otel.status_code"), "{f:?}");
    assert!(s.declared.contains(&"error.type"), "declared for failures");

    // The record matches what the span says.
    let r = t.only();
    assert_eq!(r["model"], "qwen-plus");
    assert_eq!(r["input_tokens"], 1200);
    assert_eq!(r["success"], true);
}

#[test]
fn a_failure_sets_error_type() {
    let t = TestMonitor::new();
    let (ret, spans) = with_spans(|| sync_call(&t.monitor, true));
    assert_eq!(ret, Err("connection reset by peer".to_owned()));
    let f = spans.only().fields;
    // A message, not a class: the GenAI conventions' catch-all.
    assert_eq!(f["error.type"], "_OTHER");
    assert_eq!(f["otel.status_code"], "ERROR");
    assert_eq!(f["gen_ai.usage.input_tokens"], "0");
    let r = t.only();
    assert_eq!(r["success"], false);
    assert_eq!(
        r["error_msg"], "connection reset by peer",
        "record unchanged"
    );
}

/// Model known only from the response, no provider, default function name.
#[track_ai_usage(monitor = mon)]
async fn async_call(
    mon: &UsageMonitor,
    fail: bool,
    inside: &Mutex<Vec<Option<&'static str>>>,
) -> Result<serde_json::Value, RateLimitError> {
    let seen = || inside.lock().unwrap().push(current_span_name());
    seen();
    tokio::task::yield_now().await;
    seen();
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    seen();
    if fail {
        return Err(RateLimitError);
    }
    let body = serde_json::json!({
        "model": "deepseek-chat-0324",
        "usage": {"prompt_tokens": 900, "completion_tokens": 120}
    });
    Ok(body)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn async_call_keeps_its_span_across_awaits() {
    let t = TestMonitor::new();
    let inside = Mutex::new(Vec::new());
    let (ret, spans) = with_spans(|| {
        block_on(async {
            let other = tracing::info_span!("caller");
            let _e = other.enter();
            let out = async_call(&t.monitor, false, &inside).await;
            // Back in the caller's span once the call has returned.
            (out, current_span_name())
        })
    });
    let (out, after) = ret;
    out.expect("success");
    assert_eq!(
        *inside.lock().unwrap(),
        vec![Some("chat"); 3],
        "entered on every poll"
    );
    assert_eq!(after, Some("caller"));

    let all = spans.all();
    let s = all
        .iter()
        .find(|s| s.name == "chat")
        .expect("the call's span");
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(s.closed);
    let f = &s.fields;
    assert_eq!(f["gen_ai.operation.name"], "chat");
    assert_eq!(f["ai_usage.function"], "async_call");
    assert!(
        !f.contains_key("gen_ai.request.model") && !f.contains_key("gen_ai.provider.name"),
        "not known before the call: {f:?}"
    );
    assert_eq!(f["gen_ai.response.model"], "deepseek-chat-0324");
    assert_eq!(f["gen_ai.usage.input_tokens"], "900");
    assert_eq!(f["gen_ai.usage.output_tokens"], "120");
    assert!(!f.contains_key("error.type"));
    assert_eq!(t.only()["model"], "deepseek-chat-0324");
}

#[test]
fn async_failure_sets_a_type_like_error_type() {
    let t = TestMonitor::new();
    let (ret, spans) = with_spans(|| block_on(async_call(&t.monitor, true, &Mutex::default())));
    assert!(ret.is_err());
    let f = spans.only().fields;
    assert_eq!(f["error.type"], "RateLimitError");
    assert_eq!(f["otel.status_code"], "ERROR");
    assert_eq!(t.only()["error_msg"], "RateLimitError");
}

#[test]
fn a_panic_and_a_cancelled_call_set_error_type() {
    #[track_ai_usage("f", "m", monitor = mon)]
    fn boom(mon: &UsageMonitor) -> TokenUsage {
        panic!("boom")
    }
    #[track_ai_usage("f", "m", monitor = mon)]
    async fn never(mon: &UsageMonitor) -> TokenUsage {
        std::future::pending::<()>().await;
        TokenUsage::default()
    }

    let t = TestMonitor::new();
    let (caught, spans) =
        with_spans(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| boom(&t.monitor))));
    assert!(caught.is_err(), "the panic keeps unwinding");
    assert_eq!(spans.only().fields["error.type"], "panic");

    let (timed_out, spans) = with_spans(|| {
        block_on(async {
            tokio::time::timeout(std::time::Duration::from_millis(5), never(&t.monitor)).await
        })
    });
    assert!(timed_out.is_err());
    let s = spans.only();
    assert_eq!(s.fields["error.type"], "cancelled");
    assert!(s.closed);
    let errors: Vec<_> = t.records().iter().map(|r| r["error_msg"].clone()).collect();
    assert_eq!(errors, vec!["panic: boom", "cancelled"]);
}

#[test]
fn no_subscriber_no_span_and_same_record() {
    let t = TestMonitor::new();
    let (inside, usage) = sync_call(&t.monitor, false).expect("success");
    assert_eq!(usage, TokenUsage::new(1200, 300));
    assert_eq!(inside, None, "no subscriber: the span is disabled");
    assert_eq!(t.only()["input_tokens"], 1200);
}
