//! The two CSV exports, written with the `csv` crate (RFC 4180 quoting,
//! `\n` line ends). Each export's columns are the fields of one row struct:
//! the header is read from that struct, so header and rows cannot drift.
//!
//! `bom` puts a UTF-8 byte order mark first: Excel then reads the file as
//! UTF-8 and shows Chinese names right; most other tools do not want one.

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::money::main_currency;
use crate::money::Currency;
use crate::pricing::PricingTable;
use crate::record::UsageRecord;
use crate::rollups::Rollups;
use crate::storage::dayfile;
use crate::zone::Zone;

use super::cell::neutralise_cell;

/// The UTF-8 byte order mark.
const BOM: &str = "\u{feff}";

/// One row of the daily export: one day × model × function in one currency.
///
/// `Deserialize` is only derived so the header can be read from the type.
#[derive(Serialize, Deserialize)]
struct DailyRow<'a> {
    date: &'a str,
    model: Cow<'a, str>,
    display_name: Cow<'a, str>,
    function: Cow<'a, str>,
    calls: u64,
    input_tokens: u64,
    output_tokens: u64,
    total_tokens: u64,
    /// Exact decimal (`Money`'s display), never a float.
    cost: String,
    currency: Currency,
}

/// One row of the records export: one stored record.
///
/// `Deserialize` is only derived so the header can be read from the type.
#[derive(Serialize, Deserialize)]
struct RecordRow<'a> {
    /// Epoch seconds, three decimals.
    timestamp: String,
    /// `YYYY-MM-DD HH:MM:SS` in the monitor's zone.
    local_time: String,
    user_id: Cow<'a, str>,
    anchor_id: Cow<'a, str>,
    session_id: Cow<'a, str>,
    model: Cow<'a, str>,
    function: Cow<'a, str>,
    input_tokens: u64,
    output_tokens: u64,
    total_tokens: u64,
    cached_input_tokens: u64,
    reasoning_tokens: u64,
    /// Exact decimal (`Money`'s display), never a float.
    cost: String,
    /// The record's currency, else the model's, else CNY.
    currency: Currency,
    /// Milliseconds, one decimal.
    duration_ms: String,
    success: bool,
    error_msg: Cow<'a, str>,
    request_id: Cow<'a, str>,
    /// Tags joined with `;`.
    tags: Cow<'a, str>,
    // Appended after the original columns so their positions stay.
    cache_write_tokens: u64,
    input_audio_tokens: u64,
    cached_audio_input_tokens: u64,
    output_audio_tokens: u64,
    provider: Cow<'a, str>,
}

/// Columns of the daily CSV export
/// ([`UsageMonitor::export_csv`](crate::UsageMonitor::export_csv)).
pub fn daily_csv_header() -> &'static [&'static str] {
    serde_aux::serde_introspection::serde_introspect::<DailyRow<'static>>()
}

/// Columns of the records CSV export
/// ([`UsageMonitor::export_records_csv`](crate::UsageMonitor::export_records_csv)).
pub fn records_csv_header() -> &'static [&'static str] {
    serde_aux::serde_introspection::serde_introspect::<RecordRow<'static>>()
}

/// A CSV writer into memory, header written, optionally after a BOM.
fn writer(header: &[&str], bom: bool) -> Result<csv::Writer<Vec<u8>>> {
    writer_into(Vec::new(), header, bom)
}

/// A CSV writer into `out`, header written, optionally after a BOM.
fn writer_into<W: Write>(mut out: W, header: &[&str], bom: bool) -> Result<csv::Writer<W>> {
    if bom {
        out.write_all(BOM.as_bytes())
            .map_err(|e| csv_error(e.into()))?;
    }
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out);
    w.write_record(header).map_err(csv_error)?;
    Ok(w)
}

/// The bytes written so far.
fn finish(w: csv::Writer<Vec<u8>>) -> Result<Vec<u8>> {
    w.into_inner().map_err(|e| csv_error(e.into_error().into()))
}

/// Writing into memory only fails on a row the format cannot hold (a bug).
fn csv_error(e: csv::Error) -> Error {
    Error::Config {
        setting: "report",
        message: format!("cannot write the CSV export: {e}"),
    }
}

/// One CSV row per day × model × function of the days `from..=to`
/// (columns [`daily_csv_header`]). A group with costs in several
/// currencies (explicit costs only) gets one extra row per other
/// currency with zero calls and tokens, so column sums stay right and
/// currencies are never added.
pub fn daily_csv(
    rollups: &Rollups,
    pricing: &PricingTable,
    reporting: Currency,
    from: NaiveDate,
    to: NaiveDate,
    bom: bool,
) -> Result<Vec<u8>> {
    let mut w = writer(daily_csv_header(), bom)?;
    for (date, day) in rollups.days.range(from..=to) {
        let date = date.format("%Y-%m-%d").to_string();
        let mut groups: Vec<_> = day
            .by_function_model
            .iter()
            .flat_map(|(f, models)| models.iter().map(move |(m, g)| (m, f, g)))
            .collect();
        groups.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(b.1)));
        for (model, function, g) in groups {
            let display = pricing.display_name(model);
            let main = main_currency(&g.cost, reporting);
            let mut row = DailyRow {
                date: &date,
                // Text cells come from callers: neutralise formulas (cell.rs).
                model: neutralise_cell(model),
                display_name: neutralise_cell(&display),
                function: neutralise_cell(function),
                calls: g.calls,
                input_tokens: g.input_tokens,
                output_tokens: g.output_tokens,
                total_tokens: g.total_tokens,
                cost: g.cost.get(main).to_string(),
                currency: main,
            };
            w.serialize(&row).map_err(csv_error)?;
            for (c, m) in g.cost.others(main) {
                row.calls = 0;
                row.input_tokens = 0;
                row.output_tokens = 0;
                row.total_tokens = 0;
                row.cost = m.to_string();
                row.currency = c;
                w.serialize(&row).map_err(csv_error)?;
            }
        }
    }
    finish(w)
}

