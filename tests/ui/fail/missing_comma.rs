//! Misuse: Two arguments without a comma between them.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析" "qwen-plus")]
fn tracked() -> TokenUsage {
    TokenUsage::default()
}

fn main() {}
