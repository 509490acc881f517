//! Misuse: `extract` given a string instead of a function.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析", extract = "usage")]
fn tracked() -> TokenUsage {
    TokenUsage::default()
}

fn main() {}
