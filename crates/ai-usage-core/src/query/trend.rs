//! The cost trend: every day of a range, zero days included.

use chrono::NaiveDate;
use serde::Serialize;

use crate::money::{Costs, Currency, Money};
use crate::rollups::Rollups;

use super::summary::main_currency;

/// One day of the cost trend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendPoint {
    /// Local date `YYYY-MM-DD`.
    pub date: String,
    /// Cost in `currency`.
    pub cost: Money,
    /// Currency of `cost`.
    pub currency: Currency,
    /// Cost per currency.
    pub costs: Costs,
    /// Calls.
    pub calls: u64,
    /// Total tokens.
    pub tokens: u64,
}

/// The cost of every day `from..=to`, oldest first, zero days included.
pub fn trend(
    rollups: &Rollups,
    from: NaiveDate,
    to: NaiveDate,
    reporting: Currency,
) -> Vec<TrendPoint> {
    let mut out = Vec::new();
    let mut d = from;
    while d <= to {
        let (costs, calls, tokens) = match rollups.days.get(&d) {
            Some(day) => (
                day.day.totals.cost.clone(),
                day.day.totals.calls,
                day.day.totals.total_tokens,
            ),
            None => (Costs::default(), 0, 0),
        };
        let currency = main_currency(&costs, reporting);
        out.push(TrendPoint {
            date: d.format("%Y-%m-%d").to_string(),
            cost: costs.get(currency),
            currency,
            costs,
            calls,
            tokens,
        });
        match d.succ_opt() {
            Some(n) => d = n,
            None => break,
        }
    }
    out
}
