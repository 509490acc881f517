//! Misuse: `Result<T, E>` whose `T` does not implement `UsageSource`.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

struct ChatResponse;

#[derive(Debug)]
struct ApiError;

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("api error")
    }
}

#[track_ai_usage("实时分析", "qwen-plus")]
fn tracked() -> Result<ChatResponse, ApiError> {
    Ok(ChatResponse)
}

fn main() {
    let _: fn() -> TokenUsage = TokenUsage::default;
}
