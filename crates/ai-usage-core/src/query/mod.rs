//! Queries answered from the rollups: summaries (hour, day, month, any range
//! of days), sessions, rankings, the cost trend, the month forecast and the
//! dashboard payload. Every query costs O(groups), never O(records).
//!
//! Field names are the seed's (`total_calls`, `by_model`, …). Money is never
//! added across currencies: a group's `cost` is in its `currency` (its only
//! currency, or the reporting currency when it has several) and `costs` lists
//! every currency separately.

pub mod savings;

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use rustc_hash::FxHashMap;
use serde::{Serialize, Serializer};

use crate::error::{Error, Result};
use crate::money::{Costs, Currency, Money};
use crate::monitor::UsageMonitor;
use crate::pricing::PricingTable;
use crate::rollups::{Bucket, GroupMap, GroupStats, Rollups, SessionStats};
use crate::zone::{month_start, now_timestamp};

/// One group of a summary: the seed's `{calls, input_tokens, output_tokens,
/// total_tokens, cost}` plus currency details.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSummary {
    /// Calls.
    pub calls: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
    /// Cost in `currency`.
    pub cost: Money,
    /// Currency of `cost`.
    pub currency: Currency,
    /// Cost per currency (more than one entry only when currencies are mixed).
    pub costs: Costs,
    /// Successful calls.
    pub successful_calls: u64,
    /// Cached input tokens.
    pub cached_input_tokens: u64,
    /// Calls of unpriced models.
    pub unpriced_calls: u64,
    /// The model's display name (`by_model` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// The currency a group's single `cost` is given in: its only currency, else
/// the reporting currency.
pub fn main_currency(costs: &Costs, reporting: Currency) -> Currency {
    let mut it = costs.iter();
    match (it.next(), it.next()) {
        (Some((c, _)), None) => c,
        _ => reporting,
    }
}

impl GroupSummary {
    fn from_stats(g: &GroupStats, reporting: Currency) -> GroupSummary {
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
}

/// A converted grand total across currencies, with the rates used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConvertedTotal {
    /// The total in `currency`.
    pub total: Money,
    /// The reporting currency.
    pub currency: Currency,
    /// Rates used: units of the reporting currency per unit of each other currency.
    pub rates: BTreeMap<Currency, Money>,
    /// Currencies present without a configured rate (left out of `total`).
    pub missing_rates: Vec<Currency>,
}

/// A usage summary of one period (the seed's `UsageSummary`, extended).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageSummary {
    /// `hourly`, `daily`, `monthly` or `range`.
    pub period: String,
    /// Start (epoch seconds, inclusive).
    pub start_time: f64,
    /// End (epoch seconds, exclusive).
    pub end_time: f64,
    /// Calls.
    pub total_calls: u64,
    /// Successful calls.
    pub successful_calls: u64,
    /// Failed calls.
    pub failed_calls: u64,
    /// Input tokens.
    pub total_input_tokens: u64,
    /// Output tokens.
    pub total_output_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
    /// Exact cost in `currency` (the seed rounds this to 0.01; we keep 1e-6).
    pub total_cost: Money,
    /// Currency of `total_cost`.
    pub currency: Currency,
    /// Cost per currency.
    pub costs: Costs,
    /// Total converted into the reporting currency, when rates are configured
    /// and more than one currency is present.
    pub converted_total: Option<ConvertedTotal>,
    /// Successful / total calls, in percent (100 when there are no calls).
    pub success_rate: f64,
    /// Mean call duration (ms).
    pub avg_duration_ms: f64,
    /// 95th percentile call duration (ms, ~19 % bucket resolution).
    pub p95_duration_ms: f64,
    /// Cached input tokens.
    pub cached_input_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    /// Calls of models without a price (cost 0).
    pub unpriced_calls: u64,
    /// By model (with `display_name`).
    pub by_model: BTreeMap<String, GroupSummary>,
    /// By function.
    pub by_function: BTreeMap<String, GroupSummary>,
    /// By user (calls without a user are not listed). At most the
    /// monitor's group limit (default 1,000), the biggest by tokens.
    pub by_user: BTreeMap<String, GroupSummary>,
    /// By anchor (主播), limited like `by_user`.
    pub by_anchor: BTreeMap<String, GroupSummary>,
    /// Distinct users in the period (may exceed `by_user.len()`).
    pub user_count: u64,
    /// Distinct anchors in the period.
    pub anchor_count: u64,
    /// True when `by_user` or `by_anchor` lists only the biggest groups.
    pub groups_truncated: bool,
}

