//! Misuse: A context parameter whose type does not implement `UsageContext`.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

struct NotAContext;

#[track_ai_usage("实时分析", "qwen-plus")]
fn tracked(#[usage_context] ctx: &NotAContext) -> TokenUsage {
    let _ = ctx;
    TokenUsage::default()
}

fn main() {}
