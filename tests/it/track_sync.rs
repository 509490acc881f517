//! `#[track_ai_usage]` on sync functions: every form and return shape, read
//! back from the day files of a monitor in a temp dir.

use std::fmt;
use std::sync::{Arc, LazyLock};

use ai_usage_monitor::{track_ai_usage, TokenUsage, UsageContext, UsageMonitor, UsageSource};
use serde_json::{json, Value};

use crate::common::{read_records, TestMonitor};

fn openai(model: &str, prompt: u64, completion: u64) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "好"}}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion,
                  "prompt_tokens_details": {"cached_tokens": 10},
                  "completion_tokens_details": {"reasoning_tokens": 4}}
    })
}

#[derive(Debug)]
struct ApiError(&'static str);

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "api error: {}", self.0)
    }
}

// ---------------------------------------------------------------- forms

#[track_ai_usage("实时分析", "qwen-plus", monitor = mon)]
fn two_positional(mon: &UsageMonitor) -> Value {
    openai("qwen-plus-2025", 1200, 300)
}

#[test]
fn positional_function_and_model() {
    let t = TestMonitor::new();
    let ret = two_positional(&t.monitor);
    assert_eq!(ret, openai("qwen-plus-2025", 1200, 300), "value untouched");
    let r = t.only();
    assert_eq!(r["function"], "实时分析");
    assert_eq!(r["model"], "qwen-plus", "the attribute's model wins");
    assert_eq!(r["input_tokens"], 1200);
    assert_eq!(r["output_tokens"], 300);
    assert_eq!(r["total_tokens"], 1500);
    assert_eq!(r["cached_input_tokens"], 10);
    assert_eq!(r["reasoning_tokens"], 4);
    assert_eq!(r["success"], true);
    assert_eq!(r["error_msg"], Value::Null);
    assert!(r["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(r["timestamp"].as_f64().unwrap() > 1.6e9);
}

#[track_ai_usage("话术生成", monitor = mon)]
fn model_from_response(mon: &UsageMonitor, body: Value) -> Value {
    body
}

#[track_ai_usage(monitor = mon)]
fn default_function_name(mon: &UsageMonitor) -> TokenUsage {
    TokenUsage::new(1, 2)
}

#[track_ai_usage("问答", provider = "anthropic", monitor = mon)]
fn anthropic_call(mon: &UsageMonitor) -> Value {
    // Anthropic Messages: input_tokens excludes cache reads and writes.
    json!({"id": "msg_1", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5", "content": [], "usage": {"input_tokens": 1000,
        "cache_creation_input_tokens": 2000, "cache_read_input_tokens": 4000, "output_tokens": 200}})
}

#[test]
fn provider_and_cache_writes_from_an_anthropic_body() {
    let t = TestMonitor::new();
    anthropic_call(&t.monitor);
    let r = t.records();
    assert_eq!(r[0]["provider"], "anthropic");
    assert_eq!(r[0]["model"], "claude-sonnet-4-5");
    assert_eq!(r[0]["input_tokens"], 7000);
    assert_eq!(r[0]["cached_input_tokens"], 4000);
    assert_eq!(r[0]["cache_write_tokens"], 2000);
    // $3 × 1000 + $3.75 × 2000 + $0.30 × 4000 + $15 × 200 per M tokens.
    assert_eq!(r[0]["currency"], "USD");
    assert_eq!(r[0]["cost"].as_f64(), Some(0.0147));
}

#[test]
fn model_from_response_else_unknown_and_default_function() {
    let t = TestMonitor::new();
    model_from_response(&t.monitor, openai("qwen-max", 5, 6));
    model_from_response(
        &t.monitor,
        json!({"usage": {"input_tokens": 1, "output_tokens": 1}}),
    );
    default_function_name(&t.monitor);
    let r = t.records();
    assert_eq!(r[0]["model"], "qwen-max");
    assert_eq!(r[0]["function"], "话术生成");
    assert_eq!(r[1]["model"], "unknown");
    assert_eq!(r[2]["function"], "default_function_name");
    assert_eq!(r[2]["model"], "unknown");
}

#[track_ai_usage(
    function = "named",
    model = "qwen-turbo",
    user_id = format!("user_{}", 7),
    anchor_id = "anchor_1",
    session_id = sid,
    monitor = mon,
)]
fn named_arguments(mon: &UsageMonitor, sid: &str) -> TokenUsage {
    TokenUsage::new(10, 20)
}

