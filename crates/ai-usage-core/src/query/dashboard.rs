//! The dashboard payload: today and month cards, 7-day rankings and trend,
//! today's model and function distribution, the month forecast.

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::money::{Costs, Currency, Money};
use crate::pricing::PricingTable;
use crate::rollups::{Bucket, GroupMap, GroupStats, Rollups};
use crate::zone::month_start;

use super::forecast::{forecast_at, MonthForecast};
use super::rank::{rank_cached, RankBy, RankCache, RankEntry, RankKind};
use super::summary::{main_currency, success_rate};
use super::trend::{trend, TrendPoint};

/// The dashboard's "today" card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TodayCard {
    /// Calls.
    pub calls: u64,
    /// Total tokens.
    pub tokens: u64,
    /// Cost in `currency`.
    pub cost: Money,
    /// Currency of `cost`.
    pub currency: Currency,
    /// Cost per currency.
    pub costs: Costs,
    /// Success rate in percent.
    pub success_rate: f64,
    /// Cost change vs yesterday in percent (`None` when yesterday cost nothing).
    pub cost_change_pct: Option<f64>,
    /// Calls change vs yesterday in percent.
    pub calls_change_pct: Option<f64>,
    /// Tokens change vs yesterday in percent.
    pub tokens_change_pct: Option<f64>,
    /// Calls of unpriced models today.
    pub unpriced_calls: u64,
}

/// The dashboard's "this month" card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthCard {
    /// `YYYY-MM`.
    pub month: String,
    /// Calls.
    pub calls: u64,
    /// Total tokens.
    pub tokens: u64,
    /// Cost in `currency`.
    pub cost: Money,
    /// Currency of `cost`.
    pub currency: Currency,
    /// Cost per currency.
    pub costs: Costs,
    /// Cost / days elapsed.
    pub avg_daily_cost: Money,
    /// Days elapsed including today.
    pub days: u32,
}

/// One slice of a distribution (models or functions today).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistributionSlice {
    /// Model or function name.
    pub name: String,
    /// Display name (models).
    pub display_name: String,
    /// Calls.
    pub calls: u64,
    /// Total tokens.
    pub tokens: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost in `currency`.
    pub cost: Money,
    /// Currency.
    pub currency: Currency,
    /// Cost per currency.
    pub costs: Costs,
}

/// The dashboard payload (the original's `/dashboard`, plus anchors and forecast).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DashboardData {
    /// When computed (local ISO time in the monitor's zone).
    pub generated_at: String,
    /// Today's local date.
    pub date: String,
    /// Today.
    pub today: TodayCard,
    /// This month.
    pub month: MonthCard,
    /// Top 5 users over 7 days, by tokens.
    pub top_users: Vec<RankEntry>,
    /// Top 5 anchors over 7 days, by cost.
    pub top_anchors: Vec<RankEntry>,
    /// Last 7 days, oldest first, every day present.
    pub cost_trend: Vec<TrendPoint>,
    /// Models today, by cost.
    pub model_distribution: Vec<DistributionSlice>,
    /// Functions today, by cost.
    pub function_distribution: Vec<DistributionSlice>,
    /// Month forecast.
    pub forecast: MonthForecast,
}

fn pct_change(now: f64, before: f64) -> Option<f64> {
    (before != 0.0).then(|| ((now - before) / before * 10000.0).round() / 100.0)
}

fn distribution(
    map: &GroupMap,
    pricing: Option<&PricingTable>,
    reporting: Currency,
) -> Vec<DistributionSlice> {
    let mut v: Vec<DistributionSlice> = map
        .iter()
        .map(|(k, g)| {
            let currency = main_currency(&g.cost, reporting);
            DistributionSlice {
                name: k.to_string(),
                display_name: pricing.map_or_else(|| k.to_string(), |p| p.display_name(k)),
                calls: g.calls,
                tokens: g.total_tokens,
                input_tokens: g.input_tokens,
                output_tokens: g.output_tokens,
                cost: g.cost.get(currency),
                currency,
                costs: g.cost.clone(),
            }
        })
        .collect();
    v.sort_by(|a, b| {
        b.cost
            .cmp(&a.cost)
            .then(b.calls.cmp(&a.calls))
            .then(a.name.cmp(&b.name))
    });
    v
}

/// The dashboard payload as of the local date `today`, stamped
/// `generated_at` (the current local time in the monitor's zone).
pub fn dashboard(
    rollups: &Rollups,
    ranks: &mut RankCache,
    pricing: &PricingTable,
    today: NaiveDate,
    generated_at: String,
    reporting: Currency,
) -> DashboardData {
    let week_from = today - chrono::Duration::days(6);
    let top_users = rank_cached(
        rollups,
        ranks,
        RankKind::User,
        (week_from, today),
        RankBy::Tokens,
        5,
        reporting,
    );
    let top_anchors = rank_cached(
        rollups,
        ranks,
        RankKind::Anchor,
        (week_from, today),
        RankBy::Cost,
        5,
        reporting,
    );
    let empty = Bucket::default();
    let t = rollups.days.get(&today).map_or(&empty, |d| &d.day);
    let y = rollups
        .days
        .get(&(today - chrono::Duration::days(1)))
        .map_or(&empty, |d| &d.day);
    let currency = main_currency(&t.totals.cost, reporting);
    let today_card = TodayCard {
        calls: t.totals.calls,
        tokens: t.totals.total_tokens,
        cost: t.totals.cost.get(currency),
        currency,
        costs: t.totals.cost.clone(),
        success_rate: success_rate(&t.totals),
        cost_change_pct: pct_change(
            t.totals.cost.get(currency).as_f64(),
            y.totals.cost.get(currency).as_f64(),
        ),
        calls_change_pct: pct_change(t.totals.calls as f64, y.totals.calls as f64),
        tokens_change_pct: pct_change(t.totals.total_tokens as f64, y.totals.total_tokens as f64),
        unpriced_calls: t.totals.unpriced_calls,
    };
    let first = month_start(today);
    let mut month = GroupStats::default();
    for (_, d) in rollups.days.range(first..=today) {
        month.merge(&d.day.totals);
    }
    let days = today.day();
    let mcur = main_currency(&month.cost, reporting);
    let month_card = MonthCard {
        month: today.format("%Y-%m").to_string(),
        calls: month.calls,
        tokens: month.total_tokens,
        cost: month.cost.get(mcur),
        currency: mcur,
        avg_daily_cost: month
            .cost
            .get(mcur)
            .mul_div(1, days as i64)
            .unwrap_or(Money::ZERO),
        costs: month.cost,
        days,
    };
    DashboardData {
        generated_at,
        date: today.format("%Y-%m-%d").to_string(),
        today: today_card,
        month: month_card,
        top_users,
        top_anchors,
        cost_trend: trend(rollups, week_from, today, reporting),
        model_distribution: distribution(&t.by_model, Some(pricing), reporting),
        function_distribution: distribution(&t.by_function, None, reporting),
        forecast: forecast_at(rollups, today, reporting),
    }
}
