//! Misuse: `function = NAME`: names must be literals, not constants.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

const NAME: &str = "实时分析";

#[track_ai_usage(function = NAME)]
fn tracked() -> TokenUsage {
    TokenUsage::default()
}

fn main() {
    let _ = NAME;
}
