//! The two CSV exports, written with the `csv` crate (RFC 4180 quoting,
//! `\n` line ends). The daily export's columns are the fields of one row
//! struct (the header is read from it); the records export's are the
//! record's own table of fields (each at its CSV position) plus the local
//! time. Either way header and rows come from one list and cannot drift.
//!
//! `bom` puts a UTF-8 byte order mark first: Excel then reads the file as
//! UTF-8 and shows Chinese names right; most other tools do not want one.

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::money::main_currency;
use crate::money::Currency;
use crate::pricing::PricingTable;
use crate::record::fields::FieldValue;
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

/// The records export's columns that are not record fields, by position:
/// the local time beside the epoch seconds. Every other column is a record
/// field, at the position its row of the record's table gives
/// ([`FieldSpec::csv`](crate::record::fields::FieldSpec::csv)); positions stay where the original put them, the
/// newer fields appended.
const DERIVED_COLUMNS: [(usize, &str); 1] = [(1, "local_time")];

/// Columns of the daily CSV export
/// ([`UsageMonitor::export_csv`](crate::UsageMonitor::export_csv)).
pub fn daily_csv_header() -> &'static [&'static str] {
    serde_aux::serde_introspection::serde_introspect::<DailyRow<'static>>()
}

/// Columns of the records CSV export
/// ([`UsageMonitor::export_records_csv`](crate::UsageMonitor::export_records_csv)):
/// the record's fields at their CSV positions, and the derived columns.
pub fn records_csv_header() -> &'static [&'static str] {
    static HEADER: OnceLock<Vec<&'static str>> = OnceLock::new();
    HEADER.get_or_init(|| {
        let mut header = vec![""; records_csv_width()];
        for spec in UsageRecord::FIELDS {
            if let Some(c) = spec.csv {
                header[c.position] = spec.name;
            }
        }
        for (position, name) in DERIVED_COLUMNS {
            header[position] = name;
        }
        header
    })
}

/// Number of columns of the records export.
fn records_csv_width() -> usize {
    UsageRecord::FIELDS
        .iter()
        .filter(|f| f.csv.is_some())
        .count()
        + DERIVED_COLUMNS.len()
}

/// One record field as its records-export cell: exact decimals for money,
/// the given decimals for floats, caller text neutralised, tags joined with
/// `;`, and the currency settled (a record without one is the seed's: CNY).
fn csv_cell(value: FieldValue<'_>, decimals: usize) -> Cow<'_, str> {
    match value {
        FieldValue::Float(f) => Cow::Owned(format!("{f:.decimals$}")),
        FieldValue::Count(n) => Cow::Owned(n.to_string()),
        FieldValue::Text(t) => neutralise_cell(t),
        FieldValue::OptText(t) => neutralise_cell(t.unwrap_or_default()),
        FieldValue::Flag(b) => Cow::Borrowed(if b { "true" } else { "false" }),
        FieldValue::Money(m) => Cow::Owned(m.to_string()),
        FieldValue::Currency(c) => Cow::Owned(c.unwrap_or(Currency::CNY).code().to_owned()),
        FieldValue::OptFlag(b) => Cow::Borrowed(match b {
            Some(true) => "true",
            Some(false) => "false",
            None => "",
        }),
        FieldValue::List(items) => Cow::Owned(neutralise_cell(&items.join(";")).into_owned()),
    }
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
/// in `zone`; records without a currency (the seed's) are CNY. A call
/// corrected by an adjustment shows its corrected cost.
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
    // Each call at its effective cost: its last adjustment, if any.
    let corrected = crate::storage::adjustments::read_adjustments(dir, from)?.effective();
    let mut w = RecordsCsv::new(Vec::new(), zone, bom)?;
    for (day, file) in files {
        let mut records: Vec<UsageRecord> = Vec::new();
        let name = dayfile::day_file_name(day);
        dayfile::read_day_file_at(&file, |offset, mut r| {
            if let Some(&(cost, currency, priced)) = corrected.get(&(name.clone(), offset)) {
                r.cost = cost;
                r.currency = Some(currency);
                r.priced = Some(priced);
            }
            records.push(r)
        })?;
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
        let mut cells = vec![Cow::Borrowed(""); records_csv_width()];
        for (spec, value) in UsageRecord::FIELDS.iter().zip(r.values()) {
            if let Some(c) = spec.csv {
                cells[c.position] = csv_cell(value, c.decimals);
            }
        }
        let local = self.zone.local(r.timestamp).format("%Y-%m-%d %H:%M:%S");
        cells[DERIVED_COLUMNS[0].0] = Cow::Owned(local.to_string());
        self.w
            .write_record(cells.iter().map(|c| c.as_bytes()))
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
        // The records header in full is pinned by the report tests; here:
        // the epoch seconds, then the local time, then one per field.
        let header = records_csv_header();
        assert_eq!(header[..2], ["timestamp", "local_time"]);
        assert_eq!(header.len(), UsageRecord::FIELD_COUNT);
    }

    /// Each column is taken by exactly one field or derived column.
    #[test]
    fn every_records_column_has_one_source() {
        let header = records_csv_header();
        let mut names: Vec<&str> = header.to_vec();
        assert!(names.iter().all(|n| !n.is_empty()), "a gap: {names:?}");
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), header.len(), "two sources for one column");
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
