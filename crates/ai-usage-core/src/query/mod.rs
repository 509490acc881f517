//! Queries answered from the rollups: summaries (hour, day, month, any range
//! of days), sessions, rankings, the cost trend, the month forecast, the
//! dashboard payload and savings advice. Every query costs O(groups), never
//! O(records).
//!
//! This layer is pure: functions of the rollups and the pricing table. The
//! monitor (`crate::monitor`) takes its locks and calls them.
//!
//! Field names are the original's (`total_calls`, `by_model`, …). Money is never
//! added across currencies: a group's `cost` is in its `currency` (its only
//! currency, or the reporting currency when it has several) and `costs` lists
//! every currency separately.

pub(crate) mod answers;
pub mod bounds;
mod dashboard;
mod day_groups;
mod forecast;
mod period_groups;
mod rank;
mod savings;
mod session;
mod summary;
mod trend;

pub use answers::{QueryError, QueryResult, UsageQueries};
pub use dashboard::{dashboard, DashboardData, DistributionSlice, MonthCard, TodayCard};
pub use day_groups::DayGroups;
pub use forecast::{forecast_at, MonthForecast};
pub use period_groups::{DayRange, PeriodGroups};
#[cfg(test)]
pub(crate) use rank::rank;
pub(crate) use rank::RankCache;
pub use rank::{rank_cached, RankBy, RankEntry, RankKind};
pub use savings::{
    savings_for, Alternative, FrequencyChange, FunctionSavings, ModelUse, SavingsReport,
};
pub use session::{recent_sessions, SessionSummary};
pub use summary::{
    convert_by_day, main_currency, success_rate, ConvertedTotal, DayRate, GroupSummary,
    UsageSummary,
};
pub use trend::{trend, TrendPoint};
