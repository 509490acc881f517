//! The digest's content, built from the one query interface (its
//! rendering for people is in `render`, the webhook event in `request`).

use ai_usage_core::{
    BudgetStatus, Costs, Currency, Money, QueryResult, RankBy, RankEntry, RankKind, UsageQueries,
};
use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};

use super::schedule::{DigestPeriod, DigestSchedule};
use crate::config::Language;
use crate::message::{time_in_zone, AlertScope};

/// Amounts stored as exact decimal strings (`"12.345678901"`), so the outbox
/// keeps every nano-unit.
mod exact {
    use ai_usage_core::Money;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &Money, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&m.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An amount in one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    /// Its currency.
    pub currency: Currency,
    /// The amount, exact.
    #[serde(with = "exact")]
    pub amount: Money,
}

fn amounts(costs: &Costs) -> Vec<Amount> {
    costs
        .iter()
        .map(|(currency, amount)| Amount { currency, amount })
        .collect()
}

/// The cost of the period and of the one before, in one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodCost {
    /// Currency of both amounts.
    pub currency: Currency,
    /// This period's cost.
    #[serde(with = "exact")]
    pub cost: Money,
    /// The period before's cost.
    #[serde(with = "exact")]
    pub previous: Money,
}

impl PeriodCost {
    /// The change against the period before in percent with two decimals
    /// and a sign (`+23.46`), `None` when the period before cost nothing.
    pub fn change_percent(&self) -> Option<String> {
        if self.previous.nanos() <= 0 {
            return None;
        }
        let delta = self.cost - self.previous;
        let hundredths = delta.mul_div(10_000, self.previous.nanos())?.nanos();
        let sign = if hundredths < 0 { "-" } else { "+" };
        let abs = hundredths.unsigned_abs();
        Some(format!("{sign}{}.{:02}", abs / 100, abs % 100))
    }
}

/// One entry of a top list (function, model or anchor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopEntry {
    /// The function, model or anchor id.
    pub id: String,
    /// Calls in the period.
    pub calls: u64,
    /// Tokens in the period.
    pub tokens: u64,
    /// Its cost per currency.
    pub costs: Vec<Amount>,
}

impl From<&RankEntry> for TopEntry {
    fn from(e: &RankEntry) -> TopEntry {
        TopEntry {
            id: e.id.clone(),
            calls: e.calls,
            tokens: e.tokens,
            costs: amounts(&e.costs),
        }
    }
}

/// Where one budget stands when the digest is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetLine {
    /// The budget's name.
    pub name: String,
    /// What it counts.
    pub scope: AlertScope,
    /// Its current period (`YYYY-MM-DD` or `YYYY-MM`).
    pub period_label: String,
    /// Spent so far in it.
    #[serde(with = "exact")]
    pub spent: Money,
    /// The limit.
    #[serde(with = "exact")]
    pub limit: Money,
    /// Currency of both.
    pub currency: Currency,
    /// `spent / limit` in percent.
    pub percent: f64,
    /// The hard limit (percent of the limit), if any.
    pub block_at: Option<u32>,
    /// True while calls of its scope are refused.
    pub refusing: bool,
}

impl From<&BudgetStatus> for BudgetLine {
    fn from(s: &BudgetStatus) -> BudgetLine {
        BudgetLine {
            name: s.name.clone(),
            scope: AlertScope::from(&s.scope),
            period_label: s.period_label.clone(),
            spent: s.spent,
            limit: s.limit,
            currency: s.currency,
            percent: s.percent,
            block_at: s.block_at,
            refusing: s.refusing,
        }
    }
}

/// One saving the advice found: a function's calls on a cheaper model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavingLine {
    /// The function (功能).
    pub function: String,
    /// Currency of the amounts.
    pub currency: Currency,
    /// What its calls cost in the period.
    #[serde(with = "exact")]
    pub current_cost: Money,
    /// The cheapest model that fits (display name).
    pub model: String,
    /// What the same calls would have cost on it.
    #[serde(with = "exact")]
    pub cost: Money,
    /// `current_cost - cost`.
    #[serde(with = "exact")]
    pub saving: Money,
}

