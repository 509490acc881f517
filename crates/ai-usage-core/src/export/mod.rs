//! Reports: the seed's JSON usage report and two CSV exports.
//!
//! - `UsageMonitor::export_report`: `usage_report_YYYYMMDD_HHMMSS.json` with
//!   the seed's `generated_at`, `period_days`, `today_summary`, `top_users`,
//!   `cost_trend`, plus `period_summary`, `by_anchor`, `forecast`, `budgets`
//!   and `savings` ([`UsageReport`], built by the monitor).
//! - `UsageMonitor::export_csv`: one row per day × model × function
//!   ([`daily_csv`], module `csv`).
//! - `UsageMonitor::export_records_csv`: the raw records of a date range,
//!   read from the day files ([`records_csv`]).
//!
//! This layer only formats and writes; the monitor gathers the figures.
//!
//! Files are written atomically (module `atomic`), so a reader never sees
//! half a report. A default file name never replaces an existing file:
//! `_1`, `_2`, … is appended instead.

mod atomic;
pub mod cell;
pub(crate) mod csv;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::budget::BudgetStatus;
use crate::error::{Error, Result};
use crate::query::{MonthForecast, RankEntry, SavingsReport, TrendPoint, UsageSummary};

pub use self::atomic::{write_atomic, write_atomic_with};
pub use self::csv::{daily_csv, daily_csv_header, records_csv, records_csv_header, RecordsCsv};

/// Rankings in a report list at most this many entries.
pub const REPORT_TOP: usize = 10;

/// The JSON usage report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageReport {
    /// Local time of generation, `YYYY-MM-DDTHH:MM:SS`.
    pub generated_at: String,
    /// Days covered (today included).
    pub period_days: u32,
    /// First local date of the period.
    pub from: String,
    /// Last local date of the period (today).
    pub to: String,
    /// The monitor's time zone.
    pub timezone: String,
    /// Today's summary (the seed's field).
    pub today_summary: UsageSummary,
    /// The whole period's summary.
    pub period_summary: UsageSummary,
    /// Top 10 users of the period by tokens (the seed's field).
    pub top_users: Vec<RankEntry>,
    /// Top 10 anchors (主播) of the period by cost.
    pub by_anchor: Vec<RankEntry>,
    /// Every day of the period, oldest first (the seed's field).
    pub cost_trend: Vec<TrendPoint>,
    /// This month's forecast.
    pub forecast: MonthForecast,
    /// Budgets in force and where they stand.
    pub budgets: Vec<BudgetStatus>,
    /// Savings advice for the period.
    pub savings: SavingsReport,
}

/// Writes an export to `path` (replacing it) or to a fresh default name
/// `dir/{prefix}_{stamp}.{ext}` (never replacing a file).
pub fn write_export(
    dir: &Path,
    stamp: &str,
    path: Option<&Path>,
    prefix: &str,
    ext: &str,
    bytes: &[u8],
) -> Result<PathBuf> {
    match path {
        Some(p) => write_atomic(p, bytes, false),
        None => {
            let p = dir.join(format!("{prefix}_{stamp}.{ext}"));
            write_atomic(&p, bytes, true)
        }
    }
}

/// [`write_export`] with the content written by `fill` straight into the
/// temporary file (for exports too large to hold in memory); nothing is
/// written at the final name when `fill` fails.
pub fn write_export_with<E: From<Error>>(
    dir: &Path,
    stamp: &str,
    path: Option<&Path>,
    prefix: &str,
    ext: &str,
    fill: impl FnOnce(&mut std::fs::File) -> std::result::Result<(), E>,
) -> std::result::Result<PathBuf, E> {
    match path {
        Some(p) => write_atomic_with(p, false, fill),
        None => {
            let p = dir.join(format!("{prefix}_{stamp}.{ext}"));
            write_atomic_with(&p, true, fill)
        }
    }
}

impl UsageReport {
    /// Writes the report as pretty JSON to `path` (replaced atomically) or to
    /// `dir/usage_report_{stamp}.json` (never replacing a file), as
    /// `UsageMonitor::export_report` does; for reports built elsewhere (e.g.
    /// from a fleet database).
    pub fn write_json(&self, dir: &Path, stamp: &str, path: Option<&Path>) -> Result<PathBuf> {
        write_export(
            dir,
            stamp,
            path,
            "usage_report",
            "json",
            &report_json(self)?,
        )
    }
}

/// The JSON text of a report (pretty-printed).
pub fn report_json(report: &UsageReport) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(report).map_err(|e| Error::Config {
        setting: "report",
        message: format!("cannot serialise the report: {e}"),
    })
}
