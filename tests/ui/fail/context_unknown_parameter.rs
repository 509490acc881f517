//! Misuse: `context = cx` where no parameter is named `cx`.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

struct Ctx;

#[track_ai_usage("实时分析", "qwen-plus", context = cx)]
fn tracked(ctx: &Ctx, session_id: &str) -> TokenUsage {
    let _ = (ctx, session_id);
    TokenUsage::default()
}

fn main() {}
