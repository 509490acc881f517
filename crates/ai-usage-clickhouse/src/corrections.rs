//! The fleet's cost corrections: the shipped adjustment lines (table
//! `adjustments`), summed per group and applied to the groups the queries
//! read from the aggregates or raw rows, as the local monitor applies each
//! adjustment to its rollups. Call and token counts never change; a call
//! that was unpriced before its first correction leaves `unpriced_calls`.

use ai_usage_core::{Currency, GroupStats, Money};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::schema::{money_from_column, ADJUSTMENTS_TABLE};

/// The corrections of one group, between two currencies: the sum of the
/// costs they replace and of the costs they set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Correction {
    /// Currency of the costs replaced.
    pub old_currency: Currency,
    /// Sum of the costs replaced.
    pub old: Money,
    /// Currency of the costs set.
    pub currency: Currency,
    /// Sum of the costs set.
    pub new: Money,
    /// Calls priced by their first correction (recorded without a price).
    pub repriced: u64,
}

impl Correction {
    /// Applies the correction to a group, as the core's
    /// `GroupStats::adjust` applies one adjustment.
    pub fn apply(&self, g: &mut GroupStats) {
        g.cost.add(self.old_currency, Money::ZERO - self.old);
        g.cost.add(self.currency, self.new);
        if self.old_currency != self.currency {
            g.cost.drop_if_zero(self.old_currency);
        }
        g.unpriced_calls = g.unpriced_calls.saturating_sub(self.repriced);
    }
}

/// The corrections of the calls `filter` selects (a condition over
/// `adjustments`: `day`, `timestamp` and the grouping keys are columns), per
/// `keys` (column names or `expression AS alias`), each line once
/// (`FINAL`). Each result holds the keys' values, in order.
pub(crate) fn read(
    client: &Client,
    filter: &str,
    keys: &[&str],
) -> Result<Vec<(Vec<String>, Correction)>> {
    let db = client.db();
    let group: Vec<&str> = keys
        .iter()
        .map(|k| k.rsplit_once(" AS ").map_or(*k, |(_, alias)| alias))
        .collect();
    let (select, group) = if keys.is_empty() {
        (String::new(), String::new())
    } else {
        (
            format!("{}, ", keys.join(", ")),
            format!("{}, ", group.join(", ")),
        )
    };
    let sql = format!(
        "SELECT {select}old_currency, currency, sum(old_cost_nanos), sum(cost_nanos), \
countIf(old_priced = 0) FROM {db}.{ADJUSTMENTS_TABLE} FINAL WHERE {filter} \
GROUP BY {group}old_currency, currency"
    );
    let n = keys.len();
    let mut out = Vec::new();
    client.query_each(&sql, |row| {
        let col = |i: usize| -> Result<&str> {
            row.get(i)
                .map(|s| s.as_ref())
                .ok_or_else(|| Error::Protocol(format!("adjustments row has no column {i}")))
        };
        let currency = |i: usize| -> Result<Currency> {
            let code = col(i)?;
            Currency::new(code).ok_or_else(|| Error::Protocol(format!("currency {code:?}")))
        };
        let number = |i: usize| -> Result<i64> {
            let s = col(i)?;
            s.parse()
                .map_err(|_| Error::Protocol(format!("not a number: {s:?}")))
        };
        let keys = (0..n)
            .map(|i| col(i).map(str::to_string))
            .collect::<Result<Vec<_>>>()?;
        let repriced = number(n + 4)?;
        out.push((
            keys,
            Correction {
                old_currency: currency(n)?,
                currency: currency(n + 1)?,
                old: money_from_column(number(n + 2)?),
                new: money_from_column(number(n + 3)?),
                repriced: u64::try_from(repriced).unwrap_or(0),
            },
        ));
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_correction_moves_cost_and_leaves_the_unpriced_count() {
        let mut g = GroupStats {
            calls: 3,
            unpriced_calls: 2,
            ..GroupStats::default()
        };
        g.cost.add(Currency::CNY, Money::ZERO);
        g.cost.add(Currency::USD, "0.5".parse().unwrap());
        Correction {
            old_currency: Currency::CNY,
            old: Money::ZERO,
            currency: Currency::USD,
            new: "0.25".parse().unwrap(),
            repriced: 2,
        }
        .apply(&mut g);
        assert_eq!(g.calls, 3);
        assert_eq!(g.unpriced_calls, 0);
        // Nothing is left behind in the old currency.
        assert_eq!(
            g.cost.iter().collect::<Vec<_>>(),
            vec![(Currency::USD, "0.75".parse().unwrap())]
        );
        // A second correction of a priced call moves cost only.
        Correction {
            old_currency: Currency::USD,
            old: "0.25".parse().unwrap(),
            currency: Currency::USD,
            new: "0.1".parse().unwrap(),
            repriced: 0,
        }
        .apply(&mut g);
        assert_eq!(g.cost.get(Currency::USD), "0.6".parse().unwrap());
        assert_eq!(g.unpriced_calls, 0);
    }
}
