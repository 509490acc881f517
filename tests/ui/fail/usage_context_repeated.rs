//! Misuse: `#[usage_context]` twice on one parameter.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

struct Ctx;

#[track_ai_usage("实时分析", "qwen-plus")]
fn tracked(
    #[usage_context]
    #[usage_context]
    ctx: &Ctx,
) -> TokenUsage {
    let _ = ctx;
    TokenUsage::default()
}

fn main() {}
