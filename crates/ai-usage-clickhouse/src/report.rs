//! The fleet's CSV exports from ClickHouse: the same files, columns and
//! formula neutralising as the local monitor's `export_csv` and
//! `export_records_csv`, because the core's writers make them
//! ([`DayGroups::daily_csv`](ai_usage_core::DayGroups::daily_csv),
//! [`RecordsCsv`]); this module only reads the figures.
//!
//! - The daily CSV (one row per local day × model × function) comes from
//!   the same day-level groups as the fleet's dashboard and savings
//!   (`agg_model`, or `records FINAL` for zones with a non-whole-hour
//!   offset).
//! - The records CSV reads `records FINAL` one UTC day at a time, at most
//!   [`RECORDS_BATCH_ROWS`] rows per query (keyset pages on
//!   `(timestamp, host, file, offset)`), and `export_records_csv` writes
//!   each page straight into the report's temporary file, so memory does
//!   not grow with the table. Rows come in that order: by time, then host,
//!   day file and line, which is the local export's order over the hosts'
//!   files taken host by host.
//!
//! Every column of the local records CSV comes from `records`, the audio
//! token counts included (schema v5; rows shipped before v5 read 0). A
//! call corrected by a shipped adjustment shows its corrected cost, as in
//! the local export: its last adjustment's cost and currency, priced.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use std::sync::OnceLock;

use ai_usage_core::FieldSlot;
use ai_usage_core::{Currency, Money, RecordsCsv, UsageRecord};

/// A corrected call's cost and its currency.
type Cost = (Money, Currency);
use chrono::NaiveDate;

use crate::columns::field_columns;
use crate::error::{Error, Result};
use crate::queries::FleetQueries;
use crate::schema::{money_from_column, ADJUSTMENTS_TABLE};
use crate::tsv::quote;

/// Rows of `records` read per query by the records export.
pub const RECORDS_BATCH_ROWS: usize = 50_000;

/// The columns the records export selects: the record's fields as the
/// core's table declares them ([`field_columns`]), then the page key's
/// tie-breakers. [`record_of`] fills each field from its own column.
fn record_select() -> &'static str {
    static SELECT: OnceLock<String> = OnceLock::new();
    SELECT.get_or_init(|| {
        let mut s: Vec<&str> = field_columns().iter().map(|c| c.select.as_str()).collect();
        s.extend(["host", "file", "`offset`"]);
        s.join(", ")
    })
}

/// Where the last page ended: `(timestamp, host, file, offset)`.
struct PageKey {
    timestamp: f64,
    host: String,
    file: String,
    offset: u64,
}

impl PageKey {
    /// The filter of rows strictly after this key.
    fn after(&self) -> String {
        let (t, h, f, o) = (
            self.timestamp,
            quote(&self.host),
            quote(&self.file),
            self.offset,
        );
        format!(
            "(timestamp > {t} OR (timestamp = {t} AND (host > {h} OR (host = {h} AND \
(file > {f} OR (file = {f} AND `offset` > {o}))))))"
        )
    }
}

impl FleetQueries {
    /// The last `days` local days (today included, at least one), as
    /// `UsageMonitor::last_days` counts them.
    pub fn last_days(&self, days: u32) -> (NaiveDate, NaiveDate) {
        let to = self.zone().today();
        (to - chrono::Duration::days(i64::from(days.max(1)) - 1), to)
    }

    /// The daily CSV export of the fleet's local days `from..=to`: one row
    /// per day × model × function, byte for byte what a local monitor's
    /// `daily_csv` writes over all the hosts' records.
    pub fn daily_csv(&self, from: NaiveDate, to: NaiveDate, bom: bool) -> Result<Vec<u8>> {
        ai_usage_core::DayRange::new(from, to)?;
        let groups = self.model_day_groups(from, to)?;
        Ok(self.with_pricing(|p| groups.daily_csv(p, self.reporting(), from, to, bom))?)
    }

