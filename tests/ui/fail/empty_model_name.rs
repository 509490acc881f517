//! Misuse: An empty model name, by key.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析", model = " ")]
fn tracked() -> TokenUsage {
    TokenUsage::default()
}

fn main() {}