impl UsageSummary {
    /// Builds a summary from a bucket.
    pub fn from_bucket(
        period: &str,
        (start_time, end_time): (f64, f64),
        b: &Bucket,
        pricing: &PricingTable,
        reporting: Currency,
        rates: &[(Currency, i64)],
        group_limit: usize,
    ) -> UsageSummary {
        let t = &b.totals;
        let currency = main_currency(&t.cost, reporting);
        let groups = |m: &GroupMap| -> BTreeMap<String, GroupSummary> {
            m.iter()
                .map(|(k, g)| (k.clone(), GroupSummary::from_stats(g, reporting)))
                .collect()
        };
        // Users can number in the tens of thousands a day: list the biggest
        // (by tokens, like the seed's ranking) and say how many there are.
        let limited = |m: &GroupMap| -> BTreeMap<String, GroupSummary> {
            if group_limit == 0 || m.len() <= group_limit {
                return groups(m);
            }
            let rows: Vec<Candidate<'_>> = m
                .iter()
                .map(|(k, g)| Candidate::new(k, g, None, RankBy::Tokens, reporting))
                .collect();
            select(rows, group_limit)
                .into_iter()
                .map(|c| {
                    (
                        c.id.to_string(),
                        GroupSummary::from_stats(&c.total(), reporting),
                    )
                })
                .collect()
        };
        let mut by_model = groups(&b.by_model);
        for (model, g) in by_model.iter_mut() {
            g.display_name = Some(pricing.display_name(model));
        }
        UsageSummary {
            period: period.to_string(),
            start_time,
            end_time,
            total_calls: t.calls,
            successful_calls: t.successful_calls,
            failed_calls: t.failed_calls(),
            total_input_tokens: t.input_tokens,
            total_output_tokens: t.output_tokens,
            total_tokens: t.total_tokens,
            total_cost: t.cost.get(currency),
            currency,
            costs: t.cost.clone(),
            converted_total: convert(&t.cost, reporting, rates),
            success_rate: success_rate(t),
            avg_duration_ms: b.durations.mean_ms(),
            p95_duration_ms: b.durations.quantile_ms(0.95),
            cached_input_tokens: t.cached_input_tokens,
            reasoning_tokens: t.reasoning_tokens,
            unpriced_calls: t.unpriced_calls,
            by_model,
            by_function: groups(&b.by_function),
            by_user: limited(&b.by_user),
            by_anchor: limited(&b.by_anchor),
            user_count: b.by_user.len() as u64,
            anchor_count: b.by_anchor.len() as u64,
            groups_truncated: group_limit > 0
                && (b.by_user.len() > group_limit || b.by_anchor.len() > group_limit),
        }
    }
}

/// Percent of successful calls (100 with no calls, as nothing failed).
pub fn success_rate(g: &GroupStats) -> f64 {
    if g.calls == 0 {
        100.0
    } else {
        g.successful_calls as f64 * 100.0 / g.calls as f64
    }
}

/// Converts a multi-currency amount when more than one currency is present
/// and rates are configured.
pub fn convert(
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

/// One session's figures (`get_session_stats`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSummary {
    /// The session id.
    pub session_id: String,
    /// Calls.
    pub calls: u64,
    /// Successful calls.
    pub successful_calls: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
    /// Cost in `currency`.
    pub cost: Money,
    /// Currency of `cost`.
    pub currency: Currency,
    /// Cost per currency.
    pub costs: Costs,
    /// First call (epoch seconds).
    pub first_call: f64,
    /// Last call (epoch seconds).
    pub last_call: f64,
    /// Seconds between first and last call.
    pub duration_seconds: f64,
    /// Calls per model used.
    pub models: BTreeMap<String, u64>,
    /// Calls per function.
    pub functions: BTreeMap<String, u64>,
    /// Anchor (主播) of the session, if recorded.
    pub anchor_id: Option<String>,
    /// User of the session, if recorded.
    pub user_id: Option<String>,
}

