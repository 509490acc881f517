//! Every supported form, under `deny(warnings)`, in a crate that shadows the
//! names generated code could otherwise pick up by accident.
#![deny(warnings)]
#![allow(dead_code)]

use ai_usage_monitor::{track_ai_usage, TokenUsage, UsageContext, UsageMonitor};

// Shadow what a careless expansion would name.
type Result<T> = ::core::result::Result<T, String>;
struct Option;
struct Some;
struct None;
struct Box;
struct Ok;
struct Err;
struct CallGuard;
mod std {}
mod core {}
mod ai_usage_core {}
#[allow(unused_macros)]
macro_rules! pin {
    ($($t:tt)*) => {
        compile_error!("the user's `pin!` was used")
    };
}
fn drop() {}

#[track_ai_usage("sync", "qwen-plus", monitor = mon)]
fn sync_call(mon: &UsageMonitor, session_id: &str) -> Result<TokenUsage> {
    if session_id.is_empty() {
        return ::core::result::Result::Err("empty".into());
    }
    let n: u64 = session_id.len().try_into().map_err(|_| "long".to_string())?;
    ::core::result::Result::Ok(TokenUsage::new(n, 1))
}

#[track_ai_usage("async", monitor = mon, user_id = 7u32)]
async fn async_call(mon: &UsageMonitor, anchor_id: ::std::option::Option<String>) -> TokenUsage {
    let _ = anchor_id;
    TokenUsage::new(1, 2)
}

trait Prompt {
    fn len(&self) -> usize;
}

impl Prompt for &str {
    fn len(&self) -> usize {
        str::len(self)
    }
}

#[track_ai_usage(function = "generic", model = "m", monitor = mon)]
pub(crate) fn generic<'a, P, const N: usize>(
    mon: &UsageMonitor,
    prompts: [P; N],
    extra: impl Prompt + 'a,
) -> impl ai_usage_monitor::UsageSource
where
    P: Prompt + Clone,
{
    let n: usize = prompts.iter().map(Prompt::len).sum::<usize>() + extra.len();
    TokenUsage::new(n as u64, N as u64)
}

struct Ctx(String);

impl UsageContext for Ctx {
    fn session_id(&self) -> ::std::option::Option<&str> {
        ::std::option::Option::Some(&self.0)
    }
}

struct Service {
    monitor: ::std::sync::Arc<UsageMonitor>,
}

impl Service {
    /// Doc comments and other attributes stay.
    #[must_use]
    #[track_ai_usage("by-ref", "m", monitor = &self.monitor)]
    pub fn by_ref(&self, #[usage_context] ctx: &Ctx) -> TokenUsage {
        let _ = &ctx.0;
        TokenUsage::new(1, 1)
    }

    #[track_ai_usage("by-mut", "m", monitor = self.monitor.clone(), context = ctx)]
    async fn by_mut(&mut self, ctx: Ctx) -> ::std::option::Option<TokenUsage> {
        ::core::mem::drop(ctx);
        ::std::option::Option::None
    }

    #[track_ai_usage("by-value", "m", monitor = self.monitor.clone())]
    fn by_value(self) -> (Self, TokenUsage) {
        (self, TokenUsage::default())
    }
}

// async-trait's own expansion names `Box`, so this lives where it is not shadowed.
mod with_async_trait {
    use ai_usage_monitor::{track_ai_usage, TokenUsage};

    #[async_trait::async_trait]
    pub trait Analyzer {
        async fn analyze(&self, text: &str) -> Result<TokenUsage, String>;
    }

    #[async_trait::async_trait]
    impl Analyzer for super::Service {
        #[track_ai_usage("async-trait", "m", monitor = self.monitor.clone())]
        async fn analyze(&self, text: &str) -> Result<TokenUsage, String> {
            Ok(TokenUsage::new(text.len() as u64, 0))
        }
    }
}

#[no_implicit_prelude]
mod strict {
    use ::ai_usage_monitor::{track_ai_usage, TokenUsage, UsageMonitor};

    #[track_ai_usage("strict", "m", monitor = mon, session_id = "s")]
    pub fn no_prelude(mon: &UsageMonitor) -> ::std::result::Result<TokenUsage, ::std::string::String> {
        ::std::result::Result::Ok(TokenUsage::new(1, 1))
    }

    #[track_ai_usage("strict-async", "m", monitor = mon)]
    pub async fn no_prelude_async(mon: &UsageMonitor, session_id: u64) -> TokenUsage {
        TokenUsage::new(session_id, 1)
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mon = UsageMonitor::builder().dir(dir.path()).build().unwrap();
    let _ = sync_call(&mon, "live");
    let _ = generic(&mon, ["a", "b"], "c");
    let _ = strict::no_prelude(&mon);
    let _ = async_call;
    let _ = strict::no_prelude_async;
    let svc = Service {
        monitor: ::std::sync::Arc::new(UsageMonitor::builder().dir(dir.path()).build().unwrap()),
    };
    let _ = svc.by_ref(&Ctx("s".into()));
    let _ = svc.by_value();
    mon.flush().unwrap();
}
