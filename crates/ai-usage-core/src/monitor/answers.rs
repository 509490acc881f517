//! The local monitor as the query interface: every answer from its
//! rollups (never fails for lack of a store).

use chrono::NaiveDate;

use crate::budget::BudgetStatus;
use crate::error::Error;
use crate::export::UsageReport;
use crate::query::{
    DashboardData, MonthForecast, QueryResult, RankBy, RankEntry, RankKind, SavingsReport,
    SessionSummary, TrendPoint, UsageQueries, UsageSummary,
};
use crate::zone::Zone;

use super::UsageMonitor;

impl UsageQueries for UsageMonitor {
    /// From the in-memory rollups, O(groups): no I/O to wait on.
    fn may_block(&self) -> bool {
        false
    }

    fn zone(&self) -> Zone {
        UsageMonitor::zone(self)
    }

    fn today(&self) -> NaiveDate {
        UsageMonitor::today(self)
    }

    fn last_days(&self, days: u32) -> (NaiveDate, NaiveDate) {
        UsageMonitor::last_days(self, days)
    }

    fn summary_for_date(&self, date: NaiveDate) -> QueryResult<UsageSummary> {
        Ok(self.get_summary_for_date(date))
    }

    fn summary_for_hour(&self, date: NaiveDate, hour: u8) -> QueryResult<UsageSummary> {
        Ok(self.get_summary_for_hour(date, hour))
    }

    fn daily_summary(&self, days_ago: u32) -> QueryResult<UsageSummary> {
        Ok(self.get_daily_summary(days_ago))
    }

    fn hourly_summary(&self, hours_ago: u32) -> QueryResult<UsageSummary> {
        Ok(self.get_hourly_summary(hours_ago))
    }

    fn range_summary(&self, from: NaiveDate, to: NaiveDate) -> QueryResult<UsageSummary> {
        Ok(self.get_range_summary(from, to)?)
    }

    fn monthly_summary(&self, year: i32, month: u32) -> QueryResult<UsageSummary> {
        Ok(self.get_monthly_summary(year, month)?)
    }

    fn session(&self, session_id: &str) -> QueryResult<Option<SessionSummary>> {
        Ok(self.get_session_stats(session_id))
    }

    fn top(
        &self,
        kind: RankKind,
        from: NaiveDate,
        to: NaiveDate,
        by: RankBy,
        limit: usize,
    ) -> QueryResult<Vec<RankEntry>> {
        Ok(UsageMonitor::top(self, kind, from, to, by, limit))
    }

    fn trend(&self, from: NaiveDate, to: NaiveDate) -> QueryResult<Vec<TrendPoint>> {
        Ok(self.cost_trend_range(from, to)?)
    }

    fn dashboard(&self) -> QueryResult<DashboardData> {
        Ok(UsageMonitor::dashboard(self))
    }

    fn forecast(&self) -> QueryResult<MonthForecast> {
        Ok(UsageMonitor::forecast(self))
    }

    fn savings_between(&self, from: NaiveDate, to: NaiveDate) -> QueryResult<SavingsReport> {
        Ok(UsageMonitor::savings_between(self, from, to))
    }

    fn savings(&self, days: u32) -> QueryResult<SavingsReport> {
        Ok(UsageMonitor::savings(self, days))
    }

    fn budget_status(&self) -> QueryResult<Vec<BudgetStatus>> {
        Ok(UsageMonitor::budget_status(self))
    }

    fn usage_report(&self, days: u32) -> QueryResult<UsageReport> {
        Ok(UsageMonitor::usage_report(self, days))
    }

    fn daily_csv(&self, from: NaiveDate, to: NaiveDate, bom: bool) -> QueryResult<Vec<u8>> {
        Ok(UsageMonitor::daily_csv(self, from, to, bom)?)
    }

    fn write_records_csv(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        bom: bool,
        out: &mut dyn std::io::Write,
    ) -> QueryResult<()> {
        if let Err(e) = self.flush() {
            // Still export what is on disk; say that recent records may be missing.
            tracing::warn!(error = %e, "exporting records without a successful flush");
        }
        let csv = crate::export::records_csv(self.dir(), &self.zone(), from, to, bom)?;
        out.write_all(&csv)
            .map_err(|e| Error::io("cannot write the records export of", self.dir(), e))?;
        Ok(())
    }
}
