//! Misuse: The same named key twice.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析", session_id = "a", session_id = "b")]
fn tracked() -> TokenUsage {
    TokenUsage::default()
}

fn main() {}
