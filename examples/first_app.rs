//! The README's first program: three tracked calls, today's summary, exit.
//!
//! No guard and no `flush()`: the global monitor is flushed when the process
//! exits normally, so all three records are in `records/ai_usage/` (or
//! `AI_USAGE_DIR`) afterwards. `cargo run --example first_app`.

use ai_usage_monitor::{get_usage_monitor, track_ai_usage};
use serde_json::{json, Value};

/// Stands in for your AI client: any OpenAI-shaped JSON with `usage` works.
async fn chat(prompt: &str) -> Result<Value, std::io::Error> {
    Ok(json!({
        "model": "qwen-plus",
        "choices": [{"message": {"role": "assistant", "content": format!("分析: {prompt}")}}],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}
    }))
}

#[track_ai_usage("实时分析", "qwen-plus")]
async fn generate_analysis(prompt: &str, session_id: &str) -> Result<Value, std::io::Error> {
    chat(prompt).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), std::io::Error> {
    for minute in 0..3 {
        generate_analysis(&format!("第{minute}分钟的弹幕"), "live_20251026_123456").await?;
    }
    let today = get_usage_monitor().get_daily_summary(0);
    println!(
        "今日调用: {}, 费用: ¥{:.4}",
        today.total_calls, today.total_cost
    );
    Ok(())
}
