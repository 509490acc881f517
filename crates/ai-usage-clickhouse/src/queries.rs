//! The fleet's answers from ClickHouse, in the core's result types so the
//! CLI, the API and the page print them exactly like local answers.
//!
//! Which table answers (schema v4, v5), so a summary reads groups, not rows:
//! - totals, models, functions, durations and the trend: `agg_model` (UTC
//!   hours) when the range is made of whole UTC hours (every day and hour
//!   of a zone whose offset is whole hours); the p95 comes from its summed
//!   duration histogram (schema v5) read into the core's
//!   [`DurationHistogram`], so it is exactly the local p95;
//! - users and anchors: `agg_user_day` / `agg_anchor_day` when the range is
//!   whole local days of the database's reporting zone (or of a zone whose
//!   days fall on the same instants);
//! - sessions: `agg_session`.
//!
//! Anything else (another zone's days for users, a single hour's users,
//! days in UTC+05:30 for models) reads raw rows, each line once (`FINAL`,
//! or `LIMIT 1 BY id` for users and anchors) before counting: exact, only
//! slower.
//!
//! Every answer then applies the cost corrections shipped from the hosts'
//! adjustment files (table `adjustments`, summed per group by the same
//! keys and time range; module `corrections`), as the local monitor does.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use ai_usage_core::{
    convert_by_day, main_currency, Budget, BudgetHandle, BudgetStatus, Costs, Currency,
    DashboardData, DatedRates, DayGroups, DayRange, DurationHistogram, GroupStats, Money,
    MonthForecast, PeriodGroups, PricingHandle, PricingTable, RankBy, RankEntry, RankKind,
    SavingsReport, SessionSummary, TrendPoint, UsageReport, UsageSummary, Zone,
};
use chrono::{Datelike, NaiveDate};

use crate::client::Client;
use crate::corrections;
use crate::error::{Error, Result};
use crate::schema::{duration_bucket_sql, money_from_column, reporting_zone};

/// Answers summaries, rankings and trends for the whole fleet.
#[derive(Debug, Clone)]
pub struct FleetQueries {
    client: Client,
    zone: Zone,
    /// The table given at construction: the prices used unless a monitor's
    /// live table is followed (and once that monitor is gone).
    pricing: Arc<PricingTable>,
    /// A monitor's table, followed as it changes (see
    /// [`FleetQueries::with_pricing_of`]).
    live_pricing: Option<PricingHandle>,
    reporting: Currency,
    rates: Vec<(Currency, i64)>,
    /// Exchange rates by day (`--rates FILE`): converted totals use each
    /// day's rate, as the local monitor's do.
    dated_rates: Arc<DatedRates>,
    group_limit: usize,
    /// The database's reporting zone, read once (`None`: unreadable, so
    /// the per-day tables are not used).
    day_zone: Arc<OnceLock<Option<Zone>>>,
    /// The budgets the query interface's `budget_status` and
    /// `usage_report` evaluate on the fleet's spend.
    budgets: BudgetSource,
}

/// Where the fleet's answers find the budgets in force.
#[derive(Debug, Clone)]
enum BudgetSource {
    /// A fixed list (e.g. read from a budgets file).
    List(Arc<Vec<Budget>>),
    /// A monitor's budgets, as they are at each call.
    Monitor(BudgetHandle),
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
    durations: DurationHistogram,
}

/// Which users and anchors [`FleetQueries::day_groups`] reads.
#[derive(Clone, Copy)]
enum Ids {
    /// None (totals, models and functions only).
    None,
    /// Per local day from this date on (budgets on a user or anchor).
    PerDay(NaiveDate),
    /// Summed over this date to the last day and counted on the last day:
    /// enough for rankings over exactly that range (the dashboard's).
    Summed(NaiveDate),
}

/// The sums every group query selects, in the order [`stats_of`] reads them.
const SUMS: &str = "count(), sum(success), sum(input_tokens), sum(output_tokens), \
sum(total_tokens), sum(cached_input_tokens), sum(reasoning_tokens), sum(cost_nanos), \
countIf(priced = 0)";

/// The `records` columns [`SUMS`] reads.
const SUM_COLUMNS: &str = "success, input_tokens, output_tokens, total_tokens, \
cached_input_tokens, reasoning_tokens, cost_nanos, priced";

/// The same sums over the aggregates.
const AGG_SUMS: &str = "sum(calls), sum(successful_calls), sum(input_tokens), \
sum(output_tokens), sum(total_tokens), sum(cached_input_tokens), sum(reasoning_tokens), \
sum(cost_nanos), sum(unpriced_calls)";

/// A raw row's quarter hour (epoch seconds): every zone's local day is
/// made of whole quarter hours, DST included.
const SLOT: &str = "intDiv(toInt64(floor(timestamp)), 900) * 900 AS slot";

