//! `report`.

use serde::Serialize;

use crate::args::{Cli, Format, ReportArgs};
use crate::context::{budgets_file, fleet, fleet_error, open_read, print_json, zone};
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
    if let Some(f) = fleet(cli)? {
        return fleet_report(cli, a, &f);
    }
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
    outln!("报告已导出 report written: {}", path.display());
    Ok(())
}

/// `report --clickhouse`: the whole fleet's report, written like a local
/// one: the JSON report (the budgets file's budgets on the fleet's spend),
/// the daily CSV or the records CSV.
fn fleet_report(cli: &Cli, a: &ReportArgs, f: &ai_usage_clickhouse::FleetQueries) -> CliResult {
    if a.bom && a.format == Format::Json {
        return Err(CliError::usage("--bom applies to the CSV formats only"));
    }
    let out = a.output.as_deref();
    let (written, format) = match a.format {
        Format::Json => {
            let path = budgets_file(cli);
            let budgets = if path.exists() {
                ai_usage_core::load_budgets_file(&path)?
            } else {
                Vec::new()
            };
            let report = f.usage_report(a.days, &budgets).map_err(fleet_error)?;
            let stamp = zone(cli)
                .local(ai_usage_core::now_timestamp())
                .format("%Y%m%d_%H%M%S")
                .to_string();
            (report.write_json(&cli.dir, &stamp, out)?, "json")
        }
        Format::Csv => (
            f.export_csv(&cli.dir, out, a.days, a.bom)
                .map_err(fleet_error)?,
            "csv",
        ),
        Format::Records => {
            let (from, to) = f.last_days(a.days);
            (
                f.export_records_csv(&cli.dir, out, from, to, a.bom)
                    .map_err(fleet_error)?,
                "records",
            )
        }
    };
    if cli.json {
        return print_json(&Written {
            success: true,
            report_path: written.display().to_string(),
            format,
            period_days: a.days,
        });
    }
    outln!("报告已导出 report written: {}", written.display());
    Ok(())
}
