//! The month forecast: month-to-date plus a recent daily average.

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::money::{Costs, Currency, Money};
use crate::rollups::Rollups;
use crate::zone::month_start;

use super::summary::main_currency;

/// The month forecast (the guide's 案例 3, with its basis stated).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthForecast {
    /// `YYYY-MM`.
    pub month: String,
    /// Spend so far this month, including today.
    pub month_to_date: Money,
    /// Currency of all amounts.
    pub currency: Currency,
    /// Days of the month elapsed, including today.
    pub days_elapsed: u32,
    /// Days in the month.
    pub days_in_month: u32,
    /// Complete days averaged (the last up-to-7 days before today).
    pub basis_days: u32,
    /// Average daily cost over the basis days.
    pub avg_daily_cost: Money,
    /// Days left after today.
    pub remaining_days: u32,
    /// `month_to_date + avg_daily_cost × remaining_days`.
    pub projected_total: Money,
    /// The method in words.
    pub basis: String,
}

/// The month forecast as of `today`: month-to-date actual plus the average of
/// the (up to) 7 complete days before today, times the days left after today.
pub fn forecast_at(rollups: &Rollups, today: NaiveDate, reporting: Currency) -> MonthForecast {
    let first = month_start(today);
    let mut mtd = Costs::default();
    for (_, d) in rollups.days.range(first..=today) {
        mtd.merge(&d.day.totals.cost);
    }
    let currency = main_currency(&mtd, reporting);
    let basis_from = today - chrono::Duration::days(7);
    let yesterday = today - chrono::Duration::days(1);
    let mut basis_sum = Money::ZERO;
    for (_, d) in rollups.days.range(basis_from..=yesterday) {
        basis_sum += d.day.totals.cost.get(currency);
    }
    // Days before today with data or not, but never before tracking started.
    let earliest = rollups.days.keys().next().copied().unwrap_or(today);
    let basis_start = basis_from.max(earliest);
    let basis_days = if basis_start <= yesterday {
        (yesterday - basis_start).num_days() as u32 + 1
    } else {
        0
    };
    let dim = u32::from(today.num_days_in_month());
    let elapsed = today.day();
    let remaining = dim - elapsed;
    let avg = if basis_days == 0 {
        // No complete day yet: today so far is the only evidence.
        mtd.get(currency)
    } else {
        basis_sum
            .mul_div(1, basis_days as i64)
            .unwrap_or(Money::ZERO)
    };
    let projected = mtd.get(currency) + avg.mul_div(remaining as i64, 1).unwrap_or(Money::ZERO);
    MonthForecast {
        month: today.format("%Y-%m").to_string(),
        month_to_date: mtd.get(currency),
        currency,
        days_elapsed: elapsed,
        days_in_month: dim,
        basis_days,
        avg_daily_cost: avg,
        remaining_days: remaining,
        projected_total: projected,
        basis: if basis_days == 0 {
            "month-to-date + today's cost so far × remaining days (no complete day yet)".into()
        } else {
            format!("month-to-date + average of the last {basis_days} complete day(s) × {remaining} remaining day(s)")
        },
    }
}
