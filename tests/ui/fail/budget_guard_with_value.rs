//! Misuse: `budget_guard` is a flag, not `key = value`.
use ai_usage_monitor::{track_ai_usage, BudgetExceeded, TokenUsage};

#[derive(Debug)]
struct ApiError;

impl From<BudgetExceeded> for ApiError {
    fn from(_: BudgetExceeded) -> Self {
        ApiError
    }
}

#[track_ai_usage("实时分析", "qwen-plus", budget_guard = true)]
fn tracked() -> Result<TokenUsage, ApiError> {
    Ok(TokenUsage::default())
}

fn main() {}
