//! The fleet's answers from ClickHouse, in the core's result types so the
//! CLI, the API and the page print them exactly like local answers.
//!
//! Ranges whose bounds fall on whole UTC hours (every day and hour of a
//! zone whose offset is whole hours) read the hourly aggregates (schema v3):
//! groups, not rows. Other ranges (e.g. days in UTC+05:30) read
//! `records FINAL`, merged by stable id before counting.

use std::collections::BTreeMap;

use ai_usage_core::{
    main_currency, success_rate, Costs, Currency, GroupStats, GroupSummary, Money, PricingTable,
    RankBy, RankEntry, RankKind, TrendPoint, UsageSummary, Zone,
};
use chrono::{Datelike, NaiveDate};

use crate::client::Client;
use crate::error::{Error, Result};

/// Answers summaries, rankings and trends for the whole fleet.
#[derive(Debug, Clone)]
pub struct FleetQueries {
    client: Client,
    zone: Zone,
    pricing: PricingTable,
    reporting: Currency,
    rates: Vec<(Currency, i64)>,
    group_limit: usize,
}

/// The groups a summary is built from.
#[derive(Default)]
struct Parts {
    /// (model, function) groups: the totals.
    models: Vec<(String, String, GroupStats)>,
    /// Per user (calls without a user left out).
    users: Vec<(String, GroupStats)>,
    /// Per anchor (calls without an anchor left out).
    anchors: Vec<(String, GroupStats)>,
    avg_ms: f64,
    p95_ms: f64,
}

/// The sums every group query selects, in the order [`stats_of`] reads them.
const SUMS: &str = "count(), sum(success), sum(input_tokens), sum(output_tokens), \
sum(total_tokens), sum(cached_input_tokens), sum(reasoning_tokens), sum(cost_micros), \
countIf(priced = 0)";

/// The same sums over the v3 aggregates.
const AGG_SUMS: &str = "sum(calls), sum(successful_calls), sum(input_tokens), \
sum(output_tokens), sum(total_tokens), sum(cached_input_tokens), sum(reasoning_tokens), \
sum(cost_micros), sum(unpriced_calls)";

/// Whether `[start, end)` is made of whole UTC hours.
fn hour_aligned((start, end): (f64, f64)) -> bool {
    start.fract() == 0.0 && end.fract() == 0.0 && start % 3600.0 == 0.0 && end % 3600.0 == 0.0
}

/// The aggregate row filter of a time range.
fn where_hours((start, end): (f64, f64)) -> String {
    format!("hour >= {start} AND hour < {end}")
}

impl FleetQueries {
    /// Queries in `zone`, totals in CNY unless told otherwise, no exchange
    /// rates, at most 1,000 users and anchors listed (the core's defaults).
    pub fn new(client: Client, zone: Zone, pricing: PricingTable) -> FleetQueries {
        FleetQueries {
            client,
            zone,
            pricing,
            reporting: Currency::CNY,
            rates: Vec::new(),
            group_limit: 1000,
        }
    }

    /// Sets the reporting currency.
    pub fn reporting_currency(mut self, c: Currency) -> Self {
        self.reporting = c;
        self
    }

    /// Adds an exchange rate: units of the reporting currency per unit of `c`.
    pub fn exchange_rate(mut self, c: Currency, rate: Money) -> Self {
        self.rates.push((c, rate.micros()));
        self
    }

    /// The client these queries use.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The summary of a local calendar date.
    pub fn summary_for_date(&self, date: NaiveDate) -> Result<UsageSummary> {
        self.summary("daily", self.zone.day_bounds(date))
    }

    /// The summary of one local clock hour of a date.
    pub fn summary_for_hour(&self, date: NaiveDate, hour: u8) -> Result<UsageSummary> {
        self.summary("hourly", self.zone.hour_bounds(date, hour))
    }

    /// The summary of the local clock hour `hours_ago` before the current one.
    pub fn hourly_summary(&self, hours_ago: u32) -> Result<UsageSummary> {
        let ts = ai_usage_core::now_timestamp() - f64::from(hours_ago) * 3600.0;
        let (date, hour) = self.zone.hour_of(ts);
        self.summary_for_hour(date, hour)
    }

