//! `stats daily|hourly|monthly`.

use ai_usage_core::UsageSummary;
use chrono::{Datelike, NaiveDate};

use crate::args::{Cli, Period, StatsArgs};
use crate::context::{answers, print_json, zone};
use crate::output::{costs, groups_table, int, local_time, table};
use crate::{CliError, CliResult};

pub fn run(cli: &Cli, a: &StatsArgs) -> CliResult {
    // Options that belong to another period are mistakes, not hints.
    let wrong = |flag: &str| {
        CliError::usage(format!(
            "{flag} does not apply to `stats {}`",
            period_name(a.period)
        ))
    };
    match a.period {
        Period::Daily if a.hours_ago.is_some() => return Err(wrong("--hours-ago")),
        Period::Daily if a.hour.is_some() => return Err(wrong("--hour")),
        Period::Hourly if a.days_ago.is_some() => return Err(wrong("--days-ago")),
        Period::Monthly if a.days_ago.is_some() || a.hours_ago.is_some() || a.date.is_some() => {
            return Err(wrong("--days-ago/--hours-ago/--date (use --month)"))
        }
        Period::Daily | Period::Hourly if a.month.is_some() => return Err(wrong("--month")),
        _ => {}
    }
    let z = zone(cli);
    let today = z.today();
    let oldest = match (a.period, a.date, a.month, a.days_ago) {
        (_, Some(d), _, _) => Some(d),
        (_, _, Some((y, m)), _) => NaiveDate::from_ymd_opt(y, m, 1),
        (_, _, _, Some(n)) => Some(today - chrono::Duration::days(n as i64)),
        _ => None,
    };
    let answers = answers(cli, oldest, Vec::new())?;
    let q = answers.queries.as_ref();
    let (summary, title) = match a.period {
        Period::Daily => {
            let date = a
                .date
                .unwrap_or_else(|| today - chrono::Duration::days(a.days_ago.unwrap_or(0) as i64));
            (
                q.summary_for_date(date)?,
                format!("每日统计 daily {date}{}", answers.mark),
            )
        }
        Period::Hourly => match (a.date, a.hour) {
            (Some(date), Some(hour)) => (
                q.summary_for_hour(date, hour)?,
                format!("每小时统计 hourly {date} {hour:02}:00{}", answers.mark),
            ),
            (Some(_), None) => {
                return Err(CliError::usage("`stats hourly --date` needs --hour 0-23"))
            }
            _ => {
                let s = q.hourly_summary(a.hours_ago.unwrap_or(0))?;
                let title = format!(
                    "每小时统计 hourly {}{}",
                    local_time(&z, s.start_time),
                    answers.mark
                );
                (s, title)
            }
        },
        Period::Monthly => {
            let (y, m) = a.month.unwrap_or((today.year(), today.month()));
            (
                q.monthly_summary(y, m)?,
                format!("每月统计 monthly {y}-{m:02}{}", answers.mark),
            )
        }
    };
    if cli.json {
        return print_json(&summary);
    }
    print_summary(&title, &z.to_string(), &summary)
}

fn period_name(p: Period) -> &'static str {
    match p {
        Period::Daily => "daily",
        Period::Hourly => "hourly",
        Period::Monthly => "monthly",
    }
}

/// The totals, then models, functions and anchors.
pub fn print_summary(title: &str, zone: &str, s: &UsageSummary) -> CliResult {
    outln!("{title} (时区 {zone})");
    let mut t = table(&["指标 metric", "值 value"], &[1]);
    t.add_row(vec!["调用次数 calls".to_string(), int(s.total_calls)]);
    t.add_row(vec![
        "成功率 success".to_string(),
        format!("{:.2}% ({} failed)", s.success_rate, s.failed_calls),
    ]);
    t.add_row(vec![
        "输入 Token input".to_string(),
        int(s.total_input_tokens),
    ]);
    t.add_row(vec![
        "输出 Token output".to_string(),
        int(s.total_output_tokens),
    ]);
    t.add_row(vec!["总 Token total".to_string(), int(s.total_tokens)]);
    t.add_row(vec!["费用 cost".to_string(), costs(&s.costs, s.currency)]);
    if let Some(c) = &s.converted_total {
        t.add_row(vec![
            format!("折合 converted ({})", c.currency),
            crate::output::money(c.total, c.currency),
        ]);
        for r in &c.rates_by_day {
            let days = if r.from == r.to {
                r.from.to_string()
            } else {
                format!("{}..{}", r.from, r.to)
            };
            let given = r
                .rate_date
                .map_or("--rate".to_owned(), |d| format!("rate of {d}"));
            t.add_row(vec![
                format!("  汇率 rate {days}"),
                format!("{} = {} ({given})", r.currency, r.rate),
            ]);
        }
        if !c.missing_rates.is_empty() {
            let list: Vec<String> = c.missing_rates.iter().map(|c| c.to_string()).collect();
            t.add_row(vec![
                "  无汇率 no rate".to_owned(),
                format!("{} (left out)", list.join(", ")),
            ]);
        }
    }
    t.add_row(vec![
        "平均耗时 avg / p95".to_string(),
        format!("{:.0} ms / {:.0} ms", s.avg_duration_ms, s.p95_duration_ms),
    ]);
    if s.unpriced_calls > 0 {
        t.add_row(vec![
            "未定价调用 unpriced".to_string(),
            int(s.unpriced_calls),
        ]);
    }
    outln!("{t}");
    for (label, col, map) in [
        ("按模型 by model", "模型 model", &s.by_model),
        ("按功能 by function", "功能 function", &s.by_function),
        ("按主播 by anchor (top 10)", "主播 anchor", &s.by_anchor),
    ] {
        if let Some(t) = groups_table(col, map.iter(), 10) {
            outln!("\n{label}");
            outln!("{t}");
        }
    }
    Ok(())
}
