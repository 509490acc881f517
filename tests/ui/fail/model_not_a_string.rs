//! Misuse: `model = 3`: a literal of the wrong type.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析", model = 3)]
fn tracked() -> TokenUsage {
    TokenUsage::default()
}

fn main() {}
