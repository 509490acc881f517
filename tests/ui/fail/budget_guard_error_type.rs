//! Misuse: `budget_guard` on a function whose error type cannot hold a
//! refusal (no `From<BudgetExceeded>`).
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[derive(Debug)]
struct ApiError;

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("api error")
    }
}

#[track_ai_usage("实时分析", "qwen-plus", budget_guard)]
fn tracked() -> Result<TokenUsage, ApiError> {
    Ok(TokenUsage::default())
}

fn main() {}
