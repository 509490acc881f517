//! Misuse: `context` given the parameter name as a string.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

struct Ctx;

#[track_ai_usage("实时分析", context = "ctx")]
fn tracked(ctx: &Ctx) -> TokenUsage {
    let _ = ctx;
    TokenUsage::default()
}

fn main() {}
