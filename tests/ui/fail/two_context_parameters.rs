//! Misuse: `#[usage_context]` on two parameters.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

struct Ctx;

#[track_ai_usage("实时分析", "qwen-plus")]
fn tracked(#[usage_context] a: &Ctx, #[usage_context] b: &Ctx) -> TokenUsage {
    let _ = (a, b);
    TokenUsage::default()
}

fn main() {}
