//! `#[track_ai_usage]` on async functions (tokio): provider shapes, methods,
//! `#[async_trait]`, cancellation and panics.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ai_usage_monitor::{track_ai_usage, TokenUsage, UsageContext, UsageMonitor};
use serde_json::{json, Value};

use crate::common::TestMonitor;

#[derive(Debug)]
struct ApiError(String);

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ApiError {}

/// Stands in for an HTTP call to a provider.
async fn provider(body: Value) -> Result<Value, ApiError> {
    tokio::task::yield_now().await;
    match body.get("error") {
        Some(e) => Err(ApiError(e.to_string())),
        None => Ok(body),
    }
}

struct LiveContext {
    anchor_id: String,
    session_id: String,
}

impl UsageContext for LiveContext {
    fn anchor_id(&self) -> Option<&str> {
        Some(&self.anchor_id)
    }
    fn session_id(&self) -> Option<&str> {
        Some(&self.session_id)
    }
}

#[track_ai_usage("实时分析", monitor = mon)]
async fn generate_analysis(
    mon: &UsageMonitor,
    #[usage_context] ctx: &LiveContext,
    session_id: &str,
    body: Value,
) -> Result<Value, ApiError> {
    let _ = (&ctx.anchor_id, session_id);
    let resp = provider(body).await?;
    Ok(resp)
}

