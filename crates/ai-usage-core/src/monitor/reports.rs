//! Reports and exports of a monitor: it gathers the figures (queries,
//! budgets, savings) and the export layer formats and writes them.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::error::Result;
use crate::export::{self, UsageReport, REPORT_TOP};
use crate::query::{RankBy, RankKind};

use super::UsageMonitor;

impl UsageMonitor {
    /// The report of the last `days` days (today included), without writing it.
    pub fn usage_report(&self, days: u32) -> UsageReport {
        let days = days.max(1);
        let (from, to) = self.last_days(days);
        UsageReport {
            generated_at: self.local_now("%Y-%m-%dT%H:%M:%S"),
            period_days: days,
            from: from.format("%Y-%m-%d").to_string(),
            to: to.format("%Y-%m-%d").to_string(),
            timezone: self.zone().to_string(),
            today_summary: self.get_daily_summary(0),
            // `from <= to` and the span is `days`: the range is always valid.
            period_summary: self
                .get_range_summary(from, to)
                .unwrap_or_else(|_| self.get_daily_summary(0)),
            top_users: self.top(RankKind::User, from, to, RankBy::Tokens, REPORT_TOP),
            by_anchor: self.top(RankKind::Anchor, from, to, RankBy::Cost, REPORT_TOP),
            cost_trend: self.get_cost_trend(days),
            forecast: self.forecast(),
            budgets: self.budget_status(),
            savings: self.savings(days),
        }
    }

    /// Writes the JSON report of the last `days` days to `path`, or to
    /// `DIR/usage_report_YYYYMMDD_HHMMSS.json` (never replacing a file).
    /// An explicit path is replaced atomically; its directory is created.
    pub fn export_report(&self, path: Option<&Path>, days: u32) -> Result<PathBuf> {
        let json = export::report_json(&self.usage_report(days))?;
        self.write_export(path, "usage_report", "json", &json)
    }

    /// Writes one CSV row per day × model × function of the last `days` days
    /// (columns [`daily_csv_header`](crate::daily_csv_header)) to `path` or
    /// `DIR/usage_daily_….csv`.
    ///
    /// A group with costs in several currencies (explicit costs only) gets
    /// one extra row per other currency with zero calls and tokens, so
    /// column sums stay right and currencies are never added.
    ///
    /// `bom` starts the file with a UTF-8 byte order mark, which Excel needs
    /// to show Chinese names right; other tools usually do not want it, so
    /// callers pass `false` unless the file is meant for Excel.
    pub fn export_csv(&self, path: Option<&Path>, days: u32, bom: bool) -> Result<PathBuf> {
        let (from, to) = self.last_days(days);
        let csv = self.daily_csv(from, to, bom)?;
        self.write_export(path, "usage_daily", "csv", &csv)
    }

    /// The CSV bytes of [`UsageMonitor::export_csv`] for the days `from..=to`.
    pub fn daily_csv(&self, from: NaiveDate, to: NaiveDate, bom: bool) -> Result<Vec<u8>> {
        let pricing = self.pricing();
        let rollups = self.rollups();
        export::daily_csv(
            &rollups,
            &pricing,
            self.config().reporting_currency,
            from,
            to,
            bom,
        )
    }

    /// Writes the raw records of the local days `from..=to` (read from the
    /// day files, after a flush) as CSV (columns
    /// [`records_csv_header`](crate::records_csv_header)) to `path` or
    /// `DIR/usage_records_….csv`; `bom` as for [`UsageMonitor::export_csv`].
    pub fn export_records_csv(
        &self,
        path: Option<&Path>,
        from: NaiveDate,
        to: NaiveDate,
        bom: bool,
    ) -> Result<PathBuf> {
        if let Err(e) = self.flush() {
            // Still export what is on disk; say that recent records may be missing.
            tracing::warn!(error = %e, "exporting records without a successful flush");
        }
        let csv = export::records_csv(self.dir(), &self.zone(), from, to, bom)?;
        self.write_export(path, "usage_records", "csv", &csv)
    }

    /// Writes an export to `path` (replacing it) or to a fresh default name
    /// stamped with the local time in the monitor's zone.
    fn write_export(
        &self,
        path: Option<&Path>,
        prefix: &str,
        ext: &str,
        bytes: &[u8],
    ) -> Result<PathBuf> {
        let stamp = self.local_now("%Y%m%d_%H%M%S");
        export::write_export(self.dir(), &stamp, path, prefix, ext, bytes)
    }
}
