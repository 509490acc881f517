//! The subcommands.

mod compact;
mod cost;
mod notify;
mod pricing;
mod pricing_update;
mod queries;
mod record;
mod report;
mod reprice;
mod safety;
mod serve_fleet;
mod ship;
mod stats;

use chrono::NaiveDate;

use crate::args::{Cli, Command, DaysArgs};
use crate::{CliError, CliResult};

/// Runs the parsed command.
pub fn run(cli: Cli) -> CliResult {
    match &cli.command {
        Command::Stats(a) => stats::run(&cli, a),
        Command::Session { id } => queries::session(&cli, id),
        Command::TopUsers(a) => queries::top(&cli, a, ai_usage_core::RankKind::User),
        Command::TopAnchors(a) => queries::top(&cli, a, ai_usage_core::RankKind::Anchor),
        Command::Trend(a) => queries::trend(&cli, &a.range),
        Command::Report(a) => report::run(&cli, a),
        Command::Forecast => queries::forecast(&cli),
        Command::Savings { days } => queries::savings(&cli, *days),
        Command::Budgets { action: None } => queries::budgets(&cli),
        Command::Budgets {
            action: Some(crate::args::BudgetsAction::TestNotify { channel, digest }),
        } => {
            if *digest {
                notify::test_digest(&cli, channel)
            } else {
                notify::test_notify(&cli, channel)
            }
        }
        Command::Cost(a) => cost::run(&cli, a),
        Command::Pricing(a) => pricing::run(&cli, a),
        Command::Record(a) => record::record(&cli, a),
        Command::Demo { days, seed, append } => {
            safety::demo_target(&cli.dir, *append)?;
            record::demo(&cli, *days, *seed)
        }
        Command::Reprice(a) => reprice::run(&cli, a),
        Command::Serve(a) => {
            safety::serve_exposure(a)?;
            record::serve(&cli, a)
        }
        Command::Ship(a) => ship::run(&cli, a),
        Command::Compact(a) => compact::run(&cli, a),
    }
}

/// The days `--days N` or `--from A --to B` stand for (default: the last
/// `default_days` days), checked.
pub fn resolve_days(
    range: &DaysArgs,
    today: NaiveDate,
    default_days: u32,
) -> CliResult<(NaiveDate, NaiveDate)> {
    match (range.from, range.to) {
        (Some(from), Some(to)) => {
            if from > to {
                return Err(CliError::usage(format!("--from {from} is after --to {to}")));
            }
            Ok((from, to))
        }
        _ => {
            let days = range.days.unwrap_or(default_days).max(1);
            Ok((today - chrono::Duration::days(days as i64 - 1), today))
        }
    }
}
