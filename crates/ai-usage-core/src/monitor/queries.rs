//! Summaries, sessions, rankings, trend, forecast, dashboard and savings:
//! the monitor takes its locks and asks the query layer.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::money::{Costs, Currency};
use crate::query::answers::days_before;
use crate::query::{
    self, DashboardData, MonthForecast, RankBy, RankEntry, RankKind, SavingsReport, SessionSummary,
    TrendPoint, UsageSummary,
};
use crate::rollups::{Bucket, GroupStats};
use crate::zone::now_timestamp;

use super::UsageMonitor;

/// Today's and this hour's totals (see [`UsageMonitor::current_totals`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurrentTotals {
    /// Today's local date in the monitor's zone.
    pub date: NaiveDate,
    /// The current local clock hour (0..=23).
    pub hour: u8,
    /// Everything counted today.
    pub today: GroupStats,
    /// Everything counted in the current clock hour.
    pub this_hour: GroupStats,
    /// Today by model.
    pub today_by_model: BTreeMap<String, GroupStats>,
    /// Today by function (recorded names).
    pub today_by_function: BTreeMap<String, GroupStats>,
}

/// The widest window [`UsageMonitor::last_days`] gives: the longest
/// explicit range, so no door can make a query walk millions of days.
const MAX_WINDOW_DAYS: u32 = query::bounds::MAX_RANGE_DAYS as u32;

impl UsageMonitor {
    fn reporting(&self) -> Currency {
        self.config().reporting_currency
    }

    /// The summary of `bucket`; `days` are its costs per local day, for
    /// converted totals at each day's rate.
    fn summary_of(
        &self,
        period: &str,
        bounds: (f64, f64),
        bucket: Option<&Bucket>,
        days: &[(NaiveDate, Costs)],
    ) -> UsageSummary {
        let empty = Bucket::default();
        let pricing = self.pricing();
        let config = self.config();
        let mut s = UsageSummary::from_bucket(
            period,
            bounds,
            bucket.unwrap_or(&empty),
            &pricing,
            self.reporting(),
            &config.exchange_rates,
            config.summary_group_limit,
        );
        if !config.dated_rates.is_empty() {
            s.converted_total = query::convert_by_day(
                days,
                self.reporting(),
                &config.exchange_rates,
                &config.dated_rates,
            );
        }
        s
    }

    /// Today's local date in the monitor's zone.
    pub fn today(&self) -> NaiveDate {
        self.config().zone.today()
    }

    /// The summary of the local day `days_ago` days before today (0 = today).
    pub fn get_daily_summary(&self, days_ago: u32) -> UsageSummary {
        let date = days_before(self.today(), days_ago);
        self.get_summary_for_date(date)
    }

    /// The summary of a local calendar date.
    pub fn get_summary_for_date(&self, date: NaiveDate) -> UsageSummary {
        let bounds = self.config().zone.day_bounds(date);
        let rollups = self.rollups();
        let bucket = rollups.days.get(&date).map(|d| &d.day);
        let days = day_costs(date, bucket);
        self.summary_of("daily", bounds, bucket, &days)
    }

    /// The summary of the local clock hour `hours_ago` hours before the current one.
    pub fn get_hourly_summary(&self, hours_ago: u32) -> UsageSummary {
        let ts = now_timestamp() - hours_ago as f64 * 3600.0;
        let (date, hour) = self.config().zone.hour_of(ts);
        self.get_summary_for_hour(date, hour)
    }

    /// The summary of one local clock hour of a date.
    pub fn get_summary_for_hour(&self, date: NaiveDate, hour: u8) -> UsageSummary {
        // Not `start + 3600`: DST folds and gaps make local hours 2 h or 0 h long.
        let bounds = self.config().zone.hour_bounds(date, hour);
        let rollups = self.rollups();
        let bucket = rollups.days.get(&date).and_then(|d| d.hours.get(&hour));
        let days = day_costs(date, bucket);
        self.summary_of("hourly", bounds, bucket, &days)
    }

    /// The summary of whole local days `from..=to`.
    pub fn get_range_summary(&self, from: NaiveDate, to: NaiveDate) -> Result<UsageSummary> {
        query::DayRange::new(from, to)?;
        Ok(self.range_summary("range", from, to))
    }

    fn range_summary(&self, period: &str, from: NaiveDate, to: NaiveDate) -> UsageSummary {
        let zone = self.config().zone;
        let bounds = (zone.day_bounds(from).0, zone.day_bounds(to).1);
        let rollups = self.rollups();
        let mut merged = Bucket::default();
        let mut days = Vec::new();
        for (date, day) in rollups.days.range(from..=to) {
            merged.merge(&day.day);
            days.push((*date, day.day.totals.cost.clone()));
        }
        drop(rollups);
        self.summary_of(period, bounds, Some(&merged), &days)
    }

    /// The summary of a calendar month (`month` 1..=12).
    pub fn get_monthly_summary(&self, year: i32, month: u32) -> Result<UsageSummary> {
        let first =
            NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(|| Error::InvalidArgument {
                argument: "month",
                message: format!("{year}-{month} is not a month (month must be 1..=12)"),
            })?;
        let last = first + chrono::Duration::days(i64::from(first.num_days_in_month()) - 1);
        Ok(self.range_summary("monthly", first, last))
    }

