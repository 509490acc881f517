//! Misuse: `monitor = …` that is not a monitor (a directory string).
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析", "qwen-plus", monitor = "records/ai_usage")]
fn tracked() -> TokenUsage {
    TokenUsage::default()
}

fn main() {}
