//! Misuse: A positional argument after a named one.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage(model = "qwen-plus", "实时分析")]
fn tracked() -> TokenUsage {
    TokenUsage::default()
}

fn main() {}
