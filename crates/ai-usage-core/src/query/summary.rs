//! Summaries of a period (hour, day, month, any range of days) and the
//! currency rules every query shares: one group's single cost, conversion.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use serde::Serialize;

use crate::money::{Costs, Currency, Money};
use crate::pricing::PricingTable;
use crate::rates::DatedRates;
use crate::rollups::{Bucket, GroupMap, GroupStats};

use super::rank::{keys_of, RankBy, TopK};

/// One group of a summary: the original's `{calls, input_tokens, output_tokens,
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

// Which currency a group's single cost is shown in belongs to money.
pub use crate::money::main_currency;

impl GroupSummary {
    /// The summary of one group, its cost in its main currency.
    pub fn from_stats(g: &GroupStats, reporting: Currency) -> GroupSummary {
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
    /// With rates by day: which rate converted which days, per currency
    /// (consecutive days at one rate form one span). `rates` then lists
    /// only the constant rates used (for days before a currency's first
    /// dated rate).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rates_by_day: Vec<DayRate>,
}

/// The rate that converted a currency's costs on the days `from..=to`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayRate {
    /// The currency converted.
    pub currency: Currency,
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// Units of the reporting currency per unit of `currency`.
    pub rate: Money,
    /// The day the rate was given for (the last on or before the days),
    /// or `None` for the constant rate.
    pub rate_date: Option<NaiveDate>,
}

/// Converts costs day by day: each day's amounts at that day's rate (the
/// last dated rate on or before it, else the constant one). `None` when no
/// rate is configured or only the reporting currency is present.
pub fn convert_by_day(
    days: &[(NaiveDate, Costs)],
    reporting: Currency,
    constant: &[(Currency, i64)],
    dated: &DatedRates,
) -> Option<ConvertedTotal> {
    let mut all = Costs::default();
    for (_, c) in days {
        all.merge(c);
    }
    if constant.is_empty() && dated.is_empty()
        || all.iter().count() < 2 && all.iter().all(|(c, _)| c == reporting)
    {
        return None;
    }
    let mut total = all.get(reporting);
    let mut used = BTreeMap::new();
    let mut missing: Vec<Currency> = Vec::new();
    let mut spans: Vec<DayRate> = Vec::new();
    let mut sorted: Vec<&(NaiveDate, Costs)> = days.iter().collect();
    sorted.sort_by_key(|(d, _)| *d);
    for (day, costs) in sorted {
        for (c, amount) in costs.others(reporting) {
            let rate = match dated.rate_on(c, *day) {
                Some((rd, r)) => Some((Some(rd), r)),
                None => constant
                    .iter()
                    .find(|(rc, _)| *rc == c)
                    .map(|(_, r)| (None, *r)),
            };
            let Some((rate_date, rate)) = rate else {
                if !missing.contains(&c) {
                    missing.push(c);
                }
                continue;
            };
            total += amount.mul_div(rate, 1_000_000).unwrap_or(Money::ZERO);
            if rate_date.is_none() {
                used.insert(c, Money::from_micros(rate));
            }
            let rate = Money::from_micros(rate);
            match spans
                .iter_mut()
                .rev()
                .find(|s| s.currency == c)
                .filter(|s| s.rate == rate && s.rate_date == rate_date)
            {
                Some(s) => s.to = *day,
                None => spans.push(DayRate {
                    currency: c,
                    from: *day,
                    to: *day,
                    rate,
                    rate_date,
                }),
            }
        }
    }
    spans.sort_by_key(|s| (s.currency, s.from));
    missing.sort();
    Some(ConvertedTotal {
        total,
        currency: reporting,
        rates: used,
        missing_rates: missing,
        rates_by_day: spans,
    })
}

/// A usage summary of one period (the original's `UsageSummary`, extended).
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
    /// Exact cost in `currency` (the original rounds this to 0.01; we keep 1e-9).
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
    /// By model (with `display_name`), limited like `by_user`.
    pub by_model: BTreeMap<String, GroupSummary>,
    /// By function, limited like `by_user`.
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
    /// Distinct models in the period (may exceed `by_model.len()`).
    pub model_count: u64,
    /// Distinct functions in the period.
    pub function_count: u64,
    /// True when any group list shows only the biggest groups.
    pub groups_truncated: bool,
    /// Groups left out per list (`by_model`, `by_function`, `by_user`,
    /// `by_anchor`); only lists that were cut appear.
    pub truncated: BTreeMap<&'static str, u64>,
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
                .map(|(k, g)| (k.to_string(), GroupSummary::from_stats(&g, reporting)))
                .collect()
        };
        // Ids come from callers and can number in the tens of thousands a
        // day: every list shows the biggest (by tokens, like the original's
        // ranking) and the summary says how many were left out.
        let limited = |m: &GroupMap| -> BTreeMap<String, GroupSummary> {
            if group_limit == 0 || m.len() <= group_limit {
                return groups(m);
            }
            let mut best = TopK::new(group_limit);
            for (s, &key) in keys_of(m, RankBy::Tokens, reporting).iter().enumerate() {
                if best.takes(key) {
                    let (k, g) = m.slot_at(s);
                    best.offer(key, k, g, None);
                }
            }
            best.groups()
                .into_iter()
                .map(|(id, g)| (id.to_string(), GroupSummary::from_stats(&g, reporting)))
                .collect()
        };
        let mut truncated = BTreeMap::new();
        for (name, m) in [
            ("by_model", &b.by_model),
            ("by_function", &b.by_function),
            ("by_user", &b.by_user),
            ("by_anchor", &b.by_anchor),
        ] {
            if group_limit > 0 && m.len() > group_limit {
                truncated.insert(name, (m.len() - group_limit) as u64);
            }
        }
        let mut by_model = limited(&b.by_model);
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
            by_function: limited(&b.by_function),
            by_user: limited(&b.by_user),
            by_anchor: limited(&b.by_anchor),
            user_count: b.by_user.len() as u64,
            anchor_count: b.by_anchor.len() as u64,
            model_count: b.by_model.len() as u64,
            function_count: b.by_function.len() as u64,
            groups_truncated: !truncated.is_empty(),
            truncated,
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
        rates_by_day: Vec::new(),
    })
}