#[test]
fn named_arguments_and_explicit_ids() {
    let t = TestMonitor::new();
    named_arguments(&t.monitor, "live_1");
    let r = t.only();
    assert_eq!(r["function"], "named");
    assert_eq!(r["model"], "qwen-turbo");
    assert_eq!(r["user_id"], "user_7");
    assert_eq!(r["anchor_id"], "anchor_1");
    assert_eq!(r["session_id"], "live_1");
}

// ---------------------------------------------------------------- ids

#[track_ai_usage("params", "qwen-plus", monitor = mon)]
fn id_params(
    mon: &UsageMonitor,
    user_id: u64,
    anchor_id: Option<String>,
    session_id: &str,
) -> TokenUsage {
    // The body may still use (and move) the parameters.
    drop(anchor_id);
    let _ = (user_id, session_id);
    TokenUsage::new(1, 1)
}

#[track_ai_usage("owned", "qwen-plus", monitor = mon)]
fn owned_session(mon: &UsageMonitor, session_id: String, user_id: Option<&str>) -> TokenUsage {
    let moved = session_id; // moving the parameter is fine: its id was copied
    assert!(!moved.is_empty());
    assert!(user_id.is_none());
    TokenUsage::new(1, 1)
}

#[test]
fn parameters_named_like_ids_are_recorded() {
    let t = TestMonitor::new();
    id_params(&t.monitor, 42, Some("主播A".into()), "live_9");
    owned_session(&t.monitor, "live_10".to_string(), None);
    let r = t.records();
    assert_eq!(r[0]["user_id"], "42");
    assert_eq!(r[0]["anchor_id"], "主播A");
    assert_eq!(r[0]["session_id"], "live_9");
    assert_eq!(r[1]["session_id"], "live_10");
    assert_eq!(r[1]["user_id"], Value::Null);
}

struct LiveContext {
    anchor: String,
    session: String,
    user: Option<String>,
}

impl UsageContext for LiveContext {
    fn user_id(&self) -> Option<&str> {
        self.user.as_deref()
    }
    fn anchor_id(&self) -> Option<&str> {
        Some(&self.anchor)
    }
    fn session_id(&self) -> Option<&str> {
        Some(&self.session)
    }
}

fn live() -> LiveContext {
    LiveContext {
        anchor: "anchor_ctx".into(),
        session: "session_ctx".into(),
        user: Some("user_ctx".into()),
    }
}

#[track_ai_usage("ctx", "qwen-plus", monitor = mon)]
fn with_context(mon: &UsageMonitor, #[usage_context] ctx: &LiveContext) -> TokenUsage {
    assert_eq!(ctx.anchor, "anchor_ctx");
    TokenUsage::new(3, 4)
}

#[track_ai_usage("ctx", "qwen-plus", monitor = mon, context = ctx, user_id = "explicit")]
fn context_by_name_owned(
    mon: &UsageMonitor,
    ctx: LiveContext,
    session_id: Option<&str>,
) -> TokenUsage {
    drop(ctx); // an owned context may be moved: its ids were copied
    TokenUsage::new(3, 4)
}

