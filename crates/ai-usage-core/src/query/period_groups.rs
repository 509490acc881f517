//! The groups of one period counted outside this process (e.g. the fleet's
//! aggregates in a database), turned into a [`UsageSummary`] by the same
//! builder the monitor uses over its own rollups: one place computes every
//! field of a summary, whoever counted the calls.

use chrono::NaiveDate;

use crate::error::{Error, Result};
use crate::money::Currency;
use crate::pricing::PricingTable;
use crate::rollups::{Bucket, DurationHistogram, GroupStats};

use super::summary::UsageSummary;

use super::bounds::MAX_RANGE_DAYS;

/// One period's groups: model × function groups (which make the totals,
/// `by_model` and `by_function`), user and anchor groups, and the calls'
/// durations.
#[derive(Debug, Clone, Default)]
pub struct PeriodGroups {
    bucket: Bucket,
}

impl PeriodGroups {
    /// No groups yet.
    pub fn new() -> PeriodGroups {
        PeriodGroups::default()
    }

    /// Counts `g`, the calls of one model × function.
    pub fn add_model_function(&mut self, model: &str, function: &str, g: &GroupStats) {
        let b = &mut self.bucket;
        b.totals.merge(g);
        b.by_model.merge_group(model, g);
        b.by_function.merge_group(function, g);
    }

    /// Counts `g`, the calls of user `user` (no totals: those come from
    /// [`add_model_function`](Self::add_model_function)).
    pub fn add_user(&mut self, user: &str, g: &GroupStats) {
        self.bucket.by_user.merge_group(user, g);
    }

    /// Counts `g`, the calls of anchor `anchor`.
    pub fn add_anchor(&mut self, anchor: &str, g: &GroupStats) {
        self.bucket.by_anchor.merge_group(anchor, g);
    }

    /// The period's call durations, to add buckets to.
    pub fn durations_mut(&mut self) -> &mut DurationHistogram {
        &mut self.bucket.durations
    }

    /// The summary of `[start, end)` labelled `period`, exactly as the
    /// monitor builds its own: `by_*` lists of at most `group_limit` groups
    /// (0: no limit), costs converted with `rates` (micro-units of
    /// `reporting` per unit of each other currency).
    pub fn summary(
        &self,
        period: &str,
        bounds: (f64, f64),
        pricing: &PricingTable,
        reporting: Currency,
        rates: &[(Currency, i64)],
        group_limit: usize,
    ) -> UsageSummary {
        UsageSummary::from_bucket(
            period,
            bounds,
            &self.bucket,
            pricing,
            reporting,
            rates,
            group_limit,
        )
    }
}

/// A range of local days `from..=to` that a query accepts: `from <= to`,
/// at most 3,660 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    from: NaiveDate,
    to: NaiveDate,
}

impl DayRange {
    /// The range `from..=to`, or an error naming what is wrong with it.
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<DayRange> {
        if from > to {
            return Err(Error::InvalidArgument {
                argument: "from",
                message: format!("{from} is after {to}"),
            });
        }
        if (to - from).num_days() > MAX_RANGE_DAYS {
            return Err(Error::InvalidArgument {
                argument: "from",
                message: format!("a range may span at most {MAX_RANGE_DAYS} days"),
            });
        }
        Ok(DayRange { from, to })
    }

    /// The first day.
    pub fn from(&self) -> NaiveDate {
        self.from
    }

    /// The last day (included).
    pub fn to(&self) -> NaiveDate {
        self.to
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Money;

    fn stats(calls: u64, tokens: u64, cny_micros: i64) -> GroupStats {
        let mut g = GroupStats {
            calls,
            successful_calls: calls,
            input_tokens: tokens,
            total_tokens: tokens,
            ..GroupStats::default()
        };
        g.cost.add(Currency::CNY, Money::from_micros(cny_micros));
        g
    }

    #[test]
    fn every_cut_list_counts_as_truncated() {
        let mut p = PeriodGroups::new();
        for (i, model) in ["a", "b", "c"].iter().enumerate() {
            p.add_model_function(model, "f", &stats(1, 10 * (i as u64 + 1), 1_000));
        }
        p.add_user("u", &stats(3, 60, 3_000));
        let s = p.summary(
            "range",
            (0.0, 1.0),
            &PricingTable::empty(),
            Currency::CNY,
            &[],
            2,
        );
        assert_eq!(s.total_calls, 3);
        assert_eq!(s.total_tokens, 60);
        assert_eq!(s.by_model.len(), 2);
        assert!(s.by_model.contains_key("c") && s.by_model.contains_key("b"));
        assert_eq!(s.model_count, 3);
        assert_eq!(s.truncated.get("by_model"), Some(&1));
        // Only models were cut, not users: still truncated (one meaning).
        assert!(s.groups_truncated);
    }

    #[test]
    fn ranges_are_checked() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert!(DayRange::new(d("2025-01-02"), d("2025-01-01")).is_err());
        assert!(DayRange::new(d("2015-01-01"), d("2025-12-31")).is_err());
        let r = DayRange::new(d("2025-01-01"), d("2025-01-31")).unwrap();
        assert_eq!((r.from(), r.to()), (d("2025-01-01"), d("2025-01-31")));
    }
}
