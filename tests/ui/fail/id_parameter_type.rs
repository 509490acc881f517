//! Misuse: A parameter named `user_id` whose type is not an id.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

struct UserId(u32);

#[track_ai_usage("实时分析", "qwen-plus")]
fn tracked(user_id: UserId) -> TokenUsage {
    TokenUsage::new(u64::from(user_id.0), 0)
}

fn main() {}
