//! Misuse: `crate` given a string that is not a path.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析", crate = "my monitor")]
fn tracked() -> TokenUsage {
    TokenUsage::default()
}

fn main() {}
