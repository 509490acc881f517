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
    /// From the in-memory rollups, O(groups): no I/O to wait on, except
    /// while the history is still loading (queries then wait for it).
    fn may_block(&self) -> bool {
        self.is_loading()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::QueryError;
    use crate::record::UsageEvent;

    fn monitor(dir: &std::path::Path) -> UsageMonitor {
        UsageMonitor::builder()
            .dir(dir)
            .timezone("+08:00".parse().unwrap())
            .build()
            .unwrap()
    }

    #[test]
    fn the_interface_answers_what_the_monitor_does() {
        let tmp = tempfile::tempdir().unwrap();
        let m = monitor(tmp.path());
        for user in ["a", "b", "a"] {
            m.record(
                &UsageEvent::new("qwen-plus", "qa")
                    .tokens(100, 20)
                    .user(user),
            );
        }
        let q: &dyn UsageQueries = &m;
        // Once the history is loaded, answers come from memory at once.
        assert!(m.wait_until_loaded(std::time::Duration::from_secs(10)));
        assert!(!q.may_block());
        assert_eq!(q.zone(), m.zone());
        assert_eq!(q.last_days(7), m.last_days(7));
        // The window is clamped as the monitor clamps it.
        assert_eq!(q.last_days(u32::MAX), m.last_days(u32::MAX));
        assert_eq!(q.last_days(0), (m.today(), m.today()));
        assert_eq!(q.daily_summary(0).unwrap(), m.get_daily_summary(0));
        assert_eq!(q.daily_summary(0).unwrap().total_calls, 3);
        let (from, to) = q.last_days(2);
        assert_eq!(
            q.top(RankKind::User, from, to, RankBy::Calls, 0).unwrap(),
            m.top(RankKind::User, from, to, RankBy::Calls, 0)
        );
        assert_eq!(q.trend(from, to).unwrap(), m.get_cost_trend(2));
        assert_eq!(q.savings(2).unwrap(), m.savings(2));
        assert_eq!(
            q.daily_csv(from, to, true).unwrap(),
            m.daily_csv(from, to, true).unwrap()
        );
        // Refused arguments are the core's errors, naming the argument.
        match q.monthly_summary(2026, 13) {
            Err(QueryError::Core(Error::InvalidArgument { argument, .. })) => {
                assert_eq!(argument, "month")
            }
            other => panic!("month 13: {other:?}"),
        }
        assert!(matches!(
            q.trend(to, from),
            Err(QueryError::Core(Error::InvalidArgument { .. }))
        ));
        // The records CSV: the header, then one line per call.
        let mut out = Vec::new();
        q.write_records_csv(from, to, false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            crate::export::records_csv_header().join(",")
        );
        assert_eq!(lines.count(), 3, "{text}");
    }
}
