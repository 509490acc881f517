//! `budget_guard`: a call over a hard limit is refused before its body runs
//! and is recorded as neither a call nor a cost; sync and async, ids from
//! parameters.
use std::cell::Cell;

use ai_usage_monitor::{
    track_ai_usage, Budget, BudgetExceeded, BudgetPeriod, BudgetScope, Currency, TokenUsage,
    UsageMonitor,
};

#[derive(Debug)]
enum AppError {
    OverBudget(BudgetExceeded),
}

// The attribute reads a `Result`'s error through `Display`.
impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::OverBudget(e) => write!(f, "{e}"),
        }
    }
}

impl From<BudgetExceeded> for AppError {
    fn from(e: BudgetExceeded) -> Self {
        AppError::OverBudget(e)
    }
}

thread_local! {
    static BODIES_RUN: Cell<u32> = const { Cell::new(0) };
}

#[track_ai_usage("guarded", "qwen-plus", monitor = mon, budget_guard)]
fn guarded(mon: &UsageMonitor, user_id: &str) -> Result<TokenUsage, AppError> {
    let _ = user_id;
    BODIES_RUN.with(|c| c.set(c.get() + 1));
    Ok(TokenUsage::new(1000, 1000))
}

#[track_ai_usage("guarded-async", "qwen-plus", monitor = mon, budget_guard)]
async fn guarded_async(mon: &UsageMonitor, anchor_id: &str) -> Result<TokenUsage, AppError> {
    let _ = anchor_id;
    BODIES_RUN.with(|c| c.set(c.get() + 1));
    Ok(TokenUsage::new(1000, 1000))
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let m = UsageMonitor::builder().dir(dir.path()).build().expect("monitor");
    let tiny = |name: &str, scope: BudgetScope| {
        Budget::new(name, scope, BudgetPeriod::Daily, "0.000001".parse().unwrap(), Currency::CNY)
            .with_block_at(100)
    };
    m.add_budget(tiny("u42", BudgetScope::User("42".into()))).unwrap();
    m.add_budget(tiny("a1", BudgetScope::Anchor("a1".into()))).unwrap();

    assert!(guarded(&m, "42").is_ok(), "under the limit: the call is made");
    match guarded(&m, "42") {
        Err(AppError::OverBudget(e)) => assert_eq!(e.budget, "u42"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(guarded(&m, "7").is_ok(), "another user is not held");

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    assert!(rt.block_on(guarded_async(&m, "a1")).is_ok());
    assert!(matches!(
        rt.block_on(guarded_async(&m, "a1")),
        Err(AppError::OverBudget(ref e)) if e.budget == "a1"
    ));

    // Three bodies ran and three calls were recorded: the two refusals are
    // neither.
    assert_eq!(BODIES_RUN.with(Cell::get), 3);
    assert_eq!(m.get_daily_summary(0).total_calls, 3);
}
