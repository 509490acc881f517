//! Misuse: A third positional argument.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析", "qwen-plus", "live_1")]
fn tracked() -> TokenUsage {
    TokenUsage::default()
}

fn main() {}
