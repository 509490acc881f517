//! The digest's content, built from the one query interface, and its
//! rendering for people (Chinese or English) and for the webhook.

use ai_usage_core::{
    BudgetStatus, Costs, Currency, Money, QueryResult, RankBy, RankEntry, RankKind, UsageQueries,
};
use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};

use super::schedule::{DigestPeriod, DigestSchedule};
use crate::config::Language;
use crate::message::{format_money, time_in_zone, AlertScope};

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

    /// `AI 用量周报 2026-11-30 ~ 2026-12-06` / `AI usage weekly digest …`.
    pub fn title(&self, language: Language) -> String {
        let what = match (self.schedule, language) {
            (DigestSchedule::Daily, Language::Zh) => "AI 用量日报",
            (DigestSchedule::Weekly, Language::Zh) => "AI 用量周报",
            (DigestSchedule::Daily, Language::En) => "AI usage daily digest",
            (DigestSchedule::Weekly, Language::En) => "AI usage weekly digest",
        };
        format!("{what} {}", self.period_text())
    }

    /// The sections of the body: (heading, lines).
    fn sections(&self, language: Language) -> Vec<(String, Vec<String>)> {
        let zh = language == Language::Zh;
        let before = match (self.schedule, zh) {
            (DigestSchedule::Daily, true) => "前一天",
            (DigestSchedule::Weekly, true) => "上周",
            (DigestSchedule::Daily, false) => "day before",
            (DigestSchedule::Weekly, false) => "week before",
        };
        let mut sections = Vec::new();
        let mut cost_lines: Vec<String> = self
            .costs
            .iter()
            .map(|c| {
                let change = c
                    .change_percent()
                    .map(|p| format!("{p}%"))
                    .unwrap_or_else(|| (if zh { "新增" } else { "new" }).to_string());
                let (now, prev) = (
                    format_money(c.cost, c.currency),
                    format_money(c.previous, c.currency),
                );
                if zh {
                    format!("{now}（{before} {prev}，{change}）")
                } else {
                    format!("{now} ({before} {prev}, {change})")
                }
            })
            .collect();
        if cost_lines.is_empty() {
            cost_lines.push((if zh { "无费用" } else { "no cost" }).to_string());
        }
        cost_lines.push(if zh {
            format!(
                "调用 {} 次（{before} {} 次）",
                self.calls, self.previous_calls
            )
        } else {
            format!("{} calls ({before} {})", self.calls, self.previous_calls)
        });
        sections.push(((if zh { "费用" } else { "Cost" }).to_string(), cost_lines));
        let top = |entries: &[TopEntry]| -> Vec<String> {
            entries
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let money = join_amounts(&e.costs);
                    if zh {
                        format!("{}. {} {money}（{} 次）", i + 1, e.id, e.calls)
                    } else {
                        format!("{}. {} {money} ({} calls)", i + 1, e.id, e.calls)
                    }
                })
                .collect()
        };
        for (zh_head, en_head, entries) in [
            ("功能 Top", "Top functions", &self.top_functions),
            ("模型 Top", "Top models", &self.top_models),
            ("主播 Top", "Top anchors", &self.top_anchors),
        ] {
            if !entries.is_empty() {
                sections.push((
                    (if zh { zh_head } else { en_head }).to_string(),
                    top(entries),
                ));
            }
        }
        {
            // Always present, so a robot's keyword (预算 / Budget) matches
            // the digest as it matches the alerts.
            let mut lines: Vec<String> = self
                .budgets
                .iter()
                .map(|b| {
                    let spent = format_money(b.spent, b.currency);
                    let limit = format_money(b.limit, b.currency);
                    let refusing = match (b.refusing, zh) {
                        (true, true) => "，已拒绝调用",
                        (true, false) => ", refusing calls",
                        _ => "",
                    };
                    if zh {
                        format!(
                            "{}（{}，{}）：{spent} / {limit}（{:.2}%{refusing}）",
                            b.name,
                            b.scope.describe(language),
                            b.period_label,
                            b.percent
                        )
                    } else {
                        format!(
                            "{} ({}, {}): {spent} of {limit} ({:.2}%{refusing})",
                            b.name,
                            b.scope.describe(language),
                            b.period_label,
                            b.percent
                        )
                    }
                })
                .collect();
            if lines.is_empty() {
                lines.push(
                    (if zh {
                        "未配置预算"
                    } else {
                        "no budgets configured"
                    })
                    .to_string(),
                );
            }
            sections.push(((if zh { "预算" } else { "Budgets" }).to_string(), lines));
        }
        if !self.savings.is_empty() {
            let lines = self
                .savings
                .iter()
                .map(|s| {
                    let m = |v| format_money(v, s.currency);
                    if zh {
                        format!(
                            "{}：改用 {} 可省 {}（{} → {}）",
                            s.function,
                            s.model,
                            m(s.saving),
                            m(s.current_cost),
                            m(s.cost)
                        )
                    } else {
                        format!(
                            "{}: on {} it would save {} ({} → {})",
                            s.function,
                            s.model,
                            m(s.saving),
                            m(s.current_cost),
                            m(s.cost)
                        )
                    }
                })
                .collect();
            sections.push((
                (if zh { "省钱建议" } else { "Savings advice" }).to_string(),
                lines,
            ));
        }
        sections
    }

    /// Plain text (Feishu `text`): the title, then each heading and its
    /// indented lines.
    pub fn text(&self, language: Language) -> String {
        let mut out = self.title(language);
        for (heading, lines) in self.sections(language) {
            out.push_str(&format!("\n\n{heading}"));
            for l in lines {
                out.push_str(&format!("\n  {l}"));
            }
        }
        if let Some(url) = &self.public_url {
            let label = if language == Language::Zh {
                "看板"
            } else {
                "Dashboard"
            };
            let sep = if language == Language::Zh {
                "："
            } else {
                ": "
            };
            out.push_str(&format!("\n\n{label}{sep}{url}"));
        }
        out
    }

    /// Slack `mrkdwn`: a bold title, bold headings, `•` bullets.
    pub fn slack(&self, language: Language) -> String {
        let mut out = format!("*{}*", self.title(language));
        for (heading, lines) in self.sections(language) {
            out.push_str(&format!("\n\n*{heading}*"));
            for l in lines {
                if numbered(&l) {
                    out.push_str(&format!("\n{l}"));
                } else {
                    out.push_str(&format!("\n• {l}"));
                }
            }
        }
        if let Some(url) = &self.public_url {
            let label = if language == Language::Zh {
                "打开看板"
            } else {
                "Open dashboard"
            };
            out.push_str(&format!("\n\n<{url}|{label}>"));
        }
        out
    }

    /// Markdown (DingTalk, WeCom, Feishu cards): the title as a heading
    /// (when `with_title`), bold section headings and `-` lists; blank lines
    /// between blocks because DingTalk drops single newlines.
    pub fn markdown(&self, language: Language, with_title: bool) -> String {
        let mut blocks = Vec::new();
        if with_title {
            blocks.push(format!("### {}", self.title(language)));
        }
        for (heading, lines) in self.sections(language) {
            // Top lists are numbered already: an ordered list, not bullets.
            let list: Vec<String> = lines
                .iter()
                .map(|l| {
                    if numbered(l) {
                        l.clone()
                    } else {
                        format!("- {l}")
                    }
                })
                .collect();
            blocks.push(format!("**{heading}**\n\n{}", list.join("\n")));
        }
        if let Some(url) = &self.public_url {
            let label = if language == Language::Zh {
                "打开看板"
            } else {
                "Open dashboard"
            };
            blocks.push(format!("[{label}]({url})"));
        }
        blocks.join("\n\n")
    }
}

