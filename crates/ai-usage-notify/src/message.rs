//! What one alert says, independent of the channel, and its rendering for
//! people in Chinese or English.

use ai_usage_core::{BudgetAlert, BudgetPeriod, BudgetScope, Currency, Money, Zone};
use chrono::{DateTime, FixedOffset, TimeZone};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Language;

/// What a budget counts, as the message names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum AlertScope {
    /// Every call.
    Global,
    /// One user (`user_id`).
    User(String),
    /// One anchor (`anchor_id`, 主播).
    Anchor(String),
    /// One function (功能).
    Function(String),
    /// One model.
    Model(String),
    /// One tag, e.g. `team:live-ops`.
    Tag(String),
}

impl From<&BudgetScope> for AlertScope {
    fn from(scope: &BudgetScope) -> AlertScope {
        match scope {
            BudgetScope::Global => AlertScope::Global,
            BudgetScope::User(id) => AlertScope::User(id.clone()),
            BudgetScope::Anchor(id) => AlertScope::Anchor(id.clone()),
            BudgetScope::Function(id) => AlertScope::Function(id.clone()),
            BudgetScope::Model(id) => AlertScope::Model(id.clone()),
            BudgetScope::Tag(id) => AlertScope::Tag(id.clone()),
        }
    }
}

impl AlertScope {
    /// `全部调用`, `主播 anchor_001`, `all calls`, `anchor anchor_001`, ….
    pub fn describe(&self, language: Language) -> String {
        let (zh, en, id) = match self {
            AlertScope::Global => return pick(language, "全部调用", "all calls").to_string(),
            AlertScope::User(id) => ("用户", "user", id),
            AlertScope::Anchor(id) => ("主播", "anchor", id),
            AlertScope::Function(id) => ("功能", "function", id),
            AlertScope::Model(id) => ("模型", "model", id),
            AlertScope::Tag(id) => ("标签", "tag", id),
        };
        format!("{} {id}", pick(language, zh, en))
    }
}

/// One budget alert as sent to a channel.
///
/// ```
/// use ai_usage_notify::{AlertMessage, AlertScope, Language};
/// use ai_usage_core::{BudgetPeriod, Currency, Money};
/// let m = AlertMessage::new(
///     "每日总预算", AlertScope::Global, BudgetPeriod::Daily, "2026-12-07", 80,
///     "40.5".parse::<Money>().unwrap(), "50".parse::<Money>().unwrap(), Currency::CNY,
///     chrono::DateTime::parse_from_rfc3339("2026-12-07T14:03:05+08:00").unwrap(),
/// );
/// assert!(m.text(Language::Zh).contains("¥40.50 / 预算 ¥50.00"));
/// assert!(m.text(Language::En).contains("¥40.50 of ¥50.00"));
/// assert_eq!(m.id.len(), 32);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertMessage {
    /// Idempotency key: the same for every delivery of one (budget, period,
    /// threshold), see [`AlertMessage::alert_id`].
    pub id: String,
    /// The budget's name.
    pub budget: String,
    /// What the budget counts.
    pub scope: AlertScope,
    /// The budget's period.
    pub period: BudgetPeriod,
    /// The period crossed in, `YYYY-MM-DD` or `YYYY-MM`.
    pub period_label: String,
    /// The threshold crossed, in percent of the limit.
    pub threshold: u32,
    /// Spent in the period when the threshold was crossed.
    #[serde(serialize_with = "money_text::amount")]
    pub spent: Money,
    /// The period's limit.
    #[serde(serialize_with = "money_text::amount")]
    pub limit: Money,
    /// Currency of every amount.
    pub currency: Currency,
    /// The month's projected spend, when known.
    #[serde(serialize_with = "money_text::optional")]
    pub projected_month: Option<Money>,
    /// When the threshold was crossed, in the monitor's zone.
    pub time: DateTime<FixedOffset>,
    /// The dashboard's public URL (`--public-url`), linked from the message.
    pub public_url: Option<String>,
}

