//! `report`.

use serde::Serialize;

use crate::args::{Cli, Format, ReportArgs};
use std::io::Write;

use crate::context::{answers, budgets_file, print_json, zone};
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
    // The report's `budgets` section shows the budgets file's budgets (on
    // the whole fleet's spend from ClickHouse).
    let path = budgets_file(cli);
    let budgets = if path.exists() {
        ai_usage_core::load_budgets_file(&path)?
    } else {
        Vec::new()
    };
    let answers = answers(cli, Some(from), budgets)?;
    if a.bom && a.format == Format::Json {
        return Err(CliError::usage("--bom applies to the CSV formats only"));
    }
    let q = answers.queries.as_ref();
    let out = a.output.as_deref();
    // Written where and as a local monitor writes its exports.
    let stamp = zone(cli)
        .local(ai_usage_core::now_timestamp())
        .format("%Y%m%d_%H%M%S")
        .to_string();
    let (from, to) = q.last_days(a.days);
    let (written, format) = match a.format {
        Format::Json => (
            q.usage_report(a.days)?.write_json(&cli.dir, &stamp, out)?,
            "json",
        ),
        Format::Csv => (
            ai_usage_core::write_export(
                &cli.dir,
                &stamp,
                out,
                "usage_daily",
                "csv",
                &q.daily_csv(from, to, a.bom)?,
            )?,
            "csv",
        ),
        Format::Records => (
            // Streamed into the temporary file: the export may be far
            // larger than what is worth holding in memory.
            ai_usage_core::write_export_with(
                &cli.dir,
                &stamp,
                out,
                "usage_records",
                "csv",
                |f| -> CliResult<()> {
                    let mut buf = std::io::BufWriter::new(f);
                    q.write_records_csv(from, to, a.bom, &mut buf)?;
                    buf.flush().map_err(|e| {
                        CliError::failed(format!("cannot write the records export: {e}"))
                    })
                },
            )?,
            "records",
        ),
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
