//! Misuse: on an async closure: attribute macros cannot go on expressions, rustc rejects it.
use ai_usage_monitor::track_ai_usage;

fn main() {
    let analyze = #[track_ai_usage("实时分析", "qwen-plus")]
    async || ai_usage_monitor::TokenUsage::default();
    let _ = analyze;
}
