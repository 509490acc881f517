//! Misuse: Something that is neither a string nor `key = value`.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage(&"实时分析")]
fn tracked() -> TokenUsage {
    TokenUsage::default()
}

fn main() {}
