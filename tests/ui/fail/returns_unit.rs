//! Misuse: A function that returns nothing.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析", "qwen-plus")]
fn tracked() {}

fn main() {
    let _: fn() -> TokenUsage = TokenUsage::default;
}
