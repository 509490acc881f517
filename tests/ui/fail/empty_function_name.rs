//! Misuse: An empty function name.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("")]
fn tracked() -> TokenUsage {
    TokenUsage::default()
}

fn main() {}
