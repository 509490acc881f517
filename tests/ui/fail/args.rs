use ai_usage_monitor::{track_ai_usage, TokenUsage};

const NAME: &str = "实时分析";

#[track_ai_usage("实时分析", sesion_id = sid)]
fn unknown_key(sid: &str) -> TokenUsage { TokenUsage::default() }

#[track_ai_usage("实时分析", "qwen-plus", model = "qwen-max")]
fn repeated_model() -> TokenUsage { TokenUsage::default() }

#[track_ai_usage(NAME)]
fn non_literal_positional() -> TokenUsage { TokenUsage::default() }

#[track_ai_usage(function = NAME)]
fn non_literal_named() -> TokenUsage { TokenUsage::default() }

#[track_ai_usage("a", "b", "c")]
fn three_positional() -> TokenUsage { TokenUsage::default() }

#[track_ai_usage(model = "qwen-plus", "实时分析")]
fn positional_after_named() -> TokenUsage { TokenUsage::default() }

#[track_ai_usage(实时分析)]
fn unquoted() -> TokenUsage { TokenUsage::default() }

#[track_ai_usage("")]
fn empty_name() -> TokenUsage { TokenUsage::default() }

#[track_ai_usage("f", extract = "extract_tokens")]
fn extract_literal() -> TokenUsage { TokenUsage::default() }

#[track_ai_usage("f", session)]
fn key_without_value() -> TokenUsage { TokenUsage::default() }

fn main() {}
