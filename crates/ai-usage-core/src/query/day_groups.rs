//! Answers over day-level groups counted outside this process (e.g. the
//! fleet's aggregates in a database): the dashboard, the month forecast,
//! savings advice and budget status, computed by the same functions the
//! monitor uses over its own rollups, so the results (and their JSON) are
//! the same.

use chrono::NaiveDate;

use crate::budget::{Budget, BudgetBook, BudgetStatus};
use crate::money::Currency;
use crate::pricing::PricingTable;
use crate::rollups::{GroupStats, Rollups};
use crate::zone::Zone;
use crate::Result;

use super::dashboard::{dashboard, DashboardData};
use super::forecast::{forecast_at, MonthForecast};
use super::rank::RankCache;
use super::savings::{savings_for, SavingsReport};

/// Per-local-day groups fed from outside: model × function groups (which
/// make the day's totals, models, functions and the pairs savings reads)
/// and user and anchor groups. Durations are not kept: none of these
/// answers reads them.
#[derive(Debug, Clone, Default)]
pub struct DayGroups {
    rollups: Rollups,
}

impl DayGroups {
    /// No groups yet.
    pub fn new() -> DayGroups {
        DayGroups::default()
    }

    /// Counts `g`, the calls of one model × function on the local day `date`.
    pub fn add_model_function(
        &mut self,
        date: NaiveDate,
        model: &str,
        function: &str,
        g: &GroupStats,
    ) {
        self.rollups.add_model_group(date, model, function, g);
    }

    /// Counts `g`, the calls of user `user` on `date` (no totals: those
    /// come from [`add_model_function`](Self::add_model_function)).
    pub fn add_user(&mut self, date: NaiveDate, user: &str, g: &GroupStats) {
        self.rollups.add_id_group(date, true, user, g);
    }

    /// Counts `g`, the calls of anchor `anchor` on `date`.
    pub fn add_anchor(&mut self, date: NaiveDate, anchor: &str, g: &GroupStats) {
        self.rollups.add_id_group(date, false, anchor, g);
    }

    /// Marks `date` as a tracked day even without calls: the forecast never
    /// averages over days before the earliest tracked one.
    pub fn add_day(&mut self, date: NaiveDate) {
        self.rollups.days.entry(date).or_default();
    }

    /// The dashboard payload as of `today` (needs the days from the month's
    /// start, or 7 days back if earlier, to `today`).
    pub fn dashboard(
        &self,
        pricing: &PricingTable,
        today: NaiveDate,
        generated_at: String,
        reporting: Currency,
    ) -> DashboardData {
        let mut ranks = RankCache::default();
        dashboard(
            &self.rollups,
            &mut ranks,
            pricing,
            today,
            generated_at,
            reporting,
        )
    }

    /// The month forecast as of `today` (needs the month's days and the 7
    /// before today).
    pub fn forecast(&self, today: NaiveDate, reporting: Currency) -> MonthForecast {
        forecast_at(&self.rollups, today, reporting)
    }

    /// Savings advice over the local days `from..=to`.
    pub fn savings(&self, pricing: &PricingTable, from: NaiveDate, to: NaiveDate) -> SavingsReport {
        savings_for(&self.rollups, pricing, from, to)
    }

    /// Where each budget stands in its period containing `today`, at `now`
    /// (epoch seconds) in `zone`; thresholds already reached count as fired
    /// (needs the days of each budget's period). Errors name an invalid
    /// budget.
    pub fn budget_status(
        &self,
        budgets: &[Budget],
        zone: &Zone,
        today: NaiveDate,
        now: f64,
    ) -> Result<Vec<BudgetStatus>> {
        let book = BudgetBook::default();
        for b in budgets {
            book.add(b.clone(), &self.rollups, today)?;
        }
        Ok(book.status(&self.rollups, zone, today, now))
    }
}
