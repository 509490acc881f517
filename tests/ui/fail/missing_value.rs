//! Misuse: `key =` with nothing after the `=`.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析", user_id = , model = "qwen-plus")]
fn tracked() -> TokenUsage {
    TokenUsage::default()
}

fn main() {}