/// One digest: the figures of one period, as posted. Built by
/// [`DigestMessage::build`]; stored in the outbox as it was built, so a
/// retry sends the same figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestMessage {
    /// Idempotency key of the period ([`DigestPeriod::id`]).
    pub id: String,
    /// Daily or weekly.
    pub schedule: DigestSchedule,
    /// First local day covered.
    pub from: NaiveDate,
    /// Last local day covered.
    pub to: NaiveDate,
    /// First day of the period compared with.
    pub previous_from: NaiveDate,
    /// Last day of the period compared with.
    pub previous_to: NaiveDate,
    /// Cost per currency, this period and the one before (currencies of
    /// either, sorted by code; never converted or added together).
    pub costs: Vec<PeriodCost>,
    /// Calls in the period.
    pub calls: u64,
    /// Calls in the period before.
    pub previous_calls: u64,
    /// The costliest functions.
    pub top_functions: Vec<TopEntry>,
    /// The costliest models.
    pub top_models: Vec<TopEntry>,
    /// The costliest anchors (主播).
    pub top_anchors: Vec<TopEntry>,
    /// Every budget's status when the digest was made.
    pub budgets: Vec<BudgetLine>,
    /// The largest savings of the period, largest first.
    pub savings: Vec<SavingLine>,
    /// When it was made, in the monitor's zone.
    pub time: DateTime<FixedOffset>,
    /// The dashboard's public URL (`--public-url`).
    pub public_url: Option<String>,
    /// The language forced on every channel (else each channel's own).
    pub language: Option<Language>,
}

impl DigestMessage {
    /// The digest of `period` from `queries`, made at `now` (epoch seconds),
    /// with `top` entries per list.
    pub fn build(
        queries: &dyn UsageQueries,
        period: &DigestPeriod,
        top: usize,
        now: f64,
    ) -> QueryResult<DigestMessage> {
        let current = queries.range_summary(period.from, period.to)?;
        let previous = queries.range_summary(period.previous_from, period.previous_to)?;
        let mut costs: Vec<PeriodCost> = Vec::new();
        for (currency, _) in current.costs.iter().chain(previous.costs.iter()) {
            if costs.iter().all(|c| c.currency != currency) {
                costs.push(PeriodCost {
                    currency,
                    cost: current.costs.get(currency),
                    previous: previous.costs.get(currency),
                });
            }
        }
        costs.sort_by(|a, b| a.currency.code().cmp(b.currency.code()));
        let ranked = |kind| -> QueryResult<Vec<TopEntry>> {
            Ok(queries
                .top(kind, period.from, period.to, RankBy::Cost, top)?
                .iter()
                .map(TopEntry::from)
                .collect())
        };
        let savings = queries.savings_between(period.from, period.to)?;
        let mut savings: Vec<SavingLine> = savings
            .functions
            .iter()
            .filter(|f| f.best_saving > Money::ZERO)
            .filter_map(|f| {
                let best = f.alternatives.first()?;
                Some(SavingLine {
                    function: f.function.clone(),
                    currency: f.currency,
                    current_cost: f.current_cost,
                    model: best.display_name.clone(),
                    cost: best.cost,
                    saving: f.best_saving,
                })
            })
            .collect();
        savings.truncate(top);
        Ok(DigestMessage {
            id: period.id(),
            schedule: period.schedule,
            from: period.from,
            to: period.to,
            previous_from: period.previous_from,
            previous_to: period.previous_to,
            costs,
            calls: current.total_calls,
            previous_calls: previous.total_calls,
            top_functions: ranked(RankKind::Function)?,
            top_models: ranked(RankKind::Model)?,
            top_anchors: ranked(RankKind::Anchor)?,
            budgets: queries
                .budget_status()?
                .iter()
                .map(BudgetLine::from)
                .collect(),
            savings,
            time: time_in_zone(now, &queries.zone()),
            public_url: None,
            language: None,
        })
    }