impl AlertMessage {
    /// A message without projection or dashboard link; `id` is derived.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        budget: impl Into<String>,
        scope: AlertScope,
        period: BudgetPeriod,
        period_label: impl Into<String>,
        threshold: u32,
        spent: Money,
        limit: Money,
        currency: Currency,
        time: DateTime<FixedOffset>,
    ) -> AlertMessage {
        let budget = budget.into();
        let period_label = period_label.into();
        AlertMessage {
            id: AlertMessage::alert_id(&budget, &period_label, threshold),
            budget,
            scope,
            period,
            period_label,
            threshold,
            spent,
            limit,
            currency,
            projected_month: None,
            time,
            public_url: None,
        }
    }

    /// The message for an alert of the core, its time shown in `zone`.
    /// The core's alert carries no projection: pass the month's projection
    /// (e.g. from a monthly budget's `BudgetStatus::projected_end_of_period`)
    /// with [`AlertMessage::with_projection`].
    pub fn from_budget_alert(alert: &BudgetAlert, zone: &Zone) -> AlertMessage {
        AlertMessage::new(
            alert.budget.clone(),
            AlertScope::from(&alert.scope),
            alert.period,
            alert.period_label.clone(),
            alert.threshold,
            alert.spent,
            alert.limit,
            alert.currency,
            time_in_zone(alert.timestamp, zone),
        )
    }

    /// Adds the month's projected spend.
    pub fn with_projection(mut self, projected_month: Money) -> AlertMessage {
        self.projected_month = Some(projected_month);
        self
    }

    /// Adds the dashboard link (trailing `/` trimmed).
    pub fn with_public_url(mut self, public_url: impl Into<String>) -> AlertMessage {
        let url: String = public_url.into();
        let url = url.trim().trim_end_matches('/').to_string();
        self.public_url = (!url.is_empty()).then_some(url);
        self
    }

    /// The idempotency key of (budget, period, threshold): the first 16
    /// bytes of SHA-256 over `budget \n period_label \n threshold`, in hex.
    pub fn alert_id(budget: &str, period_label: &str, threshold: u32) -> String {
        let digest = Sha256::digest(format!("{budget}\n{period_label}\n{threshold}").as_bytes());
        hex::encode(&digest[..16])
    }

    /// `spent / limit` in percent with two decimals (`None` for a zero limit).
    pub fn percent(&self) -> Option<String> {
        if self.limit.nanos() <= 0 {
            return None;
        }
        // Hundredths of a percent, exact: spent * 10_000 / limit.
        let hundredths = self.spent.mul_div(10_000, self.limit.nanos())?.nanos();
        let sign = if hundredths < 0 { "-" } else { "" };
        let abs = hundredths.unsigned_abs();
        Some(format!("{sign}{}.{:02}", abs / 100, abs % 100))
    }

    /// The one-line title: `预算提醒：每日总预算 已达 80%` /
    /// `Budget warning: 每日总预算 reached 80%`.
    pub fn title(&self, language: Language) -> String {
        let over = self.threshold >= 100;
        match language {
            Language::Zh => format!(
                "{}：{} 已达 {}%",
                if over { "预算超限" } else { "预算提醒" },
                self.budget,
                self.threshold
            ),
            Language::En => format!(
                "{}: {} reached {}%",
                if over {
                    "Budget exceeded"
                } else {
                    "Budget warning"
                },
                self.budget,
                self.threshold
            ),
        }
    }

    /// (label, value) lines of the message body, in order.
    fn lines(&self, language: Language) -> Vec<(&'static str, String)> {
        let money = |m: Money| format_money(m, self.currency);
        let percent = self
            .percent()
            .map(|p| format!("（{p}%）"))
            .unwrap_or_default();
        let mut lines = vec![
            (
                pick(language, "范围", "Scope"),
                self.scope.describe(language),
            ),
            (
                pick(language, "周期", "Period"),
                format!(
                    "{}{}",
                    self.period_label,
                    period_name(self.period, language)
                ),
            ),
            match language {
                Language::Zh => (
                    "已花费",
                    format!(
                        "{} / 预算 {}{percent}",
                        money(self.spent),
                        money(self.limit)
                    ),
                ),
                Language::En => (
                    "Spent",
                    format!(
                        "{} of {}{}",
                        money(self.spent),
                        money(self.limit),
                        self.percent()
                            .map(|p| format!(" ({p}%)"))
                            .unwrap_or_default()
                    ),
                ),
            },
        ];
        if let Some(p) = self.projected_month {
            lines.push((pick(language, "本月预计", "Month projection"), money(p)));
        }
        lines.push((
            pick(language, "时间", "Time"),
            self.time.format("%Y-%m-%d %H:%M:%S %:z").to_string(),
        ));
        lines
    }

    fn link_label(language: Language) -> &'static str {
        pick(language, "看板", "Dashboard")
    }

    /// Plain text (Feishu `text`, Slack): the title, then one `label：value`
    /// line each.
    pub fn text(&self, language: Language) -> String {
        let sep = pick(language, "：", ": ");
        let mut out = self.title(language);
        for (label, value) in self.lines(language) {
            out.push_str(&format!("\n{label}{sep}{value}"));
        }
        if let Some(url) = &self.public_url {
            out.push_str(&format!("\n{}{sep}{url}", Self::link_label(language)));
        }
        out
    }

    /// Markdown (DingTalk, WeCom, Feishu cards): a bold title and one
    /// `**label**：value` line each, separated by blank lines because
    /// DingTalk drops single newlines.
    pub fn markdown(&self, language: Language) -> String {
        let sep = pick(language, "：", ": ");
        let mut out = format!("**{}**", self.title(language));
        for (label, value) in self.lines(language) {
            out.push_str(&format!("\n\n**{label}**{sep}{value}"));
        }
        if let Some(url) = &self.public_url {
            let label = pick(language, "打开看板", "Open dashboard");
            out.push_str(&format!("\n\n[{label}]({url})"));
        }
        out
    }
}