    /// Writes the daily CSV of the last `days` local days (today included)
    /// to `path` (replaced atomically) or to `dir/usage_daily_….csv`
    /// (never replacing a file), as `UsageMonitor::export_csv` does.
    pub fn export_csv(
        &self,
        dir: &Path,
        path: Option<&Path>,
        days: u32,
        bom: bool,
    ) -> Result<PathBuf> {
        let (from, to) = self.last_days(days);
        let csv = self.daily_csv(from, to, bom)?;
        self.write(dir, path, "usage_daily", &csv)
    }

    /// Writes the records CSV export of the fleet's local days `from..=to`
    /// into `out` (see the module's notes for order and batches) and
    /// returns `out`.
    pub fn write_records_csv<W: Write>(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        bom: bool,
        out: W,
    ) -> Result<W> {
        self.write_records_csv_in_batches(from, to, bom, out, RECORDS_BATCH_ROWS)
    }

    /// [`write_records_csv`](Self::write_records_csv) with `batch_rows`
    /// rows per query (at least 1).
    pub fn write_records_csv_in_batches<W: Write>(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        bom: bool,
        out: W,
        batch_rows: usize,
    ) -> Result<W> {
        ai_usage_core::DayRange::new(from, to)?;
        let batch_rows = batch_rows.max(1);
        let zone = self.zone();
        let (start, end) = (zone.day_bounds(from).0, zone.day_bounds(to).1);
        let mut csv = RecordsCsv::new(out, zone, bom)?;
        let db = self.client().db();
        // One UTC day at a time: `day` leads the table's key, so each
        // query merges (FINAL) only that day's rows.
        let mut day = utc_date(start);
        let last = utc_date(end);
        while day <= last {
            let corrected = self.corrected_costs(day)?;
            let mut key: Option<PageKey> = None;
            loop {
                let after = key
                    .as_ref()
                    .map(|k| format!(" AND {}", k.after()))
                    .unwrap_or_default();
                let sql = format!(
                    "SELECT {} FROM {db}.records FINAL WHERE day = toDate('{}') \
AND timestamp >= {start} AND timestamp < {end}{after} \
ORDER BY timestamp, host, file, `offset` LIMIT {batch_rows}",
                    record_select(),
                    day.format("%Y-%m-%d")
                );
                let rows = self.client().query_rows(&sql)?;
                for row in &rows {
                    let mut r = record_of(row)?;
                    if !corrected.is_empty() {
                        let k = page_key(row)?;
                        if let Some(&(cost, currency)) = corrected.get(&(k.host, k.file, k.offset))
                        {
                            r.cost = cost;
                            r.currency = Some(currency);
                            r.priced = Some(true);
                        }
                    }
                    csv.write(&r)?;
                }
                if rows.len() < batch_rows {
                    break;
                }
                key = rows.last().map(|r| page_key(r)).transpose()?;
            }
            day = match day.succ_opt() {
                Some(d) => d,
                None => break,
            };
        }
        Ok(csv.finish()?)
    }

    /// The effective cost of every corrected call of the UTC day `day`, by
    /// its line (host, day file, offset): its last adjustment (the latest
    /// line of its host's adjustment file, which holds all of that call's).
    fn corrected_costs(&self, day: NaiveDate) -> Result<HashMap<(String, String, u64), Cost>> {
        let db = self.client().db();
        let rows = self.client().query_rows(&format!(
            "SELECT host, call_file, call_offset, argMax(cost_nanos, `offset`), \
argMax(currency, `offset`) FROM {db}.{ADJUSTMENTS_TABLE} FINAL WHERE day = toDate('{}') \
GROUP BY host, call_file, call_offset",
            day.format("%Y-%m-%d")
        ))?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in &rows {
            let code = field(row, 4)?;
            let currency =
                Currency::new(code).ok_or_else(|| Error::Protocol(format!("currency {code:?}")))?;
            out.insert(
                (
                    field(row, 0)?.to_string(),
                    field(row, 1)?.to_string(),
                    number(row, 2)?,
                ),
                (money_from_column(number(row, 3)?), currency),
            );
        }
        Ok(out)
    }

