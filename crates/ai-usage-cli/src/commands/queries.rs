//! `session`, `top-users`, `top-anchors`, `trend`, `forecast`, `savings`, `budgets`.

use ai_usage_core::load_budgets_file;
use ai_usage_core::{RankBy, RankKind};

use crate::args::{By, Cli, DaysArgs, TopArgs};
use crate::commands::resolve_days;
use crate::context::{answers, budgets_file, print_json, zone};
use crate::output::{costs, int, local_time, money, printable, table};
use crate::{CliError, CliResult};

pub fn session(cli: &Cli, id: &str) -> CliResult {
    let answers = answers(cli, session_date(id), Vec::new())?;
    let s = answers.queries.session(id)?.ok_or_else(|| {
        CliError::failed(format!("session {id:?} not found in {}", answers.origin))
    })?;
    if cli.json {
        return print_json(&s);
    }
    let z = zone(cli);
    outln!("会话 session {}{}", printable(&s.session_id), answers.mark);
    let mut t = table(&["指标 metric", "值 value"], &[1]);
    let mins = s.duration_seconds / 60.0;
    for (k, v) in [
        (
            "主播 anchor",
            s.anchor_id.clone().unwrap_or_else(|| "-".into()),
        ),
        ("用户 user", s.user_id.clone().unwrap_or_else(|| "-".into())),
        ("开始 first call", local_time(&z, s.first_call)),
        ("结束 last call", local_time(&z, s.last_call)),
        ("时长 duration", format!("{mins:.0} min")),
        (
            "调用次数 calls",
            format!("{} ({} ok)", int(s.calls), int(s.successful_calls)),
        ),
        (
            "Token",
            format!(
                "{} (in {} / out {})",
                int(s.total_tokens),
                int(s.input_tokens),
                int(s.output_tokens)
            ),
        ),
        ("费用 cost", costs(&s.costs, s.currency)),
    ] {
        t.add_row(vec![k.to_string(), v]);
    }
    outln!("{t}");
    let mut m = table(&["模型 / 功能", "调用 calls"], &[1]);
    for (name, n) in s.models.iter().chain(s.functions.iter()) {
        m.add_row(vec![name.clone(), int(*n)]);
    }
    outln!("{m}");
    Ok(())
}

pub fn top(cli: &Cli, a: &TopArgs, kind: RankKind) -> CliResult {
    let today = zone(cli).today();
    let (from, to) = resolve_days(&a.range, today, 7)?;
    let by = match a.by {
        By::Tokens => RankBy::Tokens,
        By::Cost => RankBy::Cost,
        By::Calls => RankBy::Calls,
    };
    let answers = answers(cli, Some(from), Vec::new())?;
    let rows = answers.queries.top(kind, from, to, by, a.limit)?;
    if cli.json {
        return print_json(&rows);
    }
    let (label, col) = match kind {
        RankKind::User => ("Top 用户 users", "用户 user_id"),
        RankKind::Anchor => ("Top 主播 anchors", "主播 anchor_id"),
        RankKind::Function => ("Top 功能 functions", "功能 function"),
        RankKind::Model => ("Top 模型 models", "模型 model"),
    };
    outln!("{label} {from} – {to}{}", answers.mark);
    let mut t = table(
        &["#", col, "调用 calls", "Token", "费用 cost"],
        &[0, 2, 3, 4],
    );
    for (i, r) in rows.iter().enumerate() {
        t.add_row(vec![
            (i + 1).to_string(),
            r.id.clone(),
            int(r.calls),
            int(r.tokens),
            costs(&r.costs, r.currency),
        ]);
    }
    if rows.is_empty() {
        outln!("(无数据 no data)");
    } else {
        outln!("{t}");
    }
    Ok(())
}

pub fn trend(cli: &Cli, range: &DaysArgs) -> CliResult {
    let today = zone(cli).today();
    let (from, to) = resolve_days(range, today, 30)?;
    let answers = answers(cli, Some(from), Vec::new())?;
    let points = answers.queries.trend(from, to)?;
    if cli.json {
        return print_json(&points);
    }
    outln!("成本趋势 cost trend {from} – {to}{}", answers.mark);
    let max = points
        .iter()
        .map(|p| p.cost.nanos())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut t = table(
        &["日期 date", "调用 calls", "Token", "费用 cost", ""],
        &[1, 2, 3],
    );
    for p in &points {
        // A bar of the main-currency cost, for the eye only.
        let width = (p.cost.nanos().max(0) as i128 * 30 / max as i128) as usize;
        t.add_row(vec![
            p.date.clone(),
            int(p.calls),
            int(p.tokens),
            costs(&p.costs, p.currency),
            "█".repeat(width),
        ]);
    }
    outln!("{t}");
    Ok(())
}

pub fn forecast(cli: &Cli) -> CliResult {
    let answers = answers(cli, None, Vec::new())?;
    let f = answers.queries.forecast()?;
    if cli.json {
        return print_json(&f);
    }
    outln!("本月费用预测 forecast {}{}", f.month, answers.mark);
    let mut t = table(&["指标 metric", "值 value"], &[1]);
    for (k, v) in [
        ("本月至今 month to date", money(f.month_to_date, f.currency)),
        (
            "日均 avg daily",
            format!(
                "{} ({} days basis)",
                money(f.avg_daily_cost, f.currency),
                f.basis_days
            ),
        ),
        ("剩余天数 remaining days", f.remaining_days.to_string()),
        ("预测本月 projected", money(f.projected_total, f.currency)),
    ] {
        t.add_row(vec![k.to_string(), v]);
    }
    outln!("{t}");
    outln!("{}", f.basis);
    Ok(())
}

