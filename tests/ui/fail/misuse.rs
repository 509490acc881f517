use ai_usage_monitor::{track_ai_usage, TokenUsage};

#[track_ai_usage("f", "m")]
const fn constant() -> TokenUsage { TokenUsage::new(1, 1) }

#[track_ai_usage("f", "m")]
struct NotAFunction;

trait Declared {
    #[track_ai_usage("f", "m")]
    fn no_body(&self) -> TokenUsage;
}

struct Ctx;

#[track_ai_usage("f", "m", context = cx)]
fn no_such_parameter(ctx: &Ctx) -> TokenUsage { TokenUsage::default() }

#[track_ai_usage("f", "m", context = a)]
fn context_twice(a: &Ctx, #[usage_context] b: &Ctx) -> TokenUsage { TokenUsage::default() }

#[track_ai_usage("f", "m")]
fn two_contexts(#[usage_context] a: &Ctx, #[usage_context] b: &Ctx) -> TokenUsage { TokenUsage::default() }

#[track_ai_usage("f", "m")]
fn context_pattern(#[usage_context] (a, b): (&Ctx, &Ctx)) -> TokenUsage { TokenUsage::default() }

fn main() {}