/// Amounts written as exact decimal strings (`"40.123456789"`): the outbox
/// reads its lines back through serde's buffered path, where a JSON number
/// becomes an `f64` and loses nano-units. Reading accepts both forms.
pub(crate) mod money_text {
    use ai_usage_core::Money;
    use serde::Serializer;

    pub fn amount<S: Serializer>(m: &Money, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&m.to_string())
    }

    pub fn optional<S: Serializer>(m: &Option<Money>, s: S) -> Result<S::Ok, S::Error> {
        match m {
            Some(m) => s.serialize_some(&m.to_string()),
            None => s.serialize_none(),
        }
    }
}

fn pick(language: Language, zh: &'static str, en: &'static str) -> &'static str {
    match language {
        Language::Zh => zh,
        Language::En => en,
    }
}

fn period_name(period: BudgetPeriod, language: Language) -> &'static str {
    match period {
        BudgetPeriod::Daily => pick(language, "（日）", " (daily)"),
        BudgetPeriod::Monthly => pick(language, "（月）", " (monthly)"),
    }
}

/// `timestamp` (epoch seconds) as a time in `zone`.
pub fn time_in_zone(timestamp: f64, zone: &Zone) -> DateTime<FixedOffset> {
    let offset = FixedOffset::east_opt(zone.utc_offset_at(timestamp))
        .unwrap_or_else(|| chrono::Offset::fix(&chrono::Utc));
    let secs = timestamp.floor() as i64;
    let nanos = ((timestamp - timestamp.floor()) * 1e9) as u32;
    match offset.timestamp_opt(secs, nanos.min(999_999_999)) {
        chrono::LocalResult::Single(t) => t,
        _ => offset.from_utc_datetime(&chrono::DateTime::UNIX_EPOCH.naive_utc()),
    }
}

