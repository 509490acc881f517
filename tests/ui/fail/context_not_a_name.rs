//! Misuse: `context` given an expression instead of a parameter name.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

struct Ctx;

struct Holder {
    ctx: Ctx,
}

#[track_ai_usage("实时分析", context = holder.ctx)]
fn tracked(holder: &Holder) -> TokenUsage {
    let _ = &holder.ctx;
    TokenUsage::default()
}

fn main() {}
