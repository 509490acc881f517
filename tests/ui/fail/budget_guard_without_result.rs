//! Misuse: `budget_guard` on a function that cannot return a refusal.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析", "qwen-plus", budget_guard)]
fn tracked() -> TokenUsage {
    TokenUsage::default()
}

fn main() {}