    /// Writes the records CSV of the local days `from..=to` to `path` or
    /// `dir/usage_records_….csv`, as `UsageMonitor::export_records_csv`
    /// does.
    pub fn export_records_csv(
        &self,
        dir: &Path,
        path: Option<&Path>,
        from: NaiveDate,
        to: NaiveDate,
        bom: bool,
    ) -> Result<PathBuf> {
        // Streamed into the temporary file: the export may be far larger
        // than what is worth holding in memory.
        ai_usage_core::write_export_with(dir, &self.stamp(), path, "usage_records", "csv", |f| {
            let out = self.write_records_csv(from, to, bom, std::io::BufWriter::new(f))?;
            out.into_inner().map(|_| ()).map_err(|e| Error::Io {
                action: "cannot write the records export in",
                path: dir.to_path_buf(),
                source: e.into_error(),
            })
        })
    }

    /// Writes an export as the local monitor names it: stamped with the
    /// local time in this zone.
    fn write(
        &self,
        dir: &Path,
        path: Option<&Path>,
        prefix: &str,
        bytes: &[u8],
    ) -> Result<PathBuf> {
        Ok(ai_usage_core::write_export(
            dir,
            &self.stamp(),
            path,
            prefix,
            "csv",
            bytes,
        )?)
    }

    /// The local time of a default export name.
    fn stamp(&self) -> String {
        self.zone()
            .local(ai_usage_core::now_timestamp())
            .format("%Y%m%d_%H%M%S")
            .to_string()
    }
}

/// The UTC date of an epoch second (the `day` column's rule).
fn utc_date(t: f64) -> NaiveDate {
    chrono::DateTime::from_timestamp(t.floor() as i64, 0)
        .map(|d| d.date_naive())
        .unwrap_or_default()
}

fn field(row: &[String], i: usize) -> Result<&str> {
    row.get(i)
        .map(String::as_str)
        .ok_or_else(|| Error::Protocol(format!("row has no column {i}: {row:?}")))
}

fn number<T: std::str::FromStr>(row: &[String], i: usize) -> Result<T> {
    let s = field(row, i)?;
    s.parse()
        .map_err(|_| Error::Protocol(format!("column {i}: not a number: {s:?}")))
}

/// An empty column is an absent id or text.
fn text(row: &[String], i: usize) -> Result<Option<String>> {
    let s = field(row, i)?;
    Ok((!s.is_empty()).then(|| s.to_string()))
}

/// One row of [`record_select`] as the record the day file held: each
/// field read from its column by its kind.
fn record_of(row: &[String]) -> Result<UsageRecord> {
    let mut r = UsageRecord::default();
    for ((i, column), slot) in field_columns().iter().enumerate().zip(r.slots()) {
        let cell = field(row, i)?;
        let bad = || Error::Protocol(format!("column {}: cannot read {cell:?}", column.name));
        match slot {
            FieldSlot::Float(f) => *f = number(row, i)?,
            FieldSlot::Count(n) => *n = number(row, i)?,
            FieldSlot::Text(t) => *t = cell.to_string(),
            FieldSlot::OptText(t) => *t = text(row, i)?,
            FieldSlot::Flag(b) => *b = cell == "1",
            FieldSlot::Money(m) => *m = money_from_column(number(row, i)?),
            FieldSlot::Currency(c) => *c = Some(Currency::new(cell).ok_or_else(bad)?),
            FieldSlot::OptFlag(b) => *b = Some(cell == "1"),
            // Joined by ClickHouse; the export joins them the same way.
            FieldSlot::List(items) => {
                *items = if cell.is_empty() {
                    Vec::new()
                } else {
                    vec![cell.to_string()]
                }
            }
        }
    }
    Ok(r)
}

