//! What `#[track_ai_usage(…, budget_guard)]` calls before the AI request.

use crate::budget::{BudgetExceeded, CallScope};
use crate::UsageMonitor;

/// The function's error type must take a refusal: `From<BudgetExceeded>`.
#[diagnostic::on_unimplemented(
    message = "`budget_guard` needs the function's error type `{Self}` to implement `From<BudgetExceeded>`",
    label = "a refused call returns `Err(BudgetExceeded.into())` here",
    note = "add `impl From<ai_usage_monitor::BudgetExceeded> for {Self}` (or a `#[from]` variant with thiserror), or remove `budget_guard`"
)]
pub trait BudgetRefusal {
    /// The error returned for a refused call.
    fn refusal(e: BudgetExceeded) -> Self;
}

impl<E: From<BudgetExceeded>> BudgetRefusal for E {
    fn refusal(e: BudgetExceeded) -> E {
        E::from(e)
    }
}

/// `monitor.check_budget` for the call the attribute is about to make.
pub fn check_budget(
    monitor: &UsageMonitor,
    function: &str,
    model: Option<&str>,
    user_id: Option<&str>,
    anchor_id: Option<&str>,
) -> Result<(), BudgetExceeded> {
    monitor.check_budget(&CallScope {
        user_id,
        anchor_id,
        function: Some(function),
        model,
        tags: &[],
    })
}

/// The function's error for a refusal.
pub fn refuse<E: BudgetRefusal>(e: BudgetExceeded) -> E {
    E::refusal(e)
}
