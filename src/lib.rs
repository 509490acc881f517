//! # ai-usage-monitor
//!
//! Know exactly what your AI features cost. Record every LLM call — model,
//! function (功能), tokens, exact cost, duration, success, user, anchor (主播)
//! and session — into seed-compatible JSONL day files, and ask at any moment
//! what today, this broadcast, this streamer, this model or this feature costs.
//!
//! ```no_run
//! use ai_usage_monitor::{get_usage_monitor, record_ai_usage, UsageEvent};
//!
//! record_ai_usage(
//!     &UsageEvent::new("qwen-plus", "实时分析")
//!         .tokens(1200, 300)
//!         .duration_ms(850.0)
//!         .anchor("anchor_123")
//!         .session("live_20251026_123456"),
//! );
//! let today = get_usage_monitor().get_daily_summary(0);
//! println!("今日费用: ¥{:.2}", today.total_cost);
//! get_usage_monitor().flush().ok(); // before exit: the global monitor is never dropped
//! ```
//!
//! This crate is a facade: everything lives in `ai-usage-core` (pricing,
//! records, recorder, rollups, queries) and `ai-usage-macros`
//! (`#[track_ai_usage]`).
#![warn(missing_docs)]

pub use ai_usage_core::budget::{Budget, BudgetAlert, BudgetPeriod, BudgetScope, BudgetStatus};
pub use ai_usage_core::error::{Error, Result};
pub use ai_usage_core::monitor::{
    get_usage_monitor, init_global, record_ai_usage, FlushGuard, MonitorBuilder, UsageMonitor,
};
pub use ai_usage_core::query::savings::SavingsReport;
pub use ai_usage_core::query::{
    DashboardData, MonthForecast, RankBy, RankEntry, RankKind, SessionSummary, TrendPoint,
    UsageSummary,
};
pub use ai_usage_core::zone::Zone;
pub use ai_usage_core::*;

// BEGIN macro support
pub use ai_usage_core::record::usage::UsageSource;
pub use ai_usage_core::tracking::{IntoUsageId, MonitorHandle, UsageContext};
pub use ai_usage_macros::track_ai_usage;

/// What `#[track_ai_usage]` expands to refers to this module only, so a
/// user's crate needs no other dependency and may shadow `std`, `Result`, …
#[doc(hidden)]
pub mod __private {
    pub use ai_usage_core::record::usage::UsageSource;
    pub use ai_usage_core::tracking::{
        global_monitor, run_sync, CallGuard, ContextIds, Extracted, IntoUsageId, MonitorHandle,
        Tracked, UsageContext,
    };
    pub use core::pin::pin;
}
// END macro support