/// The page key of a [`record_select`] row: the timestamp, then the
/// columns after the record's.
fn page_key(row: &[String]) -> Result<PageKey> {
    let timestamp = field_columns()
        .iter()
        .position(|c| c.name == "timestamp")
        .ok_or_else(|| Error::Protocol("no timestamp column".into()))?;
    let after = field_columns().len();
    Ok(PageKey {
        timestamp: number(row, timestamp)?,
        host: field(row, after)?.to_string(),
        file: field(row, after + 1)?.to_string(),
        offset: number(row, after + 2)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_usage_core::FieldValue;

    #[test]
    fn page_key_filter_quotes_text_and_keeps_the_exact_timestamp() {
        let k = PageKey {
            timestamp: 1761403494.6,
            host: "h'1".into(),
            file: "usage_2025-10-25.jsonl".into(),
            offset: 42,
        };
        assert_eq!(
            k.after(),
            "(timestamp > 1761403494.6 OR (timestamp = 1761403494.6 AND (host > 'h\\'1' OR \
(host = 'h\\'1' AND (file > 'usage_2025-10-25.jsonl' OR (file = 'usage_2025-10-25.jsonl' \
AND `offset` > 42))))))"
        );
    }

    /// Every field survives the trip through its column: a record with
    /// each field set is written as the cells ClickHouse returns (by the
    /// column's kind) and read back equal.
    #[test]
    fn a_row_reads_back_as_its_record() {
        let mut want = UsageRecord::default();
        for (i, slot) in want.slots().into_iter().enumerate() {
            let n = i as u64 + 1;
            match slot {
                FieldSlot::Float(f) => *f = 1761403494.5 + n as f64,
                FieldSlot::Count(c) => *c = n,
                FieldSlot::Text(t) => *t = format!("=text {n}"),
                FieldSlot::OptText(t) => *t = Some(format!("opt;{n}")),
                FieldSlot::Flag(b) => *b = false,
                FieldSlot::Money(m) => *m = ai_usage_core::Money::from_micros(1_500_000),
                FieldSlot::Currency(c) => *c = Currency::new("USD"),
                FieldSlot::OptFlag(b) => *b = Some(true),
                FieldSlot::List(l) => *l = vec!["a;b".into()],
            }
        }
        let mut row: Vec<String> = want
            .values()
            .into_iter()
            .map(|v| match v {
                FieldValue::Float(f) => f.to_string(),
                FieldValue::Count(n) => n.to_string(),
                FieldValue::Text(t) => t.to_string(),
                FieldValue::OptText(t) => t.unwrap_or_default().to_string(),
                FieldValue::Flag(b) | FieldValue::OptFlag(Some(b)) => u8::from(b).to_string(),
                FieldValue::OptFlag(None) => "0".into(),
                FieldValue::Money(m) => m.nanos().to_string(),
                FieldValue::Currency(c) => c.map(|c| c.code().to_string()).unwrap_or_default(),
                FieldValue::List(l) => l.join(";"),
            })
            .collect();
        row.extend(["h", "usage_2025-10-25.jsonl", "9"].map(String::from));
        assert_eq!(record_of(&row).unwrap(), want);
        // An empty text column is an absent id.
        let mut blank = row.clone();
        for (cell, v) in blank.iter_mut().zip(want.values()) {
            if matches!(v, FieldValue::OptText(_)) {
                cell.clear();
            }
        }
        let r = record_of(&blank).unwrap();
        assert!(r
            .values()
            .iter()
            .all(|v| !matches!(v, FieldValue::OptText(Some(_)))));
        let k = page_key(&row).unwrap();
        assert_eq!((k.host.as_str(), k.offset), ("h", 9));
        assert_eq!(k.timestamp, want.timestamp);
        assert!(record_of(&row[..10]).is_err());
    }
}