#[tokio::test]
async fn async_fn_with_each_provider_shape() {
    let t = TestMonitor::new();
    let ctx = LiveContext {
        anchor_id: "anchor_1".into(),
        session_id: "ctx_session".into(),
    };
    let bodies = [
        json!({"model": "qwen-plus", "usage": {"prompt_tokens": 100, "completion_tokens": 20}}),
        json!({"object": "response", "model": "gpt-4.1", "usage": {"input_tokens": 50, "output_tokens": 5,
               "input_tokens_details": {"cached_tokens": 10}}}),
        json!({"type": "message", "model": "claude-sonnet-4", "usage": {"input_tokens": 3, "output_tokens": 4,
               "cache_read_input_tokens": 30, "cache_creation_input_tokens": 0}}),
        json!({"modelVersion": "gemini-2.5-pro", "usageMetadata": {"promptTokenCount": 7,
               "candidatesTokenCount": 2, "thoughtsTokenCount": 1, "totalTokenCount": 10}}),
        json!({"output": {"text": "好"}, "usage": {"input_tokens": 11, "output_tokens": 12, "total_tokens": 23}}),
        json!({"error": {"message": "quota exceeded"}}),
    ];
    for b in bodies {
        let _ = generate_analysis(&t.monitor, &ctx, "live_001", b).await;
    }
    let r = t.records();
    let got: Vec<(String, u64, u64, bool)> = r
        .iter()
        .map(|r| {
            (
                r["model"].as_str().unwrap().to_owned(),
                r["input_tokens"].as_u64().unwrap(),
                r["output_tokens"].as_u64().unwrap(),
                r["success"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("qwen-plus".to_owned(), 100, 20, true),
            ("gpt-4.1".to_owned(), 50, 5, true),
            ("claude-sonnet-4".to_owned(), 33, 4, true),
            ("gemini-2.5-pro".to_owned(), 7, 3, true),
            ("unknown".to_owned(), 11, 12, true),
            ("unknown".to_owned(), 0, 0, false),
        ]
    );
    for rec in &r {
        assert_eq!(rec["function"], "实时分析");
        assert_eq!(rec["anchor_id"], "anchor_1");
        assert_eq!(
            rec["session_id"], "live_001",
            "the parameter beats the context"
        );
    }
    assert_eq!(r[5]["error_msg"], r#"{"message":"quota exceeded"}"#);
}

struct Service {
    monitor: Arc<UsageMonitor>,
    model: &'static str,
}

impl Service {
    #[track_ai_usage("method", "qwen-plus", monitor = &self.monitor)]
    async fn ask(&self, user_id: u32, prompt: &str) -> Result<TokenUsage, ApiError> {
        if prompt.is_empty() {
            return Err(ApiError("empty prompt".into()));
        }
        tokio::task::yield_now().await;
        let n: u64 = prompt
            .len()
            .try_into()
            .map_err(|_| ApiError("long".into()))?;
        Ok(TokenUsage::new(n, 1))
    }

    #[track_ai_usage("method-mut", "qwen-plus", monitor = self.monitor.clone())]
    async fn ask_mut(&mut self) -> Option<TokenUsage> {
        self.model = "changed";
        Some(TokenUsage::new(1, 1))
    }

    #[track_ai_usage("impl-future", "qwen-plus", monitor = self.monitor.clone())]
    fn ask_later(&self, session_id: String) -> impl Future<Output = TokenUsage> + Send + 'static {
        async move {
            tokio::task::yield_now().await;
            TokenUsage::new(u64::try_from(session_id.len()).unwrap_or(0), 0)
        }
    }
}

#[tokio::test]
async fn async_methods_early_return_and_question_mark() {
    let t = TestMonitor::new();
    let mut s = Service {
        monitor: Arc::clone(&t.monitor),
        model: "m",
    };
    assert!(s.ask(7, "hello").await.is_ok());
    assert!(s.ask(7, "").await.is_err());
    assert!(s.ask_mut().await.is_some());
    assert_eq!(s.model, "changed");
    let fut = s.ask_later("abc".into());
    assert_eq!(fut.await, TokenUsage::new(3, 0));
    let r = t.records();
    assert_eq!(r[0]["user_id"], "7");
    assert_eq!(r[0]["input_tokens"], 5);
    assert_eq!(r[1]["error_msg"], "empty prompt");
    assert_eq!(r[2]["function"], "method-mut");
    assert_eq!(r[3]["function"], "impl-future");
    assert_eq!(r[3]["session_id"], "abc");
}

#[async_trait::async_trait]
trait Analyzer {
    async fn analyze(&self, session_id: &str, text: &str) -> Result<Value, ApiError>;
}

struct Qwen {
    monitor: Arc<UsageMonitor>,
}

#[async_trait::async_trait]
impl Analyzer for Qwen {
    #[track_ai_usage("async-trait", "qwen-plus", monitor = self.monitor.clone())]
    async fn analyze(&self, session_id: &str, text: &str) -> Result<Value, ApiError> {
        if text.is_empty() {
            return Err(ApiError("no text".into()));
        }
        let n = text.chars().count();
        provider(json!({"usage": {"prompt_tokens": n, "completion_tokens": 2}})).await
    }
}

#[tokio::test]
async fn async_trait_methods() {
    let t = TestMonitor::new();
    let q: Box<dyn Analyzer + Send + Sync> = Box::new(Qwen {
        monitor: Arc::clone(&t.monitor),
    });
    // Spawning proves the future is still `Send`.
    let handle = tokio::spawn(async move {
        let a = q.analyze("s1", "你好").await.is_ok();
        let b = q.analyze("s2", "").await.is_err();
        a && b
    });
    assert!(handle.await.expect("task"));
    let r = t.records();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["input_tokens"], 2);
    assert_eq!(r[0]["session_id"], "s1");
    assert_eq!(r[1]["success"], false);
    assert_eq!(r[1]["error_msg"], "no text");
}

#[track_ai_usage("slow", "qwen-plus", monitor = mon, session_id = "timeout")]
async fn slow(mon: Arc<UsageMonitor>) -> TokenUsage {
    tokio::time::sleep(Duration::from_secs(30)).await;
    TokenUsage::new(1, 1)
}

#[tokio::test]
async fn a_dropped_future_is_recorded_as_cancelled() {
    let t = TestMonitor::new();
    let res = tokio::time::timeout(Duration::from_millis(50), slow(Arc::clone(&t.monitor))).await;
    assert!(res.is_err(), "timed out");
    // A future that is never polled never started: nothing to record.
    drop(slow(Arc::clone(&t.monitor)));
    let r = t.records();
    assert_eq!(r.len(), 1, "{r:#?}");
    assert_eq!(r[0]["success"], false);
    assert_eq!(r[0]["error_msg"], "cancelled");
    assert_eq!(r[0]["session_id"], "timeout");
    let ms = r[0]["duration_ms"].as_f64().unwrap();
    assert!(
        (40.0..10_000.0).contains(&ms),
        "elapsed time recorded: {ms}"
    );
}

#[track_ai_usage("select", "qwen-plus", monitor = mon)]
async fn select_loser(mon: &UsageMonitor) -> TokenUsage {
    std::future::pending::<()>().await;
    TokenUsage::new(1, 1)
}

#[tokio::test]
async fn losing_a_select_is_cancelled() {
    let t = TestMonitor::new();
    tokio::select! {
        _ = select_loser(&t.monitor) => unreachable!(),
        _ = tokio::task::yield_now() => {}
    }
    let r = t.records();
    assert_eq!(r[0]["error_msg"], "cancelled");
}

#[track_ai_usage("panics", "qwen-plus", monitor = mon)]
async fn panics_after_await(mon: Arc<UsageMonitor>) -> TokenUsage {
    tokio::task::yield_now().await;
    panic!("model exploded")
}

#[tokio::test]
async fn an_async_panic_is_recorded_and_propagates() {
    let t = TestMonitor::new();
    let err = tokio::spawn(panics_after_await(Arc::clone(&t.monitor)))
        .await
        .expect_err("panicked");
    assert!(err.is_panic());
    let r = t.records();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["success"], false);
    assert_eq!(r[0]["error_msg"], "panic: model exploded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_are_all_recorded() {
    #[track_ai_usage("concurrent", "qwen-plus", monitor = mon)]
    async fn call(mon: Arc<UsageMonitor>, user_id: usize) -> TokenUsage {
        tokio::task::yield_now().await;
        TokenUsage::new(user_id as u64, 1)
    }
    let t = TestMonitor::new();
    let tasks: Vec<_> = (0..50)
        .map(|i| tokio::spawn(call(Arc::clone(&t.monitor), i)))
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let r = t.records();
    assert_eq!(r.len(), 50);
    let sum: u64 = r.iter().map(|r| r["input_tokens"].as_u64().unwrap()).sum();
    assert_eq!(sum, (0..50).sum::<u64>());
}
