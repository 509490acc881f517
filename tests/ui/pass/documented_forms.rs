//! Every form the `#[track_ai_usage]` docs list (argument table, return
//! shapes, id sources, where it works), under `deny(warnings)`. `main` runs
//! each once and checks the function, model and ids that were recorded.
#![deny(warnings)]

// `crate = "…"` for a renamed dependency: `::renamed` is the facade.
extern crate ai_usage_monitor as renamed;

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use ai_usage_monitor::{
    init_global, track_ai_usage, IntoUsageId, TokenUsage, UsageContext, UsageMonitor, UsageSource,
};
use serde_json::{json, Value};

// --- the example at the top of the docs -------------------------------------

struct LiveContext {
    anchor: String,
}

impl UsageContext for LiveContext {
    fn anchor_id(&self) -> Option<&str> {
        Some(&self.anchor)
    }
}

/// A provider response type of the user's own.
struct ChatResponse {
    model: String,
    usage: TokenUsage,
}

impl UsageSource for ChatResponse {
    fn token_usage(&self) -> Option<TokenUsage> {
        Some(self.usage)
    }
    fn response_model(&self) -> Option<&str> {
        Some(&self.model)
    }
}

#[derive(Debug)]
struct ApiError;

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("api error")
    }
}

// No `monitor = …`: records on the global monitor, which `main` points at a temp dir.
#[track_ai_usage("实时分析", "qwen-plus")]
async fn generate_analysis(
    #[usage_context] ctx: &LiveContext,
    session_id: &str,
) -> Result<ChatResponse, ApiError> {
    let _ = ctx;
    Ok(ChatResponse {
        model: "qwen-plus-latest".into(),
        usage: TokenUsage::new(u64::try_from(session_id.len()).map_err(|_| ApiError)?, 3),
    })
}

// --- argument table ---------------------------------------------------------

/// No arguments: the function is named after the fn, the model after the response.
#[track_ai_usage]
fn defaults_from_fn_and_response() -> ChatResponse {
    ChatResponse {
        model: "from-response".into(),
        usage: TokenUsage::new(1, 1),
    }
}

#[track_ai_usage(function = "named", model = "m", monitor = mon, user_id = "u", anchor_id = 42u64, session_id = format!("s{}", 1))]
fn every_id_by_key(mon: &UsageMonitor) -> TokenUsage {
    TokenUsage::new(1, 1)
}

struct Reply {
    text: String,
    usage: Option<TokenUsage>,
}

fn reply_usage(r: &Reply) -> Option<TokenUsage> {
    r.usage
}

mod extractors {
    pub fn checked(
        r: &Result<super::Reply, super::ApiError>,
    ) -> Result<super::TokenUsage, &super::ApiError> {
        r.as_ref().map(|r| r.usage.unwrap_or_default())
    }
}

#[track_ai_usage("extract-fn", "m", monitor = mon, extract = reply_usage)]
fn extract_fn(mon: &UsageMonitor) -> Reply {
    Reply {
        text: "hi".into(),
        usage: Some(TokenUsage::new(2, 2)),
    }
}

#[track_ai_usage("extract-path", "m", monitor = mon, extract = extractors::checked)]
fn extract_path(mon: &UsageMonitor) -> Result<Reply, ApiError> {
    Ok(Reply {
        text: String::new(),
        usage: None,
    })
}

#[track_ai_usage("extract-closure", "m", monitor = mon, extract = |r: &Reply| r.usage)]
fn extract_closure(mon: &UsageMonitor) -> Reply {
    Reply {
        text: "closure".into(),
        usage: Some(TokenUsage::new(3, 3)),
    }
}

fn make_monitor(dir: &Path) -> UsageMonitor {
    UsageMonitor::builder().dir(dir).build().expect("monitor")
}

#[track_ai_usage("monitor-owned", "m", monitor = make_monitor(dir))]
fn monitor_owned(dir: &Path) -> TokenUsage {
    TokenUsage::new(1, 1)
}

#[track_ai_usage("monitor-arc", "m", monitor = Arc::clone(mon))]
fn monitor_arc(mon: &Arc<UsageMonitor>) -> TokenUsage {
    TokenUsage::new(1, 1)
}

#[track_ai_usage("monitor-box", "m", monitor = mon)]
fn monitor_box(mon: Box<UsageMonitor>) -> TokenUsage {
    TokenUsage::new(1, 1)
}

#[track_ai_usage("context-key", "m", monitor = mon, context = ctx)]
fn context_key(mon: &UsageMonitor, ctx: LiveContext) -> TokenUsage {
    drop(ctx);
    TokenUsage::new(1, 1)
}

