//! Misuse: A misspelt key is named, with the list of keys and the likely one.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("实时分析", sesion_id = sid)]
fn tracked(sid: &str) -> TokenUsage {
    let _ = sid;
    TokenUsage::default()
}

fn main() {}
