//! The fleet's answers from ClickHouse, in the core's result types so the
//! CLI, the API and the page print them exactly like local answers.
//!
//! Every query reads `records FINAL`: rows are merged by their stable id
//! before counting, so even a duplicate that slipped in is counted once.

use std::collections::BTreeMap;

use ai_usage_core::{
    main_currency, success_rate, ConvertedTotal, Costs, Currency, GroupStats, GroupSummary, Money,
    PricingTable, RankBy, RankEntry, RankKind, TrendPoint, UsageSummary, Zone,
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

/// One (currency, model, function, user, anchor) group read from the server.
struct Row {
    model: String,
    function: String,
    user: String,
    anchor: String,
    stats: GroupStats,
}

/// The sums every group query selects, in the order [`stats_of`] reads them.
const SUMS: &str = "count(), sum(success), sum(input_tokens), sum(output_tokens), \
sum(total_tokens), sum(cached_input_tokens), sum(reasoning_tokens), sum(cost_micros), \
countIf(priced = 0)";

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
        check_range(from, to)?;
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
        check_range(from, to)?;
        let column = match kind {
            RankKind::User => "user_id",
            RankKind::Anchor => "anchor_id",
            RankKind::Function => "function",
            RankKind::Model => "model",
        };
        let bounds = (self.zone.day_bounds(from).0, self.zone.day_bounds(to).1);
        // Calls without a user (anchor) are not ranked, as locally.
        let skip_empty = matches!(kind, RankKind::User | RankKind::Anchor);
        let sql = format!(
            "SELECT {column}, currency, {SUMS} FROM {}.records FINAL WHERE {}{} \
GROUP BY {column}, currency",
            self.client.db(),
            where_bounds(bounds),
            if skip_empty {
                format!(" AND {column} != ''")
            } else {
                String::new()
            }
        );
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
        check_range(from, to)?;
        let bounds = (self.zone.day_bounds(from).0, self.zone.day_bounds(to).1);
        // Every zone's offset is a multiple of 15 minutes: quarter hours
        // map to exactly one local day, DST included.
        let sql = format!(
            "SELECT intDiv(toInt64(floor(timestamp)), 900) * 900 AS slot, currency, {SUMS} \
FROM {}.records FINAL WHERE {} GROUP BY slot, currency",
            self.client.db(),
            where_bounds(bounds)
        );
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

    /// A summary of `[start, end)`: groups from one query, durations from another.
    fn summary(&self, period: &str, bounds: (f64, f64)) -> Result<UsageSummary> {
        let db = self.client.db();
        let wb = where_bounds(bounds);
        let sql = format!(
            "SELECT currency, model, function, user_id, anchor_id, {SUMS} \
FROM {db}.records FINAL WHERE {wb} GROUP BY currency, model, function, user_id, anchor_id"
        );
        let mut rows = Vec::new();
        for r in self.client.query_rows(&sql)? {
            let currency = currency_of(field(&r, 0)?)?;
            rows.push(Row {
                model: field(&r, 1)?.to_string(),
                function: field(&r, 2)?.to_string(),
                user: field(&r, 3)?.to_string(),
                anchor: field(&r, 4)?.to_string(),
                stats: stats_of(&r, 5, currency)?,
            });
        }
        let durations = self.client.query_rows(&format!(
            "SELECT avg(duration_ms), quantile(0.95)(duration_ms) FROM {db}.records FINAL WHERE {wb}"
        ))?;
        let (avg, p95) = match durations.first().map(Vec::as_slice) {
            Some([a, p]) => (parse_f64_or_zero(a), parse_f64_or_zero(p)),
            _ => (0.0, 0.0),
        };
        Ok(self.build_summary(period, bounds, &rows, avg, p95))
    }

    fn build_summary(
        &self,
        period: &str,
        (start_time, end_time): (f64, f64),
        rows: &[Row],
        avg: f64,
        p95: f64,
    ) -> UsageSummary {
        let mut totals = GroupStats::default();
        let mut by_model: BTreeMap<String, GroupStats> = BTreeMap::new();
        let mut by_function: BTreeMap<String, GroupStats> = BTreeMap::new();
        let mut by_user: BTreeMap<String, GroupStats> = BTreeMap::new();
        let mut by_anchor: BTreeMap<String, GroupStats> = BTreeMap::new();
        for r in rows {
            totals.merge(&r.stats);
            by_model.entry(r.model.clone()).or_default().merge(&r.stats);
            by_function
                .entry(r.function.clone())
                .or_default()
                .merge(&r.stats);
            if !r.user.is_empty() {
                by_user.entry(r.user.clone()).or_default().merge(&r.stats);
            }
            if !r.anchor.is_empty() {
                by_anchor
                    .entry(r.anchor.clone())
                    .or_default()
                    .merge(&r.stats);
            }
        }
        let reporting = self.reporting;
        let groups = |m: &BTreeMap<String, GroupStats>| -> BTreeMap<String, GroupSummary> {
            m.iter()
                .map(|(k, g)| (k.clone(), group_summary(g, reporting)))
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
                .map(|(k, g)| (k.clone(), group_summary(g, reporting)))
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
            converted_total: convert(&totals.cost, reporting, &self.rates),
            success_rate: success_rate(&totals),
            avg_duration_ms: avg,
            p95_duration_ms: p95,
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

fn group_summary(g: &GroupStats, reporting: Currency) -> GroupSummary {
    let currency = main_currency(&g.cost, reporting);
    GroupSummary {
        calls: g.calls,
        input_tokens: g.input_tokens,
        output_tokens: g.output_tokens,
        total_tokens: g.total_tokens,
        cost: g.cost.get(currency),
        currency,
        costs: g.cost.clone(),
        successful_calls: g.successful_calls,
        cached_input_tokens: g.cached_input_tokens,
        unpriced_calls: g.unpriced_calls,
        display_name: None,
    }
}

/// The core's ranking key: the measure, then a tie-breaker.
fn rank_key(g: &GroupStats, by: RankBy, reporting: Currency) -> (i64, u64) {
    match by {
        RankBy::Tokens => (g.total_tokens as i64, g.calls),
        RankBy::Cost => (g.cost.get(reporting).micros(), g.total_tokens),
        RankBy::Calls => (g.calls as i64, g.total_tokens),
    }
}

/// The core's conversion rule: only when rates are set and more than the
/// reporting currency is present.
fn convert(
    costs: &Costs,
    reporting: Currency,
    rates: &[(Currency, i64)],
) -> Option<ConvertedTotal> {
    if rates.is_empty() || costs.iter().count() < 2 && costs.iter().all(|(c, _)| c == reporting) {
        return None;
    }
    let mut total = costs.get(reporting);
    let mut used = BTreeMap::new();
    let mut missing = Vec::new();
    for (c, amount) in costs.others(reporting) {
        match rates.iter().find(|(rc, _)| *rc == c) {
            Some((_, rate)) => {
                total += amount.mul_div(*rate, 1_000_000).unwrap_or(Money::ZERO);
                used.insert(c, Money::from_micros(*rate));
            }
            None => missing.push(c),
        }
    }
    Some(ConvertedTotal {
        total,
        currency: reporting,
        rates: used,
        missing_rates: missing,
    })
}

fn check_range(from: NaiveDate, to: NaiveDate) -> Result<()> {
    let bad = |message: String| {
        Err(Error::Core(ai_usage_core::Error::InvalidArgument {
            argument: "from",
            message,
        }))
    };
    if from > to {
        return bad(format!("{from} is after {to}"));
    }
    if (to - from).num_days() > 3660 {
        return bad("a range may span at most 3660 days".into());
    }
    Ok(())
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
    costs.add(currency, Money::from_micros(cost));
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