    /// The summary of whole local days `from..=to`.
    pub fn range_summary(&self, from: NaiveDate, to: NaiveDate) -> Result<UsageSummary> {
        ai_usage_core::check_day_range(from, to).map_err(Error::Core)?;
        self.summary(
            "range",
            (self.zone.day_bounds(from).0, self.zone.day_bounds(to).1),
        )
    }

    /// The summary of a calendar month (`month` 1..=12).
    pub fn monthly_summary(&self, year: i32, month: u32) -> Result<UsageSummary> {
        let first = NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(|| {
            Error::Core(ai_usage_core::Error::InvalidArgument {
                argument: "month",
                message: format!("{year}-{month} is not a month (month must be 1..=12)"),
            })
        })?;
        let last = first + chrono::Duration::days(i64::from(first.num_days_in_month()) - 1);
        self.summary(
            "monthly",
            (self.zone.day_bounds(first).0, self.zone.day_bounds(last).1),
        )
    }

    /// Users, anchors, functions or models of days `from..=to`, best first
    /// (ties by id), at most `limit` (0 = all): the core's ranking order.
    pub fn top(
        &self,
        kind: RankKind,
        from: NaiveDate,
        to: NaiveDate,
        by: RankBy,
        limit: usize,
    ) -> Result<Vec<RankEntry>> {
        ai_usage_core::check_day_range(from, to).map_err(Error::Core)?;
        let (column, table) = match kind {
            RankKind::User => ("user_id", "agg_user"),
            RankKind::Anchor => ("anchor_id", "agg_anchor"),
            RankKind::Function => ("function", "agg_model"),
            RankKind::Model => ("model", "agg_model"),
        };
        let bounds = (self.zone.day_bounds(from).0, self.zone.day_bounds(to).1);
        // Calls without a user (anchor) are not ranked, as locally.
        let skip_empty = matches!(kind, RankKind::User | RankKind::Anchor);
        let not_empty = if skip_empty {
            format!(" AND {column} != ''")
        } else {
            String::new()
        };
        let db = self.client.db();
        let sql = if hour_aligned(bounds) {
            format!(
                "SELECT {column}, currency, {AGG_SUMS} FROM {db}.{table} WHERE {}{not_empty} \
GROUP BY {column}, currency",
                where_hours(bounds)
            )
        } else {
            format!(
                "SELECT {column}, currency, {SUMS} FROM {db}.records FINAL WHERE {}{not_empty} \
GROUP BY {column}, currency",
                where_bounds(bounds)
            )
        };
        let mut groups: BTreeMap<String, GroupStats> = BTreeMap::new();
        for row in self.client.query_rows(&sql)? {
            let (id, currency) = (field(&row, 0)?, currency_of(field(&row, 1)?)?);
            let g = stats_of(&row, 2, currency)?;
            groups.entry(id.to_string()).or_default().merge(&g);
        }
        let mut ranked: Vec<(String, GroupStats)> = groups.into_iter().collect();
        let reporting = self.reporting;
        // Stable sort on a key, ids already ascending: ties stay by id.
        ranked.sort_by_key(|e| std::cmp::Reverse(rank_key(&e.1, by, reporting)));
        if limit > 0 {
            ranked.truncate(limit);
        }
        Ok(ranked
            .into_iter()
            .map(|(id, g)| {
                let currency = main_currency(&g.cost, reporting);
                RankEntry {
                    kind,
                    id,
                    tokens: g.total_tokens,
                    cost: g.cost.get(currency),
                    currency,
                    calls: g.calls,
                    input_tokens: g.input_tokens,
                    output_tokens: g.output_tokens,
                    costs: g.cost,
                }
            })
            .collect())
    }