impl SessionSummary {
    fn from_stats(s: &SessionStats, reporting: Currency) -> SessionSummary {
        let currency = main_currency(&s.stats.cost, reporting);
        SessionSummary {
            session_id: s.session_id.clone(),
            calls: s.stats.calls,
            successful_calls: s.stats.successful_calls,
            input_tokens: s.stats.input_tokens,
            output_tokens: s.stats.output_tokens,
            total_tokens: s.stats.total_tokens,
            cost: s.stats.cost.get(currency),
            currency,
            costs: s.stats.cost.clone(),
            first_call: s.first_call,
            last_call: s.last_call,
            duration_seconds: (s.last_call - s.first_call).max(0.0),
            models: s.models.clone(),
            functions: s.functions.clone(),
            anchor_id: s.anchor_id.clone(),
            user_id: s.user_id.clone(),
        }
    }
}

/// What a ranking groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankKind {
    /// Users (`user_id`).
    User,
    /// Anchors (`anchor_id`).
    Anchor,
    /// Functions (`function`).
    Function,
    /// Models (`model`).
    Model,
}

impl RankKind {
    /// The JSON field that names the ranked id.
    pub fn id_field(self) -> &'static str {
        match self {
            RankKind::User => "user_id",
            RankKind::Anchor => "anchor_id",
            RankKind::Function => "function",
            RankKind::Model => "model",
        }
    }
}

/// What a ranking orders by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    /// Total tokens (the seed's order).
    #[default]
    Tokens,
    /// Cost in the reporting currency.
    Cost,
    /// Calls.
    Calls,
}

/// One row of a ranking, serialised with the seed's names:
/// `{"user_id": …, "tokens", "cost", "calls"}` (or `anchor_id`, `function`, `model`).
#[derive(Debug, Clone, PartialEq)]
pub struct RankEntry {
    /// What is ranked.
    pub kind: RankKind,
    /// The id.
    pub id: String,
    /// Total tokens.
    pub tokens: u64,
    /// Cost in `currency`.
    pub cost: Money,
    /// Currency of `cost`.
    pub currency: Currency,
    /// Cost per currency.
    pub costs: Costs,
    /// Calls.
    pub calls: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

impl Serialize for RankEntry {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(8))?;
        m.serialize_entry(self.kind.id_field(), &self.id)?;
        m.serialize_entry("tokens", &self.tokens)?;
        m.serialize_entry("cost", &self.cost)?;
        m.serialize_entry("currency", &self.currency)?;
        m.serialize_entry("costs", &self.costs)?;
        m.serialize_entry("calls", &self.calls)?;
        m.serialize_entry("input_tokens", &self.input_tokens)?;
        m.serialize_entry("output_tokens", &self.output_tokens)?;
        m.end()
    }
}

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
}

/// The dashboard payload (the seed's `/dashboard`, plus anchors and forecast).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DashboardData {
    /// When computed (local ISO time).
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

/// Dates `from..=to`, validated (`from <= to`, at most 3,660 days).
fn check_range(from: NaiveDate, to: NaiveDate) -> Result<()> {
    if from > to {
        return Err(Error::InvalidArgument {
            argument: "from",
            message: format!("{from} is after {to}"),
        });
    }
    if (to - from).num_days() > 3660 {
        return Err(Error::InvalidArgument {
            argument: "from",
            message: "a range may span at most 3660 days".into(),
        });
    }
    Ok(())
}

/// A ranking's group map for one day.
fn rank_map(day: &crate::rollups::DayRollup, kind: RankKind) -> &GroupMap {
    match kind {
        RankKind::User => &day.day.by_user,
        RankKind::Anchor => &day.day.by_anchor,
        RankKind::Function => &day.day.by_function,
        RankKind::Model => &day.day.by_model,
    }
}

fn rank_key(g: &GroupStats, by: RankBy, reporting: Currency) -> (i64, u64) {
    match by {
        RankBy::Tokens => (g.total_tokens as i64, g.calls),
        RankBy::Cost => (g.cost.get(reporting).micros(), g.total_tokens),
        RankBy::Calls => (g.calls as i64, g.total_tokens),
    }
}