    /// One session's figures; `None` for an unknown session. Survives
    /// restarts (rebuilt from the day files).
    pub fn get_session_stats(&self, session_id: &str) -> Option<SessionSummary> {
        let rollups = self.rollups();
        rollups
            .sessions
            .get(session_id)
            .map(|s| SessionSummary::from_stats(s, self.reporting()))
    }

    /// Sessions, most recent first (at most `limit`).
    pub fn recent_sessions(&self, limit: usize) -> Vec<SessionSummary> {
        let rollups = self.rollups();
        query::recent_sessions(&rollups, limit, self.reporting())
    }

    /// The last `days` local days ending today, as `(from, to)` (at most
    /// [`MAX_RANGE_DAYS`](crate::bounds::MAX_RANGE_DAYS) days).
    pub fn last_days(&self, days: u32) -> (NaiveDate, NaiveDate) {
        let to = self.today();
        let days = days.clamp(1, MAX_WINDOW_DAYS);
        (days_before(to, days - 1), to)
    }

    /// Top users over the last `days` days by tokens (the seed's call).
    pub fn get_top_users(&self, limit: usize, days: u32) -> Vec<RankEntry> {
        let (from, to) = self.last_days(days);
        self.top(RankKind::User, from, to, RankBy::Tokens, limit)
    }

    /// Top anchors (主播) over the last `days` days by tokens.
    pub fn get_top_anchors(&self, limit: usize, days: u32) -> Vec<RankEntry> {
        let (from, to) = self.last_days(days);
        self.top(RankKind::Anchor, from, to, RankBy::Tokens, limit)
    }

    /// Top functions over the last `days` days by tokens.
    pub fn get_top_functions(&self, limit: usize, days: u32) -> Vec<RankEntry> {
        let (from, to) = self.last_days(days);
        self.top(RankKind::Function, from, to, RankBy::Tokens, limit)
    }

    /// Any ranking over whole days `from..=to`.
    pub fn top(
        &self,
        kind: RankKind,
        from: NaiveDate,
        to: NaiveDate,
        by: RankBy,
        limit: usize,
    ) -> Vec<RankEntry> {
        let rollups = self.rollups();
        let mut ranks = self.shared.ranks.lock();
        query::rank_cached(
            &rollups,
            &mut ranks,
            kind,
            (from, to),
            by,
            limit,
            self.reporting(),
        )
    }

    /// The last `days` whole local days, oldest first, every day present.
    pub fn get_cost_trend(&self, days: u32) -> Vec<TrendPoint> {
        let (from, to) = self.last_days(days);
        let rollups = self.rollups();
        query::trend(&rollups, from, to, self.reporting())
    }

