//! Misuse: on a struct.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析", "qwen-plus")]
pub struct Analysis {
    pub usage: TokenUsage,
}

fn main() {}