    /// Adds the dashboard link (trailing `/` trimmed).
    pub fn with_public_url(mut self, public_url: impl Into<String>) -> DigestMessage {
        let url: String = public_url.into();
        let url = url.trim().trim_end_matches('/').to_string();
        self.public_url = (!url.is_empty()).then_some(url);
        self
    }

    /// Renders in `language` on every channel.
    pub fn with_language(mut self, language: Option<Language>) -> DigestMessage {
        self.language = language;
        self
    }

    /// `2026-12-06` or `2026-11-30 ~ 2026-12-06`.
    pub fn period_text(&self) -> String {
        if self.from == self.to {
            self.from.to_string()
        } else {
            format!("{} ~ {}", self.from, self.to)
        }
    }

    /// `2026-12-06` or `2026-11-30~2026-12-06` (as in [`DigestPeriod::label`]).
    pub fn period_label(&self) -> String {
        if self.from == self.to {
            self.from.to_string()
        } else {
            format!("{}~{}", self.from, self.to)
        }
    }

    /// The language on a channel whose own is `channel`.
    pub fn language_for(&self, channel: Language) -> Language {
        self.language.unwrap_or(channel)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn m(s: &str) -> Money {
        s.parse().unwrap()
    }

    pub(crate) fn sample() -> DigestMessage {
        DigestMessage {
            id: "id".into(),
            schedule: DigestSchedule::Weekly,
            from: "2026-11-30".parse().unwrap(),
            to: "2026-12-06".parse().unwrap(),
            previous_from: "2026-11-23".parse().unwrap(),
            previous_to: "2026-11-29".parse().unwrap(),
            costs: vec![
                PeriodCost {
                    currency: Currency::CNY,
                    cost: m("1234.5"),
                    previous: m("1000"),
                },
                PeriodCost {
                    currency: Currency::USD,
                    cost: m("2.25"),
                    previous: Money::ZERO,
                },
            ],
            calls: 12_000,
            previous_calls: 10_000,
            top_functions: vec![TopEntry {
                id: "实时分析".into(),
                calls: 9000,
                tokens: 1,
                costs: vec![Amount {
                    currency: Currency::CNY,
                    amount: m("800"),
                }],
            }],
            top_models: vec![],
            top_anchors: vec![],
            budgets: vec![BudgetLine {
                name: "每日总预算".into(),
                scope: AlertScope::Global,
                period_label: "2026-12-07".into(),
                spent: m("40.5"),
                limit: m("50"),
                currency: Currency::CNY,
                percent: 81.0,
                block_at: Some(100),
                refusing: false,
            }],
            savings: vec![SavingLine {
                function: "实时分析".into(),
                currency: Currency::CNY,
                current_cost: m("800"),
                model: "Qwen-Turbo".into(),
                cost: m("300"),
                saving: m("500"),
            }],
            time: DateTime::parse_from_rfc3339("2026-12-07T09:00:05+08:00").unwrap(),
            public_url: Some("https://ai-usage.example.com".into()),
            language: None,
        }
    }

    #[test]
    fn change_is_exact_and_signed() {
        let c = |now: &str, before: &str| {
            PeriodCost {
                currency: Currency::CNY,
                cost: m(now),
                previous: m(before),
            }
            .change_percent()
        };
        assert_eq!(c("1234.5", "1000").as_deref(), Some("+23.45"));
        assert_eq!(c("500", "1000").as_deref(), Some("-50.00"));
        assert_eq!(c("5", "0"), None);
    }

    #[test]
    fn survives_the_outbox_exactly() {
        let mut d = sample();
        d.costs[0].cost = m("1234.567891234");
        let back: DigestMessage =
            serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }
}
