//! `report`.

use serde::Serialize;

use crate::args::{Cli, Format, ReportArgs};
use crate::context::{budgets_file, open_read, print_json, zone};
use crate::{CliError, CliResult};

/// What `report --json` prints.
#[derive(Serialize)]
struct Written {
    success: bool,
    report_path: String,
    format: &'static str,
    period_days: u32,
}

pub fn run(cli: &Cli, a: &ReportArgs) -> CliResult {
    let today = zone(cli).today();
    let from = today - chrono::Duration::days(a.days as i64 - 1);
    let monitor = open_read(cli, Some(from))?;
    // The report's `budgets` section shows the budgets file's budgets.
    let budgets = budgets_file(cli);
    if budgets.exists() {
        monitor.add_budgets(ai_usage_core::load_budgets_file(&budgets)?)?;
    }
    if a.bom && a.format == Format::Json {
        return Err(CliError::usage("--bom applies to the CSV formats only"));
    }
    let out = a.output.as_deref();
    let (path, format) = match a.format {
        Format::Json => (monitor.export_report(out, a.days)?, "json"),
        Format::Csv => (monitor.export_csv(out, a.days, a.bom)?, "csv"),
        Format::Records => (
            monitor.export_records_csv(out, from, today, a.bom)?,
            "records",
        ),
    };
    if cli.json {
        return print_json(&Written {
            success: true,
            report_path: path.display().to_string(),
            format,
            period_days: a.days,
        });
    }
    println!("报告已导出 report written: {}", path.display());
    Ok(())
}
