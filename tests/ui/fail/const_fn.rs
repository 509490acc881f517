//! Misuse: on a `const fn`.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析", "qwen-plus")]
const fn tracked() -> TokenUsage {
    TokenUsage::new(1, 1)
}

fn main() {}
