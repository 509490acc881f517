//! `serve --clickhouse`: the API and the page answer from ClickHouse (the
//! whole fleet), this host's day files are shipped there in the
//! background, and budgets alert on the fleet's spend.

use ai_usage_clickhouse::{FleetAlertThread, FleetQueries, ShipperThread};
use ai_usage_core::{
    Budget, BudgetStatus, DashboardData, MonthForecast, RankBy, RankEntry, RankKind, SavingsReport,
    SessionSummary, TrendPoint, UsageReport, UsageSummary,
};
use ai_usage_server::{FleetError, FleetSource};
use chrono::NaiveDate;

/// The fleet's answers for the server, plus this host's shipper and
/// budget alert poller (if any).
pub struct FleetAnswers {
    pub queries: FleetQueries,
    /// Asks whether the store can answer (short timeout), for `/healthz`.
    pub probe: ai_usage_clickhouse::Client,
    pub shipper: Option<ShipperThread>,
    pub alerts: Option<FleetAlertThread>,
    /// Keeps the fleet's spend for the hard limits fresh (held for its
    /// `Drop`, which stops it).
    #[allow(dead_code)]
    pub budget_refresh: Option<ai_usage_clickhouse::FleetBudgetRefresh>,
}

impl FleetSource for FleetAnswers {
    fn summary_for_date(&self, date: NaiveDate) -> Result<UsageSummary, FleetError> {
        Ok(self.queries.summary_for_date(date)?)
    }

    fn hourly_summary(&self, hours_ago: u32) -> Result<UsageSummary, FleetError> {
        Ok(self.queries.hourly_summary(hours_ago)?)
    }

    fn monthly_summary(&self, year: i32, month: u32) -> Result<UsageSummary, FleetError> {
        Ok(self.queries.monthly_summary(year, month)?)
    }

    fn top(
        &self,
        kind: RankKind,
        from: NaiveDate,
        to: NaiveDate,
        by: RankBy,
        limit: usize,
    ) -> Result<Vec<RankEntry>, FleetError> {
        Ok(self.queries.top(kind, from, to, by, limit)?)
    }

    fn trend(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<TrendPoint>, FleetError> {
        Ok(self.queries.trend(from, to)?)
    }

    fn session(&self, session_id: &str) -> Result<Option<SessionSummary>, FleetError> {
        Ok(self.queries.session(session_id)?)
    }

    fn dashboard(&self) -> Result<DashboardData, FleetError> {
        Ok(self.queries.dashboard()?)
    }

    fn budget_status(&self, budgets: &[Budget]) -> Result<Vec<BudgetStatus>, FleetError> {
        Ok(self.queries.budget_status(budgets)?)
    }

    fn forecast(&self) -> Result<MonthForecast, FleetError> {
        Ok(self.queries.forecast()?)
    }

    fn savings(&self, days: u32) -> Result<SavingsReport, FleetError> {
        Ok(self.queries.savings(days)?)
    }

    fn usage_report(&self, days: u32, budgets: &[Budget]) -> Result<UsageReport, FleetError> {
        Ok(self.queries.usage_report(days, budgets)?)
    }

    fn daily_csv(&self, days: u32, bom: bool) -> Result<Vec<u8>, FleetError> {
        let (from, to) = self.queries.last_days(days);
        Ok(self.queries.daily_csv(from, to, bom)?)
    }

    fn health(&self) -> serde_json::Value {
        // Answers only once reachable, with our credentials, and with the
        // schema in place: what every fleet route needs. The error text
        // stays in the log (/healthz may be open).
        let ok = match ai_usage_clickhouse::schema::current_version(&self.probe) {
            Ok(v) => v > 0,
            Err(e) => {
                tracing::debug!(error = %e, "fleet store not answering");
                false
            }
        };
        serde_json::json!({
            "ok": ok,
            // Without credentials: /healthz may be open.
            "clickhouse": self.queries.client().endpoint().display_target(),
            "shipping": self.shipper.as_ref().map(ShipperThread::status),
            "budget_alerts": self.alerts.as_ref().map(FleetAlertThread::status),
        })
    }
}