/// Groups of a run of past days merged once and kept sorted, so a ranking
/// that ends today only merges today's groups into it. Valid while every
/// covered day keeps the version it had when the cache was built.
#[derive(Debug, Clone)]
pub(crate) struct RankCache {
    kind: RankKind,
    by: RankBy,
    reporting: Currency,
    from: NaiveDate,
    to: NaiveDate,
    versions: Vec<(NaiveDate, u64)>,
    /// Sorted best first.
    entries: Vec<(String, GroupStats)>,
    index: FxHashMap<String, usize>,
}

/// How many merged past-day rankings are kept.
const RANK_CACHE_SLOTS: usize = 8;

fn day_versions(rollups: &Rollups, from: NaiveDate, to: NaiveDate) -> Vec<(NaiveDate, u64)> {
    rollups
        .days
        .range(from..=to)
        .map(|(d, day)| (*d, day.version))
        .collect()
}

fn merge_days(
    rollups: &Rollups,
    kind: RankKind,
    from: NaiveDate,
    to: NaiveDate,
) -> FxHashMap<&str, GroupStats> {
    // Borrow keys: merging costs no allocation per group.
    let mut merged: FxHashMap<&str, GroupStats> = FxHashMap::default();
    for (_, day) in rollups.days.range(from..=to) {
        let map = rank_map(day, kind);
        if merged.is_empty() {
            merged.reserve(map.len());
        }
        for (k, g) in map {
            match merged.get_mut(k.as_str()) {
                Some(m) => m.merge(g),
                None => {
                    merged.insert(k.as_str(), g.clone());
                }
            }
        }
    }
    merged
}

fn entry_of(kind: RankKind, id: &str, g: GroupStats, reporting: Currency) -> RankEntry {
    let currency = main_currency(&g.cost, reporting);
    RankEntry {
        kind,
        id: id.to_string(),
        tokens: g.total_tokens,
        cost: g.cost.get(currency),
        currency,
        costs: g.cost,
        calls: g.calls,
        input_tokens: g.input_tokens,
        output_tokens: g.output_tokens,
    }
}

/// A ranking candidate: its key and up to two parts to add, borrowed so
/// that only the winners are ever copied.
struct Candidate<'a> {
    key: (i64, u64),
    id: &'a str,
    parts: [Option<&'a GroupStats>; 2],
}

impl<'a> Candidate<'a> {
    fn new(
        id: &'a str,
        a: &'a GroupStats,
        b: Option<&'a GroupStats>,
        by: RankBy,
        reporting: Currency,
    ) -> Self {
        let ka = rank_key(a, by, reporting);
        let key = match b {
            // Every rank key component is a sum, so keys of parts add up.
            Some(b) => {
                let kb = rank_key(b, by, reporting);
                (ka.0 + kb.0, ka.1 + kb.1)
            }
            None => ka,
        };
        Candidate {
            key,
            id,
            parts: [Some(a), b],
        }
    }

    fn total(&self) -> GroupStats {
        let mut g = GroupStats::default();
        for p in self.parts.iter().flatten() {
            g.merge(p);
        }
        g
    }
}