/// Applies the corrections of the calls `filter` selects, summed per
/// `keys`, to the groups of `groups` that `key_of` names by those keys'
/// values (a group with none yet is created).
fn apply_corrections<K: Ord>(
    client: &Client,
    filter: &str,
    keys: &[&str],
    groups: &mut BTreeMap<K, GroupStats>,
    mut key_of: impl FnMut(Vec<String>) -> Result<K>,
) -> Result<()> {
    for (values, c) in corrections::read(client, filter, keys)? {
        c.apply(groups.entry(key_of(values)?).or_default());
    }
    Ok(())
}

/// The first key's value of a correction.
fn first(values: Vec<String>) -> Result<String> {
    values
        .into_iter()
        .next()
        .ok_or_else(|| Error::Protocol("a correction without its key".into()))
}

/// The quarter hour and second key of a correction.
fn slot_and(values: Vec<String>) -> Result<(f64, String)> {
    match <[String; 2]>::try_from(values) {
        Ok([slot, key]) => Ok((parse(&slot)?, key)),
        Err(v) => Err(Error::Protocol(format!("correction keys {v:?}"))),
    }
}

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
            pricing: Arc::new(pricing),
            live_pricing: None,
            reporting: Currency::CNY,
            rates: Vec::new(),
            dated_rates: Arc::new(DatedRates::default()),
            group_limit: 1000,
            day_zone: Arc::new(OnceLock::new()),
            budgets: BudgetSource::List(Arc::new(Vec::new())),
        }
    }

    /// The budgets the query interface ([`UsageQueries`](ai_usage_core::UsageQueries))
    /// evaluates on the fleet's spend (default: none).
    pub fn with_budgets(mut self, budgets: Vec<Budget>) -> Self {
        self.budgets = BudgetSource::List(Arc::new(budgets));
        self
    }

    /// Evaluates the budgets of a monitor (e.g. the one `serve` ingests
    /// into), as they stand at each call, on the fleet's spend.
    pub fn with_budgets_of(mut self, monitor: BudgetHandle) -> Self {
        self.budgets = BudgetSource::Monitor(monitor);
        self
    }

    /// Prices with a monitor's table as it stands at each call (e.g. the
    /// one `serve` records into), so a catalogue installed or rolled back
    /// by `ai-usage pricing update` and taken up by
    /// [`UsageMonitor::refresh_price_catalogue`](ai_usage_core::UsageMonitor::refresh_price_catalogue)
    /// reaches the fleet's answers (display names, savings, CSV) without a
    /// restart. Once the monitor is gone, the table given to [`new`](Self::new) prices.
    pub fn with_pricing_of(mut self, monitor: PricingHandle) -> Self {
        self.live_pricing = Some(monitor);
        self
    }

    /// The budgets in force for the query interface.
    pub(crate) fn budgets(&self) -> Vec<Budget> {
        match &self.budgets {
            BudgetSource::List(list) => list.to_vec(),
            BudgetSource::Monitor(handle) => handle.budgets(),
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

    /// Exchange rates by day: a converted total then converts each day's
    /// costs at that day's rate (the last earlier one when a day has none,
    /// else the constant [`FleetQueries::exchange_rate`]).
    pub fn dated_rates(mut self, rates: DatedRates) -> Self {
        self.dated_rates = Arc::new(rates);
        self
    }

    /// The client these queries use.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The zone local days are taken in (for `report.rs`).
    pub(crate) fn zone(&self) -> &Zone {
        &self.zone
    }

    /// `f` over the pricing table in force: the followed monitor's, else
    /// the one given at construction. Called after the store answered, so
    /// no lock is held over a query.
    pub(crate) fn with_pricing<R>(&self, f: impl FnOnce(&PricingTable) -> R) -> R {
        match &self.live_pricing {
            Some(live) => live.with_or(&self.pricing, f),
            None => f(&self.pricing),
        }
    }

    /// The reporting currency (for `report.rs`).
    pub(crate) fn reporting(&self) -> Currency {
        self.reporting
    }

    /// Model × function groups of the local days `from..=to` (for `report.rs`).
    pub(crate) fn model_day_groups(&self, from: NaiveDate, to: NaiveDate) -> Result<DayGroups> {
        self.day_groups(from, Ids::None, to)
    }

    /// The summary of a local calendar date.
    pub fn summary_for_date(&self, date: NaiveDate) -> Result<UsageSummary> {
        self.summary("daily", self.zone.day_bounds(date), Some((date, date)))
    }

    /// The summary of one local clock hour of a date.
    pub fn summary_for_hour(&self, date: NaiveDate, hour: u8) -> Result<UsageSummary> {
        self.summary("hourly", self.zone.hour_bounds(date, hour), None)
    }

    /// The summary of the local clock hour `hours_ago` before the current one.
    pub fn hourly_summary(&self, hours_ago: u32) -> Result<UsageSummary> {
        let ts = ai_usage_core::now_timestamp() - f64::from(hours_ago) * 3600.0;
        let (date, hour) = self.zone.hour_of(ts);
        self.summary_for_hour(date, hour)
    }

    /// The summary of whole local days `from..=to`.
    pub fn range_summary(&self, from: NaiveDate, to: NaiveDate) -> Result<UsageSummary> {
        DayRange::new(from, to).map_err(Error::Core)?;
        self.summary(
            "range",
            (self.zone.day_bounds(from).0, self.zone.day_bounds(to).1),
            Some((from, to)),
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
            Some((first, last)),
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
        DayRange::new(from, to).map_err(Error::Core)?;
        let bounds = (self.zone.day_bounds(from).0, self.zone.day_bounds(to).1);
        let db = self.client.db();
        let (column, aggregate) = match kind {
            RankKind::User => (
                "user_id",
                self.days_covered(from, to).then_some("agg_user_day"),
            ),
            RankKind::Anchor => (
                "anchor_id",
                self.days_covered(from, to).then_some("agg_anchor_day"),
            ),
            RankKind::Function => ("function", hour_aligned(bounds).then_some("agg_model")),
            RankKind::Model => ("model", hour_aligned(bounds).then_some("agg_model")),
        };
        // Calls without a user (anchor) are not ranked, as locally.
        let skip_empty = matches!(kind, RankKind::User | RankKind::Anchor);
        let not_empty = if skip_empty {
            format!(" AND {column} != ''")
        } else {
            String::new()
        };
        let sql = match aggregate {
            Some(table) => format!(
                "SELECT {column}, currency, {AGG_SUMS} FROM {db}.{table} WHERE {}{not_empty} \
GROUP BY {column}, currency",
                if table == "agg_model" {
                    where_hours(bounds)
                } else {
                    where_days(from, to)
                }
            ),
            None => format!(
                "SELECT {column}, currency, {SUMS} FROM {db}.records FINAL WHERE {}{not_empty} \
GROUP BY {column}, currency",
                where_bounds(bounds)
            ),
        };
        let mut groups: BTreeMap<String, GroupStats> = BTreeMap::new();
        self.client.query_each(&sql, |row| {
            let (id, currency) = (field(row, 0)?, currency_of(field(row, 1)?)?);
            let g = stats_of(row, 2, currency)?;
            groups.entry(id.to_string()).or_default().merge(&g);
            Ok(())
        })?;
        apply_corrections(
            &self.client,
            &format!("{}{not_empty}", where_bounds(bounds)),
            &[column],
            &mut groups,
            first,
        )?;
        let mut ranked: Vec<(String, GroupStats)> = groups.into_iter().collect();
        let reporting = self.reporting;
        // Stable sort on a key, ids already ascending: ties stay by id.
        ranked.sort_by_key(|e| std::cmp::Reverse(by.key(&e.1, reporting)));
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
        DayRange::new(from, to).map_err(Error::Core)?;
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
        self.client.query_each(&sql, |row| {
            let slot: f64 = parse(field(row, 0)?)?;
            let currency = currency_of(field(row, 1)?)?;
            let g = stats_of(row, 2, currency)?;
            days.entry(self.zone.date_of(slot)).or_default().merge(&g);
            Ok(())
        })?;
        apply_corrections(
            &self.client,
            &where_bounds(bounds),
            &[SLOT],
            &mut days,
            |v| Ok(self.zone.date_of(parse(&first(v)?)?)),
        )?;
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

    /// The database's reporting zone (read once).
    fn day_zone(&self) -> Option<Zone> {
        *self
            .day_zone
            .get_or_init(|| match reporting_zone(&self.client) {
                Ok(name) => name.parse().ok(),
                Err(e) => {
                    // Only an optimisation is lost (the raw table answers); the
                    // query's own error, if any, follows on its own.
                    tracing::debug!(error = %e, "no reporting zone; per-day tables unused");
                    None
                }
            })
    }

    /// Whether the per-day tables answer the local days `from..=to` of this
    /// zone: each day starts and ends on the same instants in the
    /// reporting zone.
    fn days_covered(&self, from: NaiveDate, to: NaiveDate) -> bool {
        let Some(day_zone) = self.day_zone() else {
            return false;
        };
        if day_zone == self.zone {
            return true;
        }
        let mut d = from;
        loop {
            if day_zone.day_bounds(d) != self.zone.day_bounds(d) {
                return false;
            }
            match d.succ_opt() {
                Some(n) if n <= to => d = n,
                _ => return true,
            }
        }
    }

    /// A summary of `[start, end)`, which is the local days `days` if given.
    fn summary(
        &self,
        period: &str,
        bounds: (f64, f64),
        days: Option<(NaiveDate, NaiveDate)>,
    ) -> Result<UsageSummary> {
        let covered = days.filter(|&(from, to)| self.days_covered(from, to));
        // The two halves are independent queries: ask them at once.
        let (models, ids) = std::thread::scope(|scope| {
            let ids = scope.spawn(move || {
                let mut ids = Parts::default();
                match covered {
                    Some((from, to)) => self.ids_from_day_tables(from, to, &mut ids)?,
                    None => self.ids_from_records(bounds, &mut ids)?,
                }
                Ok::<Parts, Error>(ids)
            });
            let models = if hour_aligned(bounds) {
                self.models_from_aggregates(bounds)
            } else {
                self.models_from_records(bounds)
            };
            let ids = ids
                .join()
                .unwrap_or_else(|_| Err(Error::Protocol("summary query thread panicked".into())));
            (models, ids)
        });
        let (mut parts, ids) = (models?, ids?);
        parts.users = ids.users;
        parts.anchors = ids.anchors;
        self.correct_parts(bounds, &mut parts)?;
        let mut summary = self.build_summary(period, bounds, parts);
        if !self.dated_rates.is_empty() {
            // Each day's costs at that day's rate; an hour is one day.
            let per_day: Vec<(NaiveDate, Costs)> = match days {
                Some((from, to)) => self
                    .trend(from, to)?
                    .into_iter()
                    .filter_map(|p| {
                        let date = NaiveDate::parse_from_str(&p.date, "%Y-%m-%d").ok()?;
                        Some((date, p.costs))
                    })
                    .collect(),
                None => vec![(self.zone.date_of(bounds.0), summary.costs.clone())],
            };
            summary.converted_total =
                convert_by_day(&per_day, self.reporting, &self.rates, &self.dated_rates);
        }
        Ok(summary)
    }

    /// Applies the corrections of the calls in `[start, end)` to a
    /// summary's groups (merged per model × function, user and anchor first,
    /// as the summary builder merges them anyway).
    fn correct_parts(&self, bounds: (f64, f64), parts: &mut Parts) -> Result<()> {
        let wb = where_bounds(bounds);
        let mut models: BTreeMap<(String, String), GroupStats> = BTreeMap::new();
        for (m, f, g) in std::mem::take(&mut parts.models) {
            models.entry((m, f)).or_default().merge(&g);
        }
        apply_corrections(
            &self.client,
            &wb,
            &["model", "function"],
            &mut models,
            |v| match <[String; 2]>::try_from(v) {
                Ok([m, f]) => Ok((m, f)),
                Err(v) => Err(Error::Protocol(format!("correction keys {v:?}"))),
            },
        )?;
        parts.models = models.into_iter().map(|((m, f), g)| (m, f, g)).collect();
        for (list, column) in [
            (&mut parts.users, "user_id"),
            (&mut parts.anchors, "anchor_id"),
        ] {
            let mut ids: BTreeMap<String, GroupStats> = BTreeMap::new();
            for (id, g) in std::mem::take(list) {
                ids.entry(id).or_default().merge(&g);
            }
            apply_corrections(
                &self.client,
                &format!("{wb} AND {column} != ''"),
                &[column],
                &mut ids,
                first,
            )?;
            *list = ids.into_iter().collect();
        }
        Ok(())
    }

    /// Totals, models, functions and durations from `agg_model`: one
    /// query, each group with its summed duration histogram.
    fn models_from_aggregates(&self, bounds: (f64, f64)) -> Result<Parts> {
        let db = self.client.db();
        self.model_groups(&format!(
            "SELECT currency, model, function, {AGG_SUMS}, sum(duration_ms_sum), \
(sumMap(durationMap.bucket, durationMap.calls) AS duration_map).1, duration_map.2 \
FROM {db}.agg_model WHERE {} GROUP BY currency, model, function",
            where_hours(bounds)
        ))
    }

    /// Reads model × function groups: currency, model, function, the
    /// [`SUMS`], the durations' sum, then the histogram's buckets and
    /// their calls (two arrays); the average and p95 as the core computes
    /// them from its histogram.
    fn model_groups(&self, sql: &str) -> Result<Parts> {
        let mut parts = Parts::default();
        let mut durations = DurationHistogram::default();
        self.client.query_each(sql, |r| {
            let currency = currency_of(field(r, 0)?)?;
            durations.sum_ms += parse_f64_or_zero(field(r, 12)?);
            let buckets = parse_array(field(r, 13)?)?;
            let calls = parse_array(field(r, 14)?)?;
            if buckets.len() != calls.len() {
                return Err(Error::Protocol(format!(
                    "duration histogram: {} buckets, {} counts",
                    buckets.len(),
                    calls.len()
                )));
            }
            for (b, n) in buckets.into_iter().zip(calls) {
                durations.add_to_bucket(usize::try_from(b).unwrap_or(usize::MAX), n);
            }
            parts.models.push((
                field(r, 1)?.to_string(),
                field(r, 2)?.to_string(),
                stats_of(r, 3, currency)?,
            ));
            Ok(())
        })?;
        parts.durations = durations;
        Ok(parts)
    }

    /// Users and anchors of the local days `from..=to` from the per-day
    /// tables, both asked at once (the users' answer is the long one).
    fn ids_from_day_tables(&self, from: NaiveDate, to: NaiveDate, parts: &mut Parts) -> Result<()> {
        let db = self.client.db();
        let wd = where_days(from, to);
        let read = |table: &str, column: &str| -> Result<Vec<(String, GroupStats)>> {
            let mut out = Vec::new();
            self.client.query_each(
                &format!(
                    "SELECT {column}, currency, {AGG_SUMS} FROM {db}.{table} \
WHERE {wd} AND {column} != '' GROUP BY {column}, currency"
                ),
                |r| {
                    let currency = currency_of(field(r, 1)?)?;
                    out.push((field(r, 0)?.to_string(), stats_of(r, 2, currency)?));
                    Ok(())
                },
            )?;
            Ok(out)
        };
        let (users, anchors) = std::thread::scope(|scope| {
            let anchors = scope.spawn(|| read("agg_anchor_day", "anchor_id"));
            let users = read("agg_user_day", "user_id");
            let anchors = anchors
                .join()
                .unwrap_or_else(|_| Err(Error::Protocol("anchor query thread panicked".into())));
            (users, anchors)
        });
        parts.users = users?;
        parts.anchors = anchors?;
        Ok(())
    }

    /// Totals, models, functions and durations from raw rows (ranges not
    /// made of whole UTC hours), each group's durations bucketed as the
    /// `agg_model` view buckets them.
    fn models_from_records(&self, bounds: (f64, f64)) -> Result<Parts> {
        let db = self.client.db();
        self.model_groups(&format!(
            "SELECT currency, model, function, {SUMS}, sum(duration_ms), \
(sumMap([{}], [toUInt64(1)]) AS duration_map).1, duration_map.2 \
FROM {db}.records FINAL WHERE {} GROUP BY currency, model, function",
            duration_bucket_sql("duration_ms"),
            where_bounds(bounds)
        ))
    }

    /// Users and anchors from raw rows (an hour, or days of another zone):
    /// one pass over the range's rows, each line once (`LIMIT 1 BY id`:
    /// `FINAL` would merge every row of the range's UTC days by the whole
    /// key, five times the cost for an hour; the time bounds as `PREWHERE`
    /// read the other columns only for the range's rows), grouped by both.
    fn ids_from_records(&self, bounds: (f64, f64), parts: &mut Parts) -> Result<()> {
        let db = self.client.db();
        let wb = where_bounds(bounds);
        let mut users: BTreeMap<(String, Currency), GroupStats> = BTreeMap::new();
        let mut anchors: BTreeMap<(String, Currency), GroupStats> = BTreeMap::new();
        self.client.query_each(
            &format!(
                "SELECT user_id, anchor_id, currency, {SUMS} FROM (SELECT user_id, anchor_id, \
currency, {SUM_COLUMNS} FROM {db}.records PREWHERE {wb} \
WHERE user_id != '' OR anchor_id != '' LIMIT 1 BY id) GROUP BY user_id, anchor_id, currency"
            ),
            |r| {
                let currency = currency_of(field(r, 2)?)?;
                let g = stats_of(r, 3, currency)?;
                for (id, map) in [(field(r, 0)?, &mut users), (field(r, 1)?, &mut anchors)] {
                    if !id.is_empty() {
                        map.entry((id.to_string(), currency)).or_default().merge(&g);
                    }
                }
                Ok(())
            },
        )?;
        parts
            .users
            .extend(users.into_iter().map(|((id, _), g)| (id, g)));
        parts
            .anchors
            .extend(anchors.into_iter().map(|((id, _), g)| (id, g)));
        Ok(())
    }

    /// The dashboard payload of the whole fleet, as the local monitor's
    /// `dashboard()` builds it (the core's [`DayGroups`]).
    pub fn dashboard(&self) -> Result<DashboardData> {
        let now = ai_usage_core::now_timestamp();
        let today = self.zone.date_of(now);
        let week = today - chrono::Duration::days(7);
        let first = ai_usage_core::month_start(today).min(week);
        // Users and anchors only feed the 7-day rankings: their 7-day sums
        // (one row per user, not per user and day) are counted on today.
        let ids = Ids::Summed(week + chrono::Duration::days(1));
        let groups = self.day_groups(first, ids, today)?;
        let generated_at = self.zone.local(now).format("%Y-%m-%dT%H:%M:%S").to_string();
        Ok(self.with_pricing(|p| groups.dashboard(p, today, generated_at, self.reporting)))
    }

    /// The fleet's month forecast as of today.
    pub fn forecast(&self) -> Result<MonthForecast> {
        let today = self.zone.today();
        let first = ai_usage_core::month_start(today).min(today - chrono::Duration::days(7));
        let groups = self.day_groups(first, Ids::None, today)?;
        Ok(groups.forecast(today, self.reporting))
    }

    /// Savings advice from the fleet's local days `from..=to`.
    pub fn savings_between(&self, from: NaiveDate, to: NaiveDate) -> Result<SavingsReport> {
        DayRange::new(from, to).map_err(Error::Core)?;
        let groups = self.day_groups(from, Ids::None, to)?;
        Ok(self.with_pricing(|p| groups.savings(p, from, to)))
    }

    /// Savings advice from the last `days` local days (today included).
    pub fn savings(&self, days: u32) -> Result<SavingsReport> {
        let to = self.zone.today();
        self.savings_between(to - chrono::Duration::days(i64::from(days.max(1)) - 1), to)
    }

    /// Where each budget stands on the whole fleet's spend, as the local
    /// monitor's `budget_status()` (thresholds already reached count as
    /// fired).
    pub fn budget_status(&self, budgets: &[Budget]) -> Result<Vec<BudgetStatus>> {
        let now = ai_usage_core::now_timestamp();
        let today = self.zone.date_of(now);
        let first = budgets
            .iter()
            .map(|b| b.period.bounds(today).0)
            .min()
            .unwrap_or(today);
        let ids = budgets.iter().any(|b| {
            matches!(
                b.scope,
                ai_usage_core::BudgetScope::User(_) | ai_usage_core::BudgetScope::Anchor(_)
            )
        });
        let ids = if ids { Ids::PerDay(first) } else { Ids::None };
        let groups = self.day_groups(first, ids, today)?;
        groups
            .budget_status(budgets, &self.zone, today, now)
            .map_err(Error::Core)
    }

    /// The usage report of the last `days` local days (today included) for
    /// the whole fleet, with `budgets` evaluated on its spend: the same
    /// parts as the local monitor's `usage_report`.
    pub fn usage_report(&self, days: u32, budgets: &[Budget]) -> Result<UsageReport> {
        let days = days.max(1);
        let now = ai_usage_core::now_timestamp();
        let to = self.zone.date_of(now);
        let from = to - chrono::Duration::days(i64::from(days) - 1);
        let top = ai_usage_core::REPORT_TOP;
        Ok(UsageReport {
            generated_at: self.zone.local(now).format("%Y-%m-%dT%H:%M:%S").to_string(),
            period_days: days,
            from: from.format("%Y-%m-%d").to_string(),
            to: to.format("%Y-%m-%d").to_string(),
            timezone: self.zone.to_string(),
            today_summary: self.summary_for_date(to)?,
            period_summary: self.range_summary(from, to)?,
            top_users: self.top(RankKind::User, from, to, RankBy::Tokens, top)?,
            by_anchor: self.top(RankKind::Anchor, from, to, RankBy::Cost, top)?,
            cost_trend: self.trend(from, to)?,
            forecast: self.forecast()?,
            budgets: self.budget_status(budgets)?,
            savings: self.savings_between(from, to)?,
        })
    }

    /// Day-level groups of the local days `from..=to` (users and anchors
    /// as `ids` says), for the core's [`DayGroups`] answers.
    fn day_groups(&self, from: NaiveDate, ids: Ids, to: NaiveDate) -> Result<DayGroups> {
        let db = self.client.db();
        let bounds = (self.zone.day_bounds(from).0, self.zone.day_bounds(to).1);
        let mut groups = DayGroups::new();
        // Days start on whole UTC hours: hours map to one local day each
        // (grouped into days by ClickHouse when the reporting zone's days
        // are these days); else quarter hours of raw rows do.
        let sql = match (
            self.days_hour_aligned(from, to),
            self.days_covered(from, to),
        ) {
            (true, true) => format!(
                "SELECT toUInt32(toDateTime(toDate(toDateTime(hour), '{z}'), '{z}')) + 43200 AS t, \
currency, model, function, {AGG_SUMS} FROM {db}.agg_model WHERE {} \
GROUP BY t, currency, model, function",
                where_hours(bounds),
                z = self.day_zone_name()
            ),
            (true, false) => format!(
                "SELECT hour, currency, model, function, {AGG_SUMS} FROM {db}.agg_model \
WHERE {} GROUP BY hour, currency, model, function",
                where_hours(bounds)
            ),
            _ => format!(
                "SELECT intDiv(toInt64(floor(timestamp)), 900) * 900 AS slot, currency, model, \
function, {SUMS} FROM {db}.records FINAL WHERE {} GROUP BY slot, currency, model, function",
                where_bounds(bounds)
            ),
        };
        let mut models: BTreeMap<(NaiveDate, String, String), GroupStats> = BTreeMap::new();
        self.client.query_each(&sql, |r| {
            let t: f64 = parse(field(r, 0)?)?;
            let currency = currency_of(field(r, 1)?)?;
            let g = stats_of(r, 4, currency)?;
            let key = (
                self.zone.date_of(t),
                field(r, 2)?.to_string(),
                field(r, 3)?.to_string(),
            );
            models.entry(key).or_default().merge(&g);
            Ok(())
        })?;
        apply_corrections(
            &self.client,
            &where_bounds(bounds),
            &[SLOT, "model", "function"],
            &mut models,
            |v| match <[String; 3]>::try_from(v) {
                Ok([slot, m, f]) => Ok((self.zone.date_of(parse(&slot)?), m, f)),
                Err(v) => Err(Error::Protocol(format!("correction keys {v:?}"))),
            },
        )?;
        for ((date, model, function), g) in &models {
            groups.add_model_function(*date, model, function, g);
        }
        if let Ids::PerDay(ids_from) | Ids::Summed(ids_from) = ids {
            let covered = self.days_covered(ids_from, to);
            let summed = matches!(ids, Ids::Summed(_));
            // Summed: one constant first column (not named `day`: an alias
            // would shadow the column in WHERE), every group counted on `to`.
            let (day_col, day_key, slot_col) = if summed {
                (
                    "toDate('1970-01-01') AS summed",
                    "summed",
                    "toInt64(0) AS slot",
                )
            } else {
                (
                    "day",
                    "day",
                    "intDiv(toInt64(floor(timestamp)), 900) * 900 AS slot",
                )
            };
            let ids_bounds = (self.zone.day_bounds(ids_from).0, bounds.1);
            for (table, column, user) in [
                ("agg_user_day", "user_id", true),
                ("agg_anchor_day", "anchor_id", false),
            ] {
                let sql = if covered {
                    format!(
                        "SELECT {day_col}, currency, {column}, {AGG_SUMS} FROM {db}.{table} \
WHERE {} AND {column} != '' GROUP BY {day_key}, currency, {column}",
                        where_days(ids_from, to)
                    )
                } else {
                    format!(
                        "SELECT {slot_col}, currency, \
{column}, {SUMS} FROM {db}.records FINAL WHERE {} AND {column} != '' \
GROUP BY slot, currency, {column}",
                        where_bounds(ids_bounds)
                    )
                };
                let mut ids: BTreeMap<(NaiveDate, String), GroupStats> = BTreeMap::new();
                self.client.query_each(&sql, |r| {
                    let date = if summed {
                        to
                    } else if covered {
                        NaiveDate::parse_from_str(field(r, 0)?, "%Y-%m-%d")
                            .map_err(|_| Error::Protocol(format!("day {:?}", r.first())))?
                    } else {
                        self.zone.date_of(parse(field(r, 0)?)?)
                    };
                    let currency = currency_of(field(r, 1)?)?;
                    let g = stats_of(r, 3, currency)?;
                    ids.entry((date, field(r, 2)?.to_string()))
                        .or_default()
                        .merge(&g);
                    Ok(())
                })?;
                apply_corrections(
                    &self.client,
                    &format!("{} AND {column} != ''", where_bounds(ids_bounds)),
                    &[SLOT, column],
                    &mut ids,
                    |v| {
                        let (slot, id) = slot_and(v)?;
                        Ok((if summed { to } else { self.zone.date_of(slot) }, id))
                    },
                )?;
                for ((date, id), g) in &ids {
                    if user {
                        groups.add_user(*date, id, g);
                    } else {
                        groups.add_anchor(*date, id, g);
                    }
                }
            }
        }
        // The fleet's first tracked day bounds the forecast's basis, as
        // the local monitor's first day in memory does.
        let first = self
            .client
            .query_rows(&format!("SELECT count(), min(hour) FROM {db}.agg_model"))?;
        if let Some([n, min]) = first.first().map(Vec::as_slice) {
            if n != "0" {
                groups.add_day(self.zone.date_of(parse(min)?));
            }
        }
        Ok(groups)
    }

    /// The reporting zone's ClickHouse name (UTC if unreadable).
    fn day_zone_name(&self) -> String {
        self.day_zone()
            .and_then(|z| crate::schema::clickhouse_zone(&z))
            .unwrap_or_else(|| "UTC".into())
    }

    /// One session's figures across the fleet (`None`: no such session).
    pub fn session(&self, session_id: &str) -> Result<Option<SessionSummary>> {
        let db = self.client.db();
        let id = sql_string(session_id);
        let mut stats = GroupStats::default();
        let mut models: BTreeMap<String, u64> = BTreeMap::new();
        let mut functions: BTreeMap<String, u64> = BTreeMap::new();
        self.client.query_each(
            &format!(
                "SELECT currency, model, function, {AGG_SUMS} FROM {db}.agg_session \
WHERE session_id = {id} GROUP BY currency, model, function"
            ),
            |r| {
                let currency = currency_of(field(r, 0)?)?;
                let g = stats_of(r, 3, currency)?;
                *models.entry(field(r, 1)?.to_string()).or_default() += g.calls;
                *functions.entry(field(r, 2)?.to_string()).or_default() += g.calls;
                stats.merge(&g);
                Ok(())
            },
        )?;
        if stats.calls == 0 {
            return Ok(None);
        }
        for (_, c) in corrections::read(&self.client, &format!("session_id = {id}"), &[])? {
            c.apply(&mut stats);
        }
        let span = self.client.query_rows(&format!(
            "SELECT minMerge(first_call), maxMerge(last_call), argMaxIfMerge(user_id), \
argMaxIfMerge(anchor_id) FROM {db}.agg_session WHERE session_id = {id}"
        ))?;
        let row = span
            .first()
            .ok_or_else(|| Error::Protocol("session span: no row".into()))?;
        let (first_call, last_call): (f64, f64) = (parse(field(row, 0)?)?, parse(field(row, 1)?)?);
        let id_of = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let currency = main_currency(&stats.cost, self.reporting);
        Ok(Some(SessionSummary {
            session_id: session_id.to_string(),
            calls: stats.calls,
            successful_calls: stats.successful_calls,
            input_tokens: stats.input_tokens,
            output_tokens: stats.output_tokens,
            total_tokens: stats.total_tokens,
            cost: stats.cost.get(currency),
            currency,
            costs: stats.cost,
            first_call,
            last_call,
            duration_seconds: (last_call - first_call).max(0.0),
            models,
            functions,
            user_id: id_of(field(row, 2)?),
            anchor_id: id_of(field(row, 3)?),
        }))
    }

    /// The summary of the groups read, built by the core's one summary
    /// builder (as the local monitor's).
    fn build_summary(&self, period: &str, bounds: (f64, f64), parts: Parts) -> UsageSummary {
        let mut groups = PeriodGroups::new();
        for (model, function, stats) in &parts.models {
            groups.add_model_function(model, function, stats);
        }
        for (user, stats) in &parts.users {
            groups.add_user(user, stats);
        }
        for (anchor, stats) in &parts.anchors {
            groups.add_anchor(anchor, stats);
        }
        *groups.durations_mut() = parts.durations;
        self.with_pricing(|p| {
            groups.summary(
                period,
                bounds,
                p,
                self.reporting,
                &self.rates,
                self.group_limit,
            )
        })
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

/// The per-day tables' row filter of the local days `from..=to`.
fn where_days(from: NaiveDate, to: NaiveDate) -> String {
    format!(
        "day >= toDate('{}') AND day <= toDate('{}')",
        from.format("%Y-%m-%d"),
        to.format("%Y-%m-%d")
    )
}

/// A quoted ClickHouse string literal.
fn sql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if matches!(c, '\'' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

fn field<S: AsRef<str> + std::fmt::Debug>(row: &[S], i: usize) -> Result<&str> {
    row.get(i)
        .map(AsRef::as_ref)
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

/// An array of unsigned numbers as ClickHouse writes it (`[1,2,3]`).
fn parse_array(s: &str) -> Result<Vec<u64>> {
    let inner = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| Error::Protocol(format!("not an array: {s:?}")))?;
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    inner.split(',').map(parse).collect()
}

fn currency_of(code: &str) -> Result<Currency> {
    Currency::new(code).ok_or_else(|| Error::Protocol(format!("currency {code:?}")))
}

/// Reads the [`SUMS`] columns starting at `at`.
fn stats_of<S: AsRef<str> + std::fmt::Debug>(
    row: &[S],
    at: usize,
    currency: Currency,
) -> Result<GroupStats> {
    let n = |i: usize| -> Result<u64> { parse(field(row, at + i)?) };
    let cost: i64 = parse(field(row, at + 7)?)?;
    let mut costs = Costs::default();
    costs.add(currency, money_from_column(cost));
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
        // The schema keeps no cache-write sum: savings re-price them as input.
        ..GroupStats::default()
    })
}
