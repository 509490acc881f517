//! Misuse: on a whole `impl` block instead of its methods.
use ai_usage_monitor::{track_ai_usage, TokenUsage};

struct Client;

#[track_ai_usage("实时分析", "qwen-plus")]
impl Client {
    fn chat(&self) -> TokenUsage {
        TokenUsage::default()
    }
}

fn main() {
    let _ = Client.chat();
}