/// The best `limit` candidates (0 = all), best first; ties by id.
fn select(mut rows: Vec<Candidate<'_>>, limit: usize) -> Vec<Candidate<'_>> {
    let order =
        |a: &Candidate<'_>, b: &Candidate<'_>| b.key.cmp(&a.key).then_with(|| a.id.cmp(b.id));
    if limit > 0 && rows.len() > limit {
        rows.select_nth_unstable_by(limit - 1, order);
        rows.truncate(limit);
    }
    rows.sort_by(order);
    rows
}

/// Ranks groups over the days `from..=to` of `rollups` (uncached).
pub fn rank(
    rollups: &Rollups,
    kind: RankKind,
    from: NaiveDate,
    to: NaiveDate,
    by: RankBy,
    limit: usize,
    reporting: Currency,
) -> Vec<RankEntry> {
    let merged = merge_days(rollups, kind, from, to);
    let rows = merged
        .iter()
        .map(|(k, g)| Candidate::new(k, g, None, by, reporting))
        .collect();
    select(rows, limit)
        .into_iter()
        .map(|c| entry_of(kind, c.id, c.total(), reporting))
        .collect()
}

/// Ranks like [`rank`], reusing merged past days when the range ends with
/// its last day and at least two days are covered: the cost is then
/// O(groups of the last day + limit) instead of O(groups of every day).
pub fn rank_cached(
    rollups: &mut Rollups,
    kind: RankKind,
    from: NaiveDate,
    to: NaiveDate,
    by: RankBy,
    limit: usize,
    reporting: Currency,
) -> Vec<RankEntry> {
    if limit == 0 || from >= to {
        return rank(rollups, kind, from, to, by, limit, reporting);
    }
    let past_to = to - chrono::Duration::days(1);
    let versions = day_versions(rollups, from, past_to);
    let hit = rollups.rank_cache.iter().position(|c| {
        c.kind == kind
            && c.by == by
            && c.reporting == reporting
            && c.from == from
            && c.to == past_to
            && c.versions == versions
    });
    let slot = match hit {
        Some(i) => i,
        None => {
            let merged = merge_days(rollups, kind, from, past_to);
            let rows = merged
                .iter()
                .map(|(k, g)| Candidate::new(k, g, None, by, reporting))
                .collect();
            let entries: Vec<(String, GroupStats)> = select(rows, 0)
                .into_iter()
                .map(|c| (c.id.to_string(), c.total()))
                .collect();
            let index = entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.clone(), i))
                .collect();
            let cache = RankCache {
                kind,
                by,
                reporting,
                from,
                to: past_to,
                versions,
                entries,
                index,
            };
            // Replace a stale entry for the same question, else the oldest.
            if let Some(i) = rollups
                .rank_cache
                .iter()
                .position(|c| c.kind == kind && c.by == by && c.from == from)
            {
                rollups.rank_cache.remove(i);
            }
            if rollups.rank_cache.len() >= RANK_CACHE_SLOTS {
                rollups.rank_cache.remove(0);
            }
            rollups.rank_cache.push(cache);
            rollups.rank_cache.len() - 1
        }
    };
    let cache = &rollups.rank_cache[slot];
    let empty = GroupMap::default();
    let last = rollups.days.get(&to).map_or(&empty, |d| rank_map(d, kind));
    // Candidates: every group active on the last day (with its past added),
    // plus the best `limit` past groups not active on it. No other group can
    // rank above those.
    let mut rows: Vec<Candidate<'_>> = Vec::with_capacity(last.len() + limit);
    for (k, g) in last {
        let past = cache.index.get(k.as_str()).map(|&i| &cache.entries[i].1);
        rows.push(Candidate::new(k, g, past, by, reporting));
    }
    let mut extra = 0;
    for (k, g) in &cache.entries {
        if extra >= limit {
            break;
        }
        if !last.contains_key(k.as_str()) {
            rows.push(Candidate::new(k, g, None, by, reporting));
            extra += 1;
        }
    }
    select(rows, limit)
        .into_iter()
        .map(|c| entry_of(kind, c.id, c.total(), reporting))
        .collect()
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
                name: k.clone(),
                display_name: pricing.map_or_else(|| k.clone(), |p| p.display_name(k)),
                calls: g.calls,
                tokens: g.total_tokens,
                input_tokens: g.input_tokens,
                output_tokens: g.output_tokens,
                cost: g.cost.get(currency),
                currency,
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

impl UsageMonitor {
    fn reporting(&self) -> Currency {
        self.config.reporting_currency
    }

    fn summary_of(
        &self,
        period: &str,
        bounds: (f64, f64),
        bucket: Option<&Bucket>,
    ) -> UsageSummary {
        let empty = Bucket::default();
        let pricing = self.pricing();
        UsageSummary::from_bucket(
            period,
            bounds,
            bucket.unwrap_or(&empty),
            &pricing,
            self.reporting(),
            &self.config.exchange_rates,
            self.config.summary_group_limit,
        )
    }

    /// Today's local date in the monitor's zone.
    pub fn today(&self) -> NaiveDate {
        self.config.zone.today()
    }

    /// The summary of the local day `days_ago` days before today (0 = today).
    pub fn get_daily_summary(&self, days_ago: u32) -> UsageSummary {
        let date = self.today() - chrono::Duration::days(days_ago as i64);
        self.get_summary_for_date(date)
    }

    /// The summary of a local calendar date.
    pub fn get_summary_for_date(&self, date: NaiveDate) -> UsageSummary {
        let bounds = self.config.zone.day_bounds(date);
        let rollups = self.rollups();
        self.summary_of("daily", bounds, rollups.days.get(&date).map(|d| &d.day))
    }

