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

    /// The daily CSV export of the days `from..=to` (one row per day ×
    /// model × function, columns [`daily_csv_header`](crate::daily_csv_header)),
    /// byte for byte what `UsageMonitor::daily_csv` writes over the same
    /// groups; `bom` as there.
    pub fn daily_csv(
        &self,
        pricing: &PricingTable,
        reporting: Currency,
        from: NaiveDate,
        to: NaiveDate,
        bom: bool,
    ) -> Result<Vec<u8>> {
        crate::export::csv::daily_csv(&self.rollups, pricing, reporting, from, to, bom)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::{BudgetPeriod, BudgetScope};
    use crate::money::Money;

    /// Calls over 10 days: 5 users, 3 anchors, 3 models, 2 functions.
    fn calls() -> Vec<crate::UsageRecord> {
        let models = ["qwen-plus", "qwen-max", "deepseek-chat"];
        let mut seed: u64 = 7;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        (0..400)
            .map(|i| {
                let ts = 1_764_000_000.0 + f64::from(i) * 2_160.0;
                let line = format!(
                    r#"{{"timestamp": {ts}, "user_id": "u{}", "anchor_id": "a{}", "model": "{}", "function": "f{}", "input_tokens": {}, "output_tokens": 9, "total_tokens": {}, "cost": 0.0{}, "duration_ms": 5.0, "success": true, "error_msg": null}}"#,
                    next(5),
                    next(3),
                    models[next(3) as usize],
                    next(2),
                    100 + i,
                    109 + i,
                    1 + next(9),
                );
                crate::dayfile::parse_record(line.as_bytes()).expect("record")
            })
            .collect()
    }

    #[test]
    fn answers_equal_the_monitors_over_the_same_calls() {
        let zone: Zone = "+08:00".parse().expect("zone");
        let pricing = PricingTable::builtin();
        let (mut rollups, mut groups) = (Rollups::default(), DayGroups::new());
        for r in calls() {
            let (date, hour) = rollups.locate(&zone, r.timestamp);
            rollups.add(&r, date, hour, Currency::CNY, true);
            let mut g = GroupStats::default();
            g.add(&r, Currency::CNY, true);
            groups.add_model_function(date, &r.model, &r.function, &g);
            groups.add_user(date, r.user_id.as_deref().unwrap_or(""), &g);
            groups.add_anchor(date, r.anchor_id.as_deref().unwrap_or(""), &g);
        }
        let today = *rollups.days.keys().last().expect("days");
        let want = dashboard(
            &rollups,
            &mut RankCache::default(),
            &pricing,
            today,
            "t".into(),
            Currency::CNY,
        );
        assert!(want.today.calls > 0 && !want.top_users.is_empty());
        assert_eq!(
            groups.dashboard(&pricing, today, "t".into(), Currency::CNY),
            want
        );
        assert_eq!(
            groups.forecast(today, Currency::CNY),
            forecast_at(&rollups, today, Currency::CNY)
        );
        let from = today - chrono::Duration::days(6);
        assert_eq!(
            groups.savings(&pricing, from, today),
            savings_for(&rollups, &pricing, from, today)
        );
        let budgets = vec![
            Budget::new(
                "all",
                BudgetScope::Global,
                BudgetPeriod::Monthly,
                Money::from_micros(100_000),
                Currency::CNY,
            ),
            Budget::new(
                "u1",
                BudgetScope::User("u1".into()),
                BudgetPeriod::Daily,
                Money::from_micros(1),
                Currency::CNY,
            ),
        ];
        let now = zone.day_bounds(today).0 + 43_200.0;
        let book = BudgetBook::default();
        for b in &budgets {
            book.add(b.clone(), &rollups, today).expect("budget");
        }
        let got = groups
            .budget_status(&budgets, &zone, today, now)
            .expect("status");
        assert!(got[1].spent > Money::ZERO && !got[1].thresholds_fired.is_empty());
        assert_eq!(got, book.status(&rollups, &zone, today, now));
    }
}