#[track_ai_usage("crate-renamed", "m", monitor = mon, crate = "::renamed")]
fn crate_renamed(mon: &UsageMonitor) -> TokenUsage {
    TokenUsage::new(1, 1)
}

#[track_ai_usage("crate-path", "m", monitor = mon, crate = ::renamed)]
fn crate_path(mon: &UsageMonitor) -> TokenUsage {
    TokenUsage::new(1, 1)
}

// --- ids from parameters ----------------------------------------------------

struct UserId(u32);

impl IntoUsageId<'static> for UserId {
    fn usage_id(&self) -> Option<Cow<'static, str>> {
        Some(Cow::Owned(format!("user-{}", self.0)))
    }
}

#[track_ai_usage("id-params", "m", monitor = mon)]
fn id_params(
    mon: &UsageMonitor,
    user_id: UserId,
    anchor_id: Option<&str>,
    session_id: String,
) -> TokenUsage {
    let _ = (user_id.0, anchor_id);
    TokenUsage::new(session_id.len() as u64, 0)
}

#[track_ai_usage("id-integer", "m", monitor = mon)]
fn id_integer(mon: &UsageMonitor, user_id: u64) -> TokenUsage {
    TokenUsage::new(user_id, 0)
}

// --- return shapes ----------------------------------------------------------

#[track_ai_usage("ret-json", monitor = mon)]
fn ret_json(mon: &UsageMonitor) -> Value {
    json!({"model": "qwen-max", "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}})
}

#[track_ai_usage("ret-box", "m", monitor = mon)]
fn ret_box(mon: &UsageMonitor) -> Box<TokenUsage> {
    Box::new(TokenUsage::new(1, 1))
}

#[track_ai_usage("ret-arc", "m", monitor = mon)]
fn ret_arc(mon: &UsageMonitor) -> Arc<TokenUsage> {
    Arc::new(TokenUsage::new(1, 1))
}

#[track_ai_usage("ret-ref", "m", monitor = mon)]
fn ret_ref<'a>(mon: &UsageMonitor, usage: &'a TokenUsage) -> &'a TokenUsage {
    usage
}

#[track_ai_usage("ret-pair", "m", monitor = mon)]
fn ret_pair(mon: &UsageMonitor) -> (String, TokenUsage) {
    ("text".into(), TokenUsage::new(1, 1))
}

#[track_ai_usage("ret-option", "m", monitor = mon)]
fn ret_option(mon: &UsageMonitor) -> Option<TokenUsage> {
    None
}

// --- where it works ---------------------------------------------------------

struct Session {
    monitor: Arc<UsageMonitor>,
    session: String,
}

impl UsageContext for Session {
    fn session_id(&self) -> Option<&str> {
        Some(&self.session)
    }
}

impl Session {
    /// `self` as the context.
    #[track_ai_usage("self-context", "m", monitor = &self.monitor, context = self)]
    fn self_context(&self) -> TokenUsage {
        TokenUsage::new(1, 1)
    }

    // The body mutates `self`, so the monitor expression must not borrow it.
    #[track_ai_usage("mut-self", "m", monitor = Arc::clone(&self.monitor))]
    async fn mut_self(&mut self, text: impl AsRef<str>) -> Result<TokenUsage, ApiError> {
        self.session.push_str(text.as_ref());
        if self.session.is_empty() {
            return Err(ApiError);
        }
        Ok(TokenUsage::new(1, 1))
    }
}

/// A sync fn returning `async move { … }` (what `#[async_trait]` generates by hand).
#[track_ai_usage("async-tail", "m", monitor = mon)]
fn async_tail(mon: &UsageMonitor) -> impl std::future::Future<Output = TokenUsage> + '_ {
    let _ = mon;
    async move { TokenUsage::new(1, 1) }
}

#[track_ai_usage("box-pin-tail", "m", monitor = mon.clone())]
fn box_pin_tail(
    mon: Arc<UsageMonitor>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<TokenUsage, ApiError>> + Send>> {
    Box::pin(async move {
        let _ = &mon;
        Ok(TokenUsage::new(1, 1))
    })
}

#[track_ai_usage("generic-where", "m", monitor = mon)]
fn generic_where<T>(mon: &UsageMonitor, items: &[T]) -> Result<TokenUsage, String>
where
    T: AsRef<str>,
{
    let n: u64 = items
        .iter()
        .map(|s| s.as_ref().len())
        .sum::<usize>()
        .try_into()
        .map_err(|_| "too long".to_string())?;
    Ok(TokenUsage::new(n, 0))
}

fn records(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            let text = std::fs::read_to_string(&path).expect("day file");
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                out.push(serde_json::from_str(line).expect("json line"));
            }
        }
    }
    out
}