    /// The summary of the local clock hour `hours_ago` hours before the current one.
    pub fn get_hourly_summary(&self, hours_ago: u32) -> UsageSummary {
        let ts = now_timestamp() - hours_ago as f64 * 3600.0;
        let (date, hour) = self.config.zone.hour_of(ts);
        self.get_summary_for_hour(date, hour)
    }

    /// The summary of one local clock hour of a date.
    pub fn get_summary_for_hour(&self, date: NaiveDate, hour: u8) -> UsageSummary {
        // Not `start + 3600`: DST folds and gaps make local hours 2 h or 0 h long.
        let bounds = self.config.zone.hour_bounds(date, hour);
        let rollups = self.rollups();
        let bucket = rollups.days.get(&date).and_then(|d| d.hours.get(&hour));
        self.summary_of("hourly", bounds, bucket)
    }

    /// The summary of whole local days `from..=to`.
    pub fn get_range_summary(&self, from: NaiveDate, to: NaiveDate) -> Result<UsageSummary> {
        check_range(from, to)?;
        Ok(self.range_summary("range", from, to))
    }

    fn range_summary(&self, period: &str, from: NaiveDate, to: NaiveDate) -> UsageSummary {
        let zone = self.config.zone;
        let bounds = (zone.day_bounds(from).0, zone.day_bounds(to).1);
        let rollups = self.rollups();
        let mut merged = Bucket::default();
        for (_, day) in rollups.days.range(from..=to) {
            merged.merge(&day.day);
        }
        drop(rollups);
        self.summary_of(period, bounds, Some(&merged))
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
        let mut v: Vec<&SessionStats> = rollups.sessions.values().collect();
        v.sort_by(|a, b| b.last_call.total_cmp(&a.last_call));
        v.into_iter()
            .take(limit)
            .map(|s| SessionSummary::from_stats(s, self.reporting()))
            .collect()
    }

    /// The last `days` local days ending today, as `(from, to)`.
    pub fn last_days(&self, days: u32) -> (NaiveDate, NaiveDate) {
        let to = self.today();
        (to - chrono::Duration::days(days.max(1) as i64 - 1), to)
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
        let mut rollups = self.rollups();
        rank_cached(&mut rollups, kind, from, to, by, limit, self.reporting())
    }

    /// The last `days` whole local days, oldest first, every day present.
    pub fn get_cost_trend(&self, days: u32) -> Vec<TrendPoint> {
        let (from, to) = self.last_days(days);
        let rollups = self.rollups();
        trend(&rollups, from, to, self.reporting())
    }

    /// The cost of every day `from..=to`.
    pub fn cost_trend_range(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<TrendPoint>> {
        check_range(from, to)?;
        let rollups = self.rollups();
        Ok(trend(&rollups, from, to, self.reporting()))
    }

    /// The month forecast for the month of today.
    pub fn forecast(&self) -> MonthForecast {
        let rollups = self.rollups();
        forecast_at(&rollups, self.today(), self.reporting())
    }

    /// The dashboard payload.
    pub fn dashboard(&self) -> DashboardData {
        let today = self.today();
        let reporting = self.reporting();
        let pricing = self.pricing();
        let mut rollups = self.rollups();
        let week_from = today - chrono::Duration::days(6);
        let top_users = rank_cached(
            &mut rollups,
            RankKind::User,
            week_from,
            today,
            RankBy::Tokens,
            5,
            reporting,
        );
        let top_anchors = rank_cached(
            &mut rollups,
            RankKind::Anchor,
            week_from,
            today,
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
            tokens_change_pct: pct_change(
                t.totals.total_tokens as f64,
                y.totals.total_tokens as f64,
            ),
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
            generated_at: self
                .config
                .zone
                .now_local()
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string(),
            date: today.format("%Y-%m-%d").to_string(),
            today: today_card,
            month: month_card,
            top_users,
            top_anchors,
            cost_trend: trend(&rollups, week_from, today, reporting),
            model_distribution: distribution(&t.by_model, Some(&pricing), reporting),
            function_distribution: distribution(&t.by_function, None, reporting),
            forecast: forecast_at(&rollups, today, reporting),
        }
    }
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
