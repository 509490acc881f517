//! Misuse: A return type that carries no token usage.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析", "qwen-plus")]
fn tracked() -> String {
    String::new()
}

fn main() {
    let _: fn() -> TokenUsage = TokenUsage::default;
}
