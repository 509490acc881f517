//! Misuse: on a `const` item.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析", "qwen-plus")]
const USAGE: TokenUsage = TokenUsage::new(1, 1);

fn main() {
    let _ = USAGE;
}
