//! Misuse: The same key twice (here `model`, positionally and by name).
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析", "qwen-plus", model = "qwen-max")]
fn tracked() -> TokenUsage {
    TokenUsage::default()
}

fn main() {}
