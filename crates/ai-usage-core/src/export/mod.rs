//! Reports: the seed's JSON usage report and two CSV exports.
//!
//! - `UsageMonitor::export_report`: `usage_report_YYYYMMDD_HHMMSS.json` with
//!   the seed's `generated_at`, `period_days`, `today_summary`, `top_users`,
//!   `cost_trend`, plus `period_summary`, `by_anchor`, `forecast`, `budgets`
//!   and `savings` ([`UsageReport`], built by the monitor).
//! - `UsageMonitor::export_csv`: one row per day × model × function
//!   ([`daily_csv`]).
//! - `UsageMonitor::export_records_csv`: the raw records of a date range,
//!   read from the day files ([`records_csv`]).
//!
//! This layer only formats and writes; the monitor gathers the figures.
//!
//! Files are written atomically (a temporary file in the same directory,
//! then a rename), so a reader never sees half a report. A default file name
//! never replaces an existing file: `_1`, `_2`, … is appended instead.

pub mod cell;

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Serialize;

use crate::budget::BudgetStatus;
use crate::error::{Error, Result};
use crate::money::{Currency, Money};
use crate::pricing::PricingTable;
use crate::query::{
    main_currency, MonthForecast, RankEntry, SavingsReport, TrendPoint, UsageSummary,
};
use crate::record::UsageRecord;
use crate::rollups::{GroupStats, Rollups};
use crate::storage::dayfile;
use crate::zone::Zone;
use cell::neutralise_cell;

/// Rankings in a report list at most this many entries.
pub(crate) const REPORT_TOP: usize = 10;

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

/// Quotes a CSV field when it holds a comma, quote, CR or LF (RFC 4180):
/// the field is wrapped in quotes and inner quotes are doubled.
pub fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// Appends one CSV row (fields escaped, CRLF-free `\n` line end).
fn push_row<S: AsRef<str>>(out: &mut String, fields: &[S]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&csv_field(f.as_ref()));
    }
    out.push('\n');
}

/// Header of [`UsageMonitor::export_csv`](crate::UsageMonitor::export_csv).
pub const DAILY_CSV_HEADER: [&str; 10] = [
    "date",
    "model",
    "display_name",
    "function",
    "calls",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost",
    "currency",
];

/// Header of [`UsageMonitor::export_records_csv`](crate::UsageMonitor::export_records_csv).
pub const RECORDS_CSV_HEADER: [&str; 19] = [
    "timestamp",
    "local_time",
    "user_id",
    "anchor_id",
    "session_id",
    "model",
    "function",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cost",
    "currency",
    "duration_ms",
    "success",
    "error_msg",
    "request_id",
    "tags",
];

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced,
/// then renamed over it (or, with `no_clobber`, linked to a free name:
/// `path`, then `stem_1.ext`, `stem_2.ext`, …). Returns the final path.
pub fn write_atomic(path: &Path, bytes: &[u8], no_clobber: bool) -> Result<PathBuf> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create directory", &dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        fastrand::u32(..)
    ));
    let result = (|| {
        let mut f =
            std::fs::File::create(&tmp).map_err(|e| Error::io("cannot create file", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| Error::io("cannot write file", &tmp, e))?;
        f.sync_all()
            .map_err(|e| Error::io("cannot sync file", &tmp, e))?;
        drop(f);
        if !no_clobber {
            std::fs::rename(&tmp, path)
                .map_err(|e| Error::io("cannot rename temporary file to", path, e))?;
            return Ok(path.to_path_buf());
        }
        for n in 0..10_000u32 {
            let candidate = if n == 0 {
                path.to_path_buf()
            } else {
                suffixed(path, n)
            };
            // A hard link fails when the name exists: no race with another writer.
            match std::fs::hard_link(&tmp, &candidate) {
                Ok(()) => return Ok(candidate),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(_) if !candidate.exists() => {
                    // File systems without hard links: check, then rename.
                    std::fs::rename(&tmp, &candidate)
                        .map_err(|e| Error::io("cannot rename temporary file to", &candidate, e))?;
                    return Ok(candidate);
                }
                Err(_) => continue,
            }
        }
        Err(Error::Config {
            setting: "report path",
            message: format!("no free file name next to {}", path.display()),
        })
    })();
    // Gone after a rename; after a link the temporary name must go too.
    let _ = std::fs::remove_file(&tmp);
    result
}

/// `dir/stem_N.ext`.
fn suffixed(path: &Path, n: u32) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}_{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}_{n}"),
    };
    path.with_file_name(name)
}

