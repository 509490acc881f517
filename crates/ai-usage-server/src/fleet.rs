//! Answers from the whole fleet (e.g. ClickHouse) instead of the local
//! monitor: a trait the server calls, implemented outside this crate so the
//! server knows no database client.

use ai_usage_core::{
    Budget, BudgetStatus, DashboardData, MonthForecast, RankBy, RankEntry, RankKind, SavingsReport,
    SessionSummary, TrendPoint, UsageReport, UsageSummary,
};
use chrono::NaiveDate;

use crate::error::ApiError;

/// The error a fleet source reports (shown to the client as a 503).
pub type FleetError = Box<dyn std::error::Error + Send + Sync>;

/// Where the read routes (`stats/*`, `session`, rankings, `cost_trend`,
/// `dashboard`, `budgets`, `forecast`, `savings`) and `export_report` get
/// their answers when set: the same core types (and CSV bytes) the local
/// monitor makes, so the JSON shapes and files are identical. Methods block (they may call a database);
/// the routes run them on the blocking pool.
pub trait FleetSource: Send + Sync + 'static {
    /// The summary of a local calendar date.
    fn summary_for_date(&self, date: NaiveDate) -> Result<UsageSummary, FleetError>;
    /// The summary of the local clock hour `hours_ago` before the current one.
    fn hourly_summary(&self, hours_ago: u32) -> Result<UsageSummary, FleetError>;
    /// The summary of a calendar month.
    fn monthly_summary(&self, year: i32, month: u32) -> Result<UsageSummary, FleetError>;
    /// A ranking over whole local days `from..=to`.
    fn top(
        &self,
        kind: RankKind,
        from: NaiveDate,
        to: NaiveDate,
        by: RankBy,
        limit: usize,
    ) -> Result<Vec<RankEntry>, FleetError>;
    /// The cost of every local day `from..=to`.
    fn trend(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<TrendPoint>, FleetError>;
    /// One session's figures (`None`: unknown session).
    fn session(&self, session_id: &str) -> Result<Option<SessionSummary>, FleetError>;
    /// The dashboard payload as of today.
    fn dashboard(&self) -> Result<DashboardData, FleetError>;
    /// Where `budgets` (this server's budget definitions) stand on the
    /// fleet's spend.
    fn budget_status(&self, budgets: &[Budget]) -> Result<Vec<BudgetStatus>, FleetError>;
    /// The month forecast as of today.
    fn forecast(&self) -> Result<MonthForecast, FleetError>;
    /// Savings advice over the last `days` local days (today included).
    fn savings(&self, days: u32) -> Result<SavingsReport, FleetError>;
    /// The usage report of the last `days` local days (today included),
    /// `budgets` (this server's definitions) evaluated on the fleet's spend.
    fn usage_report(&self, days: u32, budgets: &[Budget]) -> Result<UsageReport, FleetError>;
    /// The daily CSV export (one row per local day × model × function) of
    /// the last `days` local days (today included), as the local monitor's
    /// `export_csv` writes it; `bom` puts a UTF-8 byte order mark first.
    fn daily_csv(&self, days: u32, bom: bool) -> Result<Vec<u8>, FleetError>;
    /// What `/healthz` shows under `fleet` (e.g. the shipper's lag). An
    /// object with `"ok": false` (the store cannot answer) makes `/healthz`
    /// not ok (503).
    fn health(&self) -> serde_json::Value;
}

/// Runs a fleet call on the blocking pool; its failure is a 503.
///
/// The store's own error text (user names, "Authentication failed",
/// addresses) goes to the log only, under an error id; the client, who may
/// be unauthenticated, learns only that the store is unavailable, and that id.
pub(crate) async fn ask<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, FleetError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            let id = crate::error::next_error_id();
            tracing::warn!(error_id = %id, error = %e, "fleet query failed");
            Err(ApiError::Unavailable {
                message: format!("the fleet store is unavailable (error id {id})"),
                retry_after_secs: 5,
            })
        }
        Err(e) => Err(ApiError::internal("fleet query task", e)),
    }
}
