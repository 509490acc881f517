use ai_usage_monitor::{track_ai_usage, TokenUsage, UsageMonitor};

struct ChatResponse;
struct UserId(u32);
struct NotAContext;

#[derive(Debug)]
struct ApiError;

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("api error")
    }
}

#[track_ai_usage("f", "m")]
fn returns_string() -> String {
    String::new()
}

#[track_ai_usage("f", "m")]
fn returns_foreign_response() -> Result<ChatResponse, ApiError> {
    Ok(ChatResponse)
}

#[track_ai_usage("f", "m")]
fn returns_unit() {}

#[track_ai_usage("f", "m")]
fn bad_id(user_id: UserId) -> TokenUsage {
    TokenUsage::new(u64::from(user_id.0), 0)
}

#[track_ai_usage("f", "m")]
fn bad_context(#[usage_context] ctx: &NotAContext) -> TokenUsage {
    TokenUsage::default()
}

#[track_ai_usage("f", "m", monitor = "records/ai_usage")]
fn bad_monitor() -> TokenUsage {
    TokenUsage::default()
}

fn text_len(s: &String) -> usize {
    s.len()
}

#[track_ai_usage("f", "m", extract = text_len)]
fn bad_extract() -> String {
    String::new()
}

fn main() {
    let _ = UsageMonitor::builder;
}