#[test]
fn context_parameter_supplies_ids_with_priorities() {
    let t = TestMonitor::new();
    with_context(&t.monitor, &live());
    context_by_name_owned(&t.monitor, live(), Some("param_session"));
    context_by_name_owned(&t.monitor, live(), None);
    let r = t.records();
    assert_eq!(r[0]["user_id"], "user_ctx");
    assert_eq!(r[0]["anchor_id"], "anchor_ctx");
    assert_eq!(r[0]["session_id"], "session_ctx");
    // explicit > parameter named like the id > context
    assert_eq!(r[1]["user_id"], "explicit");
    assert_eq!(r[1]["session_id"], "param_session");
    assert_eq!(r[1]["anchor_id"], "anchor_ctx");
    assert_eq!(
        r[2]["session_id"], "session_ctx",
        "a None parameter falls back to the context"
    );
}

// ---------------------------------------------------------------- return shapes

#[track_ai_usage("result", "qwen-plus", monitor = mon)]
fn result_call(mon: &UsageMonitor, fail: bool) -> Result<Value, ApiError> {
    if fail {
        return Err(ApiError("rate limited"));
    }
    Ok(openai("qwen-plus", 7, 8))
}

#[test]
fn result_err_is_a_failure_with_display_message() {
    let t = TestMonitor::new();
    assert!(result_call(&t.monitor, false).is_ok());
    let err = result_call(&t.monitor, true).unwrap_err();
    assert_eq!(err.0, "rate limited", "error returned untouched");
    let r = t.records();
    assert_eq!(r[0]["success"], true);
    assert_eq!(r[0]["input_tokens"], 7);
    assert_eq!(r[1]["success"], false);
    assert_eq!(r[1]["error_msg"], "api error: rate limited");
    assert_eq!(r[1]["input_tokens"], 0);
}

#[track_ai_usage("option", "m", monitor = mon)]
fn option_call(mon: &UsageMonitor, some: bool) -> Option<TokenUsage> {
    some.then(|| TokenUsage::new(2, 3))
}

#[track_ai_usage("box", "m", monitor = mon)]
fn boxed(mon: &UsageMonitor) -> Box<Value> {
    Box::new(openai("x", 4, 5))
}

#[track_ai_usage("arc", "m", monitor = mon)]
fn arced(mon: &UsageMonitor) -> Arc<TokenUsage> {
    Arc::new(TokenUsage::new(6, 7))
}

static CANNED: LazyLock<Value> = LazyLock::new(|| openai("x", 8, 9));

#[track_ai_usage("ref", "m", monitor = mon)]
fn borrowed(mon: &UsageMonitor) -> &'static Value {
    &CANNED
}

#[track_ai_usage("pair", "m", monitor = mon)]
fn pair(mon: &UsageMonitor) -> (String, TokenUsage) {
    ("text".to_string(), TokenUsage::new(10, 11))
}

#[track_ai_usage("dyn", "m", monitor = mon)]
fn dynamic(mon: &UsageMonitor) -> Box<dyn UsageSource> {
    Box::new(TokenUsage::new(12, 13))
}

