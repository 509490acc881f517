//! The fleet as the core's query interface: the doors (HTTP, the CLI, the
//! page) hold it exactly as they hold a local monitor.

use ai_usage_core::{
    BudgetStatus, DashboardData, MonthForecast, QueryError, QueryResult, RankBy, RankEntry,
    RankKind, SavingsReport, SessionSummary, TrendPoint, UsageQueries, UsageReport, UsageSummary,
    Zone,
};
use chrono::NaiveDate;

use crate::error::Error;
use crate::queries::FleetQueries;

impl From<Error> for QueryError {
    /// The core's refusals stay the caller's to fix; anything else is the
    /// store's (unreachable, refused, answered nonsense).
    fn from(e: Error) -> QueryError {
        match e {
            Error::Core(e) => QueryError::Core(e),
            e => QueryError::Unavailable(Box::new(e)),
        }
    }
}

impl UsageQueries for FleetQueries {
    fn zone(&self) -> Zone {
        *FleetQueries::zone(self)
    }

    fn summary_for_date(&self, date: NaiveDate) -> QueryResult<UsageSummary> {
        Ok(FleetQueries::summary_for_date(self, date)?)
    }

    fn summary_for_hour(&self, date: NaiveDate, hour: u8) -> QueryResult<UsageSummary> {
        Ok(FleetQueries::summary_for_hour(self, date, hour)?)
    }

    fn range_summary(&self, from: NaiveDate, to: NaiveDate) -> QueryResult<UsageSummary> {
        Ok(FleetQueries::range_summary(self, from, to)?)
    }

    fn monthly_summary(&self, year: i32, month: u32) -> QueryResult<UsageSummary> {
        Ok(FleetQueries::monthly_summary(self, year, month)?)
    }

    fn session(&self, session_id: &str) -> QueryResult<Option<SessionSummary>> {
        Ok(FleetQueries::session(self, session_id)?)
    }

    fn top(
        &self,
        kind: RankKind,
        from: NaiveDate,
        to: NaiveDate,
        by: RankBy,
        limit: usize,
    ) -> QueryResult<Vec<RankEntry>> {
        Ok(FleetQueries::top(self, kind, from, to, by, limit)?)
    }

    fn trend(&self, from: NaiveDate, to: NaiveDate) -> QueryResult<Vec<TrendPoint>> {
        Ok(FleetQueries::trend(self, from, to)?)
    }

    fn dashboard(&self) -> QueryResult<DashboardData> {
        Ok(FleetQueries::dashboard(self)?)
    }

    fn forecast(&self) -> QueryResult<MonthForecast> {
        Ok(FleetQueries::forecast(self)?)
    }

    fn savings_between(&self, from: NaiveDate, to: NaiveDate) -> QueryResult<SavingsReport> {
        Ok(FleetQueries::savings_between(self, from, to)?)
    }

    fn budget_status(&self) -> QueryResult<Vec<BudgetStatus>> {
        Ok(FleetQueries::budget_status(self, &self.budgets())?)
    }

    fn usage_report(&self, days: u32) -> QueryResult<UsageReport> {
        Ok(FleetQueries::usage_report(self, days, &self.budgets())?)
    }

    fn daily_csv(&self, from: NaiveDate, to: NaiveDate, bom: bool) -> QueryResult<Vec<u8>> {
        Ok(FleetQueries::daily_csv(self, from, to, bom)?)
    }

    fn write_records_csv(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        bom: bool,
        out: &mut dyn std::io::Write,
    ) -> QueryResult<()> {
        FleetQueries::write_records_csv(self, from, to, bom, out)?;
        Ok(())
    }
}
