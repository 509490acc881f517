//! The one query interface: every question a door (HTTP, the CLI, the
//! page) asks, answered by the local monitor or by a fleet store alike.
//!
//! Doors hold an `Arc<dyn UsageQueries>` and never ask where answers come
//! from: the local monitor answers from its rollups, the ClickHouse fleet
//! from its tables, both through the core's builders, so the shapes are
//! identical.

use chrono::NaiveDate;

use crate::budget::BudgetStatus;
use crate::export::UsageReport;
use crate::query::{
    bounds::MAX_RANGE_DAYS, DashboardData, MonthForecast, RankBy, RankEntry, RankKind,
    SavingsReport, SessionSummary, TrendPoint, UsageSummary,
};
use crate::zone::Zone;

/// Why a query has no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The core refused the question (e.g. `InvalidArgument` for month 13
    /// or a range longer than the limit): the caller's to fix.
    #[error(transparent)]
    Core(#[from] crate::error::Error),
    /// The store could not answer (e.g. the fleet's database is down or
    /// answered something unreadable); asking again later may work.
    #[error("{0}")]
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
}

/// The result of a query.
pub type QueryResult<T> = std::result::Result<T, QueryError>;

/// Every answer the doors give, from whichever source holds the records.
///
/// Methods may block (a fleet calls its database): async callers run them
/// on a blocking pool. Days are local calendar days of [`zone`](Self::zone).
pub trait UsageQueries: Send + Sync {
    /// The zone whose local days and hours the answers use.
    fn zone(&self) -> Zone;

    /// The summary of a local calendar date.
    fn summary_for_date(&self, date: NaiveDate) -> QueryResult<UsageSummary>;

    /// The summary of one local clock hour (0..=23) of a date.
    fn summary_for_hour(&self, date: NaiveDate, hour: u8) -> QueryResult<UsageSummary>;

    /// The summary of whole local days `from..=to` (`InvalidArgument` when
    /// `from > to` or the range is too long).
    fn range_summary(&self, from: NaiveDate, to: NaiveDate) -> QueryResult<UsageSummary>;

    /// The summary of a calendar month (`InvalidArgument` unless `month` is
    /// 1..=12).
    fn monthly_summary(&self, year: i32, month: u32) -> QueryResult<UsageSummary>;

    /// One session's figures (`None`: no such session).
    fn session(&self, session_id: &str) -> QueryResult<Option<SessionSummary>>;

    /// Users, anchors, functions or models of the local days `from..=to`,
    /// best first by `by` (ties by id), at most `limit` (0 = all).
    fn top(
        &self,
        kind: RankKind,
        from: NaiveDate,
        to: NaiveDate,
        by: RankBy,
        limit: usize,
    ) -> QueryResult<Vec<RankEntry>>;

    /// The cost of every local day `from..=to`, oldest first, zero days
    /// included.
    fn trend(&self, from: NaiveDate, to: NaiveDate) -> QueryResult<Vec<TrendPoint>>;

    /// The dashboard payload as of today.
    fn dashboard(&self) -> QueryResult<DashboardData>;

    /// The month forecast as of today.
    fn forecast(&self) -> QueryResult<MonthForecast>;

    /// Savings advice from the local days `from..=to`.
    fn savings_between(&self, from: NaiveDate, to: NaiveDate) -> QueryResult<SavingsReport>;

    /// Where each budget in force stands (the budgets of the monitor the
    /// answers serve; a fleet evaluates them on the whole fleet's spend).
    fn budget_status(&self) -> QueryResult<Vec<BudgetStatus>>;

    /// The usage report of the last `days` local days (today included).
    fn usage_report(&self, days: u32) -> QueryResult<UsageReport>;

    /// The daily CSV export (one row per local day × model × function) of
    /// the days `from..=to`; `bom` puts a UTF-8 byte order mark first.
    fn daily_csv(&self, from: NaiveDate, to: NaiveDate, bom: bool) -> QueryResult<Vec<u8>>;

    /// Writes the raw records of the local days `from..=to` as CSV (columns
    /// [`records_csv_header`](crate::records_csv_header)) into `out`; `bom`
    /// as for [`daily_csv`](Self::daily_csv). A store may stream them: the
    /// export can be far larger than memory.
    fn write_records_csv(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        bom: bool,
        out: &mut dyn std::io::Write,
    ) -> QueryResult<()>;

    /// True when answers may wait on I/O (a database): async callers then
    /// ask on a blocking pool. Answers from memory say false.
    fn may_block(&self) -> bool {
        true
    }

    /// Today's local date.
    fn today(&self) -> NaiveDate {
        self.zone().today()
    }

    /// The last `days` local days ending today, as `(from, to)`: at least
    /// one day, at most [`MAX_RANGE_DAYS`], never before the epoch.
    fn last_days(&self, days: u32) -> (NaiveDate, NaiveDate) {
        let to = self.today();
        let days = days.clamp(1, MAX_RANGE_DAYS as u32);
        (days_before(to, days - 1), to)
    }

    /// The summary of the local day `days_ago` days before today (0 = today).
    fn daily_summary(&self, days_ago: u32) -> QueryResult<UsageSummary> {
        self.summary_for_date(days_before(self.today(), days_ago))
    }

    /// The summary of the local clock hour `hours_ago` before the current one.
    fn hourly_summary(&self, hours_ago: u32) -> QueryResult<UsageSummary> {
        let ts = crate::zone::now_timestamp() - f64::from(hours_ago) * 3600.0;
        let (date, hour) = self.zone().hour_of(ts);
        self.summary_for_hour(date, hour)
    }

    /// Savings advice from the last `days` local days (today included).
    fn savings(&self, days: u32) -> QueryResult<SavingsReport> {
        let (from, to) = self.last_days(days);
        self.savings_between(from, to)
    }
}

/// The date `days` before `date`, never before the epoch: no record is
/// older, and chrono's date arithmetic panics past its range.
pub(crate) fn days_before(date: NaiveDate, days: u32) -> NaiveDate {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(NaiveDate::MIN);
    date.checked_sub_days(chrono::Days::new(days.into()))
        .map_or(epoch, |d| d.max(epoch))
}
