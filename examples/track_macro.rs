//! `#[track_ai_usage]` in action: sync and async functions returning each
//! provider's JSON, one failing call, then today's summary as one JSON line.
//!
//! `cargo run --example track_macro` (records go to a temp dir).

use std::fmt;

use ai_usage_monitor::{
    get_usage_monitor, init_global, track_ai_usage, MonitorBuilder, UsageContext,
};
use serde_json::{json, Value};

/// The live room an analysis is for: supplies anchor and session ids.
struct LiveContext {
    anchor_id: String,
    session_id: String,
    danmaku: Vec<&'static str>,
}

impl UsageContext for LiveContext {
    fn anchor_id(&self) -> Option<&str> {
        Some(&self.anchor_id)
    }
    fn session_id(&self) -> Option<&str> {
        Some(&self.session_id)
    }
}

#[derive(Debug)]
struct ApiError(String);

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ApiError {}

// Canned provider responses stand in for HTTP calls.

/// OpenAI-compatible chat completion (DashScope compatible mode, DeepSeek, …).
#[track_ai_usage("实时分析", "qwen-plus")]
fn generate_analysis(#[usage_context] ctx: &LiveContext) -> Result<Value, ApiError> {
    let prompt_tokens = 800 + 40 * ctx.danmaku.len();
    Ok(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "qwen-plus",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "气氛不错，可以推新品"}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 220, "total_tokens": prompt_tokens + 220,
                  "prompt_tokens_details": {"cached_tokens": 512}}
    }))
}

/// DashScope native API: no `model` field in the response, so name it.
#[track_ai_usage("话术生成", "qwen-max")]
fn generate_scripts(anchor_id: &str, session_id: &str) -> Value {
    json!({
        "request_id": "b1f0c2", "output": {"text": "欢迎新进直播间的朋友！"},
        "usage": {"input_tokens": 600, "output_tokens": 180, "total_tokens": 780}
    })
}

/// OpenAI Responses API, model read from the response.
#[track_ai_usage("问答")]
async fn answer(user_id: u64, session_id: String) -> Result<Value, ApiError> {
    tokio::task::yield_now().await;
    Ok(json!({
        "object": "response", "model": "gpt-4o-mini",
        "usage": {"input_tokens": 300, "output_tokens": 90, "total_tokens": 390,
                  "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": 0}}
    }))
}

/// Anthropic Messages API.
#[track_ai_usage("复盘总结", session_id = ctx.session_id.as_str())]
async fn summarize(ctx: &LiveContext) -> Result<Value, ApiError> {
    tokio::task::yield_now().await;
    Ok(json!({
        "type": "message", "model": "claude-3-5-haiku-latest",
        "content": [{"type": "text", "text": "本场亮点：……"}],
        "usage": {"input_tokens": 1500, "output_tokens": 400,
                  "cache_read_input_tokens": 1024, "cache_creation_input_tokens": 0}
    }))
}

/// Gemini generateContent.
#[track_ai_usage("标题生成")]
async fn titles(session_id: &str) -> Result<Value, ApiError> {
    Ok(json!({
        "candidates": [{"content": {"parts": [{"text": "今晚福利多多"}]}}],
        "modelVersion": "gemini-2.0-flash",
        "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 30, "totalTokenCount": 150}
    }))
}

/// A failing call: recorded with `success: false` and the error's message.
#[track_ai_usage("实时分析", "qwen-plus")]
async fn rate_limited(#[usage_context] ctx: &LiveContext) -> Result<Value, ApiError> {
    Err(ApiError("429 Too Many Requests: rate limit reached".into()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let _flush = init_global(MonitorBuilder::default().dir(dir.path()))?;

    let ctx = LiveContext {
        anchor_id: "anchor_123".into(),
        session_id: "live_20251026_123456".into(),
        danmaku: vec!["主播好", "这个多少钱", "上链接"],
    };

    generate_analysis(&ctx)?;
    generate_scripts("anchor_123", "live_20251026_123456");

    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    rt.block_on(async {
        answer(42, ctx.session_id.clone()).await?;
        summarize(&ctx).await?;
        titles(&ctx.session_id).await?;
        if let Err(e) = rate_limited(&ctx).await {
            eprintln!("call failed (and was recorded): {e}");
        }
        Ok::<_, ApiError>(())
    })?;

    let monitor = get_usage_monitor();
    monitor.flush()?;
    let today = monitor.get_daily_summary(0);
    eprintln!(
        "今日调用: {}  失败: {}  今日费用: {} {:?}",
        today.total_calls, today.failed_calls, today.total_cost, today.currency
    );
    println!("{}", serde_json::to_string(&today)?);
    Ok(())
}