/// An amount for people: two decimals, up to four when the amount has them
/// (`¥40.50`, `¥0.0123`), with the currency's symbol (`¥`, `$`, `€`) or
/// after its code (`12.00 GBP`).
pub fn format_money(amount: Money, currency: Currency) -> String {
    let four = amount.round_dp(4);
    let digits = if four == four.round_dp(2) {
        2
    } else if four == four.round_dp(3) {
        3
    } else {
        4
    };
    let number = format!("{:.*}", digits, amount);
    let symbol = currency.symbol();
    if symbol == currency.code() {
        format!("{number} {symbol}")
    } else if let Some(abs) = number.strip_prefix('-') {
        format!("-{symbol}{abs}")
    } else {
        format!("{symbol}{number}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Money {
        s.parse().unwrap()
    }

    fn sample() -> AlertMessage {
        AlertMessage::new(
            "主播日预算",
            AlertScope::Anchor("anchor_001".into()),
            BudgetPeriod::Daily,
            "2026-12-07",
            100,
            m("50.1234567"),
            m("50"),
            Currency::CNY,
            DateTime::parse_from_rfc3339("2026-12-07T14:03:05+08:00").unwrap(),
        )
        .with_projection(m("1203"))
        .with_public_url("https://ai-usage.example.com/")
    }

    #[test]
    fn money_for_people_has_two_to_four_decimals() {
        assert_eq!(format_money(m("40.5"), Currency::CNY), "¥40.50");
        assert_eq!(format_money(m("0.0123"), Currency::USD), "$0.0123");
        assert_eq!(format_money(m("0.012"), Currency::USD), "$0.012");
        assert_eq!(format_money(m("0.01234567"), Currency::CNY), "¥0.0123");
        assert_eq!(
            format_money(m("12"), Currency::new("GBP").unwrap()),
            "12.00 GBP"
        );
        assert_eq!(format_money(m("-3.5"), Currency::CNY), "-¥3.50");
    }

    #[test]
    fn ids_depend_on_budget_period_and_threshold_only() {
        let a = AlertMessage::alert_id("b", "2026-12-07", 80);
        assert_eq!(a, AlertMessage::alert_id("b", "2026-12-07", 80));
        assert_ne!(a, AlertMessage::alert_id("b", "2026-12-07", 100));
        assert_ne!(a, AlertMessage::alert_id("b", "2026-12-08", 80));
        assert_ne!(a, AlertMessage::alert_id("c", "2026-12-07", 80));
        assert_eq!(
            sample().id,
            AlertMessage::alert_id("主播日预算", "2026-12-07", 100)
        );
    }

    #[test]
    fn renders_chinese_and_english() {
        let zh = sample().text(Language::Zh);
        assert_eq!(
            zh,
            "预算超限：主播日预算 已达 100%\n范围：主播 anchor_001\n周期：2026-12-07（日）\n\
             已花费：¥50.1235 / 预算 ¥50.00（100.25%）\n本月预计：¥1203.00\n\
             时间：2026-12-07 14:03:05 +08:00\n看板：https://ai-usage.example.com"
        );
        let en = sample().text(Language::En);
        assert!(
            en.starts_with("Budget exceeded: 主播日预算 reached 100%\nScope: anchor anchor_001\n")
        );
        assert!(
            en.contains("\nSpent: ¥50.1235 of ¥50.00 (100.25%)\n"),
            "{en}"
        );
        assert!(en.contains("\nMonth projection: ¥1203.00\n"), "{en}");
        let md = sample().markdown(Language::Zh);
        assert!(md.starts_with("**预算超限：主播日预算 已达 100%**\n\n**范围**：主播 anchor_001"));
        assert!(
            md.ends_with("[打开看板](https://ai-usage.example.com)"),
            "{md}"
        );
    }

    #[test]
    fn from_core_alert_keeps_every_field() {
        let alert = BudgetAlert {
            budget: "月度".into(),
            scope: BudgetScope::Model("qwen-max".into()),
            period: BudgetPeriod::Monthly,
            period_label: "2026-12".into(),
            threshold: 80,
            spent: m("800.5"),
            limit: m("1000"),
            percent: 80.05,
            currency: Currency::CNY,
            timestamp: 1_796_000_000.0,
            model: "qwen-max".into(),
            function: "f".into(),
        };
        let zone: Zone = "+08:00".parse().unwrap();
        let msg = AlertMessage::from_budget_alert(&alert, &zone);
        assert_eq!(msg.scope, AlertScope::Model("qwen-max".into()));
        assert_eq!(msg.spent, m("800.5"));
        assert_eq!(msg.percent().as_deref(), Some("80.05"));
        assert_eq!(msg.time.offset().local_minus_utc(), 8 * 3600);
        assert_eq!(msg.time.timestamp(), 1_796_000_000);
        assert_eq!(msg.id, AlertMessage::alert_id("月度", "2026-12", 80));
    }
}
