//! Misuse: `extract = f` where `f` returns no token usage.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

fn text_len(s: &String) -> usize {
    s.len()
}

#[track_ai_usage("实时分析", "qwen-plus", extract = text_len)]
fn tracked() -> String {
    String::new()
}

fn main() {
    let _: fn() -> TokenUsage = TokenUsage::default;
}