#[test]
fn wrapper_return_shapes() {
    let t = TestMonitor::new();
    assert_eq!(option_call(&t.monitor, true), Some(TokenUsage::new(2, 3)));
    assert_eq!(option_call(&t.monitor, false), None);
    boxed(&t.monitor);
    arced(&t.monitor);
    borrowed(&t.monitor);
    assert_eq!(pair(&t.monitor).0, "text");
    dynamic(&t.monitor);
    let tokens: Vec<(u64, u64, bool)> = t
        .records()
        .iter()
        .map(|r| {
            (
                r["input_tokens"].as_u64().unwrap(),
                r["output_tokens"].as_u64().unwrap(),
                r["success"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tokens,
        [
            (2, 3, true),
            (0, 0, true),
            (4, 5, true),
            (6, 7, true),
            (8, 9, true),
            (10, 11, true),
            (12, 13, true)
        ]
    );
}

#[test]
fn provider_json_shapes() {
    #[track_ai_usage("shape", monitor = mon)]
    fn call(mon: &UsageMonitor, body: Value) -> Result<Value, ApiError> {
        Ok(body)
    }
    let t = TestMonitor::new();
    call(
        &t.monitor,
        json!({"object": "response", "model": "gpt-4.1-mini",
        "usage": {"input_tokens": 100, "output_tokens": 20, "total_tokens": 120,
                  "input_tokens_details": {"cached_tokens": 30},
                  "output_tokens_details": {"reasoning_tokens": 5}}}),
    )
    .unwrap();
    call(
        &t.monitor,
        json!({"type": "message", "model": "claude-3-5-haiku",
        "usage": {"input_tokens": 10, "output_tokens": 20,
                  "cache_read_input_tokens": 50, "cache_creation_input_tokens": 5}}),
    )
    .unwrap();
    call(
        &t.monitor,
        json!({"modelVersion": "gemini-2.0-flash",
        "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 8,
                          "thoughtsTokenCount": 2, "cachedContentTokenCount": 16,
                          "totalTokenCount": 50}}),
    )
    .unwrap();
    call(
        &t.monitor,
        json!({"request_id": "abc", "output": {"text": "好"},
        "usage": {"input_tokens": 9, "output_tokens": 3, "total_tokens": 12}}),
    )
    .unwrap();
    let r = t.records();
    let row = |i: usize, k: &str| r[i][k].as_u64().unwrap_or(0);
    assert_eq!(r[0]["model"], "gpt-4.1-mini");
    assert_eq!(
        (
            row(0, "input_tokens"),
            row(0, "output_tokens"),
            row(0, "cached_input_tokens"),
            row(0, "reasoning_tokens")
        ),
        (100, 20, 30, 5)
    );
    assert_eq!(r[1]["model"], "claude-3-5-haiku");
    assert_eq!(
        (
            row(1, "input_tokens"),
            row(1, "output_tokens"),
            row(1, "cached_input_tokens")
        ),
        (65, 20, 50)
    );
    assert_eq!(r[2]["model"], "gemini-2.0-flash");
    assert_eq!(
        (
            row(2, "input_tokens"),
            row(2, "output_tokens"),
            row(2, "cached_input_tokens"),
            row(2, "reasoning_tokens")
        ),
        (40, 10, 16, 2)
    );
    assert_eq!(r[3]["model"], "unknown");
    assert_eq!(
        (
            row(3, "input_tokens"),
            row(3, "output_tokens"),
            row(3, "total_tokens")
        ),
        (9, 3, 12)
    );
}

// ---------------------------------------------------------------- extraction

struct ChatResponse {
    text: String,
    tokens: (u64, u64),
}

fn extract_tokens(r: &Result<ChatResponse, ApiError>) -> Result<TokenUsage, &ApiError> {
    r.as_ref().map(|c| TokenUsage::new(c.tokens.0, c.tokens.1))
}

#[track_ai_usage("extract", "qwen-plus", monitor = mon, extract = extract_tokens)]
fn custom_extract(mon: &UsageMonitor, fail: bool) -> Result<ChatResponse, ApiError> {
    if fail {
        Err(ApiError("boom"))
    } else {
        Ok(ChatResponse {
            text: "hi".into(),
            tokens: (30, 40),
        })
    }
}

#[track_ai_usage("extract-closure", "m", monitor = mon, extract = |s: &String| Some(TokenUsage::new(s.len() as u64, 0)))]
fn closure_extract(mon: &UsageMonitor) -> String {
    "four".to_string()
}

fn panicking_extract(_: &String) -> Option<TokenUsage> {
    panic!("extractor bug")
}

#[track_ai_usage("extract-panics", "m", monitor = mon, extract = panicking_extract)]
fn extract_panics(mon: &UsageMonitor) -> String {
    "kept".to_string()
}

struct Weird;

impl UsageSource for Weird {
    fn token_usage(&self) -> Option<TokenUsage> {
        panic!("impl bug")
    }
}

#[track_ai_usage("source-panics", "m", monitor = mon)]
fn source_panics(mon: &UsageMonitor) -> Weird {
    Weird
}

#[test]
fn custom_extraction_and_extractor_panics_never_fail_the_call() {
    let t = TestMonitor::new();
    assert_eq!(custom_extract(&t.monitor, false).unwrap().text, "hi");
    assert!(custom_extract(&t.monitor, true).is_err());
    assert_eq!(closure_extract(&t.monitor), "four");
    assert_eq!(extract_panics(&t.monitor), "kept");
    let _ = source_panics(&t.monitor);
    let r = t.records();
    assert_eq!(
        (
            r[0]["input_tokens"].as_u64(),
            r[0]["output_tokens"].as_u64()
        ),
        (Some(30), Some(40))
    );
    assert_eq!(r[1]["success"], false);
    assert_eq!(r[1]["error_msg"], "api error: boom");
    assert_eq!(r[2]["input_tokens"], 4);
    for i in [3, 4] {
        assert_eq!(r[i]["success"], true, "{}", r[i]);
        assert_eq!(r[i]["input_tokens"], 0);
    }
}

// ---------------------------------------------------------------- failure paths

#[track_ai_usage("panics", "qwen-plus", monitor = mon, session_id = "s")]
fn panics(mon: &UsageMonitor) -> TokenUsage {
    panic!("boom {}", 42)
}

#[test]
fn a_panic_is_recorded_and_keeps_unwinding() {
    let t = TestMonitor::new();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| panics(&t.monitor)));
    let payload = caught.expect_err("the panic continues");
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied());
    assert_eq!(message, Some("boom 42"), "the original payload");
    let r = t.only();
    assert_eq!(r["success"], false);
    assert_eq!(r["error_msg"], "panic: boom 42");
    assert_eq!(r["session_id"], "s");
    assert_eq!(r["model"], "qwen-plus");
}