/// One CSV row per day × model × function of the days `from..=to`
/// (columns [`DAILY_CSV_HEADER`]). A group with costs in several
/// currencies (explicit costs only) gets one extra row per other
/// currency with zero calls and tokens, so column sums stay right and
/// currencies are never added.
pub fn daily_csv(
    rollups: &Rollups,
    pricing: &PricingTable,
    reporting: Currency,
    from: NaiveDate,
    to: NaiveDate,
) -> String {
    let mut out = String::new();
    push_row(&mut out, &DAILY_CSV_HEADER);
    for (date, day) in rollups.days.range(from..=to) {
        let date = date.format("%Y-%m-%d").to_string();
        let mut rows: Vec<(&String, &String, &GroupStats)> = day
            .by_function_model
            .iter()
            .flat_map(|(f, models)| models.iter().map(move |(m, g)| (m, f, g)))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(b.1)));
        for (model, function, g) in rows {
            // Text cells come from callers: neutralise formulas (cell.rs).
            let display = neutralise_cell(&pricing.display_name(model)).into_owned();
            let (model, function) = (
                neutralise_cell(model).into_owned(),
                neutralise_cell(function).into_owned(),
            );
            let main = main_currency(&g.cost, reporting);
            let money_row = |calls: u64, i: u64, o: u64, t: u64, cost: Money, c: Currency| {
                [
                    date.clone(),
                    model.clone(),
                    display.clone(),
                    function.clone(),
                    calls.to_string(),
                    i.to_string(),
                    o.to_string(),
                    t.to_string(),
                    cost.to_string(),
                    c.code().to_string(),
                ]
            };
            push_row(
                &mut out,
                &money_row(
                    g.calls,
                    g.input_tokens,
                    g.output_tokens,
                    g.total_tokens,
                    g.cost.get(main),
                    main,
                ),
            );
            for (c, m) in g.cost.others(main) {
                push_row(&mut out, &money_row(0, 0, 0, 0, m, c));
            }
        }
    }
    out
}

/// The raw records of the local days `from..=to`, read from the day
/// files of `dir`, as CSV (columns [`RECORDS_CSV_HEADER`]); local times
/// in `zone`, currencies of records without one from `pricing`.
pub fn records_csv(
    dir: &Path,
    zone: &Zone,
    pricing: &PricingTable,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<String> {
    if from > to {
        return Err(Error::InvalidArgument {
            argument: "from",
            message: format!("{from} is after {to}"),
        });
    }
    let files: Vec<(NaiveDate, PathBuf)> = dayfile::list_day_files(dir)?
        .into_iter()
        .filter(|(d, _)| *d >= from && *d <= to)
        .collect();
    let mut out = String::new();
    push_row(&mut out, &RECORDS_CSV_HEADER);
    for (_, file) in files {
        let mut records: Vec<UsageRecord> = Vec::new();
        dayfile::read_day_file(&file, |r| records.push(r))?;
        records.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
        for r in records {
            let currency = r
                .currency
                .or_else(|| pricing.currency_of(&r.model))
                .unwrap_or(Currency::CNY);
            push_row(
                &mut out,
                &[
                    format!("{:.3}", r.timestamp),
                    zone.local(r.timestamp)
                        .format("%Y-%m-%d %H:%M:%S")
                        .to_string(),
                    // Text cells come from callers: neutralise formulas (cell.rs).
                    text_cell(r.user_id.unwrap_or_default()),
                    text_cell(r.anchor_id.unwrap_or_default()),
                    text_cell(r.session_id.unwrap_or_default()),
                    text_cell(r.model),
                    text_cell(r.function),
                    r.input_tokens.to_string(),
                    r.output_tokens.to_string(),
                    r.total_tokens.to_string(),
                    r.cached_input_tokens.to_string(),
                    r.reasoning_tokens.to_string(),
                    r.cost.to_string(),
                    currency.code().to_string(),
                    format!("{:.1}", r.duration_ms),
                    r.success.to_string(),
                    text_cell(r.error_msg.unwrap_or_default()),
                    text_cell(r.request_id.unwrap_or_default()),
                    text_cell(r.tags.join(";")),
                ],
            );
        }
    }
    Ok(out)
}

/// An owned text cell, neutralised against formula injection.
fn text_cell(s: String) -> String {
    match neutralise_cell(&s) {
        std::borrow::Cow::Borrowed(_) => s,
        std::borrow::Cow::Owned(n) => n,
    }
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

/// The JSON text of a report (pretty-printed).
pub fn report_json(report: &UsageReport) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(report).map_err(|e| Error::Config {
        setting: "report",
        message: format!("cannot serialise the report: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_escaping() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("实时分析"), "实时分析");
        let mut row = String::new();
        push_row(&mut row, &["x", "y,z", ""]);
        assert_eq!(row, "x,\"y,z\",\n");
    }

    #[test]
    fn atomic_write_never_clobbers_default_names() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        assert_eq!(write_atomic(&p, b"one", true).unwrap(), p);
        let second = write_atomic(&p, b"two", true).unwrap();
        assert_eq!(second, dir.path().join("r_1.json"));
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        assert_eq!(std::fs::read(&second).unwrap(), b"two");
        // Explicit paths are replaced.
        assert_eq!(write_atomic(&p, b"three", false).unwrap(), p);
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        // No temporary files left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