/// The raw records of the local days `from..=to`, read from the day
/// files of `dir`, as CSV (columns [`records_csv_header`]); local times
/// in `zone`; records without a currency (the seed's) are CNY.
pub fn records_csv(
    dir: &Path,
    zone: &Zone,
    from: NaiveDate,
    to: NaiveDate,
    bom: bool,
) -> Result<Vec<u8>> {
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
    let mut w = RecordsCsv::new(Vec::new(), zone, bom)?;
    for (_, file) in files {
        let mut records: Vec<UsageRecord> = Vec::new();
        dayfile::read_day_file(&file, |r| records.push(r))?;
        records.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
        for r in &records {
            w.write(r)?;
        }
    }
    w.finish()
}

/// The records CSV export written row by row into `W` (columns
/// [`records_csv_header`]): the writer behind the monitor's records export
/// ([`UsageMonitor::export_records_csv`](crate::UsageMonitor::export_records_csv)),
/// public so records read elsewhere (e.g. a fleet database, in batches) make the very
/// same file, formula-like text neutralised the same way.
pub struct RecordsCsv<W: Write> {
    w: csv::Writer<W>,
    zone: Zone,
}

impl<W: Write> RecordsCsv<W> {
    /// Starts the export in `out`: the BOM when `bom`, then the header.
    /// Local times are shown in `zone`.
    pub fn new(out: W, zone: &Zone, bom: bool) -> Result<RecordsCsv<W>> {
        Ok(RecordsCsv {
            w: writer_into(out, records_csv_header(), bom)?,
            zone: *zone,
        })
    }

    /// Writes one record as a row; a record without a currency (the
    /// seed's) is CNY.
    pub fn write(&mut self, r: &UsageRecord) -> Result<()> {
        // No `currency`: a seed record, always CNY (see `stored_currency`).
        let currency = r.currency.unwrap_or(Currency::CNY);
        self.w
            .serialize(RecordRow {
                timestamp: format!("{:.3}", r.timestamp),
                local_time: self
                    .zone
                    .local(r.timestamp)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string(),
                user_id: neutralise_cell(r.user_id.as_deref().unwrap_or_default()),
                anchor_id: neutralise_cell(r.anchor_id.as_deref().unwrap_or_default()),
                session_id: neutralise_cell(r.session_id.as_deref().unwrap_or_default()),
                model: neutralise_cell(&r.model),
                function: neutralise_cell(&r.function),
                input_tokens: r.input_tokens,
                output_tokens: r.output_tokens,
                total_tokens: r.total_tokens,
                cached_input_tokens: r.cached_input_tokens,
                reasoning_tokens: r.reasoning_tokens,
                cost: r.cost.to_string(),
                currency,
                duration_ms: format!("{:.1}", r.duration_ms),
                success: r.success,
                error_msg: neutralise_cell(r.error_msg.as_deref().unwrap_or_default()),
                request_id: neutralise_cell(r.request_id.as_deref().unwrap_or_default()),
                tags: Cow::Owned(neutralise_cell(&r.tags.join(";")).into_owned()),
                cache_write_tokens: r.cache_write_tokens,
                input_audio_tokens: r.input_audio_tokens,
                cached_audio_input_tokens: r.cached_audio_input_tokens,
                output_audio_tokens: r.output_audio_tokens,
                provider: neutralise_cell(r.provider.as_deref().unwrap_or_default()),
            })
            .map_err(csv_error)
    }

    /// Flushes the rows and returns `out`.
    pub fn finish(self) -> Result<W> {
        self.w
            .into_inner()
            .map_err(|e| csv_error(e.into_error().into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_the_row_fields_in_order() {
        assert_eq!(
            daily_csv_header().join(","),
            "date,model,display_name,function,calls,input_tokens,output_tokens,\
             total_tokens,cost,currency"
        );
        assert_eq!(
            records_csv_header().join(","),
            "timestamp,local_time,user_id,anchor_id,session_id,model,function,\
             input_tokens,output_tokens,total_tokens,cached_input_tokens,\
             reasoning_tokens,cost,currency,duration_ms,success,error_msg,\
             request_id,tags,cache_write_tokens,input_audio_tokens,\
             cached_audio_input_tokens,output_audio_tokens,provider"
        );
    }

    /// A field added to the stored record must reach the records export,
    /// or be named here as deliberately left out.
    #[test]
    fn records_export_covers_every_record_field() {
        let not_exported = ["priced"];
        let header = records_csv_header();
        let record_fields = serde_aux::serde_introspection::serde_introspect::<UsageRecord>();
        for field in record_fields {
            assert!(
                header.contains(field) || not_exported.contains(field),
                "UsageRecord::{field} is missing from the records CSV export"
            );
        }
    }

    #[test]
    fn bom_comes_first_and_quoting_follows_rfc_4180() {
        let mut w = writer(&["a", "b", "c"], true).unwrap();
        w.write_record(["x", "y,z", ""]).unwrap();
        w.write_record(["say \"hi\"", "two\nlines", "实时分析"])
            .unwrap();
        let text = String::from_utf8(finish(w).unwrap()).unwrap();
        assert_eq!(
            text,
            "\u{feff}a,b,c\nx,\"y,z\",\n\"say \"\"hi\"\"\",\"two\nlines\",实时分析\n"
        );
        let plain = finish(writer(&["a"], false).unwrap()).unwrap();
        assert_eq!(plain, b"a\n");
    }
}
