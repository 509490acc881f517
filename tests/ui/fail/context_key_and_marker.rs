//! Misuse: Both `context = a` and `#[usage_context]` on another parameter.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

struct Ctx;

#[track_ai_usage("实时分析", "qwen-plus", context = a)]
fn tracked(a: &Ctx, #[usage_context] b: &Ctx) -> TokenUsage {
    let _ = (a, b);
    TokenUsage::default()
}

fn main() {}