    /// The cost of every day `from..=to`.
    pub fn cost_trend_range(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<TrendPoint>> {
        query::DayRange::new(from, to)?;
        let rollups = self.rollups();
        Ok(query::trend(&rollups, from, to, self.reporting()))
    }

    /// The month forecast for the month of today.
    pub fn forecast(&self) -> MonthForecast {
        let rollups = self.rollups();
        query::forecast_at(&rollups, self.today(), self.reporting())
    }

    /// The dashboard payload.
    pub fn dashboard(&self) -> DashboardData {
        let today = self.today();
        let generated_at = self.local_now("%Y-%m-%dT%H:%M:%S");
        let pricing = self.pricing();
        let rollups = self.rollups();
        let mut ranks = self.shared.ranks.lock();
        query::dashboard(
            &rollups,
            &mut ranks,
            &pricing,
            today,
            generated_at,
            self.reporting(),
        )
    }

    /// Savings advice from the last `days` local days (today included).
    pub fn savings(&self, days: u32) -> SavingsReport {
        let (from, to) = self.last_days(days);
        self.savings_between(from, to)
    }

    /// Savings advice from the local days `from..=to`.
    pub fn savings_between(&self, from: NaiveDate, to: NaiveDate) -> SavingsReport {
        let pricing = self.pricing();
        let rollups = self.rollups();
        query::savings_for(&rollups, &pricing, from, to)
    }

    /// Today's totals and the current clock hour's, in the monitor's zone.
    pub fn current_totals(&self) -> CurrentTotals {
        let (date, hour) = self.zone().hour_of(now_timestamp());
        let rollups = self.rollups();
        let day = rollups.days.get(&date);
        let sorted = |m: Option<&crate::rollups::GroupMap>| -> BTreeMap<String, GroupStats> {
            m.map(|m| m.iter().map(|(k, g)| (k.to_string(), g)).collect())
                .unwrap_or_default()
        };
        CurrentTotals {
            today_by_model: sorted(day.map(|d| &d.day.by_model)),
            today_by_function: sorted(day.map(|d| &d.day.by_function)),
            date,
            hour,
            today: day.map(|d| d.day.totals.clone()).unwrap_or_default(),
            this_hour: day
                .and_then(|d| d.hours.get(&hour))
                .map(|h| h.totals.clone())
                .unwrap_or_default(),
        }
    }

    /// Calls `each(function, model, totals)` for every function × model
    /// group of every day in memory, summed over the days (e.g. to seed
    /// counters of a metrics exporter). Holds the rollups lock meanwhile:
    /// keep `each` short and never call the monitor from it.
    pub fn for_each_function_model(&self, mut each: impl FnMut(&str, &str, &GroupStats)) {
        let rollups = self.rollups();
        let mut sums: BTreeMap<(&str, &str), GroupStats> = BTreeMap::new();
        for day in rollups.days.values() {
            for (function, models) in &day.by_function_model {
                for (model, g) in models.refs() {
                    g.merge_into(sums.entry((function.as_str(), model)).or_default());
                }
            }
        }
        for ((function, model), g) in &sums {
            each(function, model, g);
        }
    }
}

/// The costs of one day's bucket, as the day list of a summary.
fn day_costs(date: NaiveDate, bucket: Option<&Bucket>) -> Vec<(NaiveDate, Costs)> {
    bucket
        .map(|b| vec![(date, b.totals.cost.clone())])
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{rank, rank_cached, RankCache};
    use crate::record::UsageEvent;
    use crate::zone::Zone;

    fn sh() -> Zone {
        "+08:00".parse().unwrap()
    }

    fn monitor(dir: &std::path::Path) -> UsageMonitor {
        UsageMonitor::builder()
            .dir(dir)
            .timezone(sh())
            .retention_days(100_000)
            .build()
            .unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// Epoch seconds of a local Shanghai date and hour.
    fn at(d: &str, hour: u32) -> f64 {
        sh().day_bounds(date(d)).0 + hour as f64 * 3600.0 + 60.0
    }

    #[test]
    fn cached_rankings_equal_a_full_merge() {
        let tmp = tempfile::tempdir().unwrap();
        let m = monitor(tmp.path());
        let mut rng = 7u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let days = [
            "2025-10-20",
            "2025-10-21",
            "2025-10-22",
            "2025-10-23",
            "2025-10-24",
        ];
        let users: Vec<String> = (0..60).map(|i| format!("u{i}")).collect();
        // One cache across every check, as the monitor keeps its own: what
        // it noted must follow late calls and re-sorted days.
        let mut ranks = RankCache::default();
        let mut check = |m: &UsageMonitor| {
            let mut r = m.rollups();
            for kind in [RankKind::User, RankKind::Anchor, RankKind::Model] {
                for by in [RankBy::Tokens, RankBy::Cost, RankBy::Calls] {
                    for limit in [1, 5, 100] {
                        let (from, to) = (date(days[0]), date(days[4]));
                        let full = rank(&r, kind, from, to, by, limit, Currency::CNY);
                        let cached =
                            rank_cached(&r, &mut ranks, kind, (from, to), by, limit, Currency::CNY);
                        assert_eq!(full, cached, "{kind:?} {by:?} {limit}");
                        drop(r);
                        assert_eq!(full, m.top(kind, from, to, by, limit));
                        r = m.rollups();
                    }
                }
            }
        };
        for round in 0..3 {
            for _ in 0..400 {
                let r = next();
                let d = days[(r % 5) as usize];
                m.record(
                    &UsageEvent::new(
                        ["qwen-plus", "qwen-max", "deepseek-chat"][(r >> 8) as usize % 3],
                        "问答",
                    )
                    .tokens((r >> 16) % 5000, (r >> 32) % 900)
                    .user(&users[(r >> 40) as usize % users.len()])
                    .anchor(&format!("a{}", (r >> 50) % 7))
                    .at(at(d, ((r >> 20) % 24) as u32)),
                );
            }
            check(&m);
            // A late record for a past day must invalidate the cached merge.
            m.record(
                &UsageEvent::new("qwen-max", "问答")
                    .tokens(900_000, 0)
                    .user("late")
                    .at(at(days[1], 3)),
            );
            check(&m);
            // A call on a newer day freezes the ranked days (their groups
            // re-sorted): what a kept cache entry noted about the last
            // day's slots must follow.
            let (from, to) = (date(days[0]), date(days[4]));
            let ask = |ranks: &mut RankCache| {
                let r = m.rollups();
                let cached = rank_cached(
                    &r,
                    ranks,
                    RankKind::User,
                    (from, to),
                    RankBy::Tokens,
                    5,
                    Currency::CNY,
                );
                assert_eq!(
                    cached,
                    rank(
                        &r,
                        RankKind::User,
                        from,
                        to,
                        RankBy::Tokens,
                        5,
                        Currency::CNY
                    )
                );
            };
            let mut kept = RankCache::default();
            ask(&mut kept);
            m.record(
                &UsageEvent::new("qwen-max", "问答")
                    .tokens(1, 0)
                    .user("later")
                    .at(at(&format!("2025-10-{}", 25 + round), 3)),
            );
            ask(&mut kept);
            check(&m);
            assert_eq!(
                m.top(
                    RankKind::User,
                    date(days[0]),
                    date(days[4]),
                    RankBy::Tokens,
                    1
                )[0]
                .id,
                "late",
                "round {round}"
            );
        }
    }
}