    /// The cost of every local day `from..=to`, oldest first, zero days included.
    pub fn trend(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<TrendPoint>> {
        ai_usage_core::check_day_range(from, to).map_err(Error::Core)?;
        let bounds = (self.zone.day_bounds(from).0, self.zone.day_bounds(to).1);
        // Where every day of the range starts on a whole UTC hour, hours
        // map to exactly one local day; else quarter hours do (every zone's
        // offset is a multiple of 15 minutes, DST included).
        let whole_hours = self.days_hour_aligned(from, to);
        let db = self.client.db();
        let sql = if whole_hours {
            format!(
                "SELECT hour, currency, {AGG_SUMS} FROM {db}.agg_model WHERE {} \
GROUP BY hour, currency",
                where_hours(bounds)
            )
        } else {
            format!(
                "SELECT intDiv(toInt64(floor(timestamp)), 900) * 900 AS slot, currency, {SUMS} \
FROM {db}.records FINAL WHERE {} GROUP BY slot, currency",
                where_bounds(bounds)
            )
        };
        let mut days: BTreeMap<NaiveDate, GroupStats> = BTreeMap::new();
        for row in self.client.query_rows(&sql)? {
            let slot: f64 = parse(field(&row, 0)?)?;
            let currency = currency_of(field(&row, 1)?)?;
            let g = stats_of(&row, 2, currency)?;
            days.entry(self.zone.date_of(slot)).or_default().merge(&g);
        }
        let mut out = Vec::new();
        let mut d = from;
        while d <= to {
            let g = days.remove(&d).unwrap_or_default();
            let currency = main_currency(&g.cost, self.reporting);
            out.push(TrendPoint {
                date: d.format("%Y-%m-%d").to_string(),
                cost: g.cost.get(currency),
                currency,
                costs: g.cost,
                calls: g.calls,
                tokens: g.total_tokens,
            });
            match d.succ_opt() {
                Some(n) => d = n,
                None => break,
            }
        }
        Ok(out)
    }

    /// Whether every local day `from..=to` starts and ends on a whole UTC hour.
    fn days_hour_aligned(&self, from: NaiveDate, to: NaiveDate) -> bool {
        let mut d = from;
        loop {
            if !hour_aligned(self.zone.day_bounds(d)) {
                return false;
            }
            match d.succ_opt() {
                Some(n) if n <= to => d = n,
                _ => return true,
            }
        }
    }

    /// A summary of `[start, end)`.
    fn summary(&self, period: &str, bounds: (f64, f64)) -> Result<UsageSummary> {
        let parts = if hour_aligned(bounds) {
            self.parts_from_aggregates(bounds)?
        } else {
            self.parts_from_records(bounds)?
        };
        Ok(self.build_summary(period, bounds, parts))
    }

    /// Summary groups from the v3 aggregates: three small group-bys.
    fn parts_from_aggregates(&self, bounds: (f64, f64)) -> Result<Parts> {
        let db = self.client.db();
        let wh = where_hours(bounds);
        let mut parts = Parts::default();
        let mut duration_sum = 0.0;
        for r in self.client.query_rows(&format!(
            "SELECT currency, model, function, {AGG_SUMS}, sum(duration_ms_sum) \
FROM {db}.agg_model WHERE {wh} GROUP BY currency, model, function"
        ))? {
            let currency = currency_of(field(&r, 0)?)?;
            duration_sum += parse_f64_or_zero(field(&r, 12)?);
            parts.models.push((
                field(&r, 1)?.to_string(),
                field(&r, 2)?.to_string(),
                stats_of(&r, 3, currency)?,
            ));
        }
        let calls: u64 = parts.models.iter().map(|m| m.2.calls).sum();
        if calls > 0 {
            parts.avg_ms = duration_sum / calls as f64;
            let p95 = self.client.query_rows(&format!(
                "SELECT quantileMerge(0.95)(duration_q) FROM {db}.agg_model WHERE {wh}"
            ))?;
            parts.p95_ms = p95
                .first()
                .and_then(|r| r.first())
                .map_or(0.0, |v| parse_f64_or_zero(v));
        }
        for (table, column, out) in [
            ("agg_user", "user_id", &mut parts.users),
            ("agg_anchor", "anchor_id", &mut parts.anchors),
        ] {
            for r in self.client.query_rows(&format!(
                "SELECT {column}, currency, {AGG_SUMS} FROM {db}.{table} \
WHERE {wh} AND {column} != '' GROUP BY {column}, currency"
            ))? {
                let currency = currency_of(field(&r, 1)?)?;
                out.push((field(&r, 0)?.to_string(), stats_of(&r, 2, currency)?));
            }
        }
        Ok(parts)
    }

    /// Summary groups from raw rows (ranges not made of whole hours).
    fn parts_from_records(&self, bounds: (f64, f64)) -> Result<Parts> {
        let db = self.client.db();
        let wb = where_bounds(bounds);
        let sql = format!(
            "SELECT currency, model, function, user_id, anchor_id, {SUMS} \
FROM {db}.records FINAL WHERE {wb} GROUP BY currency, model, function, user_id, anchor_id"
        );
        let mut parts = Parts::default();
        for r in self.client.query_rows(&sql)? {
            let currency = currency_of(field(&r, 0)?)?;
            let stats = stats_of(&r, 5, currency)?;
            let (user, anchor) = (field(&r, 3)?, field(&r, 4)?);
            if !user.is_empty() {
                parts.users.push((user.to_string(), stats.clone()));
            }
            if !anchor.is_empty() {
                parts.anchors.push((anchor.to_string(), stats.clone()));
            }
            parts
                .models
                .push((field(&r, 1)?.to_string(), field(&r, 2)?.to_string(), stats));
        }
        let durations = self.client.query_rows(&format!(
            "SELECT avg(duration_ms), quantile(0.95)(duration_ms) FROM {db}.records FINAL WHERE {wb}"
        ))?;
        if let Some([a, p]) = durations.first().map(Vec::as_slice) {
            parts.avg_ms = parse_f64_or_zero(a);
            parts.p95_ms = parse_f64_or_zero(p);
        }
        Ok(parts)
    }

    fn build_summary(
        &self,
        period: &str,
        (start_time, end_time): (f64, f64),
        parts: Parts,
    ) -> UsageSummary {
        let mut totals = GroupStats::default();
        let mut by_model: BTreeMap<String, GroupStats> = BTreeMap::new();
        let mut by_function: BTreeMap<String, GroupStats> = BTreeMap::new();
        let mut by_user: BTreeMap<String, GroupStats> = BTreeMap::new();
        let mut by_anchor: BTreeMap<String, GroupStats> = BTreeMap::new();
        for (model, function, stats) in parts.models {
            totals.merge(&stats);
            by_model.entry(model).or_default().merge(&stats);
            by_function.entry(function).or_default().merge(&stats);
        }
        for (user, stats) in parts.users {
            by_user.entry(user).or_default().merge(&stats);
        }
        for (anchor, stats) in parts.anchors {
            by_anchor.entry(anchor).or_default().merge(&stats);
        }
        let reporting = self.reporting;
        let groups = |m: &BTreeMap<String, GroupStats>| -> BTreeMap<String, GroupSummary> {
            m.iter()
                .map(|(k, g)| (k.clone(), GroupSummary::from_stats(g, reporting)))
                .collect()
        };
        let limit = self.group_limit;
        let limited = |m: &BTreeMap<String, GroupStats>| -> BTreeMap<String, GroupSummary> {
            if limit == 0 || m.len() <= limit {
                return groups(m);
            }
            let mut v: Vec<(&String, &GroupStats)> = m.iter().collect();
            v.sort_by(|a, b| {
                rank_key(b.1, RankBy::Tokens, reporting).cmp(&rank_key(
                    a.1,
                    RankBy::Tokens,
                    reporting,
                ))
            });
            v.truncate(limit);
            v.into_iter()
                .map(|(k, g)| (k.clone(), GroupSummary::from_stats(g, reporting)))
                .collect()
        };
        let mut models = limited(&by_model);
        for (model, g) in models.iter_mut() {
            g.display_name = Some(self.pricing.display_name(model));
        }
        let currency = main_currency(&totals.cost, reporting);
        UsageSummary {
            period: period.to_string(),
            start_time,
            end_time,
            total_calls: totals.calls,
            successful_calls: totals.successful_calls,
            failed_calls: totals.calls - totals.successful_calls,
            total_input_tokens: totals.input_tokens,
            total_output_tokens: totals.output_tokens,
            total_tokens: totals.total_tokens,
            total_cost: totals.cost.get(currency),
            currency,
            costs: totals.cost.clone(),
            converted_total: ai_usage_core::convert_costs(&totals.cost, reporting, &self.rates),
            success_rate: success_rate(&totals),
            avg_duration_ms: parts.avg_ms,
            p95_duration_ms: parts.p95_ms,
            cached_input_tokens: totals.cached_input_tokens,
            reasoning_tokens: totals.reasoning_tokens,
            unpriced_calls: totals.unpriced_calls,
            by_model: models,
            by_function: limited(&by_function),
            by_user: limited(&by_user),
            by_anchor: limited(&by_anchor),
            user_count: by_user.len() as u64,
            anchor_count: by_anchor.len() as u64,
            model_count: by_model.len() as u64,
            function_count: by_function.len() as u64,
            groups_truncated: limit > 0 && (by_user.len() > limit || by_anchor.len() > limit),
            // As the local summary: groups left out of each list.
            truncated: [
                ("by_model", by_model.len()),
                ("by_function", by_function.len()),
                ("by_user", by_user.len()),
                ("by_anchor", by_anchor.len()),
            ]
            .into_iter()
            .filter(|&(_, n)| limit > 0 && n > limit)
            .map(|(name, n)| (name, (n - limit) as u64))
            .collect(),
        }
    }
}

/// The row filter of a time range: the `day` key prunes parts, the
/// timestamp is exact.
fn where_bounds((start, end): (f64, f64)) -> String {
    let day = |t: f64| {
        chrono::DateTime::from_timestamp(t.floor() as i64, 0)
            .map(|d| d.date_naive())
            .unwrap_or_default()
    };
    format!(
        "day >= toDate('{}') AND day <= toDate('{}') AND timestamp >= {start} AND timestamp < {end}",
        day(start).format("%Y-%m-%d"),
        day(end).format("%Y-%m-%d"),
    )
}

/// The core's ranking key: the measure, then a tie-breaker.
fn rank_key(g: &GroupStats, by: RankBy, reporting: Currency) -> (i64, u64) {
    match by {
        RankBy::Tokens => (g.total_tokens as i64, g.calls),
        RankBy::Cost => (g.cost.get(reporting).micros(), g.total_tokens),
        RankBy::Calls => (g.calls as i64, g.total_tokens),
    }
}

fn field(row: &[String], i: usize) -> Result<&str> {
    row.get(i)
        .map(String::as_str)
        .ok_or_else(|| Error::Protocol(format!("row has no column {i}: {row:?}")))
}

fn parse<T: std::str::FromStr>(s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| Error::Protocol(format!("not a number: {s:?}")))
}

/// `nan` (an average of no rows) reads as 0.
fn parse_f64_or_zero(s: &str) -> f64 {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .unwrap_or(0.0)
}

fn currency_of(code: &str) -> Result<Currency> {
    Currency::new(code).ok_or_else(|| Error::Protocol(format!("currency {code:?}")))
}

/// Reads the [`SUMS`] columns starting at `at`.
fn stats_of(row: &[String], at: usize, currency: Currency) -> Result<GroupStats> {
    let n = |i: usize| -> Result<u64> { parse(field(row, at + i)?) };
    let cost: i64 = parse(field(row, at + 7)?)?;
    let mut costs = Costs::default();
    costs.add(currency, Money::from_nanos(cost));
    Ok(GroupStats {
        calls: n(0)?,
        successful_calls: n(1)?,
        input_tokens: n(2)?,
        output_tokens: n(3)?,
        total_tokens: n(4)?,
        cached_input_tokens: n(5)?,
        reasoning_tokens: n(6)?,
        unpriced_calls: n(8)?,
        cost: costs,
    })
}
