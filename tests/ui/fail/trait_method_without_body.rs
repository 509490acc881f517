//! Misuse: on a trait method declaration, which has no body.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

trait Analyzer {
    #[track_ai_usage("实时分析", "qwen-plus")]
    fn analyze(&self, text: &str) -> TokenUsage;
}

fn main() {}
