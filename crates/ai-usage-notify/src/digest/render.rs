//! The digest for people: Chinese or English, as plain text (Feishu
//! `text`), Slack `mrkdwn`, or markdown (DingTalk, WeCom, Feishu cards).

use ai_usage_core::{Currency, Money};

use super::report::{Amount, DigestMessage, TopEntry};
use super::schedule::DigestSchedule;
use crate::config::Language;
use crate::message::format_money;

impl DigestMessage {
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
    use super::super::report::tests::sample;
    use super::*;

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
}
