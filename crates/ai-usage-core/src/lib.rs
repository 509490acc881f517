//! Core of `ai-usage-monitor`: exact pricing of AI calls, the original's
//! record format, a durable non-blocking recorder, in-memory rollups and the
//! queries answered from them.
//!
//! Where things happen, in the order a record travels (all modules are
//! private; what callers use is re-exported below):
//! - `pricing` turns (model, tokens) into exact [`Money`] in one currency;
//! - [`intake`] is what every door hands in ([`intake::UsageInput`]) and the
//!   one set of rules it must meet ([`intake::check`]);
//! - `record` is the JSON line ([`UsageRecord`]) and the caller's [`UsageEvent`];
//! - `monitor` ([`UsageMonitor`]) prices an event, updates the rollups and
//!   queues the line; its query, budget and report methods delegate to the
//!   layers below, which never know the monitor;
//! - `storage` owns the day files: the writer thread, replay, following;
//! - `rollups` are the in-memory counters every query reads;
//! - `query` answers summaries, sessions, rankings, trends and savings;
//! - `budget` checks spending against limits; `export` writes reports.
//!
//! # Public API
//!
//! Everything a program needs is re-exported at the crate root. Two small
//! modules stay public on purpose, for tools that work with the records
//! directory itself rather than through a monitor: [`dayfile`] (the day-file
//! format: names, the directory's environment variable, reading and
//! parsing) and [`demo`] (realistic demo data for try-outs and tests).
//! [`original`] shapes answers as the original (the Python service the
//! guide documents) sent them, for the HTTP server and the Python module.
#![warn(missing_docs)]
// `deny`, not `forbid`: one module (`monitor::exit_flush`) registers an
// `atexit` hook and proves it sound where it does.
#![deny(unsafe_code)]

mod budget;
mod error;
mod export;
mod function_names;
pub mod intake;
mod money;
mod monitor;
mod pricing;
mod query;
mod rates;
mod record;
mod rollups;
mod storage;
mod tracking;
mod zone;

pub mod demo;
/// JSON text with plain-decimal numbers (no `2e-7`), for responses and output.
pub mod json_text;
pub mod original;

/// The day-file format: `usage_YYYYMMDD.jsonl` files of one JSON record per
/// line in the records directory, read and parsed exactly as a replay does.
pub mod dayfile {
    pub use crate::storage::dayfile::{
        compressed_path, day_file_name, day_file_path, list_day_files, open_day_file,
        open_regular_file, parse_day_file_name, parse_lines, parse_record, read_day_file,
        read_day_file_at, DayReader, ReadStats, COMPRESSED_SUFFIX, DAY_FILE_PREFIX,
        DAY_FILE_SUFFIX, DEFAULT_DIR, DIR_ENV, MAX_LINE_BYTES,
    };
}

/// Compressing old day files (`usage_YYYY-MM-DD.jsonl.zst`) and removing
/// days past a deletion age, safely (see [`compact::compact_dir`]).
pub mod compact {
    pub use crate::storage::compact::{
        compact_dir, CompactOptions, CompactReport, DEFAULT_COMPRESS_AFTER_DAYS, DEFAULT_LEVEL,
    };
}

/// Adjustment files: cost corrections of recorded calls
/// (`adjustments_YYYY-MM-DD.jsonl`), and re-pricing, which plans them.
pub mod adjustments {
    pub use crate::storage::adjustments::{
        adjustment_file_name, append_adjustments, list_adjustment_files,
        parse_adjustment_file_name, read_adjustment_file_from, read_adjustments, Adjustment,
        AdjustmentStats, ReadAdjustments, ADJUSTMENT_FILE_PREFIX,
    };
    pub use crate::storage::reprice::{plan_reprice, RepriceChange, RepricePlan, RepriceScope};
}

// The monitor: recording, configuration, the global instance.
pub use monitor::{
    get_usage_monitor, init_global, record_ai_usage, AdjustmentObserver, BudgetHandle, Companion,
    CompanionContext, CompanionHandle, CompanionHealth, CurrentTotals, FlushGuard, MonitorBuilder,
    MonitorConfig, MonitorHealth, Observer, PricingHandle, RecordedCall, UsageMonitor, TZ_ENV,
};

