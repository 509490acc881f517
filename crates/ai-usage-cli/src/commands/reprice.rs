//! `reprice`: corrects the cost of stored calls with the prices in force
//! now, by appending adjustments (usage files are never rewritten).

use std::collections::BTreeMap;

use ai_usage_core::adjustments::{plan_reprice, RepriceChange, RepricePlan, RepriceScope};
use ai_usage_core::{Costs, Money};
use chrono::NaiveDate;
use serde::Serialize;

use crate::args::{Cli, RepriceArgs};
use crate::context::{pricing, print_json};
use crate::output::{int, money, table};
use crate::{CliError, CliResult};

/// One line of the change: a day's calls of one model.
#[derive(Serialize)]
struct ChangeRow<'a> {
    day: NaiveDate,
    model: &'a str,
    #[serde(flatten)]
    change: &'a RepriceChange,
}

/// What `reprice --json` prints.
#[derive(Serialize)]
struct Report<'a> {
    dry_run: bool,
    /// Adjustments written (0 on a dry run).
    written: usize,
    calls_seen: u64,
    still_unpriced: u64,
    changes: Vec<ChangeRow<'a>>,
    total: RepriceChange,
}

pub fn run(cli: &Cli, a: &RepriceArgs) -> CliResult {
    if a.from > a.to {
        return Err(CliError::usage(format!(
            "--from {} is after --to {}",
            a.from, a.to
        )));
    }
    if !cli.dir.is_dir() {
        return Err(CliError::failed(format!(
            "records directory {} does not exist (set --dir or AI_USAGE_DIR)",
            cli.dir.display()
        )));
    }
    let table_in_force = pricing(cli)?;
    let scope = RepriceScope {
        from: a.from,
        to: a.to,
        only_unpriced: a.only_unpriced,
        model: a.model.clone(),
    };
    let plan = plan_reprice(&cli.dir, &table_in_force, &scope, chrono::Utc::now())?;
    if !a.dry_run {
        plan.write(&cli.dir)?;
    }
    let by = plan.by_day_and_model();
    if cli.json {
        return print_json(&Report {
            dry_run: a.dry_run,
            written: if a.dry_run { 0 } else { plan.len() },
            calls_seen: plan.calls_seen,
            still_unpriced: plan.still_unpriced,
            changes: by
                .iter()
                .map(|((day, model), change)| ChangeRow {
                    day: *day,
                    model,
                    change,
                })
                .collect(),
            total: plan.total(),
        });
    }
    print_plan(&plan, &by, a.dry_run, cli)
}

fn print_plan(
    plan: &RepricePlan,
    by: &BTreeMap<(NaiveDate, String), RepriceChange>,
    dry_run: bool,
    cli: &Cli,
) -> CliResult {
    let total = plan.total();
    if by.is_empty() {
        outln!(
            "nothing to re-price: {} calls looked at already carry the prices in force{}",
            int(plan.calls_seen),
            still(plan.still_unpriced)
        );
        return Ok(());
    }
    let mut out = table(
        &[
            "日期 day",
            "模型 model",
            "调用 calls",
            "新定价 newly priced",
            "变化 change",
        ],
        &[2, 3, 4],
    );
    for ((day, model), c) in by {
        out.add_row(vec![
            day.to_string(),
            model.clone(),
            int(c.calls),
            int(c.newly_priced),
            signed(&c.delta),
        ]);
    }
    out.add_row(vec![
        "合计 total".into(),
        String::new(),
        int(total.calls),
        int(total.newly_priced),
        signed(&total.delta),
    ]);
    outln!("{out}");
    if dry_run {
        outln!(
            "dry run: nothing written; without --dry-run, {} adjustments go to {}{}",
            int(plan.len() as u64),
            cli.dir.join("adjustments_YYYY-MM-DD.jsonl").display(),
            still(plan.still_unpriced)
        );
    } else {
        outln!(
            "wrote {} adjustments to {} (usage files unchanged){}",
            int(plan.len() as u64),
            cli.dir.join("adjustments_YYYY-MM-DD.jsonl").display(),
            still(plan.still_unpriced)
        );
    }
    Ok(())
}

/// A change per currency with its sign (`+$0.0120 -¥0.5000`).
fn signed(delta: &Costs) -> String {
    let parts: Vec<String> = delta
        .iter()
        .filter(|(_, m)| *m != Money::ZERO)
        .map(|(c, m)| {
            if m > Money::ZERO {
                format!("+{}", money(m, c))
            } else {
                format!("-{}", money(Money::ZERO - m, c))
            }
        })
        .collect();
    if parts.is_empty() {
        "0".to_owned()
    } else {
        parts.join(" ")
    }
}

fn still(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!("; {} calls still have no price", int(n))
    }
}