/// True for a line of a top list (`1. 实时分析 …`).
fn numbered(line: &str) -> bool {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && line[digits..].starts_with(". ")
}

/// `¥12.30 + $0.50` (each currency apart, never added together).
fn join_amounts(amounts: &[Amount]) -> String {
    if amounts.is_empty() {
        return format_money(Money::ZERO, Currency::CNY);
    }
    amounts
        .iter()
        .map(|a| format_money(a.amount, a.currency))
        .collect::<Vec<_>>()
        .join(" + ")
}

#[cfg(test)]
mod tests {
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
    fn renders_chinese_and_english() {
        let zh = sample().text(Language::Zh);
        assert!(zh.starts_with("AI 用量周报 2026-11-30 ~ 2026-12-06\n\n费用\n  ¥1234.50（上周 ¥1000.00，+23.45%）\n  $2.25（上周 $0.00，新增）\n  调用 12000 次（上周 10000 次）"), "{zh}");
        assert!(
            zh.contains("\n功能 Top\n  1. 实时分析 ¥800.00（9000 次）"),
            "{zh}"
        );
        assert!(
            zh.contains("\n  每日总预算（全部调用，2026-12-07）：¥40.50 / ¥50.00（81.00%）"),
            "{zh}"
        );
        assert!(
            zh.contains("\n  实时分析：改用 Qwen-Turbo 可省 ¥500.00（¥800.00 → ¥300.00）"),
            "{zh}"
        );
        assert!(zh.ends_with("看板：https://ai-usage.example.com"), "{zh}");
        let en = sample().text(Language::En);
        assert!(en.starts_with("AI usage weekly digest 2026-11-30 ~ 2026-12-06\n\nCost\n  ¥1234.50 (week before ¥1000.00, +23.45%)"), "{en}");
        let md = sample().markdown(Language::Zh, true);
        assert!(
            md.starts_with("### AI 用量周报 2026-11-30 ~ 2026-12-06\n\n**费用**\n\n- ¥1234.50"),
            "{md}"
        );
        assert!(
            md.ends_with("[打开看板](https://ai-usage.example.com)"),
            "{md}"
        );
        let slack = sample().slack(Language::En);
        assert!(
            slack.contains("\n*Top functions*\n1. 实时分析 ¥800.00 (9000 calls)"),
            "{slack}"
        );
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