// Records: what a caller records and what is written.
pub use record::fields::{CsvColumn, FieldSlot, FieldSpec, FieldValue, RecordField};
pub use record::usage::{TokenUsage, UsageSource};
pub use record::{RecordError, UsageEvent, UsageRecord, MAX_DURATION_MS, MAX_TOKENS_PER_CALL};

// How function names are shown by the API.
pub use function_names::{FunctionNames, FUNCTION_NAMES_ENV};

// Money and pricing.
pub use money::{
    Costs, Currency, Money, MoneyParseError, MAX_DECIMALS, MICROS_PER_UNIT, NANOS_PER_UNIT,
};
/// The genai-prices catalogue (USD prices of 34 providers, usage extraction
/// from provider responses), exact in nano-units.
pub use pricing::catalogue;
/// Price catalogues installed in the records directory by `ai-usage pricing
/// update`: validation, atomic install, rollback and what changed.
pub use pricing::installed;
pub use pricing::{
    Band, ModelPrice, PricingError, PricingTable, Quote, Rate, Tiers, MAX_PRICING_FILE_BYTES,
    MAX_PRICING_MODELS, PRICING_ENV,
};

// Durability settings and health.
pub use storage::writer::{FsyncPolicy, QueuePolicy, WriterHealth};

// Query results.
// Other query sources (the ClickHouse fleet) hand their groups to the same
// builders: `DayGroups` (dashboard, forecast, savings, budgets) and
// `PeriodGroups` (summaries).
/// Accepted ranges of query arguments, one rule for every door (HTTP,
/// CLI, Python).
pub use query::bounds;
pub use query::{
    convert_by_day, main_currency, success_rate, Alternative, ConvertedTotal, DashboardData,
    DayGroups, DayRange, DayRate, DistributionSlice, FrequencyChange, FunctionSavings,
    GroupSummary, ModelUse, MonthCard, MonthForecast, PeriodGroups, RankBy, RankEntry, RankKind,
    SavingsReport, SessionSummary, TodayCard, TrendPoint, UsageSummary,
};
// The one query interface every door holds (local monitor or fleet).
pub use query::{QueryError, QueryResult, UsageQueries};
pub use rollups::{
    DurationHistogram, GroupStats, MAX_IDS_PER_DAY, MAX_IDS_PER_HOUR, MAX_NAMES_PER_DAY,
    MAX_NAMES_PER_HOUR, MAX_SESSIONS, OTHER_GROUP,
};

// Budgets and their file.
pub use budget::{
    budgets_path, load_budgets_config, load_budgets_file, parse_budgets, parse_budgets_config,
    AlertCallback, Budget, BudgetAlert, BudgetExceeded, BudgetPeriod, BudgetScope, BudgetStatus,
    BudgetsConfig, CallScope, FleetSpend, BUDGETS_ENV, BUDGETS_FILE, DEFAULT_THRESHOLDS,
    MAX_BUDGETS, MAX_BUDGETS_FILE_BYTES,
};

// Reports.
pub use export::{
    daily_csv_header, records_csv_header, report_json, write_export, write_export_with, RecordsCsv,
    UsageReport, REPORT_TOP,
};

// Time zones and clocks.
pub use rates::{DatedRates, RatesError, MAX_RATES_FILE_BYTES};
pub use zone::{month_start, now_timestamp, Zone, ZoneParseError};

// Errors.
pub use error::{Error, Result};

// `#[track_ai_usage]`: the traits users implement.
pub use tracking::{IntoUsageId, MonitorHandle, UsageContext};

/// What the `ai-usage-monitor` facade's `__private` module re-exports for
/// the code `#[track_ai_usage]` generates. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::tracking::{
        check_budget, global_monitor, refuse, run_sync, BudgetRefusal, CallGuard, ContextIds,
        Extracted, Tracked,
    };
}
