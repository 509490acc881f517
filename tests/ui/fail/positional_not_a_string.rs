//! Misuse: A positional model that is a number, not a string.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析", 4)]
fn tracked() -> TokenUsage {
    TokenUsage::default()
}

fn main() {}