pub fn savings(cli: &Cli, days: u32) -> CliResult {
    let today = zone(cli).today();
    let oldest = today - chrono::Duration::days(days as i64 - 1);
    let answers = answers(cli, Some(oldest), Vec::new())?;
    let report = answers.queries.savings(days)?;
    if cli.json {
        return print_json(&report);
    }
    outln!(
        "成本优化建议 savings advice {} – {} ({} days){}",
        report.from,
        report.to,
        report.period_days,
        answers.mark
    );
    if report.functions.is_empty() {
        outln!("(无数据 no priced calls in the period)");
        return Ok(());
    }
    let mut t = table(
        &[
            "功能 function",
            "当前 current",
            "建议 switch to",
            "费用 new cost",
            "节省 saving",
            "调用减半 halve calls",
        ],
        &[3, 4, 5],
    );
    for f in &report.functions {
        let current = f
            .current_models
            .iter()
            .map(|m| m.model.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let half = format!("-{} (50%)", money(f.halve_frequency.saving, f.currency));
        let cur_cost = vec![current, money(f.current_cost, f.currency)];
        match f.alternatives.first() {
            Some(best) => {
                let others: Vec<String> = f
                    .alternatives
                    .iter()
                    .skip(1)
                    .take(2)
                    .map(|a| format!("{} -{:.0}%", a.model, a.saving_pct))
                    .collect();
                let mut name = vec![format!("{} ({})", best.model, best.display_name)];
                if best.approximate {
                    name[0].push_str(" ≈");
                }
                if !others.is_empty() {
                    name.push(format!("或 {}", others.join(", ")));
                }
                t.add_row_of_lines(vec![
                    vec![f.function.clone()],
                    cur_cost,
                    name,
                    vec![money(best.cost, f.currency)],
                    vec![format!(
                        "-{} ({:.1}%)",
                        money(best.saving, f.currency),
                        best.saving_pct
                    )],
                    vec![half],
                ]);
            }
            None => {
                t.add_row_of_lines(vec![
                    vec![f.function.clone()],
                    cur_cost,
                    vec!["(已最便宜 cheapest)".into()],
                    vec!["-".into()],
                    vec!["-".into()],
                    vec![half],
                ]);
            }
        }
    }
    outln!("{t}");
    outln!("注: 按平均单次调用估算 (≈: tiered price, approximate); quality not considered.");
    for f in &report.functions {
        if !f.unverified_baseline.is_empty() {
            outln!(
                "注: {} 的当前费用按未核实价格计算 compares against an unverified price: {}",
                f.function,
                f.unverified_baseline.join(", ")
            );
        }
        if !f.unverified_left_out.is_empty() {
            outln!(
                "注: {} — cheaper at unverified prices, left out: {}",
                f.function,
                f.unverified_left_out.join(", ")
            );
        }
    }
    Ok(())
}

pub fn budgets(cli: &Cli) -> CliResult {
    // A read command: the records directory must exist, budgets file or
    // not (unless the answers come from ClickHouse). From ClickHouse: the
    // same budgets on the whole fleet's spend.
    let path = budgets_file(cli);
    let list = if path.exists() {
        load_budgets_file(&path)?
    } else {
        Vec::new()
    };
    let answers = answers(cli, None, list)?;
    if !path.exists() {
        if cli.budgets.is_some() {
            return Err(CliError::failed(format!(
                "budgets file {} does not exist",
                path.display()
            )));
        }
        if cli.json {
            return print_json(&Vec::<()>::new());
        }
        outln!(
            "未配置预算 no budgets: create {} (its format: `ai-usage budgets --help`)",
            path.display()
        );
        return Ok(());
    }
    let status = answers.queries.budget_status()?;
    if cli.json {
        return print_json(&status);
    }
    outln!("预算 budgets ({}){}", path.display(), answers.mark);
    let mut t = table(
        &[
            "预算 budget",
            "范围 scope",
            "周期 period",
            "已用 spent",
            "限额 limit",
            "%",
            "剩余 remaining",
            "预计 projected",
            "已触发 fired",
        ],
        &[3, 4, 5, 6, 7],
    );
    for s in &status {
        let fired = if s.thresholds_fired.is_empty() {
            "-".to_string()
        } else {
            s.thresholds_fired
                .iter()
                .map(|t| format!("{t}%"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        t.add_row(vec![
            s.name.clone(),
            s.scope.to_string(),
            s.period_label.clone(),
            money(s.spent, s.currency),
            money(s.limit, s.currency),
            format!("{:.1}%", s.percent),
            money(s.remaining, s.currency),
            money(s.projected_end_of_period, s.currency),
            fired,
        ]);
    }
    outln!("{t}");
    super::notify::print_digest(cli)?;
    super::notify::print_deliveries(cli)?;
    Ok(())
}

/// The day a session id like `live_20251026_193000` names (the demo's and
/// the original guide's form), a day before it for a broadcast that started
/// near midnight in another zone: an older session is then still found.
fn session_date(id: &str) -> Option<chrono::NaiveDate> {
    let digits = id
        .split('_')
        .find(|p| p.len() == 8 && p.bytes().all(|b| b.is_ascii_digit()))?;
    let date = chrono::NaiveDate::parse_from_str(digits, "%Y%m%d").ok()?;
    date.pred_opt()
}
