//! Misuse: on a C-variadic function.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析", "qwen-plus")]
unsafe extern "C" fn tracked(n: i32, mut rest: ...) -> TokenUsage {
    let _ = (n, &mut rest);
    TokenUsage::default()
}

fn main() {}