fn find<'a>(records: &'a [Value], function: &str) -> &'a Value {
    let found: Vec<&Value> = records
        .iter()
        .filter(|r| r["function"] == function)
        .collect();
    assert_eq!(found.len(), 1, "one `{function}` record in {records:#?}");
    found[0]
}

fn main() {
    let global_dir = tempfile::tempdir().expect("temp dir");
    let guard = init_global(UsageMonitor::builder().dir(global_dir.path())).expect("global");
    let dir = tempfile::tempdir().expect("temp dir");
    let mon = make_monitor(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");

    let ctx = LiveContext {
        anchor: "anchor_123".into(),
    };
    assert!(rt.block_on(generate_analysis(&ctx, "live_1")).is_ok());
    assert_eq!(defaults_from_fn_and_response().usage, TokenUsage::new(1, 1));

    let _ = every_id_by_key(&mon);
    assert_eq!(extract_fn(&mon).text, "hi");
    assert!(extract_path(&mon).is_ok());
    assert_eq!(extract_closure(&mon).text, "closure");
    let _ = monitor_arc(&Arc::new(make_monitor(dir.path())));
    let _ = monitor_box(Box::new(make_monitor(dir.path())));
    let _ = context_key(
        &mon,
        LiveContext {
            anchor: "a-key".into(),
        },
    );
    let _ = crate_renamed(&mon);
    let _ = crate_path(&mon);
    let _ = id_params(&mon, UserId(9), Some("a-param"), "s-param".into());
    let _ = id_integer(&mon, 77);
    let _ = ret_json(&mon);
    let _ = ret_box(&mon);
    let _ = ret_arc(&mon);
    let usage = TokenUsage::new(4, 4);
    assert_eq!(*ret_ref(&mon, &usage), usage);
    let _ = ret_pair(&mon);
    let _ = ret_option(&mon);
    let mut session = Session {
        monitor: Arc::new(make_monitor(dir.path())),
        session: "s-self".into(),
    };
    let _ = session.self_context();
    assert!(rt.block_on(session.mut_self("!")).is_ok());
    session.monitor.flush().expect("flush");
    let _ = rt.block_on(async_tail(&mon));
    let _ = rt.block_on(box_pin_tail(Arc::new(make_monitor(dir.path()))));
    let _ = generic_where(&mon, &["ab", "c"]);
    // Dropped, so its records are written.
    let _ = monitor_owned(dir.path());
    mon.flush().expect("flush");
    drop(guard);

    let global = records(global_dir.path());
    let r = find(&global, "实时分析");
    assert_eq!(
        (&r["model"], &r["anchor_id"], &r["session_id"]),
        (&json!("qwen-plus"), &json!("anchor_123"), &json!("live_1"))
    );
    let r = find(&global, "defaults_from_fn_and_response");
    assert_eq!(r["model"], "from-response");

    let local = records(dir.path());
    let r = find(&local, "named");
    assert_eq!(
        (&r["user_id"], &r["anchor_id"], &r["session_id"]),
        (&json!("u"), &json!("42"), &json!("s1"))
    );
    assert_eq!(find(&local, "extract-fn")["input_tokens"], 2);
    assert_eq!(find(&local, "extract-path")["success"], true);
    assert_eq!(find(&local, "extract-closure")["input_tokens"], 3);
    assert_eq!(find(&local, "context-key")["anchor_id"], "a-key");
    let r = find(&local, "id-params");
    assert_eq!(
        (&r["user_id"], &r["anchor_id"], &r["session_id"]),
        (&json!("user-9"), &json!("a-param"), &json!("s-param"))
    );
    assert_eq!(find(&local, "id-integer")["user_id"], "77");
    assert_eq!(find(&local, "ret-json")["model"], "qwen-max");
    assert_eq!(find(&local, "ret-json")["output_tokens"], 6);
    assert_eq!(find(&local, "self-context")["session_id"], "s-self");
    for f in [
        "monitor-owned",
        "monitor-arc",
        "monitor-box",
        "crate-renamed",
        "crate-path",
        "ret-box",
        "ret-arc",
        "ret-ref",
        "ret-pair",
        "ret-option",
        "mut-self",
        "async-tail",
        "box-pin-tail",
        "generic-where",
    ] {
        let _ = find(&local, f);
    }
}