// ---------------------------------------------------------------- signatures

struct Client {
    monitor: Arc<UsageMonitor>,
    calls: u32,
}

impl Client {
    /// Docs and attributes are kept.
    #[track_ai_usage("method-ref", "m", monitor = self.monitor.clone())]
    #[inline]
    pub fn by_ref(&self, session_id: &str) -> TokenUsage {
        TokenUsage::new(1, u64::from(self.calls))
    }

    #[track_ai_usage("method-mut", "m", monitor = Arc::clone(&self.monitor))]
    fn by_mut(&mut self) -> TokenUsage {
        self.calls += 1;
        TokenUsage::new(2, u64::from(self.calls))
    }

    #[track_ai_usage("method-owned", "m", monitor = self.monitor.clone())]
    fn by_value(self) -> (u32, TokenUsage) {
        (self.calls, TokenUsage::new(3, 0))
    }

    #[track_ai_usage("method-ret-ref", "m", monitor = self.monitor.clone())]
    fn by_ref_returning_ref<'a>(&'a self, v: &'a Value) -> &'a Value {
        v
    }
}

#[test]
fn methods() {
    let t = TestMonitor::new();
    let dir = t.dir.path().to_path_buf();
    let monitor = Arc::new(
        UsageMonitor::builder()
            .dir(dir.join("client"))
            .build()
            .expect("monitor"),
    );
    let mut c = Client {
        monitor: Arc::clone(&monitor),
        calls: 0,
    };
    c.by_ref("s1");
    c.by_mut();
    let v = openai("m", 1, 1);
    assert_eq!(c.by_ref_returning_ref(&v), &v);
    assert_eq!(c.by_value().0, 1);
    monitor.flush().expect("flush");
    let r = read_records(&dir.join("client"));
    let names: Vec<_> = r
        .iter()
        .map(|r| r["function"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["method-ref", "method-mut", "method-ret-ref", "method-owned"]
    );
    assert_eq!(r[0]["session_id"], "s1");
    assert_eq!(r[1]["output_tokens"], 1);
}

trait Prompt {
    fn text(&self) -> String;
}

impl Prompt for &str {
    fn text(&self) -> String {
        (*self).to_string()
    }
}

#[track_ai_usage("generic", "m", monitor = mon)]
fn generic<P, const N: usize>(mon: &UsageMonitor, prompts: [P; N]) -> Result<TokenUsage, String>
where
    P: Prompt,
{
    let total: usize = prompts.iter().map(|p| p.text().len()).sum();
    let n = u64::try_from(total).map_err(|e| e.to_string())?;
    Ok(TokenUsage::new(n, N as u64))
}

#[track_ai_usage("impl-trait", "m", monitor = mon)]
fn impl_trait(
    mon: &UsageMonitor,
    prompt: impl Prompt,
    fail: bool,
) -> Result<impl UsageSource, ApiError> {
    if fail {
        return Err(ApiError("early"));
    }
    let n: u64 = prompt
        .text()
        .len()
        .try_into()
        .map_err(|_| ApiError("too long"))?;
    Ok(TokenUsage::new(n, 1))
}

fn parse_tokens(s: &str) -> Result<u64, std::num::ParseIntError> {
    s.parse()
}

#[track_ai_usage("question-mark", "m", monitor = mon)]
fn question_mark(mon: &UsageMonitor, s: &str) -> Result<TokenUsage, Box<dyn std::error::Error>> {
    let n = parse_tokens(s)?;
    Ok(TokenUsage::new(n, 0))
}

#[test]
fn generics_impl_trait_early_return_and_question_mark() {
    let t = TestMonitor::new();
    assert_eq!(
        generic(&t.monitor, ["ab", "cde"]),
        Ok(TokenUsage::new(5, 2))
    );
    assert!(impl_trait(&t.monitor, "abcd", false).is_ok());
    assert!(impl_trait(&t.monitor, "abcd", true).is_err());
    assert!(question_mark(&t.monitor, "12").is_ok());
    assert!(question_mark(&t.monitor, "x").is_err());
    let r = t.records();
    assert_eq!(r[0]["input_tokens"], 5);
    assert_eq!(r[1]["input_tokens"], 4);
    assert_eq!(r[2]["error_msg"], "api error: early");
    assert_eq!(r[3]["input_tokens"], 12);
    assert_eq!(r[4]["success"], false);
    assert_eq!(r[4]["error_msg"], "invalid digit found in string");
}

static SHARED: LazyLock<UsageMonitor> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("ai-usage-track-static-{}", std::process::id()));
    UsageMonitor::builder().dir(dir).build().expect("monitor")
});

