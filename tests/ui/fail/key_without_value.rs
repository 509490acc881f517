//! Misuse: A key (here an alias of `session_id`) without `= value`.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析", session)]
fn tracked() -> TokenUsage {
    TokenUsage::default()
}

fn main() {}
