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
//! // A normal exit flushes the global monitor: no guard or flush() needed.
//! ```
//!
//! This crate is a facade: everything lives in `ai-usage-core` (pricing,
//! records, recorder, rollups, queries) and `ai-usage-macros`
//! (`#[track_ai_usage]`).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

// The monitor: recording, configuration, the global instance.
pub use ai_usage_core::{
    get_usage_monitor, init_global, record_ai_usage, CurrentTotals, FlushGuard, FunctionNames,
    MonitorBuilder, MonitorConfig, MonitorHealth, Observer, RecordedCall, UsageMonitor,
    FUNCTION_NAMES_ENV, TZ_ENV,
};

// Records: what a caller records and what is written.
pub use ai_usage_core::{TokenUsage, UsageEvent, UsageRecord};

// Money and pricing.
pub use ai_usage_core::{
    Band, Costs, Currency, ModelPrice, Money, MoneyParseError, PricingError, PricingTable, Quote,
    Rate, Tiers, MAX_DECIMALS, MICROS_PER_UNIT, NANOS_PER_UNIT, PRICING_ENV,
};

// Durability settings and health.
pub use ai_usage_core::{FsyncPolicy, QueuePolicy, WriterHealth};

// Query results.
pub use ai_usage_core::{
    main_currency, success_rate, Alternative, ConvertedTotal, DashboardData, DistributionSlice,
    FrequencyChange, FunctionSavings, GroupStats, GroupSummary, ModelUse, MonthCard, MonthForecast,
    RankBy, RankEntry, RankKind, SavingsReport, SessionSummary, TodayCard, TrendPoint,
    UsageSummary,
};
// The one query interface: a monitor, or the ClickHouse fleet, answers.
pub use ai_usage_core::{QueryError, QueryResult, UsageQueries};

// Budgets and their file.
pub use ai_usage_core::{
    budgets_path, load_budgets_config, load_budgets_file, parse_budgets, AlertCallback, Budget,
    BudgetAlert, BudgetExceeded, BudgetPeriod, BudgetScope, BudgetStatus, BudgetsConfig, CallScope,
    FleetSpend, BUDGETS_ENV, BUDGETS_FILE, DEFAULT_THRESHOLDS,
};

// Reports.
pub use ai_usage_core::{daily_csv_header, records_csv_header, UsageReport};

// Time zones and clocks.
pub use ai_usage_core::{month_start, now_timestamp, Zone, ZoneParseError};

// Errors.
pub use ai_usage_core::{Error, Result};

// Background work beside a monitor (e.g. shipping to ClickHouse).
pub use ai_usage_core::{Companion, CompanionContext, CompanionHandle, CompanionHealth};

/// Fleet scale (feature `clickhouse`): ship the day files to ClickHouse and
/// answer the fleet's queries from it. See `docs/scale.md`.
#[cfg(feature = "clickhouse")]
pub use ai_usage_clickhouse as clickhouse;
/// `MonitorBuilder::clickhouse(endpoint)` (feature `clickhouse`): ships the
/// monitor's day files from a background thread of the application.
#[cfg(feature = "clickhouse")]
pub use ai_usage_clickhouse::ClickHouseExt;

// Tools working with the records directory itself: the day-file format and
// demo data.
pub use ai_usage_core::{dayfile, demo};

// BEGIN macro support
pub use ai_usage_core::{IntoUsageId, MonitorHandle, UsageContext, UsageSource};
pub use ai_usage_macros::track_ai_usage;

/// What `#[track_ai_usage]` expands to refers to this module only, so a
/// user's crate needs no other dependency and may shadow `std`, `Result`, …
#[doc(hidden)]
pub mod __private {
    pub use ai_usage_core::__private::{
        check_budget, global_monitor, refuse, run_sync, BudgetRefusal, CallGuard, ContextIds,
        Extracted, Tracked,
    };
    pub use ai_usage_core::{IntoUsageId, MonitorHandle, UsageContext, UsageSource};
    pub use core::pin::pin;
    /// The generated code opens the call's span with `tracing::span!`.
    pub use tracing;
}
// END macro support

/// The Rust snippets of the README and of `docs/`, compiled (and the ones not
/// marked `no_run` run) as doc tests, so the docs cannot drift from the API.
/// Each snippet is written against this facade crate alone, as a user's
/// application sees it.
#[cfg(doctest)]
mod docs_snippets {
    #[doc = include_str!("../README.md")]
    struct Readme;
    #[doc = include_str!("../docs/cli.md")]
    struct Cli;
    #[doc = include_str!("../docs/tracking.md")]
    struct Tracking;
    #[doc = include_str!("../docs/pricing.md")]
    struct Pricing;
    #[doc = include_str!("../docs/records.md")]
    struct Records;
    // docs/server.md's embedding example is the server crate's
    // `examples/embed_router.rs`, word for word (its `tests/embed.rs`).
    #[doc = include_str!("../docs/performance.md")]
    struct Performance;
    /// Its in-app shipping example needs the `clickhouse` feature.
    #[cfg(feature = "clickhouse")]
    #[doc = include_str!("../docs/scale.md")]
    struct Scale;
}