#[track_ai_usage("static", "m", monitor = &*SHARED)]
fn on_static_monitor() -> TokenUsage {
    TokenUsage::new(1, 0)
}

mod renamed {
    pub use ai_usage_monitor::*;
}

#[track_ai_usage("renamed", "m", monitor = mon, crate = "crate::track_sync::renamed")]
fn renamed_crate_path(mon: &UsageMonitor) -> TokenUsage {
    TokenUsage::new(1, 0)
}

#[test]
fn static_monitor_and_crate_override() {
    on_static_monitor();
    SHARED.flush().expect("flush");
    let r = read_records(SHARED.dir());
    assert_eq!(
        r.last().map(|r| r["function"].clone()),
        Some(json!("static"))
    );
    let _ = std::fs::remove_dir_all(SHARED.dir());

    let t = TestMonitor::new();
    renamed_crate_path(&t.monitor);
    assert_eq!(t.only()["function"], "renamed");
}

#[track_ai_usage("global", "qwen-plus")]
fn on_global_monitor() -> TokenUsage {
    TokenUsage::new(100, 50)
}

#[test]
fn global_monitor() {
    // The only test in this binary that touches the global monitor.
    let dir = tempfile::tempdir().expect("temp dir");
    let _flush =
        ai_usage_monitor::init_global(UsageMonitor::builder().dir(dir.path())).expect("init");
    on_global_monitor();
    ai_usage_monitor::get_usage_monitor()
        .flush()
        .expect("flush");
    let r = read_records(dir.path());
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["function"], "global");
    assert_eq!(r[0]["input_tokens"], 100);
}
